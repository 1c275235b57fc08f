"""Every check declares what operators and tooling rely on: id, layer, severity, fix or reason, runbook, test."""

import re
from pathlib import Path

import pytest

from sbops.registry import LAYERS, load_all, runbooks_dir

REGISTRY = load_all()
CHECKS = sorted(REGISTRY.checks.values(), key=lambda c: c.id)
REPO = Path(__file__).resolve().parents[2]
RUNBOOK_SECTIONS = ("## What it means", "## Symptoms", "## How sbops checks", "## Diagnosis", "## Automatic fix", "## Manual repair")
AREAS = {"kubernetes": "k8s", "workloads": "pods"}


def integration_sources() -> str:
    return "\n".join(p.read_text() for p in (REPO / "tests" / "integration").rglob("test_*.py"))


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
    assert f'"{check.id}"' in integration_sources(), f"no integration test names {check.id}"


@pytest.mark.parametrize("name", sorted(REGISTRY.fixes), ids=str)
def test_fix_repairs_known_checks_and_is_tested(name):
    spec = REGISTRY.fixes[name]
    assert spec.repairs and all(r in REGISTRY.checks for r in spec.repairs)
    assert f'"{name}"' in integration_sources(), f"no integration test runs fix {name}"


def test_every_runbook_belongs_to_a_check():
    orphans = [p.stem for p in runbooks_dir().glob("*.md") if p.stem not in REGISTRY.checks]
    assert not orphans
