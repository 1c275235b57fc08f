"""Pebble, Let's Encrypt's ACME test server (Debian's `pebble`), with pebble-challtestsrv as its DNS.

Recipe and traps: /work/shared/TESTENV.md, "ACME". Pebble gets a serving certificate of its own (made here
for 127.0.0.1/localhost: the packaged example config points at test certs Debian does not ship); certbot trusts
it through REQUESTS_CA_BUNDLE (`Pebble.certbot_env`). pebble-challtestsrv answers Pebble's DNS lookups of any
name with 127.0.0.1, so Pebble's validator dials HTTP-01 on 127.0.0.1:<http01_port>, where `certbot
--standalone --http-01-port` listens. Every port is a free one; both processes stop with the fixture.

Pebble keeps its accounts and orders in memory: issuance and renewal must happen against the same running
Pebble (one fixture per test). PEBBLE_VA_NOSLEEP=1 drops its random validation delay; PEBBLE_WFE_NONCEREJECT=0
stops it rejecting 5 % of nonces at random (a test of client retries, which failed an issuance now and then).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab.common import Proc, free_port, tail, wait_port

PEBBLE, CHALLTESTSRV = "pebble", "pebble-challtestsrv"


def serving_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (Pebble's HTTPS), as (cert, key) files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble lab")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "pebble-cert.pem", directory / "pebble-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass
class Pebble:
    root: Path
    port: int = 0  # the ACME directory's HTTPS port
    http01_port: int = 0  # where Pebble's validator dials HTTP-01 (certbot --http-01-port)
    dns_port: int = 0
    ca_cert: Path = Path()
    procs: list[Proc] = field(default_factory=list)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def certbot_env(self) -> dict[str, str]:
        """What certbot needs in its environment to trust this Pebble."""
        return {"REQUESTS_CA_BUNDLE": str(self.ca_cert)}

    def start(self) -> "Pebble":
        for program in (PEBBLE, CHALLTESTSRV):
            if shutil.which(program) is None:
                raise RuntimeError(f"{program} is not installed: scripts/setup installs Debian's pebble package")
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca_cert, key = serving_cert(self.root)
        self.port, self.http01_port, self.dns_port = free_port(), free_port(), free_port()
        management, chall_management = free_port(), free_port()
        config = self.root / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(self.ca_cert), "privateKey": str(key), "httpPort": self.http01_port,
            "tlsPort": free_port(), "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        dns = Proc([CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01",
                    f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                    "-management", f"127.0.0.1:{chall_management}"], self.root / "challtestsrv.log")
        self.procs.append(dns.start())
        wait_port("127.0.0.1", chall_management, timeout=30, proc=dns.popen, log=dns.log)
        server = Proc([PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                      self.root / "pebble.log", env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        self.procs.append(server.start())
        wait_port("127.0.0.1", self.port, timeout=30, proc=server.popen, log=server.log)
        return self

    def log(self) -> str:
        return tail(self.root / "pebble.log", 30)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@pytest.fixture
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A running Pebble + challtestsrv for one test (accounts live in Pebble's memory)."""
    server = Pebble(tmp_path_factory.mktemp("pebble"))
    try:
        yield server.start()
    finally:
        server.stop()
