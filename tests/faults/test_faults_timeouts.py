"""Fault injection: every command that talks to the Kubernetes API, against a blackholed API server, with
`--timeout 2`. Correctness is asserted (reason timeout, exit code, nothing crashed); the wall time is printed
by bench/faults.py, and only a generous bound (3x the timeout, start-up included) is asserted here,
enough to catch urllib3's three silent retries (which took 6.5-7.6 s).

Blackholes (tests/lab/blackhole.py): `silent` accepts connections and never answers; `never-accepts` leaves
SYNs unanswered. No other server is involved: MySQL, MongoDB and RabbitMQ settings point at a closed port and
the commands at /bin/false, so the machine's own services are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.lab import blackhole
from tests.lab.common import free_port

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 2.0
BOUND = 3 * TIMEOUT  # the fixed commands take about TIMEOUT + 0.5 s; with urllib3 retries, 6.9-7.4 s


def isolated_config(root: Path, port: int | None = None) -> Path:
    """Settings that keep every non-Kubernetes probe away from this machine's services: the databases at a
    closed port, or at `port` (bench/faults.py points them at a blackhole)."""
    closed = port or free_port()
    cfg = root / "config.yaml"
    cfg.write_text(f"""journal: {root}/journal.log
server_ip: 127.0.0.1
domain: portal.example.com
mysql: {{admin_socket: {root}/no-mysqld.sock, port: {closed}, restart_command: /bin/false, config_dir: {root}/mysql}}
mongodb: {{port: {closed}, config_file: {root}/no-mongod.conf, restart_command: /bin/false}}
rabbitmq: {{port: {closed}, management_port: {closed}, ctl_command: /bin/false, plugins_command: /bin/false}}
nfs: {{exports_file: {root}/exports, exportfs_command: /bin/false, path: {root}/nfs}}
helm: {{command: /bin/false}}
install: {{unit_dir: {root}/units, state_file: {root}/state.json, log_dir: {root}/log, download_dir: {root}/dl,
          bin_dir: {root}/bin}}
