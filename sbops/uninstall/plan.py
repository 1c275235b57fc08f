"""`sbops uninstall`'s decisions, pure: from an Inventory and the chosen levels to ordered steps, and from a
second Inventory to what is still there.

Levels (the original uninstall.sh's flags):
  release    always: the ECR refresher timer, the installer's exporter service, the Helm release, the Istio
             VirtualService and Gateway, the ECR pull secret
  pvc        --delete-pvc (and --delete-namespace, which would delete them anyway): the namespace's PVCs
  namespace  --delete-namespace: the TLS secret in istio-system (unless another Gateway uses it), the namespace
  mongo-data --delete-mongo-data: the MongoDB databases other than admin, config and local
  db         --delete-db: the MySQL databases and accounts, the MongoDB and RabbitMQ users, then the
             credentials file, which goes only once a re-probe confirms the rest is gone
  packages   --purge-packages: apt-get purge of the installed database and NFS packages (uninstall.packages)
  data-dirs  --delete-data-dirs: their data directories (uninstall.data_dirs and nfs.path), each allowed,
             reached without a symlink and used by no running process, else the run is refused

The order is the safe one: stop what recreates objects (the refresher), stop the application (the release)
before taking its storage and data away, data before the users that reach it, the passwords last.
Nothing here does I/O; each Step's Change has no `apply` (apply.py binds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sbops.model import Change
from sbops.probes import helm, k8s
from sbops.probes.rabbitmq import human_bytes
from sbops.runner import display
from sbops.uninstall import mongodb_data, mysql_data, system_data
from sbops.uninstall.inventory import Inventory, KubeObject

LEVELS = ("release", "pvc", "namespace", "mongo-data", "db", "packages", "data-dirs")
LEVEL_FLAGS = {"release": "", "pvc": "--delete-pvc", "namespace": "--delete-namespace",
               "mongo-data": "--delete-mongo-data", "db": "--delete-db", "packages": "--purge-packages",
               "data-dirs": "--delete-data-dirs"}
LEVEL_TITLES = {"release": "the release and what was made around it", "pvc": "--delete-pvc: persistent volume claims",
                "namespace": "--delete-namespace: the namespace and the TLS secret",
                "mongo-data": "--delete-mongo-data: MongoDB's databases",
                "db": "--delete-db: databases, users and the credentials file",
                "packages": "--purge-packages: the database and NFS packages",
                "data-dirs": "--delete-data-dirs: the data directories"}
NEVER_REMOVED = ("K3s", "Istio (istiod, the ingress gateway and its NodePorts)",
                 "the MySQL/MariaDB, MongoDB, RabbitMQ and NFS packages, their services and configuration "
                 "(unless --purge-packages)",
                 "the NFS export and /data/stackbill (volume directories follow their reclaim policy; "
                 "the data directories go only with --delete-data-dirs)")


@dataclass(frozen=True)
class Levels:
    pvc: bool = False
    namespace: bool = False
    db: bool = False
    mongo_data: bool = False
    purge_packages: bool = False
    data_dirs: bool = False

    def selected(self, level: str) -> bool:
        return {"release": True, "pvc": self.pvc or self.namespace, "namespace": self.namespace,
                "mongo-data": self.mongo_data, "db": self.db, "packages": self.purge_packages,
                "data-dirs": self.data_dirs}[level]

    @property
    def system(self) -> bool:
        """Whether the packages and data directories must be measured."""
        return self.purge_packages or self.data_dirs

    @property
    def names(self) -> list[str]:
        return [level for level in LEVELS if self.selected(level)]


@dataclass(frozen=True)
class Step:
    """One deletion: `kind` and `target` say what to the appliers and the verifier; `change` to people."""

    level: str
    kind: str
    target: tuple[str, ...]
    what: str  # the object, briefly: "Helm release stackbill"
    change: Change


@dataclass(frozen=True)
class Item:
    """Something not deleted by this run: already gone, or kept (its level not chosen); `why` says which."""

    level: str
    what: str
    why: str


@dataclass(frozen=True)
class UninstallPlan:
    steps: tuple[Step, ...] = ()
    gone: tuple[Item, ...] = ()
    kept: tuple[Item, ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps


class _Builder:
    """Collects steps, gone/kept items, blockers and notes in order while the plan is built."""

    def __init__(self, levels: Levels) -> None:
        self.levels = levels
        self.steps: list[Step] = []
        self.gone: list[Item] = []
        self.kept: list[Item] = []
        self.blockers: list[str] = []
        self.notes: list[str] = []

    def step(self, level: str, kind: str, target: tuple[str, ...], what: str, description: str, *commands: str) -> None:
        self.steps.append(Step(level, kind, target, what, Change(description, tuple(commands))))

    def absent(self, level: str, what: str, why: str) -> None:
        self.gone.append(Item(level, what, why))

    def keep(self, level: str, what: str, why: str = "") -> None:
        self.kept.append(Item(level, what, why or f"add {LEVEL_FLAGS[level]} to delete it"))

    def item(self, level: str, what: str, present: bool, kind: str, target: tuple[str, ...], description: str,
             *commands: str, why_gone: str = "does not exist", size: str = "") -> None:
        """The common case: delete when present and the level is chosen, else say gone or kept (with its size)."""
        if not present:
            self.absent(level, what, why_gone)
        elif self.levels.selected(level):
            self.step(level, kind, target, what, description, *commands)
        else:
            self.keep(level, f"{what} ({size})" if size else what)

    def build(self) -> UninstallPlan:
        return UninstallPlan(tuple(self.steps), tuple(self.gone), tuple(self.kept), tuple(self.blockers),
                             tuple(self.notes))


# -- the plan -------------------------------------------------------------------------------------------
def plan(inv: Inventory, levels: Levels) -> UninstallPlan:
    b = _Builder(levels)
    if inv.namespace in k8s.PROTECTED_NAMESPACES and levels.namespace:
        b.blockers.append(f"refusing to delete namespace {inv.namespace}: it is not StackBill's")
    _plan_release_level(b, inv)
    _plan_claims(b, inv)
    _plan_namespace_level(b, inv)
    _plan_mongo_data(b, inv)
    _plan_databases(b, inv)
    _plan_packages(b, inv)
    _plan_data_dirs(b, inv)
    return b.build()


def _plan_release_level(b: _Builder, inv: Inventory) -> None:
    host, kube = inv.host, inv.kube
    if host.refresher_units:
        timer = next((u for u in host.refresher_units if u.endswith(".timer")), "")
        commands = ([f"systemctl disable --now {timer.rsplit('/', 1)[-1]}"] if timer else []) + \
            ["systemctl daemon-reload"]
        b.step("release", "refresher", host.refresher_units, "ECR refresher timer",
               "stop the ECR refresher timer and remove " + " and ".join(host.refresher_units)
               + " (it would recreate the pull secret)", *commands)
    else:
        b.absent("release", "ECR refresher timer", f"not installed (no sbops-ecr-refresh units in {host.refresher_dir})")
    if host.exporter_units:
        unit = host.exporter_units[0].rsplit("/", 1)[-1]
        b.step("release", "exporter", host.exporter_units, "sbops exporter service",
               f"stop the sbops exporter service and remove {' and '.join(host.exporter_units)} (it would report the "
               "removed installation as failing)", f"systemctl disable --now {unit}", "systemctl daemon-reload")
    else:
        b.absent("release", "sbops exporter service", f"not installed (no sbops-exporter.service in {host.refresher_dir})")
    if kube.error:
        b.blockers.append(f"cannot read the cluster: {kube.error}")
        return
    release = kube.release(inv.release)
    if release is None:
        b.absent("release", f"Helm release {inv.release}", f"no release record in namespace {inv.namespace}")
    elif not kube.helm:
        b.blockers.append(f"helm binary {kube.helm_command!r} not found (setting helm.command): install Helm 3 to "
                          f"uninstall release {inv.release}")
    else:
        argv = helm.uninstall_argv(kube.helm, inv.release, inv.namespace, kube.kubeconfig)
        b.step("release", "helm-uninstall", (inv.release,), f"Helm release {inv.release}", describe_release(release),
               display(argv))
    for obj in kube.objects:
        if obj.namespace == inv.namespace:
            _object_item(b, "release", obj)


def describe_release(release: dict[str, Any]) -> str:
    chart = f"{release['chart'] or 'chart'}-{release['chart_version'] or '?'}"
    what = f"Helm release {release['name']} (chart {chart}, revision {release['revision']}, {release['status'] or 'unknown'})"
    if release["status"] == "uninstalled":
        return f"purge the history of {what}: it was uninstalled with --keep-history"
    return f"uninstall {what}: the chart's workloads, services and settings"


def _object_item(b: _Builder, level: str, obj: KubeObject) -> None:
    label = f"{obj.kind} {obj.namespace}/{obj.name}"
    b.item(level, label, obj.exists, "delete-object", (obj.kind, obj.namespace, obj.name),
           f"via the Kubernetes API: delete {label} ({obj.role})")


def _plan_claims(b: _Builder, inv: Inventory) -> None:
    kube = inv.kube
    if kube.error:
        return
    if not kube.namespace_phase:
        b.absent("pvc", f"PVCs in {inv.namespace}", "the namespace does not exist")
        return
    if not kube.claims:
        b.absent("pvc", f"PVCs in {inv.namespace}", "there are none")
    for claim in kube.claims:
        label = f"PVC {inv.namespace}/{claim['name']} ({claim['capacity']}, {claim['storage_class'] or 'no class'})"
        if not b.levels.selected("pvc"):
            b.keep("pvc", label)
            continue
        state = f"{claim['phase']}, Terminating" if claim["terminating"] else claim["phase"]
        b.step("pvc", "delete-pvc", (inv.namespace, claim["name"]), f"PVC {inv.namespace}/{claim['name']}",
               f"via the Kubernetes API: delete PVC {inv.namespace}/{claim['name']} ({claim['capacity']}, "
               f"{claim['storage_class'] or 'no class'}, {state}): {k8s.data_fate(claim)}")
        if claim.get("users"):
            b.notes.append(f"PVC {claim['name']} is mounted by pod(s) {', '.join(claim['users'])}: sbops waits for "
                           "them to go (the release's pods are deleted first) before the claim can go")


def _plan_namespace_level(b: _Builder, inv: Inventory) -> None:
    kube = inv.kube
    if kube.error:
        return
    for obj in kube.objects:
        if obj.namespace == inv.namespace:
            continue
        if obj.exists and obj.used_by:
            b.keep("namespace", f"{obj.kind} {obj.namespace}/{obj.name}",
                   f"{', '.join(obj.used_by)} uses it too")
            continue
        _object_item(b, "namespace", obj)
    others = [r["name"] for r in kube.releases if r["name"] != inv.release]
    description = f"delete namespace {inv.namespace} and everything left in it"
    if others:
        description += f", including Helm release(s) {', '.join(others)}"
    if kube.namespace_phase == "Terminating":
        description = f"finish deleting namespace {inv.namespace} (already Terminating)"
    b.item("namespace", f"namespace {inv.namespace}", bool(kube.namespace_phase), "delete-namespace",
           (inv.namespace,), f"via the Kubernetes API: {description}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def mysql_size(entry: dict[str, Any]) -> str:
    """"1 table, about 800 rows, 9.4 MB on disk" (the tablespace files), else InnoDB's data + index estimate."""
    parts = [plural(entry["tables"], "table")]
    if entry.get("rows"):
        parts.append(f"about {entry['rows']} rows")
    if entry.get("disk_bytes") is not None:
        parts.append(f"{human_bytes(entry['disk_bytes'])} on disk")
    else:
        parts.append(f"{human_bytes(entry.get('bytes'))} of data and indexes")
    return ", ".join(parts)


