"""sbops's own chart (deploy/kubernetes/) installed in the living cluster (tests/lab/living.py): the image
scripts/build-image writes, imported into each node's containerd, and `helm upgrade --install` with the lab's
values, so the agent DaemonSet and the cluster Deployment run as real pods under a real kubelet.

    release = install_agents(cluster, nodes=[cluster.node])   # waits until every pod is Ready
    release.agent_pod(NODE_NAME), release.cluster_pod()        # the pods, as the API serves them
    uninstall(release)                                         # the release, its namespace and the routes

A node passed in `nodes` gets the image (`ctr images import`) and, on the host, a route to its pod CIDR via its
address (the API server's pod proxy and Prometheus reach the cluster Deployment's pod at its pod IP; the agents
use the node's own address: host network). A route that already exists through another gateway (another lab's
run on this machine) is waited out, never replaced. A node may carry `pod_cidr` (a second node's /24); the default is
tests/lab/node.py's NODE_POD_CIDR.

The pods authenticate with their ServiceAccount only (the chart mounts a projected, bound token): no kubeconfig
anywhere in them. The agent's host paths (the kubelet's root dir, containerd's state and socket) are the lab
node's, which live elsewhere than on a K3s server: `lab_values` points the chart's hostMounts and settings at
them. With several nodes on one machine every node's paths are mounted (they are all on this one file system);
sbops takes the first that exists, so the values list the node's own first for the first node only: a second
node's agent needs per-node paths (see the note in lab_values).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from tests.lab import kube as kubelab
from tests.lab.node import NODE_POD_CIDR, NodeError

if TYPE_CHECKING:
    from tests.lab.living import LivingCluster
    from tests.lab.node import LivingNode

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "kubernetes"
BUILD = REPO / "scripts" / "build-image"
NAMESPACE = "sbops"          # sbops's default cluster.namespace
RELEASE = "sbops"            # fullname "sbops": objects sbops-agent, sbops-cluster
AGENT_PORT = 29110
CLUSTER_PORT = 29100
AGENT = "app.kubernetes.io/name=sbops,app.kubernetes.io/component=agent"
CLUSTER = "app.kubernetes.io/name=sbops,app.kubernetes.io/component=cluster"


def version() -> str:
    for line in (REPO / "sbops" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise NodeError("no __version__ in sbops/__init__.py")


def build_image(timeout: float = 1800) -> Path:
    """scripts/build-image's docker-archive (built when not cached: minutes cold). Fails loudly, never skips."""
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise NodeError(f"scripts/build-image failed: {proc.stderr.strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def image_ref(tag: str | None = None) -> str:
    """The name the kubelet asks containerd for: the chart's `sbops:<appVersion>`, normalised by containerd."""
    return f"docker.io/library/sbops:{tag or version()}"


def import_image(node: "LivingNode", archive: Path) -> str:
    """The image into the node's containerd (namespace k8s.io, where the CRI looks); returns its name there."""
    node.ctr("images", "import", "--no-unpack", str(archive), timeout=300)
    ref = image_ref()
    listed = node.ctr("images", "ls", "-q").stdout.split()
    if ref not in listed:
        raise NodeError(f"{archive} imported into {node.containerd_sock} but {ref} is not listed: {listed}")
    return ref


def pod_cidr(node: "LivingNode") -> str:
    return str(getattr(node, "pod_cidr", "") or NODE_POD_CIDR)


def lab_values(cluster: "LivingCluster", nodes: list["LivingNode"], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's values for the lab: the local image (never pulled), the node's paths under /host-like mounts,
    sbops's settings pointing at the lab (StackBill's namespace, NFS at HOST_IP)."""
    first = nodes[0]
    mounts = [
        {"name": "host-etc", "hostPath": "/etc", "mountPath": "/host/etc", "type": "Directory"},
        {"name": "host-sbin", "hostPath": "/sbin", "mountPath": "/host/sbin", "type": ""},
    ]
    states, sockets = [], []
    for i, node in enumerate(nodes):
        # Same path inside as outside: sbops's settings name them as the node's processes do.
        mounts += [
            {"name": f"containerd-state-{i}", "hostPath": str(node.containerd_state),
             "mountPath": str(node.containerd_state), "type": "Directory"},
            {"name": f"containerd-sock-{i}", "hostPath": str(node.sock_dir), "mountPath": str(node.sock_dir),
             "type": "Directory"},
            {"name": f"kubelet-{i}", "hostPath": str(node.kubelet_dir), "mountPath": str(node.kubelet_dir),
             "type": "Directory"},
        ]
        states.append(str(node.containerd_state))
        sockets.append(str(node.containerd_sock))
    values: dict[str, Any] = {
        "image": {"repository": "sbops", "tag": version(), "pullPolicy": "Never"},
        "settings": {"namespace": kubelab.NAMESPACE, "timeout": 5, "server_ip": first.link.node_ip},
        "agent": {
            "settings": {
                "host": {"disk_path": "/host/etc", "containerd_socket": ":".join(sockets)},
                "nfs": {"exports_file": "/host/etc/exports", "mount_helper": "/host/sbin/mount.nfs",
                        "server": cluster.host_ip},
                "netpath": {"containerd_state": ":".join(states)},
            },
            "hostMounts": mounts,
            # the lab's pods start in seconds: probe sooner than the chart's production period
            "readinessPeriodSeconds": 5,
        },
        "cluster": {"readinessPeriodSeconds": 5},
    }
    return merge(values, extra or {})


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class AgentRelease:
    """sbops's chart installed in the living cluster: what uninstall() undoes, and ways to look at its pods."""

    cluster: "LivingCluster"
    nodes: list["LivingNode"]
    values: dict[str, Any]
    namespace: str = NAMESPACE
    release: str = RELEASE
    routes: list[str] = field(default_factory=list)  # `ip route` destinations this release added on the host
    timings: dict[str, float] = field(default_factory=dict)

    def api(self) -> Any:
        return self.cluster.kube.api()

    def pods(self, selector: str = AGENT) -> list[dict[str, Any]]:
        from kubernetes import client

        response = client.CoreV1Api(self.api()).list_namespaced_pod(self.namespace, label_selector=selector,
                                                                    _preload_content=False)
        return json.loads(response.data)["items"]

    def agent_pod(self, node: str) -> dict[str, Any] | None:
        found = [p for p in self.pods(AGENT) if p["spec"].get("nodeName") == node
                 and not p["metadata"].get("deletionTimestamp")]
        return found[0] if found else None

    def cluster_pod(self) -> dict[str, Any] | None:
        found = [p for p in self.pods(CLUSTER) if not p["metadata"].get("deletionTimestamp")]
        return found[0] if found else None

    def upgrade(self, extra: dict[str, Any] | None = None) -> None:
        """`helm upgrade --install` with the release's values (plus `extra`, not kept)."""
        self.cluster.helm(self.release, CHART, self.namespace, merge(self.values, extra or {}))

    def wait_ready(self, timeout: float = 180.0) -> None:
        """The DaemonSet has a Ready, current pod on every node given, and the Deployment all its replicas."""
        from kubernetes import client

        apps = client.AppsV1Api(self.api())
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            ds = kubelab._raw(apps.read_namespaced_daemon_set, f"{self.release}-agent", self.namespace)
            dep = kubelab._raw(apps.read_namespaced_deployment, f"{self.release}-cluster", self.namespace)
            dss, deps = ds.get("status", {}), dep.get("status", {})
            want = dep["spec"].get("replicas", 1)
            nodes_ok = all(ready(self.agent_pod(n)) for n in self.node_names())
            if (nodes_ok and dss.get("observedGeneration", 0) >= ds["metadata"]["generation"]
                    and dss.get("numberReady", 0) >= len(self.nodes)
                    and dss.get("updatedNumberScheduled", 0) >= len(self.nodes)
                    and dss.get("numberUnavailable", 0) == 0
                    and deps.get("observedGeneration", 0) >= dep["metadata"]["generation"]
                    and deps.get("readyReplicas", 0) >= want and deps.get("updatedReplicas", 0) >= want
                    and deps.get("replicas", 0) == want):
                return
            last = self.describe()
            time.sleep(1.0)
        raise NodeError(f"sbops's pods not Ready after {timeout:g}s: {last}; {self.logs()}")

    def node_names(self) -> list[str]:
        from tests.lab.node import NODE_NAME

        return [str(getattr(node, "name", "") or NODE_NAME) for node in self.nodes]

    def describe(self) -> str:
        lines = []
        for pod in self.pods(AGENT) + self.pods(CLUSTER):
            states = []
            for cs in pod.get("status", {}).get("containerStatuses", []) or []:
                state = cs.get("state", {})
                kind = next(iter(state), "?")
                detail = state.get(kind, {})
                states.append(f"{kind}:{detail.get('reason', '')} {detail.get('message', '')[:200]}".strip())
            lines.append(f"{pod['metadata']['name']}@{pod['spec'].get('nodeName')} {pod['status'].get('phase')} "
                         f"ready={ready(pod)} {' '.join(states)}")
        return "; ".join(lines) or "no sbops pods"

    def logs(self, lines: int = 15) -> str:
        """The last lines of each sbops container's log (the kubelet's files under the node's /var/log/pods)."""
        out = []
        for node in self.nodes:
            base = node.root / "log" / "pods"
            for path in sorted(base.glob(f"{self.namespace}_*/*/*.log")):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"{path.relative_to(base)}:\n" + "\n".join(text))
        return "\n".join(out)


