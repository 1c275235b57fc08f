"""Which server a login reaches (identity proofs before any write), and the access a check or fix uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sbops.messages import mysql as M
from sbops.model import Reason, Result
from sbops.probes.mysql.session import (ADMIN_KEY, ALL_ADDRESSES, APP_KEY, truthy, admin_target, app_session,
    connect, LoginError, Session)

if TYPE_CHECKING:
    from sbops.context import Context


class WrongServer(LoginError):
    """The admin login works, but reaches another server than the one the credentials file names."""

    def __init__(self, who: str, detail: str, reached: "ServerId") -> None:
        Exception.__init__(self, f"{who}: {detail}")
        self.who = who
        self.reason = Reason.WRONG_SERVER
        self.code = None
        self.detail = detail
        self.version = ""
        self.reached = reached


def admin_session(ctx: "Context") -> Session:
    """The admin login (shared), proven to reach the server the credentials file names: raises LoginError,
    or WrongServer when its socket leads to another server (then nothing may be read or written through it)."""

    def factory() -> Session:
        user = ctx.settings["mysql.admin_user"]
        target = admin_target(ctx)
        where = f"socket {target['unix_socket']}" if "unix_socket" in target else f"{target['host']}:{target['port']}"
        who = f"admin {user} via {where}"
        try:
            conn = connect(user=user, password=ctx.settings["mysql.admin_password"], timeout=ctx.net_timeout,
                           **target)
        except Exception as exc:  # noqa: BLE001
            raise LoginError(who, exc) from exc
        session = Session(conn, who)
        if "unix_socket" in target:  # TCP goes to the credentials file's Host:Port itself
            try:
                _prove_same_server(ctx, session, who)
            except Exception:
                session.close()
                raise
        return session

    return ctx.shared(ADMIN_KEY, factory)


# ======================================================================================================
# Which server a login reaches
# ======================================================================================================
@dataclass(frozen=True)
class ServerId:
    """What tells one server from another: MySQL's server_uuid; on MariaDB (none) the hostname and port."""

    hostname: str
    port: int
    uuid: str = ""
    bind_address: str = ""
    skip_networking: bool = False

    def describe(self) -> str:
        return f"the server on {self.hostname} port {self.port}" + (f" (server_uuid {self.uuid})" if self.uuid else "")

    def as_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "port": self.port, "server_uuid": self.uuid,
                "bind_address": self.bind_address, "skip_networking": self.skip_networking}


def observe_identity(session: Session) -> ServerId:
    row = session.rows("SELECT @@hostname AS h, @@port AS p, @@skip_networking AS sn")[0]
    uuid = ""
    if not session.is_mariadb:
        uuid = str(session.rows("SELECT @@server_uuid AS u")[0]["u"] or "")
    binds = session.rows("SHOW GLOBAL VARIABLES LIKE 'bind_address'")
    bind = str(binds[0]["value"]) if binds else ""
    return ServerId(str(row["h"]), int(row["p"]), uuid, bind, truthy(row["sn"]))


def identity_mismatch(admin: ServerId, app: ServerId | None, host: str, port: int, host_is_local: bool,
                      endpoint_silent: bool = False) -> str:
    """Pure: why the admin login's server is not the one the credentials file names, or '' when it is.

    With a working stackbill login both servers describe themselves (server_uuid, else hostname and port,
    which the server reports itself, so a forwarded port still matches). Without one, the socket's server
    must listen on the configured Host:Port: same port, this machine, and a bind address that covers Host.
    One exception: when nothing at all listens on Host:Port (`endpoint_silent`, connection refused), a server
    on this machine configured for that port but bound elsewhere (bind-address 127.0.0.1, the very fault
    mysql-config repairs) is the only server the credentials file can mean.
    """
    named = f"{host}:{port}, which the credentials file names"
    if app is not None:
        if admin.uuid and app.uuid:
            same = admin.uuid == app.uuid
        else:
            same = (admin.hostname, admin.port) == (app.hostname, app.port)
        return "" if same else f"it reaches {admin.describe()}, not {app.describe()} at {named}"
    if admin.skip_networking:
        return f"it reaches {admin.describe()}, which does not listen on TCP (skip_networking), not the server at {named}"
    if admin.port != port:
        return f"it reaches {admin.describe()}, not the server at {named}"
    if not host_is_local:
        return f"it reaches {admin.describe()} on this machine, not the server at {named} (another host)"
    addresses = {a.strip() for a in admin.bind_address.split(",") if a.strip()}
    if addresses and not addresses & {*ALL_ADDRESSES, host} and not (host == "localhost" and addresses & {"127.0.0.1", "::1"}) \
            and not endpoint_silent:
        return (f"it reaches {admin.describe()}, which listens on {admin.bind_address} only, not the server at "
                f"{named}")
    return ""


