"""RabbitMQ: observe the broker (AMQP handshake, pika login, management API, rabbitmqctl), judge, plan, apply.

The managed resource is the `stackbill` user: exists, has the credentials file's password, carries the
`administrator` tag and ".*" ".*" ".*" on vhost "/". Its desired state, the pure difference (a list of
`Action`s) and two ways of applying it (rabbitmqctl on this host, or the management API as stackbill
when it is already an administrator) live here. pika and requests are imported inside functions.
"""

from __future__ import annotations

import json
import shlex
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence
from urllib.parse import quote, urlsplit

from sbops.model import Change, Plan, Reason, Result, fail, ok, skip, warn
from sbops.probes.net import chain, one_line, socket_reason
from sbops.runner import CommandResult, display
from sbops.secret import MASK, Secret

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


def judge_handshake(host: str, port: int, answer: Handshake) -> Result:
    where = f"{host}:{port}"
    if answer.kind == "start":
        name = " ".join(p for p in (answer.product, answer.version) if p) or "an AMQP 0-9-1 broker"
        return ok(f"{name} answers AMQP on {where}", host=host, port=port, product=answer.product,
                  version=answer.version, mechanisms=answer.mechanisms)
    if answer.kind == "header":
        return fail(Reason.MISCONFIGURED, f"{where} speaks another AMQP version than 0-9-1 (not RabbitMQ's AMQP port?)",
                    host=host, port=port, answer=answer.other_header)
    if answer.kind == "silent":
        return fail(Reason.TIMEOUT, f"{where} accepted the connection but sent no AMQP answer in time: the broker hangs, "
                    "or this is not its AMQP port", host=host, port=port)
    if answer.kind == "closed":
        return fail(Reason.MISCONFIGURED, f"{where} accepted the connection but closed it without an AMQP answer",
                    host=host, port=port)
    return fail(Reason.MISCONFIGURED, f"something answers on {where} but it is not AMQP: check the RABBITMQ Port",
                host=host, port=port)


def judge_unreachable(host: str, port: int, reason: Reason, error: str) -> Result:
    where = f"{host}:{port}"
    summary = {
        Reason.REFUSED: f"nothing listens on {where}: start RabbitMQ (systemctl start rabbitmq-server) or fix the RABBITMQ Port",
        Reason.TIMEOUT: f"no answer from {where}: a firewall drops the traffic or the broker hangs",
    }.get(reason, f"cannot reach {where}: {error}")
    return fail(reason, summary, host=host, port=port, error=error)


def probe_reachable(ctx: "Context") -> Result:
    host, port = ctx.endpoint("rabbitmq")
    try:
        answer = amqp_handshake(host, port, ctx.net_timeout)
    except OSError as exc:
        return judge_unreachable(host, port, socket_reason(exc), one_line(exc))
    return judge_handshake(host, port, answer)


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


def judge_login(host: str, port: int, result: Login) -> Result:
    who = f"{result.user} on {host}:{port} vhost '{result.vhost}'"
    evidence = {"host": host, "port": port, "user": result.user, "vhost": result.vhost}
    if result.ok:
        return ok(f"{result.user} logs in to {host}:{port} and opens vhost '{result.vhost}'", **evidence)
    if result.reason is Reason.AUTH_FAILED:
        return fail(Reason.AUTH_FAILED, f"RabbitMQ refused the login of {who}: wrong password or no such user",
                    error=result.error, **evidence)
    if result.reason is Reason.ACCESS_DENIED:
        return fail(Reason.ACCESS_DENIED, f"{result.user} logs in but may not use vhost '{result.vhost}': no permissions there",
                    error=result.error, **evidence)
    return judge_unreachable(host, port, result.reason, result.error)


def probe_auth(ctx: "Context") -> Result:
    host, port = ctx.endpoint("rabbitmq")
    return judge_login(host, port, login(ctx))


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


