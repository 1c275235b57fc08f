"""pods.* diagnosis, choice of the most actionable reason, restart counting and restart-workload targets."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from sbops.model import Reason, Status
from sbops.probes import pods


def cs(name: str, ready: bool = True, state: dict[str, Any] | None = None, restarts: int = 0,
       last: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"name": name, "ready": ready, "restartCount": restarts, "image": f"reg/{name}:latest",
           "state": state or {"running": {"startedAt": "2026-11-26T10:00:00Z"}}}
    if last:
        out["lastState"] = {"terminated": last}
    return out


def pod(name: str = "sb-core-1", phase: str = "Running", ready: bool = True, containers: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    conds = conditions if conditions is not None else [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"name": name, "labels": labels or {"app": name.rsplit("-", 1)[0]}},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": containers if containers is not None else [cs("app"), cs("istio-proxy")]}}


BACKOFF = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
ERRPULL = {"waiting": {"reason": "ErrImagePull", "message": "401 Unauthorized"}}
CRASH = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
OOM = {"exitCode": 137, "reason": "OOMKilled"}


@pytest.mark.parametrize("given, reason, container", [
    (pod(), None, None),
    (pod(phase="Succeeded", ready=False), None, None),
    (pod(phase="Pending", ready=False, containers=[cs("app", False, BACKOFF), cs("istio-proxy", False)]),
     Reason.IMAGE_PULL, "app"),
    (pod(phase="Pending", ready=False, containers=[cs("app", False, ERRPULL)]), Reason.IMAGE_PULL, "app"),
    (pod(ready=False, containers=[cs("app", False, CRASH, 7, OOM), cs("istio-proxy")]), Reason.CRASH_LOOP, "app"),
    (pod(ready=False, containers=[cs("app", False, {"terminated": {"exitCode": 1, "reason": "Error"}}, 2)]),
     Reason.CRASH_LOOP, "app"),
    (pod(phase="Pending", ready=False, containers=[],
         conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/1 nodes are available"}]), Reason.PENDING, ""),
    (pod(phase="Pending", ready=False, containers=[cs("app", False, {"waiting": {"reason": "ContainerCreating"}})]),
     Reason.PENDING, ""),
    (pod(ready=False, containers=[cs("app"), cs("istio-proxy", False)]), Reason.NOT_READY, "istio-proxy"),
    (pod(ready=False, containers=[cs("app", False), cs("istio-proxy", False)]), Reason.NOT_READY, "istio-proxy"),
    (pod(ready=False, containers=[cs("app", False), cs("istio-proxy")]), Reason.NOT_READY, "app"),
    (pod(ready=False, containers=[cs("app"), cs("istio-proxy")]), Reason.NOT_READY, ""),
    (pod(ready=False, containers=[], conditions=[]), Reason.NOT_READY, ""),
])
def test_diagnose_pod(given: dict[str, Any], reason: Reason | None, container: str | None) -> None:
    found = pods.diagnose_pod(given)
    if reason is None:
        assert found is None
        return
    assert found is not None and found["reason"] == reason.value
    assert found["container"] == container


def test_crash_loop_names_last_termination_and_exit_code() -> None:
    found = pods.diagnose_pod(pod(ready=False, containers=[cs("app", False, CRASH, 7, OOM)]))
    assert found is not None
    assert (found["exit_code"], found["last_termination"], found["restarts"]) == (137, "OOMKilled", 7)
    result = pods.judge_ready("sb-apps", [pod()], [found])
    assert (result.code, result.status, result.reason) == ("SB6113", Status.FAIL, Reason.CRASH_LOOP)
    assert (result.args["exit_code"], result.args["termination"], result.args["container"]) == (137, "OOMKilled", "app")


def problem(name: str, reason: Reason, **extra: Any) -> dict[str, Any]:
    return {"name": name, "phase": "Running", "reason": reason.value, "container": "app", "detail": "d", **extra}


@pytest.mark.parametrize("problems, reason, code, fix", [
    ([], Reason.NONE, "SB6110", None),
    ([problem("a", Reason.NOT_READY)], Reason.NOT_READY, "SB6115", None),
    ([problem("a", Reason.NOT_READY), problem("b", Reason.CRASH_LOOP, exit_code=1)], Reason.CRASH_LOOP, "SB6113", None),
    ([problem("a", Reason.PENDING, events=["FailedScheduling: 0/1 nodes"]), problem("b", Reason.NOT_READY)],
     Reason.PENDING, "SB6114", None),
    ([problem("a", Reason.CRASH_LOOP), problem("b", Reason.IMAGE_PULL), problem("c", Reason.PENDING)],
     Reason.IMAGE_PULL, "SB6112", "ecr-refresh"),
])
def test_judge_ready_picks_the_most_actionable(problems: list[dict[str, Any]], reason: Reason, code: str,
                                               fix: str | None) -> None:
    result = pods.judge_ready("sb-apps", [pod()] * 3, problems)
    assert (result.code, result.reason) == (code, reason)
    assert result.fix == fix
    if problems:
        assert result.status is Status.FAIL
        assert [p["name"] for p in result.details["not_ready"]] == [p["name"] for p in problems]


def test_image_pull_points_at_ecr() -> None:
    result = pods.judge_ready("sb-apps", [pod()], [problem("a", Reason.IMAGE_PULL)])
    assert (result.code, result.reason, result.fix) == ("SB6112", Reason.IMAGE_PULL, "ecr-refresh")
    assert "sbops fix" not in result.summary  # the report prints the fix line from Result.fix


def test_pending_summary_has_the_latest_event() -> None:
    result = pods.judge_ready("sb-apps", [pod()], [problem("a", Reason.PENDING, events=["FailedScheduling: no nodes"])])
    assert (result.code, result.reason) == ("SB6114", Reason.PENDING)
    assert result.args["why"] == "FailedScheduling: no nodes"


def test_no_pods_is_missing() -> None:
    result = pods.judge_ready("sb-apps", [], [])
    assert (result.code, result.status, result.reason) == ("SB6111", Status.FAIL, Reason.MISSING)


def test_latest_events_newest_first() -> None:
    events = [{"reason": "Old", "message": "1", "lastTimestamp": "2026-11-26T10:00:00Z"},
              {"reason": "New", "message": "2", "lastTimestamp": "2026-11-26T11:00:00Z"},
              {"reason": "Ev", "message": "3", "eventTime": "2026-11-26T10:30:00.000000Z"}]
    assert pods.latest_events(events, 2) == ["New: 2", "Ev: 3"]


@pytest.mark.parametrize("counts, threshold, status, top", [
    ([0, 0], 5, Status.OK, None),
    ([5, 0], 5, Status.OK, None),
    ([6, 0], 5, Status.WARN, 6),
    ([6, 40], 5, Status.WARN, 40),
    ([1], 0, Status.WARN, 1),
])
def test_restarts(counts: list[int], threshold: int, status: Status, top: int | None) -> None:
    given = [pod(f"p{i}", containers=[cs("app", restarts=n, last=OOM if n else None)]) for i, n in enumerate(counts)]
    found = pods.restarts(given, threshold)
    result = pods.judge_restarts("sb-apps", found, threshold)
    assert result.status is status
    assert (result.code, result.reason) == (("SB6121", Reason.DEGRADED) if top else ("SB6120", Reason.NONE))
    if top:
        assert found[0]["restarts"] == top


def deploy(name: str, match: dict[str, str] | None = None, exprs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if match is not None:
        selector["matchLabels"] = match
    if exprs is not None:
        selector["matchExpressions"] = exprs
    return {"metadata": {"name": name}, "spec": {"selector": selector}}


@pytest.mark.parametrize("d, labels, expected", [
    (deploy("a", {"app": "a"}), {"app": "a", "x": "y"}, True),
    (deploy("a", {"app": "a"}), {"app": "b"}, False),
    (deploy("a", {}), {"app": "a"}, False),
    (deploy("a", None, [{"key": "app", "operator": "In", "values": ["a", "b"]}]), {"app": "b"}, True),
    (deploy("a", None, [{"key": "app", "operator": "NotIn", "values": ["a"]}]), {"app": "a"}, False),
    (deploy("a", {"app": "a"}, [{"key": "tier", "operator": "Exists"}]), {"app": "a"}, False),
])
def test_selects(d: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert pods.selects(d, {"metadata": {"labels": labels}}) is expected


def test_restart_targets_skip_image_pull_and_pending() -> None:
    deployments = [deploy("sb-core", {"app": "sb-core"}), deploy("sb-ui", {"app": "sb-ui"}),
                   deploy("sb-kong", {"app": "sb-kong"}), deploy("sb-help", {"app": "sb-help"})]
    given = [pod("sb-core-1"), pod("sb-ui-1"), pod("sb-kong-1"), pod("sb-help-1"), pod("stray-1")]
    problems = [problem("sb-core-1", Reason.CRASH_LOOP), problem("sb-ui-1", Reason.NOT_READY),
                problem("sb-kong-1", Reason.IMAGE_PULL), problem("sb-help-1", Reason.PENDING),
                problem("stray-1", Reason.NOT_READY)]
    targets, notes = pods.restart_targets(deployments, problems, given)
    assert targets == ["sb-core", "sb-ui"]
    assert any("ecr-refresh" in n for n in notes) and any("stray-1" in n for n in notes)


def test_restart_patch_is_what_kubectl_writes() -> None:
    patch = pods.restart_patch(datetime(2026, 11, 26, 12, 0, 1, tzinfo=timezone.utc))
    assert patch == {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:01Z"}}}}}


def test_pod_counts_for_the_exporter() -> None:
    """desired/ready/waiting evidence of pods.ready: completed pods are not desired, a pod counts once per
    waiting reason, and unknown reasons fall into "other" (the exporter's label values stay bounded)."""
    pods_list = [
        pod("a-1"),
        pod("b-1", ready=False, containers=[cs("app", False, BACKOFF), cs("istio-proxy", False, BACKOFF)]),
        pod("c-1", ready=False, containers=[cs("app", False, CRASH), cs("init", False, {"waiting": {"reason": "Weird"}})]),
        pod("job-1", phase="Succeeded", ready=False, containers=[cs("app", False, {"terminated": {"exitCode": 0}})]),
    ]
    counts = pods.pod_counts(pods_list)
    assert (counts["desired"], counts["ready"]) == (3, 1)
    assert set(counts["waiting"]) == set(pods.WAITING_REASONS)
    assert {k: v for k, v in counts["waiting"].items() if v} == {"ImagePullBackOff": 1, "CrashLoopBackOff": 1, "other": 1}
    result = pods.judge_ready("sb-apps", pods_list, [p for p in map(pods.diagnose_pod, pods_list) if p])
    assert result.details["ready"] == 1 and result.details["desired"] == 3
    assert pods.judge_ready("sb-apps", [pod("a-1")], []).details["waiting"]["ImagePullBackOff"] == 0


def test_crash_loop_message_carries_the_last_log_line() -> None:
    """The kubelet's log of the crashed run is the first clue: its last line is in the summary, all kept lines
    in the evidence."""
    found = problem("sb-core-1", Reason.CRASH_LOOP, exit_code=3, last_termination="Error",
                    last_logs=["starting", "cannot reach MySQL at 10.0.0.5:3306"])
    result = pods.judge_ready("sb-apps", [pod()], [found])
    assert result.code == "SB6113"
    assert result.summary.endswith("last log line: cannot reach MySQL at 10.0.0.5:3306")
    assert result.details["not_ready"][0]["last_logs"][-1] == "cannot reach MySQL at 10.0.0.5:3306"


@pytest.mark.parametrize("text, lines, expected", [
    ("", 5, []),
    ("a\n\nb\n  \nc\n", 2, ["b", "c"]),
    ("x" * 400 + "\n", 5, ["x" * 300]),
])
def test_log_tail_keeps_the_last_non_empty_lines(text: str, lines: int, expected: list[str]) -> None:
    assert pods.log_tail(text, lines) == expected


def deployment(generation: int = 2, observed: int = 2, replicas: int = 1, updated: int = 1, total: int = 1,
               available: int = 1) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available}}


