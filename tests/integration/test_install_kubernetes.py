"""The Kubernetes steps of `sbops install` against the lab's real kube-apiserver, with the real Helm 3:
namespace, ECR pull secret, TLS secret, the Helm release of the local demo chart (values on stdin, never
in argv), Gateway and VirtualService, the ingress Service patched to NodePort, and the wait for pods
(a timeout fails the step naming each pod and why).

The object steps run on the API-only lab (tests/lab/kube.py). The wait for pods runs on the living cluster
(tests/lab/living.py): the lab's chart installed by the helm-release step, pods the kubelet pulls, starts and
probes, a container that really exits; no test writes a pod status.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ecr import NO_AWS, moto_ecr  # noqa: F401 - moto's ECR API, a fixture of test_ecr
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.helm import DEMO_CHART
from tests.lab.living import LivingCluster, eventually

PASSWORDS = {"mysql": "KubeStepsMysql01", "mongodb": "KubeStepsMongo01", "rabbitmq": "KubeStepsRabbit1"}
STEPS = ("namespace", "ecr-secret", "tls-secret", "helm-release", "istio-gateway")


def only(*steps: str) -> list[str]:
    return [a for s in steps for a in ("--only", s)]


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path, helm_bin: str) -> LabEnv:
    made = LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig)).set("helm.command", helm_bin)
    made.set("install.chart", str(DEMO_CHART))
    for name, password in PASSWORDS.items():
        made.service(name, port=1, password=password)
    return made.installer()


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tls")
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=200)
    (root / "fullchain.pem").write_text(cert + ca)
    (root / "privkey.pem").write_text(key)
    return root / "fullchain.pem", root / "privkey.pem"


def token(hours: float = 11) -> str:
    return lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours))


def helm_json(helm_bin: str, helm_env: dict, kube: lab.KubeLab, *args: str) -> Any:
    proc = subprocess.run([helm_bin, *args, "--kubeconfig", str(kube.kubeconfig), "-o", "json"], capture_output=True,
                          text=True, timeout=60, env=helm_env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kubernetes_steps_create_everything_then_a_rerun_changes_nothing(
        env: LabEnv, kube: lab.KubeLab, core: Any, custom: Any, helm_bin: str, helm_env: dict, pair) -> None:
    ns = f"sb-install-{secrets.token_hex(3)}"
    env.set("namespace", ns)
    ingress = core.read_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE)
    ingress.spec.type = "ClusterIP"
    for port in ingress.spec.ports:
        port.node_port = None
    core.replace_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE, ingress)
    ecr = token()
    cert, key = pair
    extra = {**helm_env, "AWS_ECR_TOKEN": ecr}
    with ArgvWatcher([*PASSWORDS.values(), lab.ecr_password(ecr)]) as watch:
        proc = env.install("--yes", "--ssl-cert", str(cert), "--ssl-key", str(key), *only(*STEPS), env=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert watch.samples > 10 and watch.hits == [], watch.hits[:1]
    out = proc.stdout
    for text in (f"create namespace {ns} labelled istio-injection=enabled,app.kubernetes.io/managed-by=Helm",
                 f"create secret {ns}/awscred (kubernetes.io/dockerconfigjson", "replace secret istio-system/istio-ingressgateway-certs",
                 f"install release stackbill in {ns} from {DEMO_CHART} 0.1.0: the release does not exist",
                 f"create Gateway {ns}/stackbill-gateway", f"create VirtualService {ns}/stackbill-vs",
                 "patch Service istio-system/istio-ingressgateway: type ClusterIP -> NodePort"):
        assert text in out, (text, out)
    for secret in PASSWORDS.values():
        assert secret not in out + proc.stderr

    namespace = core.read_namespace(ns)
    assert namespace.metadata.labels["istio-injection"] == "enabled"
    assert namespace.metadata.annotations["meta.helm.sh/release-name"] == "stackbill"
    pull = core.read_namespaced_secret("awscred", ns)
    assert pull.type == "kubernetes.io/dockerconfigjson"
    stored = json.loads(base64.b64decode(pull.data[".dockerconfigjson"]))["auths"][lab.REGISTRY]["password"]
    assert stored == lab.ecr_password(ecr)
    tls = core.read_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    assert base64.b64decode(tls.data["tls.crt"]) == cert.read_bytes()
    values = helm_json(helm_bin, helm_env, kube, "get", "values", "stackbill", "-n", ns)
    # port 1 is not MySQL's default, so the chart is told (chart_values): pods reach a server where it listens
    assert values["global"]["mysql"] == {"ip": "127.0.0.1", "port": 1, "username": "stackbill",
                                         "password": PASSWORDS["mysql"]}
    assert values["global"]["domain"] == lab.DOMAIN
    assert core.read_namespaced_config_map("stackbill-settings", ns).data["chartVersion"] == "0.1.0"
    gateway = custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", ns, "gateways", "stackbill-gateway")
    assert gateway["spec"]["servers"][0]["tls"] == {"mode": "SIMPLE", "credentialName": lab.TLS_SECRET}
    service = core.read_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE)
    assert service.spec.type == "NodePort"
    assert {p.name: p.node_port for p in service.spec.ports if p.name in ("http2", "https")} == {"http2": 31443, "https": 31882}
    checks = env.doctor("k8s.namespace", "ecr.*", "tls.*", "helm.release", "istio.gateway", "istio.ingress")
    renewal = checks.pop("tls.renewal")  # the certificate came from files: not certbot's
    assert (renewal["status"], renewal["reason"]) == ("skip", "not_applicable")
    assert {cid: c["status"] for cid, c in checks.items()} == dict.fromkeys(checks, "ok"), checks

    again = env.install("--yes", "--ssl-cert", str(cert), "--ssl-key", str(key), *only(*STEPS), "--output", "json",
                        env=extra)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    ran = [s for s in doc["steps"] if s["status"] != "skipped"]
    assert [s["status"] for s in ran] == ["unchanged"] * 5, [(s["name"], s["status"]) for s in ran]
    assert all(r["nothing_to_do"] for s in ran for r in s["resources"])
    assert doc["result"] == "finished" and doc["next"] == "sbops doctor"

    env.service("mysql", port=1, password="AnotherMysqlPass")
    proc = env.install("--yes", *only("credentials", "helm-release", "save-credentials"), env=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "upgrade release stackbill" in proc.stdout and "values differ: global.mysql.password" in proc.stdout
    history = helm_json(helm_bin, helm_env, kube, "history", "stackbill", "-n", ns)
    assert [h["status"] for h in history] == ["superseded", "deployed"]


def test_an_expired_pull_secret_is_renewed(env: LabEnv, core: Any) -> None:
    old = token(hours=-1)
    core.delete_namespaced_secret("awscred", lab.NAMESPACE)
    core.create_namespaced_secret(lab.NAMESPACE, {"metadata": {"name": "awscred"}, "type": "kubernetes.io/dockerconfigjson",
                                                   "data": {".dockerconfigjson": base64.b64encode(lab.dockerconfigjson(old).encode()).decode()}})
    assert env.check("ecr.expiry")["status"] == "fail"
    token_file = env.root / "token"
    fresh = token()
    token_file.write_text(lab.ecr_password(fresh) + "\n")
    proc = env.install("--yes", "--ecr-token-file", str(token_file), *only("ecr-secret"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "a new token is needed: the ECR token in sb-apps/awscred expired" in proc.stdout
    assert "the ECR token was supplied by hand" in proc.stdout  # so the refresher cannot be offered
    assert env.check("ecr.expiry")["status"] == "ok"


# -- wait-pods on the living cluster: pods the kubelet really runs -------------------------------------------


def living_installer(living_env: LabEnv) -> LabEnv:
    """`sbops install` pointed at the living cluster, with the lab's chart and the cached Helm."""
    from tests.lab.living import STACKBILL_CHART
    from tests.lab.stack import helm_binary

    return living_env.set("helm.command", helm_binary()).set("install.chart", str(STACKBILL_CHART)).installer()