def judge_management(base: str, answer: Answer, login_ok: bool | None) -> Result:
    """Pure: what GET /api/overview answered. A 401 is the user's fault when AMQP login works (tags)."""
    evidence = {"url": base + "/api/overview", "http_status": answer.status}
    if answer.status is None:
        if answer.reason is Reason.REFUSED:
            return fail(Reason.REFUSED, f"the management API does not listen on {base}: the rabbitmq_management plugin is off",
                        error=answer.error, **evidence)
        if answer.reason is Reason.TIMEOUT:
            return fail(Reason.TIMEOUT, f"no answer from the management API at {base} in time", error=answer.error, **evidence)
        return fail(answer.reason, f"cannot reach the management API at {base}: {answer.error}", error=answer.error, **evidence)
    if answer.status == 401:
        if login_ok:
            result = fail(Reason.ACCESS_DENIED, "stackbill logs in over AMQP but the management API refuses it: "
                          "it lacks the administrator tag", **evidence)
        else:
            result = fail(Reason.AUTH_FAILED, f"the management API at {base} rejects stackbill's password (HTTP 401)", **evidence)
        return Result(result.status, result.reason, result.summary, result.details, fix="rabbitmq-user")
    if answer.status == 200 and answer.is_json and isinstance(answer.data, dict):
        data = answer.data
        return ok(f"management API answers at {base} (RabbitMQ {data.get('rabbitmq_version', '?')})",
                  rabbitmq_version=data.get("rabbitmq_version"), node=data.get("node"),
                  cluster_name=data.get("cluster_name"), **evidence)
    return fail(Reason.MISCONFIGURED, f"{base}/api/overview answered HTTP {answer.status} without the expected JSON: "
                "is the Management URL's port RabbitMQ's?", body=str(answer.data)[:200], **evidence)


def probe_management(ctx: "Context") -> Result:
    answer = overview(ctx)
    login_ok = login(ctx).ok if answer.status == 401 else None
    return judge_management(api_base(ctx), answer, login_ok)


# -- the stackbill user: desired state and difference ---------------------------------------------------
@dataclass(frozen=True)
class UserState:
    """What the broker has for one user. `permissions` None: no permissions on the vhost; password_ok None: unknown."""

    name: str
    exists: bool
    tags: tuple[str, ...] = ()
    permissions: dict[str, str] | None = None
    password_ok: bool | None = None


