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

Agents (`sbops doctor --cluster`): NodeAgent runs a real `sbops exporter` in a node's network and mount
namespaces, listening on the node's address, with NODE_NAME set as the chart's downward API sets it;
agent_pod() is the agent's Pod (host network, pinned to the node, a sleeping busybox container), which gives the
API server's pod proxy the node's address to reach it at, as the DaemonSet's pods do. The checks run on each
node's view: its network namespace (listeners, routes, the NFS port from its address), its mount namespace
(the mount helper), its containerd state (netpath enters its pods).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.lab import kube as kubelab
from tests.lab.exporter import ExporterProc
from tests.lab.node import LivingNode, NodeError, _run

NODE2_NAME = "stackbill-node-2"
NODE2_POD_CIDR = "10.42.1.0/24"
TAINT_KEY = "lab.sbops.io/second-node"
TAINT = f"{TAINT_KEY}=true:NoSchedule"
TOLERATION = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
AGENT_NAMESPACE = "sbops"
TABLE_BASE = 10000  # + node 2's link subnet: the routing table for traffic from node 2 to node 1's pods
AGENT_LABELS = {"app.kubernetes.io/name": "sbops", "app.kubernetes.io/component": "agent"}


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


# -- agents of `sbops doctor --cluster` on the living nodes --------------------------------------------------
class NodeAgent(ExporterProc):
    """`sbops exporter` in a node's network and mount namespaces, listening on the node's address (the chart's
    agent has the node's network: host network), with NODE_NAME = the node's name."""

    def __init__(self, node: LivingNode, env: Any, *extra: str, port: int) -> None:
        super().__init__(env, *extra, port=port, host=node.link.node_ip, environ={"NODE_NAME": node.name})
        self.node = node

    def argv(self) -> list[str]:
        return ["nsenter", f"--net={self.node.link.netns_path}", f"--mount={self.node.mount_ns}", *super().argv()]


def agent_pod(node: LivingNode) -> dict[str, Any]:
    """The agent's Pod on `node`: host network (so its address is the node's, where NodeAgent listens),
    pinned to the node, tolerating every taint as the chart's DaemonSet does; its container sleeps."""
    from tests.lab.images import image_ref

    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"sbops-agent-{node.name}", "namespace": AGENT_NAMESPACE,
                         "labels": dict(AGENT_LABELS)},
            "spec": {"nodeName": node.name, "hostNetwork": True, "tolerations": [{"operator": "Exists"}],
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "agent", "image": image_ref("istio-ingressgateway"),
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["/bin/sleep", "2147483647"]}]}}


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
