"""MongoDB: observe the server (hello, logins, users, bindIp, version, mongod.conf), judge, plan and apply.

Observers do I/O and return plain data; judgements and differs are pure and tested from tables.
pymongo, psutil and yaml are imported inside functions so `sbops --help` stays light.
Authentication failures are recognised by the server's error code (18), never by message text:
servers word them differently (mongod "Authentication failed.", SecantusDB "authentication failed").
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sbops.diff import file_diff
from sbops.errors import NeedsCredentials
from sbops.versions import MONGODB_SERIES
from sbops.model import Change, Plan, Reason, Result, fail, ok, skip, warn
from sbops.probes.net import tcp_probe, wait_for_port
from sbops.runner import display, service_restart_argv
from sbops.secret import MASK, Secret

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.registry import FixOptions

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
        return Login(username, False, exc.code, _first_line(exc.details.get("errmsg") if exc.details else str(exc)))
    except Exception:
        client.close()
        raise
    return Login(username, True, status=dict(answer.get("authInfo", {})), client=client)


def _first_line(text: Any) -> str:
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


# ---------------------------------------------------------------------------------------------------
# the stackbill user
# ---------------------------------------------------------------------------------------------------
def role_pairs(roles: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(str(r.get("role")), str(r.get("db"))) for r in roles if isinstance(r, dict)}


def missing_roles(roles: list[dict[str, Any]]) -> list[tuple[str, str]]:
    have = role_pairs(roles)
    return [r for r in REQUIRED_ROLES if r not in have]


def fmt_roles(pairs: list[tuple[str, str]] | set[tuple[str, str]]) -> str:
    return ", ".join(f"{role}@{db}" for role, db in sorted(pairs)) or "none"


def users_info(client: Any, username: str) -> dict[str, Any] | None:
    """The user's document in admin, or None when it does not exist."""
    answer = client.admin.command("usersInfo", {"user": username, "db": AUTH_DB})
    users = answer.get("users") or []
    return dict(users[0]) if users else None


def judge_user(username: str, user: dict[str, Any] | None, via: str) -> Result:
    if user is None:
        return fail(Reason.MISSING, f"user {username} does not exist in {AUTH_DB}", user=username, looked_as=via)
    roles = list(user.get("roles") or [])
    lacking = missing_roles(roles)
    evidence = {"user": username, "roles": fmt_roles(role_pairs(roles)), "mechanisms": list(user.get("mechanisms") or []),
                "looked_as": via}
    if lacking:
        return fail(Reason.MISCONFIGURED, f"{username} lacks role(s) {fmt_roles(lacking)} that StackBill's installer "
                    f"grants", missing_roles=fmt_roles(lacking), **evidence)
    return ok(f"{username} exists in {AUTH_DB} with roles {fmt_roles(REQUIRED_ROLES)}", **evidence)


def check_user(ctx: "Context") -> Result:
    """usersInfo for the StackBill user, as the admin login if configured, else as the user itself."""
    from pymongo.errors import OperationFailure

    username = ctx.service("mongodb").username
    login = admin_login(ctx)
    if login is None or not login.ok:
        if login is not None:
            return skip(Reason.NO_ACCESS, f"cannot look at users: the admin login {login.user} was rejected "
                        f"(code {login.code}); check mongodb.admin_user/mongodb.admin_password", code=login.code)
        login = app_login(ctx)
        if not login.ok:
            return skip(Reason.NO_ACCESS, f"cannot look at users: {username}'s own login fails (see mongodb.auth) and "
                        f"no admin login is configured (mongodb.admin_user, mongodb.admin_password)", code=login.code)
    try:
        user = users_info(login.client, username)
    except OperationFailure as exc:
        return skip(Reason.NO_ACCESS, f"{login.user} may not run usersInfo (code {exc.code})", code=exc.code)
    return judge_user(username, user, login.user)


