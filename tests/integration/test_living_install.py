"""`sbops install` (the real CLI) installs the lab's chart on the living cluster (tests/lab/living.py) through
its real Helm step, then waits for pods that the kubelet really made Ready.

The steps that run here, against the living cluster: `namespace` (Helm's ownership labels on sb-apps),
`ecr-secret` (the pull secret awscred from a supplied token; the refresher is not offered for a supplied
token), `tls-secret` (the ingress gateway's secret from --ssl-cert/--ssl-key), `helm-release` (`helm upgrade
--install` of tests/lab/charts/stackbill, setting install.chart, with chart_values on standard input: the
lab's servers listen on non-default ports, so the values carry them) and `wait-pods`. Validation always runs.

The steps that do not: `k3s`, `helm`, `istio` (downloads, apt and systemd: the living cluster is K3s's stand-in,
and Helm is the lab's cached binary, setting helm.command), `mysql`, `mongodb`, `rabbitmq`, `nfs` (apt packages
and their services: the lab's private servers run instead), `credentials`/`save-credentials` (the LabEnv writes
the credentials file), `exporter` (systemd), and `istio-gateway`: sbops's desired VirtualService has no `/apidocs`
and `/` routes, which the lab chart's VirtualService (the one Helm owns here) has, so that step would rewrite a
Helm-owned object; its API behaviour is tested against the API-only lab in test_install_kubernetes.py.

Each test first removes the StackBill release with `helm uninstall` (the lab's Helm): its Deployments, Services,
credentials Secret, Gateway and VirtualService go, and the kubelet stops the pods. The `living` fixture's
restore() compares the re-created Deployments and the secrets with its snapshot, so the next test meets the
same cluster. Nothing is mocked; no pod status is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.test_living_workloads import apps_api, core_api, eventually
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv, fix_json
from tests.lab.living import APPS, STACKBILL_CHART, LivingCluster, pull_secret_token
from tests.lab.stack import helm_binary

NS = lab.NAMESPACE
STEPS = ("namespace", "ecr-secret", "tls-secret", "helm-release", "wait-pods")


def only(*steps: str) -> list[str]:
    return [a for s in steps for a in ("--only", s)]


def helm(living: LivingCluster, *args: str) -> subprocess.CompletedProcess:
    """The lab's Helm, with the living cluster's kubeconfig and Helm home (as LivingCluster.helm runs it)."""
    home = living.root / "helm"
    env = {**os.environ, "KUBECONFIG": str(living.kubeconfig), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=env, timeout=120)


def uninstall(living: LivingCluster) -> None:
    """`helm uninstall stackbill`, then wait until the kubelet has stopped every pod of the release."""
    proc = helm(living, "uninstall", "stackbill", "-n", NS)
    assert proc.returncode == 0, proc.stderr
    eventually("the release's pods are gone", lambda: [p["metadata"]["name"] for p in living.pods()],
               lambda left: not left, timeout=90)
    assert apps_api(living).list_namespaced_deployment(NS).items == []


def installer_env(living: LivingCluster, env: LabEnv) -> LabEnv:
    """The living LabEnv as an installer's: the lab chart and the lab's Helm (its credentials file already names
    the host's address on the node's link as NFS server, where the pods mount it, as living.install's values say)."""
    assert env.nfs_server == living.host_ip
    env.set("helm.command", helm_binary()).set("install.chart", str(STACKBILL_CHART)).set("domain", lab.DOMAIN)
    return env.installer()


def tls_files(living: LivingCluster, root: Path) -> tuple[Path, Path]:
    """The ingress certificate and key of the healthy install, as the files an operator would give."""
    secret = core_api(living).read_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    root.mkdir(parents=True, exist_ok=True)
    cert, key = root / "fullchain.pem", root / "privkey.pem"
    cert.write_bytes(base64.b64decode(secret.data["tls.crt"]))
    key.write_bytes(base64.b64decode(secret.data["tls.key"]))
    key.chmod(0o600)
    return cert, key


def release_pods(living: LivingCluster) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in living.pods() if not p["metadata"].get("deletionTimestamp")}


