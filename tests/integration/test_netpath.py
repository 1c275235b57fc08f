"""The netpath layer against real network namespaces (tests/lab/podnet.py): a process in its own namespace,
a veth to a lab address of the host (10.98.N.1, standing for the node's bridge address), real servers on the
host, real iptables rules on that veth, and the real `sbops doctor` entering the namespace with setns.

What stands in: containerd's bookkeeping of the sandbox (config.json + init.pid in a temp state directory,
naming the lab cluster's seeded sb-core pod, whose Running/Ready status the kube lab writes). Everything on
the network path is real. The checks: "netpath.mysql", "netpath.mongodb", "netpath.rabbitmq", "netpath.nfs",
"netpath.services".

What a real pod on the living cluster shows is in test_living_netpath.py (MariaDB bound to loopback and the
mysql-config fix, a firewall dropping RabbitMQ, nfsd stopped, a Service without pods, no pod at all); this
file keeps what those do not: MySQL's blocked host (1129) and wrong passwords, RabbitMQ's and MongoDB's
logins, and Services reached through DNAT rules.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab.common import free_port
from tests.lab.env import LabEnv, fix_json, status
from tests.lab.kube import NAMESPACE, helm_release_secret, pod_name
from tests.lab.mariadb import LAB_PASSWORD, MariaDB
from tests.lab.mongodb import MONGO_PASSWORD
from tests.lab.podnet import PodNet
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD
from tests.lab.rabbitmq import RabbitMQ

ALL = ("netpath.mysql", "netpath.mongodb", "netpath.rabbitmq", "netpath.nfs", "netpath.services")
POD = pod_name("sb-core")


@pytest.fixture(scope="module")
def rabbit_all(tmp_path_factory) -> Iterator[RabbitMQ]:
    """A seeded RabbitMQ whose AMQP listener is on 0.0.0.0, as on a StackBill host."""
    server = RabbitMQ(tmp_path_factory.mktemp("rabbitmq-np"), bind="0.0.0.0").start()
    server.seed_stackbill(RABBIT_PASSWORD)
    yield server
    server.destroy()


def values(net: PodNet, **ports: int) -> dict[str, Any]:
    """The Helm values the pods get: every service at the node's address (the veth's host end)."""
    section = {"mysql": "mysql", "mongodb": "mongo", "rabbitmq": "rabbitmq"}
    out: dict[str, Any] = {"domain": "stackbill.example.com"}
    for name, port in ports.items():
        if name == "nfs":
            out["nfs"] = {"server": net.host_ip, "port": port, "path": "/data/stackbill"}
        else:
            out[section[name]] = {"ip": net.host_ip, "port": port, "username": "stackbill", "password": "in-values"}
    return {"global": out}


def netpath_env(root: Path, net: PodNet, kube, core, **ports: int) -> LabEnv:
    """sbops pointed at the lab cluster, a containerd state naming the sb-core pod's sandbox, and a Helm
    release (revision 2) whose values put the services at the node's address."""
    pod = core.read_namespaced_pod(POD, NAMESPACE).to_dict()
    state = root / "containerd-state"
    net.write_bundle(state, pod)
    core.create_namespaced_secret(NAMESPACE, helm_release_secret("stackbill", NAMESPACE, 2,
                                                                 config=values(net, **ports)))
    env = LabEnv(root).set("kubeconfig", str(kube.kubeconfig)).set("server_ip", net.host_ip)
    env.set("netpath.containerd_state", f"{root / 'no-such-dir'}:{state}").set("timeout", 5)
    return env


def tried(result: dict[str, Any]) -> list[str]:
    return [a["address"] for a in result["details"]["attempts"]]


# -- MySQL: authentication, and a host MySQL blocked (1129) --------------------------------------------
def test_mysql_blocks_the_pod_and_flush_hosts_unblocks_it(podnet, kube, core, mariadb_factory, tmp_path):
    """A server with its host cache on (no stackbill.cnf: MariaDB counts errors only while it resolves names),
    max_connect_errors 1, and one connection from the pod that hangs up after the greeting: MySQL blocks the
    pod's address (1129), not sbops's."""
    server: MariaDB = mariadb_factory(stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)  # name resolution on
    env = netpath_env(tmp_path, podnet, kube, core, mysql=server.port)
    env.service("mysql", host=podnet.host_ip, port=server.port, password=LAB_PASSWORD + "-wrong")
    env.set("mysql.admin_socket", str(server.socket))
    result = env.check("netpath.mysql")
    assert (result["code"], *status(result)) == ("SB8106", "fail", "auth_failed") and result["fix"] == "mysql-user"

    env.service("mysql", host=podnet.host_ip, port=server.port, password=LAB_PASSWORD)
    server.sql("SET GLOBAL max_connect_errors = 1")
    podnet.hang_up_after_greeting(podnet.host_ip, server.port)
    result = env.check("netpath.mysql")
    assert (result["code"], *status(result)) == ("SB8104", "fail", "host_blocked")
    assert result["fix"] == "mysql-blocked-host"

    code, out = fix_json(env, "mysql-blocked-host")
    assert code == 0, out
    assert status(env.check("netpath.mysql")) == ("ok", "none")


