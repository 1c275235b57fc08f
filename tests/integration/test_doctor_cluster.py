"""`sbops doctor --cluster` against the real lab kube-apiserver and real agents.

Each agent is a real `sbops exporter --layers host,nfs` process listening on an address of its own
(10.97.14.N/32 on a veth this fixture creates and removes: the API server refuses to proxy to loopback), with
NODE_NAME set as the chart's downward API sets it. The lab API server holds a Node per agent and an agent Pod
whose status (written through the status subresource, as a kubelet would: the lab has none) points podIP at
that address, so `doctor --cluster` reaches each agent through the API server's real pod proxy with the
kubeconfig's own authentication. Only the kubelet is imitated (the pod status); the proxying, the agents and
the doctor are real.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab.common import free_port
from tests.lab.env import LabEnv
from tests.lab.exporter import ExporterProc

NS = "sbops"
LABELS = {"app.kubernetes.io/name": "sbops", "app.kubernetes.io/component": "agent"}
LINK, PEER = "sb14cl0", "sb14cl1"
NODES = {"node-1": "10.97.14.1", "node-2": "10.97.14.2"}
BARE_NODE = "node-3"  # a node the DaemonSet missed: no agent pod
HUNG = {"node-4": "10.97.14.4", "node-5": "10.97.14.5"}  # agents that accept a connection and never answer
HOST_CHECKS = ("host.resources", "host.listeners", "host.bind-address", "host.kubelet", "host.containerd")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def addresses() -> Iterator[dict[str, str]]:
    """A veth pair of our own with one /32 per agent on it; removed (with its addresses) afterwards."""
    ip("link", "del", LINK, check=False)  # left by a killed run
    made = ip("link", "add", LINK, "type", "veth", "peer", "name", PEER, check=False)
    if made.returncode != 0:
        pytest.fail(f"cannot create the agents' veth (root and the veth driver are needed): {made.stderr.strip()}")
    try:
        for address in [*NODES.values(), *HUNG.values()]:
            ip("addr", "add", f"{address}/32", "dev", LINK)
        ip("link", "set", LINK, "up")
        ip("link", "set", PEER, "up")
        yield dict(NODES)
    finally:
        ip("link", "del", LINK, check=False)


def node_body(name: str, address: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def pod_body(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS)},
            "spec": {"nodeName": node, "hostNetwork": True,
                     "containers": [{"name": "agent", "image": "sbops:0.1.0", "args": ["exporter"]}]}}


class Cluster:
    """The agents' Nodes and Pods in the lab API server, and the agent processes."""

    def __init__(self, kube: Any, root: Path, addresses: dict[str, str]) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(kube.api())
        self.kube = kube
        self.root = root
        self.addresses = addresses
        self.port = free_port(addresses["node-1"])
        self.agents: dict[str, ExporterProc] = {}
        self.envs: dict[str, LabEnv] = {}
        self.extra: list[str] = []

    def agent_env(self, node: str) -> LabEnv:
        env = LabEnv(self.root / node)
        # the node's minimums, so host.resources passes on this machine unless a test breaks one node
        env.set("host.min_cpus", 1).set("host.min_memory_gb", 1).set("host.min_disk_gb", 1)
        env.set("host.disk_path", str(self.root))
        self.envs[node] = env
        return env

    def start_agent(self, node: str) -> ExporterProc:
        env = self.envs.get(node) or self.agent_env(node)
        agent = ExporterProc(env, "--layers", "host,nfs", port=self.port, host=self.addresses[node],
                             environ={"NODE_NAME": node})
        self.agents[node] = agent.start()
        return agent

    def create(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        for node, address in [*self.addresses.items(), (BARE_NODE, "10.97.14.3")]:
            self.core.create_node(node_body(node, address))
            self.core.patch_node_status(node, {"status": {"addresses": [{"type": "InternalIP", "address": address}]}})
        for node, address in self.addresses.items():
            name = f"sbops-agent-{node}"
            self.core.create_namespaced_pod(NS, pod_body(name, node))
            self.core.patch_namespaced_pod_status(name, NS, {"status": {
                "phase": "Running", "hostIP": address, "podIP": address, "podIPs": [{"ip": address}],
                "conditions": [{"type": "Ready", "status": "True"}]}})

    def add_agent_pod(self, node: str, address: str) -> None:
        """A Node and its agent Pod, Running at `address` (as a kubelet would report it)."""
        self.core.create_node(node_body(node, address))
        name = f"sbops-agent-{node}"
        self.core.create_namespaced_pod(NS, pod_body(name, node))
        self.core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": "Running", "hostIP": address, "podIP": address, "podIPs": [{"ip": address}]}})
        self.extra.append(node)

    def delete(self) -> None:
        for node in self.extra:
            self._ignore(self.core.delete_namespaced_pod, f"sbops-agent-{node}", NS, grace_period_seconds=0)
            self._ignore(self.core.delete_node, node)
        for node in self.addresses:
            self._ignore(self.core.delete_namespaced_pod, f"sbops-agent-{node}", NS, grace_period_seconds=0)
        for node in [*self.addresses, BARE_NODE]:
            self._ignore(self.core.delete_node, node)

    @staticmethod
    def _ignore(fn: Any, *args: Any, **kwargs: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()

    def doctor(self, *args: str) -> tuple[int, dict[str, Any]]:
        """`sbops doctor --cluster --output json` from a workstation: the lab's admin kubeconfig."""
        env = LabEnv(self.root / "workstation")
        env.set("kubeconfig", str(self.kube.kubeconfig)).set("cluster.agent_port", self.port)
        env.set("cluster.agent_timeout", 8)
        proc = env.sbops("doctor", "--cluster", "--output", "json", *args, timeout=120)
        assert proc.returncode in (0, 3, 4), f"doctor --cluster exited {proc.returncode}: {proc.stderr[-2000:]}"
        return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def cluster(kube: Any, addresses: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(kube, tmp_path, addresses)
    try:
        made.create()
        yield made
    finally:
        made.stop()
        made.delete()


def rows(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["id"], c["node"]): c for c in document["checks"]}


def test_agent_results_endpoint_is_the_doctors_json_with_the_node(cluster: Cluster) -> None:
    """/results on the agent: the doctor's JSON for the layers asked, its node; a layer not served is a 400."""
    import urllib.error
    import urllib.request

    agent = cluster.start_agent("node-1")
    with urllib.request.urlopen(f"{agent.url}/results?layer=host", timeout=30) as answer:
        document = json.loads(answer.read())
    assert document["node"] == "node-1" and document["schema"] == 1
    own = [c for c in document["checks"] if not c["added_as_related"]]
    assert [c["id"] for c in own] == list(HOST_CHECKS)
    assert {"status", "reason", "code", "runbook", "fix"} <= set(own[0])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{agent.url}/results?layer=kubernetes", timeout=30)
    assert refused.value.code == 400 and b"not served here" in refused.value.read()


def test_cluster_report_has_each_nodes_rows_errors_for_the_silent_and_the_missing(cluster: Cluster) -> None:
    """Two agents answer, one node has none, one node's settings are broken (its host.resources minimums):
    one row per node per node-level check with that node's own finding; then one agent is killed."""
    cluster.start_agent("node-1")
    broken = cluster.agent_env("node-2").set("host.min_cpus", 100000)  # node-2 only: below its minimums
    broken.set("nfs.mount_helper", str(cluster.root / "node-2-has-no-nfs-common" / "mount.nfs"))
    cluster.start_agent("node-2")
    code, document = cluster.doctor("--layer", "host", "--layer", "nfs", "--layer", "kubernetes", "--check", "host.*",
                                    "--check", "nfs.client", "--check", "k8s.api")
    found = rows(document)
    nodes = sorted(document["nodes"])
    assert {"node-1", "node-2", BARE_NODE} <= set(nodes)
    for check in HOST_CHECKS:
        for node in nodes:
            assert (check, node) in found, f"no row for {check}@{node}"
    assert all(c.get("node") for c in document["checks"] if c["layer"] == "host")
    # the cluster-wide check ran here, once, its node null; every result has the key
    assert all("node" in c for c in document["checks"])
    assert found[("k8s.api", None)]["status"] == "ok"
    assert found[("host.resources", "node-1")]["status"] == "ok"
    assert (found[("host.resources", "node-2")]["status"], found[("host.resources", "node-2")]["reason"]) == \
        ("warn", "degraded")
    # the mount helper is missing on node-2 only
    assert (found[("nfs.client", "node-2")]["status"], found[("nfs.client", "node-2")]["code"]) == ("fail", "SB5041")
    assert found[("nfs.client", "node-1")]["code"] != "SB5041"
    assert found[("nfs.client", BARE_NODE)]["code"] == "SB0022"
    # each answering node reports its own finding, the same code on both for the same state
    assert found[("host.listeners", "node-1")]["code"] == found[("host.listeners", "node-2")]["code"]
    bare = found[("host.listeners", BARE_NODE)]
    assert (bare["status"], bare["reason"], bare["code"]) == ("error", "missing", "SB0022")
    assert code == 3  # errors are failures, as in `sbops doctor`

    cluster.agents["node-2"].stop()
    code, document = cluster.doctor("--layer", "host")
    found = rows(document)
    for check in HOST_CHECKS:
        silent = found[(check, "node-2")]
        assert (silent["status"], silent["reason"], silent["code"]) == ("error", "refused", "SB0020"), silent["summary"]
        assert "sbops-agent-node-2 on node-2" in silent["summary"]
        assert found[(check, "node-1")]["code"] != "SB0020"
    assert code == 3


def test_cluster_text_report_names_rows_by_node(cluster: Cluster) -> None:
    cluster.start_agent("node-1")
    cluster.start_agent("node-2")
    env = LabEnv(cluster.root / "workstation-text")
    env.set("kubeconfig", str(cluster.kube.kubeconfig)).set("cluster.agent_port", cluster.port)
    proc = env.sbops("doctor", "--cluster", "--check", "host.resources", timeout=120)
    assert proc.returncode in (3, 4), proc.stderr
    lines = proc.stdout.splitlines()
    assert any("host.resources@node-1" in line for line in lines)
    assert any("host.resources@node-2" in line for line in lines)
    assert any(f"host.resources@{BARE_NODE}" in line and "no sbops agent pod" in line for line in lines)


def test_cluster_without_kubeconfig_is_one_line(tmp_path: Path) -> None:
    env = LabEnv(tmp_path)
    proc = env.sbops("doctor", "--cluster", env={"KUBECONFIG": "", "HOME": str(tmp_path)})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--cluster" in proc.stderr, proc.stderr


def test_the_documented_rbac_is_enough_and_without_pods_proxy_every_row_says_so(cluster: Cluster) -> None:
    """A token bound to exactly deploy/rbac/sbops-doctor.yaml's rules reaches the agents; the same rules
    without `get pods/proxy` give access_denied on each node row, not a gap."""
    from tests.integration.test_rbac import doctor_rules

    cluster.start_agent("node-1")
    rules = doctor_rules()
    env = LabEnv(cluster.root / "rbac")
    env.set("cluster.agent_port", cluster.port)
    env.set("kubeconfig", str(cluster.kube.token_kubeconfig("user3", rules)))
    proc = env.sbops("doctor", "--cluster", "--output", "json", "--check", "host.resources", timeout=120)
    found = rows(json.loads(proc.stdout))
    assert found[("host.resources", "node-1")]["status"] == "ok", found[("host.resources", "node-1")]["summary"]

    without = [r for r in rules if "pods/proxy" not in r.get("resources", [])]
    assert len(without) == len(rules) - 1
    env.set("kubeconfig", str(cluster.kube.token_kubeconfig("user4", without)))
    proc = env.sbops("doctor", "--cluster", "--output", "json", "--check", "host.resources", timeout=120)
    denied = rows(json.loads(proc.stdout))[("host.resources", "node-1")]
    assert (denied["status"], denied["reason"], denied["code"]) == ("error", "access_denied", "SB0020"), denied
    assert proc.returncode == 3


def test_hung_agents_time_out_each_within_its_timeout_and_are_asked_at_once(cluster: Cluster) -> None:
    """Two agents whose port accepts connections and never answers (a listening socket nobody reads): each
    node's rows are error/timeout after cluster.agent_timeout, and the two are asked concurrently (the run takes
    about one timeout, not two)."""
    import socket
    import time

    cluster.start_agent("node-1")
    hung = []
    try:
        for node, address in HUNG.items():
            sock = socket.socket()
            sock.bind((address, cluster.port))
            sock.listen(16)
            hung.append(sock)
            cluster.add_agent_pod(node, address)
        env = LabEnv(cluster.root / "hung")
        env.set("kubeconfig", str(cluster.kube.kubeconfig)).set("cluster.agent_port", cluster.port)
        env.set("cluster.agent_timeout", 4)
        began = time.monotonic()
        proc = env.sbops("doctor", "--cluster", "--output", "json", "--check", "host.resources", timeout=120)
        took = time.monotonic() - began
        found = rows(json.loads(proc.stdout))
    finally:
        for sock in hung:
            sock.close()
    for node in HUNG:
        row = found[("host.resources", node)]
        assert (row["status"], row["reason"], row["code"]) == ("error", "timeout", "SB0020"), row
        assert "within 4s" in row["summary"]
    assert found[("host.resources", "node-1")]["status"] == "ok"
    assert took < 4 * 2, f"the hung agents were not asked at once: {took:.1f}s"