@dataclass(frozen=True)
class Action:
    kind: str  # add_user, change_password, set_tags, set_permissions, delete_user
    user: str
    tags: tuple[str, ...] = ()
    permissions: dict[str, str] = field(default_factory=dict)
    was: str = ""

    def describe(self) -> str:
        if self.kind == "add_user":
            return f"create user {self.user} with the credentials file's password"
        if self.kind == "change_password":
            return f"set {self.user}'s password to the credentials file's ({self.was or 'it does not match'})"
        if self.kind == "set_tags":
            return f"set {self.user}'s tags to {','.join(self.tags)} (now: {self.was or 'none'})"
        if self.kind == "set_permissions":
            want = " ".join(f"{k} '{v}'" for k, v in self.permissions.items())
            return f"grant {self.user} {want} on vhost '{VHOST}' (now: {self.was or 'none'})"
        if self.kind == "delete_user":
            return f"delete user {self.user}"
        raise ValueError(self.kind)


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tags as RabbitMQ reports them: a list (3.9+) or a comma-separated string (older)."""
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value if str(t))
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return ()


def format_permissions(perms: dict[str, str] | None) -> str:
    if perms is None:
        return "none"
    return " ".join(f"{k} '{perms.get(k, '')}'" for k in WANT_PERMISSIONS)


def wanted_tags(current: Sequence[str]) -> tuple[str, ...]:
    """administrator plus whatever other tags the user already has."""
    return (ADMIN_TAG, *[t for t in current if t != ADMIN_TAG])


def user_actions(state: UserState) -> list[Action]:
    """Pure: what to do so `state` becomes the desired stackbill user."""
    if not state.exists:
        return [Action("add_user", state.name),
                Action("set_tags", state.name, tags=(ADMIN_TAG,)),
                Action("set_permissions", state.name, permissions=dict(WANT_PERMISSIONS))]
    actions: list[Action] = []
    if state.password_ok is False:
        actions.append(Action("change_password", state.name, was="it does not match"))
    if ADMIN_TAG not in state.tags:
        actions.append(Action("set_tags", state.name, tags=wanted_tags(state.tags), was=",".join(state.tags)))
    current = state.permissions
    if current is None or any(current.get(k) != v for k, v in WANT_PERMISSIONS.items()):
        actions.append(Action("set_permissions", state.name, permissions=dict(WANT_PERMISSIONS),
                              was=format_permissions(current)))
    return actions


def observe_user_api(client: Api, name: str) -> UserState | Answer:
    """The user via the API (needs an administrator login); an Answer when the API would not say."""
    user = client.get(path_user(name))
    if user.status == 404:
        return UserState(name, exists=False)
    if user.status != 200 or not isinstance(user.data, dict):
        return user
    perms = client.get(path_permissions(name))
    if perms.status == 404:
        permissions = None
    elif perms.status == 200 and isinstance(perms.data, dict):
        permissions = {k: str(perms.data.get(k, "")) for k in WANT_PERMISSIONS}
    else:
        return perms
    return UserState(name, True, parse_tags(user.data.get("tags")), permissions, password_ok=True if name == client.user else None)


def judge_permissions(state: UserState) -> Result:
    """Pure: the stackbill user's tags and vhost permissions against what StackBill needs."""
    evidence = {"user": state.name, "vhost": VHOST, "tags": list(state.tags),
                "permissions": state.permissions, "want_tags": [ADMIN_TAG], "want_permissions": WANT_PERMISSIONS}
    if not state.exists:
        return fail(Reason.MISSING, f"user {state.name} does not exist", **evidence)
    actions = [a for a in user_actions(state) if a.kind in ("set_tags", "set_permissions")]
    if not actions:
        return ok(f"{state.name} is an administrator with configure/write/read '.*' on vhost '{VHOST}'", **evidence)
    differs = []
    if any(a.kind == "set_tags" for a in actions):
        differs.append(f"tags are [{','.join(state.tags)}] (want {ADMIN_TAG})")
    if any(a.kind == "set_permissions" for a in actions):
        differs.append(f"permissions on '{VHOST}' are {format_permissions(state.permissions)} (want '.*' '.*' '.*')")
    return fail(Reason.MISCONFIGURED, f"{state.name}: " + "; ".join(differs), changes=[a.describe() for a in actions], **evidence)


def judge_api_refusal(what: str, answer: Answer, user: str) -> Result:
    """An API read that was refused or failed (the check's prerequisites passed a moment ago)."""
    if answer.status in (401, 403):
        return fail(Reason.MISCONFIGURED, f"{user} may not read {what} from the management API: it lacks the administrator tag",
                    http_status=answer.status)
    if answer.status is None:
        return fail(answer.reason, f"the management API did not answer reading {what}: {answer.error}", error=answer.error)
    return fail(Reason.MISCONFIGURED, f"reading {what} from the management API gave HTTP {answer.status}", http_status=answer.status)


def probe_permissions(ctx: "Context") -> Result:
    client = api(ctx)
    state = observe_user_api(client, client.user)
    if isinstance(state, Answer):
        if state.status == 401:
            who = client.get("/api/whoami")
            if who.status == 200 and isinstance(who.data, dict):
                return judge_permissions(UserState(client.user, True, parse_tags(who.data.get("tags")), None))
            if login(ctx).ok:
                return fail(Reason.MISCONFIGURED, f"{client.user} logs in over AMQP but the management API refuses it: "
                            "it lacks the administrator tag", user=client.user, http_status=who.status)
            return fail(Reason.AUTH_FAILED, f"the management API rejects {client.user}'s password", user=client.user,
                        http_status=who.status)
        return judge_api_refusal(f"user {client.user}", state, client.user)
    return judge_permissions(state)


# -- guest ---------------------------------------------------------------------------------------------
def judge_guest(answer: Answer, user: str) -> Result:
    if answer.status == 404:
        return ok("the default guest user has been removed")
    if answer.status == 200 and isinstance(answer.data, dict):
        return warn(Reason.INSECURE, "the default guest user (password 'guest', administrator) still exists: delete it",
                    guest_tags=list(parse_tags(answer.data.get("tags"))))
    if answer.status in (401, 403):
        return skip(Reason.NO_ACCESS, f"cannot tell whether guest exists: {user} may not list users (no administrator tag)",
                    http_status=answer.status)
    return judge_api_refusal("user guest", answer, user)


