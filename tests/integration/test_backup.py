"""`sbops backup` and `sbops restore` against the lab's real servers: a private MariaDB (dumped by the real
mariadb-dump, loaded by the real mariadb client), SecantusDB (MongoDB wire) and RabbitMQ's management API.
Every run is the real CLI in a subprocess. Nothing is simulated.

The round trip: seed, back up, drop and alter, restore, then compare CHECKSUM TABLE of every table, a digest
of every collection's documents and the RabbitMQ definitions with what they were before the backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import MONGO_ADMIN_PASSWORD, MONGO_PASSWORD
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD

SECRETS = [MYSQL_PASSWORD, MONGO_PASSWORD, MONGO_ADMIN_PASSWORD, RABBIT_PASSWORD]
LAYERS = ("--layer", "mysql", "--layer", "mongodb", "--layer", "rabbitmq")
ROWS = 20000


# -- seeding and observing ------------------------------------------------------------------------------
def seed_mysql(mysql: Any) -> None:
    mysql.seed_stackbill(MYSQL_PASSWORD)
    mysql.sql(
        "CREATE TABLE stackbill.account (id INT PRIMARY KEY, name VARCHAR(100), balance DECIMAL(12,2), "
        "created DATETIME, blob_col VARBINARY(64))",
        "CREATE TABLE stackbill.invoice (id INT AUTO_INCREMENT PRIMARY KEY, account_id INT, amount DECIMAL(12,2), "
        "note TEXT, KEY (account_id)) DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE stackbill.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100))",
        "CREATE TABLE configuration.settings (name VARCHAR(100) PRIMARY KEY, value TEXT)",
        "CREATE TRIGGER stackbill.invoice_audit AFTER INSERT ON stackbill.invoice FOR EACH ROW "
        "INSERT INTO stackbill.audit (what) VALUES (CONCAT('invoice ', NEW.id))",
        "CREATE FUNCTION stackbill.double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "CREATE VIEW stackbill.rich AS SELECT id, name FROM stackbill.account WHERE balance > 500",
    )
    conn = mysql.connect(charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO stackbill.account VALUES (%s, %s, %s, '2026-01-02 03:04:05', %s)",
                            [(i, f"account \"{i}\" o'neil", i % 1000 + 0.25, bytes([i % 256, 0, 255]))
                             for i in range(ROWS)])
            cur.executemany("INSERT INTO stackbill.invoice (account_id, amount, note) VALUES (%s, %s, %s)",
                            [(i % 50, i * 1.5, "ünïcödé ✓ " * 3) for i in range(500)])
            cur.executemany("INSERT INTO configuration.settings VALUES (%s, %s)",
                            [(f"key{i}", f"value {i}") for i in range(40)])
    finally:
        conn.close()


def mysql_checksums(mysql: Any) -> dict[str, Any]:
    tables = mysql.sql("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA IN ('stackbill', 'configuration') AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1")
    sums = {t[0]: mysql.sql(f"CHECKSUM TABLE {t[0]}")[0][1] for t in tables}
    sums["routines"] = sorted(mysql.sql("SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES "
                                        "WHERE ROUTINE_SCHEMA = 'stackbill'"))
    sums["triggers"] = sorted(mysql.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                                        "WHERE TRIGGER_SCHEMA = 'stackbill'"))
    sums["views"] = sorted(mysql.sql("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'stackbill'"))
    sums["accounts"] = sorted(mysql.sql("SELECT User, Host, authentication_string FROM mysql.user WHERE User = 'stackbill'"))
    return sums


def seed_mongo(mongo: Any) -> None:
    with mongo.client("stackbill", MONGO_PASSWORD) as client:
        client["usage"]["events"].insert_many([{"i": i, "kind": f"k{i % 7}", "pad": "x" * 50} for i in range(3000)])
        client["usage"]["events"].create_index([("kind", 1), ("i", -1)], name="kind_i")
        client["billing"]["invoices"].insert_many([{"_id": f"inv-{i}", "amount": i * 2.5, "lines": [{"n": i}]}
                                                   for i in range(200)])
        client["billing"]["invoices"].create_index("amount", unique=True, name="amount_unique")


def mongo_digests(mongo: Any) -> dict[str, Any]:
    """Per collection: the sha256 of its documents' BSON in _id order, and its index names."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    out: dict[str, Any] = {}
    with mongo.client("stackbill", MONGO_PASSWORD) as client:
        for db_name in ("usage", "billing"):
            db = client[db_name]
            for name in sorted(db.list_collection_names()):
                coll = db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
                digest = hashlib.sha256()
                raws = sorted((doc.raw for doc in coll.find({})), key=lambda raw: raw)
                for raw in raws:
                    digest.update(raw)
                out[f"{db_name}.{name}"] = (len(raws), digest.hexdigest(),
                                            sorted(i["name"] for i in db[name].list_indexes()))
    return out