def size_text(entry: dict[str, Any], unit: str = "") -> str:
    size = human_bytes(entry.get("bytes")) if entry.get("bytes") is not None else "size unknown"
    return f"{size}{unit}"


def _plan_mongo_data(b: _Builder, inv: Inventory) -> None:
    mongo = inv.mongodb
    if mongo.databases is None:
        if b.levels.mongo_data:
            b.blockers.append(f"MongoDB: cannot list the databases to drop: {mongo.databases_error}")
        return
    if not mongo.databases:
        b.absent("mongo-data", "MongoDB databases", "none besides admin, config and local")
    for db in mongo.databases:
        size = size_text(db, " on disk")
        b.item("mongo-data", f"MongoDB database {db['name']}", True, "drop-mongodb-database", (db["name"],),
               f"drop MongoDB database {db['name']} ({size}), via the MongoDB driver (in mongosh: "
               f"{mongodb_data.drop_database_statement(db['name'])})", size=size)
    if mongo.databases and not b.levels.mongo_data and b.levels.db:
        b.notes.append("--delete-db drops the MongoDB user but keeps MongoDB's databases: sbops cannot tell which of "
                       "them StackBill wrote (its user had root over all of them); add --delete-mongo-data to drop "
                       "every database but admin, config and local")


def _plan_databases(b: _Builder, inv: Inventory) -> None:
    chosen = b.levels.db
    my, mongo, rabbit, host = inv.mysql, inv.mongodb, inv.rabbitmq, inv.host
    if my.error:
        _unmeasured(b, f"MySQL: {my.error}")
    else:
        sizes = {d["name"]: d for d in my.databases}
        for name in my.wanted:
            entry = sizes.get(name)
            what = f"MySQL database {name}"
            size = mysql_size(entry) if entry else ""
            b.item("db", what, entry is not None, "drop-mysql-database", (name,), f"drop {what} ({size})",
                   mysql_data.drop_database_sql(name), size=size)
        if not my.hosts:
            b.absent("db", f"MySQL user {my.user}", "no account")
        for account_host in my.hosts:
            _, _, shown = mysql_data.drop_user_statement(my.user, account_host)
            account = f"MySQL account '{my.user}'@'{account_host}'"
            b.item("db", account, True, "drop-mysql-user", (my.user, account_host), f"drop {account} and its grants",
                   shown)
    if mongo.user_exists is None:
        _unmeasured(b, f"MongoDB: cannot tell whether user {mongo.user} exists: {mongo.error}")
    else:
        b.item("db", f"MongoDB user {mongo.user}", mongo.user_exists, "drop-mongodb-user", (mongo.user,),
               f"drop MongoDB user {mongo.user} (admin) via the MongoDB driver (in mongosh: "
               f"{mongodb_data.drop_user_statement(mongo.user)}); its databases' data stays unless --delete-mongo-data",
               why_gone=f"does not exist ({mongo.via})")
    if rabbit.exists is None:
        _unmeasured(b, f"RabbitMQ: {rabbit.error}")
    else:
        b.item("db", f"RabbitMQ user {rabbit.user}", rabbit.exists, "delete-rabbitmq-user", (rabbit.user,),
               f"delete RabbitMQ user {rabbit.user} and its permissions", *rabbit.delete_commands)
        if chosen and rabbit.exists:
            b.notes.append("RabbitMQ's queues and exchanges on vhost '/' stay (the default vhost is the broker's own)")
    files = [host.credentials] + ([host.credentials + ".bak"] if host.credentials_backup else [])
    if host.credentials_exists:
        if chosen:
            b.step("db", "remove-credentials", tuple(files), f"credentials file {host.credentials}",
                   f"remove the credentials file {' and '.join(files)}, only once the databases are confirmed gone")
        else:
            b.keep("db", f"credentials file {host.credentials}")
    else:
        b.absent("db", "credentials file", f"{host.credentials} does not exist" if host.credentials
                 else "none found (looked at $SBOPS_CREDENTIALS, /root/stackbill-credentials.txt, ~/stackbill-credentials.txt)")


