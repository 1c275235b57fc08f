"""The netpath layer's pure parts, from tables: containerd's bundle parser, the choice of pod, the targets
from Helm values, the classification of connection errors, the child's answer, and the judgements."""

from __future__ import annotations

import errno
import json
import socket

import pytest

from sbops.messages import netpath as msg
from sbops.model import Reason, Status
from sbops.probes.netpath import attempts, judge, sandbox, targets
from sbops.probes.netpath.enter import EnterFailed, parse_answer
from sbops.probes.netpath.sandbox import Candidate, Sandbox
from sbops.probes.netpath.targets import Route, Target

SANDBOX_ANNOTATIONS = {
    "io.kubernetes.cri.container-type": "sandbox",
    "io.kubernetes.cri.sandbox-id": "abc",
    "io.kubernetes.cri.sandbox-name": "sb-core-7d9f-x2x",
    "io.kubernetes.cri.sandbox-namespace": "sb-apps",
    "io.kubernetes.cri.sandbox-uid": "0b5c7c1e-1111-2222-3333-444455556666",
    "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/x",
}
POD_NETNS = {"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                                      {"type": "network", "path": "/var/run/netns/cni-1234"}]}}
HOST_NETNS = {"linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]}}


def config(annotations: dict | None = None, **extra) -> str:
    return json.dumps({"ociVersion": "1.0.2", "annotations": annotations if annotations is not None else
                       SANDBOX_ANNOTATIONS, **(extra or POD_NETNS)})


# -- containerd's bundle ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, pid, expected", [
    (config(), "4242\n", Sandbox("id1", "sb-core-7d9f-x2x", "sb-apps", SANDBOX_ANNOTATIONS[
        "io.kubernetes.cri.sandbox-uid"], 4242, host_network=False)),
    (config(**HOST_NETNS), "17", Sandbox("id1", "sb-core-7d9f-x2x", "sb-apps", SANDBOX_ANNOTATIONS[
        "io.kubernetes.cri.sandbox-uid"], 17, host_network=True)),
    # an application container of the pod: not a sandbox
    (config({**SANDBOX_ANNOTATIONS, "io.kubernetes.cri.container-type": "container"}), "99", None),
    # no annotations at all (a task containerd runs for something else), or without the pod's identity
    (config({}), "99", None),
    (config({"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-name": "x"}), "99", None),
])
def test_parse_bundle(text: str, pid: str, expected: Sandbox | None) -> None:
    assert sandbox.parse_bundle("id1", text, pid) == expected


@pytest.mark.parametrize("text, pid", [("{not json", "1"), ("[]", "1"), (config(), ""), (config(), "12a"),
                                       (config(), "0"), (config(), "-5")])
def test_parse_bundle_refuses_what_containerd_does_not_write(text: str, pid: str) -> None:
    with pytest.raises(ValueError):
        sandbox.parse_bundle("id1", text, pid)


def test_read_sandboxes_walks_the_k8s_io_namespace(tmp_path) -> None:
    base = tmp_path / sandbox.TASKS / sandbox.CRI_NAMESPACE
    for name, text, pid in (("aaa", config(), "10"), ("bbb", config({}), "11"), ("ccc", "{bad", "12")):
        (base / name).mkdir(parents=True)
        (base / name / "config.json").write_text(text)
        (base / name / "init.pid").write_text(pid)
    (base / "ddd").mkdir()  # being created: no files yet
    found, problems = sandbox.read_sandboxes(tmp_path)
    assert [s.id for s in found] == ["aaa"] and found[0].pid == 10
    assert len(problems) == 1 and problems[0].startswith("ccc")
    assert sandbox.read_sandboxes(tmp_path / "nothing") == ([], [])


def test_state_dirs_first_existing_wins(tmp_path) -> None:
    assert sandbox.split_dirs(" /run/k3s/containerd: :/run/containerd ") == ["/run/k3s/containerd", "/run/containerd"]
    assert sandbox.state_dir([str(tmp_path / "absent"), str(tmp_path)]) == tmp_path
    assert sandbox.state_dir([str(tmp_path / "absent")]) is None


