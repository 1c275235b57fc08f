"""Database hosts of their own (sbops.probes.agents): where a host-file check is answered, which fixes are
refused for a remote host, how an agent's answer (or its absence) becomes the check's result. Pure tables."""

from __future__ import annotations

import json
import ssl
import stat

import pytest

from sbops.model import Reason, Status
from sbops.probes.agents import (Route, decide_route, judge_reply, password_problem, remote_fix_blocker,
                                 transport_result)

URL = "https://10.98.7.2:29120"


@pytest.mark.parametrize("check_id, host, local, agent, expected", [
    ("mysql.config", "10.98.7.2", False, URL, ("agent", "mysql", URL)),
    ("mysql.config", "10.98.7.2", False, URL + "/", ("agent", "mysql", URL)),
    ("mysql.config", "10.98.7.2", False, "", ("unconfigured", "mysql", "")),
    ("mysql.config", "127.0.0.1", True, URL, ("local", "mysql", "")),  # the agent would be this machine
    ("mysql.config", "127.0.0.1", True, "", ("local", "mysql", "")),
    ("mongodb.bind", "db.example", False, URL, ("agent", "mongodb", URL)),
    ("mongodb.bind", "db.example", False, "", ("network", "mongodb", "")),  # getCmdLineOpts: no files read
    ("mongodb.bind", "127.0.0.1", True, "", ("local", "mongodb", "")),
    ("mysql.auth", "10.98.7.2", False, URL, None),  # over the network: answered here
    ("mysql.reachable", "10.98.7.2", False, "", None),
    ("rabbitmq.management", "10.98.7.2", False, "", None),
    ("host.listeners", "10.98.7.2", False, URL, None),
])
def test_routing(check_id, host, local, agent, expected) -> None:
    route = decide_route(check_id, host, local, agent)
    if expected is None:
        assert route is None
    else:
        assert (route.kind, route.service, route.url) == expected
        assert route.host == host and route.setting == f"agents.{expected[1]}"


@pytest.mark.parametrize("fix, host, local, refused", [
    ("mysql-config", "10.98.7.2", False, True),
    ("mysql-config", "127.0.0.1", True, False),
    ("mongodb-config", "db.example", False, True),
    ("rabbitmq-management", "10.98.7.2", False, True),
    ("rabbitmq-management", "localhost", True, False),
    ("mysql-user", "10.98.7.2", False, False),  # SQL over the network: works from here
    ("mysql-blocked-host", "10.98.7.2", False, False),
    ("rabbitmq-user", "10.98.7.2", False, False),
])
def test_remote_fix_blocker(fix, host, local, refused) -> None:
    why = remote_fix_blocker(fix, host, local)
    assert bool(why) is refused
    if refused:
        assert f"run `sbops fix {fix}` on {host}" in why


@pytest.mark.parametrize("mode, mine, ok", [
    (stat.S_IFREG | 0o600, True, True),
    (stat.S_IFREG | 0o400, True, True),
    (stat.S_IFREG | 0o640, True, False),
    (stat.S_IFREG | 0o644, True, False),
    (stat.S_IFREG | 0o604, True, False),
    (stat.S_IFREG | 0o600, False, False),
    (stat.S_IFDIR | 0o700, True, False),
    (None, True, False),
])
def test_password_file(mode, mine, ok) -> None:
    assert (password_problem(mode, mine) == "") is ok


ROUTE = Route("agent", "mysql", "10.98.7.2", URL)


def document(*entries: dict) -> bytes:
    return json.dumps({"schema": 1, "node": "dbhost", "checks": list(entries)}).encode()


ENTRY = {"id": "mysql.config", "layer": "mysql", "status": "fail", "reason": "misconfigured", "code": "SB2031",
         "summary": "1 setting(s) differ: bind_address=127.0.0.1 (want 0.0.0.0 or the server IP)",
         "details": {"variables": {"bind_address": "127.0.0.1"}}, "fix": "mysql-config", "expires_at": None,
         "added_as_related": False}


@pytest.mark.parametrize("status, body, code, result_status, reason", [
    (200, document(ENTRY), "SB2031", Status.FAIL, Reason.MISCONFIGURED),
    (200, document({**ENTRY, "status": "ok", "reason": "none", "code": "SB2032"}), "SB2032", Status.OK, Reason.NONE),
    (200, document({**ENTRY, "added_as_related": True}), "SB0034", Status.ERROR, Reason.MISSING),
    (200, document(), "SB0034", Status.ERROR, Reason.MISSING),
    (200, b"<html>", "SB0034", Status.ERROR, Reason.INTERNAL),
    (200, b"[1, 2]", "SB0034", Status.ERROR, Reason.INTERNAL),
    (200, document({**ENTRY, "status": "bogus"}), "SB0034", Status.ERROR, Reason.INTERNAL),
    (401, b"Unauthorized", "SB0032", Status.ERROR, Reason.AUTH_FAILED),
    (403, b"Forbidden", "SB0032", Status.ERROR, Reason.AUTH_FAILED),
    (400, b"layer 'mysql' is not served here", "SB0034", Status.ERROR, Reason.MISCONFIGURED),
    (404, b"not found", "SB0034", Status.ERROR, Reason.MISCONFIGURED),
    (500, b"failed", "SB0034", Status.ERROR, Reason.INTERNAL),
])
def test_judge_reply(status, body, code, result_status, reason) -> None:
    result = judge_reply(ROUTE, "mysql.config", status, body, "sbops", "/etc/sbops/agent-password")
    assert (result.code, result.status, result.reason) == (code, result_status, reason)
    assert result.details["via_agent"] == URL
    if code == "SB2031":
        assert result.summary.endswith(f"(via agent {URL})")
        assert result.details["variables"] == {"bind_address": "127.0.0.1"} and result.fix == "mysql-config"
        assert result.details["agent_node"] == "dbhost"


def cert_error() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"
    return exc


@pytest.mark.parametrize("exc, code, reason", [
    (cert_error(), "SB0033", Reason.MISCONFIGURED),
    (ssl.SSLError(1, "wrong version number"), "SB0033", Reason.MISCONFIGURED),
    (ConnectionRefusedError(111, "Connection refused"), "SB0031", Reason.REFUSED),
    (TimeoutError("timed out"), "SB0031", Reason.TIMEOUT),
    (OSError(113, "No route to host"), "SB0031", Reason.UNREACHABLE),
    (ValueError("odd"), "SB0031", Reason.UNREACHABLE),
])
def test_transport_errors(exc, code, reason) -> None:
    result = transport_result(ROUTE, "mysql.config", exc)
    assert (result.code, result.status, result.reason) == (code, Status.ERROR, reason)
    assert result.details == {"via_agent": URL}


@pytest.mark.parametrize("server_ip, via_socket", [("10.98.7.2", False), ("127.0.0.1", True)])
def test_the_admin_login_uses_this_machines_socket_only_for_a_server_on_this_machine(tmp_path, server_ip,
                                                                                     via_socket) -> None:
    from sbops.context import Context
    from sbops.probes.mysql.session import admin_target
    from sbops.settings import Settings

    sock = tmp_path / "mysqld.sock"
    sock.write_text("")  # exists: admin_target only looks whether it does
    settings = Settings.load(None, env={"SBOPS_SERVER_IP": server_ip, "SBOPS_MYSQL_ADMIN_SOCKET": str(sock)})
    target = admin_target(Context(settings))
    assert target == ({"unix_socket": str(sock)} if via_socket else
                      {"host": server_ip, "port": 3306, "source_address": ""})
