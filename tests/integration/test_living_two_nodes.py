"""Two living nodes (tests/lab/twonode.py): the second joins the session's living cluster for this module,
tainted so that only pods that tolerate it land there, and is removed (drained, deleted, stopped, its namespace,
link and routes gone) at the module's end.

Everything is real: two kubelets and two containerds in network namespaces of their own, pods started by the
kubelets, sbops's chart (deploy/kubernetes, image from scripts/build-image, tests/lab/agentchart.py) with its
agent DaemonSet on both nodes, the API server's pod proxy to each agent, an overlay that hides the mount
helper in the second node's mount namespace only, an iptables rule in one node's network namespace.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab import kube as kubelab
from tests.lab.agentchart import AGENT_PORT, AgentRelease, install_agents, uninstall
from tests.lab.env import LabEnv
from tests.lab.images import image_ref
from tests.lab.living import LivingCluster, lab_env, restore_servers
from tests.lab.node import NODE_NAME, LivingNode
from tests.lab.twonode import (NODE2_NAME, NODE2_POD_CIDR, TAINT_KEY, TOLERATION, SecondNode, agent_values,
                               restart_agent, wait_pod_running)

PINNED_NS = "lab-two-nodes"
PINNED = "pinned-to-node-2"
MOUNT_HELPER = "/sbin/mount.nfs"


def core_api(cluster: LivingCluster) -> Any:
    from kubernetes import client

    return client.CoreV1Api(cluster.kube.api())


@pytest.fixture(scope="module")
def two_nodes(living_cluster: LivingCluster, tmp_path_factory: Any) -> Iterator[SecondNode]:
    """The living cluster with a second node (about 20 s to join); removed at the module's end."""
    second = SecondNode(living_cluster, tmp_path_factory.mktemp("node2") / "node")
    try:
        second.join()
        yield second
    finally:
        second.leave()


@pytest.fixture(scope="module")
def pinned(two_nodes: SecondNode) -> dict[str, Any]:
    """A pod pinned to node 2 (tolerating its taint), Ready only while it reaches the host's MariaDB at HOST_IP
    and the sb-core pod on node 1 (its readiness probe connects to both), serving HTTP on 8080."""
    cluster = two_nodes.cluster
    core = core_api(cluster)
    if not kubelab._exists(core.read_namespace, PINNED_NS):
        core.create_namespace({"metadata": {"name": PINNED_NS}})
    sb_core = [p for p in cluster.pods() if p["metadata"]["name"].startswith("sb-core")][0]
    mysql = cluster.servers["mysql"]
    probe = f"nc -w 2 {cluster.host_ip} {mysql.port} </dev/null && nc -w 2 {sb_core['status']['podIP']} 8080 </dev/null"
    core.create_namespaced_pod(PINNED_NS, {"metadata": {"name": PINNED, "labels": {"app": PINNED}}, "spec": {
        "nodeName": NODE2_NAME, "tolerations": [TOLERATION], "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "web", "image": image_ref("istio-ingressgateway"), "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
                        "readinessProbe": {"exec": {"command": ["/bin/sh", "-c", probe]}, "periodSeconds": 2}}]}})
    pod = wait_pod_running(core, PINNED, PINNED_NS)
    return {"pod": pod, "sb_core": sb_core}


def ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions", []))


def test_both_nodes_register_ready_each_with_its_own_address_runtime_and_pod_cidr(two_nodes: SecondNode) -> None:
    core = core_api(two_nodes.cluster)
    first, second = two_nodes.nodes
    nodes = {n["metadata"]["name"]: n for n in kubelab._raw(core.list_node)["items"]}
    assert {NODE_NAME, NODE2_NAME} <= set(nodes)
    for node in (first, second):
        status = nodes[node.name]["status"]
        assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"], node.name
        assert {"type": "InternalIP", "address": node.link.node_ip} in status["addresses"]
        assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert first.link.node_ip != second.link.node_ip and first.link.netns != second.link.netns
    assert first.containerd_sock != second.containerd_sock and first.kubelet_dir != second.kubelet_dir
    assert [t["key"] for t in nodes[NODE2_NAME]["spec"].get("taints", [])] == [TAINT_KEY]
    assert not nodes[NODE_NAME]["spec"].get("taints")
    # StackBill's pods stay on the first node: the taint keeps the scheduler away from the second
    assert {p["spec"]["nodeName"] for p in two_nodes.cluster.pods()} == {NODE_NAME}


