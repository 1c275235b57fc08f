"""`sbops uninstall`: what a StackBill install left on this server, and its removal in the safe order.

inventory.py observes (in parallel, through the probes), plan.py decides (pure: levels to ordered steps),
apply.py performs one step, flow.py runs plan/apply/verify, report.py renders. mysql_data.py, mongodb_data.py
and rabbitmq_data.py hold what only the uninstaller needs from each server (sizes, drop statements, the
user's removal); they sit here, not in the probes, because no check or fix uses them.
"""
