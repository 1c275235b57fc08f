"""Runs checks in parallel: per-check timeouts, an overall deadline, `requires` (blocked-by), crash isolation,
and, after collection, correlation (the likely cause of a failure, from the same run's outcomes).

Probes run in daemon threads, so a probe stuck on a blackholed host can be abandoned: the run reports it
as a timeout and the process can still exit.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable

from sbops.correlate import correlate
from sbops.errors import NeedsCredentials
from sbops.kube import NoKubeconfig
from sbops.messages import engine as msg
from sbops.model import Result
from sbops.probes import agents
from sbops.secret import mask_text, mask_value

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.registry import Check, Registry


@dataclass(frozen=True)
class Outcome:
    check: "Check"
    result: Result
    duration: float
    added: bool = False  # not selected: run because a selected check relates to it (correlation)
    node: str = ""  # the node whose agent reported it (`sbops doctor --cluster`); "" for this machine's run


def can_look(ctx: "Context", item: "Check") -> bool:
    """Whether sbops has what `item` needs to say anything about the server: the password of a data service,
    a kubeconfig for the cluster's layers. A check without it fails for want of sbops's own access."""
    from sbops.registry import NEEDS_KUBECONFIG, NEEDS_PASSWORD

    if item.layer in NEEDS_PASSWORD:
        return bool(ctx.service(item.layer).password)
    if item.layer in NEEDS_KUBECONFIG:
        return ctx.kubeconfig_path is not None
    return True


def correlated(ctx: "Context", registry: "Registry", outcomes: list[Outcome]) -> list[Outcome]:
    """The post-pass: attach likely causes from this run's own outcomes (sbops.correlate, pure)."""
    able = {
        o.check.id: tuple(r for r in o.check.relates if r in registry.checks and can_look(ctx, registry.checks[r]))
        for o in outcomes if o.check.relates
    }
    if not able:
        return outcomes
    changed = correlate([(o.check.id, o.result, o.check.fix) for o in outcomes], able)
    return [replace(o, result=changed[o.check.id]) if o.check.id in changed else o for o in outcomes]


def remote_route(ctx: "Context", item: "Check") -> "agents.Route | None":
    """Where a check of a database host's own files is answered when that host is not this machine: its agent
    (or a skip saying none is configured); None for every other check, run here (sbops.probes.agents)."""
    route = agents.route_for(ctx, item.id)
    return route if route is not None and route.kind in ("agent", "unconfigured") else None


def _remote_safely(ctx: "Context", item: "Check") -> bool:
    try:
        return remote_route(ctx, item) is not None
    except Exception:  # noqa: BLE001 - call_probe reports the same problem as the check's result
        return False


def call_probe(ctx: "Context", item: "Check") -> Result:
    """Run one probe, turning exceptions into results; never raises."""
    try:
        route = remote_route(ctx, item)
        result = item.probe(ctx) if route is None else agents.probe_via_agent(ctx, item.id, item.layer, route)
        if not isinstance(result, Result):
            raise TypeError(f"probe returned {type(result).__name__}, not Result")
        return result
    except (NeedsCredentials, NoKubeconfig) as exc:
        return msg.NEEDS_ACCESS.result(why=str(exc))
    except Exception as exc:  # noqa: BLE001 - a crashing check must not crash the run
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return msg.CRASHED.result(error=f"{type(exc).__name__}: {text}"[:280])


def _masked(ctx: "Context", result: Result) -> Result:
    """Belt and braces: strip any secret value a server may have echoed into the summary or evidence.

    The evidence is masked leaf by leaf, never as serialized JSON: a password `2049` beside the NFS port
    2049 would otherwise turn the number into an unquoted mask and the report into invalid JSON."""
    secrets = ctx.secrets()
    if not secrets:
        return result
    return replace(result, summary=mask_text(result.summary, secrets), details=mask_value(result.details, secrets),
                   args=mask_value(result.args, secrets))


