"""The masking defects of issue 9, as regressions against the lab's real MariaDB and exportfs.

- A password that is also a number in the evidence (the issue's `2049` beside the NFS port 2049) made
  `sbops doctor` exit 1 with no report. Here the stackbill password is the lab MariaDB's own port number,
  which mysql.reachable reports as evidence, and the NFS lab's port, which the NFS checks report; the other
  sections hold `true` and `": "`.
- A password `": "` made `fix --output json` print invalid JSON with exit 0. Here MariaDB's stackbill user
  really gets that password from `sbops fix mysql-user`, and the re-check logs in with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults.leaks import json_leaks, text_leaks
from tests.lab.env import LabEnv, status
from tests.lab.mariadb import LAB_PASSWORD, MariaDB
from tests.lab.nfs import NfsLab


def strict(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_doctor_json_with_a_password_equal_to_a_port_in_the_evidence(mariadb_factory, nfs_lab: NfsLab,
                                                                    tmp_path: Path) -> None:
    server: MariaDB = mariadb_factory()
    password = str(server.port)
    server.seed_stackbill(password)
    env = LabEnv(tmp_path / "env").service("mysql", port=server.port, password=password)
    env.service("mongodb", port=1, password="true").service("rabbitmq", port=1, password='": "')
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    nfs_lab.configure(env)
    secrets = [password, "true", '": "']

    proc = env.sbops("doctor", "--output", "json", "--verbose", "--layer", "mysql", "--layer", "nfs", "--layer", "host")
    assert proc.returncode in (0, 3, 4), f"doctor exited {proc.returncode}: {proc.stderr}"
    document = strict(proc.stdout)
    checks = {c["id"]: c for c in document["checks"]}
    assert status(checks["mysql.auth"]) == ("ok", "none")  # the password works: it is the real one
    assert checks["mysql.reachable"]["details"]["port"] == server.port  # evidence keeps its number
    assert json_leaks(proc.stdout, secrets) == []
    nfs_ports = [c["details"].get("port") for c in document["checks"] if c["layer"] == "nfs"]
    assert nfs_lab.port in nfs_ports, nfs_ports

    # and the same with the NFS port as the password: the NFS evidence keeps its number
    env.service("mongodb", port=1, password=str(nfs_lab.port))
    proc = env.sbops("doctor", "--output", "json", "--layer", "nfs")
    assert proc.returncode in (0, 3, 4), f"doctor exited {proc.returncode}: {proc.stderr}"
    assert nfs_lab.port in [c["details"].get("port") for c in strict(proc.stdout)["checks"]]
    assert json_leaks(proc.stdout, [str(nfs_lab.port)]) == []

    text = env.sbops("doctor", "--verbose", "--layer", "mysql")
    assert text.returncode in (0, 3, 4), text.stderr
    # the port is printed as evidence (a number is never masked); nowhere else does its value show
    shown = [line for line in text.stdout.splitlines() if line.strip() != f"port: {server.port}"]
    assert text_leaks("\n".join(shown) + text.stderr, [password]) == [] and "****" in text.stdout


def test_fix_json_with_a_password_of_quote_colon_quote(mariadb_factory, tmp_path: Path) -> None:
    server: MariaDB = mariadb_factory()
    server.seed_stackbill(LAB_PASSWORD)
    password = '": "'
    env = LabEnv(tmp_path / "env").service("mysql", port=server.port, password=password)
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    assert status(env.check("mysql.auth")) == ("fail", "auth_failed")

    proc = env.sbops("fix", "mysql-user", "--yes", "--output", "json")
    document = strict(proc.stdout)  # the defect: invalid JSON, exit 0
    assert proc.returncode == 0 and document["outcome"] == "fixed", proc.stdout + proc.stderr
    assert {c["id"]: c["status"] for c in document["checks"]}["mysql.auth"] == "ok"
    assert json_leaks(proc.stdout, [password]) == []
    for line in Path(env.settings["journal"]).read_text().splitlines():
        assert json_leaks(line, [password]) == [] and strict(line)["fix"] == "mysql-user"
    assert status(env.check("mysql.auth")) == ("ok", "none")  # MariaDB really took the password `": "`


def test_exporter_keeps_collecting_with_a_password_equal_to_a_port(mariadb_factory, tmp_path: Path) -> None:
    """The issue: exporter layers stopped collecting (the engine's masking raised on every scrape)."""
    from tests.lab.exporter import ExporterProc, by_check, parse

    server: MariaDB = mariadb_factory()
    password = str(server.port)
    server.seed_stackbill(password)
    env = LabEnv(tmp_path / "env").service("mysql", port=server.port, password=password)
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    with ExporterProc(env) as exporter:
        text = exporter.scrape("/probe?module=mysql")
    samples = by_check(parse(text), "sbops_check_success")
    assert samples.get("mysql.reachable") == 1.0 and samples.get("mysql.auth") == 1.0, text[-2000:]