def _plan_packages(b: _Builder, inv: Inventory) -> None:
    system = inv.system
    if not system.measured:
        return
    if system.packages_error:
        if b.levels.purge_packages:
            b.blockers.append(f"cannot measure the packages to purge: {system.packages_error}")
        return
    if not system.packages:
        b.absent("packages", "database and NFS packages", f"none installed (looked for {' '.join(system.patterns)})")
        return
    names = tuple(p["name"] for p in system.packages)
    listed = ", ".join(system_data.package_text(p) for p in system.packages)
    total = sum(p["kib"] or 0 for p in system.packages) * 1024
    what = f"packages {', '.join(names)}"
    if not b.levels.purge_packages:
        b.keep("packages", f"{what} ({human_bytes(total)} installed)")
        return
    b.step("packages", "purge-packages", names, what,
           f"purge {listed}, {human_bytes(total)} in all, with apt-get: their services stop and their configuration "
           "goes; their data directories only with --delete-data-dirs",
           display(system_data.purge_argv(system.apt_command, names)))
    if b.levels.db:
        b.notes.append("after --purge-packages the databases cannot be reached, so the credentials file is kept (sbops "
                       "removes it only once it confirms the databases and users are gone)")


def _plan_data_dirs(b: _Builder, inv: Inventory) -> None:
    system = inv.system
    if not system.measured:
        return
    chosen = b.levels.data_dirs
    for entry in system.data_dirs:
        path = entry["path"]
        if not entry["exists"]:
            b.absent("data-dirs", f"data directory {path}", "does not exist")
            continue
        if entry.get("problem"):
            if chosen:
                b.blockers.append(f"refusing to delete {entry['problem']}")
            else:
                b.keep("data-dirs", f"data directory {path}", entry["problem"])
            continue
        size = system_data.dir_text(entry)
        if entry.get("used_by"):
            why = f"in use by {'; '.join(entry['used_by'])}"
            if chosen:
                b.blockers.append(f"refusing to delete {path} ({size}): {why}; stop that server first "
                                  "(a running server's data directory is never deleted)")
            else:
                b.keep("data-dirs", f"data directory {path} ({size})", why)
            continue
        if entry.get("error"):
            b.notes.append(f"{path}: {entry['error']} (counted without them)")
        b.item("data-dirs", f"data directory {path}", True, "delete-data-dir", (path,),
               f"delete {path} and everything in it ({size}), as `rm -rf` would, after checking again that no "
               "process uses it", size=size)


