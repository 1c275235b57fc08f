"""MySQL layer against a real MariaDB 10.11 (tests/lab/mariadb.py): break it as a user would, check, fix.

Every check id appears here: "mysql.reachable", "mysql.auth", "mysql.host-blocked", "mysql.config",
"mysql.schema", "mysql.user", "mysql.connections".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.lab.common import Blackhole, free_port
from tests.lab.env import LabEnv, status, fix_json
from tests.lab.mariadb import LAB_PASSWORD, MariaDB


ALL = ("mysql.reachable", "mysql.auth", "mysql.host-blocked", "mysql.config", "mysql.schema", "mysql.user",
       "mysql.connections")


def lab_env(root: Path, server: MariaDB | None, *, port: int | None = None, password: str = LAB_PASSWORD,
            timeout: float = 5) -> LabEnv:
    """A LabEnv aimed at `server` (never at the machine's own MariaDB: the admin socket is the lab's)."""
    env = LabEnv(root).service("mysql", port=port or (server.port if server else free_port()), password=password)
    env.set("timeout", timeout)
    if server is not None:
        env.set("mysql.admin_socket", str(server.socket))
        env.set("mysql.config_dir", str(server.conf_d))
        env.set("mysql.restart_command", str(server.restart_script))
    else:
        env.set("mysql.admin_socket", str(root / "no-such.sock"))
    return env


@pytest.fixture
def seeded(mariadb_factory) -> MariaDB:
    """A fresh server set up like the installer's (stackbill.cnf, databases, users)."""
    return mariadb_factory().seed_stackbill(LAB_PASSWORD)


@pytest.fixture
def bare(mariadb_factory) -> MariaDB:
    """A fresh server started without stackbill.cnf (bind 127.0.0.1, name resolution on), users seeded."""
    return mariadb_factory(bind="127.0.0.1", stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)


