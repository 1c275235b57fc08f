"""A second living node, joined to the living cluster (tests/lab/living.py) for a test module and removed after.

The second node is a tests/lab/node.py LivingNode like the first, with what tells them apart: its name
(stackbill-node-2), its own network namespace and /30 link, its containerd root/state/socket, its kubelet
--root-dir, its pod CIDR 10.42.1.0/24 (the first has 10.42.0.0/24), and no controller-manager or scheduler of
its own (the first node's serve the cluster). Its kubelet reaches the API server at the first link's host
address: the node's default route goes to the host, which owns that address.

Routing between the two (lab-owned addresses only): the host routes each node's pod /24 via that node's link
address (node 1's through a table of the lab's own when another lab on the machine holds 10.42.0.0/24: see
_route), and forwards between the two links (forwarding is turned on for those two interfaces alone, never
machine-wide); each node's default route is its link's host end. So the host reaches pods on both nodes, and
a pod on one node reaches a pod on the other (masqueraded to its node's address by the CNI bridge on the way
out, as flannel's host-gw leaves it).

Joining the shared cluster without disturbing the other living tests: the node registers with the taint
TAINT, so the scheduler places only pods that tolerate it (an agent DaemonSet tolerating everything, a test's
pinned pods), never StackBill's Deployments; the lab NFS export also names its address (what the installer
would add for a new node). leave() drains the node (its pods deleted and gone), deletes the Node object, stops
its processes (the node's mount namespace, and so hide()'s overlays, go with them), removes its namespace, link
and routes, and puts the export back: the cluster is as the first node alone left it.

Agents (`sbops doctor --cluster`): sbops's own chart (tests/lab/agentchart.py, branch h14-pods) installed on
both nodes with agent_values(): its DaemonSet's hostPath mounts name node-neutral paths that each node's mount
namespace binds to that node's own (tests/lab/node.py NODE_VIEW), so each agent pod reads its own node's
containerd state and mount helper, and tests its own node's network.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.lab import kube as kubelab
from tests.lab.node import NODE_VIEW, LivingNode, NodeError, _run

NODE2_NAME = "stackbill-node-2"
NODE2_POD_CIDR = "10.42.1.0/24"
TAINT_KEY = "lab.sbops.io/second-node"
TAINT = f"{TAINT_KEY}=true:NoSchedule"
TOLERATION = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
TABLE_BASE = 10000  # + node 2's link subnet: the routing table for traffic from node 2 to node 1's pods


class SecondNode:
    """The second node of `cluster` (a started LivingCluster): join() brings it up Ready, leave() removes it."""

    def __init__(self, cluster: Any, root: Path, name: str = NODE2_NAME, pod_cidr: str = NODE2_POD_CIDR) -> None:
        self.cluster = cluster
        self.root = Path(root)
        self.name = name
        self.pod_cidr = pod_cidr
        self.node: LivingNode | None = None
        self._routes: list[list[str]] = []
        self._rules: list[list[str]] = []
        self.host_routes_first = False  # whether the host's own route to node 1's pod /24 is this lab's
        self._forwarding: list[str] = []
        self.timings: dict[str, float] = {}

    @property
    def nodes(self) -> list[LivingNode]:
        """Both nodes, the first first."""
        assert self.node is not None
        return [self.cluster.node, self.node]

    def join(self, timeout: float = 180.0) -> "SecondNode":
        from tests.lab.images import build_images
        from tests.lab.living import LOCAL_IMAGES

        t0 = time.monotonic()
        first = self.cluster.node
        self.node = LivingNode(self.root, first.bin, name=self.name, pod_cidr=self.pod_cidr, control_plane=False,
                               taints=(TAINT,))
        self.node.start_network()
        self._route()
        self.cluster.nfs.seed_stackbill(f"{first.link.node_ip} {self.node.link.node_ip}")
        self.timings["network"] = round(time.monotonic() - t0, 1)
        self.node.registry_mirror = first.registry_mirror
        images = build_images()  # cached: the first node's start built them
        self.node.start_runtime([images[name] for name in LOCAL_IMAGES])
        kube = self.cluster.kube
        self.node.start_kubernetes(kube.server, kube.kubeconfig, kube.root / "pki", timeout=timeout)
        self._wait_schedulable(timeout)
        self.timings["Ready"] = round(time.monotonic() - t0, 1)
        return self

    def _wait_schedulable(self, timeout: float) -> None:
        """Until the node lifecycle controller has lifted the node.kubernetes.io/not-ready taint a new node
        registers with (pods that tolerate only TAINT would stay Pending until then)."""
        from kubernetes import client

        core = client.CoreV1Api(self.cluster.kube.api())
        end = time.monotonic() + timeout
        taints: list[str] = []
        while time.monotonic() < end:
            taints = [t["key"] for t in kubelab._raw(core.read_node, self.name)["spec"].get("taints", [])]
            if taints == [TAINT_KEY]:
                return
            time.sleep(0.5)
        raise NodeError(f"{self.name}: taints {taints} after {timeout:g}s (expected only {TAINT_KEY})")

    def _route(self) -> None:
        """Routes between the host and the two nodes' pods, and forwarding on the two lab links only.

        Node 2's pod /24 (10.42.1.0/24, used by no single-node lab): a host route via node 2's link address.
        Node 1's pod /24 is 10.42.0.0/24 in every living lab on this machine, and another lab may already route
        it on the host (to its own node): so traffic forwarded from node 2 finds node 1's pods through a table
        of this lab's own, chosen by the interface it came in on (`ip rule iif`); the host's own route to node
        1's pods is added only when no other lab holds it (host_routes_first says whether)."""
        assert self.node is not None
        first, second = self.nodes
        self._add_route(second.pod_cidr, "via", second.link.node_ip, "dev", second.link.host_if)
        table = str(TABLE_BASE + second.link.subnet)
        self._add_route(first.pod_cidr, "via", first.link.node_ip, "dev", first.link.host_if, "table", table)
        rule = ["iif", second.link.host_if, "lookup", table, "priority", table]
        _run("ip", "rule", "add", *rule)
        self._rules.append(rule)
        self.host_routes_first = _run("ip", "route", "add", first.pod_cidr, "via", first.link.node_ip, "dev",
                                      first.link.host_if, check=False).returncode == 0
        if self.host_routes_first:
            self._routes.append([first.pod_cidr, "via", first.link.node_ip, "dev", first.link.host_if])
        for node in self.nodes:
            path = Path("/proc/sys/net/ipv4/conf") / node.link.host_if / "forwarding"
            if path.read_text().strip() != "1":
                path.write_text("1\n")
                self._forwarding.append(str(path))

    def _add_route(self, *route: str) -> None:
        done = _run("ip", "route", "add", *route, check=False)
        if done.returncode != 0:
            raise NodeError(f"ip route add {' '.join(route)}: {done.stderr.strip()} (another two-node lab running? "
                            f"`ip route show {route[0]}` says which link holds it)")
        self._routes.append(list(route))

    def _unroute(self) -> None:
        for rule in self._rules:
            _run("ip", "rule", "del", *rule, check=False)
        self._rules = []
        for route in self._routes:
            _run("ip", "route", "del", *route, check=False)  # gone already when its link was deleted
        self._routes = []
        for path in self._forwarding:
            try:
                Path(path).write_text("0\n")
            except OSError:
                pass  # the interface is gone
        self._forwarding = []

    # -- leaving ----------------------------------------------------------------------------------------
    def drain(self, timeout: float = 60.0) -> list[str]:
        """Delete every pod bound to the node and wait until the kubelet has removed them (forced after
        `timeout`); returns the pods it deleted."""
        from kubernetes import client

        core = client.CoreV1Api(self.cluster.kube.api())
        selector = f"spec.nodeName={self.name}"
        pods = core.list_pod_for_all_namespaces(field_selector=selector).items
        for pod in pods:
            kubelab._ignore(404, core.delete_namespaced_pod, pod.metadata.name, pod.metadata.namespace,
                            grace_period_seconds=1)
        end = time.monotonic() + timeout
        while core.list_pod_for_all_namespaces(field_selector=selector).items and time.monotonic() < end:
            time.sleep(0.5)
        for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
            kubelab._ignore(404, core.delete_namespaced_pod, pod.metadata.name, pod.metadata.namespace,
                            grace_period_seconds=0)
        return [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods]

    def leave(self) -> None:
        """Drain, delete the Node, stop the node, remove its routes and export entry; every step runs even when
        an earlier one failed, and the first failure is raised at the end."""
        from kubernetes import client

        errors: list[str] = []
        steps = [("drain", self.drain),
                 ("delete node", lambda: kubelab._ignore(404, client.CoreV1Api(self.cluster.kube.api()).delete_node,
                                                         self.name)),
                 ("stop", lambda: self.node.stop() if self.node else None),
                 ("routes", self._unroute),
                 ("export", lambda: self.cluster.nfs.seed_stackbill(self.cluster.node.link.node_ip))]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep removing the rest
                errors.append(f"{what}: {exc}")
        if errors:
            raise NodeError(f"removing {self.name}: " + "; ".join(errors))


