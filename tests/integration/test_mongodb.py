"""MongoDB layer against a real MongoDB-wire server (SecantusDB, tests/lab/mongodb.py) through the real CLI.

Each scenario breaks the server the way a user's would and asserts the check's status and reason;
each fix is applied with `sbops fix NAME --yes` and must make the failing check pass.
"""

from __future__ import annotations

import json
from pathlib import Path


from tests.lab.common import Blackhole
from tests.lab.env import LabEnv, fix_json
from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, MONGO_PASSWORD, MongoLab


def make_env(tmp_path: Path, lab: MongoLab, *, password: str = MONGO_PASSWORD, admin: bool = False,
             port: int | None = None, host: str = "127.0.0.1") -> LabEnv:
    env = LabEnv(tmp_path / "env").service("mongodb", host=host, port=port or lab.port, password=password)
    env.set("mongodb.config_file", str(lab.conf_path)).set("mongodb.restart_command", lab.restart_command())
    if admin:
        env.set("mongodb.admin_user", LAB_ADMIN).set("mongodb.admin_password", MONGO_ADMIN_PASSWORD)
    return env


ADMIN = (LAB_ADMIN, MONGO_ADMIN_PASSWORD)


# -- healthy --------------------------------------------------------------------------------------------
def test_healthy_server_passes(tmp_path: Path, mongo_shared: MongoLab) -> None:
    checks = make_env(tmp_path, mongo_shared).doctor("mongodb.*")
    for cid in ("mongodb.reachable", "mongodb.auth", "mongodb.user", "mongodb.authorization", "mongodb.bind"):
        assert checks[cid]["status"] == "ok", checks[cid]
    assert {cid: checks[cid]["code"] for cid in checks} == {
        "mongodb.reachable": "SB3000", "mongodb.auth": "SB3010", "mongodb.user": "SB3030",
        "mongodb.authorization": "SB3021", "mongodb.bind": "SB3040", "mongodb.version": "SB3053"}
    assert checks["mongodb.reachable"]["details"]["maxWireVersion"] >= 17
    assert checks["mongodb.bind"]["details"]["source"].startswith("config file")
    # SecantusDB reports 8.2.x: not the 7.x the installer pins
    assert (checks["mongodb.version"]["status"], checks["mongodb.version"]["reason"]) == ("warn", "misconfigured")
    assert checks["mongodb.version"]["details"]["version"].startswith("8.")


def test_fixes_have_nothing_to_do_on_a_healthy_server(tmp_path: Path, mongo_shared: MongoLab) -> None:
    env = make_env(tmp_path, mongo_shared)
    code, out = fix_json(env, "mongodb-user")
    assert code == 0 and out["plan"]["nothing_to_do"] and not out["plan"]["changes"], out
    code, out = fix_json(env, "mongodb-config")
    assert code == 0 and out["plan"]["nothing_to_do"], out


# -- mongodb.reachable ----------------------------------------------------------------------------------
def test_stopped_server_is_refused(tmp_path: Path, mongo_lab: MongoLab) -> None:
    mongo_lab.stop()
    checks = make_env(tmp_path, mongo_lab).doctor("mongodb.*")
    assert (checks["mongodb.reachable"]["status"], checks["mongodb.reachable"]["reason"]) == ("fail", "refused")
    for cid in ("mongodb.auth", "mongodb.user", "mongodb.authorization", "mongodb.version"):
        assert (checks[cid]["status"], checks[cid]["reason"]) == ("skip", "blocked"), checks[cid]


def test_blackholed_port_times_out(tmp_path: Path, mongo_shared: MongoLab) -> None:
    hole = Blackhole()
    try:
        env = make_env(tmp_path, mongo_shared, port=hole.port).set("timeout", 2)
        result = env.check("mongodb.reachable")
    finally:
        hole.close()
    assert (result["status"], result["reason"]) == ("fail", "timeout")
    assert result["duration_seconds"] < 4


def test_unresolvable_host_is_unreachable(tmp_path: Path, mongo_shared: MongoLab) -> None:
    result = make_env(tmp_path, mongo_shared, host="no-such-host.invalid").check("mongodb.reachable")
    assert (result["status"], result["reason"]) == ("fail", "unreachable")


# -- mongodb.auth / mongodb.user / mongodb-user -----------------------------------------------------------
def test_wrong_password_in_credentials_file(tmp_path: Path, mongo_shared: MongoLab) -> None:
    env = make_env(tmp_path, mongo_shared, password="WrongPassword123")
    checks = env.doctor("mongodb.*")
    assert (checks["mongodb.auth"]["status"], checks["mongodb.auth"]["reason"]) == ("fail", "auth_failed")
    assert checks["mongodb.auth"]["code"] == "SB3011" and checks["mongodb.auth"]["details"]["code"] == 18
    assert checks["mongodb.auth"]["fix"] == "mongodb-user"
    assert "WrongPassword123" not in json.dumps(checks)
    # without an admin login sbops cannot look at the users
    assert (checks["mongodb.user"]["status"], checks["mongodb.user"]["reason"]) == ("skip", "no_access")
    # an admin user without a password is no admin login either (and must not crash the check)
    env.set("mongodb.admin_user", LAB_ADMIN)
    user = env.check("mongodb.user")
    assert (user["status"], user["reason"]) == ("skip", "no_access")


