"""RabbitMQ layer: pure parsers, differs and judgements from tables (no servers)."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from sbops.probes.net import socket_reason
from pika import exceptions as pe
from pika import spec
from pika.adapters.utils import connection_workflow as cw

from sbops.context import Context
from sbops.credentials import Credentials, Service
from sbops.model import Reason, Status
from sbops.probes import rabbitmq as r
from sbops.runner import CommandResult, RecordingRunner
from sbops.secret import Secret
from sbops.settings import Settings


# -- where -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, want", [
    ("http://10.0.0.5:15672", 15672),
    ("http://10.0.0.5:25000/", 25000),
    ("10.0.0.5:16000", 16000),
    ("http://10.0.0.5", 15999),
    ("", 15999),
    ("http://[::1]:15673", 15673),
    ("http://host:notaport", 15999),
])
def test_management_port(url, want):
    assert r.management_port(url, 15999) == want


# -- handshake -------------------------------------------------------------------------------------------
def start_frame(version: str = "3.10.8") -> tuple[bytes, bytes]:
    method = spec.Connection.Start(server_properties={"product": "RabbitMQ", "version": version},
                                   mechanisms="PLAIN AMQPLAIN", locales="en_US")
    payload = struct.pack(">HH", 10, 10) + b"".join(method.encode())
    head = struct.pack(">BHI", 1, 0, len(payload))
    return head, payload


def test_parse_answer_reads_connection_start():
    head, payload = start_frame()
    answer = r.parse_answer(head, payload)
    assert (answer.kind, answer.product, answer.version) == ("start", "RabbitMQ", "3.10.8")
    assert "PLAIN" in answer.mechanisms


@pytest.mark.parametrize("head, payload, kind", [
    (b"", b"", "closed"),
    (b"AMQP\x00\x01\x00\x00", b"", "header"),
    (b"SSH-2.0", b"", "other"),
    (b"HTTP/1.", b"", "other"),
    (struct.pack(">BHI", 1, 0, 4), struct.pack(">HH", 20, 10), "other"),
])
def test_parse_answer_other_answers(head, payload, kind):
    assert r.parse_answer(head, payload).kind == kind


@pytest.mark.parametrize("kind, status, reason", [
    ("start", Status.OK, Reason.NONE),
    ("header", Status.FAIL, Reason.MISCONFIGURED),
    ("other", Status.FAIL, Reason.MISCONFIGURED),
    ("closed", Status.FAIL, Reason.MISCONFIGURED),
    ("silent", Status.FAIL, Reason.TIMEOUT),
])
def test_judge_handshake(kind, status, reason):
    result = r.judge_handshake("10.0.0.5", 5672, r.Handshake(kind))
    assert (result.status, result.reason) == (status, reason)
    assert result.details["port"] == 5672


@pytest.mark.parametrize("exc, reason", [
    (ConnectionRefusedError(111, "Connection refused"), Reason.REFUSED),
    (socket.timeout("timed out"), Reason.TIMEOUT),
    (TimeoutError(), Reason.TIMEOUT),
    (socket.gaierror(-2, "Name or service not known"), Reason.UNREACHABLE),
    (OSError(113, "No route to host"), Reason.UNREACHABLE),
])
def test_socket_reason(exc, reason):
    assert socket_reason(exc) == reason


def test_socket_reason_follows_causes():
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert socket_reason(outer) is Reason.REFUSED


# -- login -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc, reason", [
    (pe.ProbableAuthenticationError("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED'"), Reason.AUTH_FAILED),
    (pe.ProbableAccessDeniedError("ConnectionClosedByBroker: (530) NOT_ALLOWED"), Reason.ACCESS_DENIED),
    (pe.AMQPConnectionError(pe.ConnectionClosedByBroker(403, "ACCESS_REFUSED")), Reason.AUTH_FAILED),
    (pe.AMQPConnectionError(pe.ConnectionClosedByBroker(530, "NOT_ALLOWED")), Reason.ACCESS_DENIED),
    (pe.AuthenticationError("PLAIN"), Reason.AUTH_FAILED),
    (pe.AMQPConnectionError(cw.AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "x"))), Reason.REFUSED),
    (pe.AMQPConnectionError(cw.AMQPConnectorSocketConnectError(socket.timeout("timed out"))), Reason.TIMEOUT),
    (pe.AMQPConnectionError(cw.AMQPConnectorStackTimeout("stack timeout")), Reason.TIMEOUT),
])
def test_classify_login_error_by_type_and_code(exc, reason):
    assert r.classify_login_error(exc) == reason


@pytest.mark.parametrize("login, status, reason", [
    (r.Login(Reason.NONE, user="stackbill"), Status.OK, Reason.NONE),
    (r.Login(Reason.AUTH_FAILED, "x", "stackbill"), Status.FAIL, Reason.AUTH_FAILED),
    (r.Login(Reason.ACCESS_DENIED, "x", "stackbill"), Status.FAIL, Reason.ACCESS_DENIED),
    (r.Login(Reason.REFUSED, "x", "stackbill"), Status.FAIL, Reason.REFUSED),
    (r.Login(Reason.TIMEOUT, "x", "stackbill"), Status.FAIL, Reason.TIMEOUT),
])
def test_judge_login(login, status, reason):
    result = r.judge_login("h", 5672, login)
    assert (result.status, result.reason) == (status, reason)


# -- management ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, login_ok, status, reason, fix", [
    (r.Answer(200, {"rabbitmq_version": "3.10.8"}), None, Status.OK, Reason.NONE, None),
    (r.Answer(None, reason=Reason.REFUSED, error="refused"), None, Status.FAIL, Reason.REFUSED, None),
    (r.Answer(None, reason=Reason.TIMEOUT, error="t"), None, Status.FAIL, Reason.TIMEOUT, None),
    (r.Answer(401, {"error": "not_authorised"}), False, Status.FAIL, Reason.AUTH_FAILED, "rabbitmq-user"),
    (r.Answer(401, {"error": "not_authorised"}), True, Status.FAIL, Reason.ACCESS_DENIED, "rabbitmq-user"),
    (r.Answer(200, "<html>", is_json=False), None, Status.FAIL, Reason.MISCONFIGURED, None),
    (r.Answer(502, None), None, Status.FAIL, Reason.MISCONFIGURED, None),
])
def test_judge_management(answer, login_ok, status, reason, fix):
    result = r.judge_management("http://h:15672", answer, login_ok)
    assert (result.status, result.reason, result.fix) == (status, reason, fix)


# -- the stackbill user ----------------------------------------------------------------------------------
ALL = dict(r.WANT_PERMISSIONS)


@pytest.mark.parametrize("state, kinds", [
    (r.UserState("stackbill", True, ("administrator",), ALL, True), []),
    (r.UserState("stackbill", True, ("administrator",), ALL, None), []),
    (r.UserState("stackbill", False), ["add_user", "set_tags", "set_permissions"]),
    (r.UserState("stackbill", True, ("administrator",), ALL, False), ["change_password"]),
    (r.UserState("stackbill", True, (), ALL, True), ["set_tags"]),
    (r.UserState("stackbill", True, ("management",), ALL, True), ["set_tags"]),
    (r.UserState("stackbill", True, ("administrator",), None, True), ["set_permissions"]),
    (r.UserState("stackbill", True, ("administrator",), {**ALL, "configure": ""}, True), ["set_permissions"]),
    (r.UserState("stackbill", True, ("monitoring",), {**ALL, "read": "^amq"}, False),
     ["change_password", "set_tags", "set_permissions"]),
])
def test_user_actions(state, kinds):
    assert [a.kind for a in r.user_actions(state)] == kinds


def test_set_tags_keeps_other_tags_and_descriptions_never_hold_passwords():
    actions = r.user_actions(r.UserState("stackbill", True, ("management",), ALL, False))
    tags = next(a for a in actions if a.kind == "set_tags")
    assert tags.tags == ("administrator", "management")
    assert "now: management" in tags.describe()


@pytest.mark.parametrize("value, want", [
    (["administrator"], ("administrator",)),
    ("administrator,management", ("administrator", "management")),
    ("", ()),
    (None, ()),
    ([], ()),
])
def test_parse_tags(value, want):
    assert r.parse_tags(value) == want


@pytest.mark.parametrize("state, status, reason", [
    (r.UserState("stackbill", True, ("administrator",), ALL), Status.OK, Reason.NONE),
    (r.UserState("stackbill", False), Status.FAIL, Reason.MISSING),
    (r.UserState("stackbill", True, ("management",), ALL), Status.FAIL, Reason.MISCONFIGURED),
    (r.UserState("stackbill", True, ("administrator",), None), Status.FAIL, Reason.MISCONFIGURED),
    (r.UserState("stackbill", True, ("administrator",), {**ALL, "write": ""}), Status.FAIL, Reason.MISCONFIGURED),
])
def test_judge_permissions(state, status, reason):
    result = r.judge_permissions(state)
    assert (result.status, result.reason) == (status, reason)


def test_judge_permissions_names_what_differs():
    result = r.judge_permissions(r.UserState("stackbill", True, ("management",), {**ALL, "configure": ""}))
    assert (result.status, result.reason, result.code) == (Status.FAIL, Reason.MISCONFIGURED, "SB4032")
    assert result.details["tags"] == ["management"] and result.details["permissions"]["configure"] == ""
    assert [c.split(" ")[0] for c in result.details["changes"]] == ["set", "grant"]


# -- guest -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, status, reason", [
    (r.Answer(404, {"error": "Object Not Found"}), Status.OK, Reason.NONE),
    (r.Answer(200, {"name": "guest", "tags": ["administrator"]}), Status.WARN, Reason.INSECURE),
    (r.Answer(401, None), Status.SKIP, Reason.NO_ACCESS),
    (r.Answer(None, reason=Reason.TIMEOUT, error="t"), Status.FAIL, Reason.TIMEOUT),
])
def test_judge_guest(answer, status, reason):
    result = r.judge_guest(answer, "stackbill")
    assert (result.status, result.reason) == (status, reason)


WORKS = r.Login(Reason.NONE, user="stackbill")


@pytest.mark.parametrize("login, state, blocked", [
    (WORKS, r.UserState("stackbill", True, ("administrator",)), False),
    (WORKS, r.UserState("stackbill", True, ("management",)), True),
    (r.Login(Reason.AUTH_FAILED), r.UserState("stackbill", True, ("administrator",)), True),
    (r.Login(Reason.ACCESS_DENIED), r.UserState("stackbill", True, ("administrator",)), True),
    (WORKS, r.UserState("stackbill", False), True),
    (WORKS, None, True),
])
def test_guest_blockers(login, state, blocked):
    found = r.guest_blockers(login, state, "why")
    assert bool(found) == blocked
    assert all("rabbitmq-user" in b for b in found)


# -- alarms ----------------------------------------------------------------------------------------------
NODE = {"name": "rabbit@h", "running": True, "mem_alarm": False, "mem_used": 150_000_000, "mem_limit": 6_000_000_000,
        "disk_free_alarm": False, "disk_free": 50_000_000_000, "disk_free_limit": 50_000_000}
HEALTHY = r.Answer(200, {"status": "ok"})


@pytest.mark.parametrize("nodes, health, status, reason, text", [
    ([NODE], HEALTHY, Status.OK, Reason.NONE, None),
    ([{**NODE, "mem_alarm": True, "mem_limit": 2532}], HEALTHY, Status.FAIL, Reason.DEGRADED, "memory alarm on rabbit@h: 150.0 MB used"),
    ([{**NODE, "disk_free_alarm": True}], HEALTHY, Status.FAIL, Reason.DEGRADED, "disk alarm on rabbit@h: 50.0 GB free"),
    ([NODE], r.Answer(503, {"status": "failed", "alarms": [{"node": "rabbit@h", "resource": "memory"}]}),
     Status.FAIL, Reason.DEGRADED, "memory alarm on rabbit@h: 150.0 MB used"),
    ([NODE], r.Answer(503, {"status": "failed", "alarms": [{"node": "rabbit@h", "resource": "disk space"}]}),
     Status.FAIL, Reason.DEGRADED, "disk alarm on rabbit@h"),
    ([{"name": "rabbit@h", "running": True}], r.Answer(503, {"alarms": [{"node": "rabbit@h", "resource": "memory"}]}),
     Status.FAIL, Reason.DEGRADED, "memory alarm on rabbit@h: ? used"),
    ([{**NODE, "running": False}], HEALTHY, Status.FAIL, Reason.NOT_RUNNING, "rabbit@h"),
])
def test_judge_alarms(nodes, health, status, reason, text):
    result = r.judge_alarms(nodes, health)
    code = {Reason.NONE: "SB4050", Reason.DEGRADED: "SB4051", Reason.NOT_RUNNING: "SB4052"}[reason]
    assert (result.status, result.reason, result.code) == (status, reason, code)
    if text is not None:  # the alarm lines or the nodes down: the finding's arguments, not its wording
        assert text in (result.args.get("alarms") or result.args.get("nodes"))


def test_alarm_reported_by_both_sources_is_listed_once():
    health = r.Answer(503, {"alarms": [{"node": "rabbit@h", "resource": "memory"}]})
    result = r.judge_alarms([{**NODE, "mem_alarm": True}], health)
    assert len(result.details["alarms"]) == 1


@pytest.mark.parametrize("value, text", [(512, "512 B"), (1_500, "1.5 kB"), (2_500_000_000, "2.5 GB"), (None, "?")])
def test_human_bytes(value, text):
    assert r.human_bytes(value) == text


# -- rabbitmqctl / rabbitmq-plugins ----------------------------------------------------------------------
@pytest.mark.parametrize("result, text", [
    (CommandResult(("rabbitmqctl",), 127, "", "rabbitmqctl: command not found"), "not installed"),
    (CommandResult(("rabbitmqctl",), 69, "", "Error: unable to perform an operation on node 'rabbit@h'."), "not running"),
    (CommandResult(("rabbitmqctl",), 126, "", ""), "permission denied"),
    (CommandResult(("rabbitmqctl",), 70, "", "Error:\nUser \"x\" already exists"), "already exists"),
])
def test_ctl_failure(result, text):
    assert text in r.ctl_failure(result, "rabbitmqctl")


@pytest.mark.parametrize("status, enabled, running, want", [
    ("running", "enabled", True, r.PluginState(True, True, True)),
    ("running", "not_enabled", False, r.PluginState(True, False, False)),
    ("node_down", "enabled", False, r.PluginState(False, True, False)),
])
def test_parse_plugin_list(status, enabled, running, want):
    text = json.dumps({"format": "normal", "status": status, "plugins": [
        {"name": "rabbitmq_management", "enabled": enabled, "running": running}]})
    assert r.parse_plugin_list(text) == want


# -- the user fix's plan, on a recording runner (the API is unreachable, so rabbitmqctl is used) ---------
LAST_PORT = [0]


def ctx_with(runner: RecordingRunner, password: str = "Secret-Pw-123") -> Context:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    LAST_PORT[0] = closed
    creds = Credentials(server_ip="127.0.0.1", rabbitmq=Service(host="127.0.0.1", port=closed, password=Secret(password),
                                                                 management=f"http://127.0.0.1:{closed}"))
    settings = Settings.load(env={"SBOPS_TIMEOUT": "1", "SBOPS_CONFIG": ""})
    return Context(settings, creds, runner=runner)


def ctl_responses(users: list, perms: list, auth_rc: int, amqp_port: int | None = None) -> dict:
    """rabbitmqctl's answers; cluster_status lists an AMQP listener on `amqp_port` (default: the port ctx_with
    configures, which nothing answers on, so the listener is what proves rabbitmqctl's node is that one)."""
    def answer(argv: tuple[str, ...]) -> CommandResult:
        if "cluster_status" in argv:
            port = amqp_port if amqp_port is not None else LAST_PORT[0]
            return CommandResult(argv, 0, json.dumps({"cluster_name": "rabbit@h", "running_nodes": ["rabbit@h"],
                                                      "listeners": [{"node": "rabbit@h", "protocol": "amqp",
                                                                     "interface": "[::]", "port": port}]}), "")
        if "list_users" in argv:
            return CommandResult(argv, 0, json.dumps(users), "")
        if "list_permissions" in argv:
            return CommandResult(argv, 0, json.dumps(perms), "")
        if "authenticate_user" in argv:
            return CommandResult(argv, auth_rc, "", "" if auth_rc == 0 else "invalid credentials")
        return CommandResult(argv, 0, "", "")
    return {"rabbitmqctl": answer}


