"""MySQL 8 / MariaDB 10.11: observe (logins, greeting, variables, users, host cache), desired state
(ARCHITECTURE.md's stackbill.cnf, the installer's users and databases), pure differs and judgements,
and appliers.

PyMySQL is imported inside functions only, so `sbops --help` never loads it.
Two logins are shared per run through ctx.shared, each with the lock that guards its connection:
  "mysql.app"   the stackbill user with the credentials file's password, over TCP to its Host:Port
  "mysql.admin" settings mysql.admin_user/admin_password, over mysql.admin_socket when that socket
                exists (a real server's root uses unix_socket authentication), else over TCP
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sbops.model import Change, Plan, Reason, Result, fail, ok, skip, warn
from sbops.probes import mysql_cnf
from sbops.probes.net import socket_reason
from sbops.secret import MASK, Secret

if TYPE_CHECKING:
    from sbops.context import Context

APP_KEY = "mysql.app"
ADMIN_KEY = "mysql.admin"

# MySQL server error codes (match on codes, never on message text).
ER_CON_COUNT_ERROR = 1040
ER_ACCESS_DENIED_ERROR = 1045
ER_HOST_IS_BLOCKED = 1129
ER_HOST_NOT_PRIVILEGED = 1130
ER_TABLEACCESS_DENIED_ERROR = 1142
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_ACCESS_DENIED_NO_PASSWORD = 1698  # MySQL: root via unix_socket/auth_socket from a non-root OS user
ER_NONEXISTING_GRANT = 1141
CR_CONN_HOST_ERROR = 2003
CR_SERVER_LOST = 2013
CR_SERVER_GONE = 2006

CODE_REASONS: dict[int, Reason] = {
    ER_ACCESS_DENIED_ERROR: Reason.AUTH_FAILED,
    ER_ACCESS_DENIED_NO_PASSWORD: Reason.AUTH_FAILED,
    ER_HOST_NOT_PRIVILEGED: Reason.AUTH_FAILED,
    ER_HOST_IS_BLOCKED: Reason.HOST_BLOCKED,
    ER_CON_COUNT_ERROR: Reason.TOO_MANY_CONNECTIONS,
}

APP_USER_HOSTS = ("%", "localhost")
DATABASES = ("stackbill", "configuration")
NATIVE = "mysql_native_password"
CNF_NAME = "stackbill.cnf"

# The drop-in, as ARCHITECTURE.md gives it (same name, same lines), with one header line.
# Named stackbill.cnf (not 99-stackbill.cnf): it is the file the installer wrote, so sbops replaces that
# one instead of adding a second source of truth, and "s" already sorts after the distro's files
# (50-server.cnf on MariaDB, mysqld.cnf on MySQL: digits and "m" come before "s"), so it wins.
STACKBILL_CNF = """# Managed by sbops (fix mysql-config); the StackBill installer's settings from ARCHITECTURE.md.
[mysqld]
# Allow connections from any IP (for K8s pods)
bind-address = 0.0.0.0

# SQL mode for StackBill compatibility
sql_mode = NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES

# Connection timeouts
wait_timeout = 28800           # 8 hours
interactive_timeout = 230400   # 64 hours
connect_timeout = 36000        # 10 hours

# Connection limits
max_connections = 1000
max_connect_errors = 100000

# Performance optimizations
skip-host-cache
skip-name-resolve

# Required for Flyway migrations
log_bin_trust_function_creators = 1
"""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.%:-]+$")


# ======================================================================================================
# Errors: classify what a login or a probe hit
# ======================================================================================================
def error_code(exc: BaseException) -> int | None:
    """The MySQL/client error number of a PyMySQL exception (args[0]), else None."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int) and not isinstance(exc, OSError):
        return args[0]
    return None


def os_error_of(exc: BaseException) -> BaseException | None:
    """The socket error under a PyMySQL 2003/2013 (PyMySQL keeps it as original_exception or __context__)."""
    if isinstance(exc, OSError):
        return exc
    for candidate in (getattr(exc, "original_exception", None), exc.__cause__, exc.__context__):
        if isinstance(candidate, OSError):
            return candidate
    return None


def reason_for_os_error(exc: BaseException | None) -> Reason:
    return socket_reason(exc) if exc is not None else Reason.UNREACHABLE


def classify(exc: BaseException) -> Reason:
    """Reason for a failed login or query: by server error code, else by the socket error underneath."""
    code = error_code(exc)
    if code in CODE_REASONS:
        return CODE_REASONS[code]
    if code in (ER_TABLEACCESS_DENIED_ERROR, ER_SPECIFIC_ACCESS_DENIED):
        return Reason.ACCESS_DENIED
    if code is None or code in (CR_CONN_HOST_ERROR, CR_SERVER_LOST, CR_SERVER_GONE):
        under = os_error_of(exc)
        if under is not None:
            return reason_for_os_error(under)
        if code in (CR_SERVER_LOST, CR_SERVER_GONE):
            return Reason.REFUSED  # the server closed the connection without a word
    return Reason.UNREACHABLE


def describe_error(exc: BaseException) -> str:
    """One line: '(1045) Access denied ...' or the socket error."""
    code = error_code(exc)
    text = str(exc.args[1]) if code is not None and len(exc.args) > 1 else str(exc)
    return f"({code}) {text}" if code is not None else (text or type(exc).__name__)


# ======================================================================================================
# Server versions
# ======================================================================================================
def strip_version(version: str) -> str:
    """Drop MariaDB's replication-compatibility prefix '5.5.5-'."""
    return version[len("5.5.5-"):] if version.startswith("5.5.5-") else version


def is_mariadb_version(version: str) -> bool:
    return "mariadb" in version.lower()


def version_tuple(version: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(p) for p in match.groups()) if match else (0, 0, 0)


