"""Human output: grouped by layer, a symbol per status, the fix and runbook under each failure, a tally."""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

from sbops.engine import Outcome
from sbops.model import Status
from sbops.report import runbook_link

SYMBOLS = {Status.OK: "✔", Status.WARN: "!", Status.FAIL: "✘", Status.SKIP: "-", Status.ERROR: "E"}
COLOURS = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "90", Status.ERROR: "35"}


def paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def tally(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = Counter(o.result.status.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in Status}


def render_doctor(outcomes: list[Outcome], *, colour: bool, verbose: bool, runbook_url: str) -> str:
    lines: list[str] = []
    layer = None
    for o in outcomes:
        if o.check.layer != layer:
            layer = o.check.layer
            lines.append("" if lines else "")
            lines.append(paint(layer.upper(), "1", colour))
        status = o.result.status
        symbol = paint(SYMBOLS[status], COLOURS[status], colour)
        reason = f" [{o.result.reason.value}]" if status not in (Status.OK,) else ""
        shown = f"{o.check.id}@{o.node}" if o.node else o.check.id
        lines.append(f"  {symbol} {shown:<24} {o.result.summary}{paint(reason, '90', colour)}")
        if status in (Status.FAIL, Status.ERROR, Status.WARN):
            fix_name = o.result.fix or o.check.fix
            if fix_name:
                where = f"  (on {o.node}: a node's fix runs there)" if o.node else ""
                lines.append(f"      fix: sbops fix {fix_name}{where}")
            lines.append(f"      runbook: {runbook_link(runbook_url, o.check.id)}")
        if verbose and o.result.details:
            for key, value in o.result.details.items():
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                lines.append(paint(f"      {key}: {text}", "90", colour))
    counts = tally(outcomes)
    parts = [f"{counts[s.value]} {s.value}" for s in Status if counts[s.value]]
    noun = "check" if len(outcomes) == 1 else "checks"
    lines += ["", f"{len(outcomes)} {noun}: " + ", ".join(parts)]
    return "\n".join(lines[1:] if lines and lines[0] == "" else lines) + "\n"
