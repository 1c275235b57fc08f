"""nfs.* checks and the nfs-export / nfs-directory fixes against a private NFS lab (tests/lab/nfs.py).

Real here: the exports file and the export directory (temp files and dirs), nfs-utils' own `exportfs`
binary (parsing that exports file and keeping the export table in a private state dir, through a
wrapper that runs it in a private mount namespace: the machine's /etc/exports and /var/lib/nfs/etab are
never touched), `chattr +i` for a directory and a file even root cannot write, and a real listening
socket for the NFS port.

Not real, and why: the kernel NFS server. This machine's kernel has no `nfsd` filesystem (absent from
/proc/filesystems, no loadable modules; `mount -t nfsd nfsd /proc/fs/nfsd` fails with "unknown filesystem
type"), so rpc.nfsd cannot run and nothing can serve NFS on 2049 or be mounted. The NFS port is a
stand-in listener process on a free port (setting nfs.port); "port closed" stops it. exportfs itself
does not need the kernel server: `exportfs -ra` and `exportfs -v` work on its etab as on a real server.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from sbops.credentials import Credentials
from tests.lab.env import LabEnv, status
from tests.lab.nfs import INSTALLER_HEADER, SERVER_ADDRESS, NfsLab


def finding(result: dict) -> tuple[str, str, str]:
    """A check's (code, status, reason): the finding of the catalog (sbops/messages/nfs.py), not its wording."""
    return result["code"], result["status"], result["reason"]

POD = "10.42.0.0/16"
SERVER = SERVER_ADDRESS  # no kubeconfig in these tests: the server's own address is what must be covered
OPTS = "(rw,sync,no_subtree_check,no_root_squash)"


@pytest.fixture
def env(nfs_lab: NfsLab, tmp_path: Path) -> LabEnv:  # noqa: F811 - pytest fixture injection
    lab_env = LabEnv(tmp_path / "env")
    nfs_lab.configure(lab_env)
    return lab_env


def fix_ok(env: LabEnv, name: str) -> None:
    proc = env.fix(name)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths made immutable (chattr +i: even root cannot write them); made mutable again afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) not installed")
    paths: list[Path] = []
    yield paths
    for path in paths:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def make_immutable(paths: list[Path], path: Path) -> None:
    proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {proc.stderr.strip()}")
    paths.append(path)


