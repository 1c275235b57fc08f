"""ecr.* checks and the ecr-refresh fix.

The secret's own checks and the refresh from each token source run against the API-only lab
(tests/lab/kube.py: a real API server and etcd, secrets and Deployments, no node). Whatever involves pods
stuck pulling runs on the living cluster (tests/lab/living.py): the ECR stand-in answers 401 to a token it no
longer accepts, the kubelet reports ErrImagePull / ImagePullBackOff, and after the fix the ReplicaSet's new pod
pulls with the new secret and becomes Ready. boto3 talks to moto's ECR server (ThreadedMotoServer on a free
port, fake AWS credentials in the environment) for the AWS path: moto's token is opaque and its expiresAt is a
fixed 2015-01-01, so after a moto refresh ecr.expiry reports it expired (the fallback is what is tested there;
the realistic path uses a token built by tests.lab.kube.ecr_token).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding, status
from tests.lab.living import LivingCluster

NS = lab.NAMESPACE
SECRET = lab.PULL_SECRET
UTC = dt.timezone.utc
PULL_WAIT = 120.0  # seconds: the kubelet's image-pull back-off sets the pace


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path) -> LabEnv:
    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def put_secret(core: Any, config: str, type_: str = "kubernetes.io/dockerconfigjson", annotations: dict | None = None) -> None:
    core.delete_namespaced_secret(SECRET, NS)
    core.create_namespaced_secret(NS, {"metadata": {"name": SECRET, "annotations": annotations or {}}, "type": type_,
                                       "data": {".dockerconfigjson": b64(config)}})


def put_token(core: Any, token: str) -> None:
    put_secret(core, lab.dockerconfigjson(token))


def read_config(core: Any) -> tuple[Any, dict]:
    obj = core.read_namespaced_secret(SECRET, NS)
    return obj, json.loads(base64.b64decode(obj.data[".dockerconfigjson"]))


def pod_exists(core: Any, name: str) -> bool:
    """Present and not being deleted (a graceful delete first only sets deletionTimestamp)."""
    try:
        return core.read_namespaced_pod(name, NS).metadata.deletion_timestamp is None
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) == 404:
            return False
        raise


# -- the living cluster: pods the kubelet cannot pull for ---------------------------------------------
def living_core(living: LivingCluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(living.kube.api())


def stale_secret(living: LivingCluster, registry_token: str) -> None:
    """ECR moved on: the registry accepts only `registry_token`, awscred still holds one that expired."""
    living.write_pull_secret(lab.ecr_token(now() - dt.timedelta(hours=2)))
    living.registry.set_token(registry_token)


def unowned_pod(living: LivingCluster, app: str, name: str) -> str:
    """A pod someone started by hand from the app's image with the pull secret: no controller owns it."""
    from kubernetes import client

    image = client.AppsV1Api(living.kube.api()).read_namespaced_deployment(app, NS).spec.template.spec.containers[0].image
    living_core(living).create_namespaced_pod(NS, {
        "metadata": {"name": name, "labels": {"run": name}},
        "spec": {"containers": [{"name": name, "image": image, "imagePullPolicy": "Always"}],
                 "imagePullSecrets": [{"name": SECRET}], "terminationGracePeriodSeconds": 1}})
    return name


def stuck_pods(living: LivingCluster, app: str, extra: tuple[str, ...] = ()) -> set[str]:
    """Delete the app's pods (as a reschedule or node restart would) and wait until the kubelet reports each
    replacement (and each pod in `extra`) stuck pulling: ErrImagePull or ImagePullBackOff after the registry's
    401. Returns the names of the app's stuck pods."""
    core = living_core(living)
    for pod in core.list_namespaced_pod(NS, label_selector=f"app={app}").items:
        core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)

    def waiting() -> dict[str, str]:
        found = {}
        for pod in core.list_namespaced_pod(NS).items:
            if pod.metadata.deletion_timestamp is not None:
                continue
            for cs in pod.status.container_statuses or []:
                if cs.state.waiting is not None and cs.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff"):
                    found[pod.metadata.name] = (pod.metadata.labels or {}).get("app", "")
        return found

    end = time.monotonic() + PULL_WAIT
    found: dict[str, str] = {}
    while time.monotonic() < end:
        found = waiting()
        if app in found.values() and set(extra) <= set(found):
            return {name for name, owner in found.items() if owner == app}
        time.sleep(1.0)
    raise AssertionError(f"no {app} pod stuck pulling after {PULL_WAIT:g}s: {living.describe_pods()}")


def fix_json(env: LabEnv, *extra: str, input: str | None = None, environ: dict | None = None) -> tuple[int, dict, str]:
    proc = env.sbops("fix", "ecr-refresh", "--yes", "--output", "json", *extra, input=input, env=environ)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr


NO_AWS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
          "AWS_EC2_METADATA_DISABLED": "true", "AWS_ECR_TOKEN": ""}