# -- sbops's chart on both nodes (tests/lab/agentchart.py) ------------------------------------------------------
def agent_values(credentials: str) -> dict[str, Any]:
    """Values for agentchart.install_agents on several nodes: the chart's hostMounts and settings name the
    node-neutral paths (tests/lab/node.py NODE_VIEW), which each node's mount namespace binds to its own
    containerd state, socket directory and kubelet root. One pod template then serves both nodes, each agent
    reading its own node's (the lab's per-node paths would all exist on this one machine, and sbops takes the
    first that exists). `credentials`: the StackBill credentials file's text (netpath.mysql logs in from the
    pods); the checks' budget is 10 s (a child process entering a pod starts slowly on a shared machine)."""
    view = {name: str(NODE_VIEW / name) for name in ("containerd-state", "containerd", "kubelet")}
    mounts = [{"name": "host-etc", "hostPath": "/etc", "mountPath": "/host/etc", "type": "Directory"},
              {"name": "host-sbin", "hostPath": "/sbin", "mountPath": "/host/sbin", "type": ""}]
    mounts += [{"name": f"node-{name}", "hostPath": path, "mountPath": path, "type": "Directory"}
               for name, path in view.items()]
    return {"credentials": {"content": credentials}, "settings": {"timeout": 10, "exporter": {"timeout": 25}},
            "agent": {"hostMounts": mounts, "settings": {
        "host": {"containerd_socket": f"{view['containerd']}/containerd.sock"},
        "netpath": {"containerd_state": view["containerd-state"]}}}}


