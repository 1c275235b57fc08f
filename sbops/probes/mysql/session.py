"""MySQL/MariaDB client layer: error classification (by server code, never message text), versions and the
server greeting, and the two shared sessions (the stackbill login and the admin login).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from sbops.model import Reason
from sbops.probes.net import socket_reason
from sbops.secret import Secret

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
    conn = pymysql.connections.Connection(defer_connect=True, ssl_disabled=True, **kwargs)
    prefer_tls(conn)
    try:
        conn.connect()
    except Exception as exc:
        exc.server_version = strip_version(str(getattr(conn, "server_version", "") or ""))  # type: ignore[attr-defined]
        raise
    return conn


_PREFERRED_TLS: Any = None
_PREFERRED_LOCK = threading.Lock()


def preferred_tls_context() -> Any:
    """One client TLS context for the whole process, as PyMySQL's PREFERRED mode builds for every connection
    (encryption when the server offers it, no certificate check: no CA was configured). PyMySQL builds it
    with ssl.create_default_context(), which loads the system's CA store only to switch verification off:
    5-30 ms of CPU per login, the largest single cost of an exporter scrape of the mysql layer (issue 16)."""
    global _PREFERRED_TLS
    with _PREFERRED_LOCK:
        if _PREFERRED_TLS is None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _PREFERRED_TLS = context
        return _PREFERRED_TLS


def prefer_tls(conn: Any) -> None:
    """PyMySQL's PREFERRED TLS mode on a connection built with ssl_disabled=True, with the shared context.
    PyMySQL without that mode (no `_ssl_required`, before 1.2) never used TLS unasked: left as it is."""
    if hasattr(conn, "_ssl_required"):
        conn.ssl, conn._ssl_required, conn.ctx = True, False, preferred_tls_context()


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
    """Where the admin login goes: the socket when it exists and the server is on this machine, else TCP to
    the credentials file's host. A server on another host is never reached through this machine's socket,
    which leads to this machine's server (a database host of its own: sbops.probes.agents)."""
    sock = str(ctx.settings["mysql.admin_socket"] or "")
    host, port = ctx.endpoint("mysql")
    if sock and ctx.is_local(host) and Path(sock).exists():
        return {"unix_socket": sock}
    return {"host": host, "port": port, "source_address": ctx.settings["mysql.source_address"]}


ALL_ADDRESSES = ("0.0.0.0", "*", "::")


def truthy(value: Any) -> bool:
    return str(value).strip().upper() in ("1", "ON", "TRUE", "YES")


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "localhost")