def _unmeasured(b: _Builder, why: str) -> None:
    """A database area that could not be read: a blocker when --delete-db is chosen, else only a note."""
    if b.levels.db:
        b.blockers.append(why)
    else:
        b.notes.append(f"not measured (kept anyway): {why}")


# -- verification ---------------------------------------------------------------------------------------
def still_there(step: Step, after: Inventory) -> str:
    """'' when the step's target is gone in `after`, else what is left (or why it cannot be told). Pure."""
    kube, kind, target = after.kube, step.kind, step.target
    if kind in ("refresher", "exporter"):
        left = [u for u in target if u in after.host.refresher_units + after.host.exporter_units]
        return f"unit files remain: {', '.join(left)}" if left else ""
    if kind == "remove-credentials":
        return f"{target[0]} remains" if after.host.credentials_exists else ""
    if kind in ("helm-uninstall", "delete-object", "delete-pvc", "delete-namespace") and kube.error:
        return f"cannot tell: {kube.error}"
    if kind == "helm-uninstall":
        release = kube.release(target[0])
        return f"release record remains ({release['status']})" if release else ""
    if kind == "delete-object":
        obj = next((o for o in kube.objects if (o.kind, o.namespace, o.name) == target), None)
        return "still exists" if obj is not None and obj.exists else ""
    if kind == "delete-pvc":
        if not kube.namespace_phase:
            return ""
        claim = next((c for c in kube.claims if c["name"] == target[1]), None)
        return claim_left(claim) if claim else ""
    if kind == "delete-namespace":
        if not kube.namespace_phase:
            return ""
        why = "; ".join(kube.namespace_conditions)
        return f"still {kube.namespace_phase}" + (f": {why}" if why else "")
    if kind == "purge-packages":
        if after.system.packages_error:
            return f"cannot tell: {after.system.packages_error}"
        left = [p["name"] for p in after.system.packages if p["name"] in target]
        return f"still installed or configured: {', '.join(left)}" if left else ""
    if kind == "delete-data-dir":
        entry = next((e for e in after.system.data_dirs if e["path"] == target[0]), None)
        return "still exists" if entry is not None and entry["exists"] else ""
    return _db_still_there(kind, target, after)