def test_mongodb_user_resets_a_wrong_password(tmp_path: Path, mongo_lab: MongoLab) -> None:
    env = make_env(tmp_path, mongo_lab, password="NewPasswordFromFile1", admin=True)
    assert env.check("mongodb.auth")["reason"] == "auth_failed"
    assert env.check("mongodb.user")["status"] == "ok"  # the user exists: only the password differs
    code, out = fix_json(env, "mongodb-user", "--dry-run")
    assert code == 0 and "reset its password" in out["plan"]["changes"][0]["description"]
    assert "NewPasswordFromFile1" not in json.dumps(out)
    assert env.check("mongodb.auth")["reason"] == "auth_failed"  # dry run changed nothing
    proc = env.fix("mongodb-user")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NewPasswordFromFile1" not in proc.stdout + proc.stderr
    assert env.check("mongodb.auth")["status"] == "ok"
    mongo_lab.command("ping", login=("stackbill", "NewPasswordFromFile1"))


def test_dropped_user_blocked_without_admin_then_fixed_with_admin(tmp_path: Path, mongo_lab: MongoLab) -> None:
    mongo_lab.command("dropUser", "stackbill", login=ADMIN)
    env = make_env(tmp_path, mongo_lab)
    result = env.check("mongodb.auth")
    assert (result["status"], result["reason"]) == ("fail", "auth_failed")

    # auth is on, no admin login configured and SecantusDB has no localhost exception: a blocker, nothing changed
    code, out = fix_json(env, "mongodb-user")
    assert code == 3 and out["outcome"] == "blocked", out
    assert "mongodb.admin_user" in out["plan"]["blockers"][0]
    assert "localhost exception" in out["plan"]["blockers"][0]
    assert "stackbill" not in mongo_lab.users(ADMIN)

    admin_env = make_env(tmp_path / "admin", mongo_lab, admin=True)
    user = admin_env.check("mongodb.user")
    assert (user["status"], user["reason"]) == ("fail", "missing")
    code, out = fix_json(admin_env, "mongodb-user", "--dry-run")
    assert code == 0 and out["plan"]["changes"][0]["commands"] == []  # made through the driver, not mongosh
    assert "via the MongoDB driver" in out["plan"]["changes"][0]["description"]
    assert "pwd: '****'" in out["plan"]["changes"][0]["description"]
    assert "stackbill" not in mongo_lab.users(ADMIN)  # dry run changed nothing
    proc = admin_env.fix("mongodb-user")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert MONGO_PASSWORD not in proc.stdout + proc.stderr
    checks = env.doctor("mongodb.*")
    assert checks["mongodb.auth"]["status"] == "ok" and checks["mongodb.user"]["status"] == "ok"
    assert {(r["role"], r["db"]) for r in mongo_lab.users(ADMIN)["stackbill"]} == {
        ("root", "admin"), ("readWriteAnyDatabase", "admin")}


def test_missing_role_is_granted(tmp_path: Path, mongo_lab: MongoLab) -> None:
    mongo_lab.command("updateUser", "stackbill", roles=[{"role": "readWriteAnyDatabase", "db": "admin"}], login=ADMIN)
    env = make_env(tmp_path, mongo_lab, admin=True)
    user = env.check("mongodb.user")
    assert (user["status"], user["reason"]) == ("fail", "misconfigured")
    assert user["details"]["missing_roles"] == "root@admin"
    proc = env.fix("mongodb-user")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert env.check("mongodb.user")["status"] == "ok"


def test_wrong_admin_password_is_a_blocker(tmp_path: Path, mongo_shared: MongoLab) -> None:
    env = make_env(tmp_path, mongo_shared, password="WrongPassword123", admin=True)
    env.set("mongodb.admin_password", "NotTheAdminPassword")
    code, out = fix_json(env, "mongodb-user")
    assert code == 3 and "rejected" in out["plan"]["blockers"][0]


