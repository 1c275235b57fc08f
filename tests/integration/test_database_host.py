"""A database host of its own (issue 14): MariaDB in a network namespace of its own (tests/lab/dbhost.py), with the
sbops agent installed there by the real `sbops install --role database-host`. `sbops doctor` on this machine reads
that MariaDB's configuration through the agent (over TLS, with basic auth), reports the agent's own failures with
their codes, never uses this machine's admin socket for the remote server, refuses the host-file fix for it, and
the fix run on the database host repairs what doctor then sees through the agent again.

This machine's admin socket is a second, local lab MariaDB (the decoy) whose answers would differ (its
max_connections is not the database host's 1234): its connection counter proves nothing ever connected to it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab.dbhost import DISTINCT_MAX_CONNECTIONS, DbHost
from tests.lab.env import LabEnv, finding
from tests.lab.mariadb import LAB_PASSWORD, MariaDB


@pytest.fixture(scope="module")
def host(tmp_path_factory, mariadb_template) -> Iterator[DbHost]:
    began = time.monotonic()
    db = DbHost(tmp_path_factory.mktemp("dbhost"), LAB_PASSWORD)
    try:
        db.up()
        proc = db.install_agent()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "installed:" in proc.stdout
        again = db.install_agent()
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
        db.start_agent()
        print(f"database host and agent up in {time.monotonic() - began:.1f}s")
        yield db
    finally:
        db.close()


@pytest.fixture(scope="module")
def decoy(tmp_path_factory, mariadb_template) -> Iterator[MariaDB]:
    """A MariaDB on this machine, whose socket is the doctor's mysql.admin_socket."""
    server = MariaDB(tmp_path_factory.mktemp("decoy")).start()
    yield server
    server.destroy()


