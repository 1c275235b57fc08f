"""The database steps of `sbops install`, for real: private MariaDB, SecantusDB (MongoDB wire) and RabbitMQ
servers and the real exportfs, through the CLI. Each step creates what is missing, a re-run changes
nothing and says why, and a broken user is repaired to match the credentials file.

Not real here: installing packages and starting services with systemd (the lab's servers already run, so
the installer leaves them alone: tests/unit/test_install_recorded.py covers those commands).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.lab.env import LabEnv
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, MONGO_PASSWORD, MongoLab
from tests.lab.nfs import NfsLab
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD


def run_steps(env: LabEnv, *steps: str, output: str = "text") -> tuple[int, str]:
    args = ["--yes", "--only", "credentials"] + [a for s in steps for a in ("--only", s)]
    proc = env.install(*args, "--output", output)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout + proc.stderr


def step_json(env: LabEnv, step: str) -> dict:
    proc = env.install("--yes", "--only", "credentials", "--only", step, "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    return next(s for s in doc["steps"] if s["name"] == step)


def assert_doctor_ok(env: LabEnv, pattern: str, allow_warn: tuple[str, ...] = ()) -> None:
    for cid, result in env.doctor(pattern).items():
        assert result["status"] == "ok" or (result["status"] == "warn" and cid in allow_warn), (cid, result)


def assert_nothing_to_do(env: LabEnv, step: str) -> dict:
    result = step_json(env, step)
    assert result["status"] == "unchanged", result
    assert all(r["nothing_to_do"] and not r["changes"] for r in result["resources"]), result
    assert all(c["status"] in ("ok", "warn") for c in result["checks"]), result
    return result


# -- MySQL / MariaDB -----------------------------------------------------------------------------------
def test_mysql_step_on_a_bare_server_then_a_rerun_then_a_repair(mariadb_factory, tmp_path: Path) -> None:
    server = mariadb_factory(stackbill_cnf=False, bind="127.0.0.1")
    env = LabEnv(tmp_path / "env").service("mysql", port=server.port, password=MYSQL_PASSWORD)
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    env.set("mysql.restart_command", str(server.restart_script))

    code, out = run_steps(env, "mysql")
    assert code == 0, out
    assert "write " + str(server.conf_d / "stackbill.cnf") in out
    assert "restart MySQL so skip_name_resolve, bind_address take effect" in out
    assert "create database stackbill" in out and "create database configuration" in out
    assert "create 'stackbill'@'%' with mysql_native_password and the credentials file's password" in out
    assert (server.conf_d / "stackbill.cnf").exists()
    assert_doctor_ok(env, "mysql.*")

    result = assert_nothing_to_do(env, "mysql")
    assert [r["nothing_to_do"] for r in result["resources"]] == [
        f"MySQL answers at 127.0.0.1:{server.port}", "the server's effective settings already match stackbill.cnf",
        "databases present: stackbill, configuration",
        "stackbill@'%' and @'localhost' already match (plugin, password, grants)"]

    server.sql("ALTER USER 'stackbill'@'%' IDENTIFIED BY 'SomethingElse99'", "DROP USER 'stackbill'@'localhost'")
    code, out = run_steps(env, "mysql")
    assert code == 0, out
    assert "set 'stackbill'@'%' to mysql_native_password with the credentials file's password" in out
    assert "create 'stackbill'@'localhost'" in out
    assert_doctor_ok(env, "mysql.*")


# -- MongoDB ---------------------------------------------------------------------------------------------
def test_mongodb_step_creates_the_user_before_enabling_authorization(tmp_path: Path) -> None:
    lab = MongoLab(tmp_path / "mongo").start()  # as the vendor package leaves it: no users, no authorization
    try:
        env = LabEnv(tmp_path / "env").service("mongodb", port=lab.port, password=MONGO_PASSWORD)
        env.set("mongodb.config_file", str(lab.conf_path)).set("mongodb.restart_command", lab.restart_command())
        code, out = run_steps(env, "mongodb")
        assert code == 0, out
        user = out.index("create user stackbill in admin with roles readWriteAnyDatabase@admin, root@admin")
        auth = out.index("security.authorization: enabled (was absent)")
        assert user < auth < out.index("restart MongoDB to apply the new config")
        assert lab.read_conf()["security"]["authorization"] == "enabled"
        assert_doctor_ok(env, "mongodb.*", allow_warn=("mongodb.version",))  # SecantusDB says 8.2

        result = assert_nothing_to_do(env, "mongodb")
        user_line = next(r for r in result["resources"] if r["name"] == "mongodb.user")["nothing_to_do"]
        assert user_line.startswith("stackbill exists in admin, logs in with the credentials file's password")
    finally:
        lab.stop()


def test_mongodb_step_repairs_a_changed_password_with_the_admin_login(mongo_lab: MongoLab, tmp_path: Path) -> None:
    mongo_lab.command("updateUser", "stackbill", pwd="ChangedBySomeone1", login=(LAB_ADMIN, MONGO_ADMIN_PASSWORD))
    env = LabEnv(tmp_path / "env").service("mongodb", port=mongo_lab.port, password=MONGO_PASSWORD)
    env.set("mongodb.config_file", str(mongo_lab.conf_path)).set("mongodb.restart_command", mongo_lab.restart_command())
    env.set("mongodb.admin_user", LAB_ADMIN).set("mongodb.admin_password", MONGO_ADMIN_PASSWORD)
    assert env.check("mongodb.auth")["status"] == "fail"
    code, out = run_steps(env, "mongodb")
    assert code == 0, out
    assert "stackbill: reset its password to the credentials file's" in out
    assert env.check("mongodb.auth")["status"] == "ok"


# -- RabbitMQ --------------------------------------------------------------------------------------------
def test_rabbitmq_step_enables_management_creates_the_user_and_deletes_guest(rabbitmq_healthy, tmp_path: Path) -> None:
    rabbit = rabbitmq_healthy
    rabbit.plugins("disable", "rabbitmq_management")
    rabbit.ctl("delete_user", "stackbill")
    rabbit.ctl("add_user", "guest", input="guest\n")
    rabbit.ctl("set_user_tags", "guest", "administrator")
    env = LabEnv(tmp_path / "env").service("rabbitmq", port=rabbit.port, password=RABBIT_PASSWORD,
                                           management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    env.set("rabbitmq.management_port", rabbit.management_port)

    code, out = run_steps(env, "rabbitmq")
    assert code == 0, out
    for text in ("enable the rabbitmq_management plugin", "create user stackbill with the credentials file's password",
                 "set stackbill's tags to administrator", "delete user guest"):
        assert text in out, out
    assert set(rabbit.users()) == {"labadmin", "stackbill"}
    assert_doctor_ok(env, "rabbitmq.*")
    assert_nothing_to_do(env, "rabbitmq")


# -- NFS -------------------------------------------------------------------------------------------------
def test_nfs_step_creates_the_directory_and_exports_to_the_servers_address(nfs_lab: NfsLab, tmp_path: Path) -> None:
    """No kubeconfig: the node list cannot be read, so the export goes to the server's own address (what the
    kubelet of a one-node K3s mounts from), never to the pod network, and the plan says so."""
    nfs_lab.seed_stackbill("*")  # the original script's export: to the whole world
    nfs_lab.export_dir.rmdir()
    env = LabEnv(tmp_path / "env")
    nfs_lab.configure(env)
    code, out = run_steps(env, "nfs")
    assert code == 0, out
    assert f"create {nfs_lab.export_dir} with mode 0777" in out
    assert f"rewrite the entry of {nfs_lab.export_dir}" in out and "(insecure now)" in out
    assert "node list cannot be read" in out
    assert oct(nfs_lab.export_dir.stat().st_mode & 0o777) == "0o777"
    assert f"{nfs_lab.export_dir} 127.0.0.1(rw,sync,no_subtree_check,no_root_squash)\n" in nfs_lab.exports_file.read_text()
    active = nfs_lab.active()
    assert "127.0.0.1" in active and "<world>" not in active and "10.42.0.0/16" not in active
    assert_doctor_ok(env, "nfs.*", allow_warn=("nfs.directory",))
    assert_nothing_to_do(env, "nfs")


def test_nfs_step_exports_to_every_nodes_address(nfs_lab: NfsLab, kube, tmp_path: Path) -> None:
    """With the cluster's Node objects readable, the installer writes each node's InternalIP and the
    server's address, replacing ARCHITECTURE.md's pod network (which refuses every mount)."""
    from tests.lab.kube import NODE_IP

    nfs_lab.seed_stackbill("10.42.0.0/16")
    env = LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))
    nfs_lab.configure(env)
    code, out = run_steps(env, "nfs")
    assert code == 0, out
    opts = "(rw,sync,no_subtree_check,no_root_squash)"
    assert nfs_lab.exports_file.read_text().splitlines()[-1] == f"{nfs_lab.export_dir} {NODE_IP}{opts} 127.0.0.1{opts}"
    assert NODE_IP in nfs_lab.active()
    assert_doctor_ok(env, "nfs.*", allow_warn=("nfs.directory",))
    assert_nothing_to_do(env, "nfs")