def parse_greeting(data: bytes) -> str | None:
    """Pure: the server version of a MySQL/MariaDB initial handshake packet, "" for an error packet a MySQL
    server sends instead (blocked host, too many connections), None when the bytes are not MySQL's."""
    if len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    payload = data[4:4 + length]
    if not payload or length > 0xFFFF:
        return None
    if payload[0] == 0xFF and len(payload) >= 3:
        return ""
    if payload[0] != 10 or b"\0" not in payload[1:]:
        return None
    try:
        return strip_version(payload[1:payload.index(b"\0", 1)].decode("ascii"))
    except UnicodeDecodeError:
        return None


def greeting(host: str, port: int, timeout: float) -> str | None:
    """Read the greeting of whatever listens on host:port (parse_greeting's answer; None on silence).

    Only used on loopback addresses, which MySQL leaves out of its host cache: a connection that hangs up
    after the greeting counts as a connection error (max_connect_errors) for any other client address.
    """
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(512)
    except OSError:
        return None
    return parse_greeting(data)


# ======================================================================================================
# Sessions
# ======================================================================================================
class Session:
    """One PyMySQL connection shared by the checks of a run; the lock serialises its use across threads."""

    def __init__(self, conn: Any, label: str) -> None:
        self.conn = conn
        self.label = label
        self.lock = threading.Lock()
        self.version = strip_version(str(conn.get_server_info() or ""))

    @property
    def is_mariadb(self) -> bool:
        return is_mariadb_version(self.version)

    def rows(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                return [{k.lower(): v for k, v in row.items()} for row in cur.fetchall()]

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> None:
        with self.lock:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - already gone
            pass


def connect(*, user: str, password: Secret | None, timeout: float, host: str = "", port: int = 3306,
            unix_socket: str = "", source_address: str = "") -> Any:
    """A PyMySQL connection with connect, read and write timeouts; autocommit.

    On failure the exception carries `server_version` when the server's greeting arrived (the login
    was refused after it), which is how mysql.reachable knows the server answered.
    """
    import pymysql
    import pymysql.connections
    import pymysql.cursors

    kwargs: dict[str, Any] = dict(
        user=user, password=password.reveal() if password else "", connect_timeout=timeout,
        read_timeout=timeout, write_timeout=timeout, autocommit=True, charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )
    if unix_socket:
        kwargs["unix_socket"] = unix_socket
    else:
        kwargs.update(host=host, port=port)
        if source_address:
            kwargs["bind_address"] = source_address
    conn = pymysql.connections.Connection(defer_connect=True, **kwargs)
    try:
        conn.connect()
    except Exception as exc:
        exc.server_version = strip_version(str(getattr(conn, "server_version", "") or ""))  # type: ignore[attr-defined]
        raise
    return conn


class LoginError(Exception):
    """A login failed; `reason` classifies it and `code` keeps the server's error number."""

    def __init__(self, who: str, exc: BaseException) -> None:
        self.who = who
        self.reason = classify(exc)
        self.code = error_code(exc)
        self.detail = describe_error(exc)
        self.version = str(getattr(exc, "server_version", "") or "")
        super().__init__(f"{who}: {self.detail}")


def app_session(ctx: "Context") -> Session:
    """The stackbill login (shared): raises LoginError (or NeedsCredentials)."""

    def factory() -> Session:
        host, port = ctx.endpoint("mysql")
        user = ctx.service("mysql").username or "stackbill"
        password = ctx.password("mysql")
        who = f"{user}@{host}:{port}"
        try:
            conn = connect(user=user, password=password, timeout=ctx.net_timeout, host=host, port=port,
                           source_address=ctx.settings["mysql.source_address"])
        except Exception as exc:  # noqa: BLE001 - classified for the checks
            raise LoginError(who, exc) from exc
        return Session(conn, who)

    return ctx.shared(APP_KEY, factory)


def admin_target(ctx: "Context") -> dict[str, Any]:
    """Where the admin login goes: the socket when it exists, else TCP to the credentials file's host."""
    sock = str(ctx.settings["mysql.admin_socket"] or "")
    if sock and Path(sock).exists():
        return {"unix_socket": sock}
    host, port = ctx.endpoint("mysql")
    return {"host": host, "port": port, "source_address": ctx.settings["mysql.source_address"]}


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
    return ServerId(str(row["h"]), int(row["p"]), uuid, bind, _truthy(row["sn"]))


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


def any_session(ctx: "Context", prefer_admin: bool = False) -> Access:
    """The first login that works (stackbill first, or admin first), collecting the others' errors."""
    order: list[tuple[str, Callable[["Context"], Session]]] = [("app", app_session), ("admin", admin_session)]
    if prefer_admin:
        order.reverse()
    errors: dict[str, LoginError] = {}
    for name, opener in order:
        try:
            return Access(opener(ctx), errors)
        except LoginError as exc:
            errors[name] = exc
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
        return skip(Reason.WRONG_SERVER, f"cannot {what}: {access.why}", logins=logins, reached=other.reached.as_dict())
    return skip(Reason.NO_ACCESS, f"cannot {what}: no MySQL login works ({access.why})", logins=logins)


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
    ps = _truthy(var["ps"])
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
    return HostCache(ps, int(var["mce"]), _truthy(var["snr"]), int(var["hcs"]), rows, why)


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
            return fail(Reason.HOST_BLOCKED, f"MySQL blocks {len(found)} host(s) after too many connection errors: "
                                             f"{names}", **evidence)
        if own_blocked:
            return fail(Reason.HOST_BLOCKED, f"MySQL blocks this machine ({own_who}: error 1129)", **evidence)
        if cache.host_cache_size == 0:
            return ok("the host cache is off (skip-host-cache): MySQL cannot block hosts", **evidence)
        return ok(f"no host is blocked ({len(cache.rows)} in the host cache, max_connect_errors "
                  f"{cache.max_connect_errors})", **evidence)
    if own_blocked:
        return fail(Reason.HOST_BLOCKED, f"MySQL blocks this machine ({own_who}: error 1129); other blocked hosts "
                                         f"cannot be listed: {no_view_why}", **own)
    if cache is not None and cache.host_cache_size == 0:
        return ok("the host cache is off (host_cache_size 0): MySQL cannot block hosts", **own,
                  host_cache_size=0)
    if cache is not None:
        return warn(Reason.NO_ACCESS, f"cannot list blocked pod hosts: {cache.why_no_rows}; sbops's own login "
                                      "is not blocked", **own, performance_schema=cache.performance_schema,
                    max_connect_errors=cache.max_connect_errors)
    return skip(Reason.NO_ACCESS, f"cannot tell whether hosts are blocked: {no_view_why}", **own)


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


# ======================================================================================================
# mysql.config: effective global variables against stackbill.cnf, and the files the server reads
# ======================================================================================================
MIN_CONNECTIONS = 1000
MIN_CONNECT_ERRORS = 100000
ALL_ADDRESSES = ("0.0.0.0", "*", "::")
SQL_MODES = ("NO_ENGINE_SUBSTITUTION", "STRICT_TRANS_TABLES")
DROPIN_NAMES = ("99-stackbill.cnf", CNF_NAME)  # the current script's name first, then the earlier one
DROPIN_DIRS = ("/etc/mysql/mariadb.conf.d", "/etc/mysql/mysql.conf.d", "/etc/mysql/conf.d")


@dataclass(frozen=True)
class Rule:
    variable: str
    want: str  # the value stackbill.cnf sets (also what SET GLOBAL applies)
    test: str  # set | min | equal | on | bind | hostcache
    dynamic: bool  # settable with SET GLOBAL; else only a restart applies it
    option: str = ""  # the stackbill.cnf option that sets it, when its name differs from `variable`
    set_variable: str = ""  # what SET GLOBAL changes, when it differs from `variable`
    set_value: str = ""

    def describe(self) -> str:
        return {"set": f"exactly {self.want}", "min": f">= {self.want}", "on": "ON",
                "bind": "0.0.0.0 or the server IP", "hostcache": "ON (skip-host-cache)"}.get(self.test, self.want)


RULES: tuple[Rule, ...] = (
    Rule("sql_mode", ",".join(SQL_MODES), "set", True),
    Rule("max_connections", str(MIN_CONNECTIONS), "min", True),
    Rule("max_connect_errors", str(MIN_CONNECT_ERRORS), "min", True),
    Rule("log_bin_trust_function_creators", "ON", "on", True),
    Rule("wait_timeout", "28800", "equal", True),
    Rule("interactive_timeout", "230400", "equal", True),
    Rule("connect_timeout", "36000", "equal", True),
    Rule("skip_name_resolve", "ON", "on", False),
    # skip-host-cache: MySQL 8 shows it as host_cache_size 0; MariaDB keeps host_cache_size and only the
    # option files or the command line tell (probe_config fills the pseudo-variable from them). Turning
    # the host cache off online is SET GLOBAL host_cache_size = 0.
    Rule("skip_host_cache", "ON", "hostcache", True, option="skip_host_cache", set_variable="host_cache_size",
         set_value="0"),
    Rule("bind_address", "0.0.0.0", "bind", False),
)


@dataclass(frozen=True)
class Finding:
    variable: str
    observed: str | None
    wanted: str
    dynamic: bool
    set_value: str
    set_variable: str = ""
    missing: tuple[str, ...] = ()  # sql_mode: modes the server lacks
    extra: tuple[str, ...] = ()  # sql_mode: modes the server has beyond the document's

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variable": self.variable, "observed": self.observed, "wanted": self.wanted,
                               "dynamic": self.dynamic}
        if self.missing or self.extra:
            out.update(missing=list(self.missing), extra=list(self.extra))
        return out

    def text(self) -> str:
        if self.missing or self.extra:
            parts = ([f"lacks {','.join(self.missing)}"] if self.missing else []) + \
                    ([f"has extra {','.join(self.extra)}"] if self.extra else [])
            return f"{self.variable} {' and '.join(parts)} (want {self.wanted})"
        return f"{self.variable}={self.observed if self.observed is not None else '(absent)'} (want {self.wanted})"


