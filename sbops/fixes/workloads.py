"""Workload fixes: rollout-restart Deployments (all with broken pods, or the one named by --workload)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import pods as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("restart-workload", title="Rollout-restart the Deployments whose pods crash-loop or are not Ready "
                               "(or the one given with --workload)",
     repairs=("pods.ready",), risk=Risk.RESTARTS_SERVICE)
def restart(ctx: "Context", *, workload: str | None = None) -> Plan:
    return probe.plan_restart(ctx, workload=workload)