def claim_left(claim: dict[str, Any]) -> str:
    if not claim["terminating"]:
        return "still exists"
    if claim.get("users"):
        return f"Terminating: mounted by pod(s) {', '.join(claim['users'])}"
    return f"Terminating: finalizers {', '.join(claim['finalizers']) or 'none'} remain"


def _db_still_there(kind: str, target: tuple[str, ...], after: Inventory) -> str:
    my, mongo, rabbit = after.mysql, after.mongodb, after.rabbitmq
    if kind in ("drop-mysql-database", "drop-mysql-user") and my.error:
        return f"cannot tell: {my.error}"
    if kind == "drop-mysql-database":
        return "still exists" if any(d["name"] == target[0] for d in my.databases) else ""
    if kind == "drop-mysql-user":
        return "still exists" if target[1] in my.hosts else ""
    if kind == "drop-mongodb-user":
        return {True: "still exists", False: ""}.get(mongo.user_exists, f"cannot tell: {mongo.error}")
    if kind == "drop-mongodb-database":
        if mongo.databases is None:
            return f"cannot tell: {mongo.databases_error}"
        return "still exists" if any(d["name"] == target[0] for d in mongo.databases) else ""
    if kind == "delete-rabbitmq-user":
        return {True: "still exists", False: ""}.get(rabbit.exists, f"cannot tell: {rabbit.error}")
    raise ValueError(f"unknown step kind {kind}")