# -- checks ------------------------------------------------------------------------------------------
def test_healthy(env: LabEnv) -> None:
    results = env.doctor("ecr.*")
    assert finding(results["ecr.secret"]) == ("SB6210", "ok", "none")
    assert finding(results["ecr.expiry"]) == ("SB6220", "ok", "none")
    expires = dt.datetime.fromisoformat(results["ecr.expiry"]["expires_at"])
    assert dt.timedelta(hours=10) < expires - now() < dt.timedelta(hours=12)


def test_secret_deleted(env: LabEnv, core: Any) -> None:
    core.delete_namespaced_secret(SECRET, NS)
    results = env.doctor("ecr.*")
    assert finding(results["ecr.secret"]) == ("SB6211", "fail", "missing")
    assert finding(results["ecr.expiry"]) == ("SB0003", "skip", "blocked")


def test_secret_wrong_type(env: LabEnv, core: Any) -> None:
    put_secret(core, lab.dockerconfigjson(lab.ecr_token(now() + dt.timedelta(hours=11))), type_="Opaque")
    assert finding(env.check("ecr.secret")) == ("SB6212", "fail", "misconfigured")


def test_secret_other_registry(env: LabEnv, core: Any) -> None:
    put_secret(core, lab.dockerconfigjson(lab.ecr_token(now() + dt.timedelta(hours=11)), registry="registry.example.org"))
    result = env.check("ecr.secret")
    assert finding(result) == ("SB6214", "fail", "misconfigured")
    assert result["details"]["registries"] == ["registry.example.org"]


def test_deployment_without_pull_secret(env: LabEnv, apps: Any) -> None:
    deployment = apps.read_namespaced_deployment("sb-help", NS)
    deployment.spec.template.spec.image_pull_secrets = None
    apps.replace_namespaced_deployment("sb-help", NS, deployment)
    result = env.check("ecr.secret")
    assert finding(result) == ("SB6215", "fail", "misconfigured")
    assert result["details"]["without_pull_secret"] == ["Deployment/sb-help"]


@pytest.mark.parametrize("hours, expected", [(-1, ("SB6222", "fail", "expired")), (1, ("SB6223", "warn", "expiring"))])
def test_token_expiry(env: LabEnv, core: Any, hours: float, expected: tuple[str, str, str]) -> None:
    when = now() + dt.timedelta(hours=hours)
    put_token(core, lab.ecr_token(when))
    result = env.check("ecr.expiry")
    assert finding(result) == expected
    assert abs(dt.datetime.fromisoformat(result["expires_at"]) - when) < dt.timedelta(seconds=2)


def test_token_garbage(env: LabEnv, core: Any) -> None:
    put_secret(core, json.dumps({"auths": {lab.REGISTRY: {"username": "AWS", "password": "garbage",
                                                          "auth": b64("AWS:garbage")}}}))
    results = env.doctor("ecr.*")
    assert finding(results["ecr.secret"]) == ("SB6210", "ok", "none")
    assert finding(results["ecr.expiry"]) == ("SB6221", "warn", "misconfigured")
    assert results["ecr.expiry"]["expires_at"] is None


def test_expiry_from_annotation(env: LabEnv, core: Any) -> None:
    put_secret(core, lab.dockerconfigjson(b64("AWS:opaque-token")),
               annotations={"sbops.io/expires-at": (now() + dt.timedelta(hours=5)).isoformat()})
    assert finding(env.check("ecr.expiry")) == ("SB6220", "ok", "none")


