"""The database steps (skipped by --skip-db): MySQL/MariaDB, MongoDB, RabbitMQ and the NFS export.

Each step first makes sure the server runs (installed from packages and started only when nothing
answers on its port), then makes it match the credentials file and StackBill's needs with the same
plans `sbops fix` uses: a re-run repairs users instead of skipping them when the service already runs.
MongoDB follows the original's order: bindIp, the user while authorization is still off, then
authorization and a restart; on a re-run, its plan logs in as the user to verify the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sbops import versions as v
from sbops.diff import file_diff
from sbops.install.steps import DB, Resource, Step, Verify
from sbops.model import Change, Plan, Reason
from sbops.probes.net import tcp_probe, wait_for_port
from sbops.probes.system import (ServiceFacts, apt_install_argv, apt_update_argv, enable_now_argv, installed_packages,
                                 os_release, service_actions)
from sbops.runner import display

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run

START_WAIT = 120.0  # seconds a freshly started server gets to open its port


@dataclass(frozen=True)
class Server:
    """How to install and start one host service when nothing answers on its port."""

    label: str  # MySQL, MongoDB, ...
    endpoint: Callable[["Run", "Context"], tuple[str, int]]
    server_packages: Callable[["Run"], tuple[str, ...]]  # any of these installed: the server is installed
    packages: Callable[["Run"], tuple[str, ...]]  # what to install
    unit: Callable[["Run"], str]
    before_install: Callable[["Run"], list[Change]] = lambda run: []  # raises RuntimeError: cannot install


def answers(host: str, port: int, local: bool, timeout: float) -> bool:
    """Something accepts connections on the port (at the address pods use, or on loopback when local)."""
    if tcp_probe(host, port, timeout)[0] is Reason.NONE:
        return True
    return local and tcp_probe("127.0.0.1", port, timeout)[0] is Reason.NONE


def wait_port(port: int, seconds: float) -> None:
    if not wait_for_port("127.0.0.1", port, seconds, step=0.5):
        raise RuntimeError(f"nothing listens on port {port} {seconds:g}s after the start")


def plan_server(run: "Run", ctx: "Context", server: Server) -> Plan:
    host, port = server.endpoint(run, ctx)
    local = ctx.is_local(host)
    up = answers(host, port, local, ctx.net_timeout)
    installed = installed_packages(run.runner, server.server_packages(run)) if local and not up else {}
    actions, why = service_actions(ServiceFacts(server.label, host, port, local, up, installed, server.unit(run)))
    if not actions:
        return Plan(nothing_to_do=why)
    changes: list[Change] = []
    if "install" in actions:
        packages = server.packages(run)
        try:
            changes += server.before_install(run)
        except RuntimeError as exc:
            return Plan(blockers=(str(exc),))
        install = apt_install_argv(packages)

        def apply_install() -> None:
            run.apt_update()()
            result = run.runner.run(install, timeout=1800)
            if not result.ok:
                raise RuntimeError(f"{display(install)} failed: {result.one_line_error()}")

        changes.append(Change(f"install {', '.join(packages)} (nothing answers on port {port} and no server package "
                              "is installed)", (display(apt_update_argv()), display(install)), apply_install))
    unit = server.unit(run)
    start = enable_now_argv(unit)

    def apply_start() -> None:
        result = run.runner.run(start, timeout=300)
        if not result.ok:
            raise RuntimeError(f"{display(start)} failed: {result.one_line_error()}")
        wait_port(port, START_WAIT)

    what = "" if "install" in actions else f" ({', '.join(f'{k} {val}' for k, val in sorted(installed.items()))} is installed)"
    changes.append(Change(f"enable and start {unit}{what}, then wait for port {port}", (display(start),), apply_start))
    return Plan(changes=tuple(changes))


def distribution(run: "Run") -> tuple[str, str]:
    """(ID, apt codename) of this machine; codename '' when it is not a supported distribution."""
    info = os_release(run.runner)
    key = (info.get("ID", ""), info.get("VERSION_ID", ""))
    return key[0], v.SUPPORTED_OS.get(key, info.get("VERSION_CODENAME", ""))


# -- MySQL -------------------------------------------------------------------------------------------
def mysql_flavour(run: "Run") -> str:
    chosen = str(run.settings["install.mysql_flavour"])
    if chosen in v.MYSQL_PACKAGES:
        return chosen
    return "mysql" if distribution(run)[0] == "ubuntu" else "mariadb"


MYSQL = Server(
    "MySQL", lambda run, ctx: ctx.endpoint("mysql"), lambda run: v.MYSQL_SERVER_PACKAGES,
    lambda run: v.MYSQL_PACKAGES[mysql_flavour(run)],
    lambda run: str(run.settings["mysql.service"]) or mysql_flavour(run),
)


def plan_mysql_config(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_config(ctx, allow_restart=True)


def plan_mysql_schema(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_schema(ctx)


def plan_mysql_user(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mysql

    return mysql.plan_user(ctx)


# -- MongoDB -----------------------------------------------------------------------------------------
def mongodb_repo_files(codename: str) -> tuple[Path, Path, str]:
    """(keyring path, sources.list path, its line) of the vendor's MongoDB 7.0 repository."""
    base, suite, component = v.MONGODB_REPOS[codename]
    key = Path(f"/usr/share/keyrings/mongodb-server-{v.MONGODB_SERIES}.asc")
    listing = Path(f"/etc/apt/sources.list.d/mongodb-org-{v.MONGODB_SERIES}.list")
    return key, listing, f"deb [ signed-by={key} ] {base} {suite} {component}\n"