# -- mongodb.authorization / mongodb-config -------------------------------------------------------------
def test_auth_off_is_insecure_and_mongodb_config_enables_it(tmp_path: Path, mongo_factory) -> None:
    mongo_lab = mongo_factory(auth=False)
    env = make_env(tmp_path, mongo_lab)
    result = env.check("mongodb.authorization")
    assert (result["status"], result["reason"], result["code"]) == ("fail", "insecure", "SB3020")
    assert result["fix"] == "mongodb-config"
    before = mongo_lab.conf_path.read_text()

    code, out = fix_json(env, "mongodb-config", "--dry-run")
    assert code == 0 and any("security.authorization: enabled" in c["description"] for c in out["plan"]["changes"])
    assert mongo_lab.conf_path.read_text() == before  # dry run changed nothing
    assert env.check("mongodb.authorization")["reason"] == "insecure"

    # without --restart: the file is edited, the restart is pending, the check still fails
    code, out = fix_json(env, "mongodb-config")
    assert code == 3, out
    assert any("restart pending" in n for n in out["plan"]["notes"])
    assert "authorization: enabled" in mongo_lab.conf_path.read_text()
    assert Path(str(mongo_lab.conf_path) + ".bak").read_text() == before
    assert "# pods connect through the host IP" in mongo_lab.conf_path.read_text()  # comments kept
    assert env.check("mongodb.authorization")["reason"] == "insecure"

    # with --restart: the restart command re-reads mongod.conf
    proc = env.fix("mongodb-config", "--restart")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert env.check("mongodb.authorization")["status"] == "ok"
    assert env.check("mongodb.auth")["status"] == "ok"


def test_authorization_is_not_enabled_before_the_user_can_log_in(tmp_path: Path, mongo_factory) -> None:
    mongo_lab = mongo_factory(auth=False)
    mongo_lab.command("dropUser", "stackbill")  # no auth: anyone may
    env = make_env(tmp_path, mongo_lab)
    before = mongo_lab.conf_path.read_text()
    code, out = fix_json(env, "mongodb-config", "--restart")
    assert code == 3 and out["outcome"] == "blocked", out
    assert "mongodb-user" in out["plan"]["blockers"][0]
    assert mongo_lab.conf_path.read_text() == before

    # the installer's order: the user first (no admin login needed while authorization is off), then the config
    proc = env.fix("mongodb-user")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = env.fix("mongodb-config", "--restart")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = env.doctor("mongodb.*")
    for cid in ("mongodb.auth", "mongodb.user", "mongodb.authorization", "mongodb.bind"):
        assert checks[cid]["status"] == "ok", checks[cid]


# -- mongodb.bind / mongodb-config ----------------------------------------------------------------------
def test_loopback_bind_fails_and_mongodb_config_fixes_it(tmp_path: Path, mongo_factory) -> None:
    mongo_lab = mongo_factory(bind_ip="127.0.0.1")
    env = make_env(tmp_path, mongo_lab)
    result = env.check("mongodb.bind")
    assert (result["status"], result["reason"]) == ("fail", "misconfigured")
    assert result["details"]["source"] == f"config file {mongo_lab.conf_path}"
    assert result["details"]["listening"] == "127.0.0.1"  # psutil sees the loopback listener

    # no config file: the listening sockets answer
    other = make_env(tmp_path / "nofile", mongo_lab).set("mongodb.config_file", str(tmp_path / "absent.conf"))
    result = other.check("mongodb.bind")
    assert (result["status"], result["reason"]) == ("fail", "misconfigured")
    assert result["details"]["source"].startswith("listening sockets")

    before = mongo_lab.conf_path.read_text()
    code, out = fix_json(env, "mongodb-config", "--dry-run", "--restart")
    assert code == 0 and "net.bindIp: 0.0.0.0" in out["plan"]["changes"][0]["description"]
    assert out["plan"]["changes"][1]["commands"] == [mongo_lab.restart_command()]
    assert mongo_lab.conf_path.read_text() == before
    proc = env.fix("mongodb-config", "--restart")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = env.check("mongodb.bind")
    assert result["status"] == "ok" and result["details"]["listening"] == "0.0.0.0"
    assert mongo_lab.read_conf()["net"]["bindIp"] == "0.0.0.0"
    assert mongo_lab.read_conf()["security"]["authorization"] == "enabled"  # other keys kept


def test_config_changed_but_not_restarted_is_reported(tmp_path: Path, mongo_factory) -> None:
    mongo_lab = mongo_factory(bind_ip="127.0.0.1")
    mongo_lab.write_conf(bind_ip="0.0.0.0")  # edited by hand, never restarted
    env = make_env(tmp_path, mongo_lab)
    result = env.check("mongodb.bind")
    assert (result["status"], result["reason"]) == ("fail", "misconfigured")
    assert result["details"]["restart_pending"] is True
    code, out = fix_json(env, "mongodb-config", "--restart")
    assert code == 0, out
    assert len(out["plan"]["changes"]) == 1 and out["plan"]["changes"][0]["description"].startswith("restart")
    assert env.check("mongodb.bind")["status"] == "ok"


def test_missing_config_file_is_a_blocker(tmp_path: Path, mongo_shared: MongoLab) -> None:
    env = make_env(tmp_path, mongo_shared).set("mongodb.config_file", str(tmp_path / "absent.conf"))
    code, out = fix_json(env, "mongodb-config")
    assert code == 3 and "mongodb.config_file" in out["plan"]["blockers"][0]