def seed_rabbit(rabbit: Any) -> None:
    put = lambda path, body: rabbit.api("PUT", path, body).raise_for_status()  # noqa: E731
    put("/api/vhosts/billing", {})
    put("/api/permissions/billing/stackbill", {"configure": ".*", "write": ".*", "read": ".*"})
    put("/api/exchanges/billing/invoices", {"type": "topic", "durable": True})
    put("/api/queues/billing/invoice-mail", {"durable": True, "arguments": {"x-max-length": 1000}})
    rabbit.api("POST", "/api/bindings/billing/e/invoices/q/invoice-mail", {"routing_key": "invoice.#"}).raise_for_status()
    put("/api/policies/billing/ttl", {"pattern": "^invoice", "definition": {"message-ttl": 60000}, "apply-to": "queues"})
    put("/api/users/reporter", {"password": "Reporter-pass-1", "tags": "monitoring"})
    put("/api/permissions/billing/reporter", {"configure": "", "write": "", "read": ".*"})


def rabbit_state(rabbit: Any) -> dict[str, Any]:
    defs = rabbit.api("GET", "/api/definitions").json()
    pick = lambda kind, keys: sorted(tuple(json.dumps(i.get(k), sort_keys=True) for k in keys)  # noqa: E731
                                     for i in defs.get(kind, []))
    return {"vhosts": pick("vhosts", ["name"]), "queues": pick("queues", ["vhost", "name", "durable", "arguments"]),
            "exchanges": pick("exchanges", ["vhost", "name", "type"]),
            "bindings": pick("bindings", ["vhost", "source", "destination", "routing_key"]),
            "policies": pick("policies", ["vhost", "name", "pattern", "definition"]),
            "permissions": pick("permissions", ["user", "vhost", "configure", "write", "read"]),
            "users": pick("users", ["name", "tags"])}


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture
def lab(tmp_path: Path, mariadb_factory: Any, mongo_lab: Any, rabbitmq_healthy: Any) -> dict[str, Any]:
    mysql = mariadb_factory()
    seed_mysql(mysql)
    seed_mongo(mongo_lab)
    seed_rabbit(rabbitmq_healthy)
    env = LabEnv(tmp_path / "env")
    env.service("mysql", port=mysql.port, password=MYSQL_PASSWORD)
    env.service("mongodb", port=mongo_lab.port, password=MONGO_PASSWORD)
    env.service("rabbitmq", port=rabbitmq_healthy.port, password=RABBIT_PASSWORD,
                management=rabbitmq_healthy.management_url)
    env.set("mysql.admin_socket", str(tmp_path / "no-socket"))
    yield {"env": env, "mysql": mysql, "mongo": mongo_lab, "rabbit": rabbitmq_healthy, "dir": tmp_path}
    for path in ("/api/vhosts/billing", "/api/users/reporter"):
        rabbitmq_healthy.api("DELETE", path)


