"""Masking: the string leaves of data are masked before anything is serialized (issue 9, item 2).

Serialized JSON must never be edited: a secret that is also a number or keyword in the evidence (`2049`, `100`,
`true`) broke the document, `": "` produced invalid JSON, and a secret with `"`, `\\`, a tab or non-ASCII was
escaped by json.dumps and so never found.
"""

import json
from enum import Enum
from pathlib import Path

import pytest

from sbops.credentials import Credentials, Service
from sbops.model import Reason, Result, Severity, Status, fail
from sbops.secret import MASK, Secret, mask_text, mask_value
from tests.faults.leaks import json_leaks


class Colour(str, Enum):
    RED = "red-2049"


def dumps_both(value):
    """The two ways sbops serializes: ASCII-escaped and raw UTF-8."""
    return json.dumps(value), json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("secret, evidence", [
    ("2049", {"nfs": {"port": 2049, "ports": [111, 2049]}, "note": "port 2049 is open"}),
    ("100", {"disk_free_gb": 100.0, "inodes_free_pct": 100, "text": "100 GB"}),
    ("true", {"enabled": True, "raw": "true"}),
    ("null", {"missing": None, "raw": "null and void"}),
    ('": "', {"a": "b", "said": 'x": "y'}),
    ('pa"ss', {"error": 'access denied for pa"ss'}),
    ("back\\slash", {"error": "bad back\\slash here"}),
    ("tab\tbed", {"line": "x tab\tbed y"}),
    ("pässwörd", {"error": "user used pässwörd"}),
    ("密码密码", {"error": "密码密码 wrong"}),
])
def test_data_is_masked_leaf_by_leaf_and_stays_valid_json(secret, evidence):
    masked = mask_value(evidence, [Secret(secret)])
    for text in dumps_both(masked):
        assert json.loads(text) == masked
        assert json_leaks(text, [secret]) == []
    # numbers, booleans and None are evidence, not the password that happens to look the same
    assert masked == _expected(evidence, secret)


def _expected(value, secret):
    if isinstance(value, str):
        return value.replace(secret, MASK)
    if isinstance(value, dict):
        return {k.replace(secret, MASK): _expected(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v, secret) for v in value]
    return value


def test_keys_tuples_enums_and_objects_are_masked_as_json_would_write_them():
    value = {2049: ("a-2049", 2049), "s": Secret("anything"), "p": _Path("/x/2049"), "c": Colour.RED}
    masked = mask_value(value, ["2049"])
    assert masked == {MASK: [f"a-{MASK}", 2049], "s": MASK, "p": f"/x/{MASK}", "c": f"red-{MASK}"}
    assert mask_value({True: 1, None: 2, 1.5: 3}, ["true", "null"]) == {MASK: 2, "1.5": 3}
    assert mask_value({Colour.RED: Colour.RED}, []) == {"red-2049": "red-2049"}  # the value, as json writes it
    assert json.loads(json.dumps(masked)) == masked


class _Path:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def test_the_longest_secret_is_masked_whole():
    assert mask_text("login abcdef failed", ["abc", "abcdef"]) == f"login {MASK} failed"


def test_a_mask_next_to_text_cannot_complete_another_secret():
    # 'abc' masked first leaves '****d', which holds the other secret '**d'
    for order in (["abc", "**d"], ["**d", "abc"]):
        text = mask_text("xabcdx", order)
        assert "abc" not in text and "**d" not in text


def test_short_and_star_only_values_are_not_masked():
    assert mask_text("a 12 ok ***", ["12", "ok", "***", "", None]) == "a 12 ok ***"


def test_the_engine_masks_evidence_without_breaking_numbers():
    """The defect: a password equal to a port in the evidence made `sbops doctor` exit 1 with no report."""
    from sbops.context import Context
    from sbops.engine import run_checks
    from sbops.registry import Check
    from sbops.settings import Settings

    creds = Credentials(mysql=Service(password=Secret("2049")), mongodb=Service(password=Secret('": "')),
                        rabbitmq=Service(password=Secret('q"\\\tü')))
    ctx = Context(Settings.load(env={}), creds)

    def probe(_):
        return fail(Reason.AUTH_FAILED, 'denied for 2049 and ": " and q"\\\tü',
                    port=2049, enabled=True, free=100.0, echoed={'q"\\\tü': ['x": "y', "2049"]})

    [outcome] = run_checks(ctx, [Check("t.echo", "host", "t", Severity.CRITICAL, probe, no_fix="test")])
    result = outcome.result
    assert result.status is Status.FAIL
    assert result.details["port"] == 2049 and result.details["enabled"] is True and result.details["free"] == 100.0
    assert result.details["echoed"] == {MASK: [f"x{MASK}y", MASK]}
    assert result.summary == f"denied for {MASK} and {MASK} and {MASK}"
    for text in dumps_both(result.details):
        assert json.loads(text) == result.details
        assert json_leaks(text, ["2049", '": "', 'q"\\\tü']) == []


def test_results_without_secrets_are_left_alone():
    from sbops.context import Context
    from sbops.engine import _masked
    from sbops.settings import Settings

    result = Result(Status.OK, Reason.NONE, "fine", {"port": 2049})
    assert _masked(Context(Settings.load(env={})), result) is result


def test_nan_and_infinity_become_text_so_the_document_stays_json():
    masked = mask_value({"a": float("nan"), "b": float("inf"), "c": -float("inf")}, ["Infinity"])
    assert masked == {"a": "NaN", "b": MASK, "c": f"-{MASK}"}
    json.dumps(masked, allow_nan=False)


def test_no_code_masks_serialized_json():
    """The defect's shape, anywhere in sbops: masking text produced by json.dumps."""
    import re

    import sbops

    root = Path(sbops.__file__).parent
    shape = re.compile(r"mask_text\(\s*json\.dumps")
    found = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if shape.search(line)]
    assert found == [], f"mask the data with mask_value, then serialize: {found}"
