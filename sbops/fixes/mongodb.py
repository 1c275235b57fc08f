"""MongoDB fixes: the StackBill user, and mongod.conf (bindIp, authorization). Thin over sbops.probes.mongodb."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import mongodb as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("mongodb-user", title="Create the StackBill MongoDB user, or reset its password and roles",
     repairs=("mongodb.auth", "mongodb.user"), risk=Risk.SAFE)
def user(ctx: "Context") -> Plan:
    return probe.plan_user(ctx)


@fix("mongodb-config", title="Bind MongoDB to 0.0.0.0 and enable authorization in mongod.conf",
     repairs=("mongodb.bind", "mongodb.authorization"), risk=Risk.RESTARTS_SERVICE)
def config(ctx: "Context", *, allow_restart: bool = False) -> Plan:
    return probe.plan_config(ctx, allow_restart=allow_restart)
