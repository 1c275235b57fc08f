"""The installer's vocabulary: steps made of resources, what each produced, and step selection.

A Resource is one managed thing (MySQL's users, the NFS export, the Helm release): its `plan` observes it
and returns a model.Plan (changes, or "nothing to do" and why). A Step groups the resources of one stage
of the original installer and names the doctor checks that verify it. Resources decide at apply time:
the run loop plans each one only after the ones before it were applied, and in a plan (--plan) a resource
whose prerequisites still have pending changes is reported as "decided at apply time" instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sbops.errors import UsageError
from sbops.diff import as_json as diff_json
from sbops.model import Plan, Reason

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run

VALIDATE = "validate"  # the checks before anything changes; not a Step (nothing to apply), never skipped

# Groups: --skip-infra skips "infra", --skip-db skips "db" (the original's two flags).
ALWAYS, INFRA, DB, KUBERNETES, FINAL = "always", "infra", "db", "kubernetes", "final"


@dataclass(frozen=True)
class Verify:
    """A doctor check run after the step; reasons in `tolerate` do not fail the step (they are later steps' business)."""

    check: str
    tolerate: frozenset[Reason] = frozenset()


@dataclass(frozen=True)
class Resource:
    name: str  # "mysql.user"
    plan: Callable[["Run", "Context"], Plan]
    needs: tuple[str, ...] = ()  # resources ("mysql.server") or whole steps ("k3s") it can only be probed after


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    group: str
    resources: tuple[Resource, ...]
    verify: tuple[Verify, ...] = ()


# -- outcomes ------------------------------------------------------------------------------------------
# Step statuses. Apply: changed / unchanged / failed / skipped / not-run / interrupted.
# Plan: planned (has changes) / unchanged / deferred (some resources decided at apply time) / blocked.
CHANGED, UNCHANGED, FAILED, SKIPPED, NOT_RUN, INTERRUPTED = "changed", "unchanged", "failed", "skipped", "not-run", "interrupted"
PLANNED, DEFERRED, BLOCKED = "planned", "deferred", "blocked"


@dataclass
class ResourceOutcome:
    name: str
    plan: Plan | None = None
    deferred: str = ""  # why it is decided at apply time (plan mode)
    applied: list[str] = field(default_factory=list)  # descriptions of the changes applied
    error: str = ""

    @property
    def pending(self) -> bool:
        """Changes planned and not applied (or not known yet): what makes dependants deferred."""
        return bool(self.deferred) or (self.plan is not None and not self.plan.empty and not self.applied)


@dataclass
class CheckOutcome:
    id: str
    status: str
    reason: str
    summary: str
    ok: bool  # passed, or failed only with a tolerated reason

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason, "summary": self.summary}


@dataclass
class StepOutcome:
    step: Step
    status: str
    resources: list[ResourceOutcome] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    duration: float = 0.0
    error: str = ""
    why_skipped: str = ""

    @property
    def changes(self) -> list[str]:
        """Descriptions of the changes applied (apply) or planned (plan)."""
        out: list[str] = []
        for r in self.resources:
            out += r.applied or ([c.description for c in r.plan.changes] if r.plan else [])
        return out

    def nothing_to_do(self) -> str:
        reasons = [r.plan.nothing_to_do for r in self.resources if r.plan and r.plan.empty and r.plan.nothing_to_do]
        return "; ".join(reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.step.name, "title": self.step.title, "status": self.status,
            "duration_seconds": round(self.duration, 3), "error": self.error, "skipped_because": self.why_skipped,
            "resources": [{
                "name": r.name,
                "changes": [{"description": c.description, "commands": list(c.commands),
                             "files": [diff_json(d) for d in c.files]} for c in (r.plan.changes if r.plan else ())],
                "applied": list(r.applied), "nothing_to_do": r.plan.nothing_to_do if r.plan else "",
                "notes": list(r.plan.notes) if r.plan else [], "blockers": list(r.plan.blockers) if r.plan else [],
                "decided_at_apply_time": r.deferred, "error": r.error,
            } for r in self.resources],
            "checks": [c.as_dict() for c in self.checks],
        }


# -- selection ---------------------------------------------------------------------------------------
def select(steps: Iterable[Step], *, only: Iterable[str] = (), skip: Iterable[str] = (), skip_infra: bool = False,
           skip_db: bool = False) -> dict[str, str]:
    """Pure: {step name: "" when it runs, else why not}. Unknown names are usage errors."""
    steps = list(steps)
    names = [s.name for s in steps]
    only, skip = list(only), list(skip)
    if VALIDATE in skip:
        raise UsageError("--skip validate: validation cannot be skipped (it changes nothing, and stops a run "
                         "that would fail half-way)")
    only = [n for n in only if n != VALIDATE]  # validation always runs
    for flag, given in (("--only", only), ("--skip", skip)):
        for name in given:
            if name not in names:
                raise UsageError(f"{flag}: unknown step '{name}' (steps: {', '.join([VALIDATE, *names])})")
    out = {}
    for item in steps:
        why = ""
        if only and item.name not in only:
            why = "not named by --only"
        elif item.name in skip:
            why = "--skip " + item.name
        elif skip_infra and item.group == INFRA:
            why = "--skip-infra"
        elif skip_db and item.group == DB:
            why = "--skip-db"
        out[item.name] = why
    return out