def pod(name: str, uid: str, *, namespace: str = "sb-apps", phase: str = "Running", ready: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def box(name: str, *, namespace: str = "sb-apps", uid: str = "", pid: int = 100, host: bool = False) -> Sandbox:
    return Sandbox(f"id-{name}", name, namespace, uid or f"uid-{name}", pid, host_network=host)


HOST_INODE = 4026531840


@pytest.mark.parametrize("candidate, why", [
    (Candidate(box("a"), pod("a", "uid-a"), 7), ""),
    (Candidate(box("a", host=True), pod("a", "uid-a"), HOST_INODE), "host network"),
    (Candidate(box("a"), None, 7), "no such pod in the API"),
    (Candidate(box("a"), pod("a", "uid-other"), 7), "the API's pod of that name has another uid (a newer pod)"),
    (Candidate(box("a"), pod("a", "uid-a", phase="Pending"), 7), "pod is Pending"),
    (Candidate(box("a"), pod("a", "uid-a"), None), "process 100 has no network namespace (gone)"),
    (Candidate(box("a"), pod("a", "uid-a"), HOST_INODE), "shares the host's network namespace"),
])
def test_judge_candidate(candidate: Candidate, why: str) -> None:
    assert sandbox.judge_candidate(candidate, HOST_INODE) == why


def test_choose_prefers_a_ready_pod_of_the_stackbill_namespace() -> None:
    other_ready = Candidate(box("gw", namespace="istio-system"), pod("gw", "uid-gw", namespace="istio-system"), 5)
    own_unready = Candidate(box("b"), pod("b", "uid-b", ready=False), 6)
    own_ready = Candidate(box("c"), pod("c", "uid-c"), 7)
    gone = Candidate(box("d"), None, 8)
    chosen, evidence = sandbox.choose([other_ready, own_unready, gone, own_ready], "sb-apps", HOST_INODE)
    assert chosen is own_ready
    assert [e["usable"] for e in evidence] == [True, True, False, True]
    assert sandbox.choose([other_ready, own_unready], "sb-apps", HOST_INODE)[0] is own_unready
    assert sandbox.choose([other_ready, gone], "sb-apps", HOST_INODE)[0] is other_ready
    assert sandbox.choose([gone], "sb-apps", HOST_INODE)[0] is None


def test_located_says_why_there_is_none() -> None:
    empty = sandbox.Located("/run/k3s/containerd", None, None, [], [])
    assert "no pod sandbox under /run/k3s/containerd/" in empty.why_none()
    _, evidence = sandbox.choose([Candidate(box("d"), None, 8)], "sb-apps", HOST_INODE)
    assert "no such pod in the API" in sandbox.Located("/s", None, None, evidence, []).why_none()


# -- targets ----------------------------------------------------------------------------------------------
VALUES = {"global": {"domain": "portal.example.com",
                     "mysql": {"ip": "10.0.0.5", "port": "3307", "username": "stackbill", "password": "x"},
                     "mongo": {"ip": "10.0.0.6"}, "rabbitmq": {"ip": "10.0.0.7", "port": 5673},
                     "nfs": {"server": "10.0.0.8", "path": "/data/stackbill"}}}


@pytest.mark.parametrize("values, service, fallback, expected", [
    (VALUES, "mysql", ("127.0.0.1", 3306), Target("10.0.0.5", 3307, targets.VALUES, "global.mysql.ip")),
    (VALUES, "mongodb", None, Target("10.0.0.6", 27017, targets.VALUES, "global.mongo.ip")),
    (VALUES, "rabbitmq", None, Target("10.0.0.7", 5673, targets.VALUES, "global.rabbitmq.ip")),
    (VALUES, "nfs", None, Target("10.0.0.8", 2049, targets.VALUES, "global.nfs.server")),
    # no release: the credentials file's address, and the target says so
    (None, "mysql", ("10.0.0.9", 3306), Target("10.0.0.9", 3306, targets.CREDENTIALS, "Host/Port")),
    ({"global": {"mysql": {"ip": ""}}}, "mysql", ("10.0.0.9", 3306),
     Target("10.0.0.9", 3306, targets.CREDENTIALS, "Host/Port")),
    ({"global": "odd"}, "nfs", ("10.0.0.9", 2049), Target("10.0.0.9", 2049, targets.CREDENTIALS, "NFS Server")),
    # a port that is not one falls back to the standard port
    ({"global": {"mysql": {"ip": "h", "port": "x"}}}, "mysql", None, Target("h", 3306, targets.VALUES, "global.mysql.ip")),
    (None, "mysql", None, None),
])
def test_choose_target(values, service, fallback, expected) -> None:
    assert targets.choose_target(values, service, fallback) == expected


def test_release_values_merge_user_values_over_chart_defaults() -> None:
    record = {"chart": {"values": {"global": {"mysql": {"ip": "default", "port": 3306}, "keep": 1}}},
              "config": {"global": {"mysql": {"ip": "10.0.0.5"}}}}
    assert targets.release_values(record) == {"global": {"mysql": {"ip": "10.0.0.5", "port": 3306}, "keep": 1}}
    assert targets.release_values(None) is None
    assert targets.release_values({"config": None, "chart": {}}) == {}


VS = {"spec": {"http": [
    {"match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "sb-admin", "port": {"number": 80}}}]},
    {"match": [{"uri": {"prefix": "/core"}}], "route": [{"destination": {"host": "sb-core.sb-apps.svc.cluster.local",
                                                                         "port": {"number": 8080}}}]},
    {"match": [{"uri": {"prefix": "/x"}}], "route": [{"destination": {"host": "other.elsewhere"}}]},
    {"match": [{"uri": {"prefix": "/ui"}}], "route": [{"destination": {"host": "sb-ui"}}]},
    {"match": [{"uri": {"prefix": "/gone"}}], "route": [{"destination": {"host": "sb-gone", "port": {"number": 80}}}]},
    {"match": [{"uri": {"prefix": "/hl"}}], "route": [{"destination": {"host": "sb-headless", "port": {"number": 80}}}]},
]}}


def service(ip: str, *ports: int) -> dict:
    return {"spec": {"clusterIP": ip, "ports": [{"port": p} for p in ports]}}


def test_routed_services_and_their_cluster_ips() -> None:
    routes = targets.routed_services(VS, "sb-apps")
    assert [r.service for r in routes] == ["sb-admin", "sb-core", "sb-ui", "sb-gone", "sb-headless"]
    found, untestable = targets.service_targets(routes, {
        "sb-admin": service("10.43.0.10", 80), "sb-core": service("10.43.0.11", 8080, 9090),
        "sb-ui": service("10.43.0.12", 80), "sb-headless": service("None", 80)})
    assert [(t.key, t.address) for t in found] == [("sb-admin", "10.43.0.10:80"), ("sb-core", "10.43.0.11:8080"),
                                                   ("sb-ui", "10.43.0.12:80")]
    assert untestable == ["sb-gone: no such Service", "sb-headless: no ClusterIP (headless)"]
    assert targets.service_targets([Route("/a", "sb-core", 81)], {"sb-core": service("10.43.0.11", 8080)})[1] == [
        "sb-core: no port 81"]
    assert targets.routed_services(None, "sb-apps") == []


# -- classification of connection errors ------------------------------------------------------------------
class MysqlError(Exception):
    """PyMySQL's OperationalError shape: args = (code, message)."""


def mysql_error(code: int, cause: BaseException | None = None) -> BaseException:
    exc = MysqlError(code, "message")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize("exc, outcome", [
    (mysql_error(1129), "host_blocked"),
    (mysql_error(1130), "host_not_allowed"),
    (mysql_error(1045), "auth_failed"),
    (mysql_error(1040), "too_many_connections"),
    (mysql_error(2003, ConnectionRefusedError(errno.ECONNREFUSED, "refused")), "refused"),
    (mysql_error(2003, socket.timeout("timed out")), "timeout"),
    (mysql_error(2003, OSError(errno.EHOSTUNREACH, "no route")), "unreachable"),
])
def test_mysql_outcome(exc: BaseException, outcome: str) -> None:
    assert attempts.mysql_outcome(exc)[0] == outcome


@pytest.mark.parametrize("exc, outcome", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
    (socket.timeout("timed out"), "timeout"),
    (TimeoutError(errno.ETIMEDOUT, "timed out"), "timeout"),
    (OSError(errno.ENETUNREACH, "unreachable"), "unreachable"),
    (FileNotFoundError(2, "no socket"), "unreachable"),
])
def test_network_outcome(exc: BaseException, outcome: str) -> None:
    assert attempts.network_outcome(exc) == outcome


def test_every_outcome_is_a_reason_or_host_not_allowed() -> None:
    assert attempts.OUTCOMES == {r.value for r in Reason} | {"host_not_allowed"}


def test_remaining_never_passes_the_deadline() -> None:
    import time

    assert attempts.remaining(time.monotonic() + 10, 2.0) == 2.0
    assert attempts.remaining(time.monotonic() + 0.5, 2.0) <= 0.5
    assert attempts.remaining(time.monotonic() - 1, 2.0) == 0.05


# -- the child's answer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("code, out, err, reason", [
    (3, b'{"error": "NotEntered: setns: Operation not permitted", "stage": "enter"}', b"", "no_access"),
    (3, b'{"error": "KeyError: kind", "stage": "attempts"}', b"", "internal"),
    (1, b"", b"Traceback...\nModuleNotFoundError: No module named 'sbops'\n", "internal"),
    (0, b"not json", b"", "internal"),
])
def test_parse_answer_failures(code: int, out: bytes, err: bytes, reason: str) -> None:
    with pytest.raises(EnterFailed) as caught:
        parse_answer(code, out, err)
    assert caught.value.reason == reason