def _truthy(value: Any) -> bool:
    return str(value).strip().upper() in ("1", "ON", "TRUE", "YES")


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "localhost")


def sql_modes(value: str) -> list[str]:
    return [m.strip().upper() for m in value.split(",") if m.strip()]


def sql_mode_difference(observed: str, want: Sequence[str] = SQL_MODES) -> tuple[list[str], list[str]]:
    """Pure: (missing, extra) modes of an observed sql_mode against the exact set wanted."""
    have = sql_modes(observed)
    return [m for m in want if m not in have], [m for m in have if m not in want]


def rule_holds(rule: Rule, observed: str, server_ip: str = "") -> bool:
    """Pure: does the observed value satisfy the rule?"""
    if rule.test == "set":
        missing, extra = sql_mode_difference(observed, rule.want.split(","))
        return not missing and not extra
    if rule.test == "min":
        try:
            return int(observed) >= int(rule.want)
        except ValueError:
            return False
    if rule.test in ("on", "hostcache"):
        return _truthy(observed)
    if rule.test == "bind":
        # every address, or the server's own (pods reach it there); a loopback one never serves pods
        allowed = {*ALL_ADDRESSES, *([server_ip] if server_ip and not _loopback(server_ip) else [])}
        addresses = {a.strip() for a in observed.split(",") if a.strip()}
        return bool(addresses) and addresses <= allowed
    return observed.strip() == rule.want