@pytest.mark.parametrize("deploy, done, left", [
    (deployment(), True, "1 new replica(s) available"),
    (deployment(observed=1), False, "the Deployment controller has not seen the change yet"),
    (deployment(updated=0, total=1, available=1), False, "0 of 1 new replica(s) created"),
    (deployment(total=2, available=1), False, "1 old replica(s) pending termination"),
    (deployment(available=0), False, "0 of 1 new replica(s) available"),
    (deployment(replicas=0, updated=0, total=0, available=0), True, "0 new replica(s) available"),
])
def test_rollout_progress_follows_kubectl_rollout_status(deploy: dict[str, Any], done: bool, left: str) -> None:
    assert pods.rollout_progress(deploy) == (done, left)


def leaving_pod(name: str, deleted: str, ready: bool = False) -> dict[str, Any]:
    found = pod(ready=ready, containers=[cs("app", ready, {"waiting": {"reason": "ImagePullBackOff"}})])
    found["metadata"] = {"name": name, "deletionTimestamp": deleted, "finalizers": ["example.com/hold"]}
    return found


def test_pods_being_deleted_are_not_judged_until_stuck() -> None:
    """A rollout's old pod or one ecr-refresh deleted is on its way out: not a problem; one still there a minute
    past its deletion time is, and says it is stuck terminating."""
    from datetime import datetime, timezone

    now = datetime(2026, 12, 1, 4, 0, 0, tzinfo=timezone.utc)
    fresh, stuck, alive = leaving_pod("old-1", "2026-12-01T03:59:50Z"), leaving_pod("old-2", "2026-12-01T03:58:00Z"), pod()
    judged, leaving = pods.split_departing([fresh, stuck, alive], now)
    assert [p["metadata"]["name"] for p in leaving] == ["old-1"]
    assert stuck in judged and alive in judged
    found = pods.diagnose_pod(stuck)
    assert found is not None and found["reason"] == Reason.NOT_READY.value
    assert found["detail"].startswith("stuck terminating since 2026-12-01T03:58:00Z (finalizers: example.com/hold")
    result = pods.judge_ready("sb-apps", [alive], [], terminating=len(leaving))
    assert result.status is Status.OK and result.details["terminating"] == 1


