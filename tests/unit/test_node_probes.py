"""sbops.probes.node's pure judgements: the kubelet's healthz, containerd's socket, the NFS client."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes import node

URL = "http://127.0.0.1:10248/healthz"


@pytest.mark.parametrize("seen, status, reason, code", [
    ({"status": 200, "body": "ok"}, Status.OK, Reason.NONE, "SB1030"),
    ({"error": "ConnectionRefusedError: [Errno 111]", "reason": "refused"}, Status.FAIL, Reason.NOT_RUNNING, "SB1031"),
    ({"error": "TimeoutError: timed out", "reason": "timeout"}, Status.FAIL, Reason.TIMEOUT, "SB1032"),
    ({"status": 500, "body": "[-]syncloop failed"}, Status.FAIL, Reason.DEGRADED, "SB1033"),
    ({"status": 200, "body": "not ok"}, Status.FAIL, Reason.DEGRADED, "SB1033"),
    ({"status": 404, "body": "404 page not found"}, Status.FAIL, Reason.DEGRADED, "SB1033"),
])
def test_judge_kubelet(seen, status, reason, code):
    result = node.judge_kubelet(URL, seen)
    assert (result.status, result.reason, result.code) == (status, reason, code)


SOCK = "/run/k3s/containerd/containerd.sock"


@pytest.mark.parametrize("path, seen, status, reason, code", [
    (SOCK, {"frame_type": 4, "server_version": "1.6.20"}, Status.OK, Reason.NONE, "SB1040"),
    (SOCK, {"frame_type": 4, "version_error": "ctr not found"}, Status.OK, Reason.NONE, "SB1040"),
    (None, {}, Status.FAIL, Reason.NOT_RUNNING, "SB1041"),
    (SOCK, {"error": "ConnectionRefusedError", "reason": "refused"}, Status.FAIL, Reason.REFUSED, "SB1042"),
    (SOCK, {"error": "PermissionError", "reason": "no_access"}, Status.FAIL, Reason.NO_ACCESS, "SB1042"),
    (SOCK, {"frame_type": None}, Status.FAIL, Reason.MISCONFIGURED, "SB1043"),
    (SOCK, {"frame_type": 7}, Status.FAIL, Reason.MISCONFIGURED, "SB1043"),
])
def test_judge_containerd(path, seen, status, reason, code):
    result = node.judge_containerd(f"{SOCK}:/run/containerd/containerd.sock", path, seen)
    assert (result.status, result.reason, result.code) == (status, reason, code)


def test_judge_containerd_shows_why_the_version_is_unknown():
    result = node.judge_containerd(SOCK, SOCK, {"frame_type": 4, "version_error": "ctr not found"})
    assert "unknown (ctr not found)" in result.summary


@pytest.mark.parametrize("text, version", [
    ("Client:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.20~ds1\n  UUID: x\n", "1.6.20~ds1"),
    ("Client:\n  Version:  1.7.0\n", ""),
    ("", ""),
])
def test_parse_ctr_version(text, version):
    assert node.parse_ctr_version(text) == version


HELPER = {"helper": "/sbin/mount.nfs", "present": True, "executable": True, "resolved": "/usr/sbin/mount.nfs"}


@pytest.mark.parametrize("helper, server, reach, status, reason, code", [
    (HELPER, "10.0.0.10", {"source_address": "10.0.0.11"}, Status.OK, Reason.NONE, "SB5040"),
    ({"helper": "/sbin/mount.nfs", "present": False}, "10.0.0.10", {}, Status.FAIL, Reason.MISSING, "SB5041"),
    ({**HELPER, "executable": False}, "10.0.0.10", {}, Status.FAIL, Reason.MISCONFIGURED, "SB5042"),
    ({**HELPER, "present": False}, "", {}, Status.FAIL, Reason.MISSING, "SB5041"),
    (HELPER, "", {}, Status.SKIP, Reason.NO_ACCESS, "SB5044"),
    (HELPER, "10.0.0.10", {"error": "TimeoutError", "reason": "timeout"}, Status.FAIL, Reason.TIMEOUT, "SB5043"),
    (HELPER, "10.0.0.10", {"error": "ConnectionRefusedError", "reason": "refused"}, Status.FAIL, Reason.REFUSED,
     "SB5043"),
])
def test_judge_nfs_client(helper, server, reach, status, reason, code):
    result = node.judge_nfs_client(helper, server, 2049, reach)
    assert (result.status, result.reason, result.code) == (status, reason, code)
    assert result.details["server"] == server


def test_first_socket(tmp_path):
    there = tmp_path / "b.sock"
    there.write_text("")
    assert node.first_socket(f"{tmp_path / 'a.sock'}:{there}") == str(there)
    assert node.first_socket(str(tmp_path / "a.sock")) is None


@pytest.mark.parametrize("clients, address, expected", [
    (["10.0.0.11"], "10.0.0.11", True),
    (["10.0.0.0/24"], "10.0.0.11", True),
    (["10.0.0.0/255.255.255.0"], "10.0.0.11", True),
    (["10.0.1.0/24"], "10.0.0.11", False),
    ([], "10.0.0.11", False),
    (["*"], "10.0.0.11", True),
    (["node-*.example.com"], "10.0.0.11", None),
    (["node-*.example.com", "10.0.0.11"], "10.0.0.11", True),
    (["fd00::/64"], "10.0.0.11", False),
])
def test_exported_to(clients, address, expected):
    assert node.exported_to(clients, address) is expected


@pytest.mark.parametrize("clients, code, fix", [
    (["10.0.0.11"], "SB5040", None),
    (["10.0.1.0/24"], "SB5045", "nfs-export"),
    (["nodes.example.com"], "SB5040", None),
])
def test_judge_nfs_client_on_the_servers_own_node(clients, code, fix):
    exports = {"file": "/etc/exports", "path": "/data/stackbill", "clients": clients}
    result = node.judge_nfs_client(HELPER, "10.0.0.10", 2049, {"source_address": "10.0.0.11"}, exports)
    assert (result.code, result.fix) == (code, fix)
    assert result.details["exports"] == exports