def ready_condition(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["status"].get("conditions", []) if c["type"] == "Ready")


def stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_install_runs_helm_and_waits_for_pods_the_kubelet_made_ready(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    uninstall(living)
    core_api(living).delete_namespaced_secret(lab.PULL_SECRET, NS)
    old_pods = set(release_pods(living))
    env = installer_env(living, living_env)
    cert, key = tls_files(living, tmp_path / "tls")
    token = living.token  # what the registry accepts now
    extra = {"AWS_ECR_TOKEN": token}

    plan = env.install("--plan", "--ssl-cert", str(cert), "--ssl-key", str(key), *only(*STEPS), env=extra)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"install release stackbill in {NS} from {STACKBILL_CHART} 1.0.0: the release does not exist" in plan.stdout
    assert helm(living, "status", "stackbill", "-n", NS).returncode != 0, "the plan installed the release"

    began = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    secrets = [*living.servers["passwords"].values(), lab.ecr_password(token)]
    with ArgvWatcher(secrets) as watch:
        proc = env.install("--yes", "--ssl-cert", str(cert), "--ssl-key", str(key), *only(*STEPS),
                           "--output", "json", env=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert watch.samples > 10 and watch.hits == [], watch.hits[:1]
    doc = json.loads(proc.stdout)
    steps = {s["name"]: s for s in doc["steps"] if s["status"] != "skipped"}
    assert list(steps) == list(STEPS)
    assert {name: s["status"] for name, s in steps.items()} == {
        "namespace": "changed", "ecr-secret": "changed", "tls-secret": "unchanged", "helm-release": "changed",
        "wait-pods": "changed"}, {n: (s["status"], s["error"]) for n, s in steps.items()}
    assert doc["result"] == "finished"
    applied = [a for s in steps.values() for r in s["resources"] for a in r["applied"]]
    assert any(a.startswith(f"install release stackbill in {NS}") for a in applied), applied
    # the release was installed without Helm's --wait: the wait step found pods not Ready and waited for them
    wait = steps["wait-pods"]
    assert wait["resources"][0]["applied"][0].startswith(f"wait up to 600s for every pod in {NS} to be Ready (now: ")
    assert wait["duration_seconds"] > 1.0, wait
    assert [(c["id"], c["status"]) for c in wait["checks"]] == [("pods.ready", "ok"), ("istio.virtualservice", "ok")]

    listed = json.loads(helm(living, "list", "-n", NS, "-o", "json").stdout)
    assert [(r["name"], r["status"], r["revision"], r["chart"]) for r in listed] == [
        ("stackbill", "deployed", "1", "stackbill-1.0.0")], listed
    values = json.loads(helm(living, "get", "values", "stackbill", "-n", NS, "-o", "json").stdout)
    mysql = living.servers["mysql"]
    assert values["global"]["mysql"]["ip"] == living.host_ip and values["global"]["mysql"]["port"] == mysql.port
    assert values["global"]["nfs"] == {"server": living.host_ip, "path": str(living.nfs.export_dir)}

    pods = release_pods(living)
    assert {p["metadata"]["labels"]["app"] for p in pods.values()} == set(APPS)
    assert not set(pods) & old_pods
    for pod in pods.values():
        assert stamp(pod["metadata"]["creationTimestamp"]) >= began, pod["metadata"]
        for cs in pod["status"]["containerStatuses"]:
            assert cs["containerID"].startswith("containerd://") and cs["ready"] and cs["imageID"], cs
        ready = ready_condition(pod)
        assert ready["status"] == "True" and stamp(ready["lastTransitionTime"]) >= began, ready
        env_vars = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert (env_vars["MYSQL_HOST"], env_vars["MYSQL_PORT"]) == (living.host_ip, str(mysql.port))
    assert pull_secret_token(living) == token
    # the installer's values render the Deployments the lab's own install made (what restore() compares)
    live = {d["metadata"]["name"]: d["spec"] for d in lab._raw(apps_api(living).list_namespaced_deployment, NS)["items"]}
    assert live == {name: spec for (ns, name), spec in living._deployments.items() if ns == NS}
    # sb-core is Ready only while it logs in to MySQL at those values: the portal's API answers
    assert env.check("app.cloudconfiguration")["status"] == "ok"


def test_a_token_the_registry_refuses_fails_the_wait_then_resume_completes(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    """The token given to the installer is well-formed and not expired, but not one the registry issued (a
    token of another account, say): the pull secret is written, Helm installs, and the kubelet gets 401 from
    the registry: ErrImagePull, then ImagePullBackOff. wait-pods fails after install.pod_timeout naming it;
    `sbops fix ecr-refresh` with the right token replaces the secret and the stuck pods, and `sbops install
    --resume` finishes at wait-pods."""
    uninstall(living)
    core_api(living).delete_namespaced_secret(lab.PULL_SECRET, NS)
    env = installer_env(living, living_env).set("install.pod_timeout", 30)
    wrong = lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
    token_file = tmp_path / "wrong-token"
    token_file.write_text(lab.ecr_password(wrong) + "\n")
    token_file.chmod(0o600)

    proc = env.install("--yes", "--ecr-token-file", str(token_file), *only("ecr-secret", "helm-release", "wait-pods"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "not every pod is Ready after 30s: " in proc.stdout, proc.stdout
    assert "image_pull (" in proc.stdout and ("ImagePullBackOff" in proc.stdout or "ErrImagePull" in proc.stdout), \
        proc.stdout
    assert "Install failed at step wait-pods" in proc.stdout and "sbops install --resume" in proc.stdout
    state = json.loads((env.root / "install" / "state.json").read_text())
    assert state["steps"]["wait-pods"]["status"] == "failed" and state["finished"] is False
    assert state["steps"]["helm-release"]["status"] == "changed"
    pods = release_pods(living)
    waiting = {cs["state"].get("waiting", {}).get("reason") for p in pods.values()
               for cs in p["status"].get("containerStatuses", [])}
    assert waiting & {"ImagePullBackOff", "ErrImagePull"}, waiting
    assert not any(ready_condition(p)["status"] == "True" for p in pods.values() if p["status"].get("conditions"))

    right = tmp_path / "token"
    right.write_text(lab.ecr_password(living.token) + "\n")
    right.chmod(0o600)
    code, fixed = fix_json(env.set("ecr.token_file", str(right)), "ecr-refresh")
    assert code == 0, fixed
    assert pull_secret_token(living) == living.token
    deleted = [c["description"] for c in fixed["plan"]["changes"] if "delete" in c["description"]]
    assert deleted and all(app in deleted[0] for app in APPS), fixed["plan"]["changes"]

    # The pods ecr-refresh deleted stay in the API, still ImagePullBackOff, until the kubelet has torn them down
    # (seen to take from a few seconds to over a minute here), and pods.ready counts them as not Ready: the
    # resumed wait gets the time a slow node needs (the setting is read again on --resume; options are not).
    env.set("install.pod_timeout", 180)
    resumed = env.install("--resume", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "at step wait-pods" in resumed.stdout
    assert f"= pods.ready: all {len(APPS)} pod(s) in {NS} are Ready" in resumed.stdout \
        or "wait up to 180s" in resumed.stdout, resumed.stdout
    state = json.loads((env.root / "install" / "state.json").read_text())
    assert state["finished"] is True
    pods = release_pods(living)
    assert {p["metadata"]["labels"]["app"] for p in pods.values()} == set(APPS)
    assert all(ready_condition(p)["status"] == "True" for p in pods.values())