def test_parse_answer() -> None:
    assert parse_answer(0, b'{"attempts": [], "netns": 5}', b"") == {"attempts": [], "netns": 5}


# -- judgements -------------------------------------------------------------------------------------------
POD = "sb-apps/sb-core-7d9f-x2x"
MYSQL_TARGET = Target("10.0.0.5", 3306, targets.VALUES, "global.mysql.ip")


def attempt(outcome: str, **extra) -> dict:
    return {"address": "10.0.0.5:3306", "outcome": outcome, "error": extra.pop("error", ""), "ms": 3, **extra}


@pytest.mark.parametrize("outcome, local, code, status, reason, fix", [
    ("none", True, "SB8100", Status.OK, Reason.NONE, None),
    ("refused", True, "SB8101", Status.FAIL, Reason.REFUSED, "mysql-config"),
    ("refused", False, "SB8101", Status.FAIL, Reason.REFUSED, None),  # another host: nothing to fix from here
    ("timeout", True, "SB8102", Status.FAIL, Reason.TIMEOUT, None),
    ("unreachable", True, "SB8103", Status.FAIL, Reason.UNREACHABLE, None),
    ("host_blocked", True, "SB8104", Status.FAIL, Reason.HOST_BLOCKED, "mysql-blocked-host"),
    ("host_not_allowed", True, "SB8105", Status.FAIL, Reason.AUTH_FAILED, "mysql-user"),
    ("auth_failed", True, "SB8106", Status.FAIL, Reason.AUTH_FAILED, "mysql-user"),
    ("too_many_connections", True, "SB8107", Status.FAIL, Reason.TOO_MANY_CONNECTIONS, None),
])
def test_judge_mysql(outcome: str, local: bool, code: str, status: Status, reason: Reason, fix: str | None) -> None:
    result = judge.judge_mysql(POD, MYSQL_TARGET, attempt(outcome, version="10.11.6-MariaDB"), who="stackbill",
                               timeout=2.0, local=local, details={})
    assert (result.code, result.status, result.reason, result.fix) == (code, status, reason, fix)
    assert POD in result.summary and "10.0.0.5:3306" in result.summary and "helm values" in result.summary