def run(env: LabEnv, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = env.sbops(*args, "--format", "json", timeout=600)
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        raise AssertionError(f"not JSON (exit {proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr
    return proc.returncode, doc, proc.stderr


def backup(env: LabEnv, path: Path, *extra: str) -> dict[str, Any]:
    code, doc, err = run(env, "backup", "--output", str(path), *LAYERS, *extra)
    assert code == 0, f"backup exited {code}: {err} {json.dumps(doc.get('failures'))}"
    return doc


# -- tests ------------------------------------------------------------------------------------------------
def test_round_trip_restores_every_table_collection_and_definition(lab: dict[str, Any]) -> None:
    env, mysql, mongo, rabbit = lab["env"], lab["mysql"], lab["mongo"], lab["rabbit"]
    before_mysql, before_mongo, before_rabbit = mysql_checksums(mysql), mongo_digests(mongo), rabbit_state(rabbit)
    archive = lab["dir"] / "backup.tar"

    with ArgvWatcher(SECRETS) as watcher:
        doc = backup(env, archive)
    assert watcher.hits == [], f"a password was on a command line: {watcher.hits}"
    assert any("mariadb-dump" in argv or "mysqldump" in argv for argv in watcher.seen), "the dump was never seen running"
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert doc["failures"] == [] and doc["result"] == "ok"
    assert doc["layers"]["mysql"]["tables"]["stackbill.account"] == ROWS
    assert doc["layers"]["mongodb"]["collections"] == {"billing.invoices": 200, "usage.events": 3000}
    assert {p["name"] for p in doc["parts"]} >= {"mysql/dump.sql", "mysql/accounts.sql", "mongodb/usage/events.bson",
                                                "mongodb/usage/events.metadata.json", "rabbitmq/definitions.json"}
    assert not any(f.startswith(".sbops-backup-") or f.startswith(".backup.tar") for f in os.listdir(lab["dir"]))
    definitions = _part(archive, "rabbitmq/definitions.json")
    assert all("password_hash" not in u for u in json.loads(definitions)["users"])

    # drop and alter things
    mysql.sql("DROP DATABASE configuration", "DROP TABLE stackbill.invoice", "DROP FUNCTION stackbill.double_it",
              "UPDATE stackbill.account SET balance = 0 WHERE id < 100", "DELETE FROM stackbill.account WHERE id > 19000",
              "CREATE TABLE stackbill.account_new (id INT)", "DROP USER 'stackbill'@'localhost'")
    with mongo.client("stackbill", MONGO_PASSWORD) as client:
        client["billing"].drop_collection("invoices")
        client["usage"]["events"].delete_many({"i": {"$lt": 500}})
        client["usage"]["events"].insert_one({"i": -1, "kind": "intruder"})
        client["usage"]["events"].drop_index("kind_i")
    rabbit.api("DELETE", "/api/queues/billing/invoice-mail")
    rabbit.api("DELETE", "/api/policies/billing/ttl")
    rabbit.api("DELETE", "/api/exchanges/billing/invoices")
    assert mysql_checksums(mysql) != before_mysql and mongo_digests(mongo) != before_mongo
    assert rabbit_state(rabbit) != before_rabbit

    code, plan, _ = run(env, "restore", str(archive), "--dry-run")
    assert code == 0 and plan["result"] == "dry-run"
    assert [p["layer"] for p in plan["plan"]] == ["mysql", "mongodb", "rabbitmq", "cluster"]
    assert plan["plan"][0]["bytes"] > 0 and plan["plan"][3]["skipped"] == "not in the archive"
    assert mysql.sql("SELECT COUNT(*) FROM stackbill.account")[0][0] == 19001  # the dry run changed nothing

    with ArgvWatcher(SECRETS) as watcher:
        code, doc, err = run(env, "restore", str(archive), "--yes", *LAYERS)
    assert watcher.hits == []
    assert code == 0, f"restore exited {code}: {err} {json.dumps(doc, indent=1)[:3000]}"
    assert [(layer["layer"], layer["status"]) for layer in doc["layers"]] == [
        ("mysql", "restored"), ("mongodb", "restored"), ("rabbitmq", "restored")]
    assert doc["layers"][2]["detail"]["users_not_restored"] == []  # reporter exists still: nothing to re-create

    assert mysql_checksums(mysql) == before_mysql
    assert mysql.sql("SHOW TABLES FROM stackbill LIKE 'account_new'") == []  # the database was replaced
    assert mysql.sql("SELECT stackbill.double_it(21)")[0][0] == 42
    assert mongo_digests(mongo) == before_mongo
    assert rabbit_state(rabbit) == before_rabbit


def _part(archive: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(archive) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def _offset(archive: Path, name: str) -> tuple[int, int]:
    import tarfile

    with tarfile.open(archive) as tar:
        info = tar.getmember(name)
        return info.offset_data, info.size


def test_truncated_and_tampered_archives_are_refused_naming_the_part(lab: dict[str, Any]) -> None:
    env, mysql = lab["env"], lab["mysql"]
    archive = lab["dir"] / "backup.tar"
    backup(env, archive)
    data = archive.read_bytes()
    start, size = _offset(archive, "mysql/dump.sql")
    mysql.sql("CREATE TABLE stackbill.marker (id INT)")  # any restore would drop it

    cases = {
        "cut-inside-dump": (data[: start + size // 2], "part mysql/dump.sql: truncated"),
        "cut-after-dump": (data[: start + size + (512 - size % 512) % 512], "is truncated: part "),
        "tampered-dump": (data[: start + 100] + bytes([data[start + 100] ^ 0x01]) + data[start + 101:],
                          "part mysql/dump.sql: sha256 differs"),
        "empty": (b"", "not a backup archive"),
    }
    for label, (content, expected) in cases.items():
        bad = lab["dir"] / f"{label}.tar"
        bad.write_bytes(content)
        proc = env.sbops("restore", str(bad), "--yes")
        assert proc.returncode == 2, f"{label}: exit {proc.returncode}: {proc.stderr}"
        assert expected in proc.stderr, f"{label}: {proc.stderr}"
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert mysql.sql("SHOW TABLES FROM stackbill LIKE 'marker'") == [("marker",)]


def test_encrypted_archive_round_trip_and_refusals(lab: dict[str, Any]) -> None:
    env, mongo = lab["env"], lab["mongo"]
    pass_file = lab["dir"] / "pass"
    pass_file.write_text("correct horse battery staple\n")
    wrong = lab["dir"] / "wrong"
    wrong.write_text("incorrect horse battery\n")
    archive = lab["dir"] / "backup.tar.enc"
    before = mongo_digests(mongo)
    code, doc, err = run(env, "backup", "--output", str(archive), "--layer", "mongodb", "--passphrase-file", str(pass_file))
    assert code == 0, err
    assert doc["encrypted"] is True and stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    data = archive.read_bytes()
    assert data.startswith(b"SBOPSENC") and b"usage" not in data and b"metadata.json" not in data

    refusals = {
        "no passphrase": (archive, [], "is encrypted: give --passphrase-file"),
        "wrong passphrase": (archive, ["--passphrase-file", str(wrong)], "wrong passphrase"),
    }
    cut = lab["dir"] / "cut.enc"
    cut.write_bytes(data[:-10])
    refusals["truncated"] = (cut, ["--passphrase-file", str(pass_file)], "truncated")
    flipped = lab["dir"] / "flipped.enc"
    flipped.write_bytes(data[:-40] + bytes([data[-40] ^ 0x80]) + data[-39:])
    refusals["tampered"] = (flipped, ["--passphrase-file", str(pass_file)], "tampered")
    for label, (path, extra, expected) in refusals.items():
        proc = env.sbops("restore", str(path), "--yes", *extra)
        assert proc.returncode == 2 and expected in proc.stderr, f"{label}: {proc.returncode} {proc.stderr}"

    with mongo.client("stackbill", MONGO_PASSWORD) as client:
        client.drop_database("usage")
    code, doc, err = run(env, "restore", str(archive), "--yes", "--passphrase-file", str(pass_file))
    assert code == 0, f"{err} {doc}"
    assert [(layer["layer"], layer["status"]) for layer in doc["layers"]] == [
        ("mysql", "skipped"), ("mongodb", "restored"), ("rabbitmq", "skipped"), ("cluster", "skipped")]
    assert mongo_digests(mongo) == before


def test_failed_layer_is_recorded_and_the_others_are_kept(lab: dict[str, Any]) -> None:
    """RabbitMQ's management API unreachable: its layer fails with the reason, MySQL is still backed up."""
    env = lab["env"]
    env.service("rabbitmq", port=lab["rabbit"].port, password=RABBIT_PASSWORD, management="http://127.0.0.1:1")
    archive = lab["dir"] / "partial.tar"
    code, doc, _ = run(env, "backup", "--output", str(archive), "--layer", "mysql", "--layer", "rabbitmq")
    assert code == 3 and doc["result"] == "partial"
    assert [f["layer"] for f in doc["failures"]] == ["rabbitmq"]
    assert doc["layers"]["mysql"]["status"] == "ok" and archive.exists()
    assert not any(p["layer"] == "rabbitmq" for p in doc["parts"])
    proc = env.sbops("backup", "--output", str(archive), "--layer", "mysql")
    assert proc.returncode == 2 and "exists" in proc.stderr  # never overwritten
    proc = env.sbops("restore", str(archive), "--layer", "rabbitmq")
    assert proc.returncode == 2 and "--yes" in proc.stderr  # no terminal, no --yes: refused before any change


# -- the cluster layer and `sbops uninstall --delete-db` ----------------------------------------------------
def test_uninstall_delete_db_takes_a_backup_and_restore_brings_everything_back(
        kube: Any, core: Any, helm_bin: str, helm_env: dict[str, str], mariadb_factory: Any, mongo_lab: Any,
        rabbitmq_healthy: Any, tmp_path: Path) -> None:
    """The lab's kube-apiserver with the demo chart installed by real Helm, and the three data servers:
    `uninstall --delete-db --backup-to` backs everything up, then drops it; after the accounts are made again
    (as `sbops install` would), `restore` brings back the data, the cluster's Secrets and Istio objects, the
    credentials file, and the Helm release with its saved values (helm upgrade --install of the saved version)."""
    from tests.integration.test_helm import CHART, helm
    from tests.integration.test_uninstall import full_env, uninstall
    from tests.lab import kube as klab
    from tests.lab.mongodb import LAB_ADMIN, STACKBILL_ROLES

    helm(helm_bin, helm_env, kube, "upgrade", "--install", "stackbill", str(CHART), "--set", "message=saved-value")
    from kubernetes import client as kclient

    if not _secret_exists(core, klab.PULL_SECRET, klab.NAMESPACE):
        core.create_namespaced_secret(klab.NAMESPACE, kclient.V1Secret(
            metadata=kclient.V1ObjectMeta(name=klab.PULL_SECRET), type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": json.dumps({"auths": {"registry.example": {"auth": "QVdTOnRva2Vu"}}})}))
    mysql, mongo, rabbit = mariadb_factory(), mongo_lab, rabbitmq_healthy
    seed_mysql(mysql)
    seed_mongo(mongo)
    before_mysql, before_mongo = mysql_checksums(mysql), mongo_digests(mongo)
    env = full_env(tmp_path / "env", kube, helm_bin, mysql, mongo, rabbit).set("install.chart", str(CHART))
    env.write()
    credentials_text = env.credentials_path.read_text()
    archive = tmp_path / "before-uninstall.tar"

    proc = env.sbops("uninstall", "--delete-db", "--yes", env=helm_env)
    assert proc.returncode == 2 and "--backup-to" in proc.stderr and "--no-backup" in proc.stderr

    with ArgvWatcher(SECRETS) as watcher:
        code, doc, proc = uninstall(env, "--delete-db", "--yes", "--backup-to", str(archive), write=False,
                                    extra_env=helm_env)
    assert watcher.hits == []
    assert code == 0 and doc["outcome"] == "uninstalled", proc.stderr
    assert "Backup written" in proc.stderr and stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    assert not env.credentials_path.exists()
    assert {r[0] for r in mysql.sql("SHOW DATABASES")} & {"stackbill", "configuration"} == set()
    assert "stackbill" not in rabbit.users()

    # what `sbops install` would do again: accounts and the credentials file (not the data)
    mysql.seed_stackbill(MYSQL_PASSWORD)
    with mongo.client(LAB_ADMIN, MONGO_ADMIN_PASSWORD) as client:
        client.admin.command("createUser", "stackbill", pwd=MONGO_PASSWORD, roles=STACKBILL_ROLES)
    rabbit.reset(RABBIT_PASSWORD)
    env.write()
    if _secret_exists(core, klab.PULL_SECRET, klab.NAMESPACE):  # uninstall removes it with the release
        core.delete_namespaced_secret(klab.PULL_SECRET, klab.NAMESPACE)

    code, plan, err = run(env, "restore", str(archive), "--dry-run")
    assert code == 0, err
    cluster_plan = next(p for p in plan["plan"] if p["layer"] == "cluster")
    assert any("secrets/sb-apps/awscred" in line for line in cluster_plan["actions"])

    bak = env.credentials_path.with_name(env.credentials_path.name + ".bak")
    bak.unlink(missing_ok=True)
    proc = env.sbops("restore", str(archive), "--yes", "--format", "json", env=helm_env, timeout=600)
    assert proc.stdout.strip(), proc.stderr
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, f"{proc.stderr} {json.dumps(doc['layers'], indent=1)}"
    assert [(layer["layer"], layer["status"]) for layer in doc["layers"]] == [
        ("mysql", "restored"), ("mongodb", "restored"), ("rabbitmq", "restored"), ("cluster", "restored")]
    assert doc["layers"][3]["detail"]["release_upgraded"] is True
    assert mysql_checksums(mysql)["stackbill.account"] == before_mysql["stackbill.account"]
    assert {k: v for k, v in mysql_checksums(mysql).items() if k != "accounts"} == \
        {k: v for k, v in before_mysql.items() if k != "accounts"}
    assert mongo_digests(mongo) == before_mongo
    assert env.credentials_path.read_text() == credentials_text and bak.exists()  # written back, atomically
    assert core.read_namespaced_secret(klab.PULL_SECRET, klab.NAMESPACE).data
    assert "saved-value" in helm(helm_bin, helm_env, kube, "get", "values", "stackbill")


def _secret_exists(core: Any, name: str, namespace: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        core.read_namespaced_secret(name, namespace)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
