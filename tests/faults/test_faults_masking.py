"""Fault injection: the masking of secrets, fuzzed with a seeded generator (issue 9, item 2).

Random secrets (numbers, keywords such as true/null, quotes, backslashes, tabs, non-ASCII, `": "`, and mixes
of them) are planted in random nested evidence, which also holds numbers, booleans and None that look like
the secrets. Through every path sbops serializes (a check's evidence in the engine and the doctor's JSON
document; the fix's JSON document and journal line) the result must always be valid JSON, equal to what was
serialized, and no secret may appear in any string of it, raw or escaped.

The generator is seeded and the number of rounds fixed, so a failure reproduces exactly: the assertion
message names the round.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sbops.context import Context
from sbops.credentials import CloudStack, Credentials, Service
from sbops.engine import Outcome, _masked
from sbops.fixflow import journal
from sbops.model import Change, Plan, Reason, Result, Severity, Status
from sbops.registry import Check, Fix, Risk
from sbops.report.jsonout import doctor_document
from sbops.secret import MIN_LENGTH, Secret, mask_text, mask_value
from sbops.settings import Settings
from tests.faults.leaks import json_leaks, text_leaks

SEED = 9_2026_11_30
ROUNDS = 4000  # the figure reported to the lead; each round is one random set of secrets and evidence
JOURNAL_EVERY = 8  # a journal line (file I/O) every this many rounds

KEYWORDS = ["true", "false", "null", "NaN", "Infinity", "-Infinity"]
PIECES = ['": "', '","', '":', '"', "\\", "\\\\", "\t", "\n", "\r", "/", "\\u0041", "\\n", "{", "}", "[", "]",
          ",", ":", " ", "é", "ü", "ß", "密", "码", "😀", "\u2028", "\x00", "\x7f", "'", "`", "$", "%s", "****x"]
ALPHABET = "abcXYZ0123456789" + "".join(p for p in PIECES if len(p) == 1)


def random_secret(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        value = str(rng.choice([rng.randrange(100, 70000), 2049, 100, 3306, 27017, 5672]))
    elif kind == 1:
        value = rng.choice([repr(rng.uniform(0, 1000)), "100.0", "1e10", "-0.5", "0.0"])
    elif kind == 2:
        value = rng.choice(KEYWORDS)
    elif kind == 3:
        value = "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 4)))
    elif kind == 4:
        value = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(3, 20)))
    else:
        value = rng.choice(['": "', "pa\"ss", "back\\slash", "tab\tbed", "pässwörd", "密码密码", "a\\\"b"])
    while len(value) < MIN_LENGTH or not value.strip("*"):
        value += rng.choice(ALPHABET.replace("*", ""))
    return value


def lookalike(rng: random.Random, secret: str) -> Any:
    """A non-string leaf that serializes like the secret: the number or keyword it spells, when it does."""
    try:
        parsed = json.loads(secret)
    except ValueError:
        return rng.choice([True, False, None, 2049, 100.0])
    return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else None


def random_string(rng: random.Random, secrets: list[str]) -> str:
    parts = []
    for _ in range(rng.randrange(0, 5)):
        parts.append(rng.choice(secrets) if rng.random() < 0.5 else
                     "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 6))))
    return "".join(parts)


def random_leaf(rng: random.Random, secrets: list[str]) -> Any:
    kind = rng.randrange(8)
    if kind < 3:
        return random_string(rng, secrets)
    if kind == 3:
        return lookalike(rng, rng.choice(secrets))
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return rng.choice([rng.randrange(-10, 70000), round(rng.uniform(0, 500), 1)])
    if kind == 6:
        return Secret(rng.choice(secrets))
    return rng.choice(secrets)


def random_evidence(rng: random.Random, secrets: list[str], depth: int = 0) -> Any:
    if depth >= 4 or rng.random() < 0.3:
        return random_leaf(rng, secrets)
    if rng.random() < 0.6:
        out: dict[Any, Any] = {}
        for _ in range(rng.randrange(0, 6)):
            key: Any = random_string(rng, secrets) if rng.random() < 0.8 else lookalike(rng, rng.choice(secrets))
            out[key] = random_evidence(rng, secrets, depth + 1)
        return out
    items = [random_evidence(rng, secrets, depth + 1) for _ in range(rng.randrange(0, 5))]
    return tuple(items) if rng.random() < 0.3 else items


def plain(value: Any) -> Any:
    """What json.loads gives back for masked data (tuples come back as lists)."""
    return json.loads(json.dumps(value))


def registrable(secrets: list[str]) -> list[str]:
    """The round's secrets as sbops can hold them: the credentials file's three passwords take any text;
    settings and the CloudStack keys (which become settings) refuse control characters, so unprintable
    secrets beyond three lose them."""
    out, unprintable = [], 0
    for value in secrets:
        if not value.isprintable():
            unprintable += 1
            if unprintable > 3:
                value = "".join(ch if ch.isprintable() else "_" for ch in value)
        out.append(value)
    return out


def context(secrets: list[str], tmp: Path) -> Context:
    """Every secret registered where sbops keeps one: unprintable ones in the credentials file's passwords,
    the others in the CloudStack keys and the settings' admin passwords."""
    unprintable = [value for value in secrets if not value.isprintable()]
    printable = [value for value in secrets if value.isprintable()]
    assert len(unprintable) <= 3, "registrable() leaves at most three"
    passwords = (unprintable + printable + ["unused-password"] * 3)[:3]
    rest = ([value for value in printable if value not in passwords] + ["unused-key"] * 5)[:5]
    settings = Settings.load(env={"SBOPS_MYSQL_ADMIN_PASSWORD": rest[3], "SBOPS_MONGODB_ADMIN_PASSWORD": rest[4]},
                             flags={"journal": str(tmp / "journal.log")})
    cloudstack = CloudStack(password=Secret(rest[0]), api_key=Secret(rest[1]), secret_key=Secret(rest[2]))
    creds = Credentials(mysql=Service(password=Secret(passwords[0])), mongodb=Service(password=Secret(passwords[1])),
                        rabbitmq=Service(password=Secret(passwords[2])), cloudstack=cloudstack)
    return Context(settings, creds)


