"""`sbops uninstall`, end to end: observe, plan, show, confirm, apply in order, observe again, and only then
remove the credentials file, when the databases it holds the passwords of are confirmed gone.

Exit codes: 0 uninstalled, nothing to do, or --dry-run; 3 blocked, aborted, a step failed, or something is
still there after the run; 2 (UsageError) when confirmation is needed but stdin is not a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sbops.errors import UsageError
from sbops.secret import mask_text, mask_value
from sbops.uninstall import inventory
from sbops.uninstall import plan as uninstall
from sbops.uninstall.apply import bind
from sbops.uninstall.inventory import REFRESHER_DIR, Inventory
from sbops.uninstall.plan import Levels, UninstallPlan
from sbops.uninstall.report import Outcome, document, render_plan, render_verify, summary_line

if TYPE_CHECKING:
    from sbops.context import Context

EXIT_DONE, EXIT_NOT_DONE = 0, 3
DEFAULT_WAIT = 120.0


def fresh(ctx: "Context") -> "Context":
    """A new Context on the same settings: no client, login or cached answer carried over from before."""
    from sbops.context import Context

    return Context(ctx.settings, ctx.credentials, ctx.credentials_path, ctx.runner, ctx.kubeconfig_path)


def run(ctx: "Context", release: str, levels: Levels, *, yes: bool, dry_run: bool, wait: float = DEFAULT_WAIT,
        json_output: bool = False, colour: bool = False, refresher_dir: Path = REFRESHER_DIR,
        confirm: Callable[[str], bool] | None = None) -> int:
    emit: Callable[[str], object] = (lambda text: None) if json_output else sys.stdout.write
    inv = inventory.observe(ctx, release, refresher_dir, system=levels.system)
    plan = uninstall.plan(inv, levels)
    emit(render_plan(inv, plan, levels, colour))
    outcome = Outcome()

    def finish(name: str) -> int:
        outcome.name = name
        emit(summary_line(outcome, plan) + "\n")
        if json_output:
            text = json.dumps(mask_value(document(inv, plan, levels, outcome), ctx.secrets()), indent=2)
            sys.stdout.write(text + "\n")
        ctx.close()
        return EXIT_DONE if name in ("uninstalled", "nothing-to-do", "dry-run") else EXIT_NOT_DONE

    if plan.blockers:
        return finish("blocked")
    if plan.empty:
        return finish("nothing-to-do")
    if dry_run:
        return finish("dry-run")
    if not yes and not ask(len(plan.steps), confirm):
        return finish("aborted")
    apply_steps(ctx, plan, wait, outcome, emit)
    after = observe_again(ctx, release, refresher_dir, levels.system)
    if outcome.failed is None:
        after = remove_credentials(ctx, plan, after, outcome, wait)
    outcome.remaining = uninstall.leftovers(plan.steps, after)
    emit(render_verify(plan, outcome, colour))
    if outcome.failed is not None:
        return finish("failed")
    return finish("not-finished" if outcome.remaining else "uninstalled")


def observe_again(ctx: "Context", release: str, refresher_dir: Path, system: bool = False) -> Inventory:
    """The inventory through new logins: the ones used to drop users may be those very users."""
    check = fresh(ctx)
    try:
        return inventory.observe(check, release, refresher_dir, system)
    finally:
        check.close()


def ask(count: int, confirm: Callable[[str], bool] | None) -> bool:
    """One confirmation for the whole plan; refused (exit 2) when nobody can answer it."""
    question = f"Delete these {count} item(s)? This cannot be undone."
    if confirm is not None:
        return confirm(question)
    if not sys.stdin.isatty():
        raise UsageError("uninstall: standard input is not a terminal; pass --yes (or --force) to apply, or --dry-run")
    import typer

    return typer.confirm(question, default=False)


def apply_steps(ctx: "Context", plan: UninstallPlan, wait: float, outcome: Outcome, emit: Callable[[str], object]) -> None:
    """Every step but the credentials file, in order; the first failure stops the run (later steps assume the
    earlier ones: no dropping databases under an application that is still installed)."""
    steps = [s for s in plan.steps if s.kind != "remove-credentials"]
    for number, step in enumerate(steps, start=1):
        change = bind(ctx, step, wait)
        emit(f"  [{number}/{len(plan.steps)}] {step.change.description}\n")
        began = time.monotonic()
        try:
            assert change.apply is not None
            change.apply()
        except Exception as exc:  # noqa: BLE001 - reported in one line, secrets masked; the run stops here
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            outcome.failed = {"what": step.what, "error": mask_text(text, ctx.secrets())}
            emit(f"        failed: {outcome.failed['error']}\n")
            return
        seconds = round(time.monotonic() - began, 2)
        outcome.applied.append({"what": step.what, "seconds": seconds})
        emit(f"        done ({seconds:.1f}s)\n")


def remove_credentials(ctx: "Context", plan: UninstallPlan, after: Inventory, outcome: Outcome,
                       wait: float) -> Inventory:
    """The credentials file goes last, and only when the observation after the drops confirms that no
    StackBill database or user is left: a failed or unverifiable drop never loses the passwords."""
    step = next((s for s in plan.steps if s.kind == "remove-credentials"), None)
    if step is None:
        return after
    why = uninstall.databases_confirmed_gone(after)
    if why:
        outcome.credentials = f"kept {step.target[0]}: {'; '.join(why)}"
        return after
    change = bind(ctx, step, wait)
    assert change.apply is not None
    change.apply()
    outcome.applied.append({"what": step.what, "seconds": 0.0})
    outcome.credentials = f"removed {' and '.join(step.target)} (the databases are confirmed gone)"
    from dataclasses import replace

    return replace(after, host=inventory.observe_host(ctx, Path(after.host.refresher_dir)))
