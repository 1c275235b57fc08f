"""The run loop: for each selected step, plan each resource at apply time, apply its changes, then verify
the step with the doctor's checks. In plan mode nothing is applied, and a resource whose prerequisites
have pending changes is reported as decided at apply time. The first failed step stops the run (later
steps depend on it): `--resume` continues from there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sbops.errors import NeedsCredentials
from sbops.install import steps as st
from sbops.kube import NoKubeconfig
from sbops.model import Plan, Status
from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run
    from sbops.install.state import State


def one_line(run: "Run", exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return mask_text(text, run.secrets())[:500]


def plan_resource(run: "Run", resource: st.Resource, ctx: "Context") -> tuple[Plan | None, str]:
    """(plan, error): a probe that cannot run for want of credentials or a cluster becomes a blocker;
    any other exception is the step's error. The changes' appliers use `ctx`'s clients: the caller
    closes it after applying them."""
    try:
        return resource.plan(run, ctx), ""
    except (NeedsCredentials, NoKubeconfig) as exc:
        return Plan(blockers=(str(exc),)), ""
    except Exception as exc:  # noqa: BLE001 - reported as the step's failure, in one line
        return None, f"{resource.name}: {type(exc).__name__}: {one_line(run, exc)}"


def verify(run: "Run", step: st.Step) -> list[st.CheckOutcome]:
    """The step's doctor checks on a fresh Context; a failure with a tolerated reason does not count."""
    from sbops.engine import run_checks
    from sbops.registry import load_all

    if not step.verify:
        return []
    registry = load_all()
    wanted = {v.check: v for v in step.verify}
    ctx = run.context()
    try:
        outcomes = run_checks(ctx, [registry.checks[c] for c in wanted])
    finally:
        ctx.close()
    out = []
    for o in outcomes:
        passed = o.result.status.passed or o.result.status is Status.SKIP or o.result.reason in wanted[o.check.id].tolerate
        out.append(st.CheckOutcome(o.check.id, o.result.status.value, o.result.reason.value, o.result.summary, passed))
    return out


def _resource(run: "Run", step: st.Step, resource: st.Resource, result: st.ResourceOutcome, ctx: "Context",
              pending: set[str], plan_only: bool) -> tuple[bool, bool]:
    """Plan one resource and (unless plan_only) apply its changes; returns (failed, blocked)."""
    waiting = [n for n in resource.needs if n in pending]
    plan, error = plan_resource(run, resource, ctx)
    if plan_only and waiting and (plan is None or plan.blockers):
        # what it needs is not there yet: only applying the earlier changes can tell
        why = error or "; ".join(plan.blockers if plan else ())
        result.deferred = f"decided at apply time, after {', '.join(waiting)} (now: {why})"
        pending.update({resource.name, step.name})
        run.say(f"  {resource.name}: {result.deferred}")
        return False, False
    if plan is None:
        result.error = error
        return True, False
    result.plan = plan
    _log_plan(run, resource.name, plan)
    if plan.blockers:
        result.error = "; ".join(plan.blockers)
        return True, True
    if plan_only:
        if plan.changes:
            pending.update({resource.name, step.name})
        return False, False
    for change in plan.changes:
        run.activity(change.description)
        try:
            if change.apply is not None:
                change.apply()
        except Exception as exc:  # noqa: BLE001 - the step fails, naming the change
            result.error = f"{change.description}: {one_line(run, exc)}"
            return True, False
        result.applied.append(change.description)
        run.say(f"  applied: {change.description}")
    return False, False


def run_step(run: "Run", step: st.Step, pending: set[str], plan_only: bool) -> st.StepOutcome:
    began = time.monotonic()
    outcome = st.StepOutcome(step, st.UNCHANGED)
    failed = blocked = False
    for resource in step.resources:
        result = st.ResourceOutcome(resource.name)
        outcome.resources.append(result)
        ctx = run.context()
        try:
            failed, blocked = _resource(run, step, resource, result, ctx, pending, plan_only)
        finally:
            ctx.close()
        if failed:
            break
    if failed:
        outcome.error = next(r.error for r in outcome.resources if r.error)
        outcome.status = st.BLOCKED if plan_only and blocked else st.FAILED
        if plan_only:
            pending.add(step.name)
    elif plan_only:
        changes = any(r.plan and r.plan.changes for r in outcome.resources)
        deferred = any(r.deferred for r in outcome.resources)
        outcome.status = st.PLANNED if changes else st.DEFERRED if deferred else st.UNCHANGED
    else:
        outcome.checks = verify(run, step)
        bad = [c for c in outcome.checks if not c.ok]
        if bad:
            outcome.status = st.FAILED
            outcome.error = "verify: " + "; ".join(f"{c.id} {c.status} ({c.reason}): {c.summary}" for c in bad)
        else:
            outcome.status = st.CHANGED if any(r.applied for r in outcome.resources) else st.UNCHANGED
        for c in outcome.checks:
            run.say(f"  check {c.id}: {c.status} ({c.reason}) {c.summary}")
    outcome.duration = time.monotonic() - began
    return outcome


def _log_plan(run: "Run", name: str, plan: Plan) -> None:
    for blocker in plan.blockers:
        run.say(f"  {name}: cannot run: {blocker}")
    if not plan.blockers and plan.empty:
        run.say(f"  {name}: nothing to do: {plan.nothing_to_do}")
    for change in plan.changes:
        run.say(f"  {name}: change: {change.description}")
        for command in change.commands:
            run.say(f"      $ {command}")
    for note in plan.notes:
        run.say(f"  {name}: note: {note}")


def run_install(run: "Run", steps: list[st.Step], selection: dict[str, str], *, plan_only: bool,
                state: "State | None" = None) -> list[st.StepOutcome]:
    """Every step in order: skipped (not selected), run, or not run (an earlier step failed)."""
    run.plan_only = plan_only
    outcomes = []
    pending: set[str] = set()
    failed = ""
    for step in steps:
        why = selection.get(step.name, "")
        if why:
            outcomes.append(st.StepOutcome(step, st.SKIPPED, why_skipped=why))
            continue
        if failed:
            outcomes.append(st.StepOutcome(step, st.NOT_RUN, why_skipped=f"step {failed} failed"))
            continue
        run.reporter.step_started(step.name, step.title)
        run.say(f"step {step.name}: {'planning' if plan_only else 'started'} ({step.title})")
        if state is not None and not plan_only:
            state.mark(step.name, "running")
        try:
            outcome = run_step(run, step, pending, plan_only)
        except KeyboardInterrupt:
            run.reporter.abort()
            run.say(f"step {step.name}: interrupted")
            if state is not None and not plan_only:
                state.mark(step.name, st.INTERRUPTED)
            raise
        run.say(f"step {step.name}: {outcome.status} ({outcome.duration:.1f}s){': ' + outcome.error if outcome.error else ''}")
        if state is not None and not plan_only:
            state.mark(step.name, outcome.status)
        run.reporter.step_finished(outcome)
        outcomes.append(outcome)
        if outcome.status == st.FAILED and not plan_only:
            failed = step.name
    return outcomes
