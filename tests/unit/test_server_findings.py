"""The database layers (mysql, mongodb, rabbitmq) report only catalog findings: no probe builds a Result from
free text (ok/warn/fail/skip/Result), and every message their catalog module defines is reported somewhere."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from sbops.messages import Message

PROBES = Path(__file__).resolve().parents[2] / "sbops" / "probes"
LAYERS = ("mysql", "mongodb", "rabbitmq")
FREE_TEXT = {"ok", "warn", "fail", "skip", "Result"}


def sources(layer: str) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((PROBES / layer).glob("*.py"))}


@pytest.mark.parametrize("layer", LAYERS)
def test_no_probe_builds_a_result_from_free_text(layer: str) -> None:
    found = []
    for name, text in sources(layer).items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FREE_TEXT:
                found.append(f"{layer}/{name}:{node.lineno} {node.func.id}(...)")
    assert not found, "results must come from sbops.messages." + layer + ": " + ", ".join(found)


@pytest.mark.parametrize("layer", LAYERS)
def test_every_message_of_the_layer_is_reported(layer: str) -> None:
    catalog = importlib.import_module(f"sbops.messages.{layer}")
    text = "\n".join(sources(layer).values())
    unused = [f"{name} ({item.code})" for name, item in vars(catalog).items()
              if isinstance(item, Message) and f"M.{name}" not in text]
    assert not unused, f"sbops/messages/{layer}.py defines findings no probe reports: {', '.join(unused)}"


@pytest.mark.parametrize("layer", LAYERS)
def test_the_layer_codes_sit_in_its_area(layer: str) -> None:
    area = {"mysql": "20", "mongodb": "30", "rabbitmq": "40"}[layer]
    catalog = importlib.import_module(f"sbops.messages.{layer}")
    codes = [item.code for item in vars(catalog).values() if isinstance(item, Message)]
    assert codes and all(code.startswith("SB" + area) for code in codes)
