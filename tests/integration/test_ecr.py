"""ecr.* checks and the ecr-refresh fix against the real kube-apiserver lab (tests/lab/kube.py).

Real here: the API server and etcd (secrets, Deployments, pods and their status), boto3 talking to moto's
ECR server (ThreadedMotoServer on a free port, fake AWS credentials in the environment) for the AWS path.
Not real: kubelets (nothing pulls images; a stuck pod is a pod whose status we set to ImagePullBackOff) and
AWS itself (moto's token is opaque and its expiresAt is a fixed 2015-01-01, so after a moto refresh the
expiry comes from that expiresAt and ecr.expiry reports it expired: the fallback is what is tested there;
the realistic path uses a token built by tests.lab.kube.ecr_token).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding

NS = lab.NAMESPACE
SECRET = lab.PULL_SECRET
UTC = dt.timezone.utc


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


def stuck_pod(core: Any, name: str = "sb-core-7d9f8b6c5d-abcde", owned: bool = True) -> str:
    """A pod of sb-core waiting in ImagePullBackOff, owned by a ReplicaSet (nothing garbage-collects here)."""
    owners = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "sb-core-7d9f8b6c5d", "controller": True,
               "blockOwnerDeletion": True, "uid": "0b0e7c9e-1111-4222-8333-444455556666"}] if owned else []
    core.create_namespaced_pod(NS, {
        "metadata": {"name": name, "labels": {"app": "sb-core"}, "ownerReferences": owners},
        "spec": {"containers": [{"name": "sb-core", "image": f"{lab.REGISTRY}/sb-core:latest"}],
                 "imagePullSecrets": [{"name": SECRET}], "nodeName": lab.NODE}})
    core.patch_namespaced_pod_status(name, NS, {"status": {"phase": "Pending", "containerStatuses": [
        {"name": "sb-core", "image": f"{lab.REGISTRY}/sb-core:latest", "imageID": "", "ready": False,
         "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                                                   "message": "Back-off pulling image: 401 Unauthorized"}}}]}})
    return name


def pod_exists(core: Any, name: str) -> bool:
    """Present and not being deleted. A graceful delete only sets deletionTimestamp until a kubelet confirms,
    and no kubelet runs here: a pod sbops deleted counts as gone once its deletion has started."""
    try:
        return core.read_namespaced_pod(name, NS).metadata.deletion_timestamp is None
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) == 404:
            return False
        raise


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
def test_refresh_from_env_token_repairs_and_deletes_stuck_pods(env: LabEnv, core: Any) -> None:
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=2)))
    stuck = stuck_pod(core)
    orphan = stuck_pod(core, "sb-ui-manual", owned=False)
    healthy = lab.pod_name("sb-admin")
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    code, doc, output = fix_json(env, environ={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert code == 0, output
    assert doc["outcome"] == "fixed"
    assert {c["id"]: (c["status"], c["reason"]) for c in doc["checks"]} == {
        "ecr.secret": ("ok", "none"), "ecr.expiry": ("ok", "none")}
    assert not pod_exists(core, stuck)
    assert pod_exists(core, orphan) and pod_exists(core, healthy)
    obj, config = read_config(core)
    entry = config["auths"][lab.REGISTRY]
    assert entry["username"] == "AWS" and entry["password"] == lab.ecr_password(fresh)
    assert obj.type == "kubernetes.io/dockerconfigjson"
    assert obj.metadata.annotations["sbops.io/expires-at"].endswith("Z")
    # the token is a secret: never in output, plan or journal
    for text in (output, Path(env.settings["journal"]).read_text()):
        assert fresh not in text and lab.ecr_password(fresh) not in text
    assert stuck in json.dumps(doc["plan"])  # the plan names the pods it deletes


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


def test_refresh_from_aws_api(env: LabEnv, core: Any, moto_ecr: str) -> None:
    """boto3's standard chain (fake env credentials) against moto: the token is opaque, so the annotation
    comes from AWS's expiresAt (moto: 2015-01-01), and ecr.expiry then reads that annotation."""
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=1)))
    stuck = stuck_pod(core)
    env.set("ecr.endpoint_url", moto_ecr)
    aws = {**NO_AWS, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    code, doc, output = fix_json(env, environ=aws)
    checks = {c["id"]: (c["status"], c["reason"]) for c in doc["checks"]}
    assert checks["ecr.secret"] == ("ok", "none")
    assert checks["ecr.expiry"] == ("fail", "expired")  # moto's fixed expiresAt is in 2015
    assert code == 3
    obj, config = read_config(core)
    entry = config["auths"][lab.REGISTRY]
    assert entry["password"] == "123456789012-auth-token"  # moto's token, after "AWS:"
    assert obj.metadata.annotations["sbops.io/expires-at"] == "2015-01-01T00:00:00Z"
    assert not pod_exists(core, stuck)
    assert "123456789012-auth-token" not in output
    assert env.check("ecr.expiry")["expires_at"].startswith("2015-01-01T00:00:00")


def test_refresh_without_credentials_is_blocked(env: LabEnv, core: Any) -> None:
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=1)))
    before = core.read_namespaced_secret(SECRET, NS).metadata.resource_version
    code, doc, output = fix_json(env, environ=NO_AWS)
    assert code == 3 and doc["outcome"] == "blocked"
    assert "no ECR token" in doc["plan"]["blockers"][0]
    assert core.read_namespaced_secret(SECRET, NS).metadata.resource_version == before


def test_refresh_dry_run_changes_nothing(env: LabEnv, core: Any) -> None:
    put_token(core, lab.ecr_token(now() - dt.timedelta(hours=1)))
    stuck = stuck_pod(core)
    before = core.read_namespaced_secret(SECRET, NS).metadata.resource_version
    fresh = lab.ecr_token(now() + dt.timedelta(hours=12))
    proc = env.sbops("fix", "ecr-refresh", "--dry-run", env={**NO_AWS, "AWS_ECR_TOKEN": fresh})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stuck in proc.stdout and "****" in proc.stdout
    assert fresh not in proc.stdout + proc.stderr and lab.ecr_password(fresh) not in proc.stdout + proc.stderr
    assert core.read_namespaced_secret(SECRET, NS).metadata.resource_version == before
    assert pod_exists(core, stuck)
    assert finding(env.check("ecr.expiry")) == ("SB6222", "fail", "expired")
