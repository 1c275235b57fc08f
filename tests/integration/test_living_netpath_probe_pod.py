"""The netpath checks from a probe pod on the living cluster (tests/lab/living.py): sbops is told that no
containerd state is visible (as when it runs elsewhere with a kubeconfig), so with setting
`netpath.probe_image` it starts one short-lived pod from the lab's sb-core image (busybox), which the real
kubelet pulls from the ECR stand-in with the pull secret, runs, and sbops reads and deletes.

Breakages are real: MariaDB bound to 127.0.0.1, an image the registry does not have. Nothing is mocked.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding, status
from tests.lab.images import image_ref
from tests.lab.living import LivingCluster

ALL = ("netpath.mysql", "netpath.mongodb", "netpath.rabbitmq", "netpath.nfs", "netpath.services")
NS = lab.NAMESPACE
SELECTOR = "app.kubernetes.io/managed-by=sbops,app.kubernetes.io/component=netpath-probe"


def probe_pod_env(env: LabEnv, image: str) -> LabEnv:
    """sbops as if it ran off the node: no containerd state; a probe pod image; time for a pod to start."""
    return env.set("netpath.containerd_state", "/nonexistent/containerd").set("netpath.probe_image", image) \
        .set("timeout", 20)


def probe_pods(living: LivingCluster) -> list[str]:
    from kubernetes import client

    pods = client.CoreV1Api(living.kube.api()).list_namespaced_pod(NS, label_selector=SELECTOR).items
    return [p.metadata.name for p in pods]


def gone(living: LivingCluster, within: float = 20.0) -> list[str]:
    """The probe pods still in the API after `within` seconds ([] once deletion has finished)."""
    deadline = time.monotonic() + within
    left = probe_pods(living)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = probe_pods(living)
    return left


def pod_of(result: dict[str, Any]) -> str:
    return result["details"]["probe_pod"]["name"]


def test_healthy_paths_pass_from_one_probe_pod_that_is_gone_afterwards(living: LivingCluster,
                                                                        living_env: LabEnv) -> None:
    found = probe_pod_env(living_env, image_ref("sb-core")).doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}, \
        {cid: found[cid]["summary"] for cid in ALL}
    assert [found[c]["code"] for c in ALL] == ["SB8109", "SB8129", "SB8149", "SB8160", "SB8180"]
    names = {pod_of(found[cid]) for cid in ALL}
    assert len(names) == 1, names  # one probe pod serves the run's five checks
    name = names.pop()
    mysql = found["netpath.mysql"]
    assert mysql["details"]["via"] == "probe pod" and "(probe pod)" in mysql["summary"] and name in mysql["summary"]
    assert "login is not tested" in mysql["summary"]
    assert [a["address"] for a in mysql["details"]["attempts"]] == [f"{living.host_ip}:{living.servers['mysql'].port}"]
    assert mysql["details"]["probe_pod"]["deleted"] is True
    assert re.match(r"^10\.42\.", mysql["details"]["probe_pod"]["pod_ip"])  # it ran in the pod network
    assert len(found["netpath.services"]["details"]["attempts"]) == 4
    assert gone(living) == []


def test_mysql_bound_to_loopback_is_refused_from_the_probe_pod(living: LivingCluster, living_env: LabEnv) -> None:
    mysql = living.servers["mysql"]
    dropin = mysql.conf_d / "stackbill.cnf"
    dropin.write_text(re.sub(r"(?m)^bind-address\s*=.*$", "bind-address = 127.0.0.1", dropin.read_text()))
    mysql.stop()
    mysql.start()
    result = probe_pod_env(living_env, image_ref("sb-core")).check("netpath.mysql")
    assert finding(result) == ("SB8101", "fail", "refused"), result["summary"]
    assert result["details"]["via"] == "probe pod" and "(probe pod)" in result["summary"]
    assert [a["address"] for a in result["details"]["attempts"]] == [f"{living.host_ip}:{mysql.port}"]
    assert gone(living) == []


def test_a_firewall_dropping_the_nodes_traffic_to_rabbitmq_times_out_in_the_probe_pod(
        living: LivingCluster, living_env: LabEnv) -> None:
    import subprocess

    port = living.servers["rabbitmq"].port
    rule = ["INPUT", "-i", living.node.link.host_if, "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        found = probe_pod_env(living_env, image_ref("sb-core")).doctor("netpath.rabbitmq", "netpath.mysql")
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)
    rabbit = found["netpath.rabbitmq"]
    assert finding(rabbit) == ("SB8142", "fail", "timeout"), rabbit["summary"]
    assert rabbit["details"]["attempts"][0]["ms"] >= 1900  # nc -w 2 waited its two seconds
    assert rabbit["duration_seconds"] < 20
    assert status(found["netpath.mysql"]) == ("ok", "none")  # the same pod, another port: not dropped
    assert pod_of(rabbit) == pod_of(found["netpath.mysql"])
    assert gone(living) == []


def test_an_image_that_does_not_exist_is_a_skip_and_its_pod_is_deleted(living: LivingCluster,
                                                                       living_env: LabEnv) -> None:
    missing = image_ref("sb-core", tag="no-such-tag")
    found = probe_pod_env(living_env, missing).doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "image_pull") for cid in ALL}, \
        {cid: found[cid]["summary"] for cid in ALL}
    assert [found[c]["code"] for c in ALL] == ["SB8116", "SB8136", "SB8156", "SB8176", "SB8196"]
    assert missing in found["netpath.mysql"]["summary"]
    assert found["netpath.mysql"]["details"]["probe_pod"]["deleted"] is True
    assert gone(living) == []


def test_without_the_setting_the_checks_still_skip_for_want_of_access(living: LivingCluster,
                                                                      living_env: LabEnv) -> None:
    living_env.set("netpath.containerd_state", "/nonexistent/containerd")
    found = living_env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "no_access") for cid in ALL}
    assert "netpath.probe_image" in found["netpath.mysql"]["summary"]
    assert probe_pods(living) == []


def rules_of(name: str, kind: str) -> list[dict]:
    import yaml

    from tests.lab.env import REPO

    docs = yaml.safe_load_all((REPO / "deploy" / "rbac" / name).read_text())
    return [d for d in docs if d and d["kind"] == kind][0]["rules"]


def test_the_documented_rbac_is_enough_and_the_doctors_alone_is_a_skip_naming_the_verb(
        living: LivingCluster, living_env: LabEnv) -> None:
    """A token bound to the doctor's read-only rules may not create pods: a skip (no_access) that says which
    verb and what to grant. Bound to those plus deploy/rbac/sbops-netpath-probe.yaml's: the probe pod runs."""
    doctor = rules_of("sbops-doctor.yaml", "ClusterRole")
    env = probe_pod_env(living_env, image_ref("sb-core"))
    env.set("kubeconfig", str(living.kube.token_kubeconfig("user2", doctor)))
    found = env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "no_access") for cid in ALL}, \
        {cid: found[cid]["summary"] for cid in ALL}
    assert [found[c]["code"] for c in ALL] == ["SB8115", "SB8135", "SB8155", "SB8175", "SB8195"]
    assert "may not create pods" in found["netpath.mysql"]["summary"]
    assert probe_pods(living) == []

    env.set("kubeconfig", str(living.kube.token_kubeconfig(
        "user3", doctor + rules_of("sbops-netpath-probe.yaml", "Role"))))
    found = env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}, \
        {cid: found[cid]["summary"] for cid in ALL}
    assert gone(living) == []
