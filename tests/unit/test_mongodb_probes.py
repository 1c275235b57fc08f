"""MongoDB layer: the pure parsers, judgements and differs, from tables (no servers)."""

from __future__ import annotations

import errno
import socket
from collections import namedtuple

import pytest

from sbops.probes.net import socket_reason
import yaml

from sbops.model import Reason, Status
from sbops.probes import mongodb as m

Addr = namedtuple("Addr", "ip port")
Conn = namedtuple("Conn", "laddr status")


@pytest.mark.parametrize("exc, reason", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Reason.REFUSED),
    (socket.timeout("timed out"), Reason.TIMEOUT),
    (TimeoutError(), Reason.TIMEOUT),
    (OSError(errno.ETIMEDOUT, "timed out"), Reason.TIMEOUT),
    (socket.gaierror(-2, "Name or service not known"), Reason.UNREACHABLE),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), Reason.UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "No route to host"), Reason.UNREACHABLE),
])
def test_socket_reason(exc: BaseException, reason: Reason) -> None:
    assert socket_reason(exc) is reason


@pytest.mark.parametrize("tcp, hello, status, reason", [
    ((Reason.REFUSED, "refused"), None, Status.FAIL, Reason.REFUSED),
    ((Reason.TIMEOUT, "timed out"), None, Status.FAIL, Reason.TIMEOUT),
    ((Reason.UNREACHABLE, "no name"), None, Status.FAIL, Reason.UNREACHABLE),
    ((Reason.NONE, ""), None, Status.FAIL, Reason.MISCONFIGURED),
    ((Reason.NONE, ""), {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}, Status.OK, Reason.NONE),
])
def test_judge_reachable(tcp, hello, status, reason) -> None:
    result = m.judge_reachable("h:27017", tcp, hello, "err")
    assert (result.status, result.reason) == (status, reason)
    if hello:
        assert result.details["maxWireVersion"] == 21 and "ok" not in result.details


@pytest.mark.parametrize("login, status, reason", [
    (m.Login("stackbill", True, status={"authenticatedUserRoles": [{"role": "root", "db": "admin"}]}), Status.OK, Reason.NONE),
    (m.Login("stackbill", False, 18, "Authentication failed."), Status.FAIL, Reason.AUTH_FAILED),
    (m.Login("stackbill", False, 18, "authentication failed"), Status.FAIL, Reason.AUTH_FAILED),
    # the text says "authentication failed" but the code is not 18: never judged by the text
    (m.Login("stackbill", False, 13, "authentication failed"), Status.FAIL, Reason.ACCESS_DENIED),
])
def test_judge_auth_uses_the_code_only(login, status, reason) -> None:
    result = m.judge_auth("h:1", login)
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize("allowed, code, status, reason", [
    (True, None, Status.FAIL, Reason.INSECURE),
    (False, 13, Status.OK, Reason.NONE),
    (False, 2, Status.WARN, Reason.MISCONFIGURED),
])
def test_judge_authorization(allowed, code, status, reason) -> None:
    result = m.judge_authorization("h:1", allowed, code, "")
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize("value, ips", [
    ("0.0.0.0", ["0.0.0.0"]),
    ("127.0.0.1, 10.0.0.5", ["127.0.0.1", "10.0.0.5"]),
    ("localhost,/tmp/mongodb-27017.sock", ["localhost"]),
    (["127.0.0.1", "::1"], ["127.0.0.1", "::1"]),
    (None, []),
    ("", []),
])
def test_parse_bind_ips(value, ips) -> None:
    assert m.parse_bind_ips(value) == ips


@pytest.mark.parametrize("net, ips", [
    ({}, None),  # SecantusDB's getCmdLineOpts: nothing reported
    (None, None),
    ({"port": 27017}, None),
    ({"bindIp": "127.0.0.1"}, ["127.0.0.1"]),
    ({"bindIpAll": True}, ["0.0.0.0"]),
    ({"bindIpAll": True, "bindIp": "127.0.0.1"}, ["0.0.0.0"]),
])
def test_bind_from_net(net, ips) -> None:
    assert m.bind_from_net(net) == ips


