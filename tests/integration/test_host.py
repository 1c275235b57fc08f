"""host.* checks against this real machine: its real CPU/memory/disk, and real listening sockets.

The services' ports are stand-in listener processes (tests/lab/listener.py) on free ports, bound to
0.0.0.0 or 127.0.0.1, with the credentials file's ports pointed at them; the real MariaDB/MongoDB/RabbitMQ
servers are exercised by their own layers' tests. Credentials Host 127.0.0.1 is "this host" (is_local);
server_ip is this machine's real non-loopback address, so a 127.0.0.1-only listener is unreachable for pods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from sbops.context import primary_ip
from tests.lab.common import free_port
from tests.lab.env import LabEnv
from tests.lab.listener import ListenerProc

SERVICES = ("mysql", "mongodb", "rabbitmq", "rabbitmq-management", "nfs")
REMOTE = "198.51.100.7"  # TEST-NET-2: never this machine


class HostLab:
    """One stand-in listener per StackBill port, and a LabEnv pointing at them."""

    def __init__(self, root: Path) -> None:
        self.env = LabEnv(root)
        self.server_ip = primary_ip()
        self.env.set("server_ip", self.server_ip)
        self.ports = {name: free_port("0.0.0.0") for name in SERVICES}
        self.procs: dict[str, ListenerProc] = {}
        self.hosts = {name: "127.0.0.1" for name in SERVICES}
        self.write_credentials()

    def write_credentials(self) -> None:
        p, h = self.ports, self.hosts
        self.env.service("mysql", host=h["mysql"], port=p["mysql"], password="pw-mysql-123")
        self.env.service("mongodb", host=h["mongodb"], port=p["mongodb"], password="pw-mongo-123")
        self.env.service("rabbitmq", host=h["rabbitmq"], port=p["rabbitmq"], password="pw-rabbit-123",
                         management=f"http://{h['rabbitmq-management']}:{p['rabbitmq-management']}")
        self.env.set("nfs.port", p["nfs"])

    def listen(self, name: str, bind: str = "0.0.0.0") -> None:
        self.stop(name)
        self.procs[name] = ListenerProc(bind, self.ports[name], self.env.root / f"{name}.log").start()

    def reset(self, root: Path) -> None:
        """Every service listening on 0.0.0.0 on this host again; a fresh LabEnv under `root`."""
        self.env = LabEnv(root)
        self.env.set("server_ip", self.server_ip)
        self.hosts = {name: "127.0.0.1" for name in SERVICES}
        self.write_credentials()
        for name in SERVICES:
            if name not in self.procs or self.procs[name].host != "0.0.0.0":
                self.listen(name)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc:
            proc.stop()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture(scope="module")
def shared_host_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostLab]:
    lab = HostLab(tmp_path_factory.mktemp("host"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def host_lab(shared_host_lab: HostLab, tmp_path: Path) -> HostLab:
    """The shared listeners, restored to all-on-0.0.0.0 (only the ones a test changed are restarted)."""
    shared_host_lab.reset(tmp_path)
    return shared_host_lab


# -- host.resources --------------------------------------------------------------------------------
def test_resources_ok_when_machine_meets_minimums(tmp_path: Path) -> None:
    env = LabEnv(tmp_path).set("host.min_cpus", 1).set("host.min_memory_gb", 1).set("host.min_disk_gb", 1)
    result = env.check("host.resources")
    assert (result["code"], result["status"], result["reason"]) == ("SB1001", "ok", "none")
    assert result["details"]["cpus"] == os.cpu_count()
    assert result["fix"] is None


def test_resources_warn_degraded_listing_what_is_short(tmp_path: Path) -> None:
    memory = psutil.virtual_memory().total / 1024**3
    free = psutil.disk_usage("/").free / 1024**3
    env = LabEnv(tmp_path).set("host.min_cpus", (os.cpu_count() or 1) + 1)
    env.set("host.min_memory_gb", int(memory) + 8).set("host.min_disk_gb", int(free) + 50).set("host.disk_path", "/")
    result = env.check("host.resources")
    assert (result["code"], result["status"], result["reason"]) == ("SB1002", "warn", "degraded")
    assert len(result["details"]["short"]) == 3


def test_resources_only_disk_short(tmp_path: Path) -> None:
    free = psutil.disk_usage(str(tmp_path)).free / 1024**3
    env = LabEnv(tmp_path).set("host.min_cpus", 1).set("host.min_memory_gb", 1)
    env.set("host.min_disk_gb", int(free) + 50).set("host.disk_path", str(tmp_path))
    result = env.check("host.resources")
    assert (result["code"], result["status"], result["reason"]) == ("SB1002", "warn", "degraded")
    assert result["details"]["short"] == [s for s in result["details"]["short"] if "free on" in s]


# -- host.listeners --------------------------------------------------------------------------------
def test_listeners_ok_with_evidence(host_lab: HostLab) -> None:
    result = host_lab.env.check("host.listeners")
    assert (result["code"], result["status"], result["reason"]) == ("SB1010", "ok", "none")
    mysql = result["details"]["services"]["mysql"]
    assert mysql["port"] == host_lab.ports["mysql"] and mysql["listening"]
    pid = host_lab.procs["mysql"].pid
    assert any(p.endswith(f"/{pid}") for p in mysql["processes"])


def test_listeners_fail_not_running_when_a_service_stops(host_lab: HostLab) -> None:
    host_lab.stop("mongodb")
    host_lab.stop("nfs")
    result = host_lab.env.check("host.listeners")
    assert (result["code"], result["status"], result["reason"]) == ("SB1011", "fail", "not_running")
    assert result["details"]["missing"] == ["mongodb", "nfs"]
    assert result["details"]["services"]["mongodb"]["port"] == host_lab.ports["mongodb"]


def test_listeners_management_port_from_credentials_url(host_lab: HostLab) -> None:
    host_lab.stop("rabbitmq-management")
    result = host_lab.env.check("host.listeners")
    assert (result["code"], result["status"], result["reason"]) == ("SB1011", "fail", "not_running")
    assert result["details"]["missing"] == ["rabbitmq-management"]


def test_listeners_remote_service_is_not_applicable(host_lab: HostLab) -> None:
    host_lab.stop("mongodb")
    host_lab.hosts["mongodb"] = REMOTE
    host_lab.write_credentials()
    result = host_lab.env.check("host.listeners")
    assert (result["code"], result["status"], result["reason"]) == ("SB1010", "ok", "none")
    assert "not_applicable" in result["details"]["services"]["mongodb"]["status"]


# -- host.bind-address -----------------------------------------------------------------------------
def _require_real_ip() -> None:
    """These tests need an address pods could use; a machine without one cannot run them: that is a failure of
    the test machine, said plainly, never a silent skip."""
    if primary_ip().startswith("127."):
        pytest.fail("this machine has no non-loopback IPv4 address: host.bind-address cannot be tested here", pytrace=False)


needs_real_ip = pytest.mark.usefixtures("real_ip")


@pytest.fixture
def real_ip() -> None:
    _require_real_ip()


@needs_real_ip
def test_bind_address_ok_on_wildcard(host_lab: HostLab) -> None:
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1020", "ok", "none")


@needs_real_ip
def test_bind_address_ok_on_server_ip(host_lab: HostLab) -> None:
    host_lab.listen("mysql", host_lab.server_ip)
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1020", "ok", "none")
    assert result["details"]["services"]["mysql"]["addresses"] == [host_lab.server_ip]


@needs_real_ip
def test_bind_address_mysql_loopback_names_mysql_config(host_lab: HostLab) -> None:
    host_lab.listen("mysql", "127.0.0.1")
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1021", "fail", "misconfigured")
    assert result["details"]["unreachable"] == ["mysql"]
    assert result["fix"] == "mysql-config"


@needs_real_ip
def test_bind_address_mongodb_loopback_names_mongodb_config(host_lab: HostLab) -> None:
    host_lab.listen("mongodb", "127.0.0.1")
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1021", "fail", "misconfigured")
    assert result["fix"] == "mongodb-config"


@needs_real_ip
def test_bind_address_rabbitmq_loopback_has_no_fix(host_lab: HostLab) -> None:
    host_lab.listen("rabbitmq", "127.0.0.1")
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1021", "fail", "misconfigured")
    assert result["details"]["unreachable"] == ["rabbitmq"]
    assert result["fix"] is None


def test_bind_address_not_applicable_for_remote_services(host_lab: HostLab) -> None:
    for name in ("mysql", "mongodb", "rabbitmq"):
        host_lab.listen(name, "127.0.0.1")  # would be a failure if these were the credentials' services
        host_lab.hosts[name] = REMOTE
    host_lab.write_credentials()
    result = host_lab.env.check("host.bind-address")
    assert (result["code"], result["status"], result["reason"]) == ("SB1022", "skip", "not_applicable")


def test_doctor_host_layer_runs_all_of_them(host_lab: HostLab) -> None:
    found = host_lab.env.doctor("host.*")
    # host.kubelet and host.containerd: tests/integration/test_node_checks.py
    assert set(found) == {"host.resources", "host.listeners", "host.bind-address", "host.kubelet", "host.containerd"}
    assert found["host.listeners"]["status"] == "ok"
