"""The Helm chart at deploy/kubernetes/: `helm lint` is clean, `helm template` renders what the README promises
(the agent's capabilities and read-only host mounts, real `sbops exporter` flags, settings that sbops itself
accepts, secrets only in Secrets, the RBAC of deploy/rbac/sbops-doctor.yaml unchanged), and every rendered
object passes a server-side dry run (dryRun=All) on the real lab kube-apiserver (tests/lab/kube.py).

The ServiceMonitor is rendered but not dry-run: the lab API server has no Prometheus Operator CRDs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sbops import kube as sbkube
from sbops.settings import Settings
from tests.lab.env import REPO
from tests.lab.kube import NAMESPACE

CHART = REPO / "deploy" / "kubernetes"
SECRET_VALUE = "s3cret-Chart-Value"
CREDENTIALS_TEXT = "MYSQL DB:\nHost: 10.0.0.10\nPassword: " + SECRET_VALUE + "\n"

FULL = {  # every optional part on (but the ServiceMonitor, which needs the operator's CRD)
    "credentials": {"content": CREDENTIALS_TEXT},
    "secretSettings": {"mysql.admin_password": SECRET_VALUE, "cloudstack.api_key": SECRET_VALUE + "-key"},
    "webConfig": {"existingSecret": "sbops-web"},
    "settings": {"namespace": "sb-apps", "timeout": 4, "mysql": {"admin_user": "root"}},
    "imagePullSecrets": [{"name": "awscred"}],
    "agent": {"priorityClassName": "system-node-critical"},
}


def render(helm_bin: str, helm_env: dict[str, str], tmp_path: Path, values: dict | None = None,
           namespace: str = "sbops") -> list[dict[str, Any]]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values or {}))
    proc = subprocess.run([helm_bin, "template", "lab", str(CHART), "-n", namespace, "-f", str(path)],
                          capture_output=True, text=True, env=helm_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    [found] = by_kind(objects, kind)
    return found


def test_helm_lint_is_clean(helm_bin, helm_env):
    proc = subprocess.run([helm_bin, "lint", "--strict", str(CHART)], capture_output=True, text=True, env=helm_env,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_the_agent_has_the_documented_capabilities_and_read_only_host_mounts(helm_bin, helm_env, tmp_path):
    objects = render(helm_bin, helm_env, tmp_path)
    agent = one(objects, "DaemonSet")["spec"]["template"]
    spec = agent["spec"]
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["tolerations"] == [{"operator": "Exists"}], "every node, tainted ones included"
    [container] = spec["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["SYS_PTRACE", "SYS_ADMIN"]}
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    host_volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert set(host_volumes.values()) == {"/etc", "/run/k3s/containerd", "/var/lib/kubelet", "/sbin"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all(mounts[name].get("readOnly") is True for name in host_volumes), "every host path read-only"
    assert "--layers=host,nfs,netpath" in container["args"]
    assert "--listen=$(HOST_IP):29110" in container["args"]
    annotations = agent["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "29110"
    assert annotations["prometheus.io/path"] == "/metrics"

    cluster = one(objects, "Deployment")["spec"]["template"]
    [container] = cluster["spec"]["containers"]
    assert cluster["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert not any("hostPath" in v for v in cluster["spec"]["volumes"])
    assert cluster["spec"].get("hostNetwork") is None and cluster["metadata"]["annotations"]["prometheus.io/port"] == "29100"
    layers = next(a for a in container["args"] if a.startswith("--layers="))
    assert set(layers.split("=", 1)[1].split(",")) == {"kubernetes", "ecr", "tls", "istio", "workloads", "helm", "app",
                                                      "mysql", "mongodb", "rabbitmq"}


def test_without_netpath_the_agent_drops_sys_admin_and_the_layer(helm_bin, helm_env, tmp_path):
    objects = render(helm_bin, helm_env, tmp_path, {"agent": {"netpath": False}, "prometheusAnnotations": False})
    [container] = one(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]
    assert "--layers=host,nfs" in container["args"]
    for kind in ("DaemonSet", "Deployment"):
        annotations = one(objects, kind)["spec"]["template"]["metadata"]["annotations"]
        assert not any(key.startswith("prometheus.io/") for key in annotations)


def test_every_flag_the_chart_passes_is_a_real_exporter_flag(helm_bin, helm_env, tmp_path):
    objects = render(helm_bin, helm_env, tmp_path, FULL)
    help_text = subprocess.run([sys.executable, "-m", "sbops", "exporter", "--help"], capture_output=True, text=True,
                               cwd=REPO, timeout=60).stdout
    for kind in ("DaemonSet", "Deployment"):
        [container] = one(objects, kind)["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "exporter"
        for arg in container["args"][1:]:
            flag = arg.split("=", 1)[0]
            assert flag in help_text, f"{kind}: {flag} is not an option of `sbops exporter`"
        assert {"--credentials=/etc/sbops/credentials/stackbill-credentials.txt",
                "--web-config=/etc/sbops/web/web.yml"} <= set(container["args"])


def test_settings_go_to_configmaps_that_sbops_loads_and_secrets_only_to_secrets(helm_bin, helm_env, tmp_path):
    objects = render(helm_bin, helm_env, tmp_path, FULL)
    configmaps = {c["metadata"]["name"]: c for c in by_kind(objects, "ConfigMap")}
    assert set(configmaps) == {"lab-sbops-agent", "lab-sbops-cluster"}
    for name, configmap in configmaps.items():
        assert SECRET_VALUE not in yaml.safe_dump(configmap), f"{name} holds a secret"
        path = tmp_path / f"{name}.yaml"
        path.write_text(configmap["data"]["config.yaml"])
        settings = Settings.load(str(path), env={})  # sbops's own validation: unknown keys, types, rules
        assert settings["timeout"] == 4 and settings["mysql.admin_user"] == "root"
    agent = Settings.load(str(tmp_path / "lab-sbops-agent.yaml"), env={})
    assert agent["host.disk_path"] == "/host/etc" and agent["nfs.exports_file"] == "/host/etc/exports"
    assert agent["nfs.mount_helper"] == "/host/sbin/mount.nfs"
    secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    assert secrets["lab-sbops-settings"]["stringData"] == {"SBOPS_MYSQL_ADMIN_PASSWORD": SECRET_VALUE,
                                                          "SBOPS_CLOUDSTACK_API_KEY": SECRET_VALUE + "-key"}
    import base64

    assert base64.b64decode(secrets["lab-sbops-credentials"]["data"]["stackbill-credentials.txt"]).decode() == CREDENTIALS_TEXT
    for kind in ("DaemonSet", "Deployment"):
        pod = one(objects, kind)["spec"]["template"]
        assert SECRET_VALUE not in yaml.safe_dump(pod), f"{kind}: a secret in the pod spec"
        [container] = pod["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "lab-sbops-settings"}}]
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["credentials"]["secret"]["defaultMode"] == 0o400
        assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == "https"


def test_a_setting_that_is_not_a_secret_is_refused_in_secret_settings(helm_bin, helm_env, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"secretSettings": {"namespace": "x"}}))
    proc = subprocess.run([helm_bin, "template", "lab", str(CHART), "-f", str(path)], capture_output=True, text=True,
                          env=helm_env, timeout=120)
    assert proc.returncode != 0 and "secretSettings: namespace is not a secret setting" in proc.stderr


def test_the_chart_binds_exactly_the_rules_of_deploy_rbac(helm_bin, helm_env, tmp_path):
    """One source of truth: files/sbops-doctor.yaml links to deploy/rbac/sbops-doctor.yaml and the chart reads the
    ClusterRole's rules from it; this proves the rendered rules are that file's, to the letter."""
    link = CHART / "files" / "sbops-doctor.yaml"
    assert link.is_symlink() and link.resolve() == (REPO / "deploy" / "rbac" / "sbops-doctor.yaml").resolve()
    from tests.integration.test_rbac import doctor_rules

    objects = render(helm_bin, helm_env, tmp_path, namespace="monitoring")
    assert one(objects, "ClusterRole")["rules"] == doctor_rules()
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "lab-sbops", "namespace": "monitoring"}]
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    for kind in ("DaemonSet", "Deployment"):
        assert one(objects, kind)["spec"]["template"]["spec"]["serviceAccountName"] == "lab-sbops"


def test_the_service_monitor_is_optional(helm_bin, helm_env, tmp_path):
    assert not by_kind(render(helm_bin, helm_env, tmp_path), "ServiceMonitor")
    monitors = by_kind(render(helm_bin, helm_env, tmp_path, {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}),
                       "ServiceMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == ["lab-sbops-agent", "lab-sbops-cluster"]
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "kps"
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def _resource(obj: dict, namespace: str) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    namespaced = obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace")
    return sbkube.path(group=group, version=version, namespace=namespace if namespaced else "",
                       plural=obj["kind"].lower() + "s")


@pytest.mark.parametrize("values", [{}, FULL], ids=["defaults", "everything"])
def test_the_rendered_objects_pass_a_server_side_dry_run(helm_bin, helm_env, tmp_path, kube, values):
    namespace = NAMESPACE  # seeded by the lab: a namespace made here could never go (no namespace controller)
    objects = render(helm_bin, helm_env, tmp_path, values, namespace=namespace)
    assert {o["kind"] for o in objects} >= {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
                                            "DaemonSet", "Deployment", "Service"}
    api = sbkube.KubeApi(sbkube.new_client(kube.kubeconfig), (20.0, 20.0))
    for obj in objects:
        answer = api.request("POST", _resource(obj, namespace), query={"dryRun": "All"}, body=obj)
        assert answer["kind"] == obj["kind"] and answer["metadata"]["name"] == obj["metadata"]["name"]
    # dryRun=All stored nothing
    assert api.list(sbkube.path(group="apps", namespace=namespace, plural="daemonsets")) == []
    assert api.get_or_none(sbkube.path(group="rbac.authorization.k8s.io", plural="clusterroles",
                                       name="lab-sbops-doctor")) is None
