"""manifest.json and --max-size: pure functions over the collected files and the collectors' records."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any


TRUNCATED = b"[... truncated by sbops bundle --max-size: older lines left out ...]\n"
_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$")


def parse_size(text: str) -> int:
    """'500K', '20M', '1G', '1048576' -> bytes (powers of 1024); anything else raises ValueError."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a size such as 20M or 1G")
    value = float(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    if value < 1:
        raise ValueError(f"'{text}' is not a positive size")
    return int(value)


@dataclass
class CollectorRecord:
    name: str
    status: str          # ok, failed, timeout
    seconds: float
    error: str = ""
    missing: list[str] = field(default_factory=list)


def _cut(data: bytes, keep: int) -> bytes:
    """The newest part of a log that fits in `keep` bytes (whole lines), marked as truncated."""
    if len(data) <= keep:
        return data
    room = max(0, keep - len(TRUNCATED))
    if room == 0:
        return TRUNCATED[:keep]
    piece = data[len(data) - room:]
    newline = piece.find(b"\n")
    if 0 <= newline < len(piece) - 1:
        piece = piece[newline + 1:]
    return TRUNCATED + piece


def apply_max_size(files: dict[str, bytes], max_size: int, reserve: int = 0) -> tuple[dict[str, bytes], list[str]]:
    """Fit the files' total (uncompressed) size under `max_size - reserve`: logs first, each keeping its newest
    lines, largest cut most (every log gets an equal share of the room, unused shares go to the others);
    then, when the rest alone is too large, other files the same way. Returns the files and the truncated."""
    budget = max(0, max_size - reserve)
    out = dict(files)
    truncated: list[str] = []
    for pick in (lambda n: n.startswith("logs/"), lambda n: not n.startswith("logs/")):
        total = sum(len(v) for v in out.values())
        if total <= budget:
            break
        chosen = sorted((n for n in out if pick(n)), key=lambda n: len(out[n]))
        fixed = total - sum(len(out[n]) for n in chosen)
        room = max(0, budget - fixed)
        for index, name in enumerate(chosen):
            share = room // (len(chosen) - index)
            if len(out[name]) > share:
                out[name] = _cut(out[name], share)
                truncated.append(name)
            room -= len(out[name])
    return out, sorted(truncated)


def file_entries(files: dict[str, bytes], redactions: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    return [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             **({"redactions": redactions[name]} if redactions.get(name) else {})}
            for name, data in sorted(files.items())]


def redaction_report(redactions: dict[str, dict[str, int]], secrets_known: int, skipped_short: int,
                     disabled: list[str]) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for counts in redactions.values():
        for kind, n in counts.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    return {"known_secrets": secrets_known, "too_short_to_search": skipped_short,
            "forms": ["plain", "base64 (3 alignments, standard and URL-safe)", "url-encoded", "json-escaped",
                      "wrapped at 64/76 columns"],
            "total": sum(by_kind.values()), "by_kind": dict(sorted(by_kind.items())),
            "by_file": {k: v for k, v in sorted(redactions.items()) if v},
            **({"rules_disabled": disabled} if disabled else {})}


def manifest(*, version: str, started_at: str, seconds: float, options: dict[str, Any],
             records: list[CollectorRecord], entries: list[dict[str, Any]], report: dict[str, Any],
             truncated: list[str]) -> dict[str, Any]:
    return {
        "schema": 1, "sbops": version, "created": started_at, "collection_seconds": round(seconds, 3),
        "options": options,
        "collectors": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 3),
                        **({"error": r.error} if r.error else {}), **({"missing": r.missing} if r.missing else {})}
                       for r in records],
        "not_collected": [f"{r.name}: {r.error}" for r in records if r.status != "ok"]
                         + [f"{r.name}: {m}" for r in records for m in r.missing],
        "truncated": truncated,
        "files": entries,
        "redaction": report,
    }
