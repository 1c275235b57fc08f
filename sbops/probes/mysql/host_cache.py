"""mysql.host-blocked: the host cache's blocked clients, and fix mysql-blocked-host's FLUSH statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from sbops.messages import mysql as M
from sbops.model import Change, Plan, Result
from sbops.probes.mysql.access import any_session, app_login_error, no_access_blocker
from sbops.probes.mysql.config import MIN_CONNECT_ERRORS
from sbops.probes.mysql.session import (ER_HOST_IS_BLOCKED, truthy, describe_error, is_mariadb_version, Session,
    version_tuple)

if TYPE_CHECKING:
    from sbops.context import Context


# ======================================================================================================
# mysql.host-blocked
# ======================================================================================================
@dataclass(frozen=True)
class HostCache:
    performance_schema: bool
    max_connect_errors: int
    skip_name_resolve: bool
    host_cache_size: int
    rows: tuple[dict[str, Any], ...] | None  # None: could not read performance_schema.host_cache
    why_no_rows: str = ""


def observe_host_cache(session: Session) -> HostCache:
    var = session.rows("SELECT @@GLOBAL.performance_schema AS ps, @@GLOBAL.max_connect_errors AS mce, "
                       "@@GLOBAL.skip_name_resolve AS snr, @@GLOBAL.host_cache_size AS hcs")[0]
    ps = truthy(var["ps"])
    rows: tuple[dict[str, Any], ...] | None = None
    why = ""
    if not ps:
        why = "performance_schema is OFF, so performance_schema.host_cache is empty"
    else:
        try:
            rows = tuple(session.rows(
                "SELECT IP, HOST, SUM_CONNECT_ERRORS, COUNT_HOST_BLOCKED_ERRORS FROM performance_schema.host_cache"))
        except Exception as exc:  # noqa: BLE001 - e.g. 1142 without SELECT on performance_schema
            why = f"cannot read performance_schema.host_cache: {describe_error(exc)}"
    return HostCache(ps, int(var["mce"]), truthy(var["snr"]), int(var["hcs"]), rows, why)


def blocked_hosts(rows: Iterable[dict[str, Any]], max_connect_errors: int) -> list[dict[str, Any]]:
    """Rows of hosts the server blocks now (errors reached the limit) or has blocked (blocked errors > 0)."""
    out = []
    for row in rows:
        errors = int(row.get("sum_connect_errors") or 0)
        blocked_count = int(row.get("count_host_blocked_errors") or 0)
        if errors >= max_connect_errors or blocked_count > 0:
            out.append({"ip": row.get("ip"), "host": row.get("host"), "connect_errors": errors,
                        "blocked_attempts": blocked_count})
    return out


def judge_host_blocked(cache: HostCache | None, own_blocked: bool, own_who: str, no_view_why: str) -> Result:
    """Pure: blocked pod hosts from the host cache, else sbops's own login error, else say we cannot tell."""
    own = {"sbops_login_blocked": own_blocked}
    if cache is not None and cache.rows is not None:
        found = blocked_hosts(cache.rows, cache.max_connect_errors)
        evidence = dict(own, blocked=found, host_cache_rows=len(cache.rows),
                        max_connect_errors=cache.max_connect_errors, skip_name_resolve=cache.skip_name_resolve)
        if found:
            names = ", ".join(str(h["ip"]) for h in found)
            return M.HOSTS_BLOCKED.result(count=len(found), hosts=names, details=evidence)
        if own_blocked:
            return M.THIS_HOST_BLOCKED.result(who=own_who, details=evidence)
        if cache.host_cache_size == 0:
            return M.HOST_CACHE_OFF.result(how="skip-host-cache", details=evidence)
        return M.NO_HOST_BLOCKED.result(rows=len(cache.rows), max_connect_errors=cache.max_connect_errors,
                                        details=evidence)
    if own_blocked:
        return M.THIS_HOST_BLOCKED_OTHERS_UNKNOWN.result(who=own_who, why=no_view_why, details=own)
    if cache is not None and cache.host_cache_size == 0:
        return M.HOST_CACHE_OFF.result(how="host_cache_size 0", details=dict(own, host_cache_size=0))
    if cache is not None:
        return M.BLOCKED_HOSTS_UNLISTED.result(why=cache.why_no_rows, details=dict(
            own, performance_schema=cache.performance_schema, max_connect_errors=cache.max_connect_errors))
    return M.HOST_CACHE_UNREADABLE.result(why=no_view_why, details=own)


def probe_host_blocked(ctx: "Context") -> Result:
    own_error = app_login_error(ctx)
    own_blocked = own_error is not None and own_error.code == ER_HOST_IS_BLOCKED
    access = any_session(ctx)
    cache = observe_host_cache(access.session) if access.session else None
    own_who = own_error.who if own_error else ""
    return judge_host_blocked(cache, own_blocked, own_who, f"no MySQL login works ({access.why})")


def plan_blocked_host(ctx: "Context") -> Plan:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access, "as root on the database server run `mysqladmin flush-hosts`"),))
    session = access.session
    cache = observe_host_cache(session)
    own_error = app_login_error(ctx)
    own_blocked = own_error is not None and own_error.code == ER_HOST_IS_BLOCKED
    notes = blocking_notes(cache)
    found = blocked_hosts(cache.rows, cache.max_connect_errors) if cache.rows is not None else []
    if cache.rows is not None and not found and not own_blocked:
        return Plan(notes=notes, nothing_to_do="no host is blocked (performance_schema.host_cache)")
    statements = flush_statements(session.version, cache.performance_schema and cache.rows is not None)
    hosts = ", ".join(str(h["ip"]) for h in found) or "the hosts MySQL blocks"

    def apply() -> None:
        for sql in statements:
            session.execute(sql)

    return Plan(changes=(Change(f"unblock {hosts}", tuple(statements), apply),), notes=notes)


def flush_statements(version: str, host_cache_readable: bool) -> list[str]:
    """FLUSH HOSTS (deprecated from MySQL 8.0.23) and/or TRUNCATE performance_schema.host_cache."""
    mysql_new = not is_mariadb_version(version) and version_tuple(version) >= (8, 0, 23)
    out = [] if (mysql_new and host_cache_readable) else ["FLUSH HOSTS"]
    if host_cache_readable:
        out.append("TRUNCATE TABLE performance_schema.host_cache")
    return out


def blocking_notes(cache: HostCache) -> tuple[str, ...]:
    if cache.host_cache_size > 0 and not cache.skip_name_resolve and cache.max_connect_errors < MIN_CONNECT_ERRORS:
        return (f"this server lets hosts get blocked again (skip_name_resolve OFF, max_connect_errors "
                f"{cache.max_connect_errors}): `sbops fix mysql-config` applies stackbill.cnf to prevent it",)
    return ()
