"""MongoDB client layer: pymongo clients and logins (shared per run), the usersInfo read, and `guarded`, which
turns a network error mid-probe into refused/timeout/unreachable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sbops.messages import mongodb as M
from sbops.model import Reason, Result
from sbops.probes.net import tcp_probe
from sbops.secret import Secret
from sbops.versions import MONGODB_SERIES

if TYPE_CHECKING:
    from sbops.context import Context


AUTH_FAILED = 18  # AuthenticationFailed: wrong password or no such user
UNAUTHORIZED = 13  # Unauthorized: not logged in, or the login lacks the privilege
REQUIRED_ROLES: tuple[tuple[str, str], ...] = (("root", "admin"), ("readWriteAnyDatabase", "admin"))
AUTH_DB = "admin"
MECHANISM = "SCRAM-SHA-256"
WILDCARDS = frozenset({"0.0.0.0", "::", "*"})
WANTED_BIND = "0.0.0.0"  # what the original installer writes
SUPPORTED_MAJOR = int(MONGODB_SERIES.split(".")[0])  # the installer pins mongodb-org 7.0 (sbops/versions.py)
MIN_VERSION = (5, 0)  # below this StackBill's driver and features are not supported

# Keys of ctx.shared() this layer uses; forgotten after a fix so the re-check observes afresh.
SHARED_KEYS = ("mongodb.anon", "mongodb.hello", "mongodb.login", "mongodb.admin")


# ---------------------------------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------------------------------
def client_options(timeout: float) -> dict[str, Any]:
    """Every client: one server, no discovery, and the run's network timeout for connect, read and selection."""
    ms = max(100, int(timeout * 1000))
    return {
        "directConnection": True,
        "serverSelectionTimeoutMS": ms,
        "connectTimeoutMS": ms,
        "socketTimeoutMS": ms,
        "appname": "sbops",
        "retryReads": False,
        "retryWrites": False,
    }


def make_client(host: str, port: int, timeout: float, username: str = "", password: Secret | None = None) -> Any:
    """A MongoClient (lazy: no I/O until the first command); with a username it logs in with SCRAM-SHA-256."""
    from pymongo import MongoClient

    options = client_options(timeout)
    if username:
        options.update(username=username, password=password.reveal() if password else "",
                       authSource=AUTH_DB, authMechanism=MECHANISM)
    return MongoClient(host, port, **options)


@dataclass
class Login:
    """The outcome of a login attempt: ok, or the server's error code (18 = rejected)."""

    user: str
    ok: bool
    code: int | None = None
    error: str = ""
    status: dict[str, Any] = field(default_factory=dict)  # connectionStatus.authInfo when ok
    client: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def try_login(host: str, port: int, timeout: float, username: str, password: Secret | None) -> Login:
    """Log in and run connectionStatus; a rejected login is a result, a network error is raised."""
    from pymongo.errors import OperationFailure

    client = make_client(host, port, timeout, username, password)
    try:
        answer = client.admin.command("connectionStatus")
    except OperationFailure as exc:
        client.close()
        return Login(username, False, exc.code, first_line(exc.details.get("errmsg") if exc.details else str(exc)))
    except Exception:
        client.close()
        raise
    return Login(username, True, status=dict(answer.get("authInfo", {})), client=client)


def first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def anon_client(ctx: "Context") -> Any:
    host, port = ctx.endpoint("mongodb")
    return ctx.shared("mongodb.anon", lambda: make_client(host, port, ctx.net_timeout))


def app_login(ctx: "Context") -> Login:
    """The StackBill user's login with the credentials file's Username/Password, shared by all checks."""
    host, port = ctx.endpoint("mongodb")
    service = ctx.service("mongodb")
    password = ctx.password("mongodb")
    return ctx.shared("mongodb.login", lambda: try_login(host, port, ctx.net_timeout, service.username, password))


def admin_login(ctx: "Context") -> Login | None:
    """The configured admin login (mongodb.admin_user), or None when none is configured (user or password)."""
    user = str(ctx.settings["mongodb.admin_user"] or "")
    password = ctx.settings["mongodb.admin_password"]
    if not user or not password:  # (pymongo's saslprep crashes on an empty password)
        return None
    host, port = ctx.endpoint("mongodb")
    return ctx.shared("mongodb.admin", lambda: try_login(host, port, ctx.net_timeout, user, password))


def forget(ctx: "Context") -> None:
    """Drop this layer's shared clients so later checks observe the server as it is now."""
    for key in SHARED_KEYS:
        ctx.forget(key)


def users_info(client: Any, username: str) -> dict[str, Any] | None:
    """The user's document in admin, or None when it does not exist."""
    answer = client.admin.command("usersInfo", {"user": username, "db": AUTH_DB})
    users = answer.get("users") or []
    return dict(users[0]) if users else None


def is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def address(ctx: "Context") -> str:
    host, port = ctx.endpoint("mongodb")
    return f"{host}:{port}"


def guarded(probe: Callable[[], Result], ctx: "Context") -> Result:
    """Run a probe that talks to MongoDB; a network error mid-way becomes refused/timeout/unreachable."""
    from pymongo.errors import ConnectionFailure

    try:
        return probe()
    except ConnectionFailure as exc:
        host, port = ctx.endpoint("mongodb")
        reason, error = tcp_probe(host, port, ctx.net_timeout)
        if reason is Reason.NONE:
            return M.STOPPED_ANSWERING.result(address=f"{host}:{port}", error=first_line(exc))
        return M.CONNECTION_LOST.result(reason=reason, address=f"{host}:{port}", error=error)
