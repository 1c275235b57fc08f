"""pods.*, ecr.* and the restart-workload and ecr-refresh fixes on the living cluster (tests/lab/living.py).

Real here, end to end: the kubelet pulls from the ECR stand-in with the pull secret, runs containers in
containerd, runs readiness probes and writes every pod status; the scheduler writes FailedScheduling; the
Deployment controller makes ReplicaSets; the registry answers 401 to a stale token. No test writes a pod status.
Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding, fix_json
from tests.lab.living import LivingCluster, NODE_NAME, eventually, pull_secret_token

NS = lab.NAMESPACE
WAIT = 120.0  # seconds: the kubelet's back-offs (image pull, crash loop) set the pace


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)




def apps_api(living: LivingCluster) -> Any:
    from kubernetes import client

    return client.AppsV1Api(living.kube.api())


def core_api(living: LivingCluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(living.kube.api())


def app_pods(living: LivingCluster, app: str) -> list[dict[str, Any]]:
    return [p for p in living.pods() if p["metadata"].get("labels", {}).get("app") == app
            and not p["metadata"].get("deletionTimestamp")]


def patch_container(living: LivingCluster, app: str, **fields: Any) -> None:
    """Change the app's container in its Deployment (a new ReplicaSet rolls out), as a bad upgrade would."""
    deploy = apps_api(living).read_namespaced_deployment(app, NS)
    container = deploy.spec.template.spec.containers[0].name
    apps_api(living).patch_namespaced_deployment(app, NS, {"spec": {"template": {"spec": {"containers": [
        {"name": container, **fields}]}}}})


def check(env: LabEnv, check_id: str) -> Callable[[], dict[str, Any]]:
    return lambda: env.check(check_id)


# -- healthy ---------------------------------------------------------------------------------------
def test_pods_run_in_containerd_and_the_kubelet_marks_them_ready(living: LivingCluster, living_env: LabEnv) -> None:
    pods = living.pods()
    assert {p["metadata"]["labels"]["app"] for p in pods} >= {"sb-core", "sb-ui", "sb-admin", "sb-kong"}
    for pod in pods:
        statuses = pod["status"]["containerStatuses"]
        assert all(cs["containerID"].startswith("containerd://") for cs in statuses), statuses
        assert all(cs["imageID"] for cs in statuses)  # pulled and resolved by containerd
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert pod["spec"]["nodeName"] == NODE_NAME
    found = living_env.doctor("pods.*")
    assert {cid: finding(r) for cid, r in found.items()} == {"pods.ready": ("SB6110", "ok", "none"),
                                                             "pods.restarts": ("SB6120", "ok", "none")}