def config_findings(observed: dict[str, str], server_ip: str = "", rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Pure differ: every rule the server's effective globals break. A variable that is absent from
    `observed` because it cannot be seen (skip_host_cache on a remote MariaDB) is left out, not failed."""
    out = []
    for rule in rules:
        value = observed.get(rule.variable)
        if value is None and rule.test == "hostcache":
            continue
        if value is None or not rule_holds(rule, str(value), server_ip):
            missing, extra = sql_mode_difference(str(value or ""), rule.want.split(",")) if rule.test == "set" else ([], [])
            out.append(Finding(rule.variable, None if value is None else str(value), rule.describe(), rule.dynamic,
                               rule.set_value or rule.want, rule.set_variable, tuple(missing), tuple(extra)))
    return out


def set_global_sql(finding: Finding) -> str:
    """SET GLOBAL for a dynamic finding (values are constants from RULES, never user input)."""
    value = finding.set_value
    literal = value if re.fullmatch(r"\d+|ON|OFF", value) else f"'{value}'"
    return f"SET GLOBAL {finding.set_variable or finding.variable} = {literal}"


def observe_variables(session: Session, names: Iterable[str] | None = None) -> dict[str, str]:
    wanted = sorted(set(names or (r.variable for r in RULES)) | {"version", "version_comment", "host_cache_size",
                                                                  "pid_file"})
    placeholders = ", ".join(["%s"] * len(wanted))
    rows = session.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", wanted)
    return {str(r["variable_name"]).lower(): str(r["value"]) for r in rows}


# -- the option files the server reads ------------------------------------------------------------------
@dataclass(frozen=True)
class Files:
    """What sbops saw of the server's option files (only for a server on this machine)."""

    chain: mysql_cnf.Chain
    argv: tuple[str, ...]  # the server's command line ('' when unreadable)
    unread: tuple[str, ...]  # StackBill drop-ins that exist where nothing includes them
    groups: frozenset[str]

    def effective(self) -> dict[str, mysql_cnf.Setting]:
        return self.chain.effective(self.groups)

    def sets(self, option: str) -> bool:
        """Whether the server read `option` as a flag that is on (files, or its command line)."""
        for arg in self.argv[1:]:
            name, eq, value = arg.lstrip("-").partition("=")
            if arg.startswith("--") and mysql_cnf.normalise(name) == option and (not eq or _truthy(value)):
                return True
        setting = self.effective().get(option)
        return setting is not None and (setting.value is None or _truthy(setting.value))

    def as_dict(self) -> dict[str, Any]:
        return {"read": list(self.chain.files), "included_dirs": list(self.chain.dirs),
                "unread_dropins": list(self.unread), "problems": list(self.chain.problems)}


SERVER_PROGRAMS = ("mysqld", "mariadbd", "mysqld-debug")


def server_argv(pid_file: str, read: Callable[[Path], str | None]) -> list[str] | None:
    """The server's command line from its pid file and /proc (None when either is unreadable, or when that
    pid is not a MySQL server here: a server in another pid namespace, a stale pid file)."""
    try:
        text = read(Path(pid_file)) if pid_file else None
        if not text or not text.strip().isdigit():
            return None
        raw = read(Path(f"/proc/{text.strip()}/cmdline"))
    except OSError:
        return None
    argv = [a for a in raw.split("\0") if a] if raw else []
    if not argv or Path(argv[0]).name not in SERVER_PROGRAMS:
        return None
    return argv


def dropin_dirs(ctx: "Context") -> list[str]:
    chosen = str(ctx.settings["mysql.config_dir"] or "")
    return list(dict.fromkeys([*([chosen] if chosen else []), *DROPIN_DIRS]))


def unread_dropins(chain: mysql_cnf.Chain, dirs: Iterable[str], exists: Callable[[str], bool]) -> list[str]:
    """Pure (given `exists`): StackBill drop-ins that exist but that the chain never reads."""
    out = []
    for directory in dirs:
        for name in DROPIN_NAMES:
            path = f"{directory.rstrip('/')}/{name}"
            if exists(path) and not chain.reads(path):
                out.append(path)
    return out


def observe_files(ctx: "Context", variables: dict[str, str]) -> Files | None:
    """Follow the server's option files from how it was started (its --defaults-file, else the defaults).
    None when one of them cannot be read (not root): then nothing is claimed about what the server reads."""
    unreadable: list[str] = []

    def read(path: str) -> str | None:
        try:
            return ctx.runner.read_file(Path(path))
        except OSError:  # PermissionError, IsADirectoryError: it exists, sbops cannot see it
            unreadable.append(path)
            return None

    chosen = str(ctx.settings["mysql.defaults_file"] or "")
    argv = server_argv(variables.get("pid_file", ""), ctx.runner.read_file) or []
    roots = [chosen] if chosen else (mysql_cnf.default_files(argv) if argv else None)
    if roots is None:
        roots = list(mysql_cnf.DEFAULT_FILES)
    chain = mysql_cnf.read_chain(roots, read, mysql_cnf.disk_lister)
    if unreadable or any("not a readable directory" in p for p in chain.problems):
        return None
    unread = unread_dropins(chain, dropin_dirs(ctx), lambda p: Path(p).is_file())
    version = variables.get("version", "")
    if "mariadb" in variables.get("version_comment", "").lower() and "mariadb" not in version.lower():
        version += "-MariaDB"
    return Files(chain, tuple(argv), tuple(unread), mysql_cnf.mysqld_groups(version))


def with_file_facts(observed: dict[str, str], files: Files | None) -> dict[str, str]:
    """The observed variables plus the pseudo-variable skip_host_cache: ON when host_cache_size is 0 or the
    server read skip-host-cache; OFF when its files are visible and do not; absent when they are not."""
    out = dict(observed)
    if observed.get("host_cache_size", "").strip() == "0" or (files is not None and files.sets("skip_host_cache")):
        out["skip_host_cache"] = "ON"
    elif files is not None:
        out["skip_host_cache"] = "OFF"
    return out


def judge_config(findings: list[Finding], observed: dict[str, str], files: Files | None = None) -> Result:
    """Pure: a StackBill drop-in that nothing reads fails (not_read) even when the live values are right:
    the next restart loses them. Otherwise every finding on the live values fails (misconfigured)."""
    evidence: dict[str, Any] = {"variables": {k: v for k, v in observed.items() if k in {r.variable for r in RULES}}}
    if files is not None:
        evidence["files"] = files.as_dict()
    else:
        evidence["files"] = None
    evidence["findings"] = [f.as_dict() for f in findings]
    if files is not None and files.unread:
        read = ", ".join(files.chain.files) or "no file"
        return fail(Reason.NOT_READ, f"{files.unread[0]} is never read: nothing in the server's option files "
                                     f"({read}) includes its directory"
                    + (f"; and {len(findings)} setting(s) differ" if findings else ""), **evidence)
    if not findings:
        if "skip_host_cache" not in observed:  # a MariaDB whose option files sbops cannot see
            return ok(f"the {len(RULES) - 1} settings sbops can see match stackbill.cnf (skip-host-cache shows only in "
                      "the option files of a MariaDB, which sbops cannot read from here)", **evidence)
        return ok(f"all {len(RULES)} settings match stackbill.cnf", **evidence)
    listed = ", ".join(f.text() for f in findings[:4]) + (", ..." if len(findings) > 4 else "")
    return fail(Reason.MISCONFIGURED, f"{len(findings)} MySQL setting(s) differ from stackbill.cnf: {listed}",
                **evidence)


def local_files(ctx: "Context", observed: dict[str, str]) -> Files | None:
    host, _ = ctx.endpoint("mysql")
    return observe_files(ctx, observed) if ctx.is_local(host) else None


def probe_config(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "read the server's variables")
    observed = observe_variables(access.session)
    files = local_files(ctx, observed)
    observed = with_file_facts(observed, files)
    return judge_config(config_findings(observed, ctx.server_ip), observed, files)


def config_dir(ctx: "Context", mariadb: bool) -> Path:
    chosen = ctx.settings["mysql.config_dir"]
    if chosen:
        return Path(chosen)
    return Path("/etc/mysql/mariadb.conf.d" if mariadb else "/etc/mysql/mysql.conf.d")


def service_name(ctx: "Context", mariadb: bool) -> str:
    return ctx.settings["mysql.service"] or ("mariadb" if mariadb else "mysql")


# -- what to write --------------------------------------------------------------------------------------
def cnf_lines(text: str = STACKBILL_CNF) -> dict[str, str]:
    """Pure: option name -> its line in stackbill.cnf (`sql_mode = ...`, `skip-host-cache`)."""
    return {e.name: text.splitlines()[e.line - 1].strip() for e in mysql_cnf.parse_cnf(text) if e.kind == "option"}


def option_of(rule: Rule) -> str:
    return rule.option or rule.variable


def file_findings(files: Files, server_ip: str) -> list[Rule]:
    """Pure-ish: the rules the server's option files do not satisfy (what a restart would bring back)."""
    effective = files.effective()
    values: dict[str, str] = {}
    for rule in RULES:
        setting = effective.get(option_of(rule))
        if setting is not None:
            values[rule.variable] = "ON" if setting.value is None else setting.value
    values["skip_host_cache"] = "ON" if files.sets("skip_host_cache") else "OFF"
    return [r for r in RULES if r.variable not in values or not rule_holds(r, values[r.variable], server_ip)]


def merge_cnf(text: str, lines: dict[str, str], groups: Iterable[str] = ("mysqld",)) -> str:
    """Pure: `text` with the given options set: an existing line of the option (in a mysqld group) is
    replaced in place, the others are appended to the first [mysqld] group (created when there is none).
    Everything else in the file (comments, other options, other groups) is kept as it is."""
    wanted = set(groups)
    out: list[str] = []
    group = ""
    done: set[str] = set()
    insert_at: int | None = None
    for raw in text.splitlines():
        entries = mysql_cnf.parse_cnf(raw)
        entry = entries[0] if entries else None
        if entry is not None and entry.kind == "group":
            if group == "mysqld" and insert_at is None:
                insert_at = len(out)
            group = entry.name
        if entry is not None and entry.kind == "option" and group in wanted and entry.name in lines:
            out.append(lines[entry.name])
            done.add(entry.name)
            continue
        out.append(raw)
    if group == "mysqld" and insert_at is None:
        insert_at = len(out)
    missing = [line for name, line in lines.items() if name not in done]
    if missing:
        if insert_at is None:
            out += ([""] if out and out[-1].strip() else []) + ["[mysqld]"] + missing
        else:
            while insert_at > 0 and not out[insert_at - 1].strip():
                insert_at -= 1  # before the blank lines that end the group
            out[insert_at:insert_at] = missing
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class FileTarget:
    """Where the settings go, and whether an !includedir must be added for the server to read them."""

    path: str
    adopted: bool  # an existing StackBill drop-in
    include_in: str = ""  # the option file an !includedir line goes into ('' when not needed)
    include_dir: str = ""
    blocker: str = ""


def choose_target(files: Files, default_dir: str, dir_exists: Callable[[str], bool]) -> FileTarget:
    """Pure (given `dir_exists`): adopt the StackBill drop-in the server reads last; else one that exists
    unread (and include its directory); else a new stackbill.cnf in the drop-in directory."""
    read = [f for f in files.chain.files if f.rsplit("/", 1)[-1] in DROPIN_NAMES]
    if read:
        return FileTarget(read[-1], adopted=True)
    if files.unread:
        path = files.unread[0]
        directory = path.rsplit("/", 1)[0]
        adopted = True
    else:
        directory = default_dir.rstrip("/")
        path = f"{directory}/{CNF_NAME}"
        adopted = False
        if files.chain.includes_dir(directory):
            return FileTarget(path, adopted)
        if not dir_exists(directory):
            return FileTarget(path, adopted, blocker=f"{directory} does not exist and no drop-in directory is read: "
                                                     "set mysql.config_dir to a directory of the server's my.cnf chain")
    root = files.chain.first_file
    if root is None:
        return FileTarget(path, adopted, blocker="the server reads no option file (started with --no-defaults, "
                                                 "or none exists): set mysql.defaults_file")
    return FileTarget(path, adopted, include_in=root, include_dir=directory)


def later_overrides(files: Files, target: str, options: Iterable[str]) -> list[str]:
    """Option files read after `target` that set one of `options` again (they would win)."""
    out = []
    names = set(options)
    order = {f: i for i, f in enumerate(files.chain.files)}
    position = order.get(target, len(order))
    for s in files.chain.settings:
        if s.group in files.groups and s.name in names and order.get(s.file, -1) > position and s.file != target:
            out.append(f"{s.file}:{s.line} sets {s.name}")
    return out


def plan_config(ctx: "Context", allow_restart: bool) -> Plan:
    from sbops.diff import file_diff
    from sbops.runner import display, service_restart_argv

    host, _ = ctx.endpoint("mysql")
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access),))
    session = access.session
    variables = observe_variables(session)
    local = ctx.is_local(host)
    files = observe_files(ctx, variables) if local else None
    observed = with_file_facts(variables, files)
    findings = config_findings(observed, ctx.server_ip)
    if not findings and not (files is not None and files.unread):
        return Plan(nothing_to_do="the server's effective settings already match stackbill.cnf")
    if not local:
        return Plan(blockers=(f"MySQL at {host} is not on this machine: run sbops on the database server "
                              "to write stackbill.cnf there",))
    if files is None:
        return Plan(blockers=("cannot read the server's option files (run as root, or set mysql.defaults_file): "
                              "sbops does not write settings where it cannot tell whether the server reads them",))
    target = choose_target(files, str(config_dir(ctx, session.is_mariadb)), lambda d: Path(d).is_dir())
    if target.blocker:
        return Plan(blockers=(target.blocker,))
    changes: list[Change] = []
    notes: list[str] = []
    if target.include_in:
        before = ctx.runner.read_file(Path(target.include_in)) or ""
        after = mysql_cnf.with_includedir(before, target.include_dir)
        changes.append(Change(
            f"add `!includedir {target.include_dir}` to {target.include_in}: nothing the server reads includes "
            "that directory, so a drop-in there is ignored",
            (), lambda: ctx.runner.write_file(Path(target.include_in), after, 0o644),
            (file_diff(target.include_in, before, after, ctx.secrets()),)))
    current = ctx.runner.read_file(Path(target.path))
    if target.adopted and current is not None:
        wanted = cnf_lines()
        lacking = file_findings(files, ctx.server_ip) if not target.include_in else list(RULES)
        new_text = merge_cnf(current, {option_of(r): wanted[option_of(r)] for r in lacking})
    else:
        new_text = STACKBILL_CNF
    if current != new_text:
        what = "update the settings in" if target.adopted else "write"
        survive = "so they survive restarts" if not target.include_in else "read once the include is added"
        changes.append(Change(f"{what} {target.path} (0644) with ARCHITECTURE.md's settings, {survive}", (),
                              lambda: ctx.runner.write_file(Path(target.path), new_text, 0o644),
                              (file_diff(target.path, current, new_text, ctx.secrets()),)))
    overrides = later_overrides(files, target.path, (option_of(r) for r in RULES))
    if overrides:
        notes.append("option files read after " + target.path + " set the same options again and win: "
                     + "; ".join(overrides[:4]))
    dynamic = [f for f in findings if f.dynamic]
    static = [f for f in findings if not f.dynamic]
    if dynamic:
        statements = tuple(set_global_sql(f) for f in dynamic)

        def set_globals() -> None:
            for sql in statements:
                session.execute(sql)

        changes.append(Change("apply online (SQL through the admin login): "
                              + ", ".join(f.set_variable or f.variable for f in dynamic), statements, set_globals))
    if static:
        names = ", ".join(f.variable for f in static)
        argv = service_restart_argv(service_name(ctx, session.is_mariadb), ctx.settings["mysql.restart_command"])
        if allow_restart:
            def restart() -> None:
                forget_sessions(ctx)
                result = ctx.runner.run(argv, timeout=180)
                if not result.ok:
                    raise RuntimeError(f"restart failed: {result.one_line_error()}")

            changes.append(Change(f"restart MySQL so {names} take effect (connections drop briefly)",
                                  (display(argv),), restart))
        else:
            notes.append(f"restart pending: {names} only change when MySQL restarts; the re-check will still fail "
                         f"on them until then (run again with --restart, or `{display(argv)}`)")
    return Plan(changes=tuple(changes), notes=tuple(notes))


