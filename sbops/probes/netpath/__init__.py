"""The netpath layer: connections made from inside a running pod's network namespace, so the traffic crosses
what pod traffic crosses (the CNI bridge, the host firewall, kube-proxy's rules, the servers' bind address
and host grants), which sbops's own connections from the host never do.

Modules, one job each: `sandbox` finds the pod to test from (containerd's bundles + the API), `targets`
reads what the pods are configured to reach (the Helm values, else the credentials file; the routed
Services' ClusterIPs), `enter` runs the child and enforces the deadline, `child` is that child (setns, then
the attempts), `attempts` makes and classifies each connection, `judge` turns the answers into findings,
`run` puts them together for the checks. When sbops cannot enter a sandbox, `probepod` starts a short-lived
pod from setting `netpath.probe_image` whose busybox script, manifest and log lines are `podscript`'s. Importing this package imports none of the client libraries.
"""

from sbops.probes.netpath.run import probe_service, probe_services

__all__ = ["probe_service", "probe_services"]