def _judged(given: list[dict[str, Any]]) -> tuple[Any, ...]:
    """Everything pods.ready and pods.restarts conclude from a list of pods (events and logs aside)."""
    now = datetime(2026, 11, 26, 10, 0, 30, tzinfo=timezone.utc)
    judged, leaving = pods.split_departing(given, now)
    problems = [p for p in (pods.diagnose_pod(x) for x in judged) if p is not None]
    found = pods.restarts(judged, 3)
    return (problems, pods.pod_counts(judged), len(leaving), pods.judge_ready("sb-apps", judged, problems, len(leaving)),
            found, pods.judge_restarts("sb-apps", found, 3),
            pods.restart_targets([{"metadata": {"name": "app-00"}, "spec": {"selector": {"matchLabels": {"app": "app-00"}}}}],
                                 problems, judged))


def test_lean_pods_are_judged_as_the_full_ones() -> None:
    """lean_pod keeps what the judgements read: a realistic population (tests/lab/crowd.py: full API pods with
    spec, annotations and every status kind), pods being deleted, and this file's table pods."""
    from tests.lab.crowd import pod_body

    crowd = []
    for i in range(400):
        _, body, status = pod_body(i, 16, spread=False)
        full = {**body, **status}
        full["metadata"] = {**full["metadata"], "namespace": "sb-apps", "uid": f"u{i}", "resourceVersion": str(i),
                            "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}]}
        crowd.append(full)
    crowd[5]["metadata"].update(deletionTimestamp="2026-11-26T10:00:00Z", finalizers=["example.com/hold"])
    crowd[6]["metadata"].update(deletionTimestamp="2026-11-26T09:00:00Z", finalizers=["example.com/hold"])
    crowd[7]["status"]["initContainerStatuses"] = [cs("init", False, CRASH, 9, OOM)]
    table = [pod(), pod("sb-ui-1", containers=[cs("app", False, CRASH, 7, OOM), cs("istio-proxy")], ready=False),
             pod("sb-x-1", phase="Pending", ready=False, containers=[cs("app", False, BACKOFF)])]
    given = crowd + table
    lean = [pods.lean_pod(p) for p in given]
    assert _judged(lean) == _judged(given)
    assert _judged(lean)[0], "the population has problems to find"
    assert all(set(p) == {"metadata", "status"} and "managedFields" not in p["metadata"] for p in lean)