def probe_guest(ctx: "Context") -> Result:
    client = api(ctx)
    return judge_guest(client.get(path_user("guest")), client.user)


# -- alarms --------------------------------------------------------------------------------------------
def human_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def node_alarms(node: dict[str, Any]) -> list[str]:
    """Pure: the alarm lines of one /api/nodes entry, with the numbers."""
    name = node.get("name", "?")
    found = []
    if node.get("mem_alarm"):
        found.append(f"memory alarm on {name}: {human_bytes(node.get('mem_used'))} used, "
                     f"high watermark {human_bytes(node.get('mem_limit'))}")
    if node.get("disk_free_alarm"):
        found.append(f"disk alarm on {name}: {human_bytes(node.get('disk_free'))} free, "
                     f"limit {human_bytes(node.get('disk_free_limit'))}")
    return found


NODE_FIELDS = ("name", "running", "mem_alarm", "mem_used", "mem_limit", "disk_free_alarm", "disk_free", "disk_free_limit")


def health_alarms(health: Answer | None) -> list[dict[str, Any]]:
    """Pure: the alarms of GET /api/health/checks/alarms (503 with a list when any is in effect)."""
    if health is None or health.status != 503 or not isinstance(health.data, dict):
        return []
    return [a for a in health.data.get("alarms", []) if isinstance(a, dict)]


def judge_alarms(nodes: list[dict[str, Any]], health: Answer | None = None) -> Result:
    """Pure: alarms from /api/nodes (with the numbers) and from the live health check.

    /api/nodes is refreshed every statistics interval (5 s by default), the health check is not: an alarm
    either reports counts, with the numbers from /api/nodes when it has them.
    """
    evidence: dict[str, Any] = {"nodes": [{k: n.get(k) for k in NODE_FIELDS} for n in nodes]}
    found = [line for n in nodes for line in node_alarms(n)]
    by_node = {n.get("name"): n for n in nodes}
    for alarm in health_alarms(health):
        resource, name = alarm.get("resource", "?"), alarm.get("node", "?")
        kind = "mem_alarm" if resource == "memory" else "disk_free_alarm" if str(resource).startswith("disk") else ""
        if kind and by_node.get(name, {}).get(kind):
            continue  # already reported with its numbers
        node = dict(by_node.get(name, {"name": name}), **{kind: True}) if kind else None
        found.extend(node_alarms(node) if node else [f"{resource} alarm on {name}"])
    if health is not None and health.status is not None:
        evidence["health_check"] = health.data if isinstance(health.data, dict) else {"http_status": health.status}
    if found:
        return fail(Reason.DEGRADED, "; ".join(found) + ": publishers are blocked until it clears", alarms=found, **evidence)
    down = [n.get("name", "?") for n in nodes if n.get("running") is False]
    if down:
        return fail(Reason.NOT_RUNNING, f"node(s) not running: {', '.join(down)}", **evidence)
    return ok("no memory or disk alarm", **evidence)


def probe_alarms(ctx: "Context") -> Result:
    client = api(ctx)
    answer = client.get("/api/nodes")
    if answer.status != 200 or not isinstance(answer.data, list):
        if answer.status in (401, 403):
            return skip(Reason.NO_ACCESS, f"cannot read node alarms: {client.user} may not read /api/nodes (no administrator tag)",
                        http_status=answer.status)
        return judge_api_refusal("/api/nodes", answer, client.user)
    nodes = [n for n in answer.data if isinstance(n, dict)]
    return judge_alarms(nodes, client.get("/api/health/checks/alarms"))


