"""The catalog of findings (sbops.messages) holds every entry to its contract: a stable, well-formed, unique
code in a known area, a CamelCase name, a template whose arguments render, and a doc page with the code's
heading, so every finding a user sees links to an explanation (istio's messages.yaml does the same)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import sbops.messages as messages
from sbops.model import Reason, Status

REPO = Path(__file__).resolve().parents[2]


def load_catalog() -> messages.Catalog:
    for info in pkgutil.iter_modules(messages.__path__):
        importlib.import_module(f"sbops.messages.{info.name}")
    return messages.CATALOG


CATALOG = load_catalog()
ENTRIES = list(CATALOG)


def test_the_catalog_holds_the_engine_findings() -> None:
    assert {"SB0001", "SB0002", "SB0003", "SB0004", "SB0005", "SB0006", "SB0010", "SB0011"} <= set(CATALOG.messages)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda m: m.code)
def test_entry_is_well_formed(entry: messages.Message) -> None:
    match = messages.CODE.fullmatch(entry.code)
    assert match and match.group(1) in messages.AREAS, f"{entry.code}: SB + area (AREAS) + two digits"
    assert messages.NAME.fullmatch(entry.name), f"{entry.code}: a CamelCase name"
    assert entry.template.strip() and "\n" not in entry.template, "one line"
    if entry.status is Status.OK:
        assert entry.reason is Reason.NONE, "a passing finding has reason none"
    elif entry.reason is not None:
        assert entry.reason is not Reason.NONE, "a finding that did not pass has a reason"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda m: m.code)
def test_template_renders_from_its_named_arguments(entry: messages.Message) -> None:
    assert not re.search(r"(?<!\{)\{\d*(:[^}]*)?\}", entry.template), "named arguments only"
    entry.render({name: 1.5 for name in entry.arguments})  # a number satisfies every format spec used
    if entry.arguments:
        with pytest.raises(KeyError):
            entry.render({})


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda m: m.code)
def test_entry_has_its_doc_anchor(entry: messages.Message) -> None:
    page = REPO / entry.doc
    assert page.is_file(), f"{entry.code}: {entry.doc} does not exist"
    headings = re.findall(r"^#+ (SB\d{4}) ([A-Za-z0-9]+)\s*$", page.read_text(), flags=re.M)
    assert (entry.code, entry.name) in headings, f"{entry.doc} lacks the heading `### {entry.code} {entry.name}`"


def test_codes_and_names_are_unique() -> None:
    names = [m.name for m in ENTRIES]
    assert len(names) == len(set(names)), "a name is used by two codes"


def test_a_result_carries_its_code_and_arguments_and_renders_the_summary() -> None:
    from sbops.messages import engine

    result = engine.TIMED_OUT.result(budget=2.0, details={"address": "10.0.0.1:3306"})
    assert (result.status, result.reason, result.code) == (Status.FAIL, Reason.TIMEOUT, "SB0006")
    assert result.args == {"budget": 2.0} and result.summary == "no answer within 2.0s"
    assert result.details == {"address": "10.0.0.1:3306"}


def test_a_fixed_reason_cannot_be_overridden_and_an_open_one_must_be_given() -> None:
    from sbops.messages import engine

    with pytest.raises(ValueError):
        engine.TIMED_OUT.result(budget=1.0, reason=Reason.REFUSED)
    open_reason = messages.Message("SB0099", "Sample", Status.FAIL, "{what}", "README.md")
    with pytest.raises(ValueError):
        open_reason.result(what="x")
    assert open_reason.result(what="x", reason=Reason.REFUSED).reason is Reason.REFUSED


def test_a_code_defined_twice_is_refused() -> None:
    catalog = messages.Catalog()
    entry = messages.Message("SB0098", "Twice", Status.FAIL, "x", "README.md", Reason.INTERNAL)
    catalog.add(entry)
    with pytest.raises(ValueError):
        catalog.add(entry)