def connections(server: MariaDB) -> int:
    """Connections the server accepted so far (this query's own included)."""
    return int(server.sql("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1])


@pytest.fixture
def doctor(host: DbHost, decoy: MariaDB, tmp_path: Path) -> LabEnv:
    """sbops on the StackBill server: the credentials file points MySQL at the database host."""
    env = LabEnv(tmp_path / "doctor")
    ca = tmp_path / "agent-ca.crt"
    shutil.copy(host.agent_dir / "agent.crt", ca)
    password = tmp_path / "agent-password"
    shutil.copy(host.agent_dir / "password", password)
    password.chmod(0o600)
    env.service("mysql", host=host.ip, port=3306, password=LAB_PASSWORD)
    env.set("mysql.admin_socket", str(decoy.socket))
    env.set("agents.mysql", host.agent_url)
    env.set("agents.ca_file", str(ca))
    env.set("agents.password_file", str(password))
    return env.write()


def test_doctor_reads_the_remote_configuration_through_the_agent(host: DbHost, decoy: MariaDB, doctor: LabEnv) -> None:
    before = connections(decoy)
    checks = doctor.doctor("mysql.*")
    config = checks["mysql.config"]
    assert finding(config)[1:] == ("ok", "none"), config["summary"]
    assert config["details"]["via_agent"] == host.agent_url
    assert config["summary"].endswith(f"(via agent {host.agent_url})")
    assert config["details"]["variables"]["max_connections"] == DISTINCT_MAX_CONNECTIONS
    assert str(host.mariadb.conf_d / "zz-lab.cnf") in config["details"]["files"]["read"]
    assert checks["mysql.auth"]["status"] == "ok" and "via_agent" not in checks["mysql.auth"]["details"]
    assert connections(decoy) == before + 1, "doctor connected to this machine's admin socket"
    assert decoy.sql("SELECT @@max_connections")[0][0] != int(DISTINCT_MAX_CONNECTIONS)


def test_without_an_agent_the_check_skips_and_says_what_to_configure(decoy: MariaDB, doctor: LabEnv) -> None:
    doctor.set("agents.mysql", "")
    before = connections(decoy)
    config = doctor.check("mysql.config")
    assert finding(config) == ("SB0030", "skip", "no_access")
    assert "agents.mysql" in config["summary"]
    assert connections(decoy) == before + 1


def test_the_agents_own_failures_have_their_codes(host: DbHost, doctor: LabEnv, tmp_path: Path) -> None:
    # a wrong password
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-agents-password\n")
    wrong.chmod(0o600)
    doctor.set("agents.password_file", str(wrong))
    assert finding(doctor.check("mysql.config")) == ("SB0032", "error", "auth_failed")
    # a password file others can read
    loose = tmp_path / "loose-password"
    shutil.copy(host.agent_dir / "password", loose)
    loose.chmod(0o644)
    doctor.set("agents.password_file", str(loose))
    assert finding(doctor.check("mysql.config")) == ("SB0035", "error", "no_access")
    doctor.set("agents.password_file", str(tmp_path / "absent"))
    assert finding(doctor.check("mysql.config")) == ("SB0035", "error", "no_access")
    # a CA that did not sign the agent's certificate (the right password, so only TLS is wrong)
    from sbops.install.dbhost import make_self_signed

    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_text(make_self_signed(["elsewhere"], [host.ip], days=1)[0])
    good = tmp_path / "good-password"
    shutil.copy(host.agent_dir / "password", good)
    good.chmod(0o600)
    doctor.set("agents.password_file", str(good))
    doctor.set("agents.ca_file", str(other_ca))
    assert finding(doctor.check("mysql.config")) == ("SB0033", "error", "misconfigured")
    # the agent stopped
    doctor.set("agents.ca_file", str(host.agent_dir / "agent.crt"))
    host.stop_agent()
    try:
        stopped = doctor.check("mysql.config")
        assert finding(stopped) == ("SB0031", "error", "refused")
        assert stopped["details"]["via_agent"] == host.agent_url
    finally:
        host.start_agent()
    assert finding(doctor.check("mysql.config"))[1] == "ok"


def test_a_broken_remote_config_fails_through_the_agent_and_is_fixed_on_the_host(
        host: DbHost, decoy: MariaDB, doctor: LabEnv) -> None:
    before = connections(decoy)
    cnf = host.mariadb.conf_d / "stackbill.cnf"
    text = cnf.read_text()
    assert "bind-address = 0.0.0.0" in text
    cnf.write_text(text.replace("bind-address = 0.0.0.0", "bind-address = 127.0.0.1"))  # as a user edits it
    host.mariadb_ctl("restart")
    checks = doctor.doctor("mysql.*")
    assert finding(checks["mysql.reachable"])[1:] == ("fail", "refused")  # pods cannot reach it either
    config = checks["mysql.config"]
    assert finding(config)[1:] == ("fail", "misconfigured"), config["summary"]
    assert config["details"]["via_agent"] == host.agent_url
    assert {"variable": "bind_address", "observed": "127.0.0.1"}.items() <= \
        next(f for f in config["details"]["findings"] if f["variable"] == "bind_address").items()

    # from here: refused, nothing changed
    stamp = (cnf.read_text(), os.stat(cnf).st_mtime_ns)
    refused = doctor.fix("mysql-config", "--restart")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert f"run `sbops fix mysql-config` on {host.ip}" in refused.stdout
    assert (cnf.read_text(), os.stat(cnf).st_mtime_ns) == stamp

    # on the database host: repaired
    fixed = host.sbops("fix", "mysql-config", "--yes", "--restart")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "bind-address = 0.0.0.0" in cnf.read_text()
    checks = doctor.doctor("mysql.*")
    assert finding(checks["mysql.reachable"])[1] == "ok"
    config = checks["mysql.config"]
    assert finding(config)[1:] == ("ok", "none") and config["details"]["via_agent"] == host.agent_url
    assert connections(decoy) == before + 1, "doctor or fix connected to this machine's admin socket"
