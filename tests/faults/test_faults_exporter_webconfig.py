"""Fault injection for the exporter's web-config parser: a seeded mutation fuzzer and one regression test per
defect of issue 9. The only exception `webconfig.load` may raise is UsageError, as one printable line that
names the file and quotes no hash; what it accepts must be usable (TLS context, bcrypt hashes, headers).
A broken file handed to a running configuration (`Watched.refresh`) keeps the last good one.

Deterministic: a fixed seed and a fixed number of rounds (FUZZ_ROUNDS), no hypothesis database. For a longer
hunt, SBOPS_FUZZ_ROUNDS and SBOPS_FUZZ_SEED override both (a failure prints the round, the seed and the file).
"""

from __future__ import annotations

import base64
import os
import random
from pathlib import Path

import bcrypt
import pytest
import yaml

from sbops.errors import UsageError
from sbops.exporter import webconfig
from tests.lab.kube import make_ca, make_cert

SEED = int(os.environ.get("SBOPS_FUZZ_SEED", 9_2026))
FUZZ_ROUNDS = int(os.environ.get("SBOPS_FUZZ_ROUNDS", 4000))
REFRESH_EVERY = 8  # every 8th mutant is also handed to a running configuration
# Fixed salts: the hashes appear in test ids, which must be the same in every process (pytest-xdist
# compares its workers' collections).
HASH = bcrypt.hashpw(b"right", b"$2b$04$GhvMmNVjRW29ulnudl.Lbu").decode()
HASH2 = bcrypt.hashpw(b"other", b"$2b$04$C6UzMDM.H6dfI/f/IKxGhu").decode()
HASH_SECRETS = (HASH[29:], HASH2[29:])  # the hash proper (after cost and salt): never in a message

