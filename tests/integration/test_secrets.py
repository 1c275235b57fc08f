"""No password ever reaches a command line, sbops's output (text or JSON), its journal, or its error messages.

Every data server of the lab runs at once; the StackBill users are dropped on all three, and the fixes that
recreate them (which must send the passwords) run while a watcher samples every process's argv.
"""

from __future__ import annotations

from pathlib import Path

from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, MONGO_PASSWORD
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD

ADMIN_MYSQL_PASSWORD = "NotUsedAdminPw99"  # set in the environment: config show must mask it


def test_no_secret_in_argv_output_or_journal(mariadb_factory, mongo_factory, rabbitmq_healthy, nfs_lab, tmp_path: Path):
    mysql = mariadb_factory()
    mysql.seed_stackbill(MYSQL_PASSWORD)
    mongo = mongo_factory()
    rabbit = rabbitmq_healthy
    env = LabEnv(tmp_path / "env")
    env.service("mysql", port=mysql.port, password=MYSQL_PASSWORD)
    env.set("mysql.admin_socket", str(mysql.socket))
    env.service("mongodb", port=mongo.port, password=MONGO_PASSWORD)
    env.set("mongodb.admin_user", LAB_ADMIN).set("mongodb.admin_password", MONGO_ADMIN_PASSWORD)
    env.service("rabbitmq", port=rabbit.port, password=RABBIT_PASSWORD, management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    nfs_lab.configure(env)
    secrets = [MYSQL_PASSWORD, MONGO_PASSWORD, MONGO_ADMIN_PASSWORD, RABBIT_PASSWORD, ADMIN_MYSQL_PASSWORD]

    mysql.sql("DROP USER 'stackbill'@'%'", "DROP USER 'stackbill'@'localhost'")
    mongo.command("dropUser", "stackbill", login=(LAB_ADMIN, MONGO_ADMIN_PASSWORD))
    rabbit.ctl("delete_user", "stackbill")

    runs = [
        ("doctor", "--output", "json"),
        ("doctor", "--verbose"),
        ("fix", "mysql-user", "--dry-run"),
        ("fix", "mysql-user", "--yes", "--output", "json"),
        ("fix", "mongodb-user", "--yes"),
        ("fix", "rabbitmq-user", "--yes", "--output", "json"),
        ("config", "show"),
        ("config", "show", "--output", "json"),
        ("doctor", "--output", "json", "--verbose"),
    ]
    outputs: list[str] = []
    codes = []
    with ArgvWatcher(secrets) as watch:
        for args in runs:
            extra = {"SBOPS_MYSQL_ADMIN_PASSWORD": ADMIN_MYSQL_PASSWORD} if args[0] == "config" else {}
            proc = env.sbops(*args, env=extra)
            codes.append((args, proc.returncode, proc.stderr[-300:]))
            outputs += [proc.stdout, proc.stderr]
    assert watch.samples > 20, "the watcher must really have sampled while sbops ran"
    assert watch.hits == [], f"a secret appeared on a command line: {watch.hits[:1]}"

    # the fixes did send the passwords (the users were really recreated)...
    fixed = {args[1]: code for args, code, _ in codes if args[0] == "fix" and "--yes" in args}
    assert fixed == {"mysql-user": 0, "mongodb-user": 0, "rabbitmq-user": 0}, codes
    final = env.doctor("mysql.auth", "mongodb.auth", "rabbitmq.auth")
    assert {cid: r["status"] for cid, r in final.items()} == {"mysql.auth": "ok", "mongodb.auth": "ok", "rabbitmq.auth": "ok"}

    # ...but none of them is in any output, the journal, or the evidence
    journal = Path(env.settings["journal"]).read_text()
    assert journal.count("\n") >= 3
    for text in outputs + [journal]:
        for secret in secrets:
            assert secret not in text
    assert "****" in "".join(outputs)
