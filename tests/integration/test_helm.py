"""helm.release and the helm-rollback fix against the real kube-apiserver lab and a real Helm 3 binary.

Real here: the API server and etcd; Helm v3.17.1 (scripts/get-helm; fails loudly when it cannot be had)
installing the small local chart tests/lab/charts/sbops-demo with `helm upgrade --install` (no --wait:
nothing runs pods) and rolling it back; Helm's own release records (Secrets sh.helm.release.v1.*).
Not real: an interrupted upgrade. Helm marks a revision pending-upgrade before applying it and the
process dies there; the test writes that record itself (revision N+1, Helm's encoding, status
pending-upgrade in the label and in the encoded info), exactly as a killed `helm upgrade` leaves it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, fix_json, finding
from tests.lab.helm import DEMO_CHART

NS = lab.NAMESPACE
CHART = DEMO_CHART
DEMO = "sbops-demo"


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path, helm_bin: str) -> LabEnv:
    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig)).set("helm.command", helm_bin)


def helm(helm_bin: str, helm_env: dict[str, str], kube: lab.KubeLab, *args: str) -> str:
    proc = subprocess.run([helm_bin, *args, "-n", NS, "--kubeconfig", str(kube.kubeconfig)],
                          capture_output=True, text=True, timeout=60, env=helm_env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def record(core: Any, release: str, revision: int) -> dict:
    secret = core.read_namespaced_secret(f"sh.helm.release.v1.{release}.v{revision}", NS)
    return lab.helm_decode(base64.b64decode(secret.data["release"]).decode())


def write_interrupted(core: Any, release: str, base: int, status_: str, message: str = "second") -> int:
    """The record Helm writes when it starts an upgrade of `release` (then dies): revision base+1."""
    data = record(core, release, base)
    revision = base + 1
    data["version"] = revision
    data["info"]["status"] = status_
    data["info"]["description"] = "Preparing upgrade" if status_.startswith("pending") else "Upgrade \"x\" failed"
    data["config"] = {"message": message}
    core.create_namespaced_secret(NS, {
        "metadata": {"name": f"sh.helm.release.v1.{release}.v{revision}",
                     "labels": {"owner": "helm", "name": release, "status": status_, "version": str(revision)}},
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(lab.helm_encode(data).encode()).decode()}})
    return revision


# -- helm.release ----------------------------------------------------------------------------------
def test_seeded_release_is_deployed(env: LabEnv) -> None:
    result = env.check("helm.release")
    assert finding(result) == ("SB6510", "ok", "none")
    assert (result["details"]["revision"], result["details"]["chart_version"]) == (1, lab.CHART_VERSION)


def test_pending_upgrade_is_stuck(env: LabEnv, core: Any) -> None:
    write_interrupted(core, "stackbill", 1, "pending-upgrade")
    result = env.check("helm.release")
    assert finding(result) == ("SB6512", "fail", "stuck")
    assert (result["details"]["revision"], result["details"]["chart_version"]) == (2, lab.CHART_VERSION)
    assert result["details"]["last_deployed"] == 1


def test_failed_upgrade_is_failed(env: LabEnv, core: Any) -> None:
    write_interrupted(core, "stackbill", 1, "failed")
    assert finding(env.check("helm.release")) == ("SB6513", "fail", "failed")


def test_no_release_is_missing(env: LabEnv) -> None:
    env.set("release", "not-installed")
    assert finding(env.check("helm.release")) == ("SB6511", "fail", "missing")


def test_rollback_nothing_to_do_when_deployed(env: LabEnv) -> None:
    proc = env.fix("helm-rollback")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout + proc.stderr


# -- helm-rollback ---------------------------------------------------------------------------------
def test_rollback_of_a_stuck_upgrade_with_real_helm(env: LabEnv, core: Any, kube: lab.KubeLab, helm_bin: str,
                                                    helm_env: dict[str, str]) -> None:
    helm(helm_bin, helm_env, kube, "upgrade", "--install", DEMO, str(CHART))
    env.set("release", DEMO)
    assert finding(env.check("helm.release")) == ("SB6510", "ok", "none")
    write_interrupted(core, DEMO, 1, "pending-upgrade")
    result = env.check("helm.release")
    assert finding(result) == ("SB6512", "fail", "stuck")
    assert (result["details"]["chart"], result["details"]["chart_version"]) == ("sbops-demo", "0.1.0")

    proc = env.fix("helm-rollback", "--dry-run")
    assert proc.returncode == 0 and f"rollback {DEMO} 1 -n sb-apps --wait=false" in proc.stdout, proc.stdout
    assert finding(env.check("helm.release")) == ("SB6512", "fail", "stuck")

    code, doc = fix_json(env, "helm-rollback")
    assert code == 0, doc
    assert finding(env.check("helm.release")) == ("SB6510", "ok", "none")
    history = json.loads(helm(helm_bin, helm_env, kube, "history", DEMO, "-o", "json"))
    assert history[-1]["revision"] == 3 and history[-1]["status"] == "deployed"
    assert core.read_namespaced_config_map(f"{DEMO}-settings", NS).data["message"] == "first"


def test_rollback_of_a_failed_upgrade(env: LabEnv, core: Any) -> None:
    write_interrupted(core, "stackbill", 1, "failed")
    code, doc = fix_json(env, "helm-rollback")
    assert code == 0, doc
    assert finding(env.check("helm.release")) == ("SB6510", "ok", "none")


def test_rollback_blocked_without_a_deployed_revision(env: LabEnv, core: Any) -> None:
    core.delete_namespaced_secret(lab.HELM_SECRET, NS)
    core.create_namespaced_secret(NS, lab.helm_release_secret("stackbill", NS, 1, "pending-install"))
    assert finding(env.check("helm.release")) == ("SB6512", "fail", "stuck")
    code, doc = fix_json(env, "helm-rollback")
    assert code == 3 and doc["outcome"] == "blocked" and "no earlier deployed revision" in doc["plan"]["blockers"][0]


def test_rollback_blocked_without_helm(env: LabEnv, core: Any) -> None:
    write_interrupted(core, "stackbill", 1, "pending-upgrade")
    env.set("helm.command", "/nonexistent/helm")
    code, doc = fix_json(env, "helm-rollback")
    assert code == 3 and doc["outcome"] == "blocked" and "helm binary" in doc["plan"]["blockers"][0]
    assert finding(env.check("helm.release")) == ("SB6512", "fail", "stuck")
