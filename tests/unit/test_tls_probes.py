"""Pure parts of sbops.probes.tls from tables: RFC 6125 name matching, certificate judgements, secret placement."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sbops.messages import CATALOG
from sbops.model import Reason, Status
from sbops.probes import tls as t

NOW = datetime.now(timezone.utc)
DOMAIN = "stackbill.example.com"


@pytest.mark.parametrize("pattern, host, expected", [
    ("stackbill.example.com", "stackbill.example.com", True),
    ("StackBill.Example.COM", "stackbill.example.com", True),
    ("stackbill.example.com.", "stackbill.example.com", True),
    ("*.example.com", "stackbill.example.com", True),
    ("*.example.com", "a.stackbill.example.com", False),  # one label only
    ("*.example.com", "example.com", False),
    ("*.com", "example.com", False),  # no wildcard directly under a TLD
    ("s*.example.com", "stackbill.example.com", False),  # no partial-label wildcards
    ("*.*.com", "a.example.com", False),
    ("stackbill.*.com", "stackbill.example.com", False),
    ("other.example.com", "stackbill.example.com", False),
    ("", "stackbill.example.com", False),
])
def test_name_matches(pattern: str, host: str, expected: bool) -> None:
    assert t.name_matches(pattern, host) is expected


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject: str, issuer: str, key, signer, sans=(), days=90, ca=False, start=None):
    start = start or NOW - timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Lab CA", "Lab CA", ca_key, ca_key, ca=True, days=3650)
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _cert("Other CA", "Other CA", other_ca_key, other_ca_key, ca=True, days=3650)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = ec.generate_private_key(ec.SECP256R1())

    def leaf(sans=(DOMAIN,), days=90, start=None, signer=ca_key, issuer="Lab CA", k=key):
        return _cert(DOMAIN, issuer, k, signer, sans=sans, days=days, start=start)

    return dict(ca=ca, ca_key=ca_key, other_ca=other_ca, other_ca_key=other_ca_key, key=key, other_key=other_key, leaf=leaf)


CASES = [
    # name, builder(pki) -> (cert_pem, key_pem), domain, every finding of certificate_findings in severity order
    ("healthy", lambda p: (_pem(p["leaf"]()) + _pem(p["ca"]), _key_pem(p["key"])), DOMAIN, ["SB6320"]),
    ("leaf only", lambda p: (_pem(p["leaf"]()), _key_pem(p["key"])), DOMAIN, ["SB6320"]),
    ("wildcard", lambda p: (_pem(p["leaf"](sans=("*.example.com",))), _key_pem(p["key"])), DOMAIN, ["SB6320"]),
    ("domain unknown", lambda p: (_pem(p["leaf"](sans=("x.test",))), _key_pem(p["key"])), "", ["SB6320"]),
    ("expiring", lambda p: (_pem(p["leaf"](days=10)), _key_pem(p["key"])), DOMAIN, ["SB6328"]),
    ("expired", lambda p: (_pem(p["leaf"](days=10, start=NOW - timedelta(days=20))), _key_pem(p["key"])), DOMAIN,
     ["SB6323"]),
    # the case tls.certificate once passed and tls-secret refused: one judgement now refuses it in both
    ("not yet valid", lambda p: (_pem(p["leaf"](days=30, start=NOW + timedelta(days=2))), _key_pem(p["key"])), DOMAIN,
     ["SB6324"]),
    ("other domain", lambda p: (_pem(p["leaf"](sans=("other.example.org",))), _key_pem(p["key"])), DOMAIN, ["SB6325"]),
    ("wildcard too deep", lambda p: (_pem(p["leaf"](sans=("*.com",))), _key_pem(p["key"])), DOMAIN, ["SB6325"]),
    ("no SAN", lambda p: (_pem(p["leaf"](sans=())), _key_pem(p["key"])), DOMAIN, ["SB6325"]),
    ("key of another cert", lambda p: (_pem(p["leaf"]()), _key_pem(p["other_key"])), DOMAIN, ["SB6326"]),
    ("chain out of order", lambda p: (_pem(p["ca"]) + _pem(p["leaf"]()), _key_pem(p["key"])), DOMAIN, ["SB6327"]),
    ("wrong issuer", lambda p: (_pem(p["leaf"]()) + _pem(p["other_ca"]), _key_pem(p["key"])), DOMAIN, ["SB6327"]),
    ("forged signature", lambda p: (_pem(p["leaf"](signer=p["other_ca_key"])) + _pem(p["ca"]), _key_pem(p["key"])),
     DOMAIN, ["SB6327"]),
    ("garbage cert", lambda p: (b"hello", _key_pem(p["key"])), DOMAIN, ["SB6321"]),
    ("broken PEM", lambda p: (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", _key_pem(p["key"])),
     DOMAIN, ["SB6321"]),
    ("garbage key", lambda p: (_pem(p["leaf"]()), b"nope"), DOMAIN, ["SB6322"]),
    # an expired certificate for the wrong domain is reported as expired first, the domain second
    ("expired and wrong domain", lambda p: (_pem(p["leaf"](sans=("x.org",), days=1, start=NOW - timedelta(days=5))),
                                            _key_pem(p["key"])), DOMAIN, ["SB6323", "SB6325"]),
    ("not yet valid, wrong domain, wrong key", lambda p: (_pem(p["leaf"](sans=("x.org",), start=NOW + timedelta(days=1))),
                                                          _key_pem(p["other_key"])), DOMAIN,
     ["SB6324", "SB6325", "SB6326"]),
    # a failure outranks the expiring warning, which is then left out (the pair is refused anyway)
    ("expiring with wrong key", lambda p: (_pem(p["leaf"](days=5)), _key_pem(p["other_key"])), DOMAIN, ["SB6326"]),
]


@pytest.mark.parametrize("name, build, domain, codes", CASES, ids=[c[0] for c in CASES])
def test_certificate_findings(pki, name, build, domain, codes) -> None:
    """The one judgement: every finding, most basic first; the check reports the first, the fix and the
    installer refuse on every failure."""
    cert_pem, key_pem = build(pki)
    found = t.certificate_findings(cert_pem, key_pem, domain, NOW, 14.0, "istio-system/certs")
    assert [r.code for r in found] == codes
    for result in found:
        entry = CATALOG[result.code]
        assert (result.status, result.reason) == (entry.status, entry.reason)
        assert "sbops fix" not in result.summary and "PRIVATE KEY" not in str(result.details)
        if cert_pem.startswith(b"-----BEGIN CERTIFICATE-----\nMII"):
            assert result.expires_at is not None and result.expires_at.tzinfo is not None
    check = t.judge_certificate(cert_pem, key_pem, domain, NOW, 14.0, "istio-system/certs")
    assert check.code == codes[0]
    refused = t.pair_problems(cert_pem, key_pem, domain, NOW)
    assert refused == [r.summary for r in t.certificate_findings(cert_pem, key_pem, domain, NOW, 0.0)
                       if r.status is Status.FAIL]
    assert bool(refused) == (check.status is Status.FAIL)


def test_validate_pair_blocks_bad_pairs(pki) -> None:
    good = (_pem(pki["leaf"]()) + _pem(pki["ca"]), _key_pem(pki["key"]))
    assert t.validate_pair(*good, DOMAIN, NOW, "files") == []
    expiring = (_pem(pki["leaf"](days=3)), _key_pem(pki["key"]))
    assert t.validate_pair(*expiring, DOMAIN, NOW, "files") == []  # expiring soon is still installable
    wrong = (_pem(pki["leaf"](sans=("other.org",))), _key_pem(pki["key"]))
    [blocker] = t.validate_pair(*wrong, DOMAIN, NOW, "files")
    assert "does not cover" in blocker


def st(**kw) -> t.SecretState:
    base = dict(name="istio-ingressgateway-certs", namespace="istio-system", source="Gateway sb-apps/stackbill-gateway",
                exists=True, type=t.TLS_TYPE, data={"tls.crt": b"c", "tls.key": b"k"})
    base.update(kw)
    return t.SecretState(**base)


@pytest.mark.parametrize("state, status, reason, code", [
    (st(), Status.OK, Reason.NONE, "SB6310"),
    (st(type="Opaque"), Status.OK, Reason.NONE, "SB6310"),  # Istio reads Opaque secrets with these keys too
    (st(exists=False, data={}), Status.FAIL, Reason.MISSING, "SB6311"),
    (st(exists=False, data={}, elsewhere=("sb-apps",)), Status.FAIL, Reason.WRONG_NAMESPACE, "SB6312"),
    (st(data={"tls.crt": b"c"}), Status.FAIL, Reason.MISCONFIGURED, "SB6313"),
    (st(data={"tls.crt": b"c", "tls.key": b""}), Status.FAIL, Reason.MISCONFIGURED, "SB6313"),
    (st(data={}), Status.FAIL, Reason.MISCONFIGURED, "SB6313"),
])
def test_judge_secret(state, status, reason, code) -> None:
    result = t.judge_secret(state)
    assert (result.code, result.status, result.reason) == (code, status, reason)


@pytest.mark.parametrize("gateway, name", [
    ({"spec": {"servers": [{"port": {"number": 80, "protocol": "HTTP"}, "tls": {"httpsRedirect": True}},
                           {"port": {"number": 443, "protocol": "HTTPS"}, "tls": {"mode": "SIMPLE", "credentialName": "c"}}]}},
     "c"),
    ({"spec": {"servers": [{"port": {"number": 80, "protocol": "HTTP"}}]}}, ""),
    ({"spec": {}}, ""),
    ({}, ""),
])
def test_gateway_credential(gateway, name) -> None:
    assert t.gateway_credential(gateway) == name


def test_chain_out_of_order_names_the_leaf_position(pki) -> None:
    result = t.judge_certificate(_pem(pki["ca"]) + _pem(pki["leaf"]()), _key_pem(pki["key"]), DOMAIN, NOW, 14.0)
    assert (result.code, result.status, result.reason) == ("SB6327", Status.FAIL, Reason.MISCONFIGURED)
    assert "number 2 of 2" in result.args["problem"] and result.details["chain_problem"] == result.args["problem"]
    assert result.details["subject"] == f"CN={DOMAIN}"
