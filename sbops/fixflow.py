"""`sbops fix NAME`: show the plan, confirm, apply, re-check the checks it repairs, journal the outcome."""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from sbops.diff import as_json as diff_json
from sbops.diff import unified
from sbops.engine import Outcome, run_checks
from sbops.errors import NeedsCredentials, UsageError
from sbops.kube import NoKubeconfig
from sbops.model import Plan, Reason, Status
from sbops.registry import Check, Fix, Registry
from sbops.secret import append_masked_line, mask_text, mask_value

if TYPE_CHECKING:
    from sbops.context import Context

EXIT_FIXED, EXIT_NOT_FIXED, EXIT_INTERRUPTED = 0, 3, 130


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


def journal(ctx: "Context", spec: Fix, outcome: str, plan: Plan, applied: int | None = None) -> None:
    """Append one JSON line: time, fix, outcome, changes (and, once applying began, which were applied).
    Never secrets: the entry's strings are masked before it is serialized."""
    path = Path(ctx.settings["journal"])
    descriptions = [c.description for c in plan.changes]
    entry: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fix": spec.name,
        "outcome": outcome,
        "changes": descriptions,
    }
    if applied is not None:
        entry["applied"] = descriptions[:applied]
        entry["not_applied"] = descriptions[applied:]
    append_masked_line(path, entry, ctx.secrets(), "the journal ")


def reread(ctx: "Context") -> Any:
    """The credentials file as it is now: a fix may have rewritten it (cloudstack-keys records keys there)."""
    from sbops import credentials as creds_mod

    if ctx.credentials is None or ctx.credentials_path is None:
        return ctx.credentials
    try:
        return creds_mod.load(ctx.credentials_path)
    except Exception:  # noqa: BLE001 - unreadable now: judge with what was read at the start
        return ctx.credentials


def recheck(ctx: "Context", registry: Registry, spec: Fix) -> list[Outcome]:
    from sbops.context import Context

    fresh = Context(ctx.settings, reread(ctx), ctx.credentials_path, ctx.runner, ctx.kubeconfig_path)
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


def _plan(ctx: "Context", spec: Fix, params: dict[str, Any]) -> Plan:
    unknown = sorted(set(params) - set(spec.params))
    if unknown:  # the CLI refuses such flags first: this is a caller's mistake, not the user's
        accepted = ", ".join(spec.params) or "nothing"
        raise ValueError(f"fix {spec.name} accepts no {', '.join(unknown)} (it accepts: {accepted})")
    from sbops.probes.agents import fix_blocker

    try:
        remote = fix_blocker(ctx, spec.name)  # a database host of its own: the fix runs there, never from here
        if remote:
            return Plan(blockers=(remote,))
        return spec.plan(ctx, **params)
    except (NeedsCredentials, NoKubeconfig) as exc:
        return Plan(blockers=(str(exc),))


