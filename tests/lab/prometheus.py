"""A real Prometheus server (Debian's package, unpacked by scripts/get-prometheus) on the host, discovering the
living cluster's pods through the lab API server and keeping the pods that carry the standard
`prometheus.io/scrape|port|path|scheme` annotations, with the relabelling of the usual `kubernetes-pods` job of
Prometheus's own example configuration (documentation/examples/prometheus-kubernetes.yml).

Debian's Prometheus has no `kubernetes_sd_configs`: its NEWS.Debian says "Kubernetes support has been completely
removed, due to the insane amount of dependencies in their client library" (2.42.0+ds, bookworm; the binary
holds no discovery/kubernetes package). So the discovery is `http_sd_configs` fed by `PodDiscovery`, a small
server here that lists the pods from the API server (as Prometheus's own role: pod does, with the same
ServiceAccount) and hands them to Prometheus as target groups carrying the very `__meta_kubernetes_pod_*`
labels role: pod gives (`pod_targets`, pure). Everything after that is Prometheus's own: the relabelling, the
scrapes of the pods' addresses, the storage and the HTTP API the tests query.

The discovery authenticates as a ServiceAccount of its own (`sbops-lab/prometheus`) with a bound token from the
TokenRequest API and a ClusterRole that may only get, list and watch pods: what role: pod needs. The token
stays in this process's memory, never on a command line or in a file.

    prom = PrometheusLab(root, cluster).start()
    prom.targets()                    # /api/v1/targets' activeTargets
    prom.query('sbops_check_status')  # /api/v1/query's result vector
    prom.stop()                       # the server, its ServiceAccount, role and binding gone

The host must reach the pods' addresses: the agents answer at their node's address (host network); the
cluster Deployment's pod at its pod IP, through the route tests/lab/agentchart.py adds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable

import yaml

from tests.lab.common import free_port, stop_process, tail

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


def _name(text: str) -> str:
    """A Kubernetes label or annotation key as a Prometheus label name (role: pod's sanitising)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def pod_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The target groups Prometheus's kubernetes_sd_configs role: pod makes of these pods (the API's JSON): one
    target per declared container port at podIP:port (one at podIP for a pod without ports), labelled with the
    pod's __meta_kubernetes_* labels. Pods without an IP yet are left out, as role: pod leaves them."""
    groups = []
    for pod in pods:
        meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
        ip = status.get("podIP") or ""
        if not ip:
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        labels = {"__meta_kubernetes_namespace": meta.get("namespace", ""),
                  "__meta_kubernetes_pod_name": meta.get("name", ""),
                  "__meta_kubernetes_pod_ip": ip,
                  "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
                  "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
                  "__meta_kubernetes_pod_phase": status.get("phase", ""),
                  "__meta_kubernetes_pod_ready": "true" if ready else "false",
                  "__meta_kubernetes_pod_uid": meta.get("uid", "")}
        for key, value in (meta.get("labels") or {}).items():
            labels[f"__meta_kubernetes_pod_label_{_name(key)}"] = value
            labels[f"__meta_kubernetes_pod_labelpresent_{_name(key)}"] = "true"
        for key, value in (meta.get("annotations") or {}).items():
            labels[f"__meta_kubernetes_pod_annotation_{_name(key)}"] = value
            labels[f"__meta_kubernetes_pod_annotationpresent_{_name(key)}"] = "true"
        ports = [(c, p) for c in spec.get("containers") or [] for p in c.get("ports") or []]
        if not ports:
            groups.append({"targets": [ip], "labels": labels})
        for container, port in ports:
            groups.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": {
                **labels, "__meta_kubernetes_pod_container_name": container.get("name", ""),
                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP")}})
    return groups


class PodDiscovery:
    """An HTTP service discovery endpoint (GET /targets) answering with pod_targets of the pods `list_pods`
    returns at that moment. Runs in a thread of this process, on 127.0.0.1."""

    def __init__(self, list_pods: Callable[[], list[dict[str, Any]]]) -> None:
        self.list_pods = list_pods
        self.errors: list[str] = []
        discovery = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    body = json.dumps(pod_targets(discovery.list_pods())).encode()
                    code = 200
                except Exception as exc:  # noqa: BLE001 - Prometheus keeps its last targets and logs the error
                    discovery.errors.append(f"{type(exc).__name__}: {exc}")
                    body, code = str(exc).encode(), 500
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="pod-discovery", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/targets"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def scrape_config(discovery_url: str) -> dict[str, Any]:
    """Prometheus's configuration: one `kubernetes-pods` job, the annotation relabelling of Prometheus's
    documentation/examples/prometheus-kubernetes.yml."""
    meta = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "4s", "evaluation_interval": "5s"},
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            # kubernetes_sd_configs: [{role: pod}] on an upstream build (Debian's has none: the module's docstring)
            "http_sd_configs": [{"url": discovery_url, "refresh_interval": "5s"}],
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
        self.discovery: PodDiscovery | None = None

    def _client(self, token: str) -> Any:
        """A kubernetes ApiClient as Prometheus's ServiceAccount (the bearer token, the lab's CA)."""
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.cluster.kube.server
        conf.ssl_ca_cert = str(self.cluster.kube.ca_file)
        conf.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(conf)

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
        api = self._client(self._account())
        from kubernetes import client

        core = client.CoreV1Api(api)
        self.discovery = PodDiscovery(
            lambda: json.loads(core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=10).data)[
                "items"])
        config = self.root / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.discovery.url)))
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
            stop_process(self.proc)
            self.proc = None
        finally:
            if self.discovery is not None:
                self.discovery.stop()
                self.discovery = None
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
