"""The resume state: which steps of the last install run finished, and how, in a JSON file (0600).

Written atomically at every step transition, so a run that is killed mid-step leaves that step as
"running": `sbops install --resume` starts from the first step that did not finish (failed, interrupted
or still running), re-probing the ones before it, with the options of that run unless flags override
them. No secrets are stored here (options hold file paths, never passwords or tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sbops.credentials import write_atomic
from sbops.errors import UsageError

SCHEMA = 1
UNFINISHED = ("running", "failed", "interrupted")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class State:
    path: Path
    options: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {status, at}
    started_at: str = ""
    finished: bool = False
    log_file: str = ""

    @classmethod
    def load(cls, path: Path) -> "State | None":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable install state ({type(exc).__name__}); remove it to start afresh") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UsageError(f"{path}: not an sbops install state (schema {SCHEMA}); remove it to start afresh")
        return cls(path, dict(data.get("options") or {}), dict(data.get("steps") or {}), str(data.get("started_at", "")),
                   bool(data.get("finished")), str(data.get("log_file", "")))

    def save(self) -> None:
        doc = {"schema": SCHEMA, "started_at": self.started_at, "finished": self.finished, "log_file": self.log_file,
               "options": self.options, "steps": self.steps}
        try:
            write_atomic(self.path, json.dumps(doc, indent=1) + "\n", mode=0o600, backup=False)
        except OSError as exc:
            raise UsageError(f"cannot write the install state {self.path}: {exc.strerror or exc} "
                             "(setting install.state_file)") from None

    def begin(self, options: dict[str, Any], log_file: str) -> None:
        self.options, self.steps, self.started_at, self.finished, self.log_file = options, {}, _now(), False, log_file
        self.save()

    def mark(self, step: str, status: str) -> None:
        self.steps[step] = {"status": status, "at": _now()}
        self.save()

    def end(self, finished: bool) -> None:
        self.finished = finished
        self.save()

    def resume_point(self) -> str:
        """The first step that did not finish ('' when every step finished)."""
        for name, entry in self.steps.items():
            if entry.get("status") in UNFINISHED:
                return name
        return ""
