"""Workload checks: pods in the StackBill namespace Ready (with the reason when not), restart counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "workloads"


@check("pods.ready", layer=LAYER, title="Every pod in the namespace is Ready",
       severity=Severity.CRITICAL, requires=("k8s.namespace",), fix="restart-workload")
def ready(ctx: "Context") -> Result:
    from sbops.probes import pods

    return pods.probe_ready(ctx)


@check("pods.restarts", layer=LAYER, title="No container restarts more often than pods.restart_threshold",
       severity=Severity.WARNING, requires=("k8s.namespace",),
       no_fix="restarts have a cause in the container's logs; restarting again only hides the evidence")
def restarts(ctx: "Context") -> Result:
    from sbops.probes import pods

    return pods.probe_restarts(ctx)