# ======================================================================================================
# mysql.schema
# ======================================================================================================
def wanted_databases(ctx: "Context") -> tuple[str, ...]:
    extra = ctx.service("mysql").database
    return tuple(dict.fromkeys([*DATABASES, *([extra] if extra else [])]))


def missing_databases(present: Iterable[str], wanted: Iterable[str]) -> list[str]:
    have = {p.lower() for p in present}
    return [w for w in wanted if w.lower() not in have]


def observe_databases(session: Session) -> list[str]:
    return [str(r["schema_name"]) for r in session.rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")]


def judge_schema(missing: list[str], wanted: Sequence[str]) -> Result:
    if missing:
        return fail(Reason.MISSING, f"database(s) missing: {', '.join(missing)}", missing=missing, wanted=list(wanted))
    return ok(f"databases present: {', '.join(wanted)}", wanted=list(wanted))


def probe_schema(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "list the databases")
    wanted = wanted_databases(ctx)
    return judge_schema(missing_databases(observe_databases(access.session), wanted), wanted)


def create_database_sql(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_$-]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    return f"CREATE DATABASE IF NOT EXISTS `{name}`"


def plan_schema(ctx: "Context") -> Plan:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access),))
    session = access.session
    wanted = wanted_databases(ctx)
    missing = missing_databases(observe_databases(session), wanted)
    notes = login_notes(access)
    if not missing:
        return Plan(notes=notes, nothing_to_do=f"databases present: {', '.join(wanted)}")
    changes = []
    for name in missing:
        sql = create_database_sql(name)
        changes.append(Change(f"create database {name}", (sql,), lambda sql=sql: session.execute(sql)))
    return Plan(changes=tuple(changes), notes=notes)


