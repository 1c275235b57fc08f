"""sbops.cluster's pure part: which agent serves which node, how an agent's answer is judged, how rows merge."""

from __future__ import annotations

import json

import pytest

from sbops import cluster
from sbops.cluster import Agent, Reply
from sbops.model import Reason, Status
from sbops.registry import load_all

NS, SELECTOR = "sbops", "app.kubernetes.io/component=agent"


def pod(name: str, node: str, phase: str = "Running", ip: str = "10.0.0.1", deleting: bool = False) -> dict:
    meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase, "podIP": ip}}


@pytest.mark.parametrize("pods, nodes, agents, missing", [
    ([pod("a1", "n1"), pod("a2", "n2")], ["n1", "n2"], {"n1": ("a1", "Running"), "n2": ("a2", "Running")}, []),
    ([pod("a1", "n1")], ["n1", "n2", "n3"], {"n1": ("a1", "Running")}, ["n2", "n3"]),
    ([], ["n1"], {}, ["n1"]),
    # a rollout: the Running pod wins over the Pending one, whatever their names
    ([pod("a0", "n1", "Pending"), pod("a9", "n1")], ["n1"], {"n1": ("a9", "Running")}, []),
    # a terminating Running pod loses to a new Running one; alone it is reported as Terminating
    ([pod("a0", "n1", deleting=True), pod("a1", "n1")], ["n1"], {"n1": ("a1", "Running")}, []),
    ([pod("a0", "n1", deleting=True)], ["n1"], {"n1": ("a0", "Terminating")}, []),
    # not scheduled: belongs to no node
    ([pod("a0", "")], ["n1"], {}, ["n1"]),
    # a pod on a node the API no longer lists still reports
    ([pod("a1", "gone")], [], {"gone": ("a1", "Running")}, []),
    ([pod("a1", "n1", "Failed")], ["n1"], {"n1": ("a1", "Failed")}, []),
])
def test_placement(pods, nodes, agents, missing):
    found, absent = cluster.placement(pods, nodes)
    assert {n: (a.pod, a.phase) for n, a in found.items()} == agents
    assert absent == missing


AGENT = Agent("n1", "agent-x", "Running", "10.97.0.1")
DOC = {"schema": 1, "node": "n1", "checks": [{"id": "host.listeners", "status": "ok"}]}


@pytest.mark.parametrize("status, body, error, timed_out, reason, text", [
    (200, json.dumps(DOC), "", False, None, None),
    (200, "<html>", "", False, Reason.INTERNAL, "not JSON"),
    (200, json.dumps({"checks": "x"}), "", False, Reason.INTERNAL, "no checks"),
    (503, "error trying to reach service: dial tcp 10.97.0.1:29110: connect: connection refused", "", False,
     Reason.REFUSED, "nothing listens"),
    (503, "error trying to reach service: dial tcp 10.97.0.1:29110: i/o timeout", "", False, Reason.TIMEOUT, "i/o timeout"),
    (500, json.dumps({"kind": "Status", "status": "Failure", "code": 500, "message": "error trying to reach service: "
                      "dial tcp 10.97.14.2:29110: connect: connection refused"}), "", False, Reason.REFUSED,
     "nothing listens"),
    (503, "error trying to reach service: dial tcp 10.97.0.1:29110: connect: no route to host", "", False,
     Reason.UNREACHABLE, "no route"),
    (403, "pods \"agent-x\" is forbidden", "", False, Reason.ACCESS_DENIED, "pods/proxy"),
    (404, "not found", "", False, Reason.MISSING, "older than /results"),
    (400, "layer 'netpath' is not served here", "", False, Reason.MISCONFIGURED, "cluster.node_layers"),
    (500, "sbops exporter failed", "", False, Reason.UNREACHABLE, "HTTP 500"),
    (None, "", "no answer within 3s", True, Reason.TIMEOUT, "no answer within 3s"),
    (None, "", "ConnectionRefusedError: ...", False, Reason.UNREACHABLE, "ConnectionRefusedError"),
])
def test_judge_reply(status, body, error, timed_out, reason, text):
    reply = cluster.judge_reply(AGENT, status, body, error, timed_out)
    if reason is None:
        assert reply.problem is None and reply.document == DOC
        return
    assert reply.document is None
    assert reply.problem.status is Status.ERROR and reply.problem.reason is reason
    assert reply.problem.code == "SB0020" and text in reply.problem.summary and "agent-x on n1" in reply.problem.summary


def entry(check_id: str, status: str = "ok", reason: str = "none", added: bool = False) -> dict:
    return {"id": check_id, "layer": check_id.split(".")[0], "status": status, "reason": reason, "code": "SB1010",
            "summary": f"{check_id} {status}", "details": {"x": 1}, "fix": None, "duration_seconds": 0.25,
            "expires_at": None, "added_as_related": added}