# -- rabbitmqctl / rabbitmq-plugins --------------------------------------------------------------------
def ctl_failure(result: CommandResult, program: str) -> str:
    """Pure: one line saying why a rabbitmqctl/rabbitmq-plugins call failed, for blockers."""
    if result.returncode == 127:
        return f"{program} is not installed here (setting rabbitmq.ctl_command / rabbitmq.plugins_command)"
    if result.returncode == 126:
        return f"{program}: permission denied"
    text = (result.stderr + "\n" + result.stdout).lower()
    if any(marker in text for marker in NODE_DOWN_MARKERS):
        return (f"{program} cannot reach the RabbitMQ node: it is not running, or this user's Erlang cookie "
                "(~/.erlang.cookie) differs from the node's (run as root)")
    if "eacces" in text or "permission denied" in text:
        return f"{program}: permission denied (run as root)"
    return f"{program} failed: {result.one_line_error()}"


class Ctl:
    """rabbitmqctl on this host, as set by `rabbitmq.ctl_command` (a wrapper may set the node's environment)."""

    name = "rabbitmqctl"

    def __init__(self, ctx: "Context") -> None:
        self.runner = ctx.runner
        self.argv = shlex.split(ctx.settings["rabbitmq.ctl_command"])
        self.timeout = max(30.0, ctx.timeout * 6)

    def run(self, *args: str, input: str | Secret | None = None) -> CommandResult:
        return self.runner.run([*self.argv, *args], input=input, timeout=self.timeout)

    def json(self, *args: str) -> Any:
        result = self.run("-q", *args, "--formatter", "json")
        if not result.ok:
            raise RuntimeError(ctl_failure(result, self.name))
        text = result.stdout.strip()
        return json.loads(text) if text else []

    def probe(self) -> str:
        """'' when rabbitmqctl can talk to the node, else why not."""
        result = self.run("-q", "list_users", "--formatter", "json")
        return "" if result.ok else ctl_failure(result, self.name)

    def observe(self, name: str, check_password: Secret | None) -> UserState:
        users = {u.get("user"): u for u in self.json("list_users") if isinstance(u, dict)}
        if name not in users:
            return UserState(name, exists=False)
        perms = {p.get("user"): p for p in self.json("list_permissions", "-p", VHOST) if isinstance(p, dict)}
        permissions = {k: str(perms[name].get(k, "")) for k in WANT_PERMISSIONS} if name in perms else None
        password_ok = None
        if check_password is not None:
            result = self.run("authenticate_user", name, input=_stdin(check_password))
            password_ok = result.ok
        return UserState(name, True, parse_tags(users[name].get("tags")), permissions, password_ok)

    def argv_for(self, action: Action) -> list[str]:
        if action.kind == "add_user":
            return [*self.argv, "add_user", action.user]
        if action.kind == "change_password":
            return [*self.argv, "change_password", action.user]
        if action.kind == "set_tags":
            return [*self.argv, "set_user_tags", action.user, *action.tags]
        if action.kind == "set_permissions":
            p = action.permissions
            return [*self.argv, "set_permissions", "-p", VHOST, action.user, p["configure"], p["write"], p["read"]]
        if action.kind == "delete_user":
            return [*self.argv, "delete_user", action.user]
        raise ValueError(action.kind)

    def commands(self, action: Action) -> tuple[str, ...]:
        shown = display(self.argv_for(action))
        if action.kind in ("add_user", "change_password"):
            shown += f"   # password {MASK} on standard input"
        return (shown,)

    def applier(self, action: Action, password: Secret) -> Callable[[], None]:
        argv = self.argv_for(action)
        stdin = _stdin(password) if action.kind in ("add_user", "change_password") else None

        def apply() -> None:
            result = self.runner.run(argv, input=stdin, timeout=self.timeout)
            if not result.ok:
                raise RuntimeError(ctl_failure(result, self.name))

        return apply


def _stdin(password: Secret) -> Secret:
    """rabbitmqctl reads a password it was not given as an argument from standard input (one line)."""
    return Secret(password.reveal() + "\n")


