"""Certificates that `cryptography` refuses (bad SAN bytes, duplicate extensions, unknown key types), in the
tls.certificate check, the tls-secret fix and `sbops install`'s validation: a clear failure with reason
misconfigured (or a one-line validation error), never "check crashed"."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sbops.model import Reason, Status
from sbops.probes import tls
from tests.faults.badcerts import KINDS, refused

NOW = dt.datetime.now(dt.timezone.utc)
DOMAIN = "portal.example.com"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", KINDS)
def test_the_check_judges_a_refused_certificate_misconfigured(kind):
    cert, key = refused(kind)
    result = tls.judge_certificate(cert.encode(), key.encode(), DOMAIN, NOW, 14.0, "istio-system/certs")
    assert (result.status, result.reason) == (Status.FAIL, Reason.MISCONFIGURED), result
    assert "cannot be used" in result.summary and "\n" not in result.summary


@pytest.mark.parametrize("kind", KINDS)
def test_the_fix_and_install_validation_name_the_problem(kind, tmp_path):
    from sbops.install.validation import judge_pair

    cert, key = refused(kind)
    [problem] = tls.pair_problems(cert.encode(), key.encode(), DOMAIN, NOW)
    assert problem.startswith("the certificate file cannot be used"), problem
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    errors = judge_pair(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), lambda p: Path(p).read_bytes(), DOMAIN, NOW)
    assert len(errors) == 1 and "cannot be used" in errors[0], errors


def test_an_unknown_private_key_type_is_a_key_problem():
    cert, _ = refused("duplicate-san")
    key = ("-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(b"\x30\x0a\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x72"
                                                             b"\x04\x00").decode() + "\n-----END PRIVATE KEY-----\n")
    result = tls.judge_certificate(cert.encode(), key.encode(), DOMAIN, NOW, 14.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.MISCONFIGURED)


@pytest.mark.parametrize("kind", KINDS)
def test_install_plan_refuses_with_one_line(kind, tmp_path):
    cert, key = refused(kind)
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    from tests.lab.blackhole import kubeconfig
    from tests.lab.common import free_port

    kubeconfig(tmp_path / "kubeconfig", free_port())  # valid, at a closed port: validation comes first
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"install: {{state_file: {tmp_path}/state.json, log_dir: {tmp_path}/log, "
                   f"download_dir: {tmp_path}/dl, unit_dir: {tmp_path}/units}}\njournal: {tmp_path}/journal.log\n")
    proc = subprocess.run([sys.executable, "-m", "sbops", "install", "--plan", "--only", "tls-secret", "--domain", DOMAIN,
                           "--ssl-cert", str(tmp_path / "c.pem"), "--ssl-key", str(tmp_path / "k.pem"), "--config",
                           str(cfg), "--credentials", str(tmp_path / "creds.txt"), "--force-os", "--timeout", "2"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "NO_COLOR": "1", "KUBECONFIG": str(tmp_path / "kubeconfig")})
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert any("--ssl-cert" in line and "cannot be used" in line for line in proc.stderr.splitlines()), proc.stderr


# -- against the real API server: the secret holds such a certificate -----------------------------------------
@pytest.fixture
def env(kube: Any, tmp_path: Path) -> Any:
    from tests.lab.env import LabEnv

    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))


@pytest.mark.parametrize("kind", KINDS)
def test_doctor_and_fix_with_a_refused_certificate_in_the_secret(env, core, kind, tmp_path):
    from tests.lab import kube as lab
    from tests.lab.env import status

    cert, key = refused(kind, lab.DOMAIN)
    try:
        core.delete_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) != 404:
            raise
    core.create_namespaced_secret(lab.ISTIO_NAMESPACE, {
        "metadata": {"name": lab.TLS_SECRET}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(cert.encode()).decode(), "tls.key": base64.b64encode(key.encode()).decode()}})
    result = env.check("tls.certificate")
    assert status(result) == ("fail", "misconfigured"), result
    assert "cannot be used" in result["summary"]
    # the fix, given the same files, refuses them with the reason (nothing crashes, nothing is written)
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    env.set("tls.cert_file", str(tmp_path / "c.pem")).set("tls.key_file", str(tmp_path / "k.pem"))
    proc = env.sbops("fix", "tls-secret", "--yes", "--output", "json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert "cannot be used" in doc["plan"]["blockers"][0], doc