# ======================================================================================================
# mysql.user
# ======================================================================================================
@dataclass(frozen=True)
class Account:
    host: str
    plugin: str
    auth_string: str | None  # None: not readable
    grants: tuple[str, ...]  # SHOW GRANTS lines with any password hash masked


@dataclass(frozen=True)
class UserFinding:
    host: str
    kind: str  # missing | plugin | password | grants
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"account": f"'stackbill'@'{self.host}'", "problem": self.kind, "detail": self.detail}


def native_hash(password: str) -> str:
    """mysql_native_password's stored form: '*' + upper hex of SHA1(SHA1(password))."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


_HASH = re.compile(r"(PASSWORD\s+)'[^']*'|(AS\s+)'[^']*'|(USING\s+)'[^']*'", re.I)


def mask_grant(line: str) -> str:
    return _HASH.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + f"'{MASK}'", line)


_GLOBAL_GRANT = re.compile(r"^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s+", re.I)
IGNORED_PRIVILEGES = {"USAGE", "GRANT OPTION", "PROXY"}


def global_grants(lines: Iterable[str], server_privileges: Iterable[str] = ()) -> tuple[bool, bool, list[str]]:
    """Pure: (has all privileges on *.*, has grant option, privileges missing on *.*).

    MariaDB shows `GRANT ALL PRIVILEGES ON *.*`; MySQL 8 expands ALL into a list (and a second line of
    dynamic privileges), which is compared with what SHOW PRIVILEGES says the server has.
    """
    granted: set[str] = set()
    grant_option = False
    for line in lines:
        match = _GLOBAL_GRANT.match(line.strip())
        if not match:
            continue
        granted |= {p.strip().upper() for p in match.group(1).split(",") if p.strip()}
        if re.search(r"WITH\s+GRANT\s+OPTION", line, re.I):
            grant_option = True
    if "ALL PRIVILEGES" in granted or "ALL" in granted:
        return True, grant_option, []
    available = {p.strip().upper() for p in server_privileges} - IGNORED_PRIVILEGES
    missing = sorted(available - granted) if available else ["ALL PRIVILEGES"]
    return not missing, grant_option, missing


def user_findings(accounts: dict[str, Account], password: str | None, server_privileges: Sequence[str] = (),
                  hosts: Sequence[str] = APP_USER_HOSTS) -> list[UserFinding]:
    """Pure differ of the stackbill accounts against the installer's (plugin, password, grants)."""
    out = []
    for host in hosts:
        account = accounts.get(host)
        if account is None:
            out.append(UserFinding(host, "missing", "does not exist"))
            continue
        plugin = account.plugin or NATIVE
        if plugin != NATIVE:
            out.append(UserFinding(host, "plugin", f"uses {plugin}; the app's connector needs {NATIVE}"))
        elif password is not None and account.auth_string is not None and account.auth_string != native_hash(password):
            out.append(UserFinding(host, "password", "password differs from the credentials file"))
        has_all, grant_option, missing = global_grants(account.grants, server_privileges)
        if not has_all or not grant_option:
            lacking = ", ".join(missing[:5]) + ("..." if len(missing) > 5 else "") if missing else ""
            detail = "lacks " + " and ".join(filter(None, [
                f"privileges on *.* ({lacking})" if not has_all else "", "GRANT OPTION" if not grant_option else ""]))
            out.append(UserFinding(host, "grants", detail))
    return out


