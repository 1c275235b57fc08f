"""Fault injection: the credentials file, fuzzed with a seeded mutator (issue 9).

Each round mutates a well-formed file (lines deleted, duplicated, swapped, truncated, re-indented; values
replaced by numbers in other scripts, huge numbers, control characters, line separators other than `\\n`;
junk inserted) and parses it. The only acceptable failure is a UsageError, on one line, naming the file. A
file that parses is written with `save` and read back with `load`: the passwords must survive. Some rounds go
through `load` from bytes on disk (invalid UTF-8, a BOM, NUL bytes).

Seeded with a fixed number of rounds, so a failure reproduces exactly: the message names the round.
"""

from __future__ import annotations

import random
from pathlib import Path

from sbops import credentials as c
from sbops.errors import UsageError
from tests.unit.test_credentials import ORIGINAL

SEED = 9_3_2026
ROUNDS = 20_000  # parses; the figure reported to the lead
SAVE_EVERY = 100  # a parsed file is saved and loaded back every this many rounds (fsync is slow)
LOAD_EVERY = 5  # every this many rounds the mutated text goes through load() from bytes on disk

VALUES = ["", " ", "0", "-1", "65535", "65536", "9" * 60, "٣٣٠٦", "３３０６", "3_306", "0x10", "1e3", " 3306 ",
          "+3306", "3306.0", "\x00", "\t", "é", "密码", "😀", ":", "::", ": :", "=", "=" * 60, "#", "a" * 5000,
          "MYSQL:", "Password:", '": "', "\\", "\"", "'", "None", "null", "true"]
JUNK_CHARS = ["\x00", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\t", ":", "=",
              " ", "\ufeff", "é", "\x7f", "\n", "\r\n"]
LINES = ["MYSQL:", "MONGODB:", "RABBITMQ:", "NFS:", "mysql:", "OTHER:", "  Password: x", "  Port: 1", "  Host:",
         "Generated:", "PORTAL URL: https://x", "SERVER IP:", "  : value", ":", "  Key", "junk", "=" * 60, "\t\tPort: 5",
         "  Password:    ", "STACKBILL POC CREDENTIALS", "  Username: a: b"]


def mutate(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(10)
        i = rng.randrange(len(lines)) if lines else 0
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[i])
        elif op == 2 and len(lines) > 1:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            lines.insert(i, rng.choice(LINES))
        elif op == 4 and lines and ":" in lines[i]:
            key, _, _ = lines[i].partition(":")
            lines[i] = f"{key}: {rng.choice(VALUES)}"
        elif op == 5 and lines:
            at = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:at] + rng.choice(JUNK_CHARS) + lines[i][at:]
        elif op == 6 and lines:
            lines[i] = lines[i].lstrip() if rng.random() < 0.5 else rng.choice(["\t", "    ", " "]) + lines[i]
        elif op == 7:
            joined = "\n".join(lines)
            lines = joined[:rng.randrange(len(joined) + 1)].split("\n")
        elif op == 8 and lines:
            lines[i] = lines[i].swapcase() if rng.random() < 0.5 else lines[i].upper()
        elif op == 9 and lines:
            lines[i] = "".join(rng.choice(JUNK_CHARS + ["a", "B", "1"]) for _ in range(rng.randrange(0, 12)))
    return rng.choice(["\n", "\r\n", "\r"]).join(lines) if rng.random() < 0.1 else "\n".join(lines)


def corrupt_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.choice([b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x00", b"\xed\xa0\x80", bytes([rng.randrange(256)])])
    return bytes(data)


def passwords(creds: c.Credentials) -> list[str | None]:
    return [s.password.reveal() if s.password else None for s in (creds.mysql, creds.mongodb, creds.rabbitmq)]


def assert_usage_error(exc: UsageError, name: str, where: str) -> None:
    message = str(exc)
    assert message.startswith(name), f"{where}: the error does not name the file: {message!r}"
    assert "\n" not in message and "\r" not in message, f"{where}: the error is not one line: {message!r}"


def test_credentials_parser_fuzzed(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    corpus = [ORIGINAL, c.render(c.parse(ORIGINAL)), ORIGINAL.replace("  ", "\t")]
    on_disk = tmp_path / "fuzz-credentials.txt"
    saved = tmp_path / "saved" / "stackbill-credentials.txt"
    parsed = refused = saves = loads = 0
    for round_no in range(ROUNDS):
        where = f"seed {SEED} round {round_no}"
        text = mutate(rng, rng.choice(corpus))
        try:
            creds = c.parse(text, "fuzz.txt")
        except UsageError as exc:
            assert_usage_error(exc, "fuzz.txt:", where)
            refused += 1
            creds = None
        except Exception as exc:  # noqa: BLE001 - the finding this test exists for
            raise AssertionError(f"{where}: {type(exc).__name__}: {exc}\n--- input ---\n{text!r}") from exc
        else:
            parsed += 1
        if creds is not None and round_no % SAVE_EVERY == 0:
            c.save(creds, saved)
            assert passwords(c.load(saved)) == passwords(creds), f"{where}: passwords changed on save/load"
            saves += 1
        if round_no % LOAD_EVERY == 0:
            data = text.encode("utf-8", "surrogatepass")
            on_disk.write_bytes(corrupt_bytes(rng, data) if rng.random() < 0.5 else data)
            try:
                c.load(on_disk)
            except UsageError as exc:
                assert_usage_error(exc, str(on_disk), where)
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(f"{where} (load): {type(exc).__name__}: {exc}") from exc
            loads += 1
    assert parsed + refused == ROUNDS
    assert parsed > ROUNDS // 10 and refused > ROUNDS // 10, (parsed, refused)  # the mutator reaches both sides
    assert saves > 20 and loads == ROUNDS // LOAD_EVERY
