"""Every check declares what operators and tooling rely on: id, layer, severity, fix or reason, runbook, test."""

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

from sbops.registry import LAYERS, load_all
from sbops.shipped import runbooks_dir

REGISTRY = load_all()
CHECKS = sorted(REGISTRY.checks.values(), key=lambda c: c.id)
REPO = Path(__file__).resolve().parents[2]
RUNBOOK_SECTIONS = ("## What it means", "## Symptoms", "## How sbops checks", "## Diagnosis", "## Automatic fix", "## Manual repair")
AREAS = {"kubernetes": "k8s", "workloads": "pods"}


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _asserts(function: ast.AST) -> bool:
    """An assert statement, or a `pytest.raises` block, somewhere in the test's own body."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.With) and any("raises" in ast.unparse(i.context_expr) for i in node.items):
            return True
    return False


def _judges_status(function: ast.AST) -> bool:
    """The test looks at a result's status or reason (a key, an attribute, or the suite's `status()` and
    `finding()` helpers: finding() is (code, status, reason))."""
    for node in ast.walk(function):
        if isinstance(node, ast.Constant) and node.value in ("status", "reason"):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("status", "reason"):
            return True
        if isinstance(node, ast.Name) and node.id in ("status", "reason", "finding"):
            return True
    return False


@lru_cache(maxsize=1)
def integration_test_names() -> dict[str, list[str]]:
    """Every string a real integration test names, mapped to the tests that name it.

    A real test is a `test_*` function (module level or in a class) that asserts and judges a status or
    reason. It names a string when the string appears in its body (the docstring does not count), in its
    decorators (parametrize), or in a module-level constant the body or decorators use. A mention in a
    docstring or a comment is therefore not enough, as it was when this contract grepped the sources.
    """
    named: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests" / "integration").rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        constants: dict[str, set[str]] = {}
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = _strings(node.value)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or not function.name.startswith("test_"):
                continue
            body = list(function.body)
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if not body or not _asserts(function) or not _judges_status(function):
                continue
            parts = body + list(function.decorator_list)
            strings: set[str] = set().union(*(_strings(part) for part in parts))
            for name in {n.id for part in parts for n in ast.walk(part) if isinstance(n, ast.Name)}:
                strings |= constants.get(name, set())
            for text in strings:
                named.setdefault(text, []).append(f"{path.name}::{function.name}")
    return named


def test_the_registry_is_not_empty():
    assert len(CHECKS) >= 20 and len(REGISTRY.fixes) >= 9


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_check_declares_everything(check):
    assert re.fullmatch(r"[a-z0-9]+\.[a-z0-9-]+", check.id), "ids look like area.name"
    assert check.layer in LAYERS
    assert check.id.split(".")[0] == AREAS.get(check.layer, check.layer), "an id starts with its area"
    assert check.title and check.severity
    assert check.fix or check.no_fix, "a fix, or a stated reason for having none"
    if check.fix:
        assert check.fix in REGISTRY.fixes, f"{check.fix} is not a registered fix"
    for required in check.requires:
        assert required in REGISTRY.checks, f"requires unknown check {required}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_check_has_a_runbook_with_every_section(check):
    path = runbooks_dir() / f"{check.id}.md"
    assert path.exists(), f"missing {path}"
    text = path.read_text()
    assert text.startswith(f"# {check.id}")
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{path.name} lacks {section}"
    if check.fix:
        assert f"sbops fix {check.fix}" in text


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_check_has_an_integration_test(check):
    assert check.id in integration_test_names(), f"no integration test that asserts a status or reason names {check.id}"


@pytest.mark.parametrize("name", sorted(REGISTRY.fixes), ids=str)
def test_fix_repairs_known_checks_and_is_tested(name):
    spec = REGISTRY.fixes[name]
    assert spec.repairs and all(r in REGISTRY.checks for r in spec.repairs)
    assert name in integration_test_names(), f"no integration test that asserts a status or reason runs fix {name}"


def test_every_runbook_belongs_to_a_check():
    orphans = [p.stem for p in runbooks_dir().glob("*.md") if p.stem not in REGISTRY.checks]
    assert not orphans


def test_the_contract_ignores_docstrings_and_tests_without_assertions(tmp_path, monkeypatch):
    """The contract itself: a docstring mention or an assertion-free test does not count as testing a check."""
    fake = tmp_path / "tests" / "integration"
    fake.mkdir(parents=True)
    (fake / "test_fake.py").write_text(
        'def test_docstring_only():\n    """Covers \"zz.docstring\"."""\n    assert status({}) == ("ok", "none")\n\n'
        'def test_no_assert():\n    check("zz.noassert")\n\n'
        'def test_real():\n    assert check("zz.real")["status"] == "fail"\n'
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    integration_test_names.cache_clear()
    try:
        names = integration_test_names()
    finally:
        integration_test_names.cache_clear()
    assert "zz.real" in names
    assert "zz.docstring" not in names and "zz.noassert" not in names