def test_merge_one_row_per_check_per_node_with_each_nodes_finding():
    checks = load_all().select(["host"], ["host.listeners", "host.resources"])
    agents = {"n1": Agent("n1", "a1", "Running", "ip1"), "n2": Agent("n2", "a2", "Running", "ip2"),
              "n3": Agent("n3", "a3", "Pending", ""), "n4": Agent("n4", "a4", "Running", "ip4")}
    replies = {
        "n1": Reply(agents["n1"], document={"checks": [entry("host.resources"), entry("host.listeners")]}),
        "n2": Reply(agents["n2"], document={"checks": [entry("host.resources", "warn", "degraded"),
                                                       entry("host.listeners", "fail", "not_running", added=True)]}),
        "n4": cluster.judge_reply(agents["n4"], None, "", "no answer within 2s", True),
    }
    rows = cluster.merge(checks, agents, ["n5"], replies, NS, SELECTOR)
    got = {(o.check.id, o.node): (o.result.status, o.result.reason, o.result.code) for o in rows}
    assert [(o.check.id, o.node) for o in rows] == [(c.id, n) for c in checks for n in ("n1", "n2", "n3", "n4", "n5")]
    assert got[("host.resources", "n1")] == (Status.OK, Reason.NONE, "SB1010")
    assert got[("host.resources", "n2")] == (Status.WARN, Reason.DEGRADED, "SB1010")
    # an entry the agent ran only as related is not the node's answer for that check
    assert got[("host.listeners", "n2")] == (Status.ERROR, Reason.MISSING, "SB0023")
    assert got[("host.listeners", "n3")] == (Status.ERROR, Reason.NOT_RUNNING, "SB0021")
    assert got[("host.resources", "n4")] == (Status.ERROR, Reason.TIMEOUT, "SB0020")
    assert got[("host.listeners", "n5")] == (Status.ERROR, Reason.MISSING, "SB0022")
    n1 = next(o for o in rows if (o.check.id, o.node) == ("host.resources", "n1"))
    assert n1.result.details == {"x": 1} and n1.duration == 0.25


def test_merge_unreadable_entry_is_an_error_not_a_crash():
    checks = load_all().select(None, ["host.listeners"])
    agents = {"n1": Agent("n1", "a1", "Running", "ip1")}
    broken = {**entry("host.listeners"), "status": "sideways"}
    rows = cluster.merge(checks, agents, [], {"n1": Reply(agents["n1"], document={"checks": [broken]})}, NS, SELECTOR)
    assert [(o.result.status, o.result.reason, o.result.code) for o in rows] == [(Status.ERROR, Reason.INTERNAL, "SB0020")]


def test_unlisted_gives_every_node_check_one_error_row():
    checks = load_all().select(["host"])
    rows = cluster.unlisted(checks, NS, Reason.ACCESS_DENIED, "HTTP 403")
    assert [o.check.id for o in rows] == [c.id for c in checks]
    assert {(o.node, o.result.status, o.result.code) for o in rows} == {("?", Status.ERROR, "SB0024")}


def test_report_order_is_by_layer_then_as_given():
    registry = load_all()
    host, mysql = registry.select(["host"])[0], registry.select(["mysql"])[0]
    from sbops.engine import Outcome
    from sbops.model import ok

    given = [Outcome(mysql, ok("x"), 0), Outcome(host, ok("x"), 0, node="b"), Outcome(host, ok("x"), 0, node="a")]
    assert [(o.check.layer, o.node) for o in cluster.in_report_order(given)] == [("host", "b"), ("host", "a"), ("mysql", "")]


@pytest.mark.parametrize("env, expected", [
    ({"NODE_NAME": "node-7"}, "node-7"),
    ({"NODE_NAME": "  "}, None),
    ({}, None),
])
def test_agent_node_name_from_the_downward_api_else_the_host_name(env, expected):
    import socket

    from sbops.exporter.server import node_name

    assert node_name(env) == (expected or socket.gethostname())


def test_text_report_names_the_node_on_each_row_and_where_its_fix_runs():
    from sbops.engine import Outcome
    from sbops.model import fail, ok
    from sbops.report.text import render_doctor

    registry = load_all()
    export = registry.checks["nfs.export"]
    rows = [Outcome(export, ok("fine"), 0, node="node-1"),
            Outcome(export, fail(Reason.MISCONFIGURED, "not exported"), 0, node="node-2"),
            Outcome(export, fail(Reason.MISCONFIGURED, "not exported"), 0)]
    text = render_doctor(rows, colour=False, verbose=False, runbook_url="{id}")
    assert "nfs.export@node-1" in text and "nfs.export@node-2" in text
    assert "fix: sbops fix nfs-export  (on node-2: a node's fix runs there)" in text
    assert text.count("fix: sbops fix nfs-export\n") == 1  # this machine's own row: no node