@pytest.mark.parametrize("service, outcome, extra, code, reason, fix", [
    ("mongodb", "none", {"login": True}, "SB8120", Reason.NONE, None),
    ("mongodb", "refused", {}, "SB8121", Reason.REFUSED, "mongodb-config"),
    ("mongodb", "timeout", {}, "SB8122", Reason.TIMEOUT, None),
    ("mongodb", "auth_failed", {}, "SB8124", Reason.AUTH_FAILED, "mongodb-user"),
    ("mongodb", "misconfigured", {"error": "no hello"}, "SB8125", Reason.MISCONFIGURED, None),
    ("rabbitmq", "none", {"product": "RabbitMQ 3.10.8", "login": True}, "SB8140", Reason.NONE, None),
    ("rabbitmq", "refused", {}, "SB8141", Reason.REFUSED, None),  # listeners are changed by hand
    ("rabbitmq", "timeout", {}, "SB8142", Reason.TIMEOUT, None),
    ("rabbitmq", "auth_failed", {}, "SB8144", Reason.AUTH_FAILED, "rabbitmq-user"),
    ("rabbitmq", "access_denied", {}, "SB8145", Reason.ACCESS_DENIED, "rabbitmq-user"),
    ("rabbitmq", "misconfigured", {"error": "not AMQP"}, "SB8146", Reason.MISCONFIGURED, None),
    ("nfs", "none", {}, "SB8160", Reason.NONE, None),
    ("nfs", "refused", {}, "SB8161", Reason.REFUSED, None),
    ("nfs", "timeout", {}, "SB8162", Reason.TIMEOUT, None),
    ("nfs", "unreachable", {"error": "no route"}, "SB8163", Reason.UNREACHABLE, None),
])
def test_judge_other_services(service: str, outcome: str, extra: dict, code: str, reason: Reason,
                              fix: str | None) -> None:
    target = Target("10.0.0.5", 1234, targets.CREDENTIALS, "Host/Port")
    result = judge.JUDGES[service](POD, target, attempt(outcome, **extra), who="stackbill", timeout=2.0, local=True,
                                   details={"k": 1})
    assert (result.code, result.reason, result.fix) == (code, reason, fix)
    assert "credentials file" in result.summary and result.details == {"k": 1}