class HttpAdmin:
    """The management API as a user that is already an administrator (no local access needed)."""

    name = "management API"

    def __init__(self, client: Api) -> None:
        self.client = client

    def observe(self, name: str, check_password: Secret | None) -> UserState:
        state = observe_user_api(self.client, name)
        if isinstance(state, Answer):
            raise RuntimeError(f"management API: HTTP {state.status} {state.error}".strip())
        return state

    def request_for(self, action: Action, password: Secret, current_tags: Sequence[str] = ()) -> tuple[str, str, Any]:
        if action.kind in ("add_user", "change_password"):
            return "PUT", path_user(action.user), {"password": password, "tags": ",".join(current_tags or (ADMIN_TAG,))}
        if action.kind == "set_tags":
            return "PUT", path_user(action.user), {"password": password, "tags": ",".join(action.tags)}
        if action.kind == "set_permissions":
            return "PUT", path_permissions(action.user), dict(action.permissions)
        if action.kind == "delete_user":
            return "DELETE", path_user(action.user), None
        raise ValueError(action.kind)

    def commands(self, action: Action, password: Secret, current_tags: Sequence[str] = ()) -> tuple[str, ...]:
        method, path, body = self.request_for(action, password, current_tags)
        shown = json.dumps({k: (MASK if isinstance(v, Secret) else v) for k, v in body.items()}) if body else ""
        return (f"{method} {self.client.base}{path} {shown}".strip(),)

    def applier(self, action: Action, password: Secret, current_tags: Sequence[str] = ()) -> Callable[[], None]:
        method, path, body = self.request_for(action, password, current_tags)
        real = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in body.items()} if body else None

        def apply() -> None:
            answer = self.client.request(method, path, real)
            if answer.status not in (200, 201, 204):
                raise RuntimeError(f"{method} {path}: HTTP {answer.status} {answer.error}".strip())

        return apply


def local_blocker(ctx: "Context", what: str) -> str:
    host, _ = ctx.endpoint("rabbitmq")
    if ctx.is_local(host):
        return ""
    return f"RabbitMQ runs on {host}, not on this machine: {what} needs local access to the node (run sbops there)"


def admin_via_api(ctx: "Context") -> tuple[HttpAdmin | None, str]:
    """The management API as stackbill when it logs in there as an administrator, else why not."""
    client = api(ctx)
    who = client.get("/api/whoami")
    if who.status == 200 and isinstance(who.data, dict):
        if ADMIN_TAG in parse_tags(who.data.get("tags")):
            return HttpAdmin(client), ""
        return None, f"management API: {client.user} is not an administrator"
    if who.status is None:
        return None, f"management API at {client.base} does not answer ({who.reason.value})"
    return None, f"management API at {client.base} refuses {client.user} (HTTP {who.status})"


def admin_via_ctl(ctx: "Context") -> tuple[Ctl | None, str]:
    """rabbitmqctl, once it is proven to manage the node that answers at the credentials file's Host:Port
    (a wrapper or RABBITMQ_NODENAME can point it at another node on the same machine)."""
    blocker = local_blocker(ctx, "rabbitmqctl")
    if blocker:
        return None, blocker
    ctl = Ctl(ctx)
    why = ctl.probe()
    if why:
        return None, why
    try:
        status = ctl.json("cluster_status")
    except (RuntimeError, ValueError) as exc:
        return None, f"rabbitmqctl cluster_status: {exc}"
    host, port = ctx.endpoint("rabbitmq")
    try:
        answer: Handshake | None = amqp_handshake(host, port, ctx.net_timeout)
    except OSError:
        answer = None
    why = ctl_identity_mismatch(status if isinstance(status, dict) else {},
                                answer.cluster_name if answer is not None else None, host, port)
    if why:
        return None, f"refusing rabbitmqctl, which would change another node than the credentials file's: {why}"
    return ctl, ""


def ctl_identity_mismatch(status: dict[str, Any], amqp_cluster: str | None, host: str, port: int) -> str:
    """Pure: why rabbitmqctl's node is not the one at Host:Port, or '' when it is.

    `status` is `rabbitmqctl cluster_status --formatter json`; `amqp_cluster` the cluster_name the AMQP port
    announced (None when it did not answer). Users live cluster-wide, so the same cluster is enough; without
    an AMQP answer, one of the cluster's AMQP listeners must be on the configured port.
    """
    cluster = str(status.get("cluster_name") or "")
    nodes = ", ".join(str(n) for n in status.get("running_nodes") or []) or "no running node"
    if amqp_cluster:
        if cluster == amqp_cluster:
            return ""
        return (f"rabbitmqctl reaches cluster {cluster or '(unnamed)'} (nodes {nodes}), not cluster {amqp_cluster} "
                f"that answers at {host}:{port}")
    ports = sorted({int(li.get("port", 0)) for li in status.get("listeners") or []
                    if isinstance(li, dict) and str(li.get("protocol", "")) == "amqp"})
    if port in ports:
        return ""
    return (f"rabbitmqctl reaches cluster {cluster or '(unnamed)'} (nodes {nodes}) with AMQP on port(s) "
            f"{', '.join(map(str, ports)) or 'none'}, and nothing RabbitMQ answers at {host}:{port} to compare")