def test_plan_user_changes_only_the_password_and_masks_it():
    runner = RecordingRunner(responses=ctl_responses(
        [{"user": "stackbill", "tags": ["administrator"]}],
        [{"user": "stackbill", "configure": ".*", "write": ".*", "read": ".*"}], auth_rc=65))
    ctx = ctx_with(runner)
    plan = r.plan_user(ctx)
    assert not plan.blockers
    assert [c.description for c in plan.changes] == ["set stackbill's password to the credentials file's (it does not match)"]
    assert plan.changes[0].commands == ("rabbitmqctl change_password stackbill   # password **** on standard input",)
    plan.changes[0].apply()
    assert runner.commands[-1] == ("rabbitmqctl", "change_password", "stackbill")
    assert not any("Secret-Pw-123" in " ".join(c) for c in runner.commands)


def test_plan_user_creates_a_missing_user():
    runner = RecordingRunner(responses=ctl_responses([{"user": "guest", "tags": ["administrator"]}], [], auth_rc=0))
    plan = r.plan_user(ctx_with(runner))
    assert [c.commands[0].split("   #")[0] for c in plan.changes] == [
        "rabbitmqctl add_user stackbill",
        "rabbitmqctl set_user_tags stackbill administrator",
        "rabbitmqctl set_permissions -p / stackbill '.*' '.*' '.*'",
    ]