def mongodb_repo(run: "Run") -> list[Change]:
    _, codename = distribution(run)
    if codename not in v.MONGODB_REPOS:
        raise RuntimeError(f"no MongoDB {v.MONGODB_SERIES} repository is known for this distribution "
                           f"({codename or 'unknown'}): install mongodb-org {v.MONGODB_SERIES} yourself, then re-run")
    key, listing, line = mongodb_repo_files(codename)
    if run.runner.read_file(listing) == line and run.runner.read_file(key) is not None:
        return []

    def apply() -> None:
        armored = run.artifacts.fetcher.get(v.MONGODB_KEY_URL).decode("ascii", "replace")
        if "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
            raise RuntimeError(f"{v.MONGODB_KEY_URL} did not return an OpenPGP public key")
        run.runner.write_file(key, armored, 0o644)
        run.runner.write_file(listing, line, 0o644)
        run.apt_updated = False  # the new repository needs an apt-get update

    return [Change(f"add MongoDB's {v.MONGODB_SERIES} apt repository ({line.split()[5]}): write {listing}, and {key} "
                   f"with the key downloaded from {v.MONGODB_KEY_URL} at apply time", (), apply,
                   (file_diff(str(listing), run.runner.read_file(listing), line),))]


MONGODB = Server(
    "MongoDB", lambda run, ctx: ctx.endpoint("mongodb"), lambda run: v.MONGODB_SERVER_PACKAGES,
    lambda run: v.MONGODB_PACKAGES, lambda run: str(run.settings["mongodb.service"]), mongodb_repo,
)


def plan_mongodb_bind(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mongodb

    return mongodb.plan_config(ctx, allow_restart=True, keys=frozenset({"bindIp"}))


def plan_mongodb_user(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mongodb

    return mongodb.plan_user(ctx)


def plan_mongodb_authorization(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import mongodb

    return mongodb.plan_config(ctx, allow_restart=True, keys=frozenset({"authorization"}))


# -- RabbitMQ ----------------------------------------------------------------------------------------
RABBITMQ = Server(
    "RabbitMQ", lambda run, ctx: ctx.endpoint("rabbitmq"), lambda run: v.RABBITMQ_PACKAGES,
    lambda run: v.RABBITMQ_PACKAGES, lambda run: str(run.settings["rabbitmq.service"]),
)


def plan_rabbitmq_management(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_management(ctx)


def plan_rabbitmq_user(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_user(ctx)


def plan_rabbitmq_guest(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_guest(ctx)


# -- NFS ---------------------------------------------------------------------------------------------
def nfs_endpoint(run: "Run", ctx: "Context") -> tuple[str, int]:
    return run.credentials.nfs_server or ctx.server_ip, int(run.settings["nfs.port"])


NFS = Server("the NFS server", nfs_endpoint, lambda run: v.NFS_PACKAGES, lambda run: v.NFS_PACKAGES,
             lambda run: "nfs-server")


def plan_nfs_directory(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import nfs

    return nfs.plan_directory(ctx)


def plan_nfs_export(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import nfs

    return nfs.plan_export(ctx)


def server_resource(name: str, server: Server) -> Resource:
    return Resource(name, lambda run, ctx: plan_server(run, ctx, server))


STEPS = {
    "mysql": Step("mysql", f"MySQL {v.MYSQL_SERIES} (or MariaDB): stackbill.cnf, databases, the stackbill user", DB, (
        server_resource("mysql.server", MYSQL),
        Resource("mysql.config", plan_mysql_config, needs=("mysql.server",)),
        Resource("mysql.schema", plan_mysql_schema, needs=("mysql.server", "mysql.config")),
        Resource("mysql.user", plan_mysql_user, needs=("mysql.server", "mysql.config")),
    ), verify=(Verify("mysql.reachable"), Verify("mysql.auth"), Verify("mysql.config"), Verify("mysql.schema"),
               Verify("mysql.user"))),
    "mongodb": Step("mongodb", f"MongoDB {v.MONGODB_SERIES}: bindIp, the stackbill user, then authorization", DB, (
        server_resource("mongodb.server", MONGODB),
        Resource("mongodb.bind", plan_mongodb_bind, needs=("mongodb.server",)),
        Resource("mongodb.user", plan_mongodb_user, needs=("mongodb.server", "mongodb.bind")),
        Resource("mongodb.authorization", plan_mongodb_authorization, needs=("mongodb.server", "mongodb.user")),
    ), verify=(Verify("mongodb.reachable"), Verify("mongodb.auth"), Verify("mongodb.user"),
               Verify("mongodb.authorization"), Verify("mongodb.bind"))),
    "rabbitmq": Step("rabbitmq", "RabbitMQ: management plugin, the stackbill administrator, no guest", DB, (
        server_resource("rabbitmq.server", RABBITMQ),
        Resource("rabbitmq.management", plan_rabbitmq_management, needs=("rabbitmq.server",)),
        Resource("rabbitmq.user", plan_rabbitmq_user, needs=("rabbitmq.server",)),
        Resource("rabbitmq.guest", plan_rabbitmq_guest, needs=("rabbitmq.server", "rabbitmq.user")),
    ), verify=(Verify("rabbitmq.reachable"), Verify("rabbitmq.auth"), Verify("rabbitmq.management"),
               Verify("rabbitmq.permissions"), Verify("rabbitmq.guest"))),
    "nfs": Step("nfs", "NFS: the export directory, exported to the node addresses (the kubelet mounts from them)", DB, (
        server_resource("nfs.server", NFS),
        Resource("nfs.directory", plan_nfs_directory),
        Resource("nfs.export", plan_nfs_export, needs=("nfs.server", "nfs.directory")),
    ), verify=(Verify("nfs.directory"), Verify("nfs.export"), Verify("nfs.server"))),
}
