"""TLS and basic auth of `sbops exporter` with real clients (requests/urllib3 over OpenSSL), from a web-config
file in the exporter-toolkit format that `promtool check web-config` accepts too."""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.lab.env import LabEnv
from tests.lab.exporter import ExporterProc, parse, run_promtool, value
from tests.lab.kube import make_ca, make_cert

PASSWORD = "scrape-Secret-42"
HEADER = {"X-Prometheus-Scrape-Timeout-Seconds": "5"}


def pki(root: Path) -> dict[str, Path]:
    """A server certificate for 127.0.0.1 and a client certificate, each from its own CA."""
    root.mkdir(parents=True, exist_ok=True)
    server_ca = make_ca("sbops exporter test CA")
    cert, key, ca = make_cert("127.0.0.1", sans=["127.0.0.1", "localhost"], ca=server_ca)
    client_ca = make_ca("sbops exporter clients CA")
    ccert, ckey = client_cert("prometheus", client_ca)
    files = {"cert": cert, "key": key, "ca": ca, "client_cert": ccert, "client_key": ckey, "client_ca": client_ca[0]}
    paths = {}
    for name, text in files.items():
        paths[name] = root / f"{name}.pem"
        paths[name].write_text(text)
    return paths


def client_cert(name: str, ca: tuple[str, str]) -> tuple[str, str]:
    """A TLS client certificate (clientAuth) signed by `ca`."""
    from tests.lab.kube import make_client_cert

    return make_client_cert(name, ca)

def web_config(root: Path, users: dict[str, str], mtls: bool = False) -> Path:
    lines = ["tls_server_config:", "  cert_file: cert.pem", "  key_file: key.pem"]
    if mtls:
        lines += ["  client_auth_type: RequireAndVerifyClientCert", "  client_ca_file: client_ca.pem"]
    lines += ["basic_auth_users:"] + [f"  {user}: {hashed}" for user, hashed in users.items()]
    lines += ["http_server_config:", "  headers:", "    X-Content-Type-Options: nosniff"]
    path = root / ("web-mtls.yml" if mtls else "web.yml")
    path.write_text("\n".join(lines) + "\n")
    return path


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def test_tls_and_basic_auth_with_real_clients(tmp_path: Path):
    files = pki(tmp_path / "pki")
    config = web_config(tmp_path / "pki", {"prometheus": hashed(PASSWORD), "grafana": hashed("other-pass-9")})
    check = run_promtool("check", "web-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    env = LabEnv(tmp_path / "env").write()
    with ExporterProc(env, "--web-config", str(config)) as exporter:
        def get(path: str = "/probe?module=host", **kwargs) -> requests.Response:
            return requests.get(exporter.url + path, verify=str(files["ca"]), timeout=30, headers=HEADER, **kwargs)

        good = get(auth=("prometheus", PASSWORD))
        assert good.status_code == 200
        assert value(parse(good.text), "sbops_check_success", layer="host", check="host.resources") is not None
        assert good.headers["X-Content-Type-Options"] == "nosniff"
        for auth in (("prometheus", "wrong-password"), ("nobody", PASSWORD), None):
            refused = get(auth=auth)
            assert refused.status_code == 401, auth
            assert refused.headers["WWW-Authenticate"] == 'Basic realm="sbops exporter"'
            assert "sbops_check" not in refused.text
        assert get("/-/healthy").status_code == 401, "every endpoint needs the credentials"
        # /results (doctor --cluster's) behind the same TLS and basic auth
        assert get("/results?layer=host").status_code == 401
        results = get("/results?layer=host&check=host.resources", auth=("prometheus", PASSWORD))
        assert results.status_code == 200 and results.headers["Content-Type"] == "application/json"
        assert [c["id"] for c in results.json()["checks"]] == ["host.resources"] and results.json()["node"]
        assert get("/results?check=no.such", auth=("prometheus", PASSWORD)).status_code == 400
        assert get("/-/healthy", auth=("grafana", "other-pass-9")).status_code == 200
        # the certificate is checked by the client: a client trusting another CA refuses the server
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(exporter.url + "/-/healthy", verify=str(files["client_ca"]), timeout=10)
        # plain HTTP to the TLS port gets no metrics
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(exporter.url.replace("https://", "http://") + "/metrics", timeout=10)

        # a new user in the file takes effect without a restart; a broken edit keeps the last good config
        config.write_text(config.read_text().replace("grafana:", "alertmanager:"))
        assert get("/-/healthy", auth=("alertmanager", "other-pass-9")).status_code == 200
        assert get("/-/healthy", auth=("grafana", "other-pass-9")).status_code == 401
        config.write_text("basic_auth_users: [\n")
        assert get("/-/healthy", auth=("alertmanager", "other-pass-9")).status_code == 200
        errors = parse(get("/metrics", auth=("alertmanager", "other-pass-9")).text)
        assert value(errors, "sbops_exporter_errors_total", kind="web_config") == 1
        assert exporter.proc.poll() is None
    assert PASSWORD not in exporter.log.read_text()


def test_client_certificates_required(tmp_path: Path):
    files = pki(tmp_path / "pki")
    config = web_config(tmp_path / "pki", {"prometheus": hashed(PASSWORD)}, mtls=True)
    check = run_promtool("check", "web-config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    env = LabEnv(tmp_path / "env").write()
    with ExporterProc(env, "--web-config", str(config)) as exporter:
        with_cert = requests.get(exporter.url + "/-/healthy", verify=str(files["ca"]), auth=("prometheus", PASSWORD),
                                 cert=(str(files["client_cert"]), str(files["client_key"])), timeout=30)
        assert with_cert.status_code == 200
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(exporter.url + "/-/healthy", verify=str(files["ca"]), auth=("prometheus", PASSWORD),
                         timeout=30)
        # a certificate from a CA the server does not trust is refused as well
        other_cert, other_key = client_cert("intruder", make_ca("another CA"))
        (tmp_path / "o.pem").write_text(other_cert)
        (tmp_path / "o.key").write_text(other_key)
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(exporter.url + "/-/healthy", verify=str(files["ca"]), auth=("prometheus", PASSWORD),
                         cert=(str(tmp_path / "o.pem"), str(tmp_path / "o.key")), timeout=30)
        assert exporter.proc.poll() is None, "failed handshakes do not stop the server"
        assert ssl.OPENSSL_VERSION  # the client side is OpenSSL through urllib3, like the server's
