"""Figures for `sbops backup` and `sbops restore` (issue 17):

  1. the lab's data (MariaDB with 20,000 + 500 + 40 rows, SecantusDB with 3,200 documents, RabbitMQ definitions):
     backup time, archive size, restore time (the real CLI, what a user waits for), plain and encrypted
  2. one MySQL table of --size-mb MiB (default 1024): backup and restore time and throughput (MiB/s of table data)

Private servers on free ports in a temporary directory, stopped at the end.
Run: .venv/bin/python bench/backup.py [--size-mb 1024] [--skip-large] [--skip-lab]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.test_backup import seed_mongo, seed_mysql, seed_rabbit  # noqa: E402
from tests.lab.env import LabEnv  # noqa: E402
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD, MariaDB  # noqa: E402
from tests.lab.mongodb import MONGO_ADMIN_PASSWORD, MONGO_PASSWORD, MongoLab  # noqa: E402
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD, RabbitMQ  # noqa: E402


def timed(env: LabEnv, *args: str) -> tuple[float, dict]:
    began = time.perf_counter()
    proc = env.sbops(*args, "--format", "json", timeout=7200)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"sbops {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout)


def fill_table(mysql: MariaDB, size_mb: int) -> int:
    """stackbill.big with about size_mb MiB of row data (1 KiB rows, doubled with INSERT ... SELECT), on a root
    connection without the lab helper's 10 s read timeout (a doubling of half a GiB takes minutes)."""
    import pymysql

    conn = pymysql.connect(unix_socket=str(mysql.socket), user="root", password="", autocommit=True, read_timeout=None)

    def sql(*statements: str) -> list:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return list(cur.fetchall())

    sql("CREATE TABLE stackbill.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload VARCHAR(1000)) ENGINE=InnoDB")
    rows, batch = 0, 131072  # from the Sequence engine: no temporary table (INSERT ... SELECT of itself needs one)
    while rows < size_mb * 1024:
        n = min(batch, size_mb * 1024 - rows)
        sql("INSERT INTO stackbill.big (payload) SELECT CONCAT(REPEAT(MD5(seq), 31), LPAD(seq, 8, '0')) "
            f"FROM stackbill.seq_1_to_{n}")
        rows += n
    conn.close()
    return rows


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-lab", action="store_true", help="only the large table")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sbops-bench-backup-"))
    mysql = MariaDB(root / "mariadb").start()
    mongo = MongoLab(root / "mongo")
    rabbit = RabbitMQ(root / "rabbit")
    try:
        mongo.seed_stackbill(MONGO_PASSWORD, admin_password=MONGO_ADMIN_PASSWORD)
        rabbit.start().seed_stackbill(RABBIT_PASSWORD)
        seed_mysql(mysql)
        seed_mongo(mongo)
        seed_rabbit(rabbit)
        env = LabEnv(root / "env")
        env.service("mysql", port=mysql.port, password=MYSQL_PASSWORD)
        env.service("mongodb", port=mongo.port, password=MONGO_PASSWORD)
        env.service("rabbitmq", port=rabbit.port, password=RABBIT_PASSWORD, management=rabbit.management_url)
        env.set("mysql.admin_socket", str(root / "no-socket"))
        layers = ["--layer", "mysql", "--layer", "mongodb", "--layer", "rabbitmq"]
        pass_file = root / "pass"
        pass_file.write_text("bench passphrase 1234\n")
        print("lab data (3 layers)                 backup    archive      restore")
        for label, extra in () if args.skip_lab else (("plain", []), ("encrypted", ["--passphrase-file", str(pass_file)])):
            archive = root / f"lab-{label}.tar"
            t_backup, doc = timed(env, "backup", "--output", str(archive), *layers, *extra)
            t_restore, _ = timed(env, "restore", str(archive), "--yes", *layers, *extra)
            print(f"  {label:<33} {t_backup:6.2f} s  {archive.stat().st_size / 2**20:7.2f} MiB  {t_restore:6.2f} s")
        if not args.skip_large:
            began = time.perf_counter()
            rows = fill_table(mysql, args.size_mb)
            data = mysql.sql("SELECT DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'stackbill' "
                             "AND TABLE_NAME = 'big'")[0][0]
            payload = mysql.sql("SELECT SUM(LENGTH(payload)) FROM stackbill.big")[0][0]
            print(f"large table: {rows} rows, {int(payload) / 2**20:.0f} MiB of payload, InnoDB data "
                  f"{int(data) / 2**20:.0f} MiB (filled in {time.perf_counter() - began:.0f} s)")
            archive = root / "large.tar"
            t_backup, doc = timed(env, "backup", "--output", str(archive), "--layer", "mysql")
            t_restore, _ = timed(env, "restore", str(archive), "--yes", "--layer", "mysql")
            mib = int(payload) / 2**20
            print(f"  backup  {t_backup:7.1f} s  {mib / t_backup:6.1f} MiB/s   archive {archive.stat().st_size / 2**20:.0f} MiB")
            print(f"  restore {t_restore:7.1f} s  {mib / t_restore:6.1f} MiB/s   (load + row-count verification)")
    finally:
        rabbit.destroy()
        mongo.stop()
        mysql.destroy()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
