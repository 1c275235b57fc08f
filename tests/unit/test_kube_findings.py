"""The Kubernetes layers report findings from the catalog only: no probe builds a Result from free text
(ok/warn/fail/skip or Result(...)), and none parses a summary back (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = ("k8s", "pods", "ecr", "tls", "istio", "helm", "kubecommon")
FREE_TEXT = {"ok", "warn", "fail", "skip", "Result"}


@pytest.mark.parametrize("module", MODULES)
def test_results_come_from_messages(module: str) -> None:
    tree = ast.parse((REPO / "sbops" / "probes" / f"{module}.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    built = [f"line {c.lineno}: {c.func.id}(...)" for c in calls
             if isinstance(c.func, ast.Name) and c.func.id in FREE_TEXT]
    assert not built, f"probes/{module}.py builds results from free text: {built}"
    parsed = [f"line {c.lineno}" for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr in ("split", "partition")
              and isinstance(c.func.value, ast.Attribute) and c.func.value.attr == "summary"]
    assert not parsed, f"probes/{module}.py parses a summary back: {parsed}"


def test_every_finding_of_these_layers_is_documented_in_a_check_runbook() -> None:
    import importlib

    from sbops.messages import CATALOG

    for area in ("k8s", "pods", "ecr", "tls", "istio", "helm"):
        importlib.import_module(f"sbops.messages.{area}")
    codes = [m for m in CATALOG if m.code[2:4] in ("60", "61", "62", "63", "64", "65")]
    assert len(codes) >= 60
    assert all(m.doc.startswith("runbooks/") for m in codes)
