"""Pure parts of sbops.probes.mysql, from tables: error classification, config differ, grants, users."""

from __future__ import annotations

import socket

import pytest

from sbops.model import Reason, Status
from sbops.probes import mysql as m


class FakeMySQLError(Exception):
    """Shaped like pymysql.err.OperationalError: args = (code, message)."""


def wrapped(code: int, cause: BaseException) -> Exception:
    exc = FakeMySQLError(code, "Can't connect")
    exc.original_exception = cause  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize("exc, reason", [
    (FakeMySQLError(1045, "Access denied for user"), Reason.AUTH_FAILED),
    (FakeMySQLError(1129, "Host '127.0.0.2' is blocked"), Reason.HOST_BLOCKED),
    (FakeMySQLError(1040, "Too many connections"), Reason.TOO_MANY_CONNECTIONS),
    (FakeMySQLError(1698, "Access denied for user 'root'@'localhost'"), Reason.AUTH_FAILED),
    (FakeMySQLError(1142, "SELECT command denied"), Reason.ACCESS_DENIED),
    (wrapped(2003, ConnectionRefusedError(111, "refused")), Reason.REFUSED),
    (wrapped(2003, socket.timeout("timed out")), Reason.TIMEOUT),
    (wrapped(2003, TimeoutError()), Reason.TIMEOUT),
    (wrapped(2003, socket.gaierror(-2, "Name or service not known")), Reason.UNREACHABLE),
    (wrapped(2003, OSError(113, "No route to host")), Reason.UNREACHABLE),
    (wrapped(2003, FileNotFoundError(2, "no socket")), Reason.NOT_RUNNING),
    (ConnectionRefusedError(111, "refused"), Reason.REFUSED),
])
def test_classify_by_code(exc: BaseException, reason: Reason) -> None:
    assert m.classify(exc) is reason


def test_classify_ignores_message_text() -> None:
    assert m.classify(FakeMySQLError(1045, "Host is blocked, too many connections")) is Reason.AUTH_FAILED


@pytest.mark.parametrize("version, mariadb, parts", [
    ("5.5.5-10.11.19-MariaDB-0+deb12u1", True, (10, 11, 19)),
    ("8.0.36-0ubuntu0.22.04.1", False, (8, 0, 36)),
    ("8.0.23", False, (8, 0, 23)),
])
def test_versions(version: str, mariadb: bool, parts: tuple[int, ...]) -> None:
    assert m.is_mariadb_version(version) is mariadb
    assert m.version_tuple(m.strip_version(version)) == parts
    assert not m.strip_version(version).startswith("5.5.5-")


@pytest.mark.parametrize("reason, version, status", [
    (Reason.NONE, "10.11.19-MariaDB", Status.OK),
    (Reason.AUTH_FAILED, "10.11.19-MariaDB", Status.OK),  # it answered: the login is mysql.auth's business
    (Reason.HOST_BLOCKED, "", Status.WARN),
    (Reason.TOO_MANY_CONNECTIONS, "", Status.WARN),
    (Reason.REFUSED, "", Status.FAIL),
    (Reason.TIMEOUT, "", Status.FAIL),
    (Reason.UNREACHABLE, "", Status.FAIL),
])
def test_judge_reachable(reason: Reason, version: str, status: Status) -> None:
    result = m.judge_reachable("10.0.0.5", 3306, reason, version, None, "err")
    assert result.status is status
    if status is Status.FAIL:
        assert result.reason is reason


GOOD = {
    "sql_mode": "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "max_connections": "1000",
    "max_connect_errors": "100000", "log_bin_trust_function_creators": "ON", "wait_timeout": "28800",
    "interactive_timeout": "230400", "connect_timeout": "36000", "skip_name_resolve": "ON",
    "bind_address": "0.0.0.0",
}