# ---------------------------------------------------------------------------------------------------
# bind addresses
# ---------------------------------------------------------------------------------------------------
def parse_bind_ips(value: Any) -> list[str]:
    """mongod's bindIp: a comma-separated string (or a YAML list); unix socket paths are dropped."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [s for s in (str(i).strip() for i in items) if s and not s.startswith("/")]


def bind_from_net(net: Any) -> list[str] | None:
    """bindIp/bindIpAll of a `net` mapping (getCmdLineOpts' parsed.net or mongod.conf's net), None if absent."""
    if not isinstance(net, dict):
        return None
    if net.get("bindIpAll") in (True, "true", "True"):
        return ["0.0.0.0"]
    if "bindIp" in net:
        return parse_bind_ips(net.get("bindIp"))
    return None


def bind_from_config(doc: Any) -> list[str]:
    """What a mongod.conf binds: its net.bindIp, else mongod's default (localhost only since 3.6)."""
    found = bind_from_net((doc or {}).get("net") if isinstance(doc, dict) else None)
    return found if found is not None else ["localhost"]


def is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def exposure(ips: list[str], server_ip: str) -> str:
    """all (a wildcard), server (the server IP among them), loopback (only), other (specific addresses)."""
    if any(ip in WILDCARDS for ip in ips):
        return "all"
    if not ips or all(is_loopback(ip) for ip in ips):
        return "loopback"  # even when server_ip is itself a loopback address: pods never reach it
    return "server" if server_ip in ips else "other"


def judge_bind(source: str, ips: list[str] | None, server_ip: str, listeners: list[str] | None = None) -> Result:
    """Pods reach MongoDB through the host IP: a loopback-only bind breaks them.

    `listeners` (the running server's sockets, when local) catch a config file that was changed
    but not yet applied by a restart.
    """
    if ips is None:
        return skip(Reason.NO_ACCESS, "cannot tell which addresses MongoDB binds: getCmdLineOpts gives no bindIp, "
                    "the config file is unreadable and the server is not on this host", source=source)
    shown = ",".join(ips) or "(none)"
    evidence: dict[str, Any] = {"source": source, "bind_ip": shown, "server_ip": server_ip}
    if listeners is not None:
        evidence["listening"] = ",".join(listeners) or "(none)"
    kind = exposure(ips, server_ip)
    if kind == "loopback":
        return fail(Reason.MISCONFIGURED, f"MongoDB binds only {shown} (from {source}): pods reach it through the "
                    f"host IP {server_ip}", **evidence)
    if listeners and exposure(listeners, server_ip) == "loopback":
        return fail(Reason.MISCONFIGURED, f"{source} says bindIp {shown} but mongod listens only on "
                    f"{','.join(listeners)}: restart MongoDB to apply it", restart_pending=True, **evidence)
    if kind == "other":
        return warn(Reason.MISCONFIGURED, f"MongoDB binds {shown} (from {source}) but not the server IP {server_ip} "
                    f"that pods use", **evidence)
    return ok(f"MongoDB binds {shown} (from {source}): reachable through {server_ip}", **evidence)


def observe_cmdline_net(ctx: "Context") -> tuple[Any, str]:
    """parsed.net of getCmdLineOpts (needs a login with clusterMonitor-like rights); (None, why) otherwise."""
    parsed, source = observe_cmdline(ctx)
    return (None if parsed is None else parsed.get("net")), source


def config_file_mismatch(parsed: dict[str, Any] | None, path: str) -> str:
    """Pure: why `path` is not the file the mongod at Host:Port was started with, or '' when it is (or when the
    server does not say: getCmdLineOpts refused, or a server without parsed.config)."""
    started_with = str((parsed or {}).get("config") or "")
    if not started_with or os.path.normpath(started_with) == os.path.normpath(path):
        return ""
    return (f"the mongod at the credentials file's Host:Port was started with --config {started_with}, not "
            f"{path} (mongodb.config_file): editing {path} would change another server's file")


def observe_cmdline(ctx: "Context") -> tuple[dict[str, Any] | None, str]:
    """`parsed` of getCmdLineOpts through the first login allowed to run it; (None, why) otherwise."""
    from pymongo.errors import OperationFailure, PyMongoError

    for getter in (admin_login, app_login):
        try:
            login = getter(ctx)
        except (NeedsCredentials, PyMongoError, OSError):
            continue
        if login is None or not login.ok:
            continue
        try:
            answer = login.client.admin.command("getCmdLineOpts")
        except (OperationFailure, PyMongoError):
            continue
        return dict(answer.get("parsed") or {}), f"getCmdLineOpts as {login.user}"
    return None, "getCmdLineOpts: no login"