# -- ecr-refresh -------------------------------------------------------------------------------------
def test_refresh_from_env_token_repairs_and_deletes_stuck_pods(living: LivingCluster, living_env: LabEnv) -> None:
    """The token expired and ECR moved on: sb-core's new pod gets 401 from the registry, and so does a pod someone
    started by hand. ecr-refresh (token from AWS_ECR_TOKEN) writes the secret, deletes the stuck pod its
    ReplicaSet owns (the replacement pulls and becomes Ready), and leaves the unowned one and the healthy ones."""
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    stale_secret(living, fresh)
    orphan = unowned_pod(living, "sb-ui", "sb-ui-manual")
    healthy = {p.metadata.name for p in living_core(living).list_namespaced_pod(NS, label_selector="app=sb-admin").items}
    stuck = stuck_pods(living, "sb-core", extra=(orphan,))

    code, doc, output = fix_json(living_env, environ={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert code == 0, output
    assert doc["outcome"] == "fixed"
    assert {c["id"]: (c["status"], c["reason"]) for c in doc["checks"]} == {
        "ecr.secret": ("ok", "none"), "ecr.expiry": ("ok", "none")}
    assert stuck and all(name in json.dumps(doc["plan"]) for name in stuck)  # the plan names the pods it deletes
    assert orphan in " ".join(doc["plan"]["notes"])  # named, not deleted: nothing would bring it back
    core = living_core(living)
    assert not any(pod_exists(core, name) for name in stuck)
    assert pod_exists(core, orphan) and all(pod_exists(core, name) for name in healthy)
    obj, config = read_config(core)
    entry = config["auths"][lab.REGISTRY]
    assert entry["username"] == "AWS" and entry["password"] == lab.ecr_password(fresh)
    assert obj.type == "kubernetes.io/dockerconfigjson"
    assert obj.metadata.annotations["sbops.io/expires-at"].endswith("Z")
    # the token is a secret: never in output, plan or journal
    for text in (output, Path(living_env.settings["journal"]).read_text()):
        assert fresh not in text and lab.ecr_password(fresh) not in text
    # the kubelet pulls with the new secret: sb-core's new pod is Ready
    living.wait_ready(timeout=PULL_WAIT)


def test_refresh_recreates_deleted_and_wrong_type_secret(env: LabEnv, core: Any) -> None:
    put_secret(core, "{}", type_="Opaque")
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    code, doc, output = fix_json(env, environ={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert code == 0, output
    assert core.read_namespaced_secret(SECRET, NS).type == "kubernetes.io/dockerconfigjson"
    core.delete_namespaced_secret(SECRET, NS)
    code, doc, output = fix_json(env, environ={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert code == 0, output
    assert finding(env.check("ecr.secret")) == ("SB6210", "ok", "none")


def test_refresh_from_stdin_and_file(env: LabEnv, core: Any, tmp_path: Path) -> None:
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=1)))
    fresh = lab.ecr_password(lab.ecr_token(now() + dt.timedelta(hours=12)))  # get-login-password output
    env.set("ecr.token_file", "-")
    code, doc, output = fix_json(env, input=fresh + "\n", environ=NO_AWS)
    assert code == 0, output
    assert fresh not in output
    put_token(core, lab.ecr_token(now() + dt.timedelta(hours=1)))
    token_file = tmp_path / "token"
    token_file.write_text(lab.ecr_token(now() + dt.timedelta(hours=12)))
    env.set("ecr.token_file", str(token_file))
    code, doc, output = fix_json(env, environ=NO_AWS)
    assert code == 0, output
    assert finding(env.check("ecr.expiry")) == ("SB6220", "ok", "none")


@pytest.fixture
def moto_ecr() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from tests.lab.common import free_port

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_refresh_from_aws_api(living: LivingCluster, living_env: LabEnv, moto_ecr: str) -> None:
    """boto3's standard chain (fake env credentials) against moto, whose token the ECR stand-in accepts: the
    token is opaque, so the annotation comes from AWS's expiresAt (moto: 2015-01-01) and ecr.expiry reports it
    expired, yet the kubelet pulls with it and the stuck pod's replacement becomes Ready."""
    moto_token = base64.b64encode(b"AWS:123456789012-auth-token").decode()  # what moto's GetAuthorizationToken returns
    stale_secret(living, moto_token)
    stuck = stuck_pods(living, "sb-core")
    living_env.set("ecr.endpoint_url", moto_ecr)
    aws = {**NO_AWS, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    code, doc, output = fix_json(living_env, environ=aws)
    checks = {c["id"]: (c["status"], c["reason"]) for c in doc["checks"]}
    assert checks["ecr.secret"] == ("ok", "none")
    assert checks["ecr.expiry"] == ("fail", "expired")  # moto's fixed expiresAt is in 2015
    assert code == 3
    core = living_core(living)
    obj, config = read_config(core)
    entry = config["auths"][lab.REGISTRY]
    assert entry["password"] == "123456789012-auth-token"  # moto's token, after "AWS:"
    assert obj.metadata.annotations["sbops.io/expires-at"] == "2015-01-01T00:00:00Z"
    assert not any(pod_exists(core, name) for name in stuck)
    assert "123456789012-auth-token" not in output
    assert living_env.check("ecr.expiry")["expires_at"].startswith("2015-01-01T00:00:00")
    living.wait_ready(timeout=PULL_WAIT)


def test_refresh_without_credentials_is_blocked(env: LabEnv, core: Any) -> None:
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=1)))
    before = core.read_namespaced_secret(SECRET, NS).metadata.resource_version
    code, doc, output = fix_json(env, environ=NO_AWS)
    assert code == 3 and doc["outcome"] == "blocked"
    assert "no ECR token" in doc["plan"]["blockers"][0]
    assert core.read_namespaced_secret(SECRET, NS).metadata.resource_version == before


def test_refresh_dry_run_changes_nothing(living: LivingCluster, living_env: LabEnv) -> None:
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    stale_secret(living, fresh)
    stuck = stuck_pods(living, "sb-core")
    core = living_core(living)
    before = core.read_namespaced_secret(SECRET, NS).metadata.resource_version
    proc = living_env.sbops("fix", "ecr-refresh", "--dry-run", env={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(name in proc.stdout for name in stuck) and "****" in proc.stdout
    assert fresh not in proc.stdout + proc.stderr and lab.ecr_password(fresh) not in proc.stdout + proc.stderr
    assert core.read_namespaced_secret(SECRET, NS).metadata.resource_version == before
    assert all(pod_exists(core, name) for name in stuck)
    assert finding(living_env.check("ecr.expiry")) == ("SB6222", "fail", "expired")
    assert status(living_env.check("pods.ready")) == ("fail", "image_pull")  # still stuck: nothing was changed