@pytest.mark.parametrize("override, bad", [
    ({}, set()),
    ({"max_connections": "4000"}, set()),
    ({"sql_mode": "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"}, {"sql_mode"}),  # exact set
    ({"sql_mode": "no_engine_substitution,strict_trans_tables"}, set()),  # order and case do not matter
    ({"bind_address": "10.0.0.5"}, set()),  # the server IP
    ({"bind_address": "*"}, set()),  # MySQL 8's default: every address
    ({"sql_mode": "STRICT_TRANS_TABLES"}, {"sql_mode"}),
    ({"sql_mode": ""}, {"sql_mode"}),
    ({"max_connections": "151"}, {"max_connections"}),
    ({"max_connect_errors": "100"}, {"max_connect_errors"}),
    ({"log_bin_trust_function_creators": "OFF"}, {"log_bin_trust_function_creators"}),
    ({"wait_timeout": "600"}, {"wait_timeout"}),
    ({"interactive_timeout": "28800"}, {"interactive_timeout"}),
    ({"connect_timeout": "10"}, {"connect_timeout"}),
    ({"skip_name_resolve": "OFF"}, {"skip_name_resolve"}),
    ({"bind_address": "127.0.0.1"}, {"bind_address"}),
    ({"bind_address": "127.0.0.1,0.0.0.0"}, {"bind_address"}),
    ({"skip_host_cache": "OFF"}, {"skip_host_cache"}),
    ({"skip_host_cache": "ON"}, set()),
])
def test_config_findings(override: dict[str, str], bad: set[str]) -> None:
    found = m.config_findings({**GOOD, **override}, server_ip="10.0.0.5")
    assert {f.variable for f in found} == bad


def test_loopback_server_ip_does_not_excuse_a_loopback_bind() -> None:
    found = m.config_findings({**GOOD, "bind_address": "127.0.0.1"}, server_ip="127.0.0.1")
    assert [f.variable for f in found] == ["bind_address"]


def test_config_findings_absent_variable() -> None:
    observed = dict(GOOD)
    del observed["log_bin_trust_function_creators"]
    (finding,) = m.config_findings(observed)
    assert finding.observed is None and finding.dynamic


def test_skip_host_cache_unseen_is_not_a_finding() -> None:
    """A remote MariaDB: neither host_cache_size 0 nor its files to read, so nothing is claimed either way."""
    assert m.config_findings(GOOD) == []


@pytest.mark.parametrize("observed, missing, extra", [
    ("ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", [], ["ONLY_FULL_GROUP_BY"]),
    ("STRICT_TRANS_TABLES", ["NO_ENGINE_SUBSTITUTION"], []),
    ("", ["NO_ENGINE_SUBSTITUTION", "STRICT_TRANS_TABLES"], []),
    ("STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION", [],
     ["ERROR_FOR_DIVISION_BY_ZERO", "NO_AUTO_CREATE_USER"]),  # MariaDB's default
])
def test_sql_mode_is_an_exact_set(observed: str, missing: list[str], extra: list[str]) -> None:
    (finding,) = m.config_findings({**GOOD, "sql_mode": observed})
    assert (list(finding.missing), list(finding.extra)) == (missing, extra)
    assert finding.as_dict()["missing"] == missing and finding.as_dict()["extra"] == extra


def test_with_file_facts() -> None:
    assert m.with_file_facts({"host_cache_size": "0"}, None)["skip_host_cache"] == "ON"
    assert "skip_host_cache" not in m.with_file_facts({"host_cache_size": "279"}, None)


def test_static_and_dynamic() -> None:
    assert {r.variable for r in m.RULES if not r.dynamic} == {"skip_name_resolve", "bind_address"}


@pytest.mark.parametrize("variable, sql", [
    ("sql_mode", "SET GLOBAL sql_mode = 'NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES'"),
    ("max_connections", "SET GLOBAL max_connections = 1000"),
    ("log_bin_trust_function_creators", "SET GLOBAL log_bin_trust_function_creators = ON"),
    ("connect_timeout", "SET GLOBAL connect_timeout = 36000"),
    ("skip_host_cache", "SET GLOBAL host_cache_size = 0"),
])
def test_set_global_sql(variable: str, sql: str) -> None:
    finding = next(f for f in m.config_findings({"skip_host_cache": "OFF"}) if f.variable == variable)
    assert m.set_global_sql(finding) == sql