def read_config(ctx: "Context", path: Path) -> tuple[str | None, str]:
    """The config file's text, or (None, why)."""
    try:
        text = ctx.runner.read_file(path)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    if text is None:
        return None, f"{path}: not found"
    return text, ""


def parse_config(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) or {}


def observe_listeners(port: int) -> list[str] | None:
    """Addresses with a TCP listener on `port` on this host (psutil), None when they cannot be read."""
    try:
        import psutil

        conns = psutil.net_connections(kind="inet")
    except Exception:  # noqa: BLE001 - AccessDenied or an unusual /proc: the source is just unavailable
        return None
    return listeners_on(conns, port)


def listeners_on(conns: list[Any], port: int) -> list[str]:
    found: list[str] = []
    for conn in conns:
        if getattr(conn, "status", "") != "LISTEN" or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.laddr.ip not in found:
            found.append(conn.laddr.ip)
    return sorted(found)


def check_bind(ctx: "Context") -> Result:
    """bindIp from getCmdLineOpts, else the config file (local server), else the listening sockets."""
    host, port = ctx.endpoint("mongodb")
    local = ctx.is_local(host)
    listeners = observe_listeners(port) if local else None
    if tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE:
        net, source = observe_cmdline_net(ctx)
    else:
        net, source = None, "getCmdLineOpts: server not reachable"
    ips = bind_from_net(net)
    if ips is not None:
        return judge_bind(source, ips, ctx.server_ip, listeners)
    tried = [f"{source} (no bindIp reported)"]
    if local:
        path = Path(ctx.settings["mongodb.config_file"])
        text, why = read_config(ctx, path)
        if text is not None:
            try:
                doc = parse_config(text)
            except Exception as exc:  # noqa: BLE001 - yaml errors: fall through to the sockets
                why = f"{path}: invalid YAML: {_first_line(exc)}"
            else:
                return judge_bind(f"config file {path}", bind_from_config(doc), ctx.server_ip, listeners)
        tried.append(why)
        if listeners:
            result = judge_bind(f"listening sockets on port {port}", listeners, ctx.server_ip)
            return Result(result.status, result.reason, result.summary, {**result.details, "not_used": tried})
        tried.append(f"no listener on port {port} on this host")
    else:
        tried.append(f"{host} is not this host: config file and sockets not consulted")
    result = judge_bind("none", None, ctx.server_ip)
    return Result(result.status, result.reason, result.summary, {**result.details, "tried": tried})


# ---------------------------------------------------------------------------------------------------
# version
# ---------------------------------------------------------------------------------------------------
def parse_version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(text).split("-")[0])
    return tuple(int(n) for n in numbers[:3])


def judge_version(build: dict[str, Any]) -> Result:
    """StackBill's installer pins 7.0: another major works at one's own risk; below 5.0 is unsupported.

    Reason: MISCONFIGURED ("present, but set up differently from what StackBill needs") fits an installed
    version other than the one the installer pins; nothing is down, expired or short of capacity.
    """
    text = str(build.get("version", ""))
    version = parse_version(text)
    evidence = {"version": text, "git_version": build.get("gitVersion", "")}
    if "secantusVersion" in build:
        evidence["secantus_version"] = build["secantusVersion"]
    if not version:
        return warn(Reason.MISCONFIGURED, f"buildInfo reports no version number ({text!r})", **evidence)
    if version[:2] < MIN_VERSION:
        return fail(Reason.MISCONFIGURED, f"MongoDB {text} is older than {MIN_VERSION[0]}.{MIN_VERSION[1]}: "
                    f"StackBill needs {SUPPORTED_MAJOR}.0 (upgrade MongoDB)", **evidence)
    if version[0] != SUPPORTED_MAJOR:
        return warn(Reason.MISCONFIGURED, f"MongoDB {text} is not the {SUPPORTED_MAJOR}.x that StackBill's installer "
                    f"pins: untested combination", **evidence)
    return ok(f"MongoDB {text}", **evidence)