# -- fix: rabbitmq-user ---------------------------------------------------------------------------------
def build_changes(backend: Ctl | HttpAdmin, actions: list[Action], password: Secret, state: UserState) -> tuple[Change, ...]:
    changes = []
    for action in actions:
        if isinstance(backend, Ctl):
            changes.append(Change(action.describe(), backend.commands(action), backend.applier(action, password)))
        else:
            # an HTTP request is not a command anyone runs: the description names it instead
            request = backend.commands(action, password, state.tags)[0]
            changes.append(Change(f"{action.describe()}, via the RabbitMQ management API: {request}", (),
                                  backend.applier(action, password, state.tags)))
    return tuple(changes)


def plan_user(ctx: "Context") -> Plan:
    """Create/repair stackbill: rabbitmqctl on this host, else the API when stackbill is already an administrator."""
    password = ctx.password("rabbitmq")
    name = username(ctx)
    backend: Ctl | HttpAdmin | None
    backend, why_api = admin_via_api(ctx)
    why_ctl = ""
    if backend is None:
        backend, why_ctl = admin_via_ctl(ctx)
    if backend is None:
        return Plan(blockers=(f"no way to manage RabbitMQ users: {why_ctl}; {why_api}",))
    try:
        state = backend.observe(name, password)
    except RuntimeError as exc:
        return Plan(blockers=(str(exc),))
    notes: tuple[str, ...] = (f"using {backend.name}",)
    if state.exists and state.password_ok is None:
        login_now = login(ctx)
        if login_now.reason in (Reason.AUTH_FAILED,):
            state = UserState(state.name, True, state.tags, state.permissions, False)
        elif login_now.reason in (Reason.NONE, Reason.ACCESS_DENIED):
            state = UserState(state.name, True, state.tags, state.permissions, True)
    actions = user_actions(state)
    if not actions:
        return Plan(nothing_to_do=f"{name} exists, its password matches, it is an administrator with '.*' '.*' '.*' on '{VHOST}'",
                    notes=notes)
    return Plan(changes=build_changes(backend, actions, password, state), notes=notes)


# -- fix: rabbitmq-management --------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginState:
    node_running: bool
    enabled: bool  # explicitly enabled (in the enabled_plugins file)
    running: bool  # started on the node


def parse_plugin_list(text: str, plugin: str = PLUGIN) -> PluginState:
    """Pure: `rabbitmq-plugins -q list --formatter json` (it answers even when the node is down)."""
    data = json.loads(text)
    entry = next((p for p in data.get("plugins", []) if p.get("name") == plugin), {})
    return PluginState(node_running=data.get("status") == "running",
                       enabled=entry.get("enabled") in ("enabled", "implicit"),
                       running=bool(entry.get("running")))


class Plugins:
    name = "rabbitmq-plugins"

    def __init__(self, ctx: "Context") -> None:
        self.runner = ctx.runner
        self.argv = shlex.split(ctx.settings["rabbitmq.plugins_command"])
        self.timeout = max(60.0, ctx.timeout * 12)

    def state(self) -> tuple[PluginState | None, str]:
        """The management plugin's state on this host's node, else why it cannot be read."""
        result = self.runner.run([*self.argv, "-q", "list", "--formatter", "json", PLUGIN], timeout=self.timeout)
        if not result.ok:
            return None, ctl_failure(result, self.name)
        try:
            return parse_plugin_list(result.stdout), ""
        except (ValueError, AttributeError):
            return None, f"{self.name} list: unexpected output: {result.stdout.strip()[:120]}"

    def enable_argv(self) -> list[str]:
        return [*self.argv, "enable", PLUGIN]