def restart_agent(release: Any, node: LivingNode, timeout: float = 120.0) -> dict[str, Any]:
    """Delete the agent pod on `node` and wait for the DaemonSet's new one to be Ready: a container's view of
    the node's files (hostPath) is taken when it starts."""
    from kubernetes import client

    from tests.lab.agentchart import ready

    core = client.CoreV1Api(release.api())
    old = release.agent_pod(node.name)
    if old is not None:
        kubelab._ignore(404, core.delete_namespaced_pod, old["metadata"]["name"], release.namespace,
                        grace_period_seconds=1)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pod = release.agent_pod(node.name)
        if pod is not None and (old is None or pod["metadata"]["uid"] != old["metadata"]["uid"]) and ready(pod):
            return pod
        time.sleep(1.0)
    raise NodeError(f"no new Ready agent pod on {node.name} after {timeout:g}s: {release.describe()}")


def wait_pod_running(core: Any, name: str, namespace: str, timeout: float = 90.0) -> dict[str, Any]:
    """The pod once the kubelet reports it Running with an address; NodeError with its status otherwise."""
    end = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < end:
        last = kubelab._raw(core.read_namespaced_pod, name, namespace)
        status = last.get("status", {})
        if status.get("phase") == "Running" and status.get("podIP"):
            return last
        time.sleep(0.5)
    raise NodeError(f"pod {namespace}/{name} not Running after {timeout:g}s: {last.get('status')}")
