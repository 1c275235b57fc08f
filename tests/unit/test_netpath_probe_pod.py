"""The probe pod's pure parts, from tables: the busybox script sbops writes into the pod spec, the pod spec,
how a pod's status reads, the log's lines as attempt records, and the judgements of a TCP-only attempt and
of a pod that gave no answer. The script's behaviour under busybox is in the living-cluster test."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.messages import netpath as msg
from sbops.probes.netpath import judge, podscript
from sbops.probes.netpath.podscript import Probe, PodState
from sbops.probes.netpath.probepod import PodRun
from sbops.probes.netpath.run import pod_failure
from sbops.probes.netpath.targets import Target
from sbops.settings_rules import problem

PROBES = [Probe("mysql", "tcp", "10.0.0.5", 3306), Probe("nfs", "tcp", "nfs.example.com", 2049),
          Probe("services.0", "http", "10.43.0.10", 8080), Probe("services.1", "http", "fd00::1", 80)]


# -- the script -------------------------------------------------------------------------------------------
def test_script_runs_every_attempt_in_the_background_and_ends_with_its_done_line() -> None:
    script = podscript.build_script(PROBES, 2.0)
    lines = script.splitlines()
    assert lines[0] == "T=2"
    assert "tcp mysql 10.0.0.5 3306 &" in lines and "tcp nfs nfs.example.com 2049 &" in lines
    assert "get services.0 http://10.43.0.10:8080/ &" in lines
    assert "get services.1 'http://[fd00::1]:80/' &" in lines
    assert lines[-2:] == ["wait", "echo SBOPS-NETPATH-DONE 4"]
    assert "nc -w" in script and "timeout" in script and "wget -T" not in script  # busybox 1.35's -T crashes


@pytest.mark.parametrize("timeout, seconds", [(2.0, 2), (0.3, 1), (1.5, 2), (4.4, 4)])
def test_the_attempt_timeout_is_whole_seconds_at_least_one(timeout: float, seconds: int) -> None:
    assert podscript.whole_seconds(timeout) == seconds
    assert podscript.build_script(PROBES[:1], timeout).startswith(f"T={seconds}\n")


@pytest.mark.parametrize("probe", [
    Probe("mysql", "tcp", "10.0.0.5; rm -rf /", 3306),  # a value from the Helm values is never shell
    Probe("mysql", "tcp", "$(id)", 3306),
    Probe("mysql", "tcp", "-e/bin/sh", 3306),  # an nc option
    Probe("mysql", "tcp", "host name", 3306),
    Probe("mysql", "tcp", "10.0.0.5", 0),
    Probe("mysql", "tcp", "10.0.0.5", 70000),
    Probe("mysql", "udp", "10.0.0.5", 53),
    Probe("My SQL", "tcp", "10.0.0.5", 3306),
])
def test_the_script_refuses_what_sbops_does_not_produce(probe: Probe) -> None:
    with pytest.raises(ValueError):
        podscript.build_script([probe], 2.0)


def test_the_script_refuses_an_id_twice() -> None:
    with pytest.raises(ValueError):
        podscript.build_script([PROBES[0], PROBES[0]], 2.0)


@pytest.mark.parametrize("host, safe", [("10.0.0.5", True), ("fd00::1", True), ("db.example.com", True),
                                        ("db", True), ("db.example.com.", True), ("-p", False), ("a b", False),
                                        ("a'b", False), ("", False), ("x" * 64, False)])
def test_safe_host(host: str, safe: bool) -> None:
    assert podscript.safe_host(host) is safe


# -- the pod ----------------------------------------------------------------------------------------------
def test_the_manifest_is_a_short_lived_unprivileged_pod_marked_as_sbops() -> None:
    pod = podscript.manifest("sbops-netpath-0a1b2c3d", "sb-apps", "reg/sb-core:lab", "awscred", "echo hi\n", 7.2)
    assert pod["metadata"] == {"name": "sbops-netpath-0a1b2c3d", "namespace": "sb-apps",
                               "labels": {"app.kubernetes.io/managed-by": "sbops",
                                          "app.kubernetes.io/component": "netpath-probe"}}
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 8 + podscript.DEADLINE_MARGIN
    assert spec["imagePullSecrets"] == [{"name": "awscred"}]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    (container,) = spec["containers"]
    assert container["command"] == ["sh", "-c", "echo hi\n"] and container["image"] == "reg/sb-core:lab"
    assert "env" not in container and container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "imagePullSecrets" not in podscript.manifest("n", "ns", "img", "", "", 1)["spec"]


def waiting(reason: str, message: str = "", phase: str = "Pending") -> dict:
    return {"status": {"phase": phase, "containerStatuses": [{"state": {"waiting": {"reason": reason,
                                                                                    "message": message}}}]}}


@pytest.mark.parametrize("pod, expected", [
    ({"status": {"phase": "Succeeded"}}, PodState(done=True, phase="Succeeded")),
    ({"status": {"phase": "Failed", "reason": "DeadlineExceeded"}},
     PodState(done=True, phase="Failed", why="DeadlineExceeded")),
    (waiting("ErrImagePull", "rpc error: not found\nmore"),
     PodState(failure="image_pull", why="ErrImagePull: rpc error: not found", phase="Pending")),
    (waiting("ImagePullBackOff"), PodState(failure="image_pull", why="ImagePullBackOff", phase="Pending")),
    (waiting("InvalidImageName", "bad"), PodState(failure="image_pull", why="InvalidImageName: bad", phase="Pending")),
    (waiting("CreateContainerError", "no sh"),
     PodState(failure="not_running", why="CreateContainerError: no sh", phase="Pending")),
    (waiting("ContainerCreating"), PodState(phase="Pending", why="container waiting: ContainerCreating")),
    ({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                      "reason": "Unschedulable", "message": "0/1 nodes"}]}},
     PodState(phase="Pending", why="not scheduled: Unschedulable 0/1 nodes")),
    ({"status": {}}, PodState(phase="Pending", why="not started yet")),
    ({"status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}},
     PodState(phase="Running", why="container still running")),
])
def test_read_state(pod: dict, expected: PodState) -> None:
    assert podscript.read_state(pod) == expected


@pytest.mark.parametrize("phase, reason", [("Pending", Reason.PENDING), ("Running", Reason.TIMEOUT)])
def test_an_unfinished_pod_is_pending_or_timed_out(phase: str, reason: Reason) -> None:
    assert podscript.not_started_reason(PodState(phase=phase)) is reason


# -- the log ----------------------------------------------------------------------------------------------
LOG = """SBOPS-NETPATH nfs refused 3 nc: can't connect to remote host (10.0.0.9): Connection refused
sh: something the shell said
SBOPS-NETPATH mysql ok 12
SBOPS-NETPATH services.1 timeout 2010
SBOPS-NETPATH services.0 ok 40 Connecting to 10.43.0.10:8080 (10.43.0.10:8080) wget: server returned error: HTTP/1.1 404 Not Found
SBOPS-NETPATH stranger ok 1
SBOPS-NETPATH-DONE 4
"""


def test_parse_log_gives_the_sandbox_paths_attempt_records() -> None:
    found, done = podscript.parse_log(LOG, PROBES)
    assert done is True
    assert found == {
        "mysql": {"address": "10.0.0.5:3306", "outcome": "none", "error": "", "ms": 12},
        "nfs": {"address": "nfs.example.com:2049", "outcome": "refused", "ms": 3,
                "error": "nc: can't connect to remote host (10.0.0.9): Connection refused"},
        "services.0": {"address": "10.43.0.10:8080", "outcome": "none", "error": "", "ms": 40, "http_status": 404},
        "services.1": {"address": "[fd00::1]:80", "outcome": "timeout", "error": "", "ms": 2010},
    }


def test_a_log_cut_short_is_incomplete_and_misses_attempts() -> None:
    found, done = podscript.parse_log(LOG.splitlines()[0] + "\n", PROBES)
    assert done is False and set(found) == {"nfs"}


@pytest.mark.parametrize("probe, word, message, outcome, status", [
    (PROBES[0], "unreachable", "nc: can't connect to remote host (10.0.0.5): No route to host", "unreachable", None),
    (PROBES[0], "error", "nc: something else", "unreachable", None),
    (PROBES[2], "ok", "Connecting to x  HTTP/1.1 200 OK", "none", 200),
    (PROBES[2], "ok", "", "none", None),
    (PROBES[2], "error", "wget: bad header line: SSH-2.0", "misconfigured", None),
    (PROBES[2], "refused", "wget: can't connect to remote host: Connection refused", "refused", None),
])
def test_attempt_record(probe: Probe, word: str, message: str, outcome: str, status: int | None) -> None:
    record = podscript.attempt_record(probe, word, 5, message)
    assert record["outcome"] == outcome
    assert record.get("http_status") == status


# -- the judgements ---------------------------------------------------------------------------------------
TARGET = Target("10.0.0.5", 3306, "helm values", "global.mysql.ip")
POD = "sb-apps/sbops-netpath-0a1b2c3d (probe pod)"


@pytest.mark.parametrize("service, outcome, code, state", [
    ("mysql", "none", "SB8109", Status.OK),
    ("mongodb", "none", "SB8129", Status.OK),
    ("rabbitmq", "none", "SB8149", Status.OK),
    ("nfs", "none", "SB8160", Status.OK),
    ("mysql", "refused", "SB8101", Status.FAIL),
    ("rabbitmq", "timeout", "SB8142", Status.FAIL),
    ("mongodb", "unreachable", "SB8123", Status.FAIL),
    ("nfs", "misconfigured", "SB8163", Status.FAIL),
])
def test_judge_tcp_only(service: str, outcome: str, code: str, state: Status) -> None:
    result = judge.judge_tcp_only(service, POD, TARGET, {"outcome": outcome, "error": "x"}, timeout=2, local=True,
                                  details={})
    assert (result.code, result.status) == (code, state)
    assert POD in result.summary
    if state is Status.OK and service != "nfs":
        assert "not tested" in result.summary and "sbops on the node" in result.summary


def test_a_refused_mysql_on_this_host_names_the_bind_address_fix() -> None:
    result = judge.judge_tcp_only("mysql", POD, TARGET, {"outcome": "refused"}, timeout=2, local=True, details={})
    assert result.fix == "mysql-config"


RUN = PodRun("sb-apps", "sbops-netpath-0a1b2c3d", "reg/sb-core:nope", timeout=2, budget=16.0)


@pytest.mark.parametrize("failure, verb, code, reason", [
    ("no_access", "create", "SB8115", Reason.NO_ACCESS),
    ("image_pull", "", "SB8116", Reason.IMAGE_PULL),
    ("pending", "", "SB8117", Reason.PENDING),
    ("timeout", "", "SB8117", Reason.TIMEOUT),
    ("not_running", "", "SB8118", Reason.NOT_RUNNING),
    ("misconfigured", "", "SB8118", Reason.MISCONFIGURED),
])
def test_pod_failure_is_a_skip_that_says_what_to_do(failure: str, verb: str, code: str, reason: Reason) -> None:
    from dataclasses import replace

    run = replace(RUN, failure=failure, verb=verb, why="because")
    result = pod_failure(msg.MYSQL_COMMON, run, "awscred", {})
    assert (result.code, result.status, result.reason) == (code, Status.SKIP, reason)
    if failure == "image_pull":
        assert "reg/sb-core:nope" in result.summary and "awscred" in result.summary
    if failure == "no_access":
        assert "create" in result.summary and "pods/log" in result.summary


# -- the setting ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, ok", [
    ("", True), ("busybox", True), ("busybox:1.36", True),
    ("730335576030.dkr.ecr.ap-south-1.amazonaws.com/sb-core:lab", True), ("registry:5000/a/b:c", True),
    ("busybox@sha256:" + "a" * 64, True),
    ("Busybox", False), ("busy box", False), ("busybox:", False), ("busybox;id", False), ("-e", False),
])
def test_the_probe_image_setting_is_an_image_reference(value: str, ok: bool) -> None:
    assert (problem("netpath.probe_image", value) == "") is ok