def observe_build_info(ctx: "Context") -> dict[str, Any]:
    """buildInfo without credentials (mongod allows it), else as the StackBill user."""
    from pymongo.errors import OperationFailure

    try:
        return dict(anon_client(ctx).admin.command("buildInfo"))
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:
            raise
    login = app_login(ctx)
    if not login.ok:
        raise RuntimeError(f"buildInfo needs a login and {login.user}'s is rejected (code {login.code})")
    return dict(login.client.admin.command("buildInfo"))


# ---------------------------------------------------------------------------------------------------
# fix mongodb-user: create the user, or reset its password and roles
# ---------------------------------------------------------------------------------------------------
@dataclass
class AdminAccess:
    """How the fix may manage users: `client` to use, `kind`, and whether it can read users (usersInfo)."""

    kind: str  # admin-login, no-authorization, own-login, localhost-exception
    description: str
    client: Any = field(repr=False, default=None)
    can_view: bool = True


def user_actions(user: dict[str, Any] | None, login_ok: bool, can_view: bool) -> list[str]:
    """What to do to the StackBill user: create, password, roles (pure)."""
    if not can_view:
        return [] if login_ok else ["create"]
    if user is None:
        return ["create"]
    actions = []
    if not login_ok:
        actions.append("password")
    if missing_roles(list(user.get("roles") or [])):
        actions.append("roles")
    return actions


def wanted_roles(user: dict[str, Any] | None) -> list[dict[str, str]]:
    """The required roles plus any others the user already has (the fix adds, never takes away)."""
    roles = [{"role": r, "db": d} for r, d in REQUIRED_ROLES]
    for role, db in sorted(role_pairs(list((user or {}).get("roles") or []))):
        if (role, db) not in REQUIRED_ROLES:
            roles.append({"role": role, "db": db})
    return roles


def _js_roles(roles: list[dict[str, str]]) -> str:
    return "[" + ", ".join(f"{{role: '{r['role']}', db: '{r['db']}'}}" for r in roles) + "]"


def user_statement(username: str, roles: list[dict[str, str]], *, create: bool = False,
                   set_password: bool = False, set_roles: bool = False) -> str:
    """The equivalent mongosh statement, password masked (for plans and logs)."""
    if create:
        return (f"db.getSiblingDB('admin').createUser({{user: '{username}', pwd: '{MASK}', "
                f"roles: {_js_roles(roles)}}})")
    parts = []
    if set_password:
        parts.append(f"pwd: '{MASK}'")
    if set_roles:
        parts.append(f"roles: {_js_roles(roles)}")
    return f"db.getSiblingDB('admin').updateUser('{username}', {{{', '.join(parts)}}})"


def find_admin_access(ctx: "Context", host: str, own: Login) -> tuple[AdminAccess | None, str]:
    """The first way to manage users that works: admin login, no authorization, own login, localhost exception."""
    from pymongo.errors import OperationFailure

    admin_user = str(ctx.settings["mongodb.admin_user"] or "")
    if admin_user:
        if not ctx.settings["mongodb.admin_password"]:
            return None, (f"mongodb.admin_user is {admin_user} but its password is empty: set mongodb.admin_password "
                          f"or SBOPS_MONGODB_ADMIN_PASSWORD")
        login = admin_login(ctx)
        assert login is not None
        if not login.ok:
            return None, (f"the admin login {admin_user} (mongodb.admin_user, authSource admin) was rejected "
                          f"(code {login.code}): correct mongodb.admin_password / SBOPS_MONGODB_ADMIN_PASSWORD")
        return AdminAccess("admin-login", f"as {admin_user} (mongodb.admin_user)", login.client), ""
    anon = anon_client(ctx)
    try:
        anon.admin.command("usersInfo", 1)
    except OperationFailure as exc:
        anon_code = exc.code
    else:
        return AdminAccess("no-authorization", "without a login: authorization is not enforced", anon), ""
    if own.ok:
        try:
            own.client.admin.command("usersInfo", 1)
            return AdminAccess("own-login", f"as {own.user} itself (its login works)", own.client), ""
        except OperationFailure:
            pass
    why_not = localhost_exception_blocker(host, anon)
    if not why_not:
        return AdminAccess("localhost-exception", "through the localhost exception (auth on, no users yet)",
                           anon, can_view=False), ""
    return None, ("no admin access to MongoDB: set mongodb.admin_user and mongodb.admin_password (or env "
                  "SBOPS_MONGODB_ADMIN_PASSWORD) to a user with userAdmin rights in admin; anonymous usersInfo is "
                  f"refused (code {anon_code}) and the localhost exception is not available ({why_not})")