def test_judge_services_reports_the_worst_failure() -> None:
    found = [Target("10.43.0.10", 80, "route /admin", "sb-admin"), Target("10.43.0.11", 8080, "route /core", "sb-core"),
             Target("10.43.0.12", 80, "route /portal", "sb-ui")]
    ok = [attempt("none", http_status=200), attempt("none", http_status=404), attempt("none", http_status=302)]
    result = judge.judge_services(POD, found, ok, ["sb-gone: no such Service"], {})
    assert (result.code, result.status) == ("SB8180", Status.OK) and result.details["untestable"]
    mixed = [attempt("refused"), attempt("none", http_status=200), attempt("timeout")]
    result = judge.judge_services(POD, found, mixed, [], {})
    assert (result.code, result.status, result.reason) == ("SB8181", Status.FAIL, Reason.TIMEOUT)
    assert result.args["failed"] == 2 and "sb-admin" in result.summary and "sb-ui" in result.summary


def test_every_check_has_its_own_common_findings() -> None:
    docs = {c.not_root.doc for c in (msg.MYSQL_COMMON, msg.MONGO_COMMON, msg.RABBIT_COMMON, msg.NFS_COMMON,
                                     msg.SERVICES_COMMON)}
    assert len(docs) == 5
    assert msg.MYSQL_COMMON.no_pod.result(why="x").status is Status.SKIP
    assert msg.NFS_COMMON.probe_failed.result(pod=POD, error="e", reason=Reason.TIMEOUT).reason is Reason.TIMEOUT


@pytest.mark.parametrize("budget, expected", [(4.0, 3.0), (1.2, 0.6), (0.5, 0.25)])
def test_the_attempts_get_all_but_the_interpreter_start_and_at_least_half(budget: float, expected: float) -> None:
    from sbops.probes.netpath.enter import attempts_budget

    assert attempts_budget(budget) == pytest.approx(expected)


# -- the HTTP attempt: a hang-up before the status line is tried once more ---------------------------------
def _hanging_up_server(answer_from: int) -> tuple[socket.socket, list[int]]:
    """A loopback server that closes its first `answer_from` connections without a byte, then answers HTTP."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(1)
                conn.recv(4096)  # read the request first: closing with it unread would be a reset, not a hang-up
                if len(seen) > answer_from:
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return listener, seen


@pytest.mark.parametrize("hang_ups, outcome, tries", [
    (0, "none", 1),            # answers at once
    (1, "none", 2),            # one hang-up (a restart, load shedding): the second try answers
    (99, "misconfigured", 2),  # hangs up every time: accepts TCP, does not speak HTTP
])
def test_http_attempt_tries_once_more_after_a_hang_up(hang_ups, outcome, tries):
    import time

    listener, seen = _hanging_up_server(hang_ups)
    try:
        result = attempts.http("127.0.0.1", listener.getsockname()[1], timeout=2.0, deadline=time.monotonic() + 5)
    finally:
        listener.close()
    assert (result["outcome"], len(seen)) == (outcome, tries), result
