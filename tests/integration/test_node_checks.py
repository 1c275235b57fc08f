"""The node agent's own checks against real services: host.containerd against a private containerd (Debian's
package, its own root, state and sockets under a temporary directory), nfs.client against the real
/sbin/mount.nfs and a real listener on the NFS port, host.kubelet against a stand-in of the kubelet's
healthz endpoint.

Mocked, because it cannot run here outside the living cluster: the kubelet (it needs a container runtime, CNI
and an API server to start its health endpoint). The stand-in is a real HTTP server answering as the kubelet's
/healthz does (`ok`, or HTTP 500 naming the failed check). None of these checks has a fix (node services and
packages are the node's own); each test breaks the thing as a user would, sees the reason, repairs it as the
runbook says, and sees the check pass again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab.common import free_port, stop_process
from tests.lab.env import LabEnv, status
from tests.lab.listener import ListenerProc


class Containerd:
    """containerd with everything private: config, root, state, gRPC/ttrpc sockets; CRI disabled."""

    def __init__(self) -> None:
        binary = shutil.which("containerd")
        if binary is None:
            pytest.fail("containerd is not installed (scripts/setup installs Debian's containerd)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="sb14ctd-", dir="/tmp"))  # unix socket paths are short
        self.socket = self.dir / "c.sock"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Containerd":
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.dir / "root"}"\nstate = "{self.dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.dir / "t.sock"}"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n')
        log = open(self.dir / "containerd.log", "ab")
        self.proc = subprocess.Popen([self.binary, "--config", str(config)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        end = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"containerd did not start: {(self.dir / 'containerd.log').read_text()[-1500:]}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    made = Containerd()
    try:
        yield made.start()
    finally:
        made.remove()


def test_containerd_answers_then_stopped_then_started_again(containerd: Containerd, tmp_path: Path) -> None:
    env = LabEnv(tmp_path).set("host.containerd_socket", f"{tmp_path / 'absent.sock'}:{containerd.socket}")
    found = env.check("host.containerd")
    assert (found["status"], found["code"]) == ("ok", "SB1040"), found
    version = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()[2]
    assert found["details"]["server_version"] == version.lstrip("v") or found["details"]["server_version"] == version
    assert found["details"]["frame_type"] == 4

    containerd.stop()  # the user stops containerd
    found = env.check("host.containerd")
    assert found["status"] == "fail" and found["code"] in ("SB1041", "SB1042"), found
    assert found["reason"] in ("not_running", "refused"), found

    containerd.start()  # the runbook's repair: start it again
    assert status(env.check("host.containerd")) == ("ok", "none")


def test_containerd_socket_that_is_not_grpc(tmp_path: Path) -> None:
    """A plain listener on the configured path (another program's socket): misconfigured, not ok."""
    import socket

    path = Path(tempfile.mkdtemp(prefix="sb14s-", dir="/tmp")) / "x.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        found = LabEnv(tmp_path).set("host.containerd_socket", str(path)).check("host.containerd")
        assert (found["status"], found["reason"], found["code"]) == ("fail", "misconfigured", "SB1043"), found
    finally:
        server.close()
        shutil.rmtree(path.parent, ignore_errors=True)


class Healthz(BaseHTTPRequestHandler):
    """The kubelet's /healthz as it answers: `ok`, or 500 with `[-]syncloop failed: ...` when unhealthy."""

    healthy = True

    def do_GET(self) -> None:  # noqa: N802
        body = b"ok" if Healthz.healthy else b"[+]ping ok\n[-]syncloop failed: reason withheld\nhealthz check failed"
        self.send_response(200 if Healthz.healthy else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_kubelet_healthy_unhealthy_stopped_and_back(tmp_path: Path) -> None:
    port = free_port()
    env = LabEnv(tmp_path).set("host.kubelet_healthz", f"http://127.0.0.1:{port}/healthz")
    found = env.check("host.kubelet")
    assert (found["status"], found["reason"], found["code"]) == ("fail", "not_running", "SB1031"), found

    Healthz.healthy = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert env.check("host.kubelet")["code"] == "SB1030"
        Healthz.healthy = False  # the kubelet's sync loop stalls (container runtime down)
        found = env.check("host.kubelet")
        assert (found["status"], found["reason"], found["code"]) == ("fail", "degraded", "SB1033"), found
        assert "syncloop failed" in found["summary"]
        Healthz.healthy = True
        assert status(env.check("host.kubelet")) == ("ok", "none")
    finally:
        server.shutdown()
        server.server_close()


def test_nfs_client_missing_helper_unreachable_server_and_ready(tmp_path: Path) -> None:
    helper = "/sbin/mount.nfs"
    if not os.access(helper, os.X_OK):
        pytest.fail("/sbin/mount.nfs is missing: scripts/setup installs nfs-common")
    port = free_port()
    env = LabEnv(tmp_path).set("nfs.port", port).set("nfs.server", "127.0.0.1")
    env.set("nfs.mount_helper", str(tmp_path / "sbin" / "mount.nfs"))  # the node lacks nfs-common
    found = env.check("nfs.client")
    assert (found["status"], found["reason"], found["code"]) == ("fail", "missing", "SB5041"), found

    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "mount.nfs").write_text("not a program\n")
    found = env.check("nfs.client")
    assert (found["status"], found["reason"], found["code"]) == ("fail", "misconfigured", "SB5042"), found

    env.set("nfs.mount_helper", helper)  # nfs-common installed
    found = env.check("nfs.client")
    assert (found["status"], found["reason"], found["code"]) == ("fail", "refused", "SB5043"), found

    exports = tmp_path / "exports"
    env.set("nfs.exports_file", str(exports)).set("nfs.path", "/data/stackbill")
    # the server is this node: its exports file names another network only
    exports.write_text("/data/stackbill 10.42.0.0/16(rw,sync,no_subtree_check)\n")
    listener = ListenerProc("127.0.0.1", port, name="nfsd").start()  # the server's NFS port answers
    try:
        found = env.check("nfs.client")
        assert (found["status"], found["reason"], found["code"]) == ("fail", "misconfigured", "SB5045"), found
        assert found["fix"] == "nfs-export" and found["details"]["exports"]["clients"] == ["10.42.0.0/16"]
        # the runbook's repair: export the path to this node's address too
        exports.write_text("/data/stackbill 10.42.0.0/16(rw,sync,no_subtree_check) 127.0.0.1(rw,sync,no_subtree_check)\n")
        found = env.check("nfs.client")
        assert (found["status"], found["code"]) == ("ok", "SB5040"), found
        assert found["details"]["source_address"] == "127.0.0.1" and found["details"]["resolved"].endswith("mount.nfs")
        # This machine serves NFS but is not the node (server_ip is elsewhere: the lab's host, whose node runs in
        # a network namespace): its own source address says nothing of the kubelet's; nfs.export judges those.
        exports.write_text("/data/stackbill 10.42.0.0/16(rw,sync,no_subtree_check)\n")
        found = env.set("server_ip", "192.0.2.10").check("nfs.client")
        assert (found["status"], found["code"]) == ("ok", "SB5040"), found
        assert "exports" not in found["details"]
    finally:
        listener.stop()
