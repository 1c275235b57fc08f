"""The stackbill user as the broker reports it (UserState), the changes sbops can make (Action), and how a fix
may make them: rabbitmqctl / rabbitmq-plugins on this host (proven to drive the broker sbops reaches), or the
management API as stackbill when it is already an administrator.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sbops.probes.rabbitmq.session import (ADMIN_TAG, NODE_DOWN_MARKERS, VHOST, WANT_PERMISSIONS, amqp_handshake,
    Answer, Api, api, Handshake, path_permissions, path_user)
from sbops.runner import CommandResult, display
from sbops.secret import MASK, Secret

if TYPE_CHECKING:
    from sbops.context import Context


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