def test_judge_config() -> None:
    assert m.judge_config([], GOOD).status is Status.OK
    result = m.judge_config(m.config_findings({**GOOD, "max_connections": "151"}), GOOD)
    assert (result.status, result.reason) == (Status.FAIL, Reason.MISCONFIGURED)
    assert result.details["findings"][0]["variable"] == "max_connections"


def test_cnf_carries_every_rule() -> None:
    text = m.STACKBILL_CNF
    for needle in ("bind-address = 0.0.0.0", "NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES", "max_connections = 1000",
                   "max_connect_errors = 100000", "skip-name-resolve", "skip-host-cache",
                   "log_bin_trust_function_creators = 1", "wait_timeout = 28800", "interactive_timeout = 230400",
                   "connect_timeout = 36000"):
        assert needle in text


def row(ip: str, errors: int, blocked: int = 0) -> dict:
    return {"ip": ip, "host": None, "sum_connect_errors": errors, "count_host_blocked_errors": blocked}


@pytest.mark.parametrize("rows, limit, ips", [
    ([], 100, []),
    ([row("10.42.0.7", 3)], 100, []),
    ([row("10.42.0.7", 100)], 100, ["10.42.0.7"]),
    ([row("10.42.0.7", 0, blocked=2), row("10.42.0.8", 1)], 100, ["10.42.0.7"]),
    ([row("127.0.0.2", 1)], 1, ["127.0.0.2"]),
])
def test_blocked_hosts(rows: list[dict], limit: int, ips: list[str]) -> None:
    assert [h["ip"] for h in m.blocked_hosts(rows, limit)] == ips


def cache(rows, ps=True, size=128, snr=False, mce=100, why=""):
    return m.HostCache(ps, mce, snr, size, None if rows is None else tuple(rows), why)


@pytest.mark.parametrize("view, own, status, reason", [
    (cache([row("10.42.0.7", 100)]), False, Status.FAIL, Reason.HOST_BLOCKED),
    (cache([row("10.42.0.7", 1)]), False, Status.OK, Reason.NONE),
    (cache([]), True, Status.FAIL, Reason.HOST_BLOCKED),
    (cache([], size=0), False, Status.OK, Reason.NONE),
    (cache(None, ps=False, why="performance_schema is OFF"), True, Status.FAIL, Reason.HOST_BLOCKED),
    (cache(None, ps=False, why="performance_schema is OFF"), False, Status.WARN, Reason.NO_ACCESS),
    (cache(None, ps=False, size=0), False, Status.OK, Reason.NONE),
    (None, True, Status.FAIL, Reason.HOST_BLOCKED),
    (None, False, Status.SKIP, Reason.NO_ACCESS),
])
def test_judge_host_blocked(view, own: bool, status: Status, reason: Reason) -> None:
    result = m.judge_host_blocked(view, own, "stackbill@10.0.0.5:3306", "no MySQL login works")
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize("version, readable, statements", [
    ("10.11.19-MariaDB", True, ["FLUSH HOSTS", "TRUNCATE TABLE performance_schema.host_cache"]),
    ("10.11.19-MariaDB", False, ["FLUSH HOSTS"]),
    ("8.0.22", True, ["FLUSH HOSTS", "TRUNCATE TABLE performance_schema.host_cache"]),
    ("8.0.36", True, ["TRUNCATE TABLE performance_schema.host_cache"]),
    ("8.0.36", False, ["FLUSH HOSTS"]),
])
def test_flush_statements(version: str, readable: bool, statements: list[str]) -> None:
    assert m.flush_statements(version, readable) == statements


@pytest.mark.parametrize("snr, mce, size, noted", [
    (False, 1, 128, True), (False, 100, 128, True), (True, 1, 128, False), (False, 100000, 128, False),
    (False, 1, 0, False),
])
def test_blocking_notes(snr: bool, mce: int, size: int, noted: bool) -> None:
    notes = m.blocking_notes(cache([], snr=snr, mce=mce, size=size))
    assert bool(notes) is noted
    assert all("mysql-config" in n for n in notes)