def ready(pod: dict[str, Any] | None) -> bool:
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []) or [])


def _route(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "route", *args], capture_output=True, text=True, timeout=10)


def add_route(cidr: str, via: str, wait: float = 600.0) -> bool:
    """A host route to a node's pod CIDR via the node's address. True when added here (to remove later),
    False when it was already there via the same node (a two-node lab routes its nodes itself). A route through
    another gateway is another lab's (every lab's node uses 10.42.0.0/24, and another test run on this machine
    may be using it): wait for it to go, up to `wait` seconds, then fail naming it; never replace it."""
    end = time.monotonic() + wait
    while True:
        existing = _route("show", cidr).stdout.strip()
        if existing and f"via {via} " in existing + " ":
            return False
        if not existing:
            done = _route("add", cidr, "via", via)
            if done.returncode == 0:
                return True
            if "exists" not in done.stderr:
                raise NodeError(f"ip route add {cidr} via {via} failed: {done.stderr.strip()}")
        elif time.monotonic() > end:
            raise NodeError(f"the host routes {cidr} elsewhere ({existing}) for {wait:g}s: another lab's node "
                            f"holds it; sbops's pods here would be unreachable")
        time.sleep(2.0)


def install_agents(cluster: "LivingCluster", nodes: Iterable["LivingNode"] | None = None,
                   values: dict[str, Any] | None = None, timeout: float = 240.0,
                   archive: Path | None = None) -> AgentRelease:
    """Build (or reuse) the image, import it into every node, route the host to their pod CIDRs, install the
    chart in namespace `sbops` and wait until the agent is Ready on every node and the Deployment is Ready.
    A failure undoes what was done (routes, release) and raises NodeError naming the part."""
    from kubernetes import client

    nodes = list(nodes) if nodes is not None else [cluster.node]
    t0 = time.monotonic()
    release = AgentRelease(cluster, nodes, lab_values(cluster, nodes, values))
    archive = archive or build_image()
    release.timings["image"] = round(time.monotonic() - t0, 1)
    for node in nodes:
        import_image(node, archive)
    release.timings["import"] = round(time.monotonic() - t0, 1)
    try:
        for node in nodes:
            if add_route(pod_cidr(node), node.link.node_ip):
                release.routes.append(pod_cidr(node))
        core = client.CoreV1Api(cluster.kube.api())
        if not kubelab._exists(core.read_namespace, NAMESPACE):
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        cluster.helm(release.release, CHART, release.namespace, release.values)
        release.wait_ready(timeout)
    except BaseException:
        try:
            uninstall(release)
        finally:
            pass
        raise
    release.timings["ready"] = round(time.monotonic() - t0, 1)
    return release


