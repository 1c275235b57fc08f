"""File diffs in plans (sbops.diff) and their rendering in `sbops fix` and `sbops install` plans."""

from __future__ import annotations

import json

import pytest

from sbops import diff as d
from sbops.fixflow import render_plan
from sbops.model import Change, Plan
from sbops.registry import Fix, Risk
from sbops.secret import Secret


@pytest.mark.parametrize("text, masked", [
    ("  Password: abc123XYZ\n", "  Password: ****\n"),
    ("password = hunter22\nport = 1\n", "password = ****\nport = 1\n"),
    ("    Secret Key: K3y\n    API Key: A9\n", "    Secret Key: ****\n    API Key: ****\n"),
    ("token=t0k3n\r\n", "token=****\r\n"),
    ("sql_mode = STRICT_TRANS_TABLES\n", "sql_mode = STRICT_TRANS_TABLES\n"),
    ("uri: mongodb://u:Sup3rSecret@h\n", "uri: mongodb://u:****@h\n"),  # a known secret, anywhere
])
def test_mask_content(text: str, masked: str) -> None:
    assert d.mask_content(text, [Secret("Sup3rSecret")]) == masked


def test_unified_new_changed_deleted() -> None:
    new = d.unified(d.file_diff("/etc/x.cnf", None, "a\nb\n"))
    assert new[:2] == ["--- /dev/null", "+++ /etc/x.cnf (new)"] and new[-2:] == ["+a", "+b"]
    changed = d.unified(d.file_diff("/etc/x.cnf", "a\nb\n", "a\nc\n"))
    assert "-b" in changed and "+c" in changed and " a" in changed
    gone = d.unified(d.file_diff("/etc/x.cnf", "a\n", None))
    assert gone[1] == "+++ /dev/null" and "-a" in gone
    assert d.unified(d.file_diff("/x", "a\n", "a\n")) == []
    assert d.unified(d.file_diff("/x", "a", "a\n"))[-1].startswith("@@ only line endings")


def test_secrets_never_reach_the_diff_or_json() -> None:
    before = "MYSQL:\n  Password: OldPassw0rd1234\n"
    after = "MYSQL:\n  Password: NewPassw0rd5678\n"
    fd = d.file_diff("/root/stackbill-credentials.txt", before, after, [Secret("NewPassw0rd5678")])
    text = json.dumps(d.as_json(fd))
    assert "OldPassw0rd1234" not in text and "NewPassw0rd5678" not in text


def test_render_plan_shows_the_diff() -> None:
    spec = Fix("demo", "demo fix", ("x.check",), Risk.SAFE, lambda ctx: Plan())
    change = Change("write /etc/x.cnf", (), None, (d.file_diff("/etc/x.cnf", "a = 1\n", "a = 2\n"),))
    text = render_plan(spec, Plan(changes=(change,)))
    assert "       --- /etc/x.cnf (current)" in text and "       -a = 1" in text and "       +a = 2" in text


def test_install_plan_shows_the_diff_and_json_carries_before_and_after() -> None:
    from sbops.install import report
    from sbops.install import steps as st

    diff = d.file_diff("/etc/mysql/mariadb.conf.d/99-stackbill.cnf", "[mysqld]\nsql_mode = A\n",
                       "[mysqld]\nsql_mode = B\n")
    change = Change("update the settings in /etc/mysql/mariadb.conf.d/99-stackbill.cnf", (), None, (diff,))
    step = st.Step("mysql", "MySQL", st.DB, (st.Resource("mysql.config", lambda r, c: Plan()),))
    outcome = st.StepOutcome(step, st.PLANNED, [st.ResourceOutcome("mysql.config", Plan(changes=(change,)))])
    lines = report.step_lines(outcome, plan_only=True)
    assert "          -sql_mode = A" in lines and "          +sql_mode = B" in lines
    (entry,) = [c for r in outcome.as_dict()["resources"] for c in r["changes"]]
    assert entry["files"][0]["before"] == "[mysqld]\nsql_mode = A\n" and entry["files"][0]["after"].endswith("B\n")
