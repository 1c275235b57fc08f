"""`sbops uninstall --purge-packages / --delete-data-dirs`, the pure parts from tables: dpkg-query's output,
the allow-list of directories, and the plan and verification of the two levels."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sbops.uninstall import system_data
from sbops.uninstall.inventory import SystemInventory
from sbops.uninstall.plan import Levels, plan, still_there
from tests.unit.test_uninstall_plan import installed

DPKG = ("mariadb-server\tinstall ok installed\t1:10.11.6-0+deb12u1\t53815\n"
        "rabbitmq-server\tinstall ok installed\t3.10.8-1.1\t22814\n"
        "mysql-server\tdeinstall ok config-files\t8.0.36\t\n"
        "mongodb-org-shell\tunknown ok not-installed\t\t\n")


def test_parse_packages() -> None:
    assert system_data.parse_packages(DPKG) == [
        {"name": "mariadb-server", "version": "1:10.11.6-0+deb12u1", "kib": 53815, "installed": True,
         "status": "install ok installed"},
        {"name": "mysql-server", "version": "8.0.36", "kib": None, "installed": False,
         "status": "deinstall ok config-files"},
        {"name": "rabbitmq-server", "version": "3.10.8-1.1", "kib": 22814, "installed": True,
         "status": "install ok installed"},
    ]


def test_purge_is_non_interactive_and_names_exact_packages() -> None:
    assert system_data.purge_argv("apt-get", ["mariadb-server", "rabbitmq-server"]) == [
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-q", "mariadb-server", "rabbitmq-server"]


ROOTS = ["/var/lib", "/etc", "/data"]


@pytest.mark.parametrize("path, real, allowed", [
    ("/var/lib/mysql", "/var/lib/mysql", True),
    ("/data/stackbill", "/data/stackbill", True),
    ("/etc/rabbitmq", None, True),
    ("/var/lib", "/var/lib", False),  # a root itself
    ("/etc", "/etc", False),
    ("/", "/", False),
    ("/home/user/mysql", "/home/user/mysql", False),  # outside the roots
    ("/var/lib/mysql", "/srv/mysql", False),  # a symlink to elsewhere
    ("/var/lib/../../home/x", None, False),  # not normalised
    ("var/lib/mysql", None, False),
    ("/var/libx/mysql", None, False),  # a sibling of a root, not below it
])
def test_path_problem(path, real, allowed) -> None:
    assert (system_data.path_problem(path, ROOTS, real) == "") is allowed


PACKAGES = ({"name": "mariadb-server", "version": "1:10.11.6", "kib": 53815, "installed": True, "status": "i"},
            {"name": "rabbitmq-server", "version": "3.10.8", "kib": 22814, "installed": True, "status": "i"})
MYSQL_DIR = {"path": "/var/lib/mysql", "exists": True, "real": "/var/lib/mysql", "is_dir": True, "bytes": 130_000_000,
             "files": 210, "used_by": [], "problem": ""}
NFS_DIR = {"path": "/data/stackbill", "exists": False, "used_by": [], "problem": ""}


def with_system(**over) -> object:
    system = SystemInventory(True, PACKAGES, ("mariadb-server*", "rabbitmq-server"), "apt-get", "",
                             (MYSQL_DIR, NFS_DIR))
    return replace(installed(), system=replace(system, **over))


BOTH = Levels(purge_packages=True, data_dirs=True)


def kinds(p) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.kind, s.target) for s in p.steps if s.level in ("packages", "data-dirs")]


def test_both_levels_purge_then_delete() -> None:
    p = plan(with_system(), BOTH)
    assert kinds(p) == [("purge-packages", ("mariadb-server", "rabbitmq-server")),
                        ("delete-data-dir", ("/var/lib/mysql",))]
    purge = next(s for s in p.steps if s.kind == "purge-packages")
    assert purge.change.commands == ("env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q mariadb-server "
                                     "rabbitmq-server",)
    assert "55.1 MB" in purge.change.description and "130.0 MB in 210 files" in \
        next(s for s in p.steps if s.kind == "delete-data-dir").change.description
    assert not p.blockers
    assert ("data-dirs", "data directory /data/stackbill", "does not exist") in \
        [(i.level, i.what, i.why) for i in p.gone]


def test_levels_not_chosen_keep_them_with_their_sizes() -> None:
    p = plan(with_system(), Levels())
    assert kinds(p) == []
    kept = [i.what for i in p.kept if i.level in ("packages", "data-dirs")]
    assert kept == ["packages mariadb-server, rabbitmq-server (78.5 MB installed)",
                    "data directory /var/lib/mysql (130.0 MB in 210 files)"]


def test_not_measured_adds_nothing() -> None:
    p = plan(replace(installed(), system=SystemInventory()), Levels())
    assert all(i.level not in ("packages", "data-dirs") for i in (*p.gone, *p.kept))


@pytest.mark.parametrize("change, levels, blocker", [
    ({"data_dirs": (dict(MYSQL_DIR, used_by=["mysqld (pid 812, its working directory)"]),)}, BOTH,
     "refusing to delete /var/lib/mysql (130.0 MB in 210 files): in use by mysqld (pid 812"),
    ({"data_dirs": (dict(MYSQL_DIR, problem="/var/lib/mysql leads elsewhere through a symlink (/srv/mysql): x"),)},
     Levels(data_dirs=True), "refusing to delete /var/lib/mysql leads elsewhere through a symlink"),
    ({"packages": (), "packages_error": "dpkg-query: command not found"}, Levels(purge_packages=True),
     "cannot measure the packages to purge: dpkg-query: command not found"),
])
def test_blockers(change, levels, blocker) -> None:
    p = plan(with_system(**change), levels)
    assert any(b.startswith(blocker) for b in p.blockers), p.blockers


def test_a_used_directory_is_only_kept_when_its_level_is_not_chosen() -> None:
    p = plan(with_system(data_dirs=(dict(MYSQL_DIR, used_by=["mysqld (pid 812, an open file)"]),)),
             Levels(purge_packages=True))
    assert not p.blockers
    assert ("data directory /var/lib/mysql (130.0 MB in 210 files)", "in use by mysqld (pid 812, an open file)") in \
        [(i.what, i.why) for i in p.kept]


def test_verification() -> None:
    p = plan(with_system(), BOTH)
    purge = next(s for s in p.steps if s.kind == "purge-packages")
    delete = next(s for s in p.steps if s.kind == "delete-data-dir")
    same = with_system()
    assert still_there(purge, same) == "still installed or configured: mariadb-server, rabbitmq-server"
    assert still_there(delete, same) == "still exists"
    gone = with_system(packages=(), data_dirs=(dict(MYSQL_DIR, exists=False), NFS_DIR))
    assert (still_there(purge, gone), still_there(delete, gone)) == ("", "")
    unknown = with_system(packages=(), packages_error="dpkg-query: broken")
    assert still_there(purge, unknown) == "cannot tell: dpkg-query: broken"
