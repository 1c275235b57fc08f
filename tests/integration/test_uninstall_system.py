"""`sbops uninstall --purge-packages` and `--delete-data-dirs`, for real where that cannot hurt this machine.

Real here: the dpkg database, read only (the measure of the packages is compared with `dpkg-query -s`);
data directories in temp dirs (settings uninstall.data_dirs, uninstall.allowed_roots and nfs.path point at
them), deleted for real; processes that hold a directory (a real `sleep` whose working directory is inside
it, a real process with a file open in it), seen through /proc; a symlink planted on the path.

Faked, and why: the purge itself. Purging the real packages on the test machine would stop and remove its
own MariaDB and RabbitMQ (and everything else that uses them), so setting uninstall.apt_command points at a
harmless script that records its command line and environment instead of apt-get; the tests check that
exact command line. Since nothing is purged, the verification after the run honestly reports the packages as
still installed.

The end-to-end tests run the real `sbops uninstall` CLI against the lab's kube-apiserver (the release level
always reads the cluster first).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from sbops.context import Context
from sbops.settings import Settings
from sbops.uninstall import inventory, system_data
from sbops.uninstall.apply import bind
from sbops.uninstall.plan import Levels, plan
from tests.integration.test_uninstall import kube_env, uninstall
from tests.lab import kube as lab

FAKE_APT = """#!/bin/sh
# stands in for apt-get: records how it was called, purges nothing
printf '%s|%s\\n' "$DEBIAN_FRONTEND" "$*" >> "{log}"
"""


def dpkg_status(name: str) -> dict[str, str]:
    """`dpkg-query -s NAME`'s fields (an independent read of the dpkg database)."""
    proc = subprocess.run(["dpkg-query", "-s", name], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and not line.startswith(" "))


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    mysql, rabbit, nfs = root / "lib" / "mysql", root / "lib" / "rabbitmq", root / "data" / "stackbill"
    for path in (mysql / "stackbill", rabbit / "mnesia", nfs / "sb-apps-sb-data-pvc-1"):
        path.mkdir(parents=True)
    (mysql / "stackbill" / "settings.ibd").write_bytes(b"x" * 16384)
    (mysql / "ibdata1").write_bytes(b"y" * 4096)
    (rabbit / "mnesia" / "schema.DAT").write_bytes(b"z" * 100)
    (nfs / "sb-apps-sb-data-pvc-1" / "upload.bin").write_bytes(b"u" * 1000)
    fake = tmp_path / "fake-apt-get"
    fake.write_text(FAKE_APT.format(log=tmp_path / "apt.log"))
    fake.chmod(0o755)
    return {"root": root, "mysql": mysql, "rabbit": rabbit, "nfs": nfs, "fake": fake, "log": tmp_path / "apt.log"}


def settings_for(dirs: dict[str, Path]) -> dict[str, Any]:
    return {"uninstall.data_dirs": f"{dirs['mysql']}:{dirs['rabbit']}:{dirs['root'] / 'lib' / 'mongodb'}",
            "uninstall.allowed_roots": f"{dirs['root'] / 'lib'}:{dirs['root'] / 'data'}",
            "nfs.path": str(dirs["nfs"]), "uninstall.apt_command": str(dirs["fake"]),
            "uninstall.packages": "mariadb-server* rabbitmq-server nfs-kernel-server mongodb-org* mysql-server*"}


def context(dirs: dict[str, Path]) -> Context:
    return Context(Settings.load(env={}, flags=settings_for(dirs)), None, None, None, None)


