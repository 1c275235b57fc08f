"""pods.* checks and the restart-workload fix against the real kube-apiserver lab (tests/lab/kube.py).

Real here: the API server and etcd, the pods' status subresource, Events and their field selector
(involvedObject.name), Deployments and the strategic-merge patch that restarts them. Not real: kubelets,
the scheduler and the Deployment controller (nothing reconciles): a crash-looping or image-pulling pod is a
status we set as a kubelet would, a FailedScheduling event is one we create as the scheduler would, and
after restart-workload nothing replaces the pods: the test does what the controller and kubelet would
(delete the old pod, create the new one and report it Ready) and then sees pods.ready pass.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, fix_json, finding

NS = lab.NAMESPACE
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path) -> LabEnv:
    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))


def set_app_container(core: Any, app: str, *, ready: bool, state: dict, restarts: int = 0,
                      last: dict | None = None, phase: str = "Running", container: str | None = None) -> str:
    """Report container `container` (default: the app's own) of the app's pod in `state`, as a kubelet would."""
    pod = lab.pod_name(app)
    current = core.read_namespaced_pod_status(pod, NS)
    statuses = []
    for cs in current.status.container_statuses:
        item = core.api_client.sanitize_for_serialization(cs)
        if cs.name == (container or app):
            item.update(ready=ready, state=state, restartCount=restarts)
            if last:
                item["lastState"] = {"terminated": last}
        statuses.append(item)
    all_ready = all(s["ready"] for s in statuses)
    core.patch_namespaced_pod_status(pod, NS, {"status": {
        "phase": phase, "containerStatuses": statuses,
        "conditions": [{"type": "Ready", "status": "True" if all_ready else "False"},
                       {"type": "ContainersReady", "status": "True" if all_ready else "False"}]}})
    return pod


IMAGE_PULL = {"waiting": {"reason": "ImagePullBackOff",
                          "message": 'Back-off pulling image "730335576030.dkr.ecr.ap-south-1.amazonaws.com/sb-ui:latest"'}}
CRASH = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}
OOM = {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-11-26T10:00:00Z", "finishedAt": "2026-11-26T10:01:00Z"}


def by_pod(result: dict) -> dict[str, dict]:
    return {p["name"]: p for p in result["details"]["not_ready"]}


# -- healthy ---------------------------------------------------------------------------------------
def test_seeded_pods_pass(env: LabEnv) -> None:
    found = env.doctor("pods.*")
    assert {cid: finding(r) for cid, r in found.items()} == {"pods.ready": ("SB6110", "ok", "none"),
                                                             "pods.restarts": ("SB6120", "ok", "none")}


def test_restart_workload_has_nothing_to_do_when_healthy(env: LabEnv, apps: Any) -> None:
    proc = env.fix("restart-workload")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout + proc.stderr
    assert not (apps.read_namespaced_deployment("sb-core", NS).spec.template.metadata.annotations or {}).get(RESTARTED_AT)


# -- pods.ready ------------------------------------------------------------------------------------
def test_image_pull_backoff_points_at_ecr(env: LabEnv, core: Any) -> None:
    pod = set_app_container(core, "sb-ui", ready=False, state=IMAGE_PULL, phase="Pending")
    result = env.check("pods.ready")
    assert finding(result) == ("SB6112", "fail", "image_pull")
    assert result["fix"] == "ecr-refresh"
    assert by_pod(result)[pod]["container"] == "sb-ui"


def test_crash_loop_names_exit_code_and_reason(env: LabEnv, core: Any) -> None:
    pod = set_app_container(core, "sb-core", ready=False, state=CRASH, restarts=7, last=OOM)
    result = env.check("pods.ready")
    assert finding(result) == ("SB6113", "fail", "crash_loop")
    evidence = by_pod(result)[pod]
    assert (evidence["exit_code"], evidence["last_termination"], evidence["restarts"]) == (137, "OOMKilled", 7)


def test_pending_pod_shows_the_latest_event(env: LabEnv, core: Any) -> None:
    pod = lab.pod_name("sb-billing")
    core.patch_namespaced_pod_status(pod, NS, {"status": {
        "phase": "Pending", "containerStatuses": [],
        "conditions": [{"type": "Ready", "status": "False"},
                       {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}})
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.create_namespaced_event(NS, {
        "metadata": {"name": f"{pod}.sched"}, "type": "Warning", "reason": "FailedScheduling",
        "message": "0/1 nodes are available: 1 Insufficient memory.", "firstTimestamp": now, "lastTimestamp": now,
        "count": 1, "source": {"component": "default-scheduler"},
        "involvedObject": {"kind": "Pod", "namespace": NS, "name": pod}})
    result = env.check("pods.ready")
    assert finding(result) == ("SB6114", "fail", "pending")
    assert by_pod(result)[pod]["events"] == ["FailedScheduling: 0/1 nodes are available: 1 Insufficient memory."]


def test_not_ready_sidecar_is_named(env: LabEnv, core: Any) -> None:
    pod = set_app_container(core, "sb-admin", ready=False, container="istio-proxy",
                            state={"running": {"startedAt": "2026-11-26T10:00:00Z"}})
    result = env.check("pods.ready")
    assert finding(result) == ("SB6115", "fail", "not_ready")
    assert by_pod(result)[pod]["container"] == "istio-proxy"


def test_several_failures_choose_the_most_actionable(env: LabEnv, core: Any) -> None:
    crashing = set_app_container(core, "sb-core", ready=False, state=CRASH, restarts=3, last=OOM)
    pulling = set_app_container(core, "sb-ui", ready=False, state=IMAGE_PULL, phase="Pending")
    result = env.check("pods.ready")
    assert finding(result) == ("SB6112", "fail", "image_pull")
    assert set(by_pod(result)) == {crashing, pulling}


# -- pods.restarts ---------------------------------------------------------------------------------
def test_many_restarts_warn_degraded(env: LabEnv, core: Any) -> None:
    pod = set_app_container(core, "sb-kong", ready=True, restarts=12, last=OOM,
                            state={"running": {"startedAt": "2026-11-26T10:00:00Z"}})
    result = env.check("pods.restarts")
    assert finding(result) == ("SB6121", "warn", "degraded")
    assert result["details"]["containers"][0] == {"pod": pod, "container": "sb-kong", "restarts": 12,
                                                  "last_termination": "OOMKilled", "exit_code": 137}
    env.set("pods.restart_threshold", 20)
    assert finding(env.check("pods.restarts")) == ("SB6120", "ok", "none")


# -- restart-workload ------------------------------------------------------------------------------
def replace_pod_as_the_controller_would(core: Any, app: str) -> None:
    """Deployment controller + kubelet: the old pod goes, a new one from the template comes up Ready."""
    old = lab.pod_name(app)
    spec = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(old, NS).spec)
    labels = core.read_namespaced_pod(old, NS).metadata.labels
    core.delete_namespaced_pod(old, NS, grace_period_seconds=0)
    new = f"{app}-restarted-1"
    core.create_namespaced_pod(NS, {"metadata": {"name": new, "labels": labels}, "spec": spec})
    containers = [(c["name"], c["image"]) for c in spec["containers"]]
    core.patch_namespaced_pod_status(new, NS, {"status": lab.ready_pod_status(new, containers, "10.42.0.200")})


def test_restart_workload_restarts_the_crash_looping_deployment(env: LabEnv, core: Any, apps: Any) -> None:
    set_app_container(core, "sb-core", ready=False, state=CRASH, restarts=4, last=OOM)
    assert finding(env.check("pods.ready")) == ("SB6113", "fail", "crash_loop")

    proc = env.fix("restart-workload", "--dry-run")
    assert proc.returncode == 0 and "rollout-restart Deployment sb-core in sb-apps" in proc.stdout, proc.stdout
    assert not (apps.read_namespaced_deployment("sb-core", NS).spec.template.metadata.annotations or {}).get(RESTARTED_AT)

    code, doc = fix_json(env, "restart-workload")
    # nothing reconciles here: the re-check still sees the old crash-looping pod, so the fix reports
    # "not fixed" (3); the Deployment's template carries the annotation kubectl rollout restart writes.
    assert doc["outcome"] in ("fixed", "not fixed"), doc
    assert [c["description"] for c in doc["plan"]["changes"]] == [
        "via the Kubernetes API: rollout-restart Deployment sb-core in sb-apps (new pods replace the old ones)"]
    annotations = apps.read_namespaced_deployment("sb-core", NS).spec.template.metadata.annotations
    assert dt.datetime.strptime(annotations[RESTARTED_AT], "%Y-%m-%dT%H:%M:%SZ")
    assert not (apps.read_namespaced_deployment("sb-ui", NS).spec.template.metadata.annotations or {}).get(RESTARTED_AT)

    replace_pod_as_the_controller_would(core, "sb-core")
    assert finding(env.check("pods.ready")) == ("SB6110", "ok", "none")
    assert code in (0, 3)


def test_restart_workload_named_with_workload_option(env: LabEnv, apps: Any) -> None:
    code, doc = fix_json(env, "restart-workload", "--workload", "sb-ui")
    assert code == 0, doc
    assert apps.read_namespaced_deployment("sb-ui", NS).spec.template.metadata.annotations.get(RESTARTED_AT)
    assert not (apps.read_namespaced_deployment("sb-core", NS).spec.template.metadata.annotations or {}).get(RESTARTED_AT)


def test_restart_workload_unknown_name_is_blocked(env: LabEnv) -> None:
    code, doc = fix_json(env, "restart-workload", "--workload", "no-such-app")
    assert code == 3 and doc["outcome"] == "blocked" and "no-such-app" in doc["plan"]["blockers"][0]


def test_restart_workload_leaves_image_pull_to_ecr_refresh(env: LabEnv, core: Any, apps: Any) -> None:
    set_app_container(core, "sb-ui", ready=False, state=IMAGE_PULL, phase="Pending")
    proc = env.fix("restart-workload")
    assert "ecr-refresh" in proc.stdout, proc.stdout
    assert not (apps.read_namespaced_deployment("sb-ui", NS).spec.template.metadata.annotations or {}).get(RESTARTED_AT)
