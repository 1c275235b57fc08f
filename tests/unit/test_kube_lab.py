"""The lab's pure helpers: ECR tokens, certificates and Helm's release encoding as sbops will read them."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json

import pytest

from tests.lab import kube as kl

UTC = dt.timezone.utc


@pytest.mark.parametrize("hours", [-1, 0.5, 11, 12])
def test_ecr_token_carries_its_expiry(hours: float) -> None:
    expires = dt.datetime.now(UTC) + dt.timedelta(hours=hours)
    token = kl.ecr_token(expires)
    user, password = base64.b64decode(token).decode().split(":", 1)
    doc = json.loads(base64.b64decode(password))
    assert user == "AWS"
    assert doc["expiration"] == int(expires.timestamp())
    assert doc["version"] == "2" and doc["type"] == "DATA_KEY"
    assert kl.ecr_password(token) == password
    auth = json.loads(kl.dockerconfigjson(token))["auths"][kl.REGISTRY]
    assert auth == {"username": "AWS", "password": password, "auth": token}


@pytest.mark.parametrize("days, back, expired", [(90, 1, False), (90, 100, True), (1, 0, False)])
def test_make_cert_validity(days: int, back: int, expired: bool) -> None:
    from cryptography import x509

    start = dt.datetime.now(UTC) - dt.timedelta(days=back, hours=1)
    cert_pem, key_pem, ca_pem = kl.make_cert("stackbill.example.com", days=days, not_before=start)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    assert cert.issuer == ca.subject
    assert (cert.not_valid_after_utc < dt.datetime.now(UTC)) is expired
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["stackbill.example.com"]
    assert "PRIVATE KEY" in key_pem
    cert.verify_directly_issued_by(ca)


def test_make_cert_reuses_a_ca_and_takes_sans() -> None:
    from cryptography import x509

    ca = kl.make_ca("test CA")
    cert_pem, _, ca_pem = kl.make_cert("a.example", sans=["a.example", "127.0.0.1"], ca=ca)
    assert ca_pem == ca[0]
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize("revision, status", [(1, "deployed"), (3, "failed"), (2, "pending-upgrade")])
def test_helm_release_secret_encoding(revision: int, status: str) -> None:
    secret = kl.helm_release_secret("stackbill", "sb-apps", revision, status, "2.1.0")
    assert secret.metadata.name == f"sh.helm.release.v1.stackbill.v{revision}"
    assert secret.type == "helm.sh/release.v1"
    assert secret.metadata.labels == {"owner": "helm", "name": "stackbill", "status": status,
                                      "version": str(revision)}
    helm_value = base64.b64decode(secret.data["release"])          # the Secret's own base64
    release = json.loads(gzip.decompress(base64.b64decode(helm_value)))  # Helm's base64 of gzip
    assert release["info"]["status"] == status and release["version"] == revision
    assert release["chart"]["metadata"] == {**release["chart"]["metadata"], "name": "stackbill", "version": "2.1.0"}
    assert kl.helm_decode(helm_value.decode()) == release


def test_pod_names_are_stable_and_deployment_like() -> None:
    name = kl.pod_name("sb-core")
    assert name == kl.pod_name("sb-core") and name.startswith("sb-core-")
    assert [len(part) for part in name.split("-")[-2:]] == [10, 5]
