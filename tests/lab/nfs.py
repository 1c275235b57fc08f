"""A private NFS "server" for tests: the REAL exportfs on a private exports table, plus a port listener.

What runs for real: nfs-utils' own `exportfs` binary, parsing a temp exports file and keeping its export
table (etab) in a temp state dir. It runs through a small wrapper script that enters a private mount
namespace (`unshare --mount`) and bind-mounts the temp exports file over /etc/exports and the temp state
dir over /var/lib/nfs, so neither the machine's /etc/exports nor its /var/lib/nfs/etab is ever read or
written. sbops is pointed at the wrapper with the setting nfs.exportfs_command.

What cannot run here: the kernel NFS server. This kernel has no `nfsd` filesystem (not in
/proc/filesystems, no modules to load: `mount -t nfsd nfsd /proc/fs/nfsd` fails with "unknown filesystem
type"), so `rpc.nfsd` cannot start and nothing serves NFS on 2049. The server's port is therefore a
stand-in TCP listener process (tests/lab/listener.py, named nfsd) on a free port, set as nfs.port. exportfs works
without the kernel server: it maintains etab, which is what `exportfs -v` lists.

Needs: root, util-linux (`unshare`, `mount`), Debian package nfs-kernel-server (for /usr/sbin/exportfs
and an /etc/exports to bind over). Usable from a script:

    lab = NfsLab(Path("/tmp/nfslab")).start(); lab.seed_stackbill(); print(lab.active()); lab.stop()
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab.common import free_port
from tests.lab.listener import ListenerProc

EXPORTFS = "/usr/sbin/exportfs"

WRAPPER = """#!/bin/sh
# The real exportfs on a private exports table and state dir, in a private mount namespace.
exec unshare --mount --propagation private /bin/sh -c '
mount --bind "$0" /etc/exports && mount --bind "$1" /var/lib/nfs || exit 111
if [ -d /etc/exports.d ]; then mount --bind "$2" /etc/exports.d || exit 111; fi
shift 2
exec {exportfs} "$@"' {exports} {state} {empty} "$@"
"""

SERVER_ADDRESS = "127.0.0.1"  # LabEnv's server_ip: the server's own address, which the export must cover
INSTALLER_HEADER = "# /etc/exports: the access control list for filesystems which may be exported\n#\t\tto NFS clients.  See exports(5).\n"


def unavailable() -> str:
    """Why the lab cannot run here, or '' when it can."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces and bind mounts)"
    if not Path(EXPORTFS).exists():
        return f"{EXPORTFS} missing: install the Debian package nfs-kernel-server"
    if not Path("/etc/exports").is_file():
        return "/etc/exports missing (nfs-kernel-server creates it): nothing to bind the private table over"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} missing (util-linux)"
    return ""


class NfsLab:
    """A private exports table, its export directory, the real exportfs, and a listener for the NFS port."""

    def __init__(self, root: Path, port: int | None = None, bind: str = "0.0.0.0") -> None:
        self.root = Path(root)
        self.bind = bind  # the living cluster's NFS answers on its HOST_IP only (port 2049 there is the lab's)
        self.exports_file = self.root / "exports"
        self.state = self.root / "state"
        self.empty = self.root / "exports.d"
        self.export_dir = self.root / "data" / "stackbill"
        self.exportfs_command = self.root / "bin" / "exportfs"
        self.port = port or free_port(bind)
        self.listener: ListenerProc | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> "NfsLab":
        for d in (self.state, self.empty, self.exportfs_command.parent):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("etab", "rmtab"):
            (self.state / name).touch()
        if not self.exports_file.exists():
            self.exports_file.write_text(INSTALLER_HEADER)
        self.exportfs_command.write_text(WRAPPER.format(
            exportfs=EXPORTFS, exports=self.exports_file, state=self.state, empty=self.empty))
        self.exportfs_command.chmod(0o755)
        self.start_server()
        return self

    def start_server(self) -> None:
        """The NFS port: nfsd listens on all addresses."""
        if self.listener is None:
            self.listener = ListenerProc(self.bind, self.port, self.root / "listener.log", name="nfsd").start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    def restart(self) -> None:
        self.stop()
        self.start_server()

    # -- content ------------------------------------------------------------------------------------
    def seed_stackbill(self, clients: str = SERVER_ADDRESS) -> None:
        """As the installer's setup_nfs(): directory 0777, the export line, then export it.

        Both bash installers write `*`; seed_stackbill("*") reproduces that exactly. The default is what
        sbops's installer writes when the only mounting address it knows is the server's (LabEnv's
        server_ip, 127.0.0.1); "10.0.0.10 127.0.0.1" as a kube lab's node would add. Several clients: a
        space-separated list, each given the installer's options.
        """
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.export_dir.chmod(0o777)
        opts = "(rw,sync,no_subtree_check,no_root_squash)"
        self.exports_file.write_text(
            INSTALLER_HEADER + f"{self.export_dir} " + " ".join(c + opts for c in clients.split()) + "\n")
        self.exportfs("-ra", check=True)

    def seed_for_kube_lab(self, server: str = SERVER_ADDRESS) -> None:
        """Seeded for a test that also runs the kube lab: its node's InternalIP and the server's address (the
        `server_ip` the test's sbops uses) are what nfs.export requires there (the kubelet mounts from the
        node's address)."""
        from tests.lab.kube import NODE_IP

        self.seed_stackbill(f"{NODE_IP} {server}")

    def exportfs(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.exportfs_command), *args], capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"exportfs {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def active(self) -> str:
        return self.exportfs("-v", check=True).stdout

    def settings(self) -> dict[str, object]:
        """The sbops settings that point at this lab."""
        return {"nfs.path": str(self.export_dir), "nfs.exports_file": str(self.exports_file),
                "nfs.exportfs_command": str(self.exportfs_command), "nfs.port": self.port}

    def configure(self, env) -> None:  # env: tests.lab.env.LabEnv
        for key, value in self.settings().items():
            env.set(key, value)


# -- pytest fixtures -------------------------------------------------------------------------------
@pytest.fixture
def nfs_lab(tmp_path: Path) -> Iterator[NfsLab]:
    """A fresh private NFS lab, seeded as sbops's installer would without a node list (the server's address)."""
    why = unavailable()
    if why:
        pytest.fail(f"NFS lab cannot start: {why} (scripts/setup installs what it needs; the lab must run as root)", pytrace=False)
    lab = NfsLab(tmp_path / "nfs").start()
    try:
        lab.seed_stackbill()
        yield lab
    finally:
        lab.stop()
