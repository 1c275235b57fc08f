"""What a StackBill install has left on this server, measured live, for `sbops uninstall` to plan from.

Observation only: each area (the cluster, MySQL, MongoDB, RabbitMQ, the host's files) is read through the
probes the doctor checks use, in parallel, and comes back as plain frozen data. An area that cannot be read
carries `error` (one line, secrets masked) instead of failing the run: the planner decides whether that
blocks anything. The pure parsers live beside their probes (k8s.claim_facts, helm.group_releases) or, when
only the uninstaller needs them, in *_data.py here (mongodb_data.parse_database_list, mysql_data's sizes).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.context import Context

T = TypeVar("T")

REFRESHER_DIR = Path("/etc/systemd/system")
# The modules the observers import; imported once, serially, before the threads start (see engine.preload_clients).
CLIENT_MODULES = ("urllib3", "yaml", "sbops.kuberest", "pymysql", "pymongo", "pika", "requests", "psutil")


@dataclass(frozen=True)
class KubeObject:
    """A named object sbops or the installer created around the release."""

    kind: str  # as kubectl names it: gateway, virtualservice, secret
    namespace: str
    name: str
    exists: bool
    role: str = ""  # what it is for, in words
    used_by: tuple[str, ...] = ()  # other objects that reference it (a TLS secret another Gateway uses)


@dataclass(frozen=True)
class KubeInventory:
    namespace: str
    namespace_phase: str = ""  # "" when the namespace does not exist, else Active / Terminating
    namespace_conditions: tuple[str, ...] = ()
    releases: tuple[dict[str, Any], ...] = ()  # latest revision of every Helm release in the namespace
    objects: tuple[KubeObject, ...] = ()
    claims: tuple[dict[str, Any], ...] = ()  # k8s.claim_facts of each PVC, with `users` (pods mounting it)
    helm: str = ""  # the helm binary's path, "" when not found
    helm_command: str = "helm"
    kubeconfig: str = ""
    error: str = ""

    def release(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.releases if r["name"] == name), None)

    def object(self, kind: str, name: str) -> KubeObject | None:
        return next((o for o in self.objects if o.kind == kind and o.name == name), None)


@dataclass(frozen=True)
class MysqlInventory:
    user: str = "stackbill"
    wanted: tuple[str, ...] = ()  # the databases StackBill uses (stackbill, configuration, the file's Database)
    databases: tuple[dict[str, Any], ...] = ()  # those that exist: name, bytes, tables
    hosts: tuple[str, ...] = ()  # the user's accounts' host parts
    via: str = ""  # which login looked
    error: str = ""


@dataclass(frozen=True)
class MongoInventory:
    user: str = "stackbill"
    user_exists: bool | None = None
    databases: tuple[dict[str, Any], ...] | None = None  # name, bytes, empty; None when they cannot be listed
    via: str = ""
    error: str = ""  # why the user's existence is unknown
    databases_error: str = ""  # why the databases could not be listed


@dataclass(frozen=True)
class RabbitInventory:
    user: str = "stackbill"
    exists: bool | None = None
    via: str = ""
    delete_commands: tuple[str, ...] = ()  # how the backend that looked would delete the user
    error: str = ""


@dataclass(frozen=True)
class HostInventory:
    refresher_units: tuple[str, ...] = ()  # existing unit files of `sbops ecr install-refresher`
    refresher_dir: str = str(REFRESHER_DIR)
    credentials: str = ""  # the credentials file's path ("" when none is known)
    credentials_exists: bool = False
    credentials_backup: bool = False  # <file>.bak, which write_atomic keeps and which holds the same passwords
    exporter_units: tuple[str, ...] = ()  # the unit file of the installer's `sbops exporter` service


@dataclass(frozen=True)
class SystemInventory:
    """The database and NFS packages and their data directories (system_data): measured only when
    --purge-packages or --delete-data-dirs is chosen (`measured` False otherwise)."""

    measured: bool = False
    packages: tuple[dict[str, Any], ...] = ()  # system_data.parse_packages: name, version, kib, installed, status
    patterns: tuple[str, ...] = ()
    apt_command: str = "apt-get"
    packages_error: str = ""
    data_dirs: tuple[dict[str, Any], ...] = ()  # system_data.observe_dirs: path, exists, bytes, files, used_by, problem


@dataclass(frozen=True)
class Inventory:
    release: str
    namespace: str
    kube: KubeInventory
    mysql: MysqlInventory = field(default_factory=MysqlInventory)
    mongodb: MongoInventory = field(default_factory=MongoInventory)
    rabbitmq: RabbitInventory = field(default_factory=RabbitInventory)
    host: HostInventory = field(default_factory=HostInventory)
    system: SystemInventory = field(default_factory=SystemInventory)


# -- observing ---------------------------------------------------------------------------------------
def observe(ctx: "Context", release: str, refresher_dir: Path = REFRESHER_DIR, system: bool = False) -> Inventory:
    """Every area at once (threads: the slowest server bounds the time, not their sum); the packages and data
    directories only with `system` (walking /var/lib/mysql is not free)."""
    import importlib

    from sbops.probes import kubecommon as kc

    for module in CLIENT_MODULES:
        importlib.import_module(module)
    namespace = kc.namespace(ctx)
    with ThreadPoolExecutor(max_workers=4) as pool:
        kube = pool.submit(observe_kube, ctx, namespace)
        mysql = pool.submit(observe_mysql, ctx)
        mongodb = pool.submit(observe_mongodb, ctx)
        rabbitmq = pool.submit(observe_rabbitmq, ctx)
        packages = pool.submit(observe_system, ctx) if system else None
        host = observe_host(ctx, refresher_dir)
        return Inventory(release, namespace, kube.result(), mysql.result(), mongodb.result(), rabbitmq.result(), host,
                         packages.result() if packages is not None else SystemInventory())


def failure(ctx: "Context", exc: BaseException) -> str:
    """One line for an area that could not be read, secrets masked."""
    from sbops.errors import NeedsCredentials
    from sbops.kube import NoKubeconfig
    from sbops.probes import kubecommon as kc
    from sbops.probes.net import one_line

    if kc.api_status(exc) is not None:
        return kc.api_failure_summary("read the cluster", exc)
    if isinstance(exc, (NoKubeconfig, NeedsCredentials)):
        return str(exc)
    if type(exc).__module__.startswith("pymongo"):
        return mongo_failure(ctx, exc)
    return mask_text(one_line(exc) or type(exc).__name__, ctx.secrets())


def tcp_unreachable(ctx: "Context", service: str, label: str) -> str:
    """Why `service`'s address does not accept connections, or "" when it does."""
    from sbops.model import Reason
    from sbops.probes.net import tcp_probe

    host, port = ctx.endpoint(service)
    reason, error = tcp_probe(host, port, ctx.net_timeout)
    return "" if reason is Reason.NONE else f"{label} at {host}:{port} is not reachable ({reason.value}: {error})"