def localhost_exception_blocker(host: str, anon: Any) -> str:
    """Why the localhost exception cannot be used, or "" when it is in effect.

    mongod grants an unauthenticated loopback connection the bootstrap privileges (createUser, grantRole,
    replSetGetStatus) only while no user exists; replSetGetStatus is the side-effect-free probe of that:
    in effect it answers (or NoReplicationEnabled), otherwise code 13.
    """
    from pymongo.errors import OperationFailure

    if not is_loopback(host):
        return f"sbops reaches MongoDB through {host}, not a loopback address"
    try:
        anon.admin.command("replSetGetStatus")
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            return "an unauthenticated replSetGetStatus on loopback is refused: users exist, or the server has none"
    return ""


def plan_user(ctx: "Context", opts: "FixOptions") -> Plan:
    from pymongo.errors import PyMongoError

    host, port = ctx.endpoint("mongodb")
    address = f"{host}:{port}"
    username = ctx.service("mongodb").username
    try:
        password = ctx.password("mongodb")
    except NeedsCredentials as exc:
        return Plan(blockers=(f"{exc}: the fix sets the user's password from the credentials file",))
    reason, error = tcp_probe(host, port, ctx.net_timeout)
    if reason is not Reason.NONE:
        return Plan(blockers=(f"MongoDB at {address} is not reachable ({reason.value}: {error}); see mongodb.reachable",))
    try:
        own = app_login(ctx)
        access, blocker = find_admin_access(ctx, host, own)
        if access is None:
            return Plan(blockers=(blocker,))
        user = users_info(access.client, username) if access.can_view else None
    except PyMongoError as exc:
        return Plan(blockers=(f"MongoDB at {address}: {_first_line(exc)}",))
    actions = user_actions(user, own.ok, access.can_view)
    if not actions:
        return Plan(nothing_to_do=f"{username} exists in admin, logs in with the credentials file's password and has "
                    f"roles {fmt_roles(REQUIRED_ROLES)}")
    roles = wanted_roles(user)
    notes = (f"user management {access.description}",)
    client = access.client

    if "create" in actions:
        def create() -> None:
            client.admin.command("createUser", username, pwd=password.reveal(), roles=roles)
            forget(ctx)

        change = Change(f"create user {username} in admin with roles {fmt_roles(REQUIRED_ROLES)} and the "
                        f"credentials file's password, via the MongoDB driver (the createUser command; in mongosh: "
                        f"{user_statement(username, roles, create=True)})", (), create)
        return Plan(changes=(change,), notes=notes)

    set_password = "password" in actions
    set_roles = "roles" in actions
    what = []
    if set_password:
        what.append("reset its password to the credentials file's")
    if set_roles:
        what.append(f"grant {fmt_roles(missing_roles(list(user.get('roles') or [])))}")  # type: ignore[union-attr]

    def update() -> None:
        fields: dict[str, Any] = {}
        if set_password:
            fields["pwd"] = password.reveal()
        if set_roles:
            fields["roles"] = roles
        client.admin.command("updateUser", username, **fields)
        forget(ctx)

    statement = user_statement(username, roles, set_password=set_password, set_roles=set_roles)
    return Plan(changes=(Change(f"{username}: {' and '.join(what)}, via the MongoDB driver (the updateUser command; "
                                f"in mongosh: {statement})", (), update),), notes=notes)