@pytest.fixture
def holder(request) -> Iterator[Any]:
    """Start a process whose working directory is the given path; stopped after the test."""
    started: list[subprocess.Popen] = []

    def start(path: Path, open_file: Path | None = None) -> subprocess.Popen:
        if open_file is None:
            proc = subprocess.Popen(["sleep", "300"], cwd=path)
        else:
            code = f"f = open({str(open_file)!r}, 'rb'); import sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); " \
                   "import time; time.sleep(300)"
            proc = subprocess.Popen([sys.executable, "-c", code], cwd="/", stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


# -- the measure ---------------------------------------------------------------------------------------
def test_packages_are_measured_from_the_real_dpkg_database(dirs: dict[str, Path]) -> None:
    ctx = context(dirs)
    system = inventory.observe_system(ctx)
    assert system.measured and system.packages_error == ""
    assert system.packages, "this machine runs MariaDB and RabbitMQ from Debian's packages: the measure must see them"
    names = {p["name"] for p in system.packages}
    assert {"mariadb-server", "rabbitmq-server"} <= names
    for package in system.packages:
        fields = dpkg_status(package["name"])
        assert package["installed"] == (fields["Status"] == "install ok installed")
        assert (package["version"], package["kib"]) == (fields["Version"], int(fields["Installed-Size"]))
    p = plan(replace_system(ctx, system), Levels(purge_packages=True))
    purge = next(s for s in p.steps if s.kind == "purge-packages")
    assert set(purge.target) == names and "mariadb-server " in purge.change.description


def replace_system(ctx: Context, system: inventory.SystemInventory) -> inventory.Inventory:
    from sbops.uninstall.inventory import KubeInventory

    return inventory.Inventory("stackbill", "sb-apps", KubeInventory("sb-apps"), system=system)


def test_data_dirs_are_measured_with_bytes_files_and_users(dirs: dict[str, Path], holder) -> None:
    proc = holder(dirs["rabbit"] / "mnesia")
    entries = {e["path"]: e for e in inventory.observe_system(context(dirs)).data_dirs}
    mysql, rabbit, nfs = (entries[str(dirs[k])] for k in ("mysql", "rabbit", "nfs"))
    assert (mysql["bytes"], mysql["files"], mysql["used_by"], mysql["problem"]) == (16384 + 4096, 2, [], "")
    assert (nfs["bytes"], nfs["files"]) == (1000, 1)
    assert rabbit["used_by"] == [f"sleep (pid {proc.pid}, its working directory)"]
    assert entries[str(dirs["root"] / "lib" / "mongodb")]["exists"] is False


# -- the deletion, for real ----------------------------------------------------------------------------
def test_delete_dir_refuses_while_a_process_holds_it_then_deletes(dirs: dict[str, Path], holder) -> None:
    ctx = context(dirs)
    proc = holder(dirs["root"], open_file=dirs["mysql"] / "ibdata1")
    with pytest.raises(system_data.Refused, match=rf"in use by python[0-9.]* \(pid {proc.pid}, an open file\)"):
        system_data.delete_dir(ctx, str(dirs["mysql"]))
    assert (dirs["mysql"] / "ibdata1").exists()
    proc.kill()
    proc.wait(timeout=10)
    system_data.delete_dir(ctx, str(dirs["mysql"]))
    assert not dirs["mysql"].exists() and dirs["rabbit"].exists()


def test_delete_dir_refuses_a_symlink_and_a_path_outside_the_roots(dirs: dict[str, Path], tmp_path: Path) -> None:
    ctx = context(dirs)
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("keep")
    link = dirs["root"] / "lib" / "mongodb"
    link.symlink_to(elsewhere)
    with pytest.raises(system_data.Refused, match="through a symlink"):
        system_data.delete_dir(ctx, str(link))
    with pytest.raises(system_data.Refused, match="outside the allowed roots"):
        system_data.delete_dir(ctx, str(elsewhere))
    assert (elsewhere / "keep").read_text() == "keep" and link.is_symlink()
    entries = {e["path"]: e for e in inventory.observe_system(ctx).data_dirs}
    assert "through a symlink" in entries[str(link)]["problem"]


def test_purge_runs_the_package_manager_non_interactively_with_the_measured_names(dirs: dict[str, Path]) -> None:
    ctx = context(dirs)
    system = inventory.observe_system(ctx)
    p = plan(replace_system(ctx, system), Levels(purge_packages=True))
    step = next(s for s in p.steps if s.kind == "purge-packages")
    change = bind(ctx, step, 10)
    assert change.apply is not None
    change.apply()
    names = " ".join(p["name"] for p in system.packages)
    assert dirs["log"].read_text() == f"noninteractive|purge -y -q {names}\n"
    assert step.change.commands == (f"env DEBIAN_FRONTEND=noninteractive {dirs['fake']} purge -y -q {names}",)


# -- end to end through the CLI ------------------------------------------------------------------------
def cli_env(tmp_path: Path, kube: lab.KubeLab, helm_bin: str, dirs: dict[str, Path]):
    env = kube_env(tmp_path / "env", kube, helm_bin)
    for key, value in settings_for(dirs).items():
        env.set(key, value)
    return env


def test_cli_refuses_a_held_data_dir_and_changes_nothing(kube: lab.KubeLab, helm_bin: str, tmp_path: Path,
                                                         dirs: dict[str, Path], holder) -> None:
    env = cli_env(tmp_path, kube, helm_bin, dirs)
    proc = holder(dirs["nfs"])
    code, doc, _ = uninstall(env, "--delete-data-dirs", "--purge-packages", "--yes")
    assert (code, doc["outcome"]) == (3, "blocked")
    assert any(f"refusing to delete {dirs['nfs']}" in b and f"sleep (pid {proc.pid}" in b
               for b in doc["plan"]["blockers"]), doc["plan"]["blockers"]
    assert dirs["mysql"].exists() and dirs["nfs"].exists() and not dirs["log"].exists()


def test_cli_measures_then_purges_and_deletes(kube: lab.KubeLab, helm_bin: str, tmp_path: Path,
                                              dirs: dict[str, Path]) -> None:
    env = cli_env(tmp_path, kube, helm_bin, dirs)
    dry = env.sbops("uninstall", "--purge-packages", "--delete-data-dirs", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "--purge-packages: the database and NFS packages" in dry.stdout and "mariadb-server " in dry.stdout
    assert f"delete {dirs['mysql']} and everything in it (20.5 kB in 2 files)" in dry.stdout
    assert dirs["mysql"].exists() and not dirs["log"].exists()

    code, doc, _ = uninstall(env, "--purge-packages", "--delete-data-dirs", "--yes")
    kinds = [s["kind"] for s in doc["plan"]["steps"]]
    assert kinds[-4:] == ["purge-packages", "delete-data-dir", "delete-data-dir", "delete-data-dir"]
    assert not dirs["mysql"].exists() and not dirs["rabbit"].exists() and not dirs["nfs"].exists()
    assert dirs["log"].read_text().startswith("noninteractive|purge -y -q ")
    verify = {v["what"]: v for v in doc["verify"]}
    assert all(verify[f"data directory {dirs[k]}"]["gone"] for k in ("mysql", "rabbit", "nfs"))
    # the purge was faked (see the module docstring): the packages are honestly still there
    purge = next(v for v in doc["verify"] if v["what"].startswith("packages "))
    assert not purge["gone"] and purge["left"].startswith("still installed or configured: ")
    assert (code, doc["outcome"]) == (3, "not-finished")