def _prove_same_server(ctx: "Context", admin: Session, who: str) -> None:
    """Raise WrongServer unless the admin session's server is the credentials file's server."""
    host, port = ctx.endpoint("mysql")
    reached = observe_identity(admin)
    app: ServerId | None
    silent = False
    try:
        app = observe_identity(app_session(ctx))
    except LoginError as err:  # the stackbill login is down: compare with Host:Port instead
        app, silent = None, err.reason is Reason.REFUSED
    except Exception:  # noqa: BLE001 - no credentials file
        app = None
    why = identity_mismatch(reached, app, host, port, ctx.is_local(host), silent)
    if why:
        raise WrongServer(who, why, reached)


@dataclass
class Access:
    """The login a check or fix can use, and why the others failed."""

    session: Session | None
    errors: dict[str, LoginError] = field(default_factory=dict)

    @property
    def why(self) -> str:
        return "; ".join(str(e) for e in self.errors.values())


UNANSWERED = (Reason.TIMEOUT, Reason.UNREACHABLE)


def _over_tcp_to(ctx: "Context", name: str) -> tuple[str, int] | None:
    """The Host:Port a login dials over TCP (the stackbill login always; the admin one without a socket)."""
    if name == "app":
        return ctx.endpoint("mysql")
    target = admin_target(ctx)
    return None if "unix_socket" in target else (str(target["host"]), int(target["port"]))


def any_session(ctx: "Context", prefer_admin: bool = False) -> Access:
    """The first login that works (stackbill first, or admin first), collecting the others' errors.

    A login over TCP to a Host:Port that the previous login found silent (timeout, unreachable) is not
    tried: it would only wait out a second timeout, and a fix's plan would take twice --timeout."""
    order: list[tuple[str, Callable[["Context"], Session]]] = [("app", app_session), ("admin", admin_session)]
    if prefer_admin:
        order.reverse()
    errors: dict[str, LoginError] = {}
    silent: dict[tuple[str, int], LoginError] = {}
    for name, opener in order:
        endpoint = _over_tcp_to(ctx, name)
        if endpoint is not None and endpoint in silent:
            errors[name] = silent[endpoint]
            continue
        try:
            return Access(opener(ctx), errors)
        except LoginError as exc:
            errors[name] = exc
            if endpoint is not None and exc.reason in UNANSWERED:
                silent[endpoint] = exc
        except Exception as exc:  # noqa: BLE001 - e.g. NeedsCredentials for the app login
            errors[name] = LoginError(name, exc)
    return Access(None, errors)


def app_login_error(ctx: "Context") -> LoginError | None:
    try:
        app_session(ctx)
    except LoginError as exc:
        return exc
    except Exception:  # noqa: BLE001 - no credentials: not a login error
        return None
    return None


def forget_sessions(ctx: "Context") -> None:
    """Before a restart drops them: the next use logs in afresh (fixflow re-checks with a fresh Context)."""
    ctx.forget(APP_KEY)
    ctx.forget(ADMIN_KEY)


def wrong_server(access: Access) -> WrongServer | None:
    """The admin login's WrongServer among the errors, if that is one reason no login works."""
    err = access.errors.get("admin")
    return err if isinstance(err, WrongServer) else None


def no_access_result(access: Access, what: str) -> Result:
    """Skip: no login that reaches the credentials file's server works; names the other server when the
    admin login reached one (reason wrong_server), so nobody trusts what it would have read."""
    logins = {k: {"reason": e.reason.value, "error": e.detail} for k, e in access.errors.items()}
    other = wrong_server(access)
    if other is not None:
        return M.WRONG_SERVER.result(what=what, why=access.why,
                                     details={"logins": logins, "reached": other.reached.as_dict()})
    return M.NO_LOGIN.result(what=what, why=access.why, details={"logins": logins})


def login_notes(access: Access) -> tuple[str, ...]:
    """A plan's note when it writes through the stackbill login because the admin login failed (or reached
    another server): the statements run with that user's grants."""
    err = access.errors.get("admin")
    return (f"using the stackbill login itself ({err})",) if access.session is not None and err is not None else ()


def no_access_blocker(access: Access, hint: str = "") -> str:
    """A plan's blocker when no login reaches the right server: a wrong server is refused, changing nothing."""
    if wrong_server(access) is not None:
        return (f"refusing to change anything: the admin login reaches another server than the credentials "
                f"file's ({access.why}); set mysql.admin_socket to that server's socket")
    return f"no MySQL login works ({access.why})" + (f"; {hint}" if hint else "")