def last_install_log(env: LabEnv) -> str:
    """The newest `sbops install` log (each step's changes and verifying checks, line by line)."""
    return sorted((env.root / "install" / "log_dir").glob("install-*.log"))[-1].read_text()


def helm_homes(root: Path) -> dict[str, str]:
    return {**os.environ, **{k: str(root / "helm" / k.lower())
                             for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}}


def test_wait_pods_fails_naming_the_crash_looping_pod_then_resume_converges(
        living: LivingCluster, living_env: LabEnv) -> None:
    """sb-core's container exits at start (a bad image): the kubelet crash-loops it, wait-pods gives up after
    its timeout naming the pod and the exit; the Deployment put right, `install --resume` waits until the
    kubelet reports every pod Ready."""
    from kubernetes import client

    env = living_installer(living_env)
    apps = client.AppsV1Api(living.kube.api())
    apps.patch_namespaced_deployment("sb-core", lab.NAMESPACE, {"spec": {"template": {"spec": {"containers": [
        {"name": "sb-core", "command": ["/bin/sh", "-c", "echo 'sb-core: bad build'; exit 1"]}]}}}})
    eventually("sb-core crash-loops", lambda: env.check("pods.ready")["reason"], lambda r: r == "crash_loop",
               timeout=180)
    env.set("install.pod_timeout", 2)
    proc = env.install("--yes", *only("wait-pods"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert re.search(r"not every pod is Ready after 2s: sb-core-[a-z0-9]+-[a-z0-9]+: crash_loop \(CrashLoopBackOff: "
                     r"last exit 1 \(Error\), \d+ restarts", proc.stdout), proc.stdout
    assert "Install failed at step wait-pods" in proc.stdout and "sbops install --resume" in proc.stdout
    state = json.loads((env.root / "install" / "state.json").read_text())
    assert state["steps"]["wait-pods"]["status"] == "failed" and state["finished"] is False

    apps.patch_namespaced_deployment("sb-core", lab.NAMESPACE, {"spec": {"template": {"spec": {"containers": [
        {"name": "sb-core", "command": None}]}}}})
    env.set("install.pod_timeout", 180)
    proc = env.install("--resume", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the step waited (the fixed Deployment's new pod starts and passes its probe), then verified; the crashed
    # pod may still be terminating, which pods.ready counts apart and does not judge
    assert "at step wait-pods" in proc.stdout
    assert re.search(r"check pods\.ready: ok \(none\) all \d+ pod\(s\) in sb-apps are Ready", last_install_log(env))
    state = json.loads((env.root / "install" / "state.json").read_text())
    assert state["finished"] is True and state["options"]["only"] == ["wait-pods"]
    refused = env.install("--resume", "--yes")
    assert refused.returncode == 2 and "nothing to resume" in refused.stderr


def test_helm_release_installs_the_chart_and_wait_pods_waits_for_the_kubelet(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    """The release gone (`helm uninstall`): the installer's helm-release step installs the lab's chart with the
    values from the credentials, and wait-pods returns only once the kubelet has pulled from the ECR stand-in,
    started the containers and passed their readiness probes."""
    from tests.lab.living import STACKBILL_CHART, services_of
    from tests.lab.stack import helm_binary

    env = living_installer(living_env)
    homes = helm_homes(tmp_path)
    gone = subprocess.run([helm_binary(), "uninstall", "stackbill", "-n", lab.NAMESPACE, "--kubeconfig",
                           str(living.kubeconfig), "--wait", "--timeout", "120s"],
                          capture_output=True, text=True, timeout=180, env=homes)
    assert gone.returncode == 0, gone.stderr
    try:
        eventually("the release's pods are gone", living.pods, lambda pods: not pods, timeout=180)
        proc = env.install("--yes", *only("helm-release", "wait-pods"), env=homes)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert re.search(r"check pods.ready: ok \(none\) all [1-9]\d* pod\(s\) in sb-apps are Ready",
                         last_install_log(env)), proc.stdout
        pods = living.pods()
        assert {p["metadata"]["labels"]["app"] for p in pods} == {"sb-core", "sb-ui", "sb-admin", "sb-kong"}
        for pod in pods:  # Ready by the kubelet's verdict, in containers containerd runs
            assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
            assert all(cs["containerID"].startswith("containerd://") for cs in pod["status"]["containerStatuses"])
        history = helm_json_at(living, homes, "history", "stackbill", "-n", lab.NAMESPACE)
        assert [h["status"] for h in history] == ["deployed"]
    finally:
        # the session's cluster must keep its release whatever happened above
        listed = subprocess.run([helm_binary(), "status", "stackbill", "-n", lab.NAMESPACE, "--kubeconfig",
                                 str(living.kubeconfig)], capture_output=True, text=True, timeout=60, env=homes)
        if listed.returncode != 0:
            living.helm("stackbill", STACKBILL_CHART, lab.NAMESPACE, living.values(services_of(living.servers)))


def helm_json_at(living: LivingCluster, homes: dict[str, str], *args: str) -> Any:
    from tests.lab.stack import helm_binary

    proc = subprocess.run([helm_binary(), *args, "--kubeconfig", str(living.kubeconfig), "-o", "json"],
                          capture_output=True, text=True, timeout=60, env=homes)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_token_from_aws_credentials_offers_the_refresher(env: LabEnv, core: Any, moto_ecr: str) -> None:
    """boto3's credential chain (fake keys in the environment) against moto's ECR API: the plan takes the
    token from AWS and offers the refresher timer; applied, the step's verification catches that moto's
    token expired in 2015 (its fixed expiresAt) instead of reporting success."""
    core.delete_namespaced_secret("awscred", lab.NAMESPACE)
    env.set("ecr.endpoint_url", moto_ecr)
    aws = {**NO_AWS, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    plan = env.install("--plan", *only("ecr-secret"), env=aws)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "+ via the Kubernetes API: create secret sb-apps/awscred" in plan.stdout
    assert "note: token from AWS ECR API (region ap-south-1)" in plan.stdout
    assert "+ install sbops-ecr-refresh.timer: `sbops fix ecr-refresh --yes` every 6 hours" in plan.stdout
    assert core.list_namespaced_secret(lab.NAMESPACE, field_selector="metadata.name=awscred").items == []

    proc = env.install("--yes", "--no-ecr-refresher", *only("ecr-secret"), env=aws)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "verify: ecr.expiry fail (expired)" in proc.stdout
    assert "the ECR refresher is not wanted (--no-ecr-refresher" in proc.stdout
    assert core.read_namespaced_secret("awscred", lab.NAMESPACE).metadata.annotations["sbops.io/expires-at"].startswith("2015-01-01")


def set_ingress(core: Any, kind: str, http: int | None, https: int | None) -> None:
    ingress = core.read_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE)
    ingress.spec.type = kind
    for port in ingress.spec.ports:
        port.node_port = {"http2": http, "https": https}.get(port.name, port.node_port)
    core.replace_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE, ingress)


def ingress_ports(core: Any) -> tuple[str, dict[str, int]]:
    svc = core.read_namespaced_service("istio-ingressgateway", lab.ISTIO_NAMESPACE)
    return svc.spec.type, {p.name: p.node_port for p in svc.spec.ports if p.name in ("http2", "https")}


def test_a_server_of_the_current_bash_installer_keeps_its_nodeports_and_the_recap_names_them(
        env: LabEnv, core: Any) -> None:
    set_ingress(core, "NodePort", 31080, 31443)  # UPSTREAM-CURRENT.md's ports
    proc = env.install("--yes", *only("istio-gateway"), "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert ingress_ports(core) == ("NodePort", {"http2": 31080, "https": 31443})
    assert doc["nodeports"]["http"] == 31080 and doc["nodeports"]["https"] == 31443
    assert doc["portal_url"].endswith(":31443") and doc["firewall"]["open"] == [31080, 31443]
    text = env.install("--yes", *only("istio-gateway"))
    assert "NodePorts:   HTTPS 31443, HTTP 31080" in text.stdout, text.stdout


def test_a_fresh_istio_gateway_gets_the_configured_nodeports(env: LabEnv, core: Any) -> None:
    set_ingress(core, "LoadBalancer", 30111, 30222)  # what `istioctl install --set profile=demo` leaves
    proc = env.install("--yes", *only("istio-gateway"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "type LoadBalancer -> NodePort" in proc.stdout and "http2 nodePort 30111 -> 31443" in proc.stdout
    assert ingress_ports(core) == ("NodePort", {"http2": lab.NODEPORT_HTTP, "https": lab.NODEPORT_HTTPS})