def mongo_failure(ctx: "Context", exc: BaseException) -> str:
    """pymongo's server-selection errors run to a paragraph: say what the socket says instead."""
    from sbops.probes.net import one_line

    host, port = ctx.endpoint("mongodb")
    return tcp_unreachable(ctx, "mongodb", "MongoDB") or mask_text(f"MongoDB at {host}:{port}: {one_line(exc)}",
                                                                    ctx.secrets())


def guarded(ctx: "Context", empty: Callable[[str], T], observer: Callable[[], T]) -> T:
    """Run an area's observer; any failure becomes that area's `error`."""
    try:
        return observer()
    except Exception as exc:  # noqa: BLE001 - reported as the area's error, planned around
        return empty(failure(ctx, exc))


def observe_kube(ctx: "Context", namespace: str) -> KubeInventory:
    helm_command = str(ctx.settings["helm.command"])
    base = {"namespace": namespace, "helm": shutil.which(helm_command) or "", "helm_command": helm_command,
            "kubeconfig": str(ctx.kubeconfig_path or "")}
    return guarded(ctx, lambda why: KubeInventory(error=why, **base), lambda: _read_kube(ctx, namespace, base))


def _read_kube(ctx: "Context", namespace: str, base: dict[str, Any]) -> KubeInventory:
    from sbops.probes import ecr, helm, istio, k8s, tls
    from sbops.probes import kubecommon as kc

    ns = k8s.read_namespace(ctx, namespace)
    releases = tuple(sorted(({"name": name, **helm.latest(revisions), "revisions": len(revisions)}
                             for name, revisions in helm.list_releases(ctx, namespace).items()),
                            key=lambda r: r["name"]))
    settings = ctx.settings
    gateway, vs = str(settings["istio.gateway"]), str(settings["istio.virtualservice"])
    objects = [
        KubeObject("virtualservice", namespace, vs, istio.get_custom(ctx, "virtualservices", namespace, vs) is not None,
                   "Istio routing of the portal's paths"),
        KubeObject("gateway", namespace, gateway, istio.get_custom(ctx, "gateways", namespace, gateway) is not None,
                   "Istio Gateway of the portal's domain"),
    ]
    pull = ecr.read_secret(ctx)
    objects.append(KubeObject("secret", pull.namespace, pull.name, pull.exists, "ECR image pull secret"))
    cert = tls.read_state(ctx)
    objects.append(KubeObject("secret", cert.namespace, cert.name, cert.exists, "TLS certificate and key of the portal",
                              tuple(tls_users(ctx, cert.name, namespace, gateway)) if cert.exists else ()))
    claims = []
    if ns is not None:
        pods = kc.api(ctx).list(kc.path(namespace=namespace, plural="pods"))
        for claim in k8s.observe_claims(ctx, namespace):
            claims.append({**claim, "users": k8s.claim_users(pods, claim["name"])})
    phase = ((ns or {}).get("status") or {}).get("phase", "Active") if ns is not None else ""
    return KubeInventory(namespace_phase=phase, namespace_conditions=tuple(k8s.namespace_conditions(ns)),
                         releases=releases, objects=tuple(objects), claims=tuple(claims), **base)


