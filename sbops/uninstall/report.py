"""`sbops uninstall`'s output, pure: the plan as text (grouped by level), the verification, the JSON document."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sbops.report.text import paint
from sbops.uninstall.inventory import Inventory
from sbops.uninstall.plan import LEVEL_TITLES, LEVELS, NEVER_REMOVED, Levels, Step, UninstallPlan


def render_plan(inv: Inventory, plan: UninstallPlan, levels: Levels, colour: bool = False) -> str:
    lines = [f"sbops uninstall: release {inv.release} in namespace {inv.namespace} "
             f"(levels: {', '.join(levels.names)})"]
    if plan.steps:
        heading = "would delete, once the problems below are solved:" if plan.blockers else "will delete:"
        lines.append(paint(heading, "1", colour))
        number = 0
        for level in LEVELS:
            steps = [s for s in plan.steps if s.level == level]
            if not steps:
                continue
            lines.append(f"  {LEVEL_TITLES[level]}")
            for step in steps:
                number += 1
                lines.append(f"  {number:>3}. {step.change.description}")
                lines.extend(paint(f"         $ {command}", "90", colour) for command in step.change.commands)
    if plan.gone:
        lines.append(paint("already gone (nothing to do):", "1", colour))
        lines.extend(f"  - {item.what}: {item.why}" for item in plan.gone)
    if plan.kept:
        lines.append(paint("kept (not at the chosen levels, or still in use):", "1", colour))
        lines.extend(f"  - {item.what}: {item.why}" for item in plan.kept)
    for blocker in plan.blockers:
        lines.append(paint(f"cannot run: {blocker}", "31", colour))
    lines.extend(f"note: {note}" for note in plan.notes)
    lines.append("never removed: " + "; ".join(NEVER_REMOVED))
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    """What happened when the plan was applied (filled in by flow.py)."""

    name: str = ""  # uninstalled | nothing-to-do | dry-run | blocked | aborted | failed | not-finished
    applied: list[dict[str, Any]] = field(default_factory=list)  # {what, seconds}
    failed: dict[str, str] | None = None  # {what, error}
    credentials: str = ""  # "removed ..." / "kept: ..." / "" when not part of the plan
    remaining: list[tuple[Step, str]] = field(default_factory=list)


def render_verify(plan: UninstallPlan, outcome: Outcome, colour: bool = False) -> str:
    left = {id(step): why for step, why in outcome.remaining}
    lines = [paint("verify (observed again):", "1", colour)]
    for step in plan.steps:
        why = left.get(id(step))
        if why:
            lines.append(f"  {paint('✘', '31', colour)} {step.what}: {why}")
        else:
            lines.append(f"  {paint('✔', '32', colour)} {step.what}: gone")
    if outcome.credentials:
        lines.append(f"credentials file: {outcome.credentials}")
    return "\n".join(lines) + "\n"


def summary_line(outcome: Outcome, plan: UninstallPlan) -> str:
    count = len(plan.steps)
    noun = "item" if count == 1 else "items"
    return {
        "uninstalled": f"uninstalled: {count} {noun} deleted and confirmed gone",
        "nothing-to-do": "nothing to do: everything at the chosen levels is already gone (see above)",
        "dry-run": "dry run: nothing was changed",
        "blocked": "not uninstalled: sbops cannot run the plan (nothing was changed)",
        "aborted": "aborted: nothing was changed",
        "failed": f"not finished: {outcome.failed['what'] if outcome.failed else 'a step'} failed: "
                  f"{outcome.failed['error'] if outcome.failed else ''}; run sbops uninstall again once it is fixed",
        "not-finished": f"not finished: {len(outcome.remaining)} of {count} {noun} still there (see above); "
                        "run sbops uninstall again",
    }[outcome.name]


def document(inv: Inventory, plan: UninstallPlan, levels: Levels, outcome: Outcome) -> dict[str, Any]:
    """The --output json document (the caller masks secrets in it)."""
    left = {id(step): why for step, why in outcome.remaining}
    return {
        "schema": 1,
        "command": "uninstall",
        "release": inv.release,
        "namespace": inv.namespace,
        "levels": levels.names,
        "outcome": outcome.name,
        "plan": {
            "steps": [{"level": s.level, "kind": s.kind, "what": s.what, "description": s.change.description,
                       "commands": list(s.change.commands)} for s in plan.steps],
            "gone": [asdict(i) for i in plan.gone],
            "kept": [asdict(i) for i in plan.kept],
            "blockers": list(plan.blockers),
            "notes": list(plan.notes),
            "never_removed": list(NEVER_REMOVED),
        },
        "applied": outcome.applied,
        "failed": outcome.failed,
        "credentials": outcome.credentials or None,
        "verify": [{"what": s.what, "gone": id(s) not in left, "left": left.get(id(s), "")} for s in plan.steps]
        if outcome.name in ("uninstalled", "failed", "not-finished") else [],
        "inventory": inventory_document(inv),
    }


def inventory_document(inv: Inventory) -> dict[str, Any]:
    data = asdict(inv)
    for claim in data["kube"]["claims"]:
        claim.pop("resource_version", None)
    return data
