"""`sbops install`: the StackBill POC installer as ordered, idempotent steps.

Each install step is a list of resources; each resource is planned by the same probe functions `sbops doctor`
and `sbops fix` use (observe, desired state, difference as model.Change items), applied, and the step is
verified with the doctor's own checks. See steps.py for the model and flow.py for the run loop; the
uninstaller lives in sbops/uninstall/.
"""