def preload_clients(checks: list["Check"]) -> None:
    """Import the selected layers' client libraries serially before any probe thread starts."""
    import importlib

    from sbops.registry import CLIENT_MODULES

    seen: set[str] = set()
    for item in checks:
        for name in CLIENT_MODULES.get(item.layer, ()):
            if name not in seen:
                seen.add(name)
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass  # the check that needs it reports the problem


def run_checks(
    ctx: "Context",
    checks: Iterable["Check"],
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    max_workers: int = 16,
    execute: "Callable[[Context, Check], Result] | None" = None,
    registry: "Registry | None" = None,
) -> list[Outcome]:
    """Run `checks`, honouring `requires` among them; returns outcomes in the order given.

    `execute` runs one probe (default: call_probe). The exporter passes one that lets concurrent scrapes
    share a single execution of the same check and reuse cached results; it must never raise.
    With `registry`, the checks the selected ones relate to run too (outcomes marked `added`, everything in
    report order), and a post-pass over the outcomes attaches likely causes.
    """
    checks = list(checks)
    chosen = {c.id for c in checks}
    if registry is not None:
        checks = registry.with_related(checks)
    timeout = timeout or ctx.timeout
    deadline = deadline or float(ctx.settings["deadline"])
    start = time.monotonic()
    end = start + deadline
    selected = {c.id for c in checks}
    done: dict[str, Outcome] = {}
    running: dict[str, tuple["Check", float, float]] = {}  # id -> (check, started, budget)
    results: "queue.Queue[tuple[str, Result, float]]" = queue.Queue()
    pending = list(checks)
    # a check answered by a database host's agent runs its requirements there, not here: MySQL bound to
    # 127.0.0.1 on its host fails mysql.reachable here, and only the agent can still say why (mysql.config)
    remote = {c.id for c in checks if c.requires and _remote_safely(ctx, c)}
    preload_clients(checks)
    execute = execute or call_probe

    def worker(item: "Check") -> None:
        began = time.monotonic()
        result = execute(ctx, item)
        results.put((item.id, result, time.monotonic() - began))

    def finish(item: "Check", result: Result, duration: float) -> None:
        done[item.id] = Outcome(item, _masked(ctx, result), round(duration, 3), added=item.id not in chosen)

    while pending or running:
        now = time.monotonic()
        for item in list(pending):
            needs = [r for r in item.requires if r in selected and item.id not in remote]
            if any(r not in done for r in needs):
                continue
            blockers = [r for r in needs if not done[r].result.status.passed]
            if blockers:
                pending.remove(item)
                finish(item, msg.BLOCKED.result(blockers=", ".join(blockers), details={"blocked_by": blockers}), 0.0)
                continue
            if now >= end:
                pending.remove(item)
                finish(item, msg.DEADLINE.result(deadline=deadline), 0.0)
                continue
            if len(running) >= max_workers:
                break
            pending.remove(item)
            running[item.id] = (item, now, min(timeout, end - now))
            threading.Thread(target=worker, args=(item,), name=f"check-{item.id}", daemon=True).start()
        if not running:
            if pending and not any(all(r in done for r in p.requires if r in selected) for p in pending):
                for item in pending:  # a requirement cycle: report instead of spinning
                    finish(item, msg.CYCLE.result(), 0.0)
                pending.clear()
            continue
        wait_until = min(started + budget for _, started, budget in running.values())
        try:
            cid, result, duration = results.get(timeout=max(0.0, wait_until - time.monotonic()))
            if cid in running:
                item, _, _ = running.pop(cid)
                finish(item, result, duration)
        except queue.Empty:
            pass
        now = time.monotonic()
        for cid, (item, started, budget) in list(running.items()):
            if now >= started + budget:
                running.pop(cid)
                finish(item, msg.TIMED_OUT.result(budget=budget), now - started)
    outcomes = [done[c.id] for c in checks]
    return correlated(ctx, registry, outcomes) if registry is not None else outcomes
