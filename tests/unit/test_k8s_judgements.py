"""k8s.* judgements and kubecommon's error mapping, from tables (no cluster)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from sbops.kube import NoKubeconfig
from sbops.model import Reason, Status
from sbops.probes import k8s, kubecommon


def node(name: str = "n1", ready: str = "True", **pressure: str) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True" else "KubeletNotReady"}]
    conditions += [{"type": t, "status": s} for t, s in pressure.items()]
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


@pytest.mark.parametrize("nodes, status, reason, code", [
    ([node()], Status.OK, Reason.NONE, "SB6020"),
    ([node(MemoryPressure="False", DiskPressure="False", PIDPressure="False")], Status.OK, Reason.NONE, "SB6020"),
    ([node(MemoryPressure="True")], Status.WARN, Reason.DEGRADED, "SB6023"),
    ([node(DiskPressure="True")], Status.WARN, Reason.DEGRADED, "SB6023"),
    ([node(PIDPressure="True")], Status.WARN, Reason.DEGRADED, "SB6023"),
    ([node(ready="False")], Status.FAIL, Reason.NOT_READY, "SB6022"),
    ([node(ready="Unknown", MemoryPressure="True")], Status.FAIL, Reason.NOT_READY, "SB6022"),
    ([node("a"), node("b", ready="False")], Status.FAIL, Reason.NOT_READY, "SB6022"),
    ([{"metadata": {"name": "x"}, "status": {}}], Status.FAIL, Reason.NOT_READY, "SB6022"),
    ([], Status.FAIL, Reason.MISSING, "SB6021"),
])
def test_judge_nodes(nodes: list[dict[str, Any]], status: Status, reason: Reason, code: str) -> None:
    result = k8s.judge_nodes([k8s.node_facts(n) for n in nodes])
    assert (result.code, result.status, result.reason) == (code, status, reason)
    assert "nodes" in result.details


def ns(labels: dict[str, str] | None = None, phase: str = "Active") -> dict[str, Any]:
    return {"metadata": {"name": "sb-apps", "labels": labels or {}}, "status": {"phase": phase}}


@pytest.mark.parametrize("found, status, reason, code, changes", [
    (ns({"istio-injection": "enabled"}), Status.OK, Reason.NONE, "SB6030", []),
    (ns({"istio-injection": "disabled"}), Status.FAIL, Reason.MISCONFIGURED, "SB6033", ["label"]),
    (ns({}), Status.FAIL, Reason.MISCONFIGURED, "SB6033", ["label"]),
    (None, Status.FAIL, Reason.MISSING, "SB6031", ["create"]),
    (ns({"istio-injection": "enabled"}, phase="Terminating"), Status.FAIL, Reason.MISCONFIGURED, "SB6032", []),
])
def test_namespace_judgement_and_changes(found: dict[str, Any] | None, status: Status, reason: Reason, code: str,
                                         changes: list[str]) -> None:
    result = k8s.judge_namespace("sb-apps", found)
    assert (result.code, result.status, result.reason) == (code, status, reason)
    if status is Status.OK or reason is Reason.MISSING or (found or {}).get("status", {}).get("phase") == "Active":
        assert [next(iter(a)) for _, _, a in k8s.namespace_changes("sb-apps", found)] == changes


def pvc(name: str, phase: str = "Bound") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"storageClassName": "nfs-client"}, "status": {"phase": phase}}


def pod(phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": "nfs-prov-1", "namespace": "nfs-provisioner"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize("sc, pvcs, pods, status, reason, code", [
    (True, [pvc("sb-data")], [pod()], Status.OK, Reason.NONE, "SB6040"),
    (True, [], [pod()], Status.OK, Reason.NONE, "SB6040"),
    (False, [pvc("sb-data")], [pod()], Status.FAIL, Reason.MISSING, "SB6041"),
    (True, [pvc("sb-data", "Pending")], [pod()], Status.FAIL, Reason.PENDING, "SB6044"),
    (True, [{"metadata": {"name": "x"}}], [pod()], Status.FAIL, Reason.PENDING, "SB6044"),
    (True, [pvc("sb-data", "Lost")], [pod()], Status.FAIL, Reason.PENDING, "SB6044"),
    (True, [pvc("sb-data")], [], Status.FAIL, Reason.NOT_RUNNING, "SB6042"),
    (True, [pvc("sb-data")], [pod(ready=False)], Status.FAIL, Reason.NOT_READY, "SB6043"),
    (True, [pvc("sb-data")], [pod("Pending", ready=False)], Status.FAIL, Reason.NOT_READY, "SB6043"),
    (True, [pvc("sb-data")], [pod(ready=False), pod()], Status.OK, Reason.NONE, "SB6040"),
    (False, [pvc("sb-data", "Pending")], [], Status.FAIL, Reason.MISSING, "SB6041"),  # the root cause first
    (True, [pvc("sb-data", "Pending")], [pod(ready=False)], Status.FAIL, Reason.NOT_READY, "SB6043"),
])
def test_judge_storage(sc: bool, pvcs: list[dict[str, Any]], pods: list[dict[str, Any]], status: Status,
                       reason: Reason, code: str) -> None:
    result = k8s.judge_storage("nfs-client", sc, pvcs, "app=nfs-subdir-external-provisioner", pods)
    assert (result.code, result.status, result.reason) == (code, status, reason)


def api_exception(status: int) -> BaseException:
    from kubernetes.client.exceptions import ApiException

    return ApiException(status=status, reason="X")


def subclassed(name: str, status: int) -> BaseException:
    from kubernetes.client import exceptions

    cls = getattr(exceptions, name, None)
    if cls is None:  # an older client: the plain ApiException carries the status
        return api_exception(status)
    return cls(status=status, reason="X")


def refused() -> BaseException:
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as inner:
        err = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
        err.__context__ = inner
    return MaxRetryError(None, "/version", reason=err)


def timed_out() -> BaseException:
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

    return MaxRetryError(None, "/version", reason=ConnectTimeoutError(None, "timed out"))


@pytest.mark.parametrize("make, reason", [
    (lambda: api_exception(401), Reason.AUTH_FAILED),
    (lambda: api_exception(403), Reason.ACCESS_DENIED),
    (lambda: api_exception(404), Reason.MISSING),
    (lambda: api_exception(500), Reason.UNREACHABLE),
    (lambda: subclassed("UnauthorizedException", 401), Reason.AUTH_FAILED),  # kubernetes >= 32 raises these
    (lambda: subclassed("ForbiddenException", 403), Reason.ACCESS_DENIED),
    (lambda: subclassed("NotFoundException", 404), Reason.MISSING),
    (refused, Reason.REFUSED),
    (timed_out, Reason.TIMEOUT),
    (lambda: socket.timeout("timed out"), Reason.TIMEOUT),
])
def test_api_reason(make: Any, reason: Reason) -> None:
    assert kubecommon.api_reason(make()) is reason


@pytest.mark.parametrize("make, reason, code", [
    (lambda: api_exception(401), Reason.AUTH_FAILED, "SB6011"), (lambda: api_exception(403), Reason.ACCESS_DENIED, "SB6012"),
    (lambda: api_exception(404), Reason.MISCONFIGURED, "SB6014"), (lambda: api_exception(500), Reason.UNREACHABLE, "SB6013"),
    (refused, Reason.REFUSED, "SB6013"), (timed_out, Reason.TIMEOUT, "SB6013"),
])
def test_api_failure_judgement(make: Any, reason: Reason, code: str) -> None:
    result = k8s.api_failure(make(), "https://127.0.0.1:6443", "/k")
    assert (result.code, result.status, result.reason) == (code, Status.FAIL, reason)
    assert result.details["server"] == "https://127.0.0.1:6443"


def test_api_error_reads_the_status_message() -> None:
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"nodes is forbidden: User \\"x\\" cannot list resource"}'
    assert kubecommon.api_error(exc).startswith("HTTP 403 Forbidden: nodes is forbidden")


class _Creds:
    domain = "portal.example.org"


class _Ctx:
    def __init__(self, setting: str, creds: Any) -> None:
        self.settings = {"domain": setting}
        self.credentials = creds


@pytest.mark.parametrize("setting, creds, expected", [
    ("a.example.com", _Creds(), "a.example.com"),
    ("", _Creds(), "portal.example.org"),
    ("", None, ""),
])
def test_domain(setting: str, creds: Any, expected: str) -> None:
    assert kubecommon.domain(_Ctx(setting, creds)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("make, reason", [
    (lambda: api_exception(401), Reason.AUTH_FAILED),
    (lambda: api_exception(403), Reason.ACCESS_DENIED),
    (refused, Reason.REFUSED),
    (timed_out, Reason.TIMEOUT),
])
def test_the_one_api_guard_reports_the_shared_finding(make: Any, reason: Reason) -> None:
    result = kubecommon.api_failure("list nodes", make())
    assert (result.code, result.status, result.reason) == ("SB6001", Status.FAIL, reason)
    assert result.args["what"] == "list nodes" and result.details["error"]


@pytest.mark.parametrize("exc", [KeyError("spec"), NoKubeconfig("no kubeconfig")])
def test_the_api_guard_raises_what_is_not_an_api_error(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        kubecommon.api_failure("list nodes", exc)
