"""tls.* checks and the tls-secret fix against the real kube-apiserver lab (tests/lab/kube.py).

Real here: the API server (secrets, the Istio Gateway custom object) and real X.509 certificates made with
`cryptography` by tests.lab.kube.make_cert. Not real: Istio itself (nothing serves the certificate; the
checks read the secret the ingress gateway would load).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding

TLS_NS = lab.ISTIO_NAMESPACE
APP_NS = lab.NAMESPACE
NAME = lab.TLS_SECRET


@pytest.fixture
def env(kube: lab.KubeLab, tmp_path: Path) -> LabEnv:
    return LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def put(core: Any, data: dict[str, str], namespace: str = TLS_NS, type_: str = "kubernetes.io/tls") -> None:
    try:
        core.delete_namespaced_secret(NAME, namespace)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) != 404:
            raise
    core.create_namespaced_secret(namespace, {"metadata": {"name": NAME}, "type": type_,
                                              "data": {k: b64(v) for k, v in data.items()}})


def put_pair(core: Any, cert: str, key: str) -> None:
    put(core, {"tls.crt": cert, "tls.key": key})


def write_pair(tmp_path: Path, cert: str, key: str) -> tuple[str, str]:
    cert_file, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert_file.write_text(cert)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return str(cert_file), str(key_file)


def valid_pair(days: int = 90) -> tuple[str, str]:
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=days)
    return cert + ca, key


def fix(env: LabEnv, *extra: str, environ: dict | None = None) -> tuple[int, dict]:
    proc = env.sbops("fix", "tls-secret", "--yes", "--output", "json", *extra, env=environ)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def exists(core: Any, namespace: str) -> bool:
    try:
        core.read_namespaced_secret(NAME, namespace)
        return True
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) == 404:
            return False
        raise


# -- checks ------------------------------------------------------------------------------------------
def test_healthy(env: LabEnv) -> None:
    results = env.doctor("tls.*")
    assert finding(results["tls.secret"]) == ("SB6310", "ok", "none")
    assert finding(results["tls.certificate"]) == ("SB6320", "ok", "none")
    assert results["tls.secret"]["details"]["credential_source"] == f"Gateway {APP_NS}/{lab.GATEWAY}"
    expires = dt.datetime.fromisoformat(results["tls.certificate"]["expires_at"])
    assert expires.tzinfo is not None and expires > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=80)


def test_secret_only_in_app_namespace(env: LabEnv, core: Any) -> None:
    """The classic mistake: the secret created in sb-apps, where the ingress gateway never looks."""
    original = core.read_namespaced_secret(NAME, TLS_NS)
    core.delete_namespaced_secret(NAME, TLS_NS)
    core.create_namespaced_secret(APP_NS, {"metadata": {"name": NAME}, "type": original.type, "data": original.data})
    results = env.doctor("tls.*")
    assert finding(results["tls.secret"]) == ("SB6312", "fail", "wrong_namespace")
    assert results["tls.secret"]["details"]["found_in"] == [APP_NS]
    assert finding(results["tls.certificate"]) == ("SB0003", "skip", "blocked")
    # the fix copies the valid misplaced copy where the gateway looks
    code, doc = fix(env)
    assert code == 0, doc
    assert exists(core, TLS_NS)
    assert core.read_namespaced_secret(NAME, TLS_NS).data == original.data
    assert finding(env.check("tls.certificate")) == ("SB6320", "ok", "none")


def test_secret_deleted(env: LabEnv, core: Any, tmp_path: Path) -> None:
    core.delete_namespaced_secret(NAME, TLS_NS)
    assert finding(env.check("tls.secret")) == ("SB6311", "fail", "missing")
    # without files (and no copy anywhere) the fix is blocked and changes nothing
    code, doc = fix(env)
    assert code == 3 and doc["outcome"] == "blocked"
    assert not exists(core, TLS_NS)
    # with files from the environment
    cert_file, key_file = write_pair(tmp_path, *valid_pair())
    code, doc = fix(env, environ={"SBOPS_TLS_CERT_FILE": cert_file, "SBOPS_TLS_KEY_FILE": key_file})
    assert code == 0, doc
    results = env.doctor("tls.*")
    assert finding(results["tls.secret"]) == ("SB6310", "ok", "none")
    assert finding(results["tls.certificate"]) == ("SB6320", "ok", "none")


def test_key_missing(env: LabEnv, core: Any, tmp_path: Path) -> None:
    cert, _ = valid_pair()
    put(core, {"tls.crt": cert}, type_="Opaque")  # kubernetes.io/tls requires both keys: an Opaque copy
    assert finding(env.check("tls.secret")) == ("SB6313", "fail", "misconfigured")
    cert_file, key_file = write_pair(tmp_path, *valid_pair())
    env.set("tls.cert_file", cert_file).set("tls.key_file", key_file)
    code, doc = fix(env)
    assert code == 0, doc
    assert core.read_namespaced_secret(NAME, TLS_NS).type == "kubernetes.io/tls"


def test_expired_certificate(env: LabEnv, core: Any, tmp_path: Path) -> None:
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=90,
                                  not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=100))
    put_pair(core, cert + ca, key)
    result = env.check("tls.certificate")
    assert finding(result) == ("SB6323", "fail", "expired")
    assert dt.datetime.fromisoformat(result["expires_at"]) < dt.datetime.now(dt.timezone.utc)
    # the fix refuses expired files, then installs valid ones
    env.set("tls.cert_file", write_pair(tmp_path, cert + ca, key)[0]).set("tls.key_file", str(tmp_path / "privkey.pem"))
    code, doc = fix(env)
    assert code == 3 and doc["outcome"] == "blocked" and "expired" in doc["plan"]["blockers"][0]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cert_file, key_file = write_pair(fresh, *valid_pair())
    env.set("tls.cert_file", cert_file).set("tls.key_file", key_file)
    code, doc = fix(env)
    assert code == 0, doc
    assert finding(env.check("tls.certificate")) == ("SB6320", "ok", "none")


def test_not_yet_valid_certificate_is_refused_by_the_check_and_the_fix(env: LabEnv, core: Any) -> None:
    """One judgement: a certificate whose validity starts tomorrow (a clock behind, or a wrong issue date)
    once passed tls.certificate while tls-secret refused it; now both refuse it, with the same finding."""
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=90,
                                  not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    put_pair(core, cert + ca, key)
    result = env.check("tls.certificate")
    assert finding(result) == ("SB6324", "fail", "misconfigured")
    assert dt.datetime.fromisoformat(result["details"]["not_before"]) > dt.datetime.now(dt.timezone.utc)
    code, doc = fix(env)  # no files given: the fix judges the secret there is
    assert code == 3 and doc["outcome"] == "blocked"
    assert "not valid before" in doc["plan"]["blockers"][0]
    assert core.read_namespaced_secret(NAME, TLS_NS).data["tls.crt"] == b64(cert + ca)  # changed nothing


def test_expiring_certificate(env: LabEnv, core: Any) -> None:
    put_pair(core, *valid_pair(days=5))
    assert finding(env.check("tls.certificate")) == ("SB6328", "warn", "expiring")


def test_certificate_for_another_domain(env: LabEnv, core: Any, tmp_path: Path) -> None:
    cert, key, ca = lab.make_cert("portal.other.example.org")
    put_pair(core, cert + ca, key)
    assert finding(env.check("tls.certificate")) == ("SB6325", "fail", "misconfigured")
    env.set("tls.cert_file", write_pair(tmp_path, cert + ca, key)[0]).set("tls.key_file", str(tmp_path / "privkey.pem"))
    code, doc = fix(env)
    assert code == 3 and "does not cover" in doc["plan"]["blockers"][0]


def test_key_of_another_certificate(env: LabEnv, core: Any) -> None:
    cert, _, ca = lab.make_cert(lab.DOMAIN)
    _, other_key, _ = lab.make_cert(lab.DOMAIN)
    put_pair(core, cert + ca, other_key)
    assert finding(env.check("tls.certificate")) == ("SB6326", "fail", "misconfigured")


def test_chain_out_of_order(env: LabEnv, core: Any, tmp_path: Path) -> None:
    cert, key, ca = lab.make_cert(lab.DOMAIN)
    put_pair(core, ca + cert, key)
    result = env.check("tls.certificate")
    assert finding(result) == ("SB6327", "fail", "misconfigured")
    assert "chain_problem" in result["details"]
    cert_file, key_file = write_pair(tmp_path, cert + ca, key)
    code, doc = fix(env, environ={"SBOPS_TLS_CERT_FILE": cert_file, "SBOPS_TLS_KEY_FILE": key_file})
    assert code == 0, doc
    assert finding(env.check("tls.certificate")) == ("SB6320", "ok", "none")


def test_gateway_absent_falls_back_to_setting(env: LabEnv, custom: Any) -> None:
    custom.delete_namespaced_custom_object("networking.istio.io", "v1beta1", APP_NS, "gateways", lab.GATEWAY)
    result = env.check("tls.secret")
    assert finding(result) == ("SB6310", "ok", "none")
    assert result["details"]["credential_source"].startswith("setting tls.secret")


def test_gateway_names_another_credential(env: LabEnv, custom: Any) -> None:
    gateway = custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", APP_NS, "gateways", lab.GATEWAY)
    for server in gateway["spec"]["servers"]:
        if server["port"]["protocol"] == "HTTPS":
            server["tls"]["credentialName"] = "stackbill-tls-secret"
    custom.replace_namespaced_custom_object("networking.istio.io", "v1beta1", APP_NS, "gateways", lab.GATEWAY, gateway)
    result = env.check("tls.secret")
    assert finding(result) == ("SB6311", "fail", "missing")
    assert result["details"]["secret"] == "stackbill-tls-secret"


def test_fix_dry_run_changes_nothing(env: LabEnv, core: Any, tmp_path: Path) -> None:
    core.delete_namespaced_secret(NAME, TLS_NS)
    cert_file, key_file = write_pair(tmp_path, *valid_pair())
    env.set("tls.cert_file", cert_file).set("tls.key_file", key_file)
    proc = env.sbops("fix", "tls-secret", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "create secret" in proc.stdout and "PRIVATE KEY" not in proc.stdout
    assert not exists(core, TLS_NS)


def test_fix_nothing_to_do_when_healthy(env: LabEnv) -> None:
    code, doc = fix(env)
    assert code == 0 and doc["outcome"] == "nothing-to-do"
