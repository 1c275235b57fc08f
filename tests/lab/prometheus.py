"""A real Prometheus server (Debian's package, unpacked by scripts/get-prometheus) on the host, discovering the
living cluster's pods with `kubernetes_sd_configs` (role: pod) against the lab API server and keeping the pods
that carry the standard `prometheus.io/scrape|port|path|scheme` annotations, as the usual `kubernetes-pods`
job of Prometheus's own example configuration does.

Prometheus authenticates as a ServiceAccount of its own (`sbops-lab/prometheus`) with a bound token from the
TokenRequest API and a ClusterRole that may only get, list and watch pods: what service discovery needs.
The token is written 0600 in the server's directory, never on a command line.

    prom = PrometheusLab(root, cluster).start()
    prom.targets()                    # /api/v1/targets' activeTargets
    prom.query('sbops_check_status')  # /api/v1/query's result vector
    prom.stop()                       # the server, its ServiceAccount, role and binding gone

The host must reach the pods' addresses: the agents answer at their node's address (host network); the
cluster Deployment's pod at its pod IP, through the route tests/lab/agentchart.py adds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.lab.common import free_port, tail

if TYPE_CHECKING:
    from tests.lab.living import LivingCluster

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "sbops-lab"
ACCOUNT = "prometheus"
ROLE = "sbops-lab-prometheus"
SCRAPE_INTERVAL = "5s"


def prometheus_binary() -> str:
    proc = subprocess.run([str(REPO / "scripts" / "get-prometheus")], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/get-prometheus failed (the Prometheus tests must not skip): {proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


def scrape_config(api_server: str, ca_file: Path, token_file: Path) -> dict[str, Any]:
    """Prometheus's configuration: one `kubernetes-pods` job, the annotation relabelling of Prometheus's
    documentation/examples/prometheus-kubernetes.yml."""
    meta = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "4s", "evaluation_interval": "5s"},
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            "kubernetes_sd_configs": [{
                "role": "pod", "api_server": api_server,
                "tls_config": {"ca_file": str(ca_file)},
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            }],
            "relabel_configs": [
                {"source_labels": [f"{meta}scrape"], "action": "keep", "regex": "true"},
                {"source_labels": [f"{meta}scheme"], "action": "replace", "regex": "(https?)",
                 "target_label": "__scheme__"},
                {"source_labels": [f"{meta}path"], "action": "replace", "regex": "(.+)",
                 "target_label": "__metrics_path__"},
                {"source_labels": ["__address__", f"{meta}port"], "action": "replace",
                 "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
                {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ],
        }],
    }


class PrometheusLab:
    def __init__(self, root: Path, cluster: "LivingCluster") -> None:
        self.root = Path(root)
        self.cluster = cluster
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the ServiceAccount ----------------------------------------------------------------------------
    def _account(self) -> str:
        """Prometheus's ServiceAccount, its pods-only ClusterRole and binding; returns a bound token."""
        from kubernetes import client

        from tests.lab import kube as kubelab

        api = self.cluster.kube.api()
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        if not kubelab._exists(core.read_namespace, NAMESPACE):
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        if not kubelab._exists(core.read_namespaced_service_account, ACCOUNT, NAMESPACE):
            core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": ACCOUNT}})
        kubelab._ignore(404, rbac.delete_cluster_role, ROLE)
        kubelab._ignore(404, rbac.delete_cluster_role_binding, ROLE)
        rbac.create_cluster_role({"metadata": {"name": ROLE}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]})
        rbac.create_cluster_role_binding({
            "metadata": {"name": ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]})
        request = core.create_namespaced_service_account_token(
            ACCOUNT, NAMESPACE, {"spec": {"audiences": [], "expirationSeconds": 3600}})
        return request.status.token

    def _drop_account(self) -> None:
        from kubernetes import client

        from tests.lab import kube as kubelab

        api = self.cluster.kube.api()
        rbac = client.RbacAuthorizationV1Api(api)
        kubelab._ignore(404, rbac.delete_cluster_role_binding, ROLE)
        kubelab._ignore(404, rbac.delete_cluster_role, ROLE)
        kubelab._ignore(404, client.CoreV1Api(api).delete_namespace, NAMESPACE)

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "PrometheusLab":
        binary = prometheus_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        token_file = self.root / "token"
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(self._account())
        config = self.root / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.cluster.kube.server, self.cluster.kube.ca_file,
                                                       token_file)))
        self.port = free_port()
        log = open(self.root / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {tail(self.root / 'prometheus.log', 20)}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"prometheus not ready after {timeout:g}s: {tail(self.root / 'prometheus.log', 20)}")

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        finally:
            try:
                self._drop_account()
            finally:
                shutil.rmtree(self.root / "data", ignore_errors=True)

    # -- the HTTP API -----------------------------------------------------------------------------------
    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            doc = json.load(response)
        if doc.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {doc}")
        return doc["data"]

    def targets(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/targets", state="active")["activeTargets"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def log(self, lines: int = 20) -> str:
        return tail(self.root / "prometheus.log", lines)
