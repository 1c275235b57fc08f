"""mysql.reachable and mysql.auth: the network path and the stackbill login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.messages import mysql as M
from sbops.model import Reason, Result
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
        return M.TURNS_AWAY.result(reason=reason, host=host, port=port, error=error,
                                   details={"host": host, "port": port, "error_code": code, "error": error})
    return M.ANSWERS.result(host=host, port=port, version=version or "version not told",
                            details={"host": host, "port": port, "version": version})


def judge_unreachable(host: str, port: int, reason: Reason, error: str) -> Result:
    details = {"host": host, "port": port, "error": error}
    if reason is Reason.REFUSED:
        return M.REFUSED.result(host=host, port=port, details=details)
    if reason is Reason.TIMEOUT:
        return M.TIMEOUT.result(host=host, port=port, details=details)
    return M.UNREACHABLE.result(reason=reason, host=host, port=port, details=details)


LOGIN_FINDINGS = {Reason.AUTH_FAILED: M.LOGIN_REFUSED, Reason.HOST_BLOCKED: M.LOGIN_HOST_BLOCKED,
                  Reason.TOO_MANY_CONNECTIONS: M.LOGIN_NO_SLOT, Reason.REFUSED: M.LOGIN_CONNECTION_REFUSED,
                  Reason.TIMEOUT: M.LOGIN_TIMEOUT}
AUTH_FIX = {Reason.AUTH_FAILED: "mysql-user", Reason.HOST_BLOCKED: "mysql-blocked-host",
            Reason.TOO_MANY_CONNECTIONS: "mysql-config"}


def judge_login_error(err: LoginError) -> Result:
    """The finding and fix for a failed stackbill login, by the reason its error code gave."""
    details = {"error_code": err.code, "error": err.detail}
    message = LOGIN_FINDINGS.get(err.reason)
    if message is None:
        return M.LOGIN_FAILED.result(reason=err.reason, who=err.who, error=err.detail, details=details,
                                     fix=AUTH_FIX.get(err.reason))
    return message.result(who=err.who, details=details, fix=AUTH_FIX.get(err.reason))


def probe_auth(ctx: "Context") -> Result:
    try:
        session = app_session(ctx)
    except LoginError as err:
        return judge_login_error(err)
    return M.LOGIN_OK.result(who=session.label, version=session.version, details={"version": session.version})