def run_fix(
    ctx: "Context", registry: Registry, spec: Fix, *, yes: bool, dry_run: bool, params: dict[str, Any] | None = None,
    json_output: bool = False, colour: bool = False,
) -> int:
    """`params`: the keyword arguments of the fix's plan (see Fix.params), e.g. {"allow_restart": True}."""
    out: dict[str, Any] = {"fix": spec.name, "risk": spec.risk.value, "repairs": list(spec.repairs)}
    plan = _plan(ctx, spec, params or {})
    out["plan"] = {
        "blockers": list(plan.blockers), "notes": list(plan.notes), "nothing_to_do": plan.nothing_to_do,
        "changes": [{"description": c.description, "commands": list(c.commands),
                     "files": [diff_json(d) for d in c.files]} for c in plan.changes],
    }
    secrets = ctx.secrets()
    emit = (lambda text: None) if json_output else (lambda text: _write(mask_text(text, secrets)))
    emit(mask_text(render_plan(spec, plan), ctx.secrets()))  # belt and braces: every diff is masked already

    def finish(outcome: str, code: int, outcomes: list[Outcome] | None = None) -> int:
        out["outcome"] = outcome
        if outcomes is not None:
            out["checks"] = [{"id": o.check.id, "status": o.result.status.value, "reason": o.result.reason.value,
                              "summary": o.result.summary} for o in outcomes]
        if json_output:
            _write(json.dumps(mask_value(out, secrets), indent=2) + "\n")
        ctx.close()
        return code

    def record(outcome: str, applied: int | None = None) -> None:
        """The journal line; a dry run changes nothing, so it leaves no line either."""
        if not dry_run:
            journal(ctx, spec, outcome, plan, applied)

    if plan.blockers:
        record("blocked")
        emit("not fixed: the fix cannot run (nothing was changed)\n")
        return finish("blocked", EXIT_NOT_FIXED)
    if dry_run:
        emit("dry run: nothing was changed\n")
        return finish("dry-run", EXIT_FIXED)
    if not plan.empty and not yes:
        if not sys.stdin.isatty():
            raise UsageError("fix: standard input is not a terminal; pass --yes to apply, or --dry-run")
        import typer

        try:
            confirmed = typer.confirm(f"Apply {len(plan.changes)} change(s)?", default=False)
        except (typer.Abort, KeyboardInterrupt, EOFError):
            confirmed = False
            emit("\n")
        if not confirmed:
            emit("aborted: nothing was changed\n")
            return finish("aborted", EXIT_NOT_FIXED)

    def interrupted(applied: int, step: int) -> int:
        """Ctrl-C during `step` (0: during the re-check): say what was applied and what was not, journal
        it, emit the JSON document."""
        with _shielded():
            during = f"during step {step}" if step else "during the re-check"
            emit(_render_interrupted(plan, applied, step, during))
            if json_output:
                sys.stderr.write(f"sbops: fix {spec.name} interrupted {during}: {applied} of {len(plan.changes)} "
                                 "change(s) applied (see the JSON document)\n")
            out["steps"] = _steps(plan, applied, interrupted=step)
            record(f"interrupted {during}", applied)
            return finish("interrupted", EXIT_INTERRUPTED)

    applied, failed = 0, 0
    try:
        for number, change in enumerate(plan.changes, start=1):
            try:
                if change.apply is not None:
                    change.apply()
            except Exception as exc:  # noqa: BLE001 - report which step failed, in one line
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                emit(f"  step {number} failed: {change.description}: {text}\n")
                out["error"] = f"step {number}: {text}"
                failed = number
                break
            applied = number
            emit(f"  applied {number}/{len(plan.changes)}: {change.description}\n")
    except KeyboardInterrupt:
        return interrupted(applied, applied + 1)
    out["steps"] = _steps(plan, applied, failed=failed)
    if failed:
        record(f"failed at step {failed}", applied)
    ctx.close()
    try:
        outcomes = recheck(ctx, registry, spec)
    except KeyboardInterrupt:
        if failed:
            with _shielded():
                emit("interrupted during the re-check\n")
                return finish(f"failed at step {failed}", EXIT_INTERRUPTED)
        return interrupted(applied, 0)
    emit(_render_recheck(outcomes))
    if failed:
        return finish(f"failed at step {failed}", EXIT_NOT_FIXED, outcomes)
    if is_fixed(outcomes, spec.repairs):
        outcome = "fixed" if not plan.empty else "nothing-to-do"
        record(outcome, applied)
        emit("fixed\n" if not plan.empty else "nothing to do: the checks it repairs pass\n")
        return finish(outcome, EXIT_FIXED, outcomes)
    record("not fixed", applied)
    emit("not fixed: see the checks above\n")
    return finish("not fixed", EXIT_NOT_FIXED, outcomes)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _steps(plan: Plan, applied: int, *, failed: int = 0, interrupted: int = 0) -> list[dict[str, Any]]:
    """Each change's fate: applied, failed, interrupted (may be partly applied) or not applied."""
    states = []
    for number, change in enumerate(plan.changes, start=1):
        state = ("applied" if number <= applied else "failed" if number == failed
                 else "interrupted" if number == interrupted else "not applied")
        states.append({"number": number, "description": change.description, "state": state})
    return states


def _render_interrupted(plan: Plan, applied: int, step: int, during: str) -> str:
    lines = [f"interrupted {during}: {applied} of {len(plan.changes)} change(s) applied"]
    for step in _steps(plan, applied, interrupted=step):
        note = " (may be partly applied)" if step["state"] == "interrupted" else ""
        lines.append(f"  {step['state']}{note}: {step['number']}. {step['description']}")
    return "\n".join(lines) + "\n"


@contextmanager
def _shielded() -> Iterator[None]:
    """Ignore further Ctrl-C while the outcome of an interrupted fix is reported and journaled."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _render_recheck(outcomes: list[Outcome]) -> str:
    from sbops.report.text import SYMBOLS

    lines = ["re-check:"]
    for o in outcomes:
        lines.append(f"  {SYMBOLS[o.result.status]} {o.check.id:<24} {o.result.summary}")
    return "\n".join(lines) + "\n"
