"""The netpath layer on the living cluster (tests/lab/living.py): sbops finds a real pod sandbox in the node's
containerd state, enters its network namespace and connects to what the Helm release's values name, through
the CNI bridge, the node's masquerade, the host's INPUT chain and kube-proxy's rules, as pod traffic goes.

Breakages are a user's: MariaDB's drop-in edited to bind 127.0.0.1, a host firewall rule dropping the node's
traffic to RabbitMQ, nfsd stopped, a Deployment scaled to zero behind a routed Service, every pod gone.
Nothing is mocked.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding, fix_json, status
from tests.lab.living import LivingCluster

ALL = ("netpath.mysql", "netpath.mongodb", "netpath.rabbitmq", "netpath.nfs", "netpath.services")
NS = lab.NAMESPACE


def running_pods(living: LivingCluster) -> set[str]:
    return {p["metadata"]["name"] for p in living.pods() if p["status"].get("phase") == "Running"}


def tried(result: dict[str, Any]) -> list[str]:
    return [a["address"] for a in result["details"]["attempts"]]


def scale(living: LivingCluster, name: str, replicas: int) -> None:
    from kubernetes import client

    client.AppsV1Api(living.kube.api()).patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": replicas}})


def test_every_path_from_a_real_pod_passes(living: LivingCluster, living_env: LabEnv) -> None:
    found = living_env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}
    mysql = found["netpath.mysql"]
    assert mysql["details"]["pod"]["name"] in running_pods(living)  # a pod the kubelet runs, found in containerd
    assert tried(mysql) == [f"{living.host_ip}:{living.servers['mysql'].port}"]
    assert mysql["details"]["target"]["source"] == "helm values"
    assert tried(found["netpath.nfs"]) == [f"{living.host_ip}:2049"]
    assert len(tried(found["netpath.services"])) == 4  # sb-admin, sb-ui, sb-core, sb-kong at their ClusterIPs


def test_mysql_bound_to_loopback_is_refused_from_pods_and_mysql_config_rebinds_it(
        living: LivingCluster, living_env: LabEnv) -> None:
    """Someone "hardened" MariaDB: its drop-in now binds 127.0.0.1. The host's own checks still log in over the
    socket, but every pod is refused, and sb-core goes NotReady. host.bind-address and netpath.mysql agree on the
    cause and the fix; after `sbops fix mysql-config --restart` the pods get through again."""
    mysql = living.servers["mysql"]
    dropin = mysql.conf_d / "stackbill.cnf"
    dropin.write_text(re.sub(r"(?m)^bind-address\s*=.*$", "bind-address = 127.0.0.1", dropin.read_text()))
    mysql.stop()
    mysql.start()

    found = living_env.doctor("netpath.mysql", "host.bind-address")
    result, host = found["netpath.mysql"], found["host.bind-address"]
    assert finding(result) == ("SB8101", "fail", "refused")
    assert status(host) == ("fail", "misconfigured")
    assert result["fix"] == host["fix"] == "mysql-config"
    assert tried(result) == [f"{living.host_ip}:{mysql.port}"]

    code, doc = fix_json(living_env, "mysql-config", "--restart")
    assert code == 0, doc
    found = living_env.doctor("netpath.mysql", "host.bind-address")
    assert finding(found["netpath.mysql"]) == ("SB8100", "ok", "none")
    assert status(found["host.bind-address"]) == ("ok", "none")
    living.wait_ready()  # sb-core's readiness (a MySQL login from the pod) passes again


def test_a_firewall_dropping_the_nodes_traffic_to_rabbitmq_times_out_within_budget(
        living: LivingCluster, living_env: LabEnv) -> None:
    port = living.servers["rabbitmq"].port
    rule = ["INPUT", "-i", living.node.link.host_if, "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        living_env.set("timeout", 4)
        started = time.monotonic()
        result = living_env.check("netpath.rabbitmq")
        took = time.monotonic() - started
        assert finding(result) == ("SB8142", "fail", "timeout")
        assert tried(result) == [f"{living.host_ip}:{port}"]
        assert result["duration_seconds"] <= 4.5, result["duration_seconds"]
        assert took < 15, took  # the whole sbops process, start-up included
        assert status(living_env.check("rabbitmq.auth")) == ("ok", "none")  # from the host it still works
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)
    assert status(living_env.check("netpath.rabbitmq")) == ("ok", "none")


def test_nfsd_stopped_is_refused_from_pods(living: LivingCluster, living_env: LabEnv) -> None:
    living.nfs.stop()
    try:
        found = living_env.doctor("netpath.nfs", "nfs.server")
        assert finding(found["netpath.nfs"]) == ("SB8161", "fail", "refused")
        assert status(found["nfs.server"])[0] == "fail"  # the host-side check agrees
    finally:
        living.nfs.start_server()
    assert status(living_env.check("netpath.nfs")) == ("ok", "none")


def test_a_routed_service_without_pods_is_refused_through_kube_proxy(living: LivingCluster, living_env: LabEnv) -> None:
    """sb-kong scaled to zero: its Service has no endpoints, and kube-proxy's rule rejects the connection."""
    scale(living, "sb-kong", 0)
    deadline = time.monotonic() + 60
    while any(p["metadata"]["labels"].get("app") == "sb-kong" for p in living.pods()) and time.monotonic() < deadline:
        time.sleep(0.5)
    result = living_env.check("netpath.services")
    assert status(result) == ("fail", "refused"), result["summary"]
    assert "sb-kong" in result["summary"]


def test_without_stackbill_pods_another_pod_on_the_node_serves(living: LivingCluster, living_env: LabEnv) -> None:
    """Every pod on the node shares the path (the bridge, the masquerade, the host's INPUT): with StackBill's
    pods gone, the check uses another running pod and says which."""
    for name in ("sb-core", "sb-ui", "sb-admin", "sb-kong"):
        scale(living, name, 0)
    deadline = time.monotonic() + 60
    while living.pods() and time.monotonic() < deadline:
        time.sleep(0.5)
    result = living_env.check("netpath.mysql")
    assert status(result) == ("ok", "none")
    assert result["details"]["pod"]["namespace"] != NS and result["details"]["pod"]["name"] in result["summary"]


def test_no_pod_to_test_from_is_a_skip_never_a_pass(living: LivingCluster, living_env: LabEnv) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(living.kube.api())
    for ns in (NS, lab.ISTIO_NAMESPACE, lab.NFS_NAMESPACE):
        for deploy in apps.list_namespaced_deployment(ns).items:
            apps.patch_namespaced_deployment_scale(deploy.metadata.name, ns, {"spec": {"replicas": 0}})
    deadline = time.monotonic() + 90
    while any(living.pods(ns) for ns in (NS, lab.ISTIO_NAMESPACE, lab.NFS_NAMESPACE)) and time.monotonic() < deadline:
        time.sleep(0.5)
    found = living_env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "not_running") for cid in ALL}

    living_env.set("netpath.containerd_state", "/nonexistent/containerd")
    found = living_env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "no_access") for cid in ALL}