def leftovers(steps: tuple[Step, ...], after: Inventory) -> list[tuple[Step, str]]:
    """(step, what is left) for every step whose target is not gone in `after`."""
    return [(step, left) for step in steps if (left := still_there(step, after))]


def databases_confirmed_gone(after: Inventory) -> list[str]:
    """Why the credentials file must stay: any StackBill database or user still there, or not observable.
    Empty when every one is confirmed gone (the file's passwords are then useless). Pure."""
    why = []
    my, mongo, rabbit = after.mysql, after.mongodb, after.rabbitmq
    if my.error:
        why.append(f"MySQL cannot be checked: {my.error}")
    else:
        why += [f"MySQL database {d['name']} still exists" for d in my.databases]
        why += [f"MySQL account '{my.user}'@'{h}' still exists" for h in my.hosts]
    if mongo.user_exists is None:
        why.append(f"MongoDB user {mongo.user} cannot be checked: {mongo.error}")
    elif mongo.user_exists:
        why.append(f"MongoDB user {mongo.user} still exists")
    if rabbit.exists is None:
        why.append(f"RabbitMQ user {rabbit.user} cannot be checked: {rabbit.error}")
    elif rabbit.exists:
        why.append(f"RabbitMQ user {rabbit.user} still exists")
    return why