""")
    return cfg


# (name, argv, allowed exit codes): the commands that reach the API
COMMANDS = [
    ("doctor kubernetes", ["doctor", "--layer", "kubernetes", "--output", "json"], (3,)),
    ("doctor tls", ["doctor", "--layer", "tls", "--output", "json"], (3,)),
    ("doctor istio", ["doctor", "--layer", "istio", "--output", "json"], (3,)),
    ("doctor workloads", ["doctor", "--layer", "workloads", "--output", "json"], (3,)),
    ("doctor helm", ["doctor", "--layer", "helm", "--output", "json"], (3,)),
    ("doctor ecr", ["doctor", "--layer", "ecr", "--output", "json"], (3,)),
    ("fix k8s-namespace --dry-run", ["fix", "k8s-namespace", "--dry-run", "--output", "json"], (3,)),
    ("fix tls-secret --dry-run", ["fix", "tls-secret", "--dry-run", "--output", "json"], (3,)),
    ("fix istio-gateway --dry-run", ["fix", "istio-gateway", "--dry-run", "--output", "json"], (3,)),
    ("fix istio-nodeports --dry-run", ["fix", "istio-nodeports", "--dry-run", "--output", "json"], (3,)),
    ("fix helm-rollback --dry-run", ["fix", "helm-rollback", "--dry-run", "--output", "json"], (3,)),
    ("uninstall --dry-run", ["uninstall", "--dry-run", "--output", "json"], (3,)),
    # two steps probed one after the other, each within --timeout (run as root, as the installer must be)
    ("install --plan (2 kube steps)", ["install", "--plan", "--only", "namespace", "--only", "tls-secret", "--domain",
                                       "portal.example.com", "--force-os", "--output", "json"], (3,)),
]


def run(argv: list[str], kubeconfig: Path, cfg: Path, timeout: float = TIMEOUT) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sbops", *argv, "--timeout", f"{timeout:g}", "--kubeconfig",
                           str(kubeconfig), "--config", str(cfg), "--credentials", str(cfg.parent / "creds.txt")],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "NO_COLOR": "1", "KUBECONFIG": ""})
    return proc, time.monotonic() - began


def write_credentials(root: Path, port: int | None = None) -> None:
    """A credentials file naming every service at a closed port, or at `port` (a blackhole)."""
    from sbops import credentials as creds_mod
    from sbops.credentials import Credentials, Service
    from sbops.secret import Secret

    closed = port or free_port()
    service = Service(host="127.0.0.1", port=closed, username="stackbill", password=Secret("unused-Pw0001"),
                      management=f"http://127.0.0.1:{closed}")
    creds_mod.save(Credentials(portal_url="https://portal.example.com", server_ip="127.0.0.1",
                               generated="Thu Nov 26 10:00:00 UTC 2026", mysql=service, mongodb=service,
                               rabbitmq=service, nfs_server="127.0.0.1", nfs_path=str(root / "nfs")),
                   root / "creds.txt")


@pytest.fixture(params=sorted(blackhole.MODES))
def hung(request, tmp_path):
    """(kubeconfig, config) for a blackholed API server of each kind."""
    with blackhole.MODES[request.param]() as server:
        write_credentials(tmp_path)
        yield blackhole.kubeconfig(tmp_path / "kubeconfig", server.port), isolated_config(tmp_path)


def timeouts_in(document: object) -> bool:
    """Whether the JSON document reports a timeout anywhere (a reason, or a timed-out error text)."""
    text = json.dumps(document)
    return any(mark in text for mark in ('"reason": "timeout"', "timed out", "did not answer in time",
                                         "ConnectTimeoutError", "ReadTimeoutError"))


@pytest.mark.parametrize("name, argv, codes", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_commands_report_a_hung_api_server_as_a_timeout(hung, name, argv, codes):
    kubeconfig, cfg = hung
    proc, took = run(argv, kubeconfig, cfg)
    assert proc.returncode in codes, (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)
    assert '"reason": "internal"' not in json.dumps(document), document
    if argv[0] == "doctor":
        reasons = {c["id"]: c["reason"] for c in document["checks"]}
        assert set(reasons.values()) <= {"timeout", "blocked", "missing", "not_applicable", "refused"}, reasons
        assert "timeout" in reasons.values(), reasons
    elif argv[0] == "install":
        blocked = [step for step in document["steps"] if step["status"] == "blocked"]
        assert [step["name"] for step in blocked] == ["namespace", "tls-secret"], document["steps"]
        assert all("did not answer in time" in step["error"] for step in blocked), blocked
    else:
        assert timeouts_in(document), document
    # install --plan checks its two Kubernetes steps one after the other, each within the timeout (about
    # 2 x TIMEOUT + start-up); with urllib3's retries each would take 3 x TIMEOUT or more
    bound = 5 * TIMEOUT if argv[0] == "install" else BOUND
    assert took < bound, f"{name} took {took:.1f}s with --timeout {TIMEOUT:g} (urllib3 retries?)"


def test_doctor_reports_timeout_not_unreachable_and_keeps_to_the_timeout(hung):
    """What held up before issue 9 and must keep holding: k8s.api says timeout within the timeout."""
    kubeconfig, cfg = hung
    proc, took = run(["doctor", "--check", "k8s.api", "--output", "json"], kubeconfig, cfg)
    assert proc.returncode == 3, proc.stderr
    [check] = json.loads(proc.stdout)["checks"]
    assert check["reason"] == "timeout", check
    assert took < BOUND


def test_the_exporter_probe_of_kubernetes_layers_reports_timeout(hung):
    from tests.lab.exporter import parse, reasons

    kubeconfig, cfg = hung
    port = free_port()
    log = cfg.parent / "exporter.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "sbops", "exporter", "--listen", f"127.0.0.1:{port}",
                                 "--timeout", f"{TIMEOUT:g}", "--kubeconfig", str(kubeconfig), "--config", str(cfg),
                                 "--credentials", str(cfg.parent / "creds.txt")],
                                stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env={**os.environ, "KUBECONFIG": ""})
    try:
        end = time.monotonic() + 30
        while "listening on" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.05)
        for layer in ("kubernetes", "tls", "istio", "workloads", "helm", "ecr"):
            began = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{port}/probe?module={layer}", timeout=30)
            took = time.monotonic() - began
            assert response.status_code == 200, response.text[:300]
            found = reasons(parse(response.text))
            assert "timeout" in found.values(), (layer, found)
            assert "internal" not in found.values(), (layer, found)
            assert took < 3 * TIMEOUT, f"/probe?module={layer} took {took:.1f}s"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_install_takes_timeout_from_its_flag_and_keeps_it_for_resume(tmp_path):
    """`sbops install --timeout` (the README promises it for every command) reaches the settings, and is
    saved with the run's options so that --resume keeps it."""
    from sbops.install.command import load_settings
    from sbops.install.run import Options

    cfg = tmp_path / "c.yaml"
    cfg.write_text("timeout: 7\n")
    options = Options.from_state({}, {"timeout": 1.5, "config": str(cfg)})
    settings = load_settings(options)
    assert settings["timeout"] == 1.5 and settings.source("timeout") == "flag --timeout"
    resumed = Options.from_state(options.as_state(), {})
    assert load_settings(resumed)["timeout"] == 1.5
    assert load_settings(Options.from_state({}, {"config": str(cfg)}))["timeout"] == 7.0