@pytest.mark.parametrize("doc, ips", [
    ({"net": {"port": 27017, "bindIp": "0.0.0.0"}}, ["0.0.0.0"]),
    ({"net": {"port": 27017}}, ["localhost"]),  # mongod's default since 3.6
    ({}, ["localhost"]),
    (None, ["localhost"]),
])
def test_bind_from_config(doc, ips) -> None:
    assert m.bind_from_config(doc) == ips


@pytest.mark.parametrize("ips, server_ip, kind", [
    (["0.0.0.0"], "10.0.0.5", "all"),
    (["::"], "10.0.0.5", "all"),
    (["127.0.0.1"], "10.0.0.5", "loopback"),
    (["localhost", "::1"], "10.0.0.5", "loopback"),
    (["127.0.0.1"], "127.0.0.1", "loopback"),  # a loopback server IP never makes loopback reachable from pods
    (["127.0.0.1", "10.0.0.5"], "10.0.0.5", "server"),
    (["192.168.1.9"], "10.0.0.5", "other"),
    ([], "10.0.0.5", "loopback"),
])
def test_exposure(ips, server_ip, kind) -> None:
    assert m.exposure(ips, server_ip) == kind


@pytest.mark.parametrize("ips, listeners, status, reason", [
    (["0.0.0.0"], None, Status.OK, Reason.NONE),
    (["127.0.0.1"], None, Status.FAIL, Reason.MISCONFIGURED),
    (["127.0.0.1"], ["127.0.0.1"], Status.FAIL, Reason.MISCONFIGURED),
    (["10.0.0.5", "127.0.0.1"], None, Status.OK, Reason.NONE),
    (["192.168.1.9"], None, Status.WARN, Reason.MISCONFIGURED),
    (["0.0.0.0"], ["127.0.0.1"], Status.FAIL, Reason.MISCONFIGURED),  # changed in the file, not restarted
    (["0.0.0.0"], ["0.0.0.0"], Status.OK, Reason.NONE),
    (["0.0.0.0"], [], Status.OK, Reason.NONE),  # not listening at all: mongodb.reachable says so
    (None, None, Status.SKIP, Reason.NO_ACCESS),
])
def test_judge_bind(ips, listeners, status, reason) -> None:
    result = m.judge_bind("config file /etc/mongod.conf", ips, "10.0.0.5", listeners)
    assert (result.status, result.reason) == (status, reason)
    if ips is not None:
        assert result.details["source"] == "config file /etc/mongod.conf"


def test_restart_pending_is_flagged() -> None:
    result = m.judge_bind("config file f", ["0.0.0.0"], "10.0.0.5", ["127.0.0.1"])
    assert result.details["restart_pending"] is True


def test_listeners_on() -> None:
    conns = [Conn(Addr("127.0.0.1", 27017), "LISTEN"), Conn(Addr("127.0.0.1", 27017), "LISTEN"),
             Conn(Addr("::1", 27017), "LISTEN"), Conn(Addr("127.0.0.1", 27017), "ESTABLISHED"),
             Conn(Addr("0.0.0.0", 3306), "LISTEN"), Conn((), "NONE")]
    assert m.listeners_on(conns, 27017) == ["127.0.0.1", "::1"]
    assert m.listeners_on(conns, 5672) == []


@pytest.mark.parametrize("text, version", [
    ("7.0.14", (7, 0, 14)), ("8.2.11", (8, 2, 11)), ("4.4.29", (4, 4, 29)), ("7.0.0-rc1", (7, 0, 0)), ("", ()),
])
def test_parse_version(text, version) -> None:
    assert m.parse_version(text) == version


@pytest.mark.parametrize("version, status", [
    ("7.0.14", Status.OK),
    ("7.3.1", Status.OK),
    ("8.2.11", Status.WARN),  # SecantusDB, mongod 8
    ("6.0.19", Status.WARN),
    ("5.0.0", Status.WARN),
    ("4.4.29", Status.FAIL),
    ("3.6.8", Status.FAIL),
    ("", Status.WARN),
])
def test_judge_version(version, status) -> None:
    result = m.judge_version({"version": version, "gitVersion": "abc"})
    assert result.status is status
    assert result.reason is (Reason.NONE if status is Status.OK else Reason.MISCONFIGURED)


