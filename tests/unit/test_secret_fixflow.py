"""`sbops fix`: the plan's JSON, the text output and the journal line mask data, never serialized JSON;
a dry run leaves no journal line; Ctrl-C while applying says what was applied, journals it, emits the JSON.

The fixes here are built in the test (a Registry of their own) so that a description can echo a password on
purpose: the masking is the last line of defence and must hold even when a fix forgets it.
"""

import json
from pathlib import Path

import pytest

from sbops.context import Context
from sbops.credentials import Credentials, Service
from sbops.fixflow import EXIT_FIXED, EXIT_INTERRUPTED, EXIT_NOT_FIXED, run_fix
from sbops.model import Change, Plan, Reason, Severity, fail, ok
from sbops.registry import Check, Fix, Registry, Risk
from sbops.secret import MASK, Secret
from sbops.settings import Settings
from tests.faults.leaks import json_leaks, text_leaks

PASSWORDS = ('": "', "2049", 'q"\\\tü')


def context(tmp_path: Path) -> Context:
    creds = Credentials(mysql=Service(password=Secret(PASSWORDS[0])), mongodb=Service(password=Secret(PASSWORDS[1])),
                        rabbitmq=Service(password=Secret(PASSWORDS[2])))
    return Context(Settings.load(env={}, flags={"journal": str(tmp_path / "journal.log")}), creds)


def registry(plan: Plan, healthy: list[bool]) -> Registry:
    reg = Registry()
    reg.add_check(Check("t.thing", "host", "thing", Severity.CRITICAL,
                        lambda _: ok("fine", port=2049) if healthy[0] else fail(Reason.MISSING, "gone", port=2049),
                        fix="t-fix"))
    reg.add_fix(Fix("t-fix", "repair the thing", ("t.thing",), Risk.SAFE, lambda ctx: plan))
    return reg


def run(tmp_path, capsys, plan, *, healthy=None, dry_run=False, json_output=True):
    healthy = healthy if healthy is not None else [False]
    reg = registry(plan, healthy)
    code = run_fix(context(tmp_path), reg, reg.fixes["t-fix"], yes=True, dry_run=dry_run, params={},
                   json_output=json_output)
    out, err = capsys.readouterr()
    return code, out, err


def journal_lines(tmp_path):
    path = tmp_path / "journal.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_masked(text, *, as_json=True):
    if as_json:
        assert json_leaks(text, list(PASSWORDS)) == []
    else:
        assert text_leaks(text, list(PASSWORDS)) == []


def leaky_plan(healthy):
    def apply():
        healthy[0] = True

    return Plan(changes=(Change('set the password to ": " (was 2049)', ('echo q"\\\tü',), apply),))


def test_fix_json_with_a_password_of_quote_colon_quote_is_valid(tmp_path, capsys):
    healthy = [False]
    code, out, _ = run(tmp_path, capsys, leaky_plan(healthy), healthy=healthy)
    doc = json.loads(out)  # the defect: invalid JSON with exit 0
    assert code == EXIT_FIXED and doc["outcome"] == "fixed"
    assert doc["plan"]["changes"] == [{"description": f"set the password to {MASK} (was {MASK})",
                                       "commands": [f"echo {MASK}"], "files": []}]
    assert_masked(out)
    [line] = journal_lines(tmp_path)
    assert line["outcome"] == "fixed" and line["changes"] == [f"set the password to {MASK} (was {MASK})"]
    assert line["applied"] == line["changes"] and line["not_applied"] == []
    assert_masked((tmp_path / "journal.log").read_text())


def test_text_output_is_masked_too(tmp_path, capsys):
    healthy = [False]
    code, out, _ = run(tmp_path, capsys, leaky_plan(healthy), healthy=healthy, json_output=False)
    assert code == EXIT_FIXED and "fixed" in out
    assert_masked(out, as_json=False)


