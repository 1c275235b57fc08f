"""Helm fixes: roll a stuck or failed release back to its last deployed revision with the helm binary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import helm as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("helm-rollback", title="Roll the release back to its last deployed revision (helm rollback)",
     repairs=("helm.release",), risk=Risk.RESTARTS_SERVICE)
def rollback(ctx: "Context") -> Plan:
    return probe.plan_rollback(ctx)