ROOT = {"role": "root", "db": "admin"}
RWA = {"role": "readWriteAnyDatabase", "db": "admin"}


@pytest.mark.parametrize("roles, missing", [
    ([ROOT, RWA], []),
    ([RWA, ROOT, {"role": "read", "db": "x"}], []),
    ([RWA], [("root", "admin")]),
    ([{"role": "root", "db": "other"}], [("root", "admin"), ("readWriteAnyDatabase", "admin")]),
    ([], [("root", "admin"), ("readWriteAnyDatabase", "admin")]),
])
def test_missing_roles(roles, missing) -> None:
    assert m.missing_roles(roles) == missing


@pytest.mark.parametrize("user, status, reason", [
    (None, Status.FAIL, Reason.MISSING),
    ({"user": "stackbill", "roles": [RWA]}, Status.FAIL, Reason.MISCONFIGURED),
    ({"user": "stackbill", "roles": [ROOT, RWA], "mechanisms": ["SCRAM-SHA-256"]}, Status.OK, Reason.NONE),
])
def test_judge_user(user, status, reason) -> None:
    result = m.judge_user("stackbill", user, "stackbill")
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize("user, login_ok, can_view, actions", [
    (None, False, True, ["create"]),
    ({"roles": [ROOT, RWA]}, True, True, []),
    ({"roles": [ROOT, RWA]}, False, True, ["password"]),
    ({"roles": [RWA]}, True, True, ["roles"]),
    ({"roles": []}, False, True, ["password", "roles"]),
    (None, False, False, ["create"]),  # localhost exception: no users exist
    (None, True, False, []),
])
def test_user_actions(user, login_ok, can_view, actions) -> None:
    assert m.user_actions(user, login_ok, can_view) == actions


def test_wanted_roles_keep_extra_roles() -> None:
    roles = m.wanted_roles({"roles": [{"role": "read", "db": "reports"}, RWA]})
    assert roles == [ROOT, RWA, {"role": "read", "db": "reports"}]
    assert m.wanted_roles(None) == [ROOT, RWA]


def test_user_statements_mask_the_password() -> None:
    create = m.user_statement("stackbill", [ROOT, RWA], create=True)
    assert create == ("db.getSiblingDB('admin').createUser({user: 'stackbill', pwd: '****', roles: "
                      "[{role: 'root', db: 'admin'}, {role: 'readWriteAnyDatabase', db: 'admin'}]})")
    update = m.user_statement("stackbill", [ROOT, RWA], set_password=True)
    assert update == "db.getSiblingDB('admin').updateUser('stackbill', {pwd: '****'})"
    both = m.user_statement("stackbill", [ROOT], set_password=True, set_roles=True)
    assert "pwd: '****'" in both and "roles: [{role: 'root', db: 'admin'}]" in both


INSTALLER_CONF = """\
storage:
  dbPath: /var/lib/mongodb

systemLog:
  destination: file
  logAppend: true
  path: /var/log/mongodb/mongod.log

net:
  port: 27017
  bindIp: 127.0.0.1    # default of the package

processManagement:
  timeZoneInfo: /usr/share/zoneinfo
"""


@pytest.mark.parametrize("doc, edits", [
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "enabled"}}, []),
    ({"net": {"bindIpAll": True}, "security": {"authorization": "enabled"}}, []),
    ({"net": {"bindIp": "127.0.0.1,10.0.0.5"}, "security": {"authorization": "enabled"}}, []),
    ({"net": {"bindIp": "127.0.0.1"}, "security": {"authorization": "enabled"}}, [("net", "bindIp", "127.0.0.1")]),
    ({"net": {"port": 27017}}, [("net", "bindIp", None), ("security", "authorization", None)]),
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "disabled"}},
     [("security", "authorization", "disabled")]),
    ({}, [("net", "bindIp", None), ("security", "authorization", None)]),
])
def test_config_edits(doc, edits) -> None:
    found = m.config_edits(doc, "10.0.0.5")
    assert [(e.section, e.key, e.old) for e in found] == edits


