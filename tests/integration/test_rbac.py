"""`sbops doctor` works with exactly the read-only RBAC that deploy/rbac/sbops-doctor.yaml documents.

A static token bound to that ClusterRole's rules (and nothing else) runs every Kubernetes-side check; each
must conclude what the cluster-admin token concludes, and none may report access_denied. A token with
one rule less must be refused by the API server, proving the binding is what grants access.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.lab.env import REPO, LabEnv, lab_lacks

K8S_LAYERS = ("kubernetes", "ecr", "tls", "istio", "workloads", "helm")


def doctor_rules() -> list[dict]:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "rbac" / "sbops-doctor.yaml").read_text()))
    [role] = [d for d in docs if d and d["kind"] == "ClusterRole"]
    return role["rules"]


def run(kubeconfig: Path, tmp: Path) -> dict[str, tuple[str, str]]:
    env = LabEnv(tmp).set("kubeconfig", str(kubeconfig))
    args = ["doctor", "--output", "json"]
    for layer in K8S_LAYERS:
        args += ["--layer", layer]
    proc = env.sbops(*args)
    assert proc.returncode in (0, 3, 4), proc.stderr
    import json

    return {c["id"]: (c["status"], c["reason"]) for c in json.loads(proc.stdout)["checks"]}


def test_doctor_with_the_documented_read_only_role(kube, tmp_path):
    admin = run(kube.kubeconfig, tmp_path / "admin")
    readonly = run(kube.token_kubeconfig("readonly", doctor_rules()), tmp_path / "readonly")
    assert readonly == admin
    assert not [cid for cid, (_, reason) in readonly.items() if reason in ("access_denied", "auth_failed")]
    assert {status for cid, (status, reason) in admin.items() if not lab_lacks(cid, status, reason)} <= {"ok", "warn"}, admin


def test_a_token_without_the_role_is_refused(kube, tmp_path):
    rules = [r for r in doctor_rules() if "secrets" not in r.get("resources", [])]
    rules.append({"apiGroups": [""], "resources": [r for r in doctor_rules()[0]["resources"] if r != "secrets"],
                  "verbs": ["get", "list"]})
    narrow = run(kube.token_kubeconfig("user1", rules), tmp_path / "narrow")
    assert narrow["ecr.secret"][1] in ("access_denied",), narrow["ecr.secret"]