# -- healthy ---------------------------------------------------------------------------------------
def test_seeded_lab_passes_every_nfs_check(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    found = env.doctor("nfs.*")
    assert {cid: status(r) for cid, r in found.items()} == {
        "nfs.export": ("ok", "none"), "nfs.directory": ("ok", "none"), "nfs.server": ("ok", "none"),
        "nfs.client": ("ok", "none")}
    assert found["nfs.server"]["details"]["active_clients"] == [SERVER]
    assert found["nfs.export"]["code"] == "SB5001" and found["nfs.export"]["details"]["nodes_unknown"]  # judged
    # without the node list, and says so


def test_fixes_have_nothing_to_do_on_a_healthy_lab(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    before = nfs_lab.exports_file.read_text()
    for name in ("nfs-export", "nfs-directory"):
        proc = env.fix(name)
        assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout
    assert nfs_lab.exports_file.read_text() == before


# -- nfs.export ------------------------------------------------------------------------------------
def test_export_to_everyone_is_insecure_and_fix_narrows_it(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")  # exactly what the installer writes
    extra = f"{nfs_lab.root / 'gone'} 192.168.9.0/24(ro,sync)   # someone else's, its directory deleted\n"
    with nfs_lab.exports_file.open("a") as handle:
        handle.write(extra)
    before = nfs_lab.exports_file.read_text()
    result = env.check("nfs.export")
    assert finding(result) == ("SB5008", "warn", "insecure")
    assert result["fix"] == "nfs-export"

    proc = env.fix("nfs-export")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: exportfs will complain about" in proc.stdout  # and exportfs -ra exits 1, yet ours is active
    after = nfs_lab.exports_file.read_text()
    assert after == INSTALLER_HEADER + f"{nfs_lab.export_dir} {SERVER}{OPTS}\n" + extra
    assert (nfs_lab.exports_file.stat().st_mode & 0o777) == 0o644
    assert Path(str(nfs_lab.exports_file) + ".bak").read_text() == before
    assert status(env.check("nfs.export")) == ("ok", "none")
    active = nfs_lab.active()
    assert SERVER in active and "<world>" not in active and POD not in active  # re-exported for real


def test_export_line_removed_is_missing_and_fix_restores_it(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.exports_file.write_text(INSTALLER_HEADER)
    result = env.check("nfs.export")
    assert finding(result) == ("SB5003", "fail", "missing")
    fix_ok(env, "nfs-export")
    assert status(env.check("nfs.export")) == ("ok", "none")
    assert nfs_lab.exports_file.read_text().startswith(INSTALLER_HEADER)


def test_exports_file_absent_is_missing(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.exports_file.unlink()
    assert finding(env.check("nfs.export")) == ("SB5002", "fail", "missing")


@pytest.mark.parametrize("line, code", [
    ("{d} 127.0.0.1(ro,sync,no_subtree_check)", "SB5007"),
    ("{d} 127.0.0.1(rw,async,no_subtree_check)", "SB5007"),
    ("{d} 192.168.1.0/24(rw,sync,no_subtree_check)", "SB5005"),
    ("{d} 127.0.0.1 (rw,sync)", "SB5007"),  # the stray space: the server gets ro, the world gets rw
    ("{d} 10.42.0.0/16(rw,sync,no_subtree_check,no_root_squash)", "SB5005"),  # ARCHITECTURE.md's pod network
])
def test_export_misconfigured_and_fixed(env: LabEnv, nfs_lab: NfsLab, line: str, code: str) -> None:  # noqa: F811
    nfs_lab.exports_file.write_text(INSTALLER_HEADER + line.format(d=nfs_lab.export_dir) + "\n")
    assert finding(env.check("nfs.export")) == (code, "fail", "misconfigured")
    fix_ok(env, "nfs-export")
    assert status(env.check("nfs.export")) == ("ok", "none")


def test_export_dry_run_changes_nothing(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")
    before, active = nfs_lab.exports_file.read_text(), nfs_lab.active()
    proc = env.fix("nfs-export", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "exportfs -ra" in proc.stdout and f"{SERVER}{OPTS}" in proc.stdout
    assert nfs_lab.exports_file.read_text() == before
    assert nfs_lab.active() == active
    assert not Path(str(nfs_lab.exports_file) + ".bak").exists()
    assert status(env.check("nfs.export")) == ("warn", "insecure")


def test_export_fix_blocked_when_exports_file_not_writable(env: LabEnv, nfs_lab: NfsLab, immutable) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")
    before = nfs_lab.exports_file.read_text()
    make_immutable(immutable, nfs_lab.exports_file)
    proc = env.fix("nfs-export")
    assert proc.returncode == 3
    assert "cannot run" in proc.stdout and "not writable" in proc.stdout
    assert nfs_lab.exports_file.read_text() == before


def test_export_fix_blocked_when_exportfs_missing(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")
    before = nfs_lab.exports_file.read_text()
    env.set("nfs.exportfs_command", str(nfs_lab.root / "no-such-exportfs"))
    proc = env.fix("nfs-export")
    assert proc.returncode == 3 and "nfs-kernel-server" in proc.stdout
    assert nfs_lab.exports_file.read_text() == before


def test_export_fix_blocked_while_directory_missing(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.exports_file.write_text(INSTALLER_HEADER)
    shutil.rmtree(nfs_lab.export_dir)
    proc = env.fix("nfs-export")
    assert proc.returncode == 3 and "nfs-directory" in proc.stdout
    assert nfs_lab.exports_file.read_text() == INSTALLER_HEADER


# -- nfs.directory ---------------------------------------------------------------------------------
def test_directory_removed_is_missing_and_fix_creates_it(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    shutil.rmtree(nfs_lab.export_dir)
    assert finding(env.check("nfs.directory")) == ("SB5021", "fail", "missing")
    dry = env.fix("nfs-directory", "--dry-run")
    assert dry.returncode == 0 and "mkdir -p" in dry.stdout
    assert not nfs_lab.export_dir.exists()
    fix_ok(env, "nfs-directory")
    assert nfs_lab.export_dir.is_dir() and (nfs_lab.export_dir.stat().st_mode & 0o777) == 0o777
    assert status(env.check("nfs.directory")) == ("ok", "none")


def test_directory_that_is_a_file_is_misconfigured_and_left_alone(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    shutil.rmtree(nfs_lab.export_dir)
    nfs_lab.export_dir.write_text("not a directory\n")
    assert finding(env.check("nfs.directory")) == ("SB5022", "fail", "misconfigured")
    proc = env.fix("nfs-directory")
    assert proc.returncode == 3 and "not a directory" in proc.stdout
    assert nfs_lab.export_dir.read_text() == "not a directory\n"


def test_directory_read_only_is_access_denied(env: LabEnv, nfs_lab: NfsLab, immutable) -> None:  # noqa: F811
    make_immutable(immutable, nfs_lab.export_dir)  # root ignores mode bits, not the immutable attribute
    result = env.check("nfs.directory")
    assert finding(result) == ("SB5024", "fail", "access_denied")
    assert "EPERM" in result["details"]["write_error"]
    proc = env.fix("nfs-directory")
    assert proc.returncode == 3 and "immutable" in proc.stdout
    assert list(nfs_lab.export_dir.iterdir()) == []  # the write test left nothing behind


def test_directory_low_free_space_is_degraded(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    free = shutil.disk_usage(nfs_lab.export_dir).free / 1024**3
    env.set("nfs.min_free_gb", int(free) + 100)
    assert finding(env.check("nfs.directory")) == ("SB5025", "warn", "degraded")


# -- nfs.server ------------------------------------------------------------------------------------
def test_server_port_closed_is_not_running(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.stop()
    result = env.check("nfs.server")
    assert finding(result) == ("SB5031", "fail", "not_running")
    assert result["fix"] is None  # starting the server is systemctl's job (see the runbook)
    nfs_lab.start_server()
    assert status(env.check("nfs.server")) == ("ok", "none")


def test_server_export_inactive_and_fix_reexports(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.exportfs("-ua", check=True)  # unexport everything: the file is fine, the table is empty
    before = nfs_lab.exports_file.read_text()
    result = env.check("nfs.server")
    assert finding(result) == ("SB5033", "fail", "misconfigured")
    assert result["fix"] == "nfs-export"
    assert status(env.check("nfs.export")) == ("ok", "none")
    fix_ok(env, "nfs-export")
    assert nfs_lab.exports_file.read_text() == before  # only re-exported
    assert str(nfs_lab.export_dir) in nfs_lab.active()
    assert status(env.check("nfs.server")) == ("ok", "none")


def test_server_stale_export_after_file_edit(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")
    nfs_lab.exports_file.write_text(INSTALLER_HEADER + f"{nfs_lab.export_dir} {SERVER}(rw,sync,no_subtree_check)\n")
    assert status(env.check("nfs.export")) == ("ok", "none")
    result = env.check("nfs.server")
    assert finding(result) == ("SB5034", "fail", "misconfigured")
    assert result["details"]["active_clients"] == ["*"]
    fix_ok(env, "nfs-export")
    assert status(env.check("nfs.server")) == ("ok", "none")


def test_server_without_exportfs_is_missing(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    env.set("nfs.exportfs_command", str(nfs_lab.root / "no-such-exportfs"))
    assert finding(env.check("nfs.server")) == ("SB5032", "fail", "missing")


# -- a remote NFS server ---------------------------------------------------------------------------
class RemoteNfsEnv(LabEnv):
    def credentials(self) -> Credentials:
        return dataclasses.replace(super().credentials(), nfs_server="198.51.100.7")


def test_remote_nfs_server_is_not_applicable(nfs_lab: NfsLab, tmp_path: Path) -> None:  # noqa: F811
    remote = RemoteNfsEnv(tmp_path / "remote")
    nfs_lab.configure(remote)
    shutil.rmtree(nfs_lab.export_dir)  # would fail nfs.directory if it were this host's business
    found = remote.doctor("nfs.*")
    client = found.pop("nfs.client")  # the client side applies to a remote server: 198.51.100.7 (TEST-NET-2)
    assert (client["code"], client["status"]) == ("SB5043", "fail") and client["details"]["server"] == "198.51.100.7"
    assert {cid: finding(r) for cid, r in found.items()} == {
        "nfs.export": ("SB5010", "skip", "not_applicable"), "nfs.directory": ("SB5026", "skip", "not_applicable"),
        "nfs.server": ("SB5035", "skip", "not_applicable")}


# -- the export's clients are the nodes' addresses (the real kube-apiserver's Node objects) ---------------
# The kubelet mounts NFS volumes in the node's own network namespace: the server sees the node's InternalIP
# (the lab's node: 10.0.0.10) or, on a one-node K3s, its own address (LabEnv's server_ip 127.0.0.1).
from tests.lab.kube import NODE_IP, KubeLab  # noqa: E402

NODES = f"{NODE_IP} {SERVER}"


@pytest.fixture
def kenv(nfs_lab: NfsLab, kube: KubeLab, tmp_path: Path) -> LabEnv:  # noqa: F811
    lab_env = LabEnv(tmp_path / "kenv").set("kubeconfig", str(kube.kubeconfig))
    nfs_lab.configure(lab_env)
    nfs_lab.seed_for_kube_lab()  # NODES
    return lab_env


def add_node(kube: KubeLab, name: str, address: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.api())
    core.create_node({"metadata": {"name": name}})
    core.patch_node_status(name, {"status": {"addresses": [{"type": "InternalIP", "address": address}]}})


def test_node_address_export_passes_and_the_fix_leaves_it_alone(kenv: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    result = kenv.check("nfs.export")
    assert status(result) == ("ok", "none")
    assert result["details"]["node_addresses"] == [NODE_IP] and "nodes_unknown" not in result["details"]
    before, active = nfs_lab.exports_file.read_text(), nfs_lab.active()
    proc = kenv.fix("nfs-export")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout
    assert nfs_lab.exports_file.read_text() == before and nfs_lab.active() == active


def test_pod_network_export_fails_naming_the_nodes_and_the_fix_exports_to_them(kenv: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill(POD)  # ARCHITECTURE.md's export (and the old sbops fix's): no mount works
    result = kenv.check("nfs.export")
    assert status(result) == ("fail", "misconfigured") and result["fix"] == "nfs-export"
    assert result["details"]["missing"] == [NODE_IP, SERVER]
    assert result["code"] == "SB5005" and result["details"]["required"] == [NODE_IP, SERVER]
    fix_ok(kenv, "nfs-export")
    line = nfs_lab.exports_file.read_text().splitlines()[-1]
    assert line == f"{nfs_lab.export_dir} {NODE_IP}{OPTS} {SERVER}{OPTS}"  # never the pod network
    active = nfs_lab.active()
    assert NODE_IP in active and SERVER in active and POD not in active
    assert status(kenv.check("nfs.export")) == ("ok", "none")
    assert status(kenv.check("nfs.server")) == ("ok", "none")


def test_world_export_warns_and_the_fix_narrows_it_to_the_nodes(kenv: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    nfs_lab.seed_stackbill("*")  # both bash installers' line: it works, for anyone
    result = kenv.check("nfs.export")
    assert finding(result) == ("SB5008", "warn", "insecure")
    assert result["details"]["required"] == [NODE_IP, SERVER]
    fix_ok(kenv, "nfs-export")
    assert nfs_lab.exports_file.read_text().splitlines()[-1] == f"{nfs_lab.export_dir} {NODE_IP}{OPTS} {SERVER}{OPTS}"
    assert "<world>" not in nfs_lab.active()
    assert status(kenv.check("nfs.export")) == ("ok", "none")


def test_a_new_node_is_missed_until_the_fix_adds_it(kenv: LabEnv, nfs_lab: NfsLab, kube: KubeLab) -> None:  # noqa: F811
    add_node(kube, "stackbill-node-2", "10.0.0.11")
    result = kenv.check("nfs.export")
    assert status(result) == ("fail", "misconfigured") and result["details"]["missing"] == ["10.0.0.11"]
    assert result["code"] == "SB5005"
    fix_ok(kenv, "nfs-export")
    assert "10.0.0.11" in nfs_lab.active()
    assert status(kenv.check("nfs.export")) == ("ok", "none")


def test_without_the_node_list_the_pod_network_never_passes(kenv: LabEnv, nfs_lab: NfsLab, kube: KubeLab,
                                                            tmp_path: Path) -> None:  # noqa: F811
    nfs_lab.seed_stackbill(POD)
    # an API that does not answer: a kubeconfig pointing at a closed port
    from tests.lab.common import free_port

    text = kube.kubeconfig.read_text().replace(kube.server, f"https://127.0.0.1:{free_port()}")
    down = tmp_path / "down.kubeconfig"
    down.write_text(text)
    kenv.set("kubeconfig", str(down))
    result = kenv.check("nfs.export")
    assert status(result) == ("fail", "misconfigured") and result["details"]["missing"] == [SERVER]
    assert result["code"] == "SB5005" and result["details"]["nodes_unknown"]
    # judged with the server's own address only: an export to it passes, and says how it was judged
    nfs_lab.seed_stackbill(SERVER)
    again = kenv.check("nfs.export")
    assert finding(again) == ("SB5001", "ok", "none") and again["details"]["nodes_unknown"]