@pytest.mark.parametrize("text, section, key, value, must_contain", [
    (INSTALLER_CONF, "net", "bindIp", "0.0.0.0", ["  bindIp: 0.0.0.0\n", "  port: 27017\n", "dbPath: /var/lib/mongodb"]),
    (INSTALLER_CONF, "security", "authorization", "enabled", ["\nsecurity:\n  authorization: enabled\n", "# default"]),
    ("net:\n    port: 27017\n", "net", "bindIp", "0.0.0.0", ["    port: 27017\n    bindIp: 0.0.0.0\n"]),
    ("net:\n  port: 27017\n  # a comment\nsecurity:\n  keyFile: /k\n", "security", "authorization", "enabled",
     ["  keyFile: /k\n  authorization: enabled\n", "  # a comment\n"]),
    ("security:\n  authorization: disabled\n", "security", "authorization", "enabled", ["authorization: enabled"]),
    ("net: {port: 27017, bindIp: 127.0.0.1}\n", "net", "bindIp", "0.0.0.0", []),  # flow style: re-dumped
    ("", "net", "bindIp", "0.0.0.0", ["net:\n  bindIp: 0.0.0.0\n"]),
    ("net:\n  port: 27017", "net", "bindIp", "0.0.0.0", ["port: 27017\n  bindIp: 0.0.0.0\n"]),  # no final newline
])
def test_set_yaml_key(text, section, key, value, must_contain) -> None:
    out = m.set_yaml_key(text, section, key, value)
    for fragment in must_contain:
        assert fragment in out
    before = yaml.safe_load(text) or {}
    after = yaml.safe_load(out)
    assert after[section][key] == value
    for other in before:  # nothing else changes
        if other != section:
            assert after[other] == before[other]
        else:
            assert {k: v for k, v in after[section].items() if k != key} == \
                {k: v for k, v in before[section].items() if k != key}


def test_apply_edits_on_the_installer_layout() -> None:
    doc = yaml.safe_load(INSTALLER_CONF)
    out = m.apply_edits(INSTALLER_CONF, m.config_edits(doc, "10.0.0.5"))
    new = yaml.safe_load(out)
    assert new["net"] == {"port": 27017, "bindIp": "0.0.0.0"}
    assert new["security"] == {"authorization": "enabled"}
    assert new["storage"] == doc["storage"] and new["systemLog"] == doc["systemLog"]
    assert m.config_edits(new, "10.0.0.5") == []


@pytest.mark.parametrize("doc, authz, listeners, pending", [
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "enabled"}}, True, ["0.0.0.0"], 0),
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "enabled"}}, False, ["0.0.0.0"], 1),
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "enabled"}}, True, ["127.0.0.1"], 1),
    ({"net": {"bindIp": "0.0.0.0"}, "security": {"authorization": "enabled"}}, None, None, 0),
    ({"net": {"bindIp": "127.0.0.1"}}, False, ["127.0.0.1"], 0),  # the file itself is wrong: edits, not pending
])
def test_running_differs(doc, authz, listeners, pending) -> None:
    assert len(m.running_differs(doc, authz, listeners, "10.0.0.5")) == pending


def test_client_options_use_the_timeout() -> None:
    options = m.client_options(2.5)
    assert options["directConnection"] is True
    assert options["serverSelectionTimeoutMS"] == options["connectTimeoutMS"] == options["socketTimeoutMS"] == 2500


@pytest.mark.parametrize("parsed, path, refused", [
    (None, "/etc/mongod.conf", False),  # the server does not say: nothing proves a mismatch
    ({"net": {"port": 27017}}, "/etc/mongod.conf", False),
    ({"config": "/etc/mongod.conf"}, "/etc/mongod.conf", False),
    ({"config": "/etc//mongod.conf"}, "/etc/mongod.conf", False),
    ({"config": "/srv/other/mongod.conf"}, "/etc/mongod.conf", True),  # another mongod's file
])
def test_config_file_mismatch(parsed, path, refused) -> None:
    why = m.config_file_mismatch(parsed, path)
    assert bool(why) is refused
    if refused:
        assert "/srv/other/mongod.conf" in why
