"""`sbops install --role database-host` (sbops.install.dbhost): the unit, the web-config and the certificate it
renders (pure), and its plan against a temporary directory with an offline systemd root (`systemctl --root`):
what a first run writes, with what modes, that a dry run writes nothing, and that a second run changes nothing.
systemctl --root needs no running systemd: nothing is mocked."""

from __future__ import annotations

import ipaddress
import shlex
import stat
from pathlib import Path

import bcrypt
import pytest
import yaml

from sbops.context import Context
from sbops.exporter import webconfig
from sbops.install import dbhost
from sbops.settings import Settings


def test_render_unit_runs_the_exporter_as_the_agent() -> None:
    shipped = "[Service]\nExecStart=/usr/local/bin/sbops exporter\nRestart=on-failure\n"
    text = dbhost.render_unit(shipped, ["/usr/bin/sbops"], "10.0.0.5:29120", "mysql,mongodb", "/etc/sbops/agent/web.yml",
                              "/etc/sbops/config.yaml", "/root/creds.txt")
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert shlex.split(line[len("ExecStart="):]) == [
        "/usr/bin/sbops", "exporter", "--listen", "10.0.0.5:29120", "--layers", "mysql,mongodb", "--web-config",
        "/etc/sbops/agent/web.yml", "--config", "/etc/sbops/config.yaml", "--credentials", "/root/creds.txt"]
    assert "Restart=on-failure" in text


def test_the_shipped_unit_is_the_agent_unit() -> None:
    from sbops.shipped import agent_unit_file

    text = agent_unit_file().read_text()
    assert "ExecStart=" in text and "--web-config" in text and "WantedBy=multi-user.target" in text


def test_web_config_is_one_the_exporter_reads(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(4)).decode()
    text = dbhost.render_web_config(str(tmp_path / "a.crt"), str(tmp_path / "a.key"), "sbops", hashed)
    parsed = webconfig.parse(tmp_path / "web.yml", text)
    assert parsed.users == {"sbops": hashed} and parsed.tls is not None
    assert parsed.tls.cert_file == tmp_path / "a.crt"
    assert dbhost.hash_verifies(text, "sbops", "s3cret-pass")
    assert not dbhost.hash_verifies(text, "sbops", "other")
    assert not dbhost.hash_verifies(text, "prometheus", "s3cret-pass")
    assert not dbhost.hash_verifies(None, "sbops", "s3cret-pass")


@pytest.mark.parametrize("listen, addresses, ips", [
    ("10.98.3.2:29120", ["10.98.3.2", "192.168.1.4"], ["10.98.3.2", "127.0.0.1"]),
    ("0.0.0.0:29120", ["127.0.0.1", "10.1.2.3", "fe80::1%eth0", "::1"], ["10.1.2.3", "127.0.0.1"]),
    (":29120", ["10.1.2.3"], ["10.1.2.3", "127.0.0.1"]),
    ("[::]:29120", ["2001:db8::5"], ["2001:db8::5", "127.0.0.1"]),
])
def test_certificate_names(listen, addresses, ips) -> None:
    names, got = dbhost.cert_names(listen, "db1", addresses)
    assert names == ["db1", "localhost"] and got == ips


def test_self_signed_certificate_names_the_addresses() -> None:
    from cryptography import x509

    cert_pem, key_pem = dbhost.make_self_signed(["db1"], ["10.98.3.2"], days=1)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.98.3.2")]
    assert san.get_values_for_type(x509.DNSName) == ["db1"] and "PRIVATE KEY" in key_pem


def context(tmp_path: Path, **extra: str) -> Context:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"journal": str(tmp_path / "journal.log"), "dbhost": {
        "dir": str(tmp_path / "agent"), "listen": "10.98.3.2:29120", "layers": "mysql",
        "systemd_root": str(tmp_path / "root"), **extra}}))
    return Context(Settings.load(config, env={}))


def test_plan_writes_everything_once_with_private_modes_and_then_nothing(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    where = dbhost.layout(ctx.settings)
    first = dbhost.plan(ctx, dbhost.Options(config=str(tmp_path / "config.yaml")))
    described = " | ".join(c.description for c in first.changes)
    assert "self-signed" in described and "password" in described and "web.yml" in described
    assert not where.dir.exists(), "planning writes nothing"
    shown = "\n".join(line for c in first.changes for d in c.files for line in (d.after or "").splitlines())
    assert "$2b$" not in shown and "BEGIN PRIVATE KEY" not in shown, "no hash and no key in a plan"
    for change in first.changes:
        change.apply()
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(where.dir) == 0o700 and mode(where.password) == 0o600 and mode(where.key) == 0o600
    assert mode(where.web_config) == 0o600
    password = where.password.read_text().strip()
    assert len(password) >= 24
    parsed = webconfig.load(where.web_config)
    assert bcrypt.checkpw(password.encode(), parsed.users["sbops"].encode())
    assert where.unit.is_file() and dbhost.enabled_offline(str(tmp_path / "root"))
    assert "--layers mysql" in where.unit.read_text() and str(where.web_config) in where.unit.read_text()
    second = dbhost.plan(ctx, dbhost.Options(config=str(tmp_path / "config.yaml")))
    assert second.empty, [c.description for c in second.changes]
    # a new password (someone replaced the file): the web-config follows, the certificate stays
    where.password.write_text("another-password-of-enough-length\n")
    third = dbhost.plan(ctx, dbhost.Options(config=str(tmp_path / "config.yaml")))
    assert [c.description.split(" ")[1] for c in third.changes] == [str(where.web_config)]


def test_certificate_and_key_given_must_both_be(tmp_path: Path) -> None:
    from sbops.errors import UsageError

    with pytest.raises(UsageError, match="--agent-cert and --agent-key go together"):
        dbhost.plan(context(tmp_path), dbhost.Options(agent_cert=str(tmp_path / "x.crt")))