# ---------------------------------------------------------------------------------------------------
# fix mongodb-config: bindIp and authorization in mongod.conf, then a restart
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigEdit:
    section: str
    key: str
    value: str
    old: Any  # None when absent

    def describe(self) -> str:
        was = "absent" if self.old is None else repr(self.old)
        return f"{self.section}.{self.key}: {self.value} (was {was})"


def config_edits(doc: Any, server_ip: str) -> list[ConfigEdit]:
    """The edits mongod.conf needs: bindIp reachable from pods, authorization enabled (pure)."""
    doc = doc if isinstance(doc, dict) else {}
    edits = []
    net = doc.get("net") if isinstance(doc.get("net"), dict) else {}
    if exposure(bind_from_config(doc), server_ip) not in ("all", "server"):
        edits.append(ConfigEdit("net", "bindIp", WANTED_BIND, net.get("bindIp")))
    security = doc.get("security") if isinstance(doc.get("security"), dict) else {}
    if str(security.get("authorization", "")).lower() != "enabled":
        edits.append(ConfigEdit("security", "authorization", "enabled", security.get("authorization")))
    return edits


_TOP_KEY = re.compile(r"^([A-Za-z_][\w.]*)\s*:(.*)$")


def set_yaml_key(text: str, section: str, key: str, value: str) -> str:
    """Set `section.key: value` in a YAML text, keeping every other line (and comments) as they are.

    Handles block mappings (mongod.conf's style) line by line; anything else (flow style, odd
    indentation) falls back to re-dumping the document, which keeps keys but drops comments.
    """
    import yaml

    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = None
    for i, line in enumerate(lines):
        match = _TOP_KEY.match(line)
        if match and match.group(1) == section:
            rest = match.group(2).split("#", 1)[0].strip()
            if rest:  # flow style or a scalar: not a block mapping
                return _redump(text, section, key, value)
            start = i
            break
    if start is None:
        out = "".join(lines)
        if out and not out.endswith("\n\n"):
            out += "\n" if out.strip() else ""
        result = out + f"{section}:\n  {key}: {value}\n"
    else:
        end = start + 1
        indent = None
        found = None
        while end < len(lines):
            line = lines[end]
            if line.strip() and not line[0].isspace() and not line.lstrip().startswith("#"):
                break
            if line.strip() and not line.lstrip().startswith("#"):
                this = len(line) - len(line.lstrip())
                indent = indent if indent is not None else this
                child = re.match(r"^\s*([\w.]+)\s*:", line)
                if this == indent and child and child.group(1) == key:
                    found = end
            end += 1
        pad = " " * (indent or 2)
        new_line = f"{pad}{key}: {value}\n"
        if found is not None:
            lines[found] = new_line
        else:
            last = start
            for j in range(start + 1, end):
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    last = j
            lines.insert(last + 1, new_line)
        result = "".join(lines)
    try:
        before = yaml.safe_load(text) or {}
        after = yaml.safe_load(result) or {}
    except yaml.YAMLError:
        return _redump(text, section, key, value)
    expected = _with_key(before, section, key, value)
    return result if after == expected else _redump(text, section, key, value)


def _with_key(doc: Any, section: str, key: str, value: str) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    if not isinstance(out.get(section), dict):
        out[section] = {}
    out[section][key] = value
    return out


def _redump(text: str, section: str, key: str, value: str) -> str:
    import yaml

    return yaml.safe_dump(_with_key(yaml.safe_load(text) or {}, section, key, value), sort_keys=False,
                          default_flow_style=False)


def apply_edits(text: str, edits: list[ConfigEdit]) -> str:
    for edit in edits:
        text = set_yaml_key(text, edit.section, edit.key, edit.value)
    return text


CONFIG_KEYS = frozenset({"bindIp", "authorization"})


