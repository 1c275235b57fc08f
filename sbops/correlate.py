"""Correlation after collection: a failed check that names its possible causes gets the likely one.

A check's judgement lists, in `Result.causes`, the other checks that could explain its failure (most likely
first) and the cause each stands for; the check's declaration (`relates`) lists every check it may name, so
the engine runs them in the same run. Once every check has finished, `correlate` reads the run's own
outcomes and attaches the first failed one as `likely_cause`, with its fix. Pure: no threads, no I/O, no
check executed twice, so one report never shows the same check with two results (as istio's analyzers and
troubleshoot's analyzers work on what was collected, not on a second look).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, NamedTuple, Sequence

from sbops.messages import engine as messages
from sbops.model import Reason, Result, Status


class Related(NamedTuple):
    """One related check's finding: its id, the cause it stands for, its result and the fix that repairs it."""

    check: str
    cause: str
    result: Result
    fix: str | None


def likely_cause(related: Sequence[Related]) -> dict[str, Any] | None:
    """The first failed related check, in the order given: {check, cause, reason, summary, fix}; None if none."""
    for item in related:
        if item.result.status in (Status.FAIL, Status.ERROR):
            return {"check": item.check, "cause": item.cause, "reason": item.result.reason.value,
                    "code": item.result.code, "summary": item.result.summary, "fix": item.fix}
    return None


def attach_cause(result: Result, related: Sequence[Related], note: str = "") -> Result:
    """Name the likely cause in the summary and details; the cause's fix becomes the result's fix.

    The result keeps its own code (what failed); the summary's addition comes from the engine's messages
    (SB0010 LikelyCause, SB0011 NoRelatedCheckFailed), and details.likely_cause carries the cause's code."""
    if result.status.passed:
        return result
    details = dict(result.details)
    details["related_checks"] = {r.check: f"{r.result.status.value}/{r.result.reason.value}" for r in related}
    details["failed_related"] = [r.check for r in related if r.result.status in (Status.FAIL, Status.ERROR)]
    if note:
        details["related_note"] = note
    cause = likely_cause(related)
    if cause is None:
        return replace(result, summary=messages.NO_CAUSE_FOUND.render({"summary": result.summary}), details=details)
    details["likely_cause"] = cause
    summary = messages.LIKELY_CAUSE.render({**cause, "summary": result.summary})
    return replace(result, summary=summary, details=details, fix=cause["fix"])


def root_of(check_id: str, results: Mapping[str, tuple[Result, str | None]], limit: int = 10) -> str:
    """Follow `blocked_by` from a skipped check to the check that really failed (mysql.auth skipped because
    mysql.reachable was refused: the cause is mysql.reachable). Stops at a check that is not in the run."""
    seen = check_id
    for _ in range(limit):
        found = results.get(seen)
        if found is None:
            return check_id
        result = found[0]
        blockers = result.details.get("blocked_by") if result.reason is Reason.BLOCKED else None
        if not blockers or blockers[0] not in results:
            return seen
        seen = blockers[0]
    return seen


def related_findings(
    causes: Sequence[tuple[str, str]], able: Sequence[str], results: Mapping[str, tuple[Result, str | None]],
) -> tuple[list[Related], str]:
    """The related checks' findings, in the judgement's order, and a note on those that did not run.

    `able`: the related checks sbops could run here (it has their password or kubeconfig); `results`: check id
    -> (result, its fix) for every check in the run.
    """
    found: list[Related] = []
    unable, absent = [], []
    for check_id, cause in causes:
        if check_id not in able:
            unable.append(check_id)
            continue
        if check_id not in results:
            absent.append(check_id)
            continue
        root = root_of(check_id, results)
        result, fix = results[root]
        found.append(Related(root, cause, result, result.fix or fix))
    notes = []
    if unable:
        notes.append(f"not run (sbops lacks the password or kubeconfig they need): {', '.join(unable)}")
    if absent:
        notes.append(f"not in this run: {', '.join(absent)}")
    if not found and not notes:
        notes.append("no related check can run here")
    return found, "; ".join(notes)


def correlate(
    findings: Sequence[tuple[str, Result, str | None]], able: Mapping[str, Sequence[str]],
) -> dict[str, Result]:
    """Attach likely causes across one run. `findings`: (check id, result, declared fix) for every check that
    ran; `able`: for each check that relates to others, those it may name here. Returns the results that
    changed, by check id."""
    results = {cid: (result, fix) for cid, result, fix in findings}
    changed: dict[str, Result] = {}
    for cid, result, _ in findings:
        if result.status.passed or not result.causes or cid not in able:
            continue
        related, note = related_findings(result.causes, able[cid], results)
        changed[cid] = attach_cause(result, related, note)
    return changed
