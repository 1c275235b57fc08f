"""The web-config file: what sbops accepts, promtool accepts too, and what both refuse; basic auth's rules."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from sbops.errors import UsageError
from sbops.exporter import webconfig
from sbops.exporter.server import parse_listen
from tests.lab.exporter import run_promtool
from tests.lab.kube import make_cert

# Fixed salts: the hashes appear in test ids, which must be the same in every process (pytest-xdist
# compares its workers' collections).
HASH = bcrypt.hashpw(b"right", b"$2b$04$GhvMmNVjRW29ulnudl.Lbu").decode()


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    cert, key, _ = make_cert("127.0.0.1", sans=["127.0.0.1"])
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "ca.pem").write_text(_)
    return tmp_path


VALID = [
    "",
    f"basic_auth_users:\n  prometheus: {HASH}\n",
    "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    # without client_ca_file client certificates are verified against the system's roots, as Go does
    "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: VerifyClientCertIfGiven\n",
    "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS13\n"
    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n"
    f"basic_auth_users:\n  a: {HASH}\n  b: {HASH}\n"
    "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_files_pass_sbops_and_promtool(tls_files: Path, text: str):
    path = tls_files / "web.yml"
    path.write_text(text)
    config = webconfig.load(path)
    if "cert_file" in text:
        assert config.tls is not None and config.tls.cert_file == tls_files / "cert.pem"
    check = run_promtool("check", "web-config", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


INVALID = [
    ("basic_auth_users:\n  prometheus: not-a-hash\n", ":2:", "not a bcrypt hash"),
    ("tls_server_config:\n  cert_file: cert.pem\n", "", "needs key_file"),
    ("bogus: 1\n", ":1:", "unknown web-config key 'bogus'"),
    ("tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n", "nope.pem", "cert_file not found"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS14\n", ":4:", "min_version"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: Sometimes\n", ":4:",
     "client_auth_type must be one of"),
    ("basic_auth_users: [\n", ":", "invalid YAML"),
]


@pytest.mark.parametrize("text, where, message", INVALID)
def test_invalid_files_are_refused_by_both_naming_file_and_line(tls_files: Path, text: str, where: str, message: str):
    path = tls_files / "web.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        webconfig.load(path)
    assert str(err.value).startswith(str(path) + where) or where in str(err.value)
    assert message in str(err.value)
    assert run_promtool("check", "web-config", str(path)).returncode != 0


@pytest.mark.parametrize("text, message", [
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     "not supported"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAnyClientCert\n"
     "  client_ca_file: ca.pem\n", "not supported"),
])
def test_toolkit_settings_python_cannot_honour_are_refused_not_ignored(tls_files: Path, text: str, message: str):
    path = tls_files / "web.yml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        webconfig.load(path)


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_unknown_users_are_checked_against_a_hash_of_the_same_cost():
    seen: list[bytes] = []

    def recording(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return bcrypt.checkpw(password, hashed)

    auth = webconfig.BasicAuth({"prometheus": HASH}, hasher=recording)
    assert auth.allows(header("prometheus", "right"))
    assert not auth.allows(header("prometheus", "wrong"))
    assert not auth.allows(header("nobody", "right"))
    assert not auth.allows(None) and not auth.allows("Bearer x") and not auth.allows("Basic !!!")
    assert seen[0] == seen[1] == HASH.encode()
    # an unknown user costs one bcrypt check of the costliest configured hash, and is refused even with its password
    assert seen[2] == HASH.encode()
    costly = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=5)).decode()
    mixed = webconfig.BasicAuth({"cheap": HASH, "costly": costly}, hasher=recording)
    assert not mixed.allows(header("nobody", "right")) and seen[-1] == costly.encode()
    # a success is remembered (bcrypt is slow on purpose); a failure never is
    calls = len(seen)
    assert auth.allows(header("prometheus", "right")) and len(seen) == calls
    assert not auth.allows(header("prometheus", "wrong")) and len(seen) == calls + 1


def test_no_users_means_no_auth():
    assert webconfig.BasicAuth({}).allows(None)


def test_client_allowed_sans():
    peer = {"subjectAltName": (("DNS", "prometheus.example.com"), ("IP Address", "10.0.0.5"))}
    assert webconfig.san_allowed(peer, ("prometheus.example.com",))
    assert not webconfig.san_allowed(peer, ("grafana.example.com",))
    assert webconfig.san_allowed(None, ())


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:29100", ("127.0.0.1", 29100)),
    (":29100", ("0.0.0.0", 29100)),
    ("[::1]:29100", ("::1", 29100)),
])
def test_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["29100", "host:", "host:99999", "::1:29100", "a:b"])
def test_listen_errors_name_the_flag(text):
    with pytest.raises(UsageError, match="--listen"):
        parse_listen(text)


def test_no_hashing_up_front_so_a_high_cost_cannot_stall_a_reload():
    slow = "$2b$31$" + HASH[7:]  # 2^31 rounds: hours per check
    calls: list[bytes] = []
    auth = webconfig.BasicAuth({"prometheus": slow}, hasher=lambda p, h: calls.append(h) or False)
    assert auth.enabled and calls == []


@pytest.mark.parametrize("text, expected", [
    ("plain /metrics", "plain /metrics"),
    ("\x1b[2J\r\n", "\\x1b[2J\\r\\n"),
    ("back\\slash", "back\\\\slash"),
    ("é", "\\xe9"),
    ("ab " * 40, ("ab " * 40)[:80] + "..."),
    (f"key {HASH} x", "key $2b$04$... x"),  # a hash is never quoted, whole or by its last 31 characters
    (HASH[29:], "..."),
])
def test_shown_keeps_one_printable_line(text, expected):
    assert webconfig.shown(text) == expected