SEEDS = [
    b"",
    b"# nothing\n",
    f"basic_auth_users:\n  prometheus: {HASH}\n  grafana: {HASH2}\n".encode(),
    b"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    b"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n"
    b"  client_ca_file: ca.pem\n  min_version: TLS12\n  max_version: TLS13\n  client_allowed_sans: [a.example, b]\n"
    b"  prefer_server_cipher_suites: false\n",
    f"basic_auth_users: {{prometheus: '{HASH}'}}\nhttp_server_config:\n  http2: true\n  headers:\n"
    f"    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n".encode(),
    f"tls_server_config: ~\nbasic_auth_users:\nhttp_server_config: {{}}\n---\nbasic_auth_users: {{a: {HASH}}}\n".encode(),
    b"http_server_config:\n  headers: {[a]: b}\n",
    b"tls_server_config: {[a]: b}\n",
    f"basic_auth_users:\n  prometheus: |\n    {HASH}\n".encode(),
    f"basic_auth_users:\n  prometheus: $2b$99${HASH[7:]}\n".encode(),
    b"a: &x [1, *x]\n",
]
TOKENS = [
    b"tls_server_config", b"basic_auth_users", b"http_server_config", b"headers", b"cert_file", b"key_file",
    b"client_ca_file", b"client_auth_type", b"min_version", b"max_version", b"client_allowed_sans", b"http2",
    b"cipher_suites", b"prefer_server_cipher_suites", b"Content-Security-Policy", b"RequireAndVerifyClientCert",
    b"VerifyClientCertIfGiven", b"RequireAnyClientCert", b"TLS10", b"TLS13", b"cert.pem", b"key.pem", b"ca.pem",
    b"/dev/zero", b"..", b"$2b$99$", b"$2y$04$", b"$2$04$", b"$2b$31$", b"$2b$03$", HASH.encode(), b"[a]", b"{[a]: b}",
    b"{a: {b: [c]}}", b"~", b"null", b"true", b"&a ", b"*a", b"<<: *a", b"!!binary aGk=", b"!!python/object:os.system",
    b"|\n  ", b"|-\n  ", b">\n  ", b'"\\n"', b'"\\x1b[2J"', b'"\\0"', b"? [a]\n: b", b"\xef\xbb\xbf", b"\xc3\x28",
    b"\xff", b"\x00", b"\x1b", b"\r\n", b"\t", b"%YAML 1.1\n---\n", b"---\n", b"...\n", b"[" * 40, b"{a: " * 30,
    b"- " * 20, b"\xe2\x80\xa8", b"\\", b"'", b'"', b"#", b":", b",", b"\n", b"\n  ", b"\n    ", "é".encode(),
]


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webconfig-fuzz")
    cert, key, ca = make_cert("127.0.0.1", sans=["127.0.0.1"])
    (root / "cert.pem").write_text(cert)
    (root / "key.pem").write_text(key)
    (root / "ca.pem").write_text(ca)
    (root / "other-ca.pem").write_text(make_ca("another CA")[0])
    return root


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four edits: byte flips, inserted tokens or bytes, deleted, duplicated or spliced ranges,
    re-indented lines."""
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(0, len(data))
        kind = rng.randrange(8)
        if kind == 0 and data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
        elif kind == 1:
            data = data[:where] + rng.choice(TOKENS) + data[where:]
        elif kind == 2:
            data = data[:where] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))) + data[where:]
        elif kind == 3 and data:
            end = min(len(data), where + rng.randint(1, 16))
            data = data[:where] + data[end:]
        elif kind == 4 and data:
            end = min(len(data), where + rng.randint(1, 40))
            data = data[:end] + data[where:end] + data[end:]
        elif kind == 5:
            other = rng.choice(SEEDS)
            data = data[:where] + other[rng.randint(0, len(other)):]
        elif kind == 6:
            lines = data.split(b"\n")
            i = rng.randrange(len(lines))
            lines[i] = b" " * rng.choice((0, 1, 2, 3, 4, 8)) + lines[i].lstrip()
            data = b"\n".join(lines)
        else:
            data = data[:where] + b"\n" + rng.choice(TOKENS) + b": " + rng.choice(TOKENS) + data[where:]
    return data


def generated(rng: random.Random) -> bytes:
    """A structurally plausible file: the known keys with values of random shapes, dumped by PyYAML."""
    def value(depth: int):
        shape = rng.randrange(7 if depth < 3 else 4)
        if shape == 0:
            return rng.choice(TOKENS).decode("utf-8", "replace")
        if shape == 1:
            return rng.choice([None, True, 0, -1, 3.5, "", HASH, "TLS12"])
        if shape == 2:
            return rng.choice(["cert.pem", "key.pem", "ca.pem", "other-ca.pem", "missing.pem", "."])
        if shape == 3:
            return f"$2{rng.choice('abyx')}${rng.randint(0, 99):02d}${HASH[7:]}" + rng.choice(["", "\n", " "])
        if shape == 4:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(TOKENS).decode("utf-8", "replace"): value(depth + 1) for _ in range(rng.randint(0, 3))}

    doc = {}
    for key in rng.sample(["tls_server_config", "basic_auth_users", "http_server_config"], rng.randint(1, 3)):
        if key == "tls_server_config":
            doc[key] = {k: value(1) for k in rng.sample(sorted(webconfig.TLS_KEYS), rng.randint(0, 5))}
            doc[key].update({"cert_file": "cert.pem", "key_file": "key.pem"} if rng.random() < 0.7 else {})
        elif key == "basic_auth_users":
            doc[key] = {rng.choice(["prometheus", "a:b", "", "é"]): value(1) for _ in range(rng.randint(0, 3))}
        else:
            doc[key] = {"headers": {rng.choice(webconfig.ALLOWED_HEADERS + ("Set-Cookie",)): value(2)}}
    return yaml.safe_dump(doc, allow_unicode=rng.random() < 0.5).encode("utf-8")


def check_outcome(path: Path, data: bytes) -> tuple[str, webconfig.WebConfig | None]:
    """('ok', config) or ('refused', None); anything else (another exception, a bad message, an unusable
    config) fails."""
    path.write_bytes(data)
    try:
        config = webconfig.load(path)
    except UsageError as exc:
        message = str(exc)
        assert message and all(" " <= c <= "~" for c in message), f"not one printable line: {message!r}"
        assert message.startswith(f"{path}:"), f"does not name the file first: {message!r}"
        assert not any(s in message for s in HASH_SECRETS), f"quotes a hash: {message!r}"
        return "refused", None
    # what is accepted must work: hashes bcrypt can check, headers that cannot split a response, TLS
    auth = webconfig.BasicAuth(config.users)
    cheap = all(int(hashed[4:6]) <= 5 for hashed in config.users.values())  # a cost of 31 takes hours
    for user, hashed in config.users.items():
        assert ":" not in user and user
        if cheap:
            bcrypt.checkpw(b"x", hashed.encode())  # ValueError would mean a hash that never matches
    if config.users and cheap:
        assert auth.allows("Basic " + base64.b64encode(f"{next(iter(config.users))}:right".encode()).decode()) in (True, False)
    for name, value in config.headers.items():
        assert name in webconfig.ALLOWED_HEADERS and "\r" not in value and "\n" not in value
    if config.tls is not None:
        webconfig.server_context(config.tls)
    return "ok", config


def test_fuzzed_web_config_raises_only_usage_errors(tls_dir: Path):
    rng = random.Random(SEED)
    path = tls_dir / "web.yml"
    good = f"basic_auth_users:\n  prometheus: {HASH}\n".encode()
    path.write_bytes(good)
    errors: list[str] = []
    watched = webconfig.Watched(path, errors.append)
    outcomes = {"ok": 0, "refused": 0}
    for round_ in range(FUZZ_ROUNDS):
        data = generated(rng) if round_ % 4 == 3 else mutate(rng, rng.choice(SEEDS))
        try:
            outcome, config = check_outcome(path, data)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"round {round_} (seed {SEED}): {type(exc).__name__}: {exc}\nfile: {data!r}")
        outcomes[outcome] += 1
        if round_ % REFRESH_EVERY == 0:
            before = watched.active
            now = watched.refresh()  # must never raise
            assert now is watched.active
            if outcome == "refused":
                assert now is before, "a broken file keeps the last good configuration"
            else:  # taken, unless it switches TLS on (needs a restart) or its stamp did not change
                assert now is before or now.config == config
    # the mutator reaches both sides of the parser, else it would prove little
    assert outcomes["ok"] > FUZZ_ROUNDS // 20 and outcomes["refused"] > FUZZ_ROUNDS // 2, outcomes
    print(f"web-config fuzz: {FUZZ_ROUNDS} rounds (seed {SEED}) survived: {outcomes['ok']} accepted, "
          f"{outcomes['refused']} refused with a UsageError; {len(errors)} run-time errors reported")


# One regression test per defect of issue 9: (file bytes, line named, words of the message).
DEFECTS = [
    (b"basic_auth_users:\n  prometheus: \xff\xfe\n", ":2:", "not UTF-8"),
    (f"basic_auth_users:\n  prometheus: $2b$99${HASH[7:]}\n".encode(), ":2:", "bcrypt cost 99 is outside 4-31"),
    (f"basic_auth_users:\n  prometheus: $2b$03${HASH[7:]}\n".encode(), ":2:", "bcrypt cost 03 is outside 4-31"),
    (b"http_server_config:\n  headers: {[a]: b}\n", ":2:", "must be a single value"),
    (b"tls_server_config: {[a]: b}\n", ":1:", "must be a single value"),
    (b"{[a]: b}\n", ":1:", "must be a single value"),
    (f"basic_auth_users: {{[a]: {HASH}}}\n".encode(), ":1:", "must be a single value"),
    (b"a: " + b"[" * 100_000 + b"\n", ":1:", "nested more than 16 levels"),
    (b"a:\n" + b"".join(b"  " * i + b"- b:\n" for i in range(1, 400)), ":", "nested more than 16 levels"),
    (f"basic_auth_users:\n  prometheus: |\n    {HASH}\n".encode(), ":2:", "ends with a newline"),
    (f'basic_auth_users:\n  prometheus: "{HASH}\\n"\n'.encode(), ":2:", "ends with a newline"),
    (f"basic_auth_users:\n  prometheus: $2${HASH[3:]}\n".encode(), ":2:", "not a bcrypt hash"),
    # found by the fuzzer (seed 7): the salt's 22nd character can only be one of ".Oeu"
    (f"basic_auth_users:\n  prometheus: {HASH[:28]}{'P' if HASH[28] != 'P' else 'Q'}{HASH[29:]}\n".encode(), ":2:",
     "hash is damaged"),
    (f"basic_auth_users:\n  'a:b': {HASH}\n".encode(), ":2:", "holds ':'"),
    (b'http_server_config:\n  headers:\n    X-Frame-Options: "deny\\r\\nSet-Cookie: a=b"\n', ":3:", "control"),
    (b"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS13\n  max_version: TLS12\n",
     ":5:", "below min_version"),
    (b"basic_auth_users:\n  \"\\e[2J\": x\n", ":2:", "\\x1b[2J"),
]


@pytest.mark.parametrize("data, where, words", DEFECTS)
def test_each_defect_is_one_usage_error_naming_file_and_line(tls_dir: Path, data: bytes, where: str, words: str):
    path = tls_dir / "defect.yml"
    path.write_bytes(data)
    with pytest.raises(UsageError) as err:
        webconfig.load(path)
    message = str(err.value)
    assert message.startswith(str(path) + where), message
    assert words in message and "\n" not in message


def test_a_fifo_or_a_huge_file_is_refused_without_blocking(tls_dir: Path):
    import os

    fifo = tls_dir / "fifo.yml"
    if not fifo.exists():
        os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        webconfig.load(fifo)
    huge = tls_dir / "huge.yml"
    huge.write_bytes(b"# " + b"x" * webconfig.MAX_FILE_BYTES + b"\n")
    with pytest.raises(UsageError, match="larger than"):
        webconfig.load(huge)


def test_an_encrypted_key_is_refused_rather_than_prompting(tls_dir: Path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((tls_dir / "key.pem").read_bytes(), password=None)
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"pass-phrase"))
    (tls_dir / "locked.key").write_bytes(locked)
    path = tls_dir / "locked.yml"
    path.write_text("tls_server_config:\n  cert_file: cert.pem\n  key_file: locked.key\n")
    with pytest.raises(UsageError, match="cannot use cert_file"):
        webconfig.load(path)


def test_a_broken_file_at_run_time_keeps_the_last_good_copy_and_reports_once(tls_dir: Path):
    path = tls_dir / "running.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {HASH}\n")
    errors: list[str] = []
    watched = webconfig.Watched(path, errors.append)
    good = watched.active
    for index, (data, _, words) in enumerate(DEFECTS):
        path.write_bytes(data + b"#" * index)  # a new size: a new version even within one mtime tick
        assert watched.refresh() is good
        assert watched.refresh() is good  # the same broken version is reported once
        assert len(errors) == index + 1 and words in errors[-1], errors[-1]
    path.write_text(f"basic_auth_users:\n  grafana: {HASH2}\n")
    assert set(watched.refresh().config.users) == {"grafana"}


def test_an_unexpected_exception_in_a_reload_is_one_line_not_a_crash(tls_dir: Path, monkeypatch):
    """Whatever load() raises (here a stand-in for a bug not yet found), refresh() keeps the last good copy."""
    path = tls_dir / "bug.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {HASH}\n")
    errors: list[str] = []
    watched = webconfig.Watched(path, errors.append)
    good = watched.active

    def broken(_: Path) -> webconfig.WebConfig:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(webconfig, "load", broken)
    path.write_text(f"basic_auth_users:\n  grafana: {HASH2}\n")
    assert watched.refresh() is good
    assert errors == [f"{path}: cannot use web-config file: unexpected RecursionError (please report this bug of sbops)"]
    with pytest.raises(UsageError, match="unexpected RecursionError"):
        webconfig.Watched(path, errors.append)  # at start-up: a usage error (exit 2), so systemd stops retrying