def tls_users(ctx: "Context", secret: str, namespace: str, gateway: str) -> list[str]:
    """Gateways other than StackBill's that name `secret` as their credential (they would lose HTTPS)."""
    from sbops.probes import istio, tls
    from sbops.probes import kubecommon as kc

    try:
        gateways = kc.api(ctx).list(kc.path(group=istio.GROUP, version=istio.VERSION, plural="gateways"))
    except Exception as exc:  # noqa: BLE001 - no cluster-wide read: only StackBill's own Gateway is known
        if kc.api_status(exc) in (403, 404):
            return []
        raise
    users = []
    for obj in gateways:
        meta = obj.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == (namespace, gateway):
            continue
        if tls.gateway_credential(obj) == secret:
            users.append(f"Gateway {meta.get('namespace')}/{meta.get('name')}")
    return users


def observe_mysql(ctx: "Context") -> MysqlInventory:
    from sbops.probes import mysql
    from sbops.uninstall import mysql_data

    user = ctx.service("mysql").username or "stackbill"
    wanted = mysql.wanted_databases(ctx)

    def read() -> MysqlInventory:
        if "unix_socket" not in mysql.admin_target(ctx):  # both logins go to the same address: look once
            unreachable = tcp_unreachable(ctx, "mysql", "MySQL")
            if unreachable:
                return MysqlInventory(user, wanted, error=unreachable)
        access = mysql.any_session(ctx, prefer_admin=True)
        if access.session is None:
            return MysqlInventory(user, wanted, error=f"no MySQL login works ({access.why})")
        sizes = mysql_data.observe_database_sizes(access.session, wanted)
        databases = tuple({"name": name, **sizes[name]} for name in sorted(sizes))
        hosts = tuple(sorted(mysql.observe_accounts(access.session, user)[0]))
        return MysqlInventory(user, wanted, databases, hosts, access.session.label)

    return guarded(ctx, lambda why: MysqlInventory(user, wanted, error=why), read)


def observe_mongodb(ctx: "Context") -> MongoInventory:
    from sbops.uninstall import mongodb_data

    user = ctx.service("mongodb").username or "stackbill"

    def read() -> MongoInventory:
        presence = mongodb_data.observe_user_presence(ctx)
        if presence.exists is None:
            return MongoInventory(user, None, None, error=presence.how, databases_error=presence.how)
        if not presence.can_list_databases:
            return MongoInventory(user, presence.exists, None, presence.how,
                                  databases_error=f"cannot list databases {presence.how}")
        try:
            databases = tuple(mongodb_data.observe_databases(presence.access.client))  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - e.g. Unauthorized: the user's existence is still known
            return MongoInventory(user, presence.exists, None, presence.how, databases_error=failure(ctx, exc))
        return MongoInventory(user, presence.exists, databases, presence.how)

    return guarded(ctx, lambda why: MongoInventory(user, None, None, error=why, databases_error=why), read)


def observe_rabbitmq(ctx: "Context") -> RabbitInventory:
    from sbops.probes import rabbitmq
    from sbops.uninstall import rabbitmq_data

    user = rabbitmq.username(ctx)

    def read() -> RabbitInventory:
        backend, why = rabbitmq_data.removal_backend(ctx)
        if backend is None:
            return RabbitInventory(user, None, error=f"no way to read RabbitMQ users: {why}")
        exists = backend.observe(user, None).exists
        return RabbitInventory(user, exists, backend.name, rabbitmq_data.delete_user_change(backend, user).commands)

    return guarded(ctx, lambda why: RabbitInventory(user, None, error=why), read)


def observe_host(ctx: "Context", refresher_dir: Path = REFRESHER_DIR) -> HostInventory:
    from sbops.shipped import REFRESHER_UNIT

    units = tuple(str(refresher_dir / f"{REFRESHER_UNIT}.{kind}") for kind in ("timer", "service")
                  if (refresher_dir / f"{REFRESHER_UNIT}.{kind}").exists())
    from sbops.install.monitoring import UNIT as EXPORTER_UNIT

    exporter = tuple(str(refresher_dir / EXPORTER_UNIT) for _ in (0,) if (refresher_dir / EXPORTER_UNIT).exists())
    path = ctx.credentials_path
    return HostInventory(units, str(refresher_dir), str(path or ""), bool(path and path.exists()),
                         bool(path and path.with_name(path.name + ".bak").exists()), exporter)


def observe_system(ctx: "Context") -> SystemInventory:
    from sbops.uninstall import system_data

    patterns = tuple(system_data.split_list(str(ctx.settings["uninstall.packages"])))
    try:
        packages, error = system_data.observe_packages(ctx)
    except Exception as exc:  # noqa: BLE001 - reported as the area's error, planned around
        packages, error = [], failure(ctx, exc)
    return SystemInventory(True, tuple(packages), patterns, str(ctx.settings["uninstall.apt_command"]), error,
                           tuple(system_data.observe_dirs(ctx)))
