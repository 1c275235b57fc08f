"""Host judgements from tables: resources, listeners, bind addresses (no services, no psutil)."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes.host import Expected, Listener, judge_bind, judge_listeners, judge_resources, management_endpoint


def res(cpus=8, mem=16.0, disk=200.0):
    return {"cpus": cpus, "memory_gb": mem, "disk_path": "/", "disk_free_gb": disk}


@pytest.mark.parametrize("observed, status, short", [
    (res(), Status.OK, 0),
    (res(cpus=16, mem=64, disk=500), Status.OK, 0),
    (res(mem=15.6), Status.OK, 0),  # a "16 GB" VM: within the 5% tolerance
    (res(mem=15.0), Status.WARN, 1),
    (res(cpus=2), Status.WARN, 1),
    (res(disk=53), Status.WARN, 1),
    (res(cpus=2, mem=8, disk=10), Status.WARN, 3),
])
def test_judge_resources(observed, status, short):
    result = judge_resources(observed, 8, 16, 100)
    assert (result.code, result.status) == ("SB1002" if short else "SB1001", status)
    assert result.reason is (Reason.DEGRADED if short else Reason.NONE)
    assert len(result.details.get("short", [])) == short


def test_resources_evidence_names_what_is_short():
    result = judge_resources(res(cpus=2, disk=53), 8, 16, 100)
    assert result.code == "SB1002"
    assert result.details["short"] == ["2 vCPUs < 8", "53 GB free on / < 100 GB"]


def exp(name, port, local=True, host="127.0.0.1"):
    return Expected(name, host, port, local)


ALL = [exp("mysql", 3306), exp("mongodb", 27017), exp("rabbitmq", 5672), exp("rabbitmq-management", 15672),
       exp("nfs", 2049)]


def lis(*pairs):
    return [Listener(ip, port, 100 + port, f"proc{port}") for ip, port in pairs]


EVERYTHING = lis(("0.0.0.0", 3306), ("0.0.0.0", 27017), ("::", 5672), ("0.0.0.0", 15672), ("0.0.0.0", 2049),
                 ("::", 2049))


@pytest.mark.parametrize("expected, listeners, status, reason, missing", [
    (ALL, EVERYTHING, Status.OK, Reason.NONE, []),
    (ALL, [x for x in EVERYTHING if x.port != 27017], Status.FAIL, Reason.NOT_RUNNING, ["mongodb"]),
    (ALL, [x for x in EVERYTHING if x.port not in (2049, 15672)], Status.FAIL, Reason.NOT_RUNNING,
     ["rabbitmq-management", "nfs"]),
    (ALL, lis(("127.0.0.1", 3306), ("127.0.0.1", 27017), ("127.0.0.1", 5672), ("127.0.0.1", 15672),
              ("0.0.0.0", 2049)), Status.OK, Reason.NONE, []),  # loopback is listening (bind-address judges it)
    # mongodb on another host: not this host's business
    ([exp("mysql", 3306), exp("mongodb", 27017, local=False, host="10.0.0.9")], lis(("0.0.0.0", 3306)),
     Status.OK, Reason.NONE, []),
    ([exp("mysql", 3306, local=False), exp("nfs", 2049, local=False)], [], Status.SKIP, Reason.NOT_APPLICABLE, []),
    ([exp("mysql", 3306)], [], Status.FAIL, Reason.NOT_RUNNING, ["mysql"]),
])
def test_judge_listeners(expected, listeners, status, reason, missing):
    result = judge_listeners(expected, listeners)
    code = {Status.OK: "SB1010", Status.FAIL: "SB1011", Status.SKIP: "SB1012"}[status]
    assert (result.code, result.status, result.reason) == (code, status, reason)
    assert result.details.get("missing", []) == missing


def test_listeners_evidence_names_processes():
    result = judge_listeners([exp("mysql", 3306)], lis(("0.0.0.0", 3306)))
    assert result.details["services"]["mysql"]["processes"] == ["proc3306/3406"]


SERVER = "192.168.1.10"


@pytest.mark.parametrize("listeners, status, reason, bad, fix", [
    (lis(("0.0.0.0", 3306), ("0.0.0.0", 27017), ("::", 5672)), Status.OK, Reason.NONE, [], None),
    (lis((SERVER, 3306), (SERVER, 27017), (SERVER, 5672)), Status.OK, Reason.NONE, [], None),
    (lis(("127.0.0.1", 3306), ("0.0.0.0", 27017), ("::", 5672)), Status.FAIL, Reason.MISCONFIGURED, ["mysql"],
     "mysql-config"),
    (lis(("0.0.0.0", 3306), ("127.0.0.1", 27017), ("::1", 27017), ("::", 5672)), Status.FAIL,
     Reason.MISCONFIGURED, ["mongodb"], "mongodb-config"),
    (lis(("127.0.0.1", 3306), ("127.0.0.1", 27017), ("0.0.0.0", 5672)), Status.FAIL, Reason.MISCONFIGURED,
     ["mysql", "mongodb"], "mysql-config"),
    (lis(("0.0.0.0", 3306), ("0.0.0.0", 27017), ("127.0.0.1", 5672)), Status.FAIL, Reason.MISCONFIGURED,
     ["rabbitmq"], None),
    (lis(("::ffff:127.0.0.1", 3306), ("0.0.0.0", 27017), ("::", 5672)), Status.FAIL, Reason.MISCONFIGURED,
     ["mysql"], "mysql-config"),
    (lis(("10.9.9.9", 3306), ("0.0.0.0", 27017), ("::", 5672)), Status.FAIL, Reason.MISCONFIGURED,
     ["mysql"], "mysql-config"),  # listens on some other address, not the server's
    (lis(("0.0.0.0", 3306)), Status.OK, Reason.NONE, [], None),  # the others are host.listeners' business
    ([], Status.SKIP, Reason.NOT_APPLICABLE, [], None),
])
def test_judge_bind(listeners, status, reason, bad, fix):
    result = judge_bind(ALL, listeners, SERVER)
    code = {Status.OK: "SB1020", Status.FAIL: "SB1021", Status.SKIP: "SB1022"}[status]
    assert (result.code, result.status, result.reason) == (code, status, reason)
    assert result.details.get("unreachable", []) == bad
    assert result.fix == fix


def test_bind_loopback_server_ip_still_counts_as_loopback():
    result = judge_bind([exp("mysql", 3306)], lis(("127.0.0.1", 3306)), "127.0.0.1")
    assert (result.code, result.status, result.reason) == ("SB1021", Status.FAIL, Reason.MISCONFIGURED)


def test_bind_skips_remote_services():
    expected = [exp("mysql", 3306, local=False, host="10.1.1.1"), exp("mongodb", 27017)]
    result = judge_bind(expected, lis(("127.0.0.1", 3306), ("0.0.0.0", 27017)), SERVER)
    assert (result.code, result.status) == ("SB1020", Status.OK)
    assert "not_applicable" in result.details["services"]["mysql"]["status"]


@pytest.mark.parametrize("url, host, port", [
    ("http://10.0.0.5:15672", "10.0.0.5", 15672),
    ("http://10.0.0.5:25672/", "10.0.0.5", 25672),
    ("https://mq.example.com", "mq.example.com", 15672),
    ("10.0.0.7:1234", "10.0.0.7", 1234),
    ("", "10.0.0.1", 15672),
    ("http://10.0.0.5:notaport", "10.0.0.5", 15672),
])
def test_management_endpoint(url, host, port):
    assert management_endpoint(url, "10.0.0.1", 15672) == (host, port)