# -- ECR: a token the registry no longer accepts ---------------------------------------------------
def test_expired_token_fails_the_pull_and_ecr_refresh_brings_the_pods_back(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    """ECR's 12-hour token ran out: the registry now accepts only a new one, the pull secret still holds the
    old one. A pod that must pull again (here: deleted, as a node restart or reschedule would) gets 401 from
    the registry, and the kubelet reports ErrImagePull then ImagePullBackOff."""
    stale = lab.ecr_token(now() - dt.timedelta(hours=1))
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    living.write_pull_secret(stale)
    living.registry.set_token(fresh)
    for pod in app_pods(living, "sb-ui"):
        core_api(living).delete_namespaced_pod(pod["metadata"]["name"], NS, grace_period_seconds=0)

    result = eventually("pods.ready reports image_pull", check(living_env, "pods.ready"),
                        lambda r: r["reason"] == "image_pull")
    assert finding(result) == ("SB6112", "fail", "image_pull")
    assert result["fix"] == "ecr-refresh"
    stuck = result["details"]["not_ready"][0]
    assert stuck["container"] == "sb-ui" and ("ErrImagePull" in stuck["detail"] or "ImagePullBackOff" in stuck["detail"])
    assert finding(living_env.check("ecr.expiry"))[1:] == ("fail", "expired")

    token_file = tmp_path / "token"
    token_file.write_text(fresh)
    token_file.chmod(0o600)
    living_env.set("ecr.token_file", str(token_file))
    code, doc = fix_json(living_env, "ecr-refresh")
    assert code == 0, doc
    assert pull_secret_token(living) == fresh
    # the fix deleted the pods stuck pulling; their ReplicaSet's new pods pull with the new secret
    eventually("pods Ready after ecr-refresh", check(living_env, "pods.ready"), lambda r: r["status"] == "ok")
    assert finding(living_env.check("ecr.expiry")) == ("SB6220", "ok", "none")


# -- a container that exits ------------------------------------------------------------------------
def test_crash_loop_is_reported_with_exit_code_and_last_log_line(living: LivingCluster, living_env: LabEnv) -> None:
    patch_container(living, "sb-kong", command=["/bin/sh", "-c",
                                                "echo 'sb-kong: starting'; echo 'sb-kong: no route to admin API'; exit 3"])
    result = eventually("pods.ready reports crash_loop", check(living_env, "pods.ready"),
                        lambda r: r["reason"] == "crash_loop" and r["details"]["not_ready"][0].get("last_logs"))
    assert finding(result) == ("SB6113", "fail", "crash_loop")
    evidence = result["details"]["not_ready"][0]
    assert (evidence["container"], evidence["exit_code"], evidence["last_termination"]) == ("sb-kong", 3, "Error")
    assert evidence["last_logs"][-1] == "sb-kong: no route to admin API"
    assert result["summary"].endswith("last log line: sb-kong: no route to admin API")

    living_env.set("pods.restart_threshold", 1)
    restarts = eventually("pods.restarts warns", check(living_env, "pods.restarts"), lambda r: r["status"] == "warn")
    assert finding(restarts) == ("SB6121", "warn", "degraded")
    top = restarts["details"]["containers"][0]
    assert top["container"] == "sb-kong" and top["restarts"] >= 2 and top["exit_code"] == 3
    living_env.set("pods.restart_threshold", 1000)
    assert finding(living_env.check("pods.restarts")) == ("SB6120", "ok", "none")


def test_restart_workload_replaces_pods_that_crashed_while_mysql_was_down(
        living: LivingCluster, living_env: LabEnv) -> None:
    """sb-core exits at start when MySQL does not answer (as the Java services do). MySQL was down, so it
    crash-loops; MySQL is back, but the kubelet's back-off keeps it down for minutes: restart-workload makes a new
    ReplicaSet now, the old pods go away, and the new ones are Ready."""
    mysql = living.servers["mysql"]
    patch_container(living, "sb-core", command=["/bin/sh", "-c",
        'nc -w 2 "$MYSQL_HOST" "$MYSQL_PORT" </dev/null | head -c 1 | grep -q . '
        '|| { echo "sb-core: cannot reach MySQL at $MYSQL_HOST:$MYSQL_PORT"; exit 1; }; exec /usr/local/bin/sb-serve sb-core 8080'])
    living.wait_ready(timeout=WAIT)
    mysql.stop()
    try:
        for pod in app_pods(living, "sb-core"):
            core_api(living).delete_namespaced_pod(pod["metadata"]["name"], NS, grace_period_seconds=0)
        result = eventually("sb-core crash-loops, with its last log lines", check(living_env, "pods.ready"),
                            lambda r: r["reason"] == "crash_loop" and r["details"]["not_ready"][0].get("last_logs"))
        assert result["details"]["not_ready"][0]["last_logs"][-1].startswith("sb-core: cannot reach MySQL at")
    finally:
        mysql.start()
    before = {rs.metadata.name for rs in apps_api(living).list_namespaced_replica_set(NS, label_selector="app=sb-core").items}
    old_pods = {p["metadata"]["name"] for p in app_pods(living, "sb-core")}

    code, doc = fix_json(living_env, "restart-workload")
    assert [c["description"] for c in doc["plan"]["changes"]] == [
        "via the Kubernetes API: rollout-restart Deployment sb-core in sb-apps (new pods replace the old ones; "
        "waits for the rollout)"]
    # the fix waited for the rollout (as `kubectl rollout status`), so its own re-check already saw the new pods
    assert code == 0 and doc["outcome"] == "fixed", doc
    assert finding(living_env.check("pods.ready")) == ("SB6110", "ok", "none")
    after = {rs.metadata.name for rs in apps_api(living).list_namespaced_replica_set(NS, label_selector="app=sb-core").items}
    assert after - before, "restart-workload made no new ReplicaSet"
    # the old pods are being deleted (pods.ready counts them as terminating); the kubelet removes them
    eventually("the old pods are gone", lambda: {p["metadata"]["name"] for p in living.pods()} & old_pods,
               lambda left: not left)


def test_restart_workload_has_nothing_to_do_when_healthy(living: LivingCluster, living_env: LabEnv) -> None:
    proc = living_env.fix("restart-workload")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout + proc.stderr


def restarted_at(living: LivingCluster, app: str) -> str | None:
    """The annotation `kubectl rollout restart` (and restart-workload) writes on the pod template."""
    meta = apps_api(living).read_namespaced_deployment(app, NS).spec.template.metadata
    return (meta.annotations or {}).get("kubectl.kubernetes.io/restartedAt")


def test_restart_workload_named_rolls_out_that_deployment_only(living: LivingCluster, living_env: LabEnv) -> None:
    """`--workload sb-ui` on a healthy cluster: the dry run changes nothing; applied, the Deployment controller
    makes a new ReplicaSet, the kubelet starts its pod and the old one goes; the other Deployments are untouched."""
    replica_sets = lambda: {rs.metadata.name for rs in apps_api(living).list_namespaced_replica_set(  # noqa: E731
        NS, label_selector="app=sb-ui").items}
    before, old_pods = replica_sets(), {p["metadata"]["name"] for p in app_pods(living, "sb-ui")}

    proc = living_env.fix("restart-workload", "--workload", "sb-ui", "--dry-run")
    assert proc.returncode == 0 and "rollout-restart Deployment sb-ui in sb-apps" in proc.stdout, proc.stdout
    assert restarted_at(living, "sb-ui") is None and replica_sets() == before

    code, doc = fix_json(living_env, "restart-workload", "--workload", "sb-ui")
    assert doc["plan"]["changes"][0]["description"].endswith(
        "rollout-restart Deployment sb-ui in sb-apps (new pods replace the old ones; waits for the rollout)")
    assert code == 0 and doc["outcome"] == "fixed", doc
    assert dt.datetime.strptime(restarted_at(living, "sb-ui") or "", "%Y-%m-%dT%H:%M:%SZ")
    assert all(restarted_at(living, app) is None for app in ("sb-core", "sb-admin", "sb-kong"))
    eventually("a new ReplicaSet for sb-ui", replica_sets, lambda names: bool(names - before))
    eventually("the old sb-ui pods are gone", lambda: {p["metadata"]["name"] for p in living.pods()} & old_pods,
               lambda left: not left)
    eventually("sb-ui Ready again", check(living_env, "pods.ready"), lambda r: r["status"] == "ok")


def test_restart_workload_unknown_name_is_blocked(living_env: LabEnv) -> None:
    code, doc = fix_json(living_env, "restart-workload", "--workload", "no-such-app")
    assert code == 3 and doc["outcome"] == "blocked" and "no-such-app" in doc["plan"]["blockers"][0]


def test_restart_workload_leaves_image_pull_to_ecr_refresh(living: LivingCluster, living_env: LabEnv) -> None:
    living.registry.set_token(lab.ecr_token(now() + dt.timedelta(hours=12)))
    for pod in app_pods(living, "sb-admin"):
        core_api(living).delete_namespaced_pod(pod["metadata"]["name"], NS, grace_period_seconds=0)
    eventually("sb-admin cannot pull", check(living_env, "pods.ready"), lambda r: r["reason"] == "image_pull")
    proc = living_env.fix("restart-workload")
    assert "ecr-refresh" in proc.stdout, proc.stdout
    annotations = apps_api(living).read_namespaced_deployment("sb-admin", NS).spec.template.metadata.annotations or {}
    assert "kubectl.kubernetes.io/restartedAt" not in annotations


# -- scheduling and readiness ----------------------------------------------------------------------
def test_pending_pod_shows_the_schedulers_event(living: LivingCluster, living_env: LabEnv) -> None:
    patch_container(living, "sb-admin", resources={"requests": {"cpu": "64"}})
    result = eventually("pods.ready reports pending", check(living_env, "pods.ready"),
                        lambda r: r["reason"] == "pending" and r["details"]["not_ready"][0].get("events"))
    assert finding(result) == ("SB6114", "fail", "pending")
    events = result["details"]["not_ready"][0]["events"]
    assert events[0].startswith("FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu"), events


def test_not_ready_sidecar_is_named(living: LivingCluster, living_env: LabEnv) -> None:
    """A second container whose readiness probe fails, named as Istio's sidecar: the kubelet marks it not Ready."""
    deploy = apps_api(living).read_namespaced_deployment("sb-ui", NS)
    image = deploy.spec.template.spec.containers[0].image
    apps_api(living).patch_namespaced_deployment("sb-ui", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "istio-proxy", "image": image, "command": ["/bin/sleep", "3600"],
         "readinessProbe": {"exec": {"command": ["/bin/false"]}, "periodSeconds": 1}}]}}}})
    result = eventually("pods.ready reports the sidecar", check(living_env, "pods.ready"),
                        lambda r: r["reason"] == "not_ready" and r["details"]["not_ready"][0]["container"] == "istio-proxy")
    assert finding(result) == ("SB6115", "fail", "not_ready")
    assert "Istio sidecar istio-proxy not ready" in result["details"]["not_ready"][0]["detail"]