def judge_user(findings: list[UserFinding], accounts: dict[str, Account], user: str = "stackbill") -> Result:
    evidence = {"accounts": {h: {"plugin": a.plugin or NATIVE} for h, a in accounts.items()},
                "findings": [f.as_dict() for f in findings]}
    if not findings:
        return ok(f"{user}@'%' and @'localhost' exist with {NATIVE} and ALL PRIVILEGES WITH GRANT OPTION", **evidence)
    first = findings[0]
    reason = Reason.MISSING if all(f.kind == "missing" for f in findings) else Reason.MISCONFIGURED
    more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
    return fail(reason, f"{user}@'{first.host}' {first.detail}{more}", **evidence)


def observe_accounts(session: Session, user: str) -> tuple[dict[str, Account], list[str]]:
    """The user's accounts (host -> plugin, stored hash, masked grants) and SHOW PRIVILEGES."""
    rows = session.rows("SELECT Host, plugin, authentication_string FROM mysql.user WHERE User = %s", (user,))
    accounts = {}
    for row in rows:
        host = str(row["host"])
        try:
            grants = tuple(mask_grant(str(next(iter(g.values()))))
                           for g in session.rows("SHOW GRANTS FOR %s@%s", (user, host)))
        except Exception as exc:  # noqa: BLE001 - 1141: no grants at all
            if error_code(exc) != ER_NONEXISTING_GRANT:
                raise
            grants = ()
        auth = row.get("authentication_string")
        accounts[host] = Account(host, str(row.get("plugin") or ""), None if auth is None else str(auth), grants)
    privileges = [str(r["privilege"]) for r in session.rows("SHOW PRIVILEGES")]
    return accounts, privileges