MARIADB_ALL = "GRANT ALL PRIVILEGES ON *.* TO `stackbill`@`%` IDENTIFIED BY PASSWORD '*368DA4F8' WITH GRANT OPTION"
MYSQL8_STATIC = ("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD ON *.* TO `stackbill`@`%` "
                 "WITH GRANT OPTION")
MYSQL8_DYNAMIC = "GRANT BACKUP_ADMIN,SYSTEM_USER ON *.* TO `stackbill`@`%` WITH GRANT OPTION"
MYSQL8_PRIVS = ["Select", "Insert", "Update", "Delete", "Create", "Drop", "Reload", "Grant option", "Usage",
                "Proxy", "BACKUP_ADMIN", "SYSTEM_USER"]


@pytest.mark.parametrize("lines, privs, expected", [
    ([MARIADB_ALL], [], (True, True, [])),
    (["GRANT ALL PRIVILEGES ON *.* TO `stackbill`@`%`"], [], (True, False, [])),
    (["GRANT USAGE ON *.* TO `stackbill`@`%`"], ["Select"], (False, False, ["SELECT"])),
    (["GRANT USAGE ON *.* TO `stackbill`@`%`", "GRANT ALL PRIVILEGES ON `stackbill`.* TO `stackbill`@`%`"],
     ["Select"], (False, False, ["SELECT"])),
    ([MYSQL8_STATIC, MYSQL8_DYNAMIC], MYSQL8_PRIVS, (True, True, [])),
    ([MYSQL8_STATIC], MYSQL8_PRIVS, (False, True, ["BACKUP_ADMIN", "SYSTEM_USER"])),
    (["GRANT USAGE ON *.* TO `stackbill`@`%`"], [], (False, False, ["ALL PRIVILEGES"])),
])
def test_global_grants(lines: list[str], privs: list[str], expected: tuple) -> None:
    assert m.global_grants(lines, privs) == expected


def test_mask_grant() -> None:
    masked = m.mask_grant(MARIADB_ALL)
    assert "368DA4F8" not in masked and "PASSWORD '****'" in masked


def test_native_hash() -> None:
    # SELECT PASSWORD('LabPassw0rd12345') on MariaDB 10.11
    assert m.native_hash("LabPassw0rd12345") == "*368DA4F82933AEC47A74F2BE3DC5DD334681DBB8"


PW = "s3cretPassw0rd"


def account(host: str, plugin: str = m.NATIVE, password: str | None = PW, grants: tuple = (MARIADB_ALL,)):
    return m.Account(host, plugin, None if password is None else m.native_hash(password), grants)


@pytest.mark.parametrize("accounts, expected", [
    ({"%": account("%"), "localhost": account("localhost")}, []),
    ({"%": account("%", plugin="")}, [("localhost", "missing")]),  # '' is the old native default
    ({}, [("%", "missing"), ("localhost", "missing")]),
    ({"%": account("%", plugin="caching_sha2_password"), "localhost": account("localhost")}, [("%", "plugin")]),
    ({"%": account("%", password="other"), "localhost": account("localhost")}, [("%", "password")]),
    ({"%": account("%", password=None), "localhost": account("localhost")}, []),  # hash unreadable: not judged
    ({"%": account("%", grants=("GRANT USAGE ON *.* TO `stackbill`@`%`",)), "localhost": account("localhost")},
     [("%", "grants")]),
])
def test_user_findings(accounts: dict, expected: list[tuple[str, str]]) -> None:
    found = m.user_findings(accounts, PW, ["Select", "Insert"])
    assert [(f.host, f.kind) for f in found] == expected


def test_user_plugin_summary() -> None:
    accounts = {"%": account("%", plugin="caching_sha2_password"), "localhost": account("localhost")}
    result = m.judge_user(m.user_findings(accounts, PW), accounts)
    assert (result.status, result.reason, result.code) == (Status.FAIL, Reason.MISCONFIGURED, "SB2052")
    assert [(f["account"], f["problem"]) for f in result.details["findings"]] == [("'stackbill'@'%'", "plugin")]