def strict_loads(text: str) -> Any:
    """json.loads that refuses what RFC 8259 does not allow (Python accepts NaN and Infinity)."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def check_serialized(text: str, expected: Any, secrets: list[str], where: str) -> None:
    assert strict_loads(text) == expected, f"{where}: the JSON does not read back as what was serialized"
    leaks = json_leaks(text, secrets)
    assert not leaks, f"{where}: secret {leaks[0][0]!r} shows in {leaks[0][1]}"


def test_masking_fuzzed_over_random_secrets_and_evidence(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    check = Check("fuzz.check", "host", "fuzz", Severity.CRITICAL, lambda c: None, no_fix="test")
    fix = Fix("fuzz-fix", "fuzz", ("fuzz.check",), Risk.SAFE, lambda c: Plan())
    started = datetime(2026, 11, 30, tzinfo=timezone.utc)
    journals = 0
    for round_no in range(ROUNDS):
        where = f"seed {SEED} round {round_no}"
        secrets = registrable([random_secret(rng) for _ in range(rng.randrange(1, 6))])
        evidence = random_evidence(rng, secrets)

        # the masking function itself, serialized both ways sbops does
        masked = mask_value(evidence, secrets)
        for ensure_ascii in (True, False):
            check_serialized(json.dumps(masked, ensure_ascii=ensure_ascii), plain(masked), secrets, where)

        # a check's result through the engine, then the doctor's JSON document
        ctx = context(secrets, tmp_path)
        details = evidence if isinstance(evidence, dict) else {"value": evidence}
        summary = random_string(rng, secrets)
        result = _masked(ctx, Result(Status.FAIL, Reason.MISCONFIGURED, summary, details))
        assert text_leaks(result.summary, secrets) == [], f"{where}: {result.summary!r}"
        document = doctor_document([Outcome(check, result, 0.1)], started, 0.1, "https://x/{id}")
        text = json.dumps(document, indent=2)
        check_serialized(text, plain(document), secrets, where + " (doctor document)")

        # the journal line of a fix whose descriptions echo the secrets
        if round_no % JOURNAL_EVERY == 0:
            path = tmp_path / "journal.log"
            path.unlink(missing_ok=True)
            plan = Plan(changes=tuple(Change(random_string(rng, secrets)) for _ in range(rng.randrange(1, 4))))
            journal(ctx, fix, random_string(rng, secrets) or "fixed", plan, applied=rng.randrange(0, len(plan.changes) + 1))
            [line] = path.read_text().splitlines()
            check_serialized(line, json.loads(line), secrets, where + " (journal)")
            journals += 1
    assert journals == -(-ROUNDS // JOURNAL_EVERY)


def test_text_masking_fuzzed_leaves_no_secret(tmp_path: Path) -> None:
    """mask_text on random text (error messages, plain output): no secret survives, in any order given."""
    rng = random.Random(SEED + 1)
    for round_no in range(ROUNDS):
        secrets = registrable([random_secret(rng) for _ in range(rng.randrange(1, 6))])
        text = random_string(rng, secrets) + random_string(rng, secrets)
        rng.shuffle(secrets)
        masked = mask_text(text, secrets)
        assert [s for s in secrets if s in masked] == [], f"seed {SEED + 1} round {round_no}: {text!r} -> {masked!r}"
