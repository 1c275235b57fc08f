"""mysql.reachable and mysql.auth: the network path and the stackbill login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Reason, Result, fail, ok, warn
from sbops.probes.mysql.session import app_session, LoginError

if TYPE_CHECKING:
    from sbops.context import Context


# ======================================================================================================
# mysql.reachable / mysql.auth
# ======================================================================================================
NETWORK_REASONS = (Reason.REFUSED, Reason.TIMEOUT, Reason.UNREACHABLE, Reason.NOT_RUNNING)


def probe_reachable(ctx: "Context") -> Result:
    """TCP + greeting, through the shared stackbill login (one connection for reachable and auth).

    A raw connect that reads the greeting and hangs up would count as a connection error against this
    host, and with a low max_connect_errors sbops would block itself; a real login does not.
    """
    host, port = ctx.endpoint("mysql")
    try:
        session = app_session(ctx)
    except LoginError as err:
        return judge_reachable(host, port, err.reason, err.version, err.code, err.detail)
    return judge_reachable(host, port, Reason.NONE, session.version, None, "")


def judge_reachable(host: str, port: int, reason: Reason, version: str, code: int | None, error: str) -> Result:
    """Pure: network failures fail; a server that answered passes (warns when it turned the client away)."""
    if reason in NETWORK_REASONS:
        return judge_unreachable(host, port, Reason.UNREACHABLE if reason is Reason.NOT_RUNNING else reason, error)
    if reason in (Reason.HOST_BLOCKED, Reason.TOO_MANY_CONNECTIONS) and not version:
        return warn(reason, f"MySQL at {host}:{port} answers but turns this client away: {error}",
                    host=host, port=port, error_code=code, error=error)
    return ok(f"MySQL at {host}:{port} answers ({version or 'version not told'})", host=host, port=port,
              version=version)


def judge_unreachable(host: str, port: int, reason: Reason, error: str) -> Result:
    what = {
        Reason.REFUSED: "refuses connections: is MySQL running and listening on that address (bind-address)?",
        Reason.TIMEOUT: "does not answer: a firewall drops the packets or the server hangs",
    }.get(reason, "cannot be reached: check the address and the network")
    return fail(reason, f"MySQL at {host}:{port} {what}", host=host, port=port, error=error)


AUTH_FIX = {Reason.AUTH_FAILED: "mysql-user", Reason.HOST_BLOCKED: "mysql-blocked-host",
            Reason.TOO_MANY_CONNECTIONS: "mysql-config"}


def judge_login_error(err: LoginError) -> Result:
    """Summary and fix for a failed stackbill login."""
    hint = {
        Reason.AUTH_FAILED: "the password in the credentials file does not match the server's stackbill user "
                            "(or the user is missing)",
        Reason.HOST_BLOCKED: "the server blocked this host after too many connection errors",
        Reason.TOO_MANY_CONNECTIONS: "the server has no free connection (max_connections reached)",
        Reason.REFUSED: "the server refused the connection",
        Reason.TIMEOUT: "the server did not answer in time",
    }.get(err.reason, "the login failed")
    result = fail(err.reason, f"{err.who} cannot log in: {hint}", error_code=err.code, error=err.detail)
    fix = AUTH_FIX.get(err.reason)
    return Result(result.status, result.reason, result.summary, result.details, fix=fix)


def probe_auth(ctx: "Context") -> Result:
    try:
        session = app_session(ctx)
    except LoginError as err:
        return judge_login_error(err)
    return ok(f"{session.label} logs in ({session.version})", version=session.version)