def uninstall(release: AgentRelease, timeout: float = 120.0) -> None:
    """`helm uninstall`, then the namespace gone, then the host routes removed: nothing of the release left."""
    from kubernetes import client

    from tests.lab.stack import helm_binary

    cluster = release.cluster
    home = cluster.root / "helm"
    env = {**os.environ, "KUBECONFIG": str(cluster.kube.kubeconfig), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    errors = []
    try:
        proc = subprocess.run([helm_binary(), "uninstall", release.release, "-n", release.namespace, "--timeout",
                               f"{int(timeout)}s"], capture_output=True, text=True, env=env, timeout=timeout + 30)
        if proc.returncode != 0 and "not found" not in proc.stderr:
            errors.append(f"helm uninstall: {proc.stderr.strip()[-300:]}")
        core = client.CoreV1Api(cluster.kube.api())
        kubelab._ignore(404, core.delete_namespace, release.namespace)
        end = time.monotonic() + timeout
        while time.monotonic() < end and kubelab._exists(core.read_namespace, release.namespace):
            time.sleep(1.0)
    finally:
        for cidr in release.routes:
            done = _route("del", cidr)
            if done.returncode != 0:
                errors.append(f"ip route del {cidr}: {done.stderr.strip()}")
        release.routes.clear()
    if errors:
        raise NodeError("; ".join(errors))


def results(release: AgentRelease, pod: dict[str, Any], port: int, **params: Any) -> dict[str, Any]:
    """A pod's /results through the API server's pod proxy (as `sbops doctor --cluster` asks the agents)."""
    api = release.api()
    query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
    resource = f"/api/v1/namespaces/{release.namespace}/pods/{pod['metadata']['name']}:{port}/proxy/results"
    method, url, headers, body, _ = api.param_serialize("GET", resource, query_params=query,
                                                        auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, _request_timeout=(5, 90))
    data = response.read()
    if response.status != 200:
        raise NodeError(f"GET {resource}: HTTP {response.status}: {data[:500]!r}")
    return json.loads(data)