def wait_for_api(client: Api, deadline: float) -> Answer:
    """Poll GET /api/overview until the API answers anything HTTP, or the deadline passes."""
    end = time.monotonic() + deadline
    answer = client.get("/api/overview")
    while answer.status is None and time.monotonic() < end:
        time.sleep(0.5)
        answer = client.get("/api/overview")
    return answer


def plan_management(ctx: "Context") -> Plan:
    client = api(ctx)
    now = client.get("/api/overview")
    if now.status is not None:
        return Plan(nothing_to_do=f"the management API answers at {client.base} (HTTP {now.status})")
    blocker = local_blocker(ctx, "enabling a plugin")
    if blocker:
        return Plan(blockers=(blocker,))
    plugins = Plugins(ctx)
    state, why = plugins.state()
    if state is None:
        return Plan(blockers=(why,))
    if not state.node_running:
        return Plan(blockers=(f"{plugins.name} cannot reach the RabbitMQ node: it is not running, or this user's Erlang "
                              "cookie (~/.erlang.cookie) differs from the node's (run as root)",))
    if state.enabled and state.running:
        return Plan(blockers=(f"{PLUGIN} is enabled but nothing answers at {client.base}: the Management URL's port "
                              "differs from management.tcp.port in rabbitmq.conf, or the listener failed (see the node's log)",))
    argv = plugins.enable_argv()

    def apply() -> None:
        result = ctx.runner.run(argv, timeout=plugins.timeout)
        if not result.ok:
            raise RuntimeError(ctl_failure(result, plugins.name))
        answer = wait_for_api(client, API_WAIT)
        if answer.status is None:
            raise RuntimeError(f"{PLUGIN} is enabled but the API at {client.base} did not answer within {API_WAIT:g}s")

    return Plan(changes=(Change(f"enable the {PLUGIN} plugin on the running node (no restart), then wait up to "
                                f"{API_WAIT:g}s for {client.base}", (display(argv),), apply),),
                notes=("enabling a plugin starts its listener inside the running broker; AMQP clients stay connected",))


# -- fix: rabbitmq-guest --------------------------------------------------------------------------------
def guest_blockers(login_result: Login, stackbill: UserState | None, why: str) -> list[str]:
    """Pure: why guest must not be deleted yet (it may be the only working administrator)."""
    if stackbill is None:
        return [f"cannot verify the stackbill user ({why}): run `sbops fix rabbitmq-user` first"]
    problems = []
    if not login_result.ok:
        problems.append(f"{stackbill.name} cannot log in ({login_result.reason.value})")
    if not stackbill.exists:
        problems.append(f"{stackbill.name} does not exist")
    elif ADMIN_TAG not in stackbill.tags:
        problems.append(f"{stackbill.name} lacks the {ADMIN_TAG} tag")
    if problems:
        return ["deleting guest could leave no working administrator: " + "; ".join(problems)
                + ": run `sbops fix rabbitmq-user` first"]
    return []


def plan_guest(ctx: "Context") -> Plan:
    name = username(ctx)
    password = ctx.password("rabbitmq")
    backend: Ctl | HttpAdmin | None
    backend, why_api = admin_via_api(ctx)
    why_ctl = ""
    if backend is None:
        backend, why_ctl = admin_via_ctl(ctx)
    stackbill: UserState | None = None
    why = "; ".join(w for w in (why_api, why_ctl) if w)
    if backend is not None:
        try:
            stackbill = backend.observe(name, None)
        except RuntimeError as exc:
            why = str(exc)
    blockers = guest_blockers(login(ctx), stackbill, why)
    if blockers or backend is None:
        return Plan(blockers=tuple(blockers) or (why,))
    try:
        guest = backend.observe("guest", None)
    except RuntimeError as exc:
        return Plan(blockers=(str(exc),))
    if not guest.exists:
        return Plan(nothing_to_do="the guest user does not exist")
    action = Action("delete_user", "guest")
    return Plan(changes=build_changes(backend, [action], password, guest),
                notes=(f"using {backend.name}; {name} logs in and is an {ADMIN_TAG}",))