def running_differs(doc: Any, authz_enforced: bool | None, listeners: list[str] | None, server_ip: str,
                    keys: frozenset[str] = CONFIG_KEYS) -> list[str]:
    """Ways the running server differs from a config file that is already right (a restart is pending)."""
    why = []
    security = (doc or {}).get("security") if isinstance(doc, dict) else None
    file_authz = isinstance(security, dict) and str(security.get("authorization", "")).lower() == "enabled"
    if "authorization" in keys and file_authz and authz_enforced is False:
        why.append("the running server does not enforce authorization")
    if "bindIp" in keys and listeners and exposure(listeners, server_ip) == "loopback" and \
            exposure(bind_from_config(doc), server_ip) in ("all", "server"):
        why.append(f"the running server listens only on {','.join(listeners)}")
    return why


def plan_config(ctx: "Context", opts: "FixOptions", keys: frozenset[str] = CONFIG_KEYS) -> Plan:
    """bindIp and authorization in mongod.conf, then a restart. `keys` limits it to one of the two: the
    installer binds first, creates the user while authorization is off, then enables authorization."""
    from pymongo.errors import PyMongoError

    path = Path(ctx.settings["mongodb.config_file"])
    host, port = ctx.endpoint("mongodb")
    if not ctx.is_local(host):
        return Plan(blockers=(f"MongoDB at {host} is not on this host: run sbops on the MongoDB server to edit {path}",))
    parsed = None
    if tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE:
        try:
            parsed, _ = observe_cmdline(ctx)
        except PyMongoError:
            parsed = None
    other = config_file_mismatch(parsed, str(path))
    if other:
        return Plan(blockers=(f"refusing to change anything: {other}; set mongodb.config_file to that file",))
    text, why = read_config(ctx, path)
    if text is None:
        return Plan(blockers=(f"cannot read mongod's config ({why}): set mongodb.config_file",))
    try:
        doc = parse_config(text)
    except Exception as exc:  # noqa: BLE001 - yaml errors carry the line
        return Plan(blockers=(f"{path}: invalid YAML: {_first_line(exc)}; fix it by hand first",))
    if not isinstance(doc, dict):
        return Plan(blockers=(f"{path}: not a YAML mapping; fix it by hand first",))
    edits = [e for e in config_edits(doc, ctx.server_ip) if e.key in keys]
    reachable = tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE
    authz_enforced: bool | None = None
    if reachable:
        try:
            allowed, code, _ = observe_anonymous_listdatabases(ctx)
            authz_enforced = not allowed and code == UNAUTHORIZED
        except PyMongoError:
            authz_enforced = None
    listeners = observe_listeners(port)
    pending = running_differs(doc, authz_enforced, listeners, ctx.server_ip, keys)
    if not edits and not pending:
        settled = {"bindIp": f"bindIp {','.join(bind_from_config(doc))}", "authorization": "authorization enabled"}
        return Plan(nothing_to_do=f"{path} has {' and '.join(settled[k] for k in settled if k in keys)}, "
                    f"and the running server matches it")

    if any(e.key == "authorization" for e in edits) or "the running server does not enforce authorization" in pending:
        blocker = authorization_blocker(ctx, reachable)
        if blocker:
            return Plan(blockers=(blocker,))

    changes: list[Change] = []
    notes: list[str] = []
    if edits:
        new_text = apply_edits(text, edits)
        mode = _file_mode(path)

        def write() -> None:
            ctx.runner.write_file(path, new_text, mode)

        changes.append(Change(f"edit {path}: " + "; ".join(e.describe() for e in edits) + f" (backup {path}.bak)",
                              (), write, (file_diff(str(path), text, new_text, ctx.secrets()),)))
    argv = service_restart_argv(str(ctx.settings["mongodb.service"]), str(ctx.settings["mongodb.restart_command"]))
    why_restart = "to apply the new config" if edits else "because " + " and ".join(pending)
    if opts.allow_restart:
        def restart() -> None:
            result = ctx.runner.run(argv, timeout=120)
            forget(ctx)
            if not result.ok:
                raise RuntimeError(f"restart failed: {display(argv)}: {result.one_line_error()}")
            if not wait_for_port(host, port, 60):
                raise RuntimeError(f"MongoDB did not accept connections on {host}:{port} within 60s of the restart")

        changes.append(Change(f"restart MongoDB {why_restart}", (display(argv),), restart))
    else:
        notes.append(f"restart pending: MongoDB keeps its old settings until it restarts ({why_restart}); "
                     f"rerun with --restart or run `{display(argv)}`")
    return Plan(changes=tuple(changes), notes=tuple(notes))