def test_a_pod_pinned_to_node_2_runs_there_and_reaches_mariadb_and_node_1s_pod(
        two_nodes: SecondNode, pinned: dict[str, Any]) -> None:
    """The kubelet on node 2 starts it on node 2's bridge (10.42.1.0/24); its readiness probe (run by node 2's
    kubelet inside the pod) connects to MariaDB at HOST_IP and to sb-core's pod on node 1; the host reaches the
    pod's HTTP server through its route to node 2's pod CIDR."""
    import ipaddress

    from tests.lab.living import eventually

    cluster = two_nodes.cluster
    core = core_api(cluster)
    pod = eventually("the pinned pod Ready", lambda: kubelab._raw(core.read_namespaced_pod, PINNED, PINNED_NS),
                     ready, timeout=60)
    assert pod["spec"]["nodeName"] == NODE2_NAME
    assert pod["status"]["hostIP"] == two_nodes.node.link.node_ip
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(NODE2_POD_CIDR)
    assert ipaddress.ip_address(pinned["sb_core"]["status"]["podIP"]) in ipaddress.ip_network("10.42.0.0/24")
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/hostname", timeout=10) as answer:
        assert answer.status == 200
    # its sandbox is in node 2's containerd, not node 1's
    assert PINNED in _sandbox_names(two_nodes.node)
    assert PINNED not in _sandbox_names(cluster.node)


def _sandbox_names(node: LivingNode) -> str:
    return " ".join(json.loads((t / "config.json").read_text()).get("annotations", {}).get(
        "io.kubernetes.cri.sandbox-name", "") for t in node._task_dirs() if (t / "config.json").exists())