def test_a_dry_run_writes_no_journal_line_even_when_blocked(tmp_path, capsys):
    code, out, _ = run(tmp_path, capsys, leaky_plan([False]), dry_run=True)
    assert code == EXIT_FIXED and json.loads(out)["outcome"] == "dry-run"
    code, out, _ = run(tmp_path, capsys, Plan(blockers=("no admin login for 2049",)), dry_run=True)
    assert code == EXIT_NOT_FIXED and json.loads(out)["outcome"] == "blocked"
    assert journal_lines(tmp_path) == []
    run(tmp_path, capsys, Plan(blockers=("no admin login",)))  # without --dry-run the refusal is journaled
    assert [line["outcome"] for line in journal_lines(tmp_path)] == ["blocked"]


def three_steps(interrupt_at: int, done: list[int]):
    def step(number):
        def apply():
            if number == interrupt_at:
                raise KeyboardInterrupt  # what Ctrl-C raises in the main thread while a step runs
            done.append(number)
        return apply

    return Plan(changes=tuple(Change(f"step {n} for 2049", (), step(n)) for n in (1, 2, 3)))


def test_ctrl_c_while_applying_reports_journals_and_emits_json(tmp_path, capsys):
    done: list[int] = []
    code, out, err = run(tmp_path, capsys, three_steps(2, done))
    assert code == EXIT_INTERRUPTED and done == [1]
    doc = json.loads(out)
    assert doc["outcome"] == "interrupted"
    assert [(s["number"], s["state"]) for s in doc["steps"]] == [(1, "applied"), (2, "interrupted"), (3, "not applied")]
    assert "interrupted during step 2: 1 of 3 change(s) applied" in err
    assert_masked(out)
    [line] = journal_lines(tmp_path)
    assert line["outcome"] == "interrupted during step 2"
    assert line["applied"] == [f"step 1 for {MASK}"] and line["not_applied"] == [f"step 2 for {MASK}", f"step 3 for {MASK}"]


def test_ctrl_c_text_output_lists_what_was_and_was_not_applied(tmp_path, capsys):
    code, out, _ = run(tmp_path, capsys, three_steps(3, []), json_output=False)
    assert code == EXIT_INTERRUPTED
    assert "interrupted during step 3: 2 of 3 change(s) applied" in out
    assert f"  applied: 2. step 2 for {MASK}" in out
    assert f"  interrupted (may be partly applied): 3. step 3 for {MASK}" in out
    assert_masked(out, as_json=False)


def test_a_failed_step_names_what_was_applied(tmp_path, capsys):
    def boom():
        raise RuntimeError('server said ": " is wrong')

    plan = Plan(changes=(Change("one", (), lambda: None), Change("two", (), boom), Change("three", (), lambda: None)))
    code, out, _ = run(tmp_path, capsys, plan)
    doc = json.loads(out)
    assert code == EXIT_NOT_FIXED and doc["outcome"] == "failed at step 2"
    assert doc["error"] == f"step 2: server said {MASK} is wrong"
    assert [s["state"] for s in doc["steps"]] == ["applied", "failed", "not applied"]
    [line] = journal_lines(tmp_path)
    assert line["applied"] == ["one"] and line["not_applied"] == ["two", "three"]


@pytest.mark.parametrize("secret", ["true", "null", "false", "100", "100.0", "1"])
def test_keyword_and_number_passwords_keep_the_json_valid(tmp_path, capsys, secret):
    creds = Credentials(mysql=Service(password=Secret(secret)))
    ctx = Context(Settings.load(env={}, flags={"journal": str(tmp_path / "journal.log")}), creds)
    healthy = [False]
    reg = registry(leaky_plan(healthy), healthy)
    code = run_fix(ctx, reg, reg.fixes["t-fix"], yes=True, dry_run=False, params={}, json_output=True)
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert code == EXIT_FIXED and doc["risk"] == "safe" and doc["checks"][0]["status"] == "ok"
    journal = (tmp_path / "journal.log").read_text()
    json.loads(journal)
    if len(secret) >= 3:  # shorter values are not masked at all (they would mask ordinary text)
        assert json_leaks(out, [secret]) == [] and json_leaks(journal, [secret]) == []