def probe_user(ctx: "Context") -> Result:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return no_access_result(access, "read the MySQL users")
    user = ctx.service("mysql").username or "stackbill"
    try:
        accounts, privileges = observe_accounts(access.session, user)
    except Exception as exc:  # noqa: BLE001
        if classify(exc) is Reason.ACCESS_DENIED:
            return skip(Reason.NO_ACCESS, f"{access.session.label} may not read mysql.user: {describe_error(exc)}; "
                                          "set mysql.admin_user/admin_password or mysql.admin_socket")
        raise
    password = _password_or_none(ctx)
    return judge_user(user_findings(accounts, password, privileges), accounts, user)


def _password_or_none(ctx: "Context") -> str | None:
    try:
        return ctx.password("mysql").reveal()
    except Exception:  # noqa: BLE001 - no credentials file: the password cannot be compared
        return None


@dataclass(frozen=True)
class Statement:
    """SQL with `%s` for the password when `secret`; `shown` is the masked form for plans."""

    sql: str
    secret: bool = False

    @property
    def shown(self) -> str:
        return self.sql.replace("%s", f"'{MASK}'").replace("%%", "%") if self.secret else self.sql


def account_sql(user: str, host: str, escape: bool) -> str:
    for name in (user, host):
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"unsafe account name {name!r}")
    return f"'{user}'@'{host.replace('%', '%%') if escape else host}'"


def identified(mariadb: bool) -> str:
    return f"IDENTIFIED VIA {NATIVE} USING PASSWORD(%s)" if mariadb else f"IDENTIFIED WITH {NATIVE} BY %s"


def user_statements(findings: Sequence[UserFinding], user: str, mariadb: bool) -> list[tuple[str, list[Statement]]]:
    """Pure: (description, statements) per account that differs; passwords are parameters."""
    by_host: dict[str, list[UserFinding]] = {}
    for finding in findings:
        by_host.setdefault(finding.host, []).append(finding)
    out = []
    for host, items in by_host.items():
        acct = account_sql(user, host, escape=True)
        plain = account_sql(user, host, escape=False)
        kinds = {f.kind for f in items}
        statements: list[Statement] = []
        if "missing" in kinds:
            statements.append(Statement(f"CREATE USER {acct} {identified(mariadb)}", True))
            kinds.add("grants")
            description = f"create {plain} with {NATIVE} and the credentials file's password"
        elif kinds & {"plugin", "password"}:
            statements.append(Statement(f"ALTER USER {acct} {identified(mariadb)}", True))
            description = f"set {plain} to {NATIVE} with the credentials file's password"
        else:
            description = f"grant ALL PRIVILEGES ON *.* WITH GRANT OPTION to {plain}"
        if "grants" in kinds:
            statements.append(Statement(f"GRANT ALL PRIVILEGES ON *.* TO {plain} WITH GRANT OPTION"))
            if "missing" not in kinds and kinds & {"plugin", "password"}:
                description += ", and grant ALL PRIVILEGES WITH GRANT OPTION"
        out.append((description, statements))
    return out


def plan_user(ctx: "Context") -> Plan:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access, "set mysql.admin_user/admin_password or mysql.admin_socket"),))
    session = access.session
    user = ctx.service("mysql").username or "stackbill"
    password = ctx.password("mysql")
    accounts, privileges = observe_accounts(session, user)
    findings = user_findings(accounts, password.reveal(), privileges)
    login = app_login_error(ctx)
    if login is not None and login.code == ER_ACCESS_DENIED_ERROR and not findings:
        # The stored hashes were not readable (or matched another path): a failed login proves a wrong password.
        findings = [UserFinding(h, "password", "login failed (1045)") for h in accounts]
    notes = login_notes(access)
    if not findings:
        return Plan(notes=notes, nothing_to_do=f"{user}@'%' and @'localhost' already match (plugin, password, grants)")
    changes = []
    for description, statements in user_statements(findings, user, session.is_mariadb):
        def apply(statements: list[Statement] = statements) -> None:
            for st in statements:
                session.execute(st.sql, (password.reveal(),) if st.secret else None)

        changes.append(Change(description, tuple(st.shown for st in statements), apply))
    return Plan(changes=tuple(changes), notes=tuple(notes))


# ======================================================================================================
# mysql.connections
# ======================================================================================================
WARN_RATIO = 0.8


def judge_connections(threads: int, maximum: int) -> Result:
    """Pure: warn at 80 % of max_connections, fail at 100 %."""
    ratio = threads / maximum if maximum else 1.0
    evidence = {"threads_connected": threads, "max_connections": maximum, "percent": round(ratio * 100, 1)}
    text = f"{threads} of {maximum} connections in use ({ratio:.0%})"
    if ratio >= 1.0:
        result = fail(Reason.TOO_MANY_CONNECTIONS, f"{text}: new logins get error 1040", **evidence)
    elif ratio >= WARN_RATIO:
        result = warn(Reason.DEGRADED, f"{text}: close to max_connections", **evidence)
    else:
        return ok(text, **evidence)
    fix = "mysql-config" if maximum < MIN_CONNECTIONS else None
    return Result(result.status, result.reason, result.summary, result.details, fix=fix)


def probe_connections(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "read the connection count")
    row = access.session.rows("SELECT @@GLOBAL.max_connections AS m")[0]
    status = access.session.rows("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    threads = int(status[0]["value"]) if status else 0
    return judge_connections(threads, int(row["m"]))
