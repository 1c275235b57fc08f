"""`sbops fix NAME`: show the plan, confirm, apply, re-check the checks it repairs, journal the outcome."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.diff import as_json as diff_json
from sbops.diff import unified
from sbops.engine import Outcome, run_checks
from sbops.errors import NeedsCredentials, UsageError
from sbops.kube import NoKubeconfig
from sbops.model import Plan, Reason, Status
from sbops.registry import Check, Fix, FixOptions, Registry
from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.context import Context

EXIT_FIXED, EXIT_NOT_FIXED = 0, 3


def list_fixes(registry: Registry, json_output: bool = False) -> str:
    rows = sorted(registry.fixes.values(), key=lambda f: f.name)
    if json_output:
        return json.dumps([{"name": f.name, "title": f.title, "repairs": list(f.repairs), "risk": f.risk.value} for f in rows], indent=2) + "\n"
    width = max((len(f.name) for f in rows), default=4)
    lines = [f"{'FIX':<{width}}  {'RISK':<16} REPAIRS"]
    lines += [f"{f.name:<{width}}  {f.risk.value:<16} {', '.join(f.repairs)}" for f in rows]
    return "\n".join(lines) + "\n"


def with_requirements(registry: Registry, ids: tuple[str, ...]) -> list[Check]:
    """The checks a fix repairs plus everything they require, in report order."""
    wanted: set[str] = set()
    stack = [i for i in ids if i in registry.checks]
    while stack:
        cid = stack.pop()
        if cid not in wanted:
            wanted.add(cid)
            stack.extend(r for r in registry.checks[cid].requires if r in registry.checks)
    return [c for c in registry.ordered() if c.id in wanted]


def render_plan(spec: Fix, plan: Plan) -> str:
    lines = [f"fix {spec.name}: {spec.title}", f"  risk: {spec.risk.value}; repairs: {', '.join(spec.repairs)}"]
    for blocker in plan.blockers:
        lines.append(f"  cannot run: {blocker}")
    if not plan.blockers and plan.empty:
        lines.append(f"  nothing to do: {plan.nothing_to_do or 'already in the desired state'}")
    for number, change in enumerate(plan.changes, start=1):
        lines.append(f"  {number}. {change.description}")
        lines.extend(f"       $ {command}" for command in change.commands)
        for diff in change.files:
            lines.extend(f"       {line}" for line in unified(diff))
    lines.extend(f"  note: {note}" for note in plan.notes)
    return "\n".join(lines) + "\n"


def journal(ctx: "Context", spec: Fix, outcome: str, plan: Plan) -> None:
    """Append one JSON line: time, fix, outcome, changes. Never secrets (descriptions are masked)."""
    path = Path(ctx.settings["journal"])
    entry = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fix": spec.name,
        "outcome": outcome,
        "changes": [c.description for c in plan.changes],
    }
    line = mask_text(json.dumps(entry), ctx.secrets())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        sys.stderr.write(f"sbops: warning: cannot write the journal {path}: {exc.strerror or exc}\n")


def recheck(ctx: "Context", registry: Registry, spec: Fix) -> list[Outcome]:
    from sbops.context import Context

    fresh = Context(ctx.settings, ctx.credentials, ctx.credentials_path, ctx.runner, ctx.kubeconfig_path)
    try:
        return run_checks(fresh, with_requirements(registry, spec.repairs))
    finally:
        fresh.close()


def is_fixed(outcomes: list[Outcome], repairs: tuple[str, ...]) -> bool:
    """Fixed when every repaired check passes: ok, or a warning that is only about what sbops can see
    (no_access: e.g. performance_schema is off, so blocked hosts cannot be listed)."""
    by_id = {o.check.id: o for o in outcomes}
    for cid in repairs:
        if cid not in by_id:
            continue
        result = by_id[cid].result
        if result.status is Status.OK:
            continue
        if result.status is Status.WARN and result.reason is Reason.NO_ACCESS:
            continue
        return False
    return True


def _plan(ctx: "Context", spec: Fix, opts: FixOptions) -> Plan:
    try:
        return spec.plan(ctx, opts)
    except (NeedsCredentials, NoKubeconfig) as exc:
        return Plan(blockers=(str(exc),))


def run_fix(
    ctx: "Context", registry: Registry, spec: Fix, *, yes: bool, dry_run: bool, options: FixOptions,
    json_output: bool = False, colour: bool = False,
) -> int:
    out: dict[str, Any] = {"fix": spec.name, "risk": spec.risk.value, "repairs": list(spec.repairs)}
    plan = _plan(ctx, spec, options)
    out["plan"] = {
        "blockers": list(plan.blockers), "notes": list(plan.notes), "nothing_to_do": plan.nothing_to_do,
        "changes": [{"description": c.description, "commands": list(c.commands),
                     "files": [diff_json(d) for d in c.files]} for c in plan.changes],
    }
    emit = (lambda text: None) if json_output else (lambda text: sys.stdout.write(text))
    emit(render_plan(spec, plan))

    def finish(outcome: str, code: int, outcomes: list[Outcome] | None = None) -> int:
        out["outcome"] = outcome
        if outcomes is not None:
            out["checks"] = [{"id": o.check.id, "status": o.result.status.value, "reason": o.result.reason.value,
                              "summary": o.result.summary} for o in outcomes]
        if json_output:
            sys.stdout.write(mask_text(json.dumps(out, indent=2), ctx.secrets()) + "\n")
        ctx.close()
        return code

    if plan.blockers:
        journal(ctx, spec, "blocked", Plan())
        emit("not fixed: the fix cannot run (nothing was changed)\n")
        return finish("blocked", EXIT_NOT_FIXED)
    if dry_run:
        emit("dry run: nothing was changed\n")
        return finish("dry-run", EXIT_FIXED)
    if not plan.empty and not yes:
        if not sys.stdin.isatty():
            raise UsageError("fix: standard input is not a terminal; pass --yes to apply, or --dry-run")
        import typer

        if not typer.confirm(f"Apply {len(plan.changes)} change(s)?", default=False):
            emit("aborted: nothing was changed\n")
            return finish("aborted", EXIT_NOT_FIXED)
    for number, change in enumerate(plan.changes, start=1):
        try:
            if change.apply is not None:
                change.apply()
        except Exception as exc:  # noqa: BLE001 - report which step failed, in one line
            text = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, ctx.secrets())
            emit(f"  step {number} failed: {change.description}: {text}\n")
            journal(ctx, spec, f"failed at step {number}", plan)
            outcomes = recheck(ctx, registry, spec)
            emit(_render_recheck(outcomes))
            return finish(f"failed at step {number}", EXIT_NOT_FIXED, outcomes)
        emit(f"  applied {number}/{len(plan.changes)}: {change.description}\n")
    ctx.close()
    outcomes = recheck(ctx, registry, spec)
    emit(_render_recheck(outcomes))
    if is_fixed(outcomes, spec.repairs):
        outcome = "fixed" if not plan.empty else "nothing-to-do"
        journal(ctx, spec, outcome, plan)
        emit("fixed\n" if not plan.empty else "nothing to do: the checks it repairs pass\n")
        return finish(outcome, EXIT_FIXED, outcomes)
    journal(ctx, spec, "not fixed", plan)
    emit("not fixed: see the checks above\n")
    return finish("not fixed", EXIT_NOT_FIXED, outcomes)


def _render_recheck(outcomes: list[Outcome]) -> str:
    from sbops.report.text import SYMBOLS

    lines = ["re-check:"]
    for o in outcomes:
        lines.append(f"  {SYMBOLS[o.result.status]} {o.check.id:<24} {o.result.summary}")
    return "\n".join(lines) + "\n"
