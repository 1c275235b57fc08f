"""MySQL/MariaDB fixes: thin declarations over sbops.probes.mysql's differs and appliers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("mysql-blocked-host", title="unblock hosts MySQL blocked after connection errors (FLUSH HOSTS)",
     repairs=("mysql.host-blocked", "mysql.auth"), risk=Risk.SAFE)
def blocked_host(ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_blocked_host(ctx)


@fix("mysql-config", title="write stackbill.cnf and apply its settings (restart with --restart)",
     repairs=("mysql.config",), risk=Risk.RESTARTS_SERVICE)
def config(ctx: "Context", *, allow_restart: bool = False) -> Plan:
    from sbops.probes import mysql

    return mysql.plan_config(ctx, allow_restart=allow_restart)


@fix("mysql-user", title="create or repair stackbill@'%' and @'localhost' (plugin, password, grants)",
     repairs=("mysql.user", "mysql.auth"), risk=Risk.SAFE)
def user(ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_user(ctx)


@fix("mysql-schema", title="create the missing databases stackbill and configuration",
     repairs=("mysql.schema",), risk=Risk.SAFE)
def schema(ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_schema(ctx)
