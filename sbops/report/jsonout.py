"""Machine output of `sbops doctor --output json` (schema documented in README.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sbops import __version__
from sbops.engine import Outcome
from sbops.report import runbook_link
from sbops.report.text import tally

SCHEMA_VERSION = 1


def outcome_dict(o: Outcome, runbook_url: str, per_node: bool = False) -> dict[str, Any]:
    r = o.result
    return {
        "id": o.check.id,
        "layer": o.check.layer,
        "title": o.check.title,
        "status": r.status.value,
        "severity": o.check.severity.value,
        "reason": r.reason.value,
        "code": r.code,
        "summary": r.summary,
        "details": r.details,
        "fix": r.fix or o.check.fix,
        "runbook": runbook_link(runbook_url, o.check.id),
        "duration_seconds": o.duration,
        "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        "added_as_related": o.added,
        **({"node": o.node or None} if per_node or o.node else {}),
    }


def doctor_document(outcomes: list[Outcome], started_at: datetime, duration: float, runbook_url: str,
                    per_node: bool = False, **extra: Any) -> dict[str, Any]:
    """The document; `extra` adds top-level keys (the agent's `node`, the cluster report's `nodes`). With
    `per_node` (doctor --cluster) every result has `node`: its node, or null for a cluster-wide check."""
    return {
        "schema": SCHEMA_VERSION,
        "version": __version__,
        **extra,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_seconds": round(duration, 3),
        "counts": tally(outcomes),
        "checks": [outcome_dict(o, runbook_url, per_node) for o in outcomes],
    }
