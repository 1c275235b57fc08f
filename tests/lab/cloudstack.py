"""The CloudStack lab: the API STAND-IN (tests/lab/cloudstack_standin.py, not CloudStack: none can be pulled
here) run in-process, and a private Podman with a locally built image that runs the same stand-in in place of
`apache/cloudstack-simulator`.

Podman is real (Debian's `podman`), run as root, with everything it keeps private to the lab: its storage
(graphroot/runroot) and its CNI network configuration live in a temp directory named by CONTAINERS_CONF and
CONTAINERS_STORAGE_CONF, which the tests pass to sbops in its environment (podman reads them; sbops needs no
setting for it). The network is a bridge of the lab's own (`sbcs<n>`, 10.89.<n>.0/24), deleted afterwards.

This machine (cgroup v1, root in a container without CAP_SYS_RESOURCE) needs three things of containers.conf,
found by running podman here: `cgroup_manager = "cgroupfs"` (no systemd to manage scopes),
`events_logger = "file"` (no journald), and default ulimits no higher than this process's hard limits (podman
asks runc for nofile=1048576, which runc cannot set without CAP_SYS_RESOURCE: "error setting rlimits for ready
process: ... operation not permitted").

The image is imported from a root filesystem tarball (`podman import`): this machine's python3 binary, the
shared libraries it and its extension modules load, its standard library, and the stand-in script as the
command. Nothing is pulled.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.cloudstack_standin import StandIn

HERE = Path(__file__).resolve().parent
IMAGE = "localhost/sbops-lab/cloudstack-simulator-standin:1"
CONTAINER_PORT = 5050  # what apache/cloudstack-simulator serves (the script publishes 8080:5050)
STDLIB_SKIP = {"test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "dist-packages",
               "site-packages", "__pycache__", "turtledemo", "unittest"}


@dataclass
class Podman:
    """A private podman: `env` is what to run it (and sbops) with."""

    root: Path
    bridge: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, env={**os.environ, **self.env},
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return proc

    def inspect(self, name: str) -> dict | None:
        proc = self.run("container", "inspect", name, check=False)
        return json.loads(proc.stdout)[0] if proc.returncode == 0 else None

    def remove_all(self) -> None:
        self.run("rm", "--all", "--force", "--time", "0", check=False)


def _limits() -> tuple[int, int]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    cap = lambda v, most: most if v in (resource.RLIM_INFINITY, -1) else min(v, most)  # noqa: E731
    return cap(nofile, 1048576), cap(nproc, 32768)


def write_config(root: Path, index: int) -> tuple[dict[str, str], str]:
    bridge = f"sbcs{index}"
    net = root / "net"
    net.mkdir(parents=True, exist_ok=True)
    nofile, nproc = _limits()
    (root / "containers.conf").write_text(f"""[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root}/events.log"
runtime = "runc"
[network]
network_backend = "cni"
network_config_dir = "{net}"
cni_plugin_dirs = ["/usr/lib/cni"]
""")
    (root / "storage.conf").write_text(f"""[storage]
driver = "vfs"
graphroot = "{root}/graph"
runroot = "{root}/run"
""")
    conflist = {"cniVersion": "0.4.0", "name": "podman", "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(root / "ipam"), "routes": [{"dst": "0.0.0.0/0"}],
                  "ranges": [[{"subnet": f"10.89.{index}.0/24", "gateway": f"10.89.{index}.1"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"}, {"type": "tuning"}]}
    (net / "87-podman-bridge.conflist").write_text(json.dumps(conflist, indent=2))
    env = {"CONTAINERS_CONF": str(root / "containers.conf"), "CONTAINERS_STORAGE_CONF": str(root / "storage.conf")}
    return env, bridge


def _libraries(binaries: list[Path]) -> set[Path]:
    """The shared libraries `binaries` load (ldd), the dynamic loader included."""
    found: set[Path] = set()
    for binary in binaries:
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            for part in line.split():
                if part.startswith("/") and Path(part).exists():
                    found.add(Path(part))
    return found


def build_rootfs_tar(target: Path) -> Path:
    """A tarball of a root filesystem that runs the stand-in with this machine's Python."""
    python = Path(os.path.realpath(sys.base_prefix + f"/bin/python{sys.version_info.major}.{sys.version_info.minor}"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sys.base_prefix) / "lib" / version
    dynload = stdlib / "lib-dynload"
    with tarfile.open(target, "w") as tar:
        def add(path: Path, arcname: str | None = None) -> None:
            tar.add(str(path), arcname=arcname or str(path).lstrip("/"), recursive=False)

        add(python, f"usr/bin/{version}")
        for lib in sorted(_libraries([python, *dynload.glob("*.so")])):
            tar.add(os.path.realpath(lib), arcname=str(lib).lstrip("/"))
        for path in sorted(stdlib.rglob("*")):
            rel = path.relative_to(stdlib)
            if rel.parts and (rel.parts[0] in STDLIB_SKIP or "__pycache__" in rel.parts or
                              rel.parts[0].startswith("config-")):
                continue
            if path.is_file() and not path.is_symlink():
                tar.add(str(path), arcname=str(path).lstrip("/"))
        tar.add(str(HERE / "cloudstack_standin.py"), arcname="standin/cloudstack_standin.py")
        for name in ("tmp", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
    return target


def build_image(podman: Podman, work: Path) -> str:
    tar = build_rootfs_tar(work / "rootfs.tar")
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    command = json.dumps([python, "/standin/cloudstack_standin.py", "--port", str(CONTAINER_PORT)])
    podman.run("import", "--change", f"CMD {command}", "--change", f"EXPOSE {CONTAINER_PORT}", str(tar), IMAGE,
               timeout=300)
    tar.unlink()
    return IMAGE


def wait_api(url: str, timeout: float = 60.0) -> None:
    """Until <url>/api answers anything CloudStack-shaped (JSON)."""
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{url}/api?command=listCapabilities&response=json", timeout=2) as r:
                r.read()
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url}/api does not answer after {timeout:g}s: {last}")


def set_clock(url: str, offset: float) -> None:
    """The stand-in's lab extension: move its clock by `offset` seconds."""
    base = url.rsplit("/client", 1)[0]
    req = urllib.request.Request(f"{base}/lab/clock", data=f"offset={offset}".encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def requests_seen(url: str) -> list[dict]:
    base = url.rsplit("/client", 1)[0]
    with urllib.request.urlopen(f"{base}/lab/requests", timeout=5) as r:
        return json.loads(r.read())["requests"]


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def cloudstack_standin():
    """The API stand-in in this process, on a free port, with the default admin (admin / password)."""
    server = StandIn().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lab_podman(tmp_path_factory):
    """A private Podman with the stand-in simulator image built. Fails (never skips) when podman is absent."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/setup (Debian package podman)")
    root = Path(f"/tmp/sbops-podman-{os.getpid()}")  # short: runroot paths end up in unix socket names
    root.mkdir(mode=0o700)
    index = 100 + os.getpid() % 150
    env, bridge = write_config(root, index)
    podman = Podman(root, bridge, env)
    try:
        build_image(podman, tmp_path_factory.mktemp("cs-image"))
        yield podman
    finally:
        podman.remove_all()
        podman.run("rmi", "--all", "--force", check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "run")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
