"""mongodb.reachable, mongodb.auth and mongodb.authorization: hello, the stackbill login, and whether an
unauthenticated client is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.messages import mongodb as M
from sbops.model import Reason, Result
from sbops.probes.mongodb.session import (AUTH_DB, AUTH_FAILED, MECHANISM, UNAUTHORIZED, address, anon_client,
    app_login, first_line, guarded, Login, make_client)
from sbops.probes.net import tcp_probe

if TYPE_CHECKING:
    from sbops.context import Context


# ---------------------------------------------------------------------------------------------------
# reachability
# ---------------------------------------------------------------------------------------------------
def hello_evidence(doc: dict[str, Any]) -> dict[str, Any]:
    """The interesting fields of a hello reply (wire versions, role, replica set)."""
    keys = ("maxWireVersion", "minWireVersion", "isWritablePrimary", "ismaster", "setName", "msg",
            "readOnly", "maxBsonObjectSize", "logicalSessionTimeoutMinutes")
    return {k: doc[k] for k in keys if k in doc}


def judge_reachable(address: str, tcp: tuple[Reason, str], hello: dict[str, Any] | None, hello_error: str) -> Result:
    reason, error = tcp
    if reason is not Reason.NONE:
        message = {Reason.REFUSED: M.REFUSED, Reason.TIMEOUT: M.TIMEOUT, Reason.UNREACHABLE: M.UNREACHABLE}[reason]
        return message.result(address=address, details={"address": address, "error": error})
    if hello is None:
        return M.NOT_MONGODB.result(address=address, details={"address": address, "error": hello_error})
    evidence = hello_evidence(hello)
    role = "primary" if hello.get("isWritablePrimary") or hello.get("ismaster") else "not primary"
    return M.ANSWERS.result(address=address, wire=hello.get("maxWireVersion", "?"), role=role,
                            details={"address": address, **evidence})


def probe_reachable(ctx: "Context") -> Result:
    """TCP first (refused/timeout/unreachable need no driver), then MongoDB's hello."""
    from pymongo.errors import PyMongoError

    host, port = ctx.endpoint("mongodb")
    tcp = tcp_probe(host, port, ctx.net_timeout)
    hello, error = None, ""
    if tcp[0] is Reason.NONE:
        try:
            hello = observe_hello(ctx)
        except PyMongoError as exc:
            error = first_line(exc) or type(exc).__name__
    return judge_reachable(f"{host}:{port}", tcp, hello, error)


def answers_hello(host: str, port: int, timeout: float) -> bool:
    """Whether what listens on host:port answers MongoDB's hello (the installer's port validation)."""
    from pymongo.errors import PyMongoError

    client = make_client(host, port, timeout)
    try:
        return "maxWireVersion" in client.admin.command("hello")
    except PyMongoError:
        return False
    finally:
        client.close()


def observe_hello(ctx: "Context") -> dict[str, Any]:
    return ctx.shared("mongodb.hello", lambda: dict(anon_client(ctx).admin.command("hello")))


# ---------------------------------------------------------------------------------------------------
# authentication and authorization
# ---------------------------------------------------------------------------------------------------
def judge_auth(address: str, login: Login) -> Result:
    if login.ok:
        roles = [f"{r.get('role')}@{r.get('db')}" for r in login.status.get("authenticatedUserRoles", [])]
        return M.LOGIN_OK.result(user=login.user, address=address, mechanism=MECHANISM, auth_source=AUTH_DB,
                                 details={"user": login.user, "mechanism": MECHANISM, "auth_source": AUTH_DB,
                                          "roles": roles})
    details = {"user": login.user, "code": login.code, "error": login.error}
    if login.code == AUTH_FAILED:
        return M.LOGIN_REJECTED.result(user=login.user, auth_source=AUTH_DB, details=details)
    return M.LOGIN_NO_STATUS.result(user=login.user, code=login.code, details=details)


def probe_auth(ctx: "Context") -> Result:
    return guarded(lambda: judge_auth(address(ctx), app_login(ctx)), ctx)


def observe_anonymous_listdatabases(ctx: "Context") -> tuple[bool, int | None, str]:
    """Run listDatabases without credentials: (allowed, error code, error text)."""
    from pymongo.errors import OperationFailure

    try:
        anon_client(ctx).admin.command("listDatabases", nameOnly=True)
    except OperationFailure as exc:
        return False, exc.code, first_line((exc.details or {}).get("errmsg", str(exc)))
    return True, None, ""


def judge_authorization(address: str, allowed: bool, code: int | None, error: str) -> Result:
    if allowed:
        return M.AUTHORIZATION_OFF.result(address=address, details={"address": address,
                                                                    "anonymous_listDatabases": "allowed"})
    if code == UNAUTHORIZED:
        return M.AUTHORIZATION_ON.result(details={"address": address, "anonymous_listDatabases": "refused",
                                                  "code": code})
    return M.AUTHORIZATION_UNCLEAR.result(code=code, details={"address": address, "code": code, "error": error})


def probe_authorization(ctx: "Context") -> Result:
    def run() -> Result:
        allowed, code, error = observe_anonymous_listdatabases(ctx)
        return judge_authorization(address(ctx), allowed, code, error)

    return guarded(run, ctx)