def test_plan_user_nothing_to_do():
    runner = RecordingRunner(responses=ctl_responses(
        [{"user": "stackbill", "tags": ["administrator"]}],
        [{"user": "stackbill", "configure": ".*", "write": ".*", "read": ".*"}], auth_rc=0))
    plan = r.plan_user(ctx_with(runner))
    assert plan.empty and plan.nothing_to_do and not plan.blockers


def test_plan_user_refuses_rabbitmqctl_of_another_node():
    """rabbitmqctl answers, but for a cluster whose AMQP listener is not the credentials file's port."""
    runner = RecordingRunner(responses=ctl_responses([{"user": "guest", "tags": ["administrator"]}], [], auth_rc=0,
                                                     amqp_port=1))
    plan = r.plan_user(ctx_with(runner))
    assert plan.empty and "refusing rabbitmqctl" in plan.blockers[0] and "rabbit@h" in plan.blockers[0]


@pytest.mark.parametrize("status, amqp_cluster, port, same", [
    ({"cluster_name": "rabbit@a"}, "rabbit@a", 5672, True),
    ({"cluster_name": "rabbit@b", "running_nodes": ["rabbit@b"]}, "rabbit@a", 5672, False),
    ({"cluster_name": "rabbit@a", "listeners": [{"protocol": "amqp", "port": 5672}]}, None, 5672, True),
    ({"cluster_name": "rabbit@a", "listeners": [{"protocol": "amqp", "port": 5673}]}, None, 5672, False),
    ({"cluster_name": "rabbit@a", "listeners": [{"protocol": "http", "port": 5672}]}, None, 5672, False),
    ({}, None, 5672, False),
])
def test_ctl_identity_mismatch(status: dict, amqp_cluster: str | None, port: int, same: bool) -> None:
    assert (r.ctl_identity_mismatch(status, amqp_cluster, "10.0.0.5", port) == "") is same


def test_plan_user_blocked_when_the_node_is_down():
    down = CommandResult(("rabbitmqctl",), 69, "", "Error: unable to perform an operation on node 'rabbit@h'.")
    plan = r.plan_user(ctx_with(RecordingRunner(responses={"rabbitmqctl": down})))
    assert plan.empty and "not running" in plan.blockers[0]
