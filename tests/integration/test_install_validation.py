"""`sbops install` refuses bad input before changing anything: each problem one line, exit 2, nothing written
(no state file, no log, no credentials file). Real here: the CLI in a subprocess, this machine's
os-release and listeners, a real listener squatting a port, certificate files, an artifacts directory,
and a run as an unprivileged user (setpriv-style, through subprocess's user=)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.lab.common import free_port
from tests.lab.env import REPO, LabEnv
from tests.lab.kube import DOMAIN, make_ca, make_cert
from tests.lab.listener import ListenerProc


@pytest.fixture
def env(tmp_path: Path) -> LabEnv:
    return LabEnv(tmp_path / "env").installer()


def refused(proc: subprocess.CompletedProcess, *messages: str) -> list[str]:
    """Exit 2, one 'sbops: error:' line per problem, each expected message among them, no traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sbops: error: ")]
    for message in messages:
        assert any(message in line for line in errors), (message, proc.stderr)
    return errors


def nothing_written(env: LabEnv) -> None:
    root = env.root / "install"
    assert not (root / "state.json").exists()
    assert not (root / "log_dir").exists() or not list((root / "log_dir").iterdir())


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("certs")
    ca = make_ca()
    now = datetime.now(timezone.utc)
    made = {"good": make_cert(DOMAIN, ca=ca), "other": make_cert("other.example.org", ca=ca),
            "expired": make_cert(DOMAIN, days=10, not_before=now - timedelta(days=40), ca=ca)}
    out = {}
    for name, (cert, key, chain) in made.items():
        (root / f"{name}.crt").write_text(cert + chain)
        (root / f"{name}.key").write_text(key)
        out[name] = (root / f"{name}.crt", root / f"{name}.key")
    out["mismatch"] = (out["good"][0], out["other"][1])
    return out


KUBE_STEPS = ("--only", "tls-secret")


def test_bad_domain(env: LabEnv) -> None:
    refused(env.install("--yes", "--domain", "not_a domain", "--only", "credentials"),
            "--domain not_a domain: not a valid DNS name")
    refused(env.install("--yes", "--domain", "10.1.2.3", "--only", "credentials"), "--domain 10.1.2.3: an IP address")
    nothing_written(env)


@pytest.mark.parametrize("case, message", [
    ("expired", "the certificate expired on"),
    ("other", f"the certificate does not cover {DOMAIN} (its names: other.example.org)"),
    ("mismatch", "the key file is not the private key of the certificate"),
])
def test_bad_certificate(env: LabEnv, certs, case: str, message: str) -> None:
    cert, key = certs[case]
    errors = refused(env.install("--yes", "--domain", DOMAIN, "--ssl-cert", str(cert), "--ssl-key", str(key),
                                 *KUBE_STEPS), message)
    assert any(line.startswith(f"sbops: error: --ssl-cert {cert} / --ssl-key {key}: ") for line in errors)
    nothing_written(env)


def test_certificate_without_key_and_unreadable_files(env: LabEnv, certs, tmp_path: Path) -> None:
    cert, _ = certs["good"]
    refused(env.install("--yes", "--ssl-cert", str(cert), *KUBE_STEPS), "--ssl-cert and --ssl-key go together")
    refused(env.install("--yes", "--ssl-cert", str(tmp_path / "nope.crt"), "--ssl-key", str(tmp_path / "nope.key"),
                        *KUBE_STEPS),
            f"--ssl-cert {tmp_path / 'nope.crt'}: cannot read: No such file or directory",
            f"--ssl-key {tmp_path / 'nope.key'}: cannot read: No such file or directory")


def test_a_port_held_by_another_program(env: LabEnv) -> None:
    port = free_port("0.0.0.0")
    squatter = ListenerProc("0.0.0.0", port).start()
    try:
        env.service("mysql", port=port, password="Whatever12345678")
        refused(env.install("--yes", "--only", "credentials", "--only", "mysql"),
                f"port {port} (MySQL) is in use by python", f"(pid {squatter.pid}), which is not MySQL")
    finally:
        squatter.stop()
    nothing_written(env)


def test_artifacts_manifest_missing_or_not_matching(env: LabEnv, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    refused(env.install("--yes", "--artifacts-dir", str(bundle), "--only", "credentials"),
            f"--artifacts-dir: {bundle / 'SHA256SUMS'} not found")
    (bundle / "k3s").write_bytes(b"tampered")
    (bundle / "SHA256SUMS").write_text(f"{hashlib.sha256(b'original').hexdigest()}  k3s\n")
    refused(env.install("--yes", "--artifacts-dir", str(bundle), "--only", "credentials"),
            f"--artifacts-dir: {bundle / 'k3s'} does not match SHA256SUMS")
    refused(env.install("--yes", "--artifacts-dir", str(tmp_path / "nothing"), "--only", "credentials"),
            f"--artifacts-dir {tmp_path / 'nothing'}: not a directory")
    nothing_written(env)


def test_steps_and_flags(env: LabEnv) -> None:
    refused(env.install("--yes", "--only", "mysqll"), "--only: unknown step 'mysqll' (steps: validate, credentials")
    refused(env.install("--yes", "--skip", "validate"), "--skip validate: validation cannot be skipped")
    refused(env.install("--resume", "--yes"), f"--resume: nothing to resume (no install state at {env.root / 'install' / 'state.json'})")
    refused(env.install("--only", "credentials"), "install: standard input is not a terminal: pass --yes to install, or --plan")
    env.set("install.mysql_flavour", "postgres")
    refused(env.install("--yes", "--only", "credentials"), "install.mysql_flavour is 'postgres': use auto, mysql or mariadb")
    nothing_written(env)


def test_missing_password_needs_the_credentials_step(env: LabEnv) -> None:
    env.write()
    text = env.credentials_path.read_text().replace("  Password: unused-mysql\n", "")
    env.credentials_path.write_text(text)
    argv = [sys.executable, "-m", "sbops", "install", "--yes", "--only", "mysql", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "NO_COLOR": "1"})
    refused(proc, f"{env.credentials_path} has no MYSQL password and the credentials step is not selected")
    assert env.credentials_path.read_text() == text


def test_no_cluster_with_skip_infra(env: LabEnv) -> None:
    refused(env.install("--yes", "--skip-infra", "--skip-db", env={"KUBECONFIG": "", "HOME": str(env.root)}),
            "no Kubernetes cluster for namespace, ecr-secret, tls-secret, helm-release, istio-gateway, wait-pods")


def test_not_root(tmp_path: Path) -> None:
    """Run for real as `nobody` (uid 65534, through util-linux's setpriv): refused, nothing written."""
    home = tmp_path / "nobody"
    home.mkdir(mode=0o777)
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "sbops",
                           "install", "--yes", "--only", "credentials", "--domain", DOMAIN,
                           "--credentials", str(home / "creds.txt")],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "HOME": str(home), "NO_COLOR": "1", "SBOPS_CONFIG": "/dev/null"})
    refused(proc, "must run as root (it installs packages, writes /etc and starts services): use sudo")
    assert not (home / "creds.txt").exists()


def test_json_output_of_a_refused_run(env: LabEnv) -> None:
    import json

    proc = env.install("--yes", "--domain", "bad_domain", "--only", "credentials", "--output", "json")
    refused(proc, "--domain bad_domain: not a valid DNS name")
    doc = json.loads(proc.stdout)
    assert doc["result"] == "invalid" and doc["steps"] == []
    assert doc["validation"]["errors"][0].startswith("--domain bad_domain: not a valid DNS name")
