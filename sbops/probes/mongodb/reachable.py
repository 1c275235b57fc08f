"""mongodb.reachable, mongodb.auth and mongodb.authorization: hello, the stackbill login, and whether an
unauthenticated client is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.model import Reason, Result, fail, ok, warn
from sbops.probes.mongodb.session import (AUTH_DB, AUTH_FAILED, MECHANISM, UNAUTHORIZED, _first_line, anon_client,
    Login, make_client)

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
        what = {Reason.REFUSED: "connection refused: mongod is not running or listens elsewhere",
                Reason.TIMEOUT: "no answer in time: a firewall drops the packets, or the host is down",
                Reason.UNREACHABLE: "the address cannot be reached (name does not resolve, or no route)"}[reason]
        return fail(reason, f"MongoDB at {address}: {what}", address=address, error=error)
    if hello is None:
        return fail(Reason.MISCONFIGURED, f"{address} accepts connections but does not answer MongoDB's hello "
                    f"(another program on the port?)", address=address, error=hello_error)
    evidence = hello_evidence(hello)
    role = "primary" if hello.get("isWritablePrimary") or hello.get("ismaster") else "not primary"
    return ok(f"MongoDB answers at {address} (wire version {hello.get('maxWireVersion', '?')}, {role})",
              address=address, **evidence)


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
        return ok(f"{login.user} logs in to {address} with {MECHANISM} (authSource {AUTH_DB})",
                  user=login.user, mechanism=MECHANISM, auth_source=AUTH_DB, roles=roles)
    if login.code == AUTH_FAILED:
        return fail(Reason.AUTH_FAILED,
                    f"MongoDB rejected {login.user}'s login (code 18): wrong password in the credentials file, "
                    f"or the user does not exist in {AUTH_DB}", user=login.user, code=login.code, error=login.error)
    return fail(Reason.ACCESS_DENIED, f"{login.user} could not run connectionStatus after logging in "
                f"(code {login.code})", user=login.user, code=login.code, error=login.error)


def observe_anonymous_listdatabases(ctx: "Context") -> tuple[bool, int | None, str]:
    """Run listDatabases without credentials: (allowed, error code, error text)."""
    from pymongo.errors import OperationFailure

    try:
        anon_client(ctx).admin.command("listDatabases", nameOnly=True)
    except OperationFailure as exc:
        return False, exc.code, _first_line((exc.details or {}).get("errmsg", str(exc)))
    return True, None, ""


def judge_authorization(address: str, allowed: bool, code: int | None, error: str) -> Result:
    if allowed:
        return fail(Reason.INSECURE, f"authorization is not enabled: anyone who reaches {address} can read and "
                    f"change every database without a password", address=address, anonymous_listDatabases="allowed")
    if code == UNAUTHORIZED:
        return ok("MongoDB refuses unauthenticated clients (listDatabases: code 13 Unauthorized)",
                  address=address, anonymous_listDatabases="refused", code=code)
    return warn(Reason.MISCONFIGURED, f"unexpected answer to an unauthenticated listDatabases (code {code})",
                address=address, code=code, error=error)
