"""k8s.* checks and the k8s-namespace fix against the real kube-apiserver lab (tests/lab/kube.py).

Real here: kube-apiserver v1.20 + etcd, its token authentication and RBAC, every object and status the
checks read (nodes, namespaces, StorageClasses, PVCs, pods). Not real: kubelets and controllers (nothing
reconciles): a NotReady node or a Pending PVC is a status we set through the status subresource, as a
kubelet or the PV controller would. "API server port closed" is a kubeconfig pointing at a free port
(the shared apiserver keeps running for the other tests). No test writes a pod's status: a provisioner pod
that is not Ready is the kubelet's verdict on the living cluster (tests/lab/living.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab import kube as lab
from tests.lab.common import Blackhole, free_port
from tests.lab.env import LabEnv, fix_json, finding
from tests.lab.living import LivingCluster, eventually

NS = lab.NAMESPACE


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path) -> LabEnv:
    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))




def set_node_condition(core: Any, kind: str, value: str) -> None:
    core.patch_node_status(lab.NODE, {"status": {"conditions": [{"type": kind, "status": value, "reason": "Test"}]}})


def provisioner_pod(core: Any) -> str:
    pods = core.list_namespaced_pod(lab.NFS_NAMESPACE, label_selector="app=nfs-subdir-external-provisioner").items
    return pods[0].metadata.name


def finalize_namespace(core: Any, name: str) -> None:
    """A deleted namespace stays Terminating without a namespace controller: finalize it by hand."""
    try:
        current = core.read_namespace(name)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) == 404:
            return
        raise
    if current.metadata.deletion_timestamp is None:
        core.delete_namespace(name)
        current = core.read_namespace(name)
    current.spec.finalizers = []
    core.replace_namespace_finalize(name, current)


# -- healthy ---------------------------------------------------------------------------------------
def test_seeded_cluster_passes_every_kubernetes_check(env: LabEnv) -> None:
    found = env.doctor("k8s.*")
    assert {cid: finding(r) for cid, r in found.items()} == {
        "k8s.api": ("SB6010", "ok", "none"), "k8s.nodes": ("SB6020", "ok", "none"),
        "k8s.namespace": ("SB6030", "ok", "none"), "k8s.storage": ("SB6040", "ok", "none"),
        "k8s.kubeconfig-mode": ("SB6054", "skip", "not_applicable")}  # no K3s here: tests/integration/test_k3s_kubeconfig.py
    assert found["k8s.api"]["details"]["version"] == lab.KUBE_VERSION


def test_namespace_fix_has_nothing_to_do_when_healthy(env: LabEnv) -> None:
    proc = env.fix("k8s-namespace")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stdout + proc.stderr


# -- k8s.api ---------------------------------------------------------------------------------------
def test_wrong_token_is_auth_failed(env: LabEnv, kube: lab.KubeLab, tmp_path: Path) -> None:
    bad = kube.write_kubeconfig(tmp_path / "bad-kubeconfig", "not-the-token")
    env.set("kubeconfig", str(bad))
    result = env.check("k8s.api")
    assert finding(result) == ("SB6011", "fail", "auth_failed")
    assert "not-the-token" not in str(result)


def kubeconfig_for_port(kube: lab.KubeLab, path: Path, port: int) -> Path:
    """The admin kubeconfig, but pointing at another local port."""
    doc = yaml.safe_load(kube.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_closed_port_is_refused(env: LabEnv, kube: lab.KubeLab, tmp_path: Path) -> None:
    env.set("kubeconfig", str(kubeconfig_for_port(kube, tmp_path / "closed-kubeconfig", free_port())))
    assert finding(env.check("k8s.api")) == ("SB6013", "fail", "refused")
    # the checks that need the API are skipped, not failed again
    found = env.doctor("k8s.*")
    assert found["k8s.nodes"]["status"] == "skip"


def test_blackholed_server_is_timeout_within_the_check_timeout(env: LabEnv, kube: lab.KubeLab, tmp_path: Path) -> None:
    import time

    hole = Blackhole()
    try:
        env.set("kubeconfig", str(kubeconfig_for_port(kube, tmp_path / "hole-kubeconfig", hole.port)))
        env.set("timeout", 1)
        started = time.monotonic()
        result = env.check("k8s.api")
        assert finding(result) == ("SB6013", "fail", "timeout")
        assert time.monotonic() - started < 10
    finally:
        hole.close()


# -- k8s.nodes -------------------------------------------------------------------------------------
def test_node_not_ready(env: LabEnv, core: Any) -> None:
    set_node_condition(core, "Ready", "False")
    result = env.check("k8s.nodes")
    assert finding(result) == ("SB6022", "fail", "not_ready")
    assert result["details"]["nodes"][0]["name"] == lab.NODE


def test_memory_pressure_is_degraded(env: LabEnv, core: Any) -> None:
    set_node_condition(core, "MemoryPressure", "True")
    result = env.check("k8s.nodes")
    assert finding(result) == ("SB6023", "warn", "degraded")
    assert result["details"]["nodes"][0]["pressure"] == ["MemoryPressure"]


# -- k8s.namespace ---------------------------------------------------------------------------------
def test_label_removed_is_misconfigured_and_fix_relabels(env: LabEnv, core: Any) -> None:
    core.patch_namespace(NS, {"metadata": {"labels": {"istio-injection": None}}})
    assert finding(env.check("k8s.namespace")) == ("SB6033", "fail", "misconfigured")
    proc = env.fix("k8s-namespace", "--dry-run")
    assert proc.returncode == 0 and "via the Kubernetes API: label namespace sb-apps istio-injection=enabled" in proc.stdout
    assert "istio-injection" not in (core.read_namespace(NS).metadata.labels or {})
    code, doc = fix_json(env, "k8s-namespace")
    assert code == 0, doc
    assert core.read_namespace(NS).metadata.labels["istio-injection"] == "enabled"
    assert finding(env.check("k8s.namespace")) == ("SB6030", "ok", "none")


def test_missing_namespace_and_fix_creates_it(env: LabEnv, core: Any) -> None:
    name = "sb-apps-elsewhere"
    finalize_namespace(core, name)
    env.set("namespace", name)
    try:
        assert finding(env.check("k8s.namespace")) == ("SB6031", "fail", "missing")
        assert env.fix("k8s-namespace", "--dry-run").returncode == 0
        assert finding(env.check("k8s.namespace")) == ("SB6031", "fail", "missing")
        code, doc = fix_json(env, "k8s-namespace")
        assert code == 0, doc
        assert core.read_namespace(name).metadata.labels["istio-injection"] == "enabled"
        assert finding(env.check("k8s.namespace")) == ("SB6030", "ok", "none")
    finally:
        finalize_namespace(core, name)


# -- k8s.storage -----------------------------------------------------------------------------------
def test_storage_class_deleted_is_missing(env: LabEnv, kube: lab.KubeLab) -> None:
    from kubernetes import client

    client.StorageV1Api(kube.api()).delete_storage_class(lab.STORAGE_CLASS)
    assert finding(env.check("k8s.storage")) == ("SB6041", "fail", "missing")


def test_pvc_pending(env: LabEnv, core: Any) -> None:
    core.patch_namespaced_persistent_volume_claim_status("sb-data", NS, {"status": {"phase": "Pending"}})
    result = env.check("k8s.storage")
    assert finding(result) == ("SB6044", "fail", "pending")
    assert result["details"]["claims"] == [{"name": "sb-data", "phase": "Pending", "storage_class": "nfs-client"}]


def test_provisioner_not_ready_while_nfs_is_down(living: LivingCluster, living_env: LabEnv) -> None:
    """nfsd stopped on the host: the provisioner's readiness probe (a TCP connect to the NFS port from its
    pod) fails and the kubelet marks it not Ready; NFS back, it is Ready again."""
    assert finding(living_env.check("k8s.storage"))[1] == "ok"
    living.nfs.stop()
    try:
        eventually("k8s.storage reports not_ready", lambda: finding(living_env.check("k8s.storage")),
                   lambda found: found == ("SB6043", "fail", "not_ready"))
    finally:
        living.nfs.start_server()
    eventually("k8s.storage passes again", lambda: finding(living_env.check("k8s.storage"))[1],
               lambda found: found == "ok")


def test_provisioner_gone_is_not_running(env: LabEnv, core: Any) -> None:
    core.delete_namespaced_pod(provisioner_pod(core), lab.NFS_NAMESPACE, grace_period_seconds=0)
    assert finding(env.check("k8s.storage")) == ("SB6042", "fail", "not_running")