# -- healthy -------------------------------------------------------------------------------------------
def test_seeded_server_passes_every_check(mariadb_seeded: MariaDB, tmp_path: Path) -> None:
    results = lab_env(tmp_path, mariadb_seeded).doctor("mysql.*")
    assert {cid: status(results[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}
    assert "MariaDB" in results["mysql.reachable"]["details"]["version"]


def test_fixes_have_nothing_to_do_on_a_healthy_server(mariadb_seeded: MariaDB, tmp_path: Path) -> None:
    env = lab_env(tmp_path, mariadb_seeded)
    for name in ("mysql-user", "mysql-schema", "mysql-config", "mysql-blocked-host"):
        code, out = fix_json(env, name)
        assert code == 0 and out["plan"]["changes"] == [] and out["plan"]["nothing_to_do"], (name, out)


# -- reachable -----------------------------------------------------------------------------------------
def test_stopped_server_is_refused(mariadb_factory, tmp_path: Path) -> None:
    server = mariadb_factory()
    server.stop()
    results = lab_env(tmp_path, server).doctor("mysql.*")
    assert status(results["mysql.reachable"]) == ("fail", "refused")
    assert status(results["mysql.auth"]) == ("skip", "blocked")


def test_blackholed_port_times_out(tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        env = lab_env(tmp_path, None, port=hole.port, timeout=1.5)
        began = time.monotonic()
        assert status(env.check("mysql.reachable")) == ("fail", "timeout")
        assert status(env.check("mysql.auth")) == ("fail", "timeout")
        assert time.monotonic() - began < 20
    finally:
        hole.close()


# -- auth and user ---------------------------------------------------------------------------------------
def test_wrong_password_in_credentials_file(seeded: MariaDB, tmp_path: Path) -> None:
    wrong = "WrongPassw0rd999"
    env = lab_env(tmp_path, seeded, password=wrong)
    results = env.doctor("mysql.*")
    assert status(results["mysql.reachable"]) == ("ok", "none")
    assert status(results["mysql.auth"]) == ("fail", "auth_failed")
    assert results["mysql.auth"]["details"]["error_code"] == 1045
    assert status(results["mysql.user"]) == ("fail", "misconfigured")

    dry = env.sbops("fix", "mysql-user", "--dry-run")
    assert dry.returncode == 0 and wrong not in dry.stdout and "'****'" in dry.stdout
    assert status(env.check("mysql.auth")) == ("fail", "auth_failed")

    code, out = fix_json(env, "mysql-user")
    assert code == 0, out
    assert wrong not in json.dumps(out)
    assert status(env.check("mysql.auth")) == ("ok", "none")
    assert status(env.check("mysql.user")) == ("ok", "none")


def test_dropped_user(seeded: MariaDB, tmp_path: Path) -> None:
    seeded.sql("DROP USER 'stackbill'@'%'", "DROP USER 'stackbill'@'localhost'")
    env = lab_env(tmp_path, seeded)
    results = env.doctor("mysql.*")
    assert status(results["mysql.auth"]) == ("fail", "auth_failed")
    assert results["mysql.auth"]["fix"] == "mysql-user"
    assert status(results["mysql.user"]) == ("fail", "missing")

    env.set("mysql.admin_user", "nobody")  # no admin login, and the stackbill login is gone: blocked
    code, out = fix_json(env, "mysql-user")
    assert code == 3 and out["outcome"] == "blocked" and "no MySQL login works" in out["plan"]["blockers"][0]
    assert status(env.check("mysql.user")) == ("skip", "no_access")
    env.set("mysql.admin_user", "root")

    code, out = fix_json(env, "mysql-user")
    assert code == 0, out
    assert len(out["plan"]["changes"]) == 2
    assert status(env.check("mysql.user")) == ("ok", "none")
    assert status(env.check("mysql.auth")) == ("ok", "none")


def test_wrong_plugin_and_missing_grant(seeded: MariaDB, tmp_path: Path) -> None:
    seeded.sql("ALTER USER 'stackbill'@'localhost' IDENTIFIED VIA unix_socket",
               "REVOKE GRANT OPTION ON *.* FROM 'stackbill'@'%'")
    env = lab_env(tmp_path, seeded)
    result = env.check("mysql.user")
    assert status(result) == ("fail", "misconfigured")
    problems = {(f["account"], f["problem"]) for f in result["details"]["findings"]}
    assert problems == {("'stackbill'@'localhost'", "plugin"), ("'stackbill'@'%'", "grants")}
    assert env.sbops("fix", "mysql-user", "--dry-run").returncode == 0
    assert status(env.check("mysql.user")) == ("fail", "misconfigured")
    code, out = fix_json(env, "mysql-user")
    assert code == 0, out
    assert status(env.check("mysql.user")) == ("ok", "none")


# -- schema ------------------------------------------------------------------------------------------------
def test_dropped_database(seeded: MariaDB, tmp_path: Path) -> None:
    seeded.sql("DROP DATABASE configuration")
    env = lab_env(tmp_path, seeded)
    result = env.check("mysql.schema")
    assert status(result) == ("fail", "missing") and result["details"]["missing"] == ["configuration"]
    assert env.sbops("fix", "mysql-schema", "--dry-run").returncode == 0
    assert status(env.check("mysql.schema")) == ("fail", "missing")
    code, out = fix_json(env, "mysql-schema")
    assert code == 0, out
    assert status(env.check("mysql.schema")) == ("ok", "none")


# -- host blocked --------------------------------------------------------------------------------------------
def test_blocked_pod_host_seen_in_host_cache_and_flushed(bare: MariaDB, tmp_path: Path) -> None:
    bare.block_host("127.0.0.2")
    env = lab_env(tmp_path, bare)
    result = env.check("mysql.host-blocked")  # sbops itself (127.0.0.1) is fine; the cache names 127.0.0.2
    assert status(result) == ("fail", "host_blocked")
    assert [h["ip"] for h in result["details"]["blocked"]] == ["127.0.0.2"]

    env.set("mysql.source_address", "127.0.0.2")  # sbops's own logins now come from the blocked address
    results = env.doctor("mysql.*")
    assert status(results["mysql.auth"]) == ("fail", "host_blocked")
    assert results["mysql.auth"]["fix"] == "mysql-blocked-host"
    assert results["mysql.auth"]["details"]["error_code"] == 1129

    dry = env.sbops("fix", "mysql-blocked-host", "--dry-run")
    assert dry.returncode == 0 and "FLUSH HOSTS" in dry.stdout and "mysql-config" in dry.stdout
    assert status(env.check("mysql.host-blocked")) == ("fail", "host_blocked")

    code, out = fix_json(env, "mysql-blocked-host")
    assert code == 0, out
    assert any("mysql-config" in note for note in out["plan"]["notes"])
    results = env.doctor("mysql.*")
    assert status(results["mysql.host-blocked"]) == ("ok", "none")
    assert status(results["mysql.auth"]) == ("ok", "none")


def test_blocked_host_without_performance_schema(mariadb_factory, tmp_path: Path) -> None:
    server = mariadb_factory(bind="127.0.0.1", stackbill_cnf=False, performance_schema=False)
    server.seed_stackbill(LAB_PASSWORD)
    server.block_host("127.0.0.2")
    env = lab_env(tmp_path, server)
    result = env.check("mysql.host-blocked")  # cannot list pod hosts, and says why
    assert status(result) == ("warn", "no_access") and result["code"] == "SB2025"  # MysqlBlockedHostsUnlisted
    assert result["details"]["performance_schema"] is False
    env.set("mysql.source_address", "127.0.0.2")
    assert status(env.check("mysql.host-blocked")) == ("fail", "host_blocked")  # from its own login's 1129
    code, out = fix_json(env, "mysql-blocked-host")
    assert out["plan"]["changes"][0]["commands"] == ["FLUSH HOSTS"]
    after = {c["id"]: (c["status"], c["reason"]) for c in out["checks"]}
    assert after["mysql.auth"] == ("ok", "none")
    # unblocked; without performance_schema the pods' hosts cannot be listed (warn no_access), which
    # says nothing against the repair, so the fix counts as fixed
    assert after["mysql.host-blocked"] == ("warn", "no_access") and code == 0


# -- config ----------------------------------------------------------------------------------------------------
def test_server_without_stackbill_cnf(bare: MariaDB, tmp_path: Path) -> None:
    bare.sql("SET GLOBAL sql_mode = ''")  # and someone cleared sql_mode by hand
    env = lab_env(tmp_path, bare)
    result = env.check("mysql.config")
    assert status(result) == ("fail", "misconfigured")
    bad = {f["variable"] for f in result["details"]["findings"]}
    assert bad == {"skip_name_resolve", "bind_address", "max_connections", "sql_mode", "connect_timeout",
                   "interactive_timeout", "log_bin_trust_function_creators", "skip_host_cache"}
    sql_mode = next(f for f in result["details"]["findings"] if f["variable"] == "sql_mode")
    assert sql_mode["missing"] == ["NO_ENGINE_SUBSTITUTION", "STRICT_TRANS_TABLES"] and sql_mode["extra"] == []
    assert result["details"]["files"]["read"] == [str(bare.root / "my.cnf")]  # found from its --defaults-file
    cnf = bare.conf_d / "stackbill.cnf"

    dry = env.sbops("fix", "mysql-config", "--dry-run")
    assert dry.returncode == 0 and f"+++ {cnf} (new)" in dry.stdout and "+skip-host-cache" in dry.stdout
    assert not cnf.exists()

    code, out = fix_json(env, "mysql-config")  # no --restart: online part only, restart pending
    assert code == 3
    (written,) = [f for c in out["plan"]["changes"] for f in c["files"]]
    assert written["path"] == str(cnf) and written["before"] is None and "skip-host-cache" in written["after"]
    assert any("restart pending" in n for n in out["plan"]["notes"])
    assert cnf.exists() and oct(cnf.stat().st_mode & 0o777) == "0o644"
    still = {f["variable"] for f in env.check("mysql.config")["details"]["findings"]}
    assert still == {"skip_name_resolve", "bind_address"}

    code, out = fix_json(env, "mysql-config", "--restart")
    assert code == 0, out
    assert status(env.check("mysql.config")) == ("ok", "none")
    assert bare.running


# -- connections -------------------------------------------------------------------------------------------------
def test_connections_near_and_at_the_limit(seeded: MariaDB, tmp_path: Path) -> None:
    seeded.sql("SET GLOBAL max_connections = 10")
    env = lab_env(tmp_path, seeded)
    held = []
    try:
        held += [seeded.connect() for _ in range(7)]  # + sbops's own login = 8 of 10
        result = env.check("mysql.connections")
        assert status(result) == ("warn", "degraded") and result["fix"] == "mysql-config"
        held += [seeded.connect() for _ in range(2)]  # + sbops's = 10 of 10
        assert status(env.check("mysql.connections")) == ("fail", "too_many_connections")
        held += [seeded.connect() for _ in range(2)]  # the last slot, and the one extra kept for CONNECTION ADMIN
        result = env.check("mysql.auth")
        assert status(result) == ("fail", "too_many_connections")
        assert result["details"]["error_code"] == 1040
    finally:
        for conn in held:
            conn.close()
    code, out = fix_json(env, "mysql-config")  # raises max_connections back to 1000, online
    assert code == 0, out
    assert status(env.check("mysql.connections")) == ("ok", "none")


# -- which server a login reaches (two servers at once) -------------------------------------------------------
def blocks(server: MariaDB, source: str = "127.0.0.2") -> bool:
    """Whether `server` turns away a login from `source` with error 1129."""
    import pymysql

    try:
        server.connect("stackbill", LAB_PASSWORD, host="127.0.0.1", bind_address=source).close()
    except pymysql.MySQLError as exc:
        return exc.args[0] == 1129
    return False


def test_admin_socket_of_another_server_is_refused(mariadb_factory, tmp_path: Path) -> None:
    """The credentials file names one server; the admin socket leads to a second one (the issue's case)."""
    named = mariadb_factory(bind="127.0.0.1", stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)
    other = mariadb_factory(bind="127.0.0.1", stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)
    named.block_host("127.0.0.2")
    other.block_host("127.0.0.2")
    env = lab_env(tmp_path, named)
    env.set("mysql.admin_socket", str(other.socket))  # never the machine's /run/mysqld/mysqld.sock
    env.set("mysql.source_address", "127.0.0.2")  # the stackbill login is down: Host:Port decides

    results = env.doctor("mysql.*")
    assert status(results["mysql.auth"]) == ("fail", "host_blocked")
    assert status(results["mysql.host-blocked"]) == ("fail", "host_blocked")
    assert results["mysql.host-blocked"]["code"] == "SB2022"  # blocks this machine, others unlisted
    assert f"port {other.port}" in results["mysql.host-blocked"]["summary"]  # names the server it refused to read
    config = env.check("mysql.config")  # nothing read through the other server is trusted
    assert status(config) == ("skip", "wrong_server") and config["code"] == "SB2009"
    assert config["details"]["reached"]["port"] == other.port and f"port {other.port}" in config["summary"]

    code, out = fix_json(env, "mysql-blocked-host")
    assert code == 3 and out["outcome"] == "blocked" and out["plan"]["changes"] == []
    assert "refusing" in out["plan"]["blockers"][0] and f"port {other.port}" in out["plan"]["blockers"][0]
    assert blocks(other) and blocks(named)  # neither server was changed

    # the stackbill login works again (another source address): the servers' own identities are compared,
    # and a fix that prefers the admin login writes through the stackbill login instead
    env.set("mysql.source_address", "")
    named.sql("DROP DATABASE configuration")
    other.sql("DROP DATABASE configuration")
    code, out = fix_json(env, "mysql-user")
    assert code == 0 and any(f"port {other.port}" in n for n in out["plan"]["notes"]), out
    code, out = fix_json(env, "mysql-schema")
    assert code == 0, out
    assert named.sql("SHOW DATABASES LIKE 'configuration'") and not other.sql("SHOW DATABASES LIKE 'configuration'")

    # the admin socket of the named server: the fix repairs it, and only it
    env.set("mysql.admin_socket", str(named.socket))
    env.set("mysql.source_address", "127.0.0.2")
    code, out = fix_json(env, "mysql-blocked-host")
    assert code == 0 and out["outcome"] == "fixed", out
    assert not blocks(named) and blocks(other)
    code, out = fix_json(env, "mysql-blocked-host")  # and leaves a working server alone
    assert code == 0 and out["plan"]["changes"] == [] and out["plan"]["nothing_to_do"]


# -- the option files the server really reads ----------------------------------------------------------------
def test_dropin_that_nothing_includes(mariadb_factory, tmp_path: Path) -> None:
    """my.cnf has no !includedir: the installer's stackbill.cnf sits in conf.d and is never read."""
    server = mariadb_factory(bind="127.0.0.1", includedir=False).seed_stackbill(LAB_PASSWORD)
    env = lab_env(tmp_path, server)
    dropin, my_cnf = server.conf_d / "stackbill.cnf", server.root / "my.cnf"
    result = env.check("mysql.config")
    assert status(result) == ("fail", "not_read")
    assert result["details"]["files"]["unread_dropins"] == [str(dropin)]

    dry = env.sbops("fix", "mysql-config", "--dry-run", "--restart")
    assert dry.returncode == 0 and f"+!includedir {server.conf_d}" in dry.stdout
    assert "survive restarts" not in dry.stdout
    assert "!includedir" not in my_cnf.read_text()

    code, out = fix_json(env, "mysql-config", "--restart")
    assert code == 0, out
    (diff,) = [f for c in out["plan"]["changes"] for f in c["files"]]  # the drop-in itself was already right
    assert diff["path"] == str(my_cnf) and diff["after"].endswith(f"!includedir {server.conf_d}\n")
    assert server.running and status(env.check("mysql.config")) == ("ok", "none")
    assert sorted(p.name for p in server.conf_d.glob("*.cnf")) == ["stackbill.cnf"]
    code, out = fix_json(env, "mysql-config")
    assert code == 0 and out["plan"]["changes"] == []


def test_current_installers_99_stackbill_cnf_is_adopted(mariadb_factory, tmp_path: Path) -> None:
    """The current script's 99-stackbill.cnf, edited to add ONLY_FULL_GROUP_BY: the exact-set test sees it,
    and the fix edits that file instead of writing a second one."""
    server = mariadb_factory(dropin="99-stackbill.cnf").seed_stackbill(LAB_PASSWORD)
    dropin = server.conf_d / "99-stackbill.cnf"
    text = dropin.read_text().replace("sql_mode = NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES",
                                      "sql_mode = ONLY_FULL_GROUP_BY,NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES")
    dropin.write_text(text + "\n[client]\ndefault-character-set = utf8mb4\n")
    server.restart()
    env = lab_env(tmp_path, server)
    env.set("mysql.config_dir", "")  # the default layout does not exist here: the chain alone finds the file
    result = env.check("mysql.config")
    assert status(result) == ("fail", "misconfigured")
    (finding,) = result["details"]["findings"]
    assert (finding["variable"], finding["extra"], finding["missing"]) == ("sql_mode", ["ONLY_FULL_GROUP_BY"], [])

    code, out = fix_json(env, "mysql-config")
    assert code == 0, out
    (diff,) = [f for c in out["plan"]["changes"] for f in c["files"]]
    assert diff["path"] == str(dropin)
    assert "-sql_mode = ONLY_FULL_GROUP_BY" in diff["diff"] and "+sql_mode = NO_ENGINE_SUBSTITUTION" in diff["diff"]
    assert sorted(p.name for p in server.conf_d.glob("*.cnf")) == ["99-stackbill.cnf"]  # no second file
    assert "default-character-set = utf8mb4" in dropin.read_text()  # the rest of the file is kept
    assert status(env.check("mysql.config")) == ("ok", "none")
    server.restart()  # and it survives a restart, because the server reads that file
    assert status(env.check("mysql.config")) == ("ok", "none")


def test_loopback_bound_server_is_repaired_through_its_socket(mariadb_factory, tmp_path: Path) -> None:
    """bind-address 127.0.0.1 while the credentials file names another address of this machine: nothing answers
    there, so the socket's server (same port) is the one meant, and mysql-config may repair its bind-address."""
    server = mariadb_factory(bind="127.0.0.1", stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)
    env = lab_env(tmp_path, server)
    env.service("mysql", host="127.0.0.2", port=server.port, password=LAB_PASSWORD)
    assert status(env.check("mysql.reachable")) == ("fail", "refused")
    code, out = fix_json(env, "mysql-config", "--restart")
    assert code == 0, out
    assert any(f["path"] == str(server.conf_d / "stackbill.cnf") for c in out["plan"]["changes"] for f in c["files"])
    results = env.doctor("mysql.*")
    assert status(results["mysql.reachable"]) == ("ok", "none") and status(results["mysql.config"]) == ("ok", "none")