# -- RabbitMQ: a login from the pod (a firewall's drop is in test_living_netpath.py) -----------------------
def test_rabbitmq_logs_in_from_the_pod_and_a_wrong_password_is_auth_failed(podnet, kube, core, rabbit_all, tmp_path):
    env = netpath_env(tmp_path, podnet, kube, core, rabbitmq=rabbit_all.port)
    env.service("rabbitmq", host=podnet.host_ip, port=rabbit_all.port, password=RABBIT_PASSWORD)
    result = env.check("netpath.rabbitmq")
    assert (result["code"], *status(result)) == ("SB8140", "ok", "none")
    assert "RabbitMQ" in result["summary"] and result["details"]["attempts"][0]["login"] is True

    env.service("rabbitmq", host=podnet.host_ip, port=rabbit_all.port, password="not-the-password")
    result = env.check("netpath.rabbitmq")
    assert (result["code"], *status(result)) == ("SB8144", "fail", "auth_failed")
    assert result["fix"] == "rabbitmq-user"


# -- MongoDB ---------------------------------------------------------------------------------------------
def test_mongodb_answers_and_logs_in_from_the_pod(podnet, kube, core, mongo_shared, tmp_path):
    env = netpath_env(tmp_path, podnet, kube, core, mongodb=mongo_shared.port)
    env.service("mongodb", host=podnet.host_ip, port=mongo_shared.port, password=MONGO_PASSWORD)
    result = env.check("netpath.mongodb")
    assert (result["code"], *status(result)) == ("SB8120", "ok", "none")
    assert result["details"]["attempts"][0]["login"] is True

    env.service("mongodb", host=podnet.host_ip, port=mongo_shared.port, password="wrong-password-1")
    result = env.check("netpath.mongodb")
    assert (result["code"], *status(result)) == ("SB8124", "fail", "auth_failed") and result["fix"] == "mongodb-user"

    rule = podnet.drop(mongo_shared.port)
    result = env.check("netpath.mongodb")
    assert (result["code"], *status(result)) == ("SB8122", "fail", "timeout")
    podnet.remove(rule)


# -- the routed Services, through kube-proxy-style DNAT rules ----------------------------------------------
class Answering(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_routed_services_answer_through_their_cluster_ips(podnet, kube, core, tmp_path):
    server = http.server.ThreadingHTTPServer((podnet.host_ip, 0), Answering)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = netpath_env(tmp_path, podnet, kube, core)
        routed = {"sb-admin": 80, "sb-ui": 80, "sb-kong": 8000, "sb-core": 8080}
        ips = {name: core.read_namespaced_service(name, NAMESPACE).spec.cluster_ip for name in routed}
        rules = {name: podnet.dnat(ips[name], port, server.server_address[1]) for name, port in routed.items()}
        result = env.check("netpath.services")
        assert (result["code"], *status(result)) == ("SB8180", "ok", "none"), result
        assert sorted(tried(result)) == sorted(f"{ips[n]}:{p}" for n, p in routed.items())

        podnet.remove(rules["sb-core"])  # sb-core's ClusterIP now leads to a closed port of the node
        podnet.dnat(ips["sb-core"], 8080, free_port(podnet.host_ip))
        result = env.check("netpath.services")
        assert (result["code"], *status(result)) == ("SB8181", "fail", "refused")
        assert "sb-core" in result["summary"] and result["details"]["pod"]["name"] == POD
    finally:
        server.shutdown()
        server.server_close()


# -- honest skips (no pod at all, and no containerd state: test_living_netpath.py) ---------------------------
def test_a_sandbox_whose_pod_left_the_api_is_not_used(podnet, kube, core, tmp_path):
    env = netpath_env(tmp_path, podnet, kube, core, nfs=2049)
    env.service("mysql", host=podnet.host_ip, port=3306, password=LAB_PASSWORD)
    core.delete_namespaced_pod(POD, NAMESPACE, grace_period_seconds=0)  # the sandbox's pod is gone from the API
    found = env.doctor(*ALL)
    assert {cid: status(found[cid]) for cid in ALL} == {cid: ("skip", "not_running") for cid in ALL}
    assert "no such pod in the API" in found["netpath.nfs"]["summary"]