def test_netpath_from_node_2s_pod_logs_in_to_mariadb(two_nodes: SecondNode, pinned: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """sbops on the host, pointed at node 2's containerd state, enters the pinned pod's network namespace and
    logs in to MariaDB from there (the netpath sandbox path, as the agent on node 2 would)."""
    restore_servers(two_nodes.cluster)
    env = lab_env(two_nodes.cluster, tmp_path / "env", two_nodes.cluster.servers)
    env.set("netpath.containerd_state", str(two_nodes.node.containerd_state))
    result = env.check("netpath.mysql")
    assert (result["status"], result["reason"]) == ("ok", "none"), result["summary"]
    assert PINNED in result["summary"] or PINNED in json.dumps(result["details"]), result["details"]


# -- `sbops doctor --cluster` over both nodes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def release(two_nodes: SecondNode, pinned: dict[str, Any], tmp_path_factory: Any) -> Iterator[AgentRelease]:
    """sbops's chart on both nodes (the image built by scripts/build-image, imported into both containerds), with
    the lab's credentials file; uninstalled at the module's end. After `pinned`, so node 2 has a pod for
    netpath to test from."""
    cluster = two_nodes.cluster
    env = lab_env(cluster, tmp_path_factory.mktemp("agents-env"), cluster.servers).write()
    made = install_agents(cluster, nodes=two_nodes.nodes, values=agent_values(env.credentials_path.read_text()))
    try:
        yield made
    finally:
        uninstall(made)


@pytest.fixture
def agents(release: AgentRelease, two_nodes: SecondNode) -> AgentRelease:
    restore_servers(two_nodes.cluster)
    release.wait_ready()
    return release


def doctor(release: AgentRelease, root: Path, *checks: str) -> tuple[dict[tuple[str, str | None], dict[str, Any]],
                                                                      dict[str, Any]]:
    """`sbops doctor --cluster --output json` from the host (a workstation) with the lab's admin kubeconfig."""
    env = LabEnv(root)
    env.set("kubeconfig", str(release.cluster.kubeconfig)).set("cluster.agent_port", AGENT_PORT)
    env.set("cluster.agent_timeout", 30)
    args = ["doctor", "--cluster", "--output", "json", "--layer", "host", "--layer", "nfs", "--layer", "netpath"]
    for check in checks:
        args += ["--check", check]
    proc = env.sbops(*args, timeout=180)
    assert proc.returncode in (0, 3, 4), f"doctor --cluster exited {proc.returncode}: {proc.stderr[-2000:]}"
    document = json.loads(proc.stdout)
    return {(c["id"], c.get("node")): c for c in document["checks"]}, document


def row(found: dict, check: str, node: str) -> tuple[str, str, str]:
    result = found[(check, node)]
    return result["status"], result["reason"], result["code"]


def test_the_agent_daemonset_runs_on_both_nodes_and_doctor_cluster_has_rows_for_both(
        agents: AgentRelease, tmp_path: Path) -> None:
    for node in (NODE_NAME, NODE2_NAME):
        pod = agents.agent_pod(node)
        assert pod is not None and pod["spec"]["nodeName"] == node, agents.describe()
    assert agents.agent_pod(NODE2_NAME)["status"]["podIP"] == agents.nodes[1].link.node_ip  # host network
    found, document = doctor(agents, tmp_path, "host.listeners", "nfs.client", "netpath.mysql")
    assert {NODE_NAME, NODE2_NAME} <= set(document["nodes"])
    for node in (NODE_NAME, NODE2_NAME):
        for check in ("host.listeners", "nfs.client", "netpath.mysql"):
            assert (check, node) in found, f"no row for {check}@{node}: {sorted(found)}"
        assert row(found, "nfs.client", node)[:2] == ("ok", "none"), found[("nfs.client", node)]["summary"]
        assert row(found, "netpath.mysql", node)[:2] == ("ok", "none"), found[("netpath.mysql", node)]["summary"]
    # each agent tested from a pod of its own node
    assert PINNED in json.dumps(found[("netpath.mysql", NODE2_NAME)]["details"])
    assert PINNED not in json.dumps(found[("netpath.mysql", NODE_NAME)]["details"])


def test_mount_helper_hidden_on_node_2_fails_nfs_client_there_only(agents: AgentRelease, two_nodes: SecondNode,
                                                                  tmp_path: Path) -> None:
    """Break: /sbin/mount.nfs absent in node 2's mount namespace (an overlay with a whiteout), as on a node
    without nfs-common; the host and node 1 still have it. nfs.client fails on node 2 only; fix: back; passes.
    The agent pod on node 2 is restarted each time (a container's view of hostPath is taken at its start)."""
    node1, node2 = two_nodes.nodes
    node2.hide(MOUNT_HELPER)
    try:
        assert not node2.sees(MOUNT_HELPER) and node1.sees(MOUNT_HELPER)
        assert Path(MOUNT_HELPER).exists()  # the host's own view is untouched
        restart_agent(agents, node2)
        found, _ = doctor(agents, tmp_path / "broken", "nfs.client")
        assert row(found, "nfs.client", NODE2_NAME) == ("fail", "missing", "SB5041"), \
            found[("nfs.client", NODE2_NAME)]["summary"]
        assert row(found, "nfs.client", NODE_NAME)[:2] == ("ok", "none"), found[("nfs.client", NODE_NAME)]["summary"]
    finally:
        node2.unhide(MOUNT_HELPER)
    assert node2.sees(MOUNT_HELPER)
    restart_agent(agents, node2)
    found, _ = doctor(agents, tmp_path / "fixed", "nfs.client")
    for node in (NODE_NAME, NODE2_NAME):
        assert row(found, "nfs.client", node)[:2] == ("ok", "none"), found[("nfs.client", node)]["summary"]


@pytest.mark.parametrize("broken", [NODE2_NAME, NODE_NAME])
def test_iptables_drop_to_mysql_in_one_nodes_namespace_fails_netpath_there_only(
        agents: AgentRelease, two_nodes: SecondNode, broken: str, tmp_path: Path) -> None:
    """Break: DROP to MariaDB (HOST_IP:port) in one node's network namespace (its pods' traffic is forwarded
    there, its own leaves there). netpath.mysql times out on that node, passes on the other; rule removed:
    passes on both."""
    cluster = two_nodes.cluster
    node = {n.name: n for n in two_nodes.nodes}[broken]
    other = NODE_NAME if broken == NODE2_NAME else NODE2_NAME
    rule = ["-d", cluster.host_ip, "-p", "tcp", "--dport", str(cluster.servers["mysql"].port), "-j", "DROP"]
    inside = ["nsenter", f"--net={node.link.netns_path}", "iptables", "-w"]
    for chain in ("FORWARD", "OUTPUT"):
        subprocess.run([*inside, "-I", chain, *rule], check=True)
    try:
        found, _ = doctor(agents, tmp_path / "broken", "netpath.mysql")
        status, reason, _ = row(found, "netpath.mysql", broken)
        assert (status, reason) == ("fail", "timeout"), found[("netpath.mysql", broken)]["summary"]
        assert row(found, "netpath.mysql", other)[:2] == ("ok", "none"), found[("netpath.mysql", other)]["summary"]
    finally:
        for chain in ("FORWARD", "OUTPUT"):
            subprocess.run([*inside, "-D", chain, *rule], check=True)
    found, _ = doctor(agents, tmp_path / "fixed", "netpath.mysql")
    for name in (NODE_NAME, NODE2_NAME):
        assert row(found, "netpath.mysql", name)[:2] == ("ok", "none"), found[("netpath.mysql", name)]["summary"]
