"""MySQL/MariaDB checks: thin declarations over sbops.probes.mysql."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "mysql"


@check("mysql.reachable", layer=LAYER, title="MySQL answers on the credentials file's Host:Port",
       severity=Severity.CRITICAL, no_fix="start MySQL or open the network path; see the runbook")
def reachable(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_reachable(ctx)


@check("mysql.auth", layer=LAYER, title="the stackbill user logs in with the credentials file's password",
       severity=Severity.CRITICAL, requires=("mysql.reachable",), fix="mysql-user")
def auth(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_auth(ctx)


@check("mysql.host-blocked", layer=LAYER, title="no client host is blocked by max_connect_errors",
       severity=Severity.CRITICAL, requires=("mysql.reachable",), fix="mysql-blocked-host")
def host_blocked(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_host_blocked(ctx)


@check("mysql.config", layer=LAYER, title="the server's settings match stackbill.cnf",
       severity=Severity.WARNING, requires=("mysql.auth",), fix="mysql-config")
def config(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_config(ctx)


@check("mysql.schema", layer=LAYER, title="databases stackbill and configuration exist",
       severity=Severity.CRITICAL, requires=("mysql.reachable",), fix="mysql-schema")
def schema(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_schema(ctx)


@check("mysql.user", layer=LAYER, title="stackbill@'%' and @'localhost': mysql_native_password, ALL WITH GRANT OPTION",
       severity=Severity.CRITICAL, requires=("mysql.reachable",), fix="mysql-user")
def user(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_user(ctx)


@check("mysql.connections", layer=LAYER, title="connections in use stay below max_connections",
       severity=Severity.WARNING, requires=("mysql.auth",),
       no_fix="find the client holding connections (SHOW PROCESSLIST); mysql-config raises max_connections to 1000")
def connections(ctx: "Context") -> Result:
    from sbops.probes import mysql

    return mysql.probe_connections(ctx)