def authorization_blocker(ctx: "Context", reachable: bool) -> str:
    """Enabling authorization before the StackBill user can log in would lock the portal out (installer: user first)."""
    from pymongo.errors import PyMongoError

    username = ctx.service("mongodb").username
    if not reachable:
        return (f"enabling authorization needs proof that {username} can log in, and MongoDB is not reachable; "
                f"start it and run `sbops fix mongodb-user` first")
    try:
        login = app_login(ctx)
    except NeedsCredentials as exc:
        return f"enabling authorization needs {username}'s password to verify its login: {exc}"
    except PyMongoError as exc:
        return f"enabling authorization needs proof that {username} can log in: {_first_line(exc)}"
    if not login.ok:
        return (f"enabling authorization now would lock StackBill out: {username} cannot log in (code {login.code}); "
                f"run `sbops fix mongodb-user` first")
    return ""


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o644


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
            return fail(Reason.TIMEOUT, f"MongoDB at {host}:{port} stopped answering: {_first_line(exc)}")
        return fail(reason, f"MongoDB at {host}:{port}: {error}")


# ---------------------------------------------------------------------------------------------------
# uninstall --delete-db / --delete-mongo-data: does the user exist, which databases hold data, drop them
# ---------------------------------------------------------------------------------------------------
USER_NOT_FOUND = 11
SYSTEM_DATABASES = frozenset({"admin", "config", "local"})


def parse_database_list(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """listDatabases -> [{name, bytes, empty}] without MongoDB's own databases (admin, config, local), by name."""
    out = []
    for entry in answer.get("databases") or []:
        name = str(entry.get("name", ""))
        if not name or name in SYSTEM_DATABASES:
            continue
        size = entry.get("sizeOnDisk")
        out.append({"name": name, "bytes": int(size) if isinstance(size, (int, float)) else None,
                    "empty": bool(entry.get("empty", False))})
    return sorted(out, key=lambda d: d["name"])


@dataclass(frozen=True)
class UserPresence:
    """Whether the StackBill user exists (None: cannot tell, `how` says why), and the access that told."""

    exists: bool | None
    how: str
    access: AdminAccess | None = field(default=None, compare=False, repr=False)

    @property
    def can_list_databases(self) -> bool:
        return self.access is not None and self.access.can_view


def observe_user_presence(ctx: "Context") -> UserPresence:
    """The StackBill user's existence through the first access that works (find_admin_access's order).
    With no credentials file its own login is simply not tried; the localhost exception being in effect
    means mongod has no user at all, so the StackBill user is gone too."""
    host, port = ctx.endpoint("mongodb")
    reason, error = tcp_probe(host, port, ctx.net_timeout)
    if reason is not Reason.NONE:  # one timeout, not one per login tried below
        return UserPresence(None, f"MongoDB at {host}:{port} is not reachable ({reason.value}: {error})")
    username = ctx.service("mongodb").username
    try:
        own = app_login(ctx)
    except NeedsCredentials as exc:
        own = Login(username, False, None, str(exc))
    access, blocker = find_admin_access(ctx, host, own)
    if access is None:
        return UserPresence(None, blocker)
    if not access.can_view:
        return UserPresence(False, f"no user exists at all ({access.description})", access)
    return UserPresence(users_info(access.client, username) is not None, access.description, access)


def observe_databases(client: Any) -> list[dict[str, Any]]:
    return parse_database_list(dict(client.admin.command("listDatabases")))


def drop_user_statement(username: str) -> str:
    return f"db.getSiblingDB('{AUTH_DB}').dropUser('{username}')"


def drop_database_statement(name: str) -> str:
    return f"db.getSiblingDB('{name}').dropDatabase()"


def drop_user(client: Any, username: str) -> None:
    """dropUser; a user that is already gone (code 11) is fine."""
    from pymongo.errors import OperationFailure

    try:
        client.admin.command("dropUser", username)
    except OperationFailure as exc:
        if exc.code != USER_NOT_FOUND:
            raise
