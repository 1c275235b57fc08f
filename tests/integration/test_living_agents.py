"""sbops's chart (deploy/kubernetes/) in the living cluster (tests/lab/living.py): the image scripts/build-image
writes, imported into the node's containerd; `helm upgrade --install` of the chart (tests/lab/agentchart.py);
the agent DaemonSet's pod and the cluster Deployment's pod started, probed and marked Ready by the real kubelet;
`sbops doctor --cluster` (the real CLI, from the host with the admin kubeconfig) reading the node's rows from
the real agent through the API server's pod proxy; and a real Prometheus (Debian's, tests/lab/prometheus.py)
discovering both pods through the API server and scraping them through their `prometheus.io/*` annotations.

Breakages are an operator's: an agent rolled out with an image the node does not have, and the agent's port
firewalled from the API server's side. Each is seen with its reason on the node's rows, repaired, and seen
to pass again. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab.agentchart import (AGENT_PORT, CLUSTER_PORT, AgentRelease, install_agents, ready, results,
                                  uninstall)
from tests.lab.env import LabEnv
from tests.lab.living import NODE_NAME, LivingCluster, eventually

NODE_CHECKS = ("host.resources", "host.listeners", "host.bind-address", "host.kubelet", "host.containerd")
# The only capabilities the agent's process holds (the chart's agent.securityContext): CAP_SYS_PTRACE (19),
# CAP_SYS_ADMIN (21).
AGENT_CAPS = (1 << 19) | (1 << 21)


@pytest.fixture(scope="module")
def agents(living_cluster: LivingCluster) -> Iterator[AgentRelease]:
    """The chart installed once for this module (image build when not cached, import, install, Ready)."""
    started = time.monotonic()
    release = install_agents(living_cluster)
    print(f"\nsbops chart: {release.timings} (Ready {time.monotonic() - started:.1f}s after the call)", flush=True)
    try:
        yield release
    finally:
        uninstall(release)


@pytest.fixture
def healthy(agents: AgentRelease) -> AgentRelease:
    """The release as installed (a test's upgrade undone) with every pod Ready."""
    agents.upgrade()
    agents.wait_ready()
    return agents


def doctor_cluster(living: LivingCluster, root: Path, *args: str, timeout: float = 8) -> dict[str, Any]:
    """`sbops doctor --cluster --output json` from the host with the lab's admin kubeconfig."""
    env = LabEnv(root)
    env.set("kubeconfig", str(living.kubeconfig)).set("cluster.agent_timeout", timeout)
    proc = env.sbops("doctor", "--cluster", "--output", "json", "--layer", "host", "--check", "host.*", *args,
                     timeout=180)
    assert proc.returncode in (0, 3, 4), f"doctor --cluster exited {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def node_rows(document: dict[str, Any], node: str = NODE_NAME) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in document["checks"] if c.get("node") == node}


def agent_process(node_ip: str) -> int:
    """The agent's exporter process on this machine (host PID namespace), found by its --listen argument."""
    wanted = f"--listen={node_ip}:{AGENT_PORT}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if wanted in (proc / "cmdline").read_bytes().split(b"\0"):
                    return int(proc.name)
            except OSError:
                continue
    raise AssertionError(f"no process listens with {wanted.decode()}")


def test_agent_and_cluster_pods_run_ready_under_the_kubelet(healthy: AgentRelease, living_cluster: LivingCluster):
    agent = healthy.agent_pod(NODE_NAME)
    assert ready(agent), healthy.describe()
    assert agent["spec"]["hostNetwork"] and agent["spec"]["hostPID"]
    assert agent["status"]["podIP"] == living_cluster.node_ip  # host network: the node's own address
    [status] = agent["status"]["containerStatuses"]
    assert status["ready"] and status["imageID"], status
    cluster = healthy.cluster_pod()
    assert ready(cluster), healthy.describe()
    assert cluster["status"]["podIP"].startswith("10.42.0.")  # the CNI bridge's network
    assert cluster["spec"]["securityContext"]["runAsUser"] == 10001
    # The agent's process holds exactly the two capabilities the chart adds, nothing else, and no more after exec.
    pid = agent_process(living_cluster.node_ip)
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    assert int(fields["CapEff"], 16) == AGENT_CAPS and int(fields["CapBnd"], 16) == AGENT_CAPS, fields
    assert fields["NoNewPrivs"].strip() == "1"
    # It runs in the node's network namespace (host network), not the machine's.
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{living_cluster.node.pids['kubelet']}/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_doctor_cluster_shows_the_nodes_rows_from_the_agent_pod(healthy: AgentRelease, living_cluster: LivingCluster,
                                                                 tmp_path: Path):
    document = doctor_cluster(living_cluster, tmp_path / "ws")
    assert NODE_NAME in document["nodes"]
    rows = node_rows(document)
    assert set(NODE_CHECKS) <= set(rows), sorted(rows)
    # The node's kubelet answers at 127.0.0.1:10248 only inside the node's network namespace: ok here means the
    # check ran in the agent pod on the node, not on this machine (where nothing listens there).
    assert (rows["host.kubelet"]["status"], rows["host.kubelet"]["reason"]) == ("ok", "none"), rows["host.kubelet"]
    for check in NODE_CHECKS:
        assert rows[check]["code"] not in ("SB0020", "SB0021", "SB0022", "SB0023"), rows[check]
    # The listeners judged are the node's: StackBill's databases listen on the host (HOST_IP), none in the
    # node's network namespace, where the agent looked.
    listeners = rows["host.listeners"]["details"]
    assert "mysql" in listeners["missing"] and not listeners["services"]["mysql"]["listening"], listeners


def test_the_cluster_deployment_answers_with_its_service_account(healthy: AgentRelease):
    """The Deployment's /results (through the pod proxy): the Kubernetes layer, run in the pod with the
    ServiceAccount's bound token and the chart's RBAC (no kubeconfig in the pod)."""
    document = results(healthy, healthy.cluster_pod(), CLUSTER_PORT, layer="kubernetes")
    found = {c["id"]: c for c in document["checks"] if not c.get("added_as_related")}
    assert found and all(cid.startswith("k8s.") for cid in found), sorted(found)
    api = found["k8s.api"]
    assert (api["status"], api["reason"]) == ("ok", "none"), api
    assert not any(c["reason"] in ("access_denied", "no_credentials", "missing_credentials") for c in found.values()), \
        {cid: (c["status"], c["reason"], c["summary"]) for cid, c in found.items()}
    # The agent refuses a layer it does not serve: the parts are split as the chart says.
    agent = results(healthy, healthy.agent_pod(NODE_NAME), AGENT_PORT, layer="host")
    assert agent["node"] == NODE_NAME


def test_an_agent_without_its_image_is_an_error_on_the_nodes_rows_then_repaired(
        healthy: AgentRelease, living_cluster: LivingCluster, tmp_path: Path):
    """An agent rolled out with a tag the node does not have (pullPolicy Never): the kubelet reports
    ErrImageNeverPull, the pod is not Running, and every node row says so (AgentNotRunning, not_running).
    Rolling back to the good tag makes the rows the agent's own again."""
    healthy.upgrade({"image": {"tag": "0.0.0-not-built"}})

    def broken() -> dict[str, Any] | None:
        pod = healthy.agent_pod(NODE_NAME)
        waiting = [cs.get("state", {}).get("waiting", {}).get("reason") for cs in
                   (pod or {}).get("status", {}).get("containerStatuses", []) or []]
        return pod if pod and "ErrImageNeverPull" in waiting else None

    pod = eventually("the agent pod waits for an image", broken, bool, timeout=120)
    rows = node_rows(doctor_cluster(living_cluster, tmp_path / "broken"))
    for check in NODE_CHECKS:
        assert (rows[check]["status"], rows[check]["reason"], rows[check]["code"]) == \
            ("error", "not_running", "SB0021"), rows[check]
        assert pod["metadata"]["name"] in rows[check]["summary"]
    healthy.upgrade()
    healthy.wait_ready()
    rows = node_rows(doctor_cluster(living_cluster, tmp_path / "repaired"))
    assert (rows["host.kubelet"]["status"], rows["host.kubelet"]["reason"]) == ("ok", "none"), rows["host.kubelet"]


def test_an_agent_that_does_not_answer_is_a_timeout_on_its_rows_then_passes(
        healthy: AgentRelease, living_cluster: LivingCluster, tmp_path: Path):
    """The agent's port dropped, in the node's firewall, for traffic from the API server's address: the pod
    stays Running and Ready (the kubelet probes it from the node itself), but the pod proxy gets no answer.
    Every node row is an error with reason timeout; removing the rule brings the agent's rows back."""
    rule = ["INPUT", "-s", living_cluster.host_ip, "-p", "tcp", "--dport", str(AGENT_PORT), "-j", "DROP"]
    inside = ["nsenter", f"--net={living_cluster.node.link.netns_path}", "iptables", "-w"]
    subprocess.run([*inside, "-I", *rule], check=True, capture_output=True, timeout=30)
    try:
        rows = node_rows(doctor_cluster(living_cluster, tmp_path / "broken", timeout=4))
        assert ready(healthy.agent_pod(NODE_NAME))
        for check in NODE_CHECKS:
            assert (rows[check]["status"], rows[check]["reason"], rows[check]["code"]) == \
                ("error", "timeout", "SB0020"), rows[check]
    finally:
        subprocess.run([*inside, "-D", *rule], check=True, capture_output=True, timeout=30)
    rows = node_rows(doctor_cluster(living_cluster, tmp_path / "repaired"))
    assert (rows["host.kubelet"]["status"], rows["host.kubelet"]["reason"]) == ("ok", "none"), rows["host.kubelet"]


def test_a_real_prometheus_discovers_and_scrapes_both_pods_through_their_annotations(
        healthy: AgentRelease, living_cluster: LivingCluster, tmp_path: Path):
    """Debian's Prometheus on the host: kubernetes_sd_configs (role pod) against the lab API server with a
    ServiceAccount that may only read pods, the `prometheus.io/*` relabelling. Both sbops pods become healthy
    targets at the addresses their annotations name, and sbops's metrics come back from each of them."""
    from tests.lab.prometheus import PrometheusLab

    agent, cluster = healthy.agent_pod(NODE_NAME), healthy.cluster_pod()
    expected = {f"{agent['status']['podIP']}:{AGENT_PORT}": agent["metadata"]["name"],
                f"{cluster['status']['podIP']}:{CLUSTER_PORT}": cluster["metadata"]["name"]}
    prom = PrometheusLab(tmp_path / "prometheus", living_cluster).start()
    try:
        def healthy_targets() -> dict[str, dict[str, Any]]:
            return {t["labels"]["instance"]: t for t in prom.targets() if t["health"] == "up"}

        started = time.monotonic()
        try:
            up = eventually("both sbops pods scraped and up", healthy_targets,
                            lambda found: set(expected) <= set(found), timeout=120)
        except AssertionError:
            raise AssertionError(f"targets: {prom.targets()}\n{prom.log()}") from None
        print(f"\nprometheus: both targets up {time.monotonic() - started:.1f}s after start", flush=True)
        for instance, pod in expected.items():
            target = up[instance]
            assert target["labels"]["pod"] == pod and target["labels"]["namespace"] == healthy.namespace
            assert target["scrapeUrl"] == f"http://{instance}/metrics", target
            assert target["labels"]["node"] == NODE_NAME
        # Only annotated pods are targets: StackBill's own pods (no annotations) are dropped by the keep rule.
        assert {t["labels"]["namespace"] for t in prom.targets()} == {healthy.namespace}
        series = eventually("sbops_check_success from both pods",
                            lambda: prom.query('sbops_check_success{namespace="sbops"}'),
                            lambda found: {s["metric"]["pod"] for s in found} >= set(expected.values()), timeout=60)
        by_pod: dict[str, set[str]] = {}
        for sample in series:
            by_pod.setdefault(sample["metric"]["pod"], set()).add(sample["metric"]["layer"])
        assert by_pod[agent["metadata"]["name"]] <= {"host", "nfs", "netpath"}, by_pod
        assert "kubernetes" in by_pod[cluster["metadata"]["name"]], by_pod
        [kubelet] = prom.query(f'sbops_check_success{{check="host.kubelet",pod="{agent["metadata"]["name"]}"}}')
        assert kubelet["value"][1] == "1", kubelet
    finally:
        prom.stop()
