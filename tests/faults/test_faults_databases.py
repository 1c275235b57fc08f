"""Every command that talks to MySQL, MongoDB or RabbitMQ, against blackholed servers (issue 9): it reports a
timeout with its usual exit code, no traceback, and waits out one network timeout per unreachable server, not
one per login it might try. bench/faults.py prints the wall times of the same commands.

The blackhole (tests/lab/blackhole.Silent) accepts every connection and never answers, and counts them: the
count proves "one attempt" without a clock. The credentials file, the settings (RabbitMQ's management API
included) and the kubeconfig all point at it; the admin socket does not exist, so the admin login falls back
to TCP at the same Host:Port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.test_faults_timeouts import isolated_config, write_credentials
from tests.lab import blackhole
from tests.lab.env import REPO

TIMEOUT = 2.0
# (name, argv, connections to the blackhole at most: MySQL and RabbitMQ are dialled once each; pymongo opens a
# monitor and a pool connection in parallel, and the uninstaller's inventory looks at every service)
DATABASE_COMMANDS = [
    ("doctor mysql", ["doctor", "--layer", "mysql", "--output", "json"], 1),
    ("doctor mongodb", ["doctor", "--layer", "mongodb", "--output", "json"], 4),
    ("doctor rabbitmq", ["doctor", "--layer", "rabbitmq", "--output", "json"], 2),
    ("doctor mysql+mongodb+rabbitmq", ["doctor", "--layer", "mysql", "--layer", "mongodb", "--layer", "rabbitmq",
                                       "--output", "json"], 7),
    ("fix mysql-user --dry-run", ["fix", "mysql-user", "--dry-run", "--output", "json"], 1),
    ("fix mysql-blocked-host --dry-run", ["fix", "mysql-blocked-host", "--dry-run", "--output", "json"], 1),
    ("fix mongodb-user --dry-run", ["fix", "mongodb-user", "--dry-run", "--output", "json"], 4),
    ("fix rabbitmq-user --dry-run", ["fix", "rabbitmq-user", "--dry-run", "--output", "json"], 2),
    ("uninstall --dry-run --delete-db", ["uninstall", "--dry-run", "--delete-db", "--output", "json"], 10),
]


def database_setup(root: Path, port: int) -> tuple[Path, Path]:
    """(kubeconfig, config) with every service, its admin access and the API server at the blackhole's port;
    the credentials file (root/creds.txt) names the blackhole too."""
    write_credentials(root, port)
    return blackhole.kubeconfig(root / "kubeconfig", port), isolated_config(root, port)


@pytest.mark.parametrize("name, argv, most", DATABASE_COMMANDS, ids=[c[0] for c in DATABASE_COMMANDS])
def test_database_commands_against_blackholed_servers(tmp_path: Path, name: str, argv: list[str], most: int) -> None:
    with blackhole.Silent() as server:
        kubeconfig, cfg = database_setup(tmp_path, server.port)
        proc = subprocess.run([sys.executable, "-m", "sbops", *argv, "--timeout", f"{TIMEOUT:g}", "--kubeconfig",
                               str(kubeconfig), "--config", str(cfg), "--credentials", str(tmp_path / "creds.txt")],
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "NO_COLOR": "1", "KUBECONFIG": ""})
        time.sleep(0.2)  # let the blackhole's accept loop take the last connection (it polls every 0.1 s)
        dialled = len(server.held)
    assert proc.returncode == 3, (name, proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)
    assert '"reason": "internal"' not in json.dumps(document), document
    if argv[0] == "doctor":
        reasons = {c["id"]: c["reason"] for c in document["checks"]}
        # a port that accepts but never says hello: MySQL and RabbitMQ time out; MongoDB's driver names a
        # server that does not speak its protocol (misconfigured: "another program on the port?")
        assert {"timeout", "misconfigured"} & set(reasons.values()), reasons
        assert set(reasons.values()) <= {"timeout", "misconfigured", "blocked", "missing", "not_applicable",
                                         "no_access"}, reasons
    assert 1 <= dialled <= most, f"{name} dialled the blackhole {dialled} times (one attempt per server expected)"
