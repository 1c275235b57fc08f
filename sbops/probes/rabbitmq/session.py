"""RabbitMQ client layer: the AMQP 0-9-1 handshake (raw socket), the stackbill login (pika), and the
management HTTP API client.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from sbops.model import Reason
from sbops.probes.net import chain, one_line, socket_reason
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context


VHOST = "/"
ADMIN_TAG = "administrator"
WANT_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
PLUGIN = "rabbitmq_management"
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_END = 0xCE
API_WAIT = 30.0  # seconds the management fix waits for the API after enabling the plugin
NODE_DOWN_MARKERS = ("unable to perform an operation on node", "unable to connect to node", "nodedown")


# -- errors ---------------------------------------------------------------------------------------------
def management_port(url: str, default: int) -> int:
    """The port of the credentials file's `Management:` URL, else the setting."""
    if not url:
        return default
    try:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        return parts.port or default
    except ValueError:
        return default


def api_base(ctx: "Context") -> str:
    host, _ = ctx.endpoint("rabbitmq")
    port = management_port(ctx.service("rabbitmq").management, int(ctx.settings["rabbitmq.management_port"]))
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def username(ctx: "Context") -> str:
    return ctx.service("rabbitmq").username or "stackbill"


# -- AMQP handshake ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Handshake:
    """What the port answered to the AMQP 0-9-1 protocol header."""

    kind: str  # "start" (Connection.Start), "header" (another protocol version), "other", "closed", "silent"
    product: str = ""
    version: str = ""
    mechanisms: str = ""
    other_header: str = ""
    cluster_name: str = ""  # the server properties' cluster_name: which cluster answers at Host:Port


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            break
        data += piece
    return data


def parse_answer(head: bytes, payload: bytes) -> Handshake:
    """Pure: classify the first bytes the server sent back after our protocol header."""
    if not head:
        return Handshake("closed")
    if head.startswith(b"AMQP"):
        return Handshake("header", other_header=head[:8].hex())
    if len(head) < 7 or head[0] != FRAME_METHOD:
        return Handshake("other")
    if len(payload) < 4 or struct.unpack(">HH", payload[:4]) != (10, 10):
        return Handshake("other")
    info = decode_start(payload)
    return Handshake("start", **info)


def decode_start(payload: bytes) -> dict[str, str]:
    """Server product/version/mechanisms from a Connection.Start payload (best effort)."""
    try:
        from pika import spec

        start = spec.Connection.Start().decode(payload, 4)
        props = start.server_properties or {}

        def text(value: Any) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")

        return {"product": text(props.get("product")), "version": text(props.get("version")),
                "mechanisms": text(start.mechanisms), "cluster_name": text(props.get("cluster_name"))}
    except Exception:  # noqa: BLE001 - the frame was AMQP; the details are a bonus
        return {}


def amqp_handshake(host: str, port: int, timeout: float) -> Handshake:
    """Connect, send the AMQP 0-9-1 header, read the first frame. Raises OSError on network failures."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(PROTOCOL_HEADER)
        try:
            head = _recv_exact(sock, 7)
        except socket.timeout:
            return Handshake("silent")
        payload = b""
        if len(head) == 7 and head[0] == FRAME_METHOD:
            size = struct.unpack(">I", head[3:7])[0]
            if size <= 1 << 20:
                payload = _recv_exact(sock, size)
        elif head.startswith(b"AMQP"):
            head += _recv_exact(sock, 1)
        return parse_answer(head, payload)


# -- AMQP login (pika) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Login:
    reason: Reason  # NONE when the login worked
    error: str = ""
    user: str = ""
    vhost: str = VHOST

    @property
    def ok(self) -> bool:
        return self.reason is Reason.NONE


def classify_login_error(exc: BaseException) -> Reason:
    """Pure: pika's exception -> auth_failed (403 ACCESS_REFUSED) / access_denied (530 NOT_ALLOWED) / network."""
    from pika import exceptions as pe

    if isinstance(exc, pe.ProbableAuthenticationError):
        return Reason.AUTH_FAILED
    if isinstance(exc, pe.ProbableAccessDeniedError):
        return Reason.ACCESS_DENIED
    for item in chain(exc):
        if isinstance(item, pe.AuthenticationError):
            return Reason.AUTH_FAILED
        code = getattr(item, "reply_code", None)
        if code == 403:
            return Reason.AUTH_FAILED
        if code == 530:
            return Reason.ACCESS_DENIED
    return socket_reason(exc)  # connect errors and AMQPConnectorStackTimeout (matched by name)


def amqp_login(host: str, port: int, user: str, password: Secret, timeout: float, vhost: str = VHOST) -> Login:
    """Open and close one AMQP connection as `user` on `vhost`; never raises for broker answers."""
    import pika

    params = pika.ConnectionParameters(
        host=host, port=port, virtual_host=vhost, credentials=pika.PlainCredentials(user, password.reveal()),
        socket_timeout=timeout, blocked_connection_timeout=timeout, connection_attempts=1, retry_delay=0,
        stack_timeout=timeout + 0.5, heartbeat=0,
    )
    try:
        connection = pika.BlockingConnection(params)
    except Exception as exc:  # noqa: BLE001 - classified below
        return Login(classify_login_error(exc), one_line(exc), user, vhost)
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - logging in is what we wanted to know
        pass
    return Login(Reason.NONE, "", user, vhost)


def login(ctx: "Context") -> Login:
    """The stackbill AMQP login, once per run."""
    host, port = ctx.endpoint("rabbitmq")
    return ctx.shared("rabbitmq.login", lambda: amqp_login(host, port, username(ctx), ctx.password("rabbitmq"), ctx.net_timeout))


# -- management HTTP API -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One API answer: an HTTP status and JSON body, or a network failure (status None)."""

    status: int | None
    data: Any = None
    reason: Reason = Reason.NONE  # for network failures
    error: str = ""
    is_json: bool = True


@dataclass
class Api:
    """The management HTTP API as one user; every request has connect and read timeouts."""

    base: str
    user: str
    password: Secret
    timeout: float

    def request(self, method: str, path: str, body: Any = None) -> Answer:
        import requests

        try:
            response = requests.request(
                method, self.base + path, auth=(self.user, self.password.reveal()), timeout=(self.timeout, self.timeout),
                json=body, headers={"content-type": "application/json"} if body is not None else None,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return Answer(None, reason=socket_reason(exc), error=one_line(exc))
        if not response.content:
            return Answer(response.status_code, None)
        try:
            return Answer(response.status_code, response.json())
        except ValueError:
            return Answer(response.status_code, response.text[:200], is_json=False)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)


def api(ctx: "Context") -> Api:
    return Api(api_base(ctx), username(ctx), ctx.password("rabbitmq"), ctx.net_timeout)


def overview(ctx: "Context") -> Answer:
    return ctx.shared("rabbitmq.overview", lambda: api(ctx).get("/api/overview"))


def path_user(name: str) -> str:
    return f"/api/users/{quote(name, safe='')}"


def path_permissions(name: str, vhost: str = VHOST) -> str:
    return f"/api/permissions/{quote(vhost, safe='')}/{quote(name, safe='')}"
