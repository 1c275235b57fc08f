"""Certificates that load as PEM but that `cryptography` refuses when a part is read: malformed SAN bytes, a
duplicate extension, a public key of a type it does not know. Made by building a good certificate with a
placeholder extension or key and patching its DER (same lengths, so the structure stays valid DER; the
signature no longer verifies, which does not matter for what is tested).
"""

from __future__ import annotations

import base64
import datetime as dt
import textwrap

PLACEHOLDER_OID = "2.5.29.99"
PLACEHOLDER_DER = b"\x06\x03\x55\x1d\x63"
SAN_DER = b"\x06\x03\x55\x1d\x11"
ED25519_DER = b"\x06\x03\x2b\x65\x70"
UNKNOWN_KEY_DER = b"\x06\x03\x2b\x65\x72"  # 1.3.101.114: no such key type


def _pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _build(domain: str, extensions: list, key=None) -> tuple[bytes, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID

    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=90)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.DER), key_pem


def refused(kind: str, domain: str = "portal.example.com") -> tuple[str, str]:
    """(cert_pem, key_pem) of a certificate `cryptography` refuses: kind is one of KINDS."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519

    placeholder = x509.ObjectIdentifier(PLACEHOLDER_OID)
    san = x509.SubjectAlternativeName([x509.DNSName(domain)])
    if kind == "duplicate-san":
        der, key = _build(domain, [san, x509.UnrecognizedExtension(placeholder, san.public_bytes())])
        return _pem(der.replace(PLACEHOLDER_DER, SAN_DER)), key
    if kind == "bad-san-bytes":  # a dNSName holding the byte 0xff
        der, key = _build(domain, [x509.UnrecognizedExtension(placeholder, b"\x30\x03\x82\x01\xff")])
        return _pem(der.replace(PLACEHOLDER_DER, SAN_DER)), key
    if kind == "truncated-san":
        der, key = _build(domain, [x509.UnrecognizedExtension(placeholder, b"\x30\x05\x82\x03ab")])
        return _pem(der.replace(PLACEHOLDER_DER, SAN_DER)), key
    if kind == "unknown-key-type":  # the SubjectPublicKeyInfo's algorithm (the second Ed25519 OID) replaced
        der, key = _build(domain, [san], key=ed25519.Ed25519PrivateKey.generate())
        first = der.index(ED25519_DER)
        second = der.index(ED25519_DER, first + 1)
        return _pem(der[:second] + UNKNOWN_KEY_DER + der[second + len(UNKNOWN_KEY_DER):]), key
    raise ValueError(kind)


KINDS = ("duplicate-san", "bad-san-bytes", "truncated-san", "unknown-key-type")