def test_user_missing_reason() -> None:
    result = m.judge_user(m.user_findings({}, PW), {})
    assert (result.status, result.reason) == (Status.FAIL, Reason.MISSING)


@pytest.mark.parametrize("kinds, mariadb, expected", [
    (["missing"], True, ["CREATE USER 'stackbill'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('****')",
                         "GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'%' WITH GRANT OPTION"]),
    (["missing"], False, ["CREATE USER 'stackbill'@'%' IDENTIFIED WITH mysql_native_password BY '****'",
                          "GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'%' WITH GRANT OPTION"]),
    (["plugin"], False, ["ALTER USER 'stackbill'@'%' IDENTIFIED WITH mysql_native_password BY '****'"]),
    (["password", "grants"], True,
     ["ALTER USER 'stackbill'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('****')",
      "GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'%' WITH GRANT OPTION"]),
    (["grants"], True, ["GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'%' WITH GRANT OPTION"]),
])
def test_user_statements(kinds: list[str], mariadb: bool, expected: list[str]) -> None:
    findings = [m.UserFinding("%", k, "") for k in kinds]
    ((_, statements),) = m.user_statements(findings, "stackbill", mariadb)
    assert [s.shown for s in statements] == expected
    for st in statements:  # executable form: the password is a parameter, % escaped for PyMySQL
        assert ("%s" in st.sql) is st.secret
        assert "'%%'" in st.sql or not st.secret


def test_account_name_is_validated() -> None:
    with pytest.raises(ValueError):
        m.account_sql("stackbill'; DROP USER root; --", "%", escape=False)


@pytest.mark.parametrize("present, missing", [
    (["stackbill", "configuration", "mysql"], []),
    (["STACKBILL", "configuration"], []),
    (["stackbill"], ["configuration"]),
    ([], ["stackbill", "configuration"]),
])
def test_missing_databases(present: list[str], missing: list[str]) -> None:
    assert m.missing_databases(present, m.DATABASES) == missing
    result = m.judge_schema(missing, m.DATABASES)
    assert result.reason is (Reason.MISSING if missing else Reason.NONE)


def test_create_database_sql() -> None:
    assert m.create_database_sql("configuration") == "CREATE DATABASE IF NOT EXISTS `configuration`"
    with pytest.raises(ValueError):
        m.create_database_sql("x`; DROP DATABASE mysql; --")


@pytest.mark.parametrize("threads, maximum, status, reason, fix", [
    (10, 1000, Status.OK, Reason.NONE, None),
    (799, 1000, Status.OK, Reason.NONE, None),
    (800, 1000, Status.WARN, Reason.DEGRADED, None),
    (1000, 1000, Status.FAIL, Reason.TOO_MANY_CONNECTIONS, None),
    (1001, 1000, Status.FAIL, Reason.TOO_MANY_CONNECTIONS, None),
    (9, 10, Status.WARN, Reason.DEGRADED, "mysql-config"),
    (10, 10, Status.FAIL, Reason.TOO_MANY_CONNECTIONS, "mysql-config"),
])
def test_judge_connections(threads: int, maximum: int, status: Status, reason: Reason, fix: str | None) -> None:
    result = m.judge_connections(threads, maximum)
    assert (result.status, result.reason, result.fix) == (status, reason, fix)


@pytest.mark.parametrize("code, reason, fix", [
    (1045, Reason.AUTH_FAILED, "mysql-user"),
    (1129, Reason.HOST_BLOCKED, "mysql-blocked-host"),
    (1040, Reason.TOO_MANY_CONNECTIONS, "mysql-config"),
])
def test_judge_login_error(code: int, reason: Reason, fix: str) -> None:
    err = m.LoginError("stackbill@10.0.0.5:3306", FakeMySQLError(code, "whatever"))
    result = m.judge_login_error(err)
    assert (result.status, result.reason, result.fix) == (Status.FAIL, reason, fix)
    assert result.details["error_code"] == code


def test_probes_module_does_not_import_pymysql() -> None:
    import subprocess
    import sys

    code = "import sys, sbops.probes.mysql, sbops.checks.mysql, sbops.fixes.mysql; print('pymysql' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
