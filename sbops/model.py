"""The vocabulary every check, fix and report shares: statuses, reasons, severities, results, changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Callable


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    @property
    def passed(self) -> bool:
        return self in (Status.OK, Status.WARN)


class Severity(str, Enum):
    """How bad a failure of the check is for the portal."""

    CRITICAL = "critical"  # the portal is down or will be
    WARNING = "warning"  # degraded, insecure or about to break
    INFO = "info"  # worth knowing


class Reason(str, Enum):
    """The fixed list of machine-readable reasons. Adding one is an interface change: document it."""

    NONE = "none"  # the check passed
    REFUSED = "refused"  # connection refused: nothing listens
    TIMEOUT = "timeout"  # no answer in time (blackholed, overloaded)
    UNREACHABLE = "unreachable"  # name does not resolve, no route
    AUTH_FAILED = "auth_failed"  # the server rejected the credentials
    HOST_BLOCKED = "host_blocked"  # MySQL error 1129
    TOO_MANY_CONNECTIONS = "too_many_connections"  # MySQL error 1040
    ACCESS_DENIED = "access_denied"  # logged in, but not allowed to do what is needed
    NO_ACCESS = "no_access"  # sbops itself lacks what it needs to look (admin login, root, file)
    NOT_RUNNING = "not_running"  # the service or listener is absent
    MISCONFIGURED = "misconfigured"  # present, but set up differently from what StackBill needs
    MISSING = "missing"  # an expected object does not exist
    INSECURE = "insecure"  # works, but open wider than it should be
    EXPIRED = "expired"
    EXPIRING = "expiring"
    DEGRADED = "degraded"  # works with reduced capacity (alarms, pressure, low resources)
    NOT_READY = "not_ready"  # a pod, node or component exists but is not Ready
    IMAGE_PULL = "image_pull"  # ImagePullBackOff / ErrImagePull: usually the ECR pull secret
    CRASH_LOOP = "crash_loop"  # CrashLoopBackOff: the container starts and dies
    PENDING = "pending"  # a pod that is not scheduled or a claim that is not bound
    WRONG_NAMESPACE = "wrong_namespace"  # the object exists, but where nothing looks for it
    STUCK = "stuck"  # an operation that never finished (a Helm release left pending-*)
    FAILED = "failed"  # an operation that finished and failed (a Helm release in state failed)
    NOT_APPLICABLE = "not_applicable"  # this check does not apply to this server
    WRONG_SERVER = "wrong_server"  # a login reaches another server than the one the credentials file names
    NOT_READ = "not_read"  # a configuration file exists where the server never reads it (nothing includes it)
    BLOCKED = "blocked"  # skipped because a check it requires did not pass
    INTERNAL = "internal"  # the check itself crashed: a bug in sbops


@dataclass(frozen=True)
class Result:
    """What a probe+judgement concluded. `details` is evidence: plain JSON-able data, never secrets."""

    status: Status
    reason: Reason
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    fix: str | None = None  # overrides the check's declared fix when the right repair depends on the finding
    # The checks that could explain this failure, most likely first, each with the cause it stands for
    # (("mysql.auth", "database"), ...). The engine's post-pass (sbops.correlate) reads them after the run.
    causes: tuple[tuple[str, str], ...] = ()
    code: str = ""  # the catalog message (sbops.messages) this result reports, e.g. SB2101
    args: dict[str, Any] = field(default_factory=dict)  # the message's named arguments (masked like details)


def result_from_json(entry: dict[str, Any]) -> Result:
    """A result of the doctor's JSON (sbops.report.jsonout.outcome_dict) back as a Result: what an agent
    answers on /results, read by `doctor --cluster` (sbops.cluster) and by a remote database host's checks
    (sbops.probes.agents)."""
    expires = entry.get("expires_at")
    return Result(Status(entry["status"]), Reason(entry["reason"]), str(entry.get("summary") or ""),
                  dict(entry.get("details") or {}), datetime.fromisoformat(expires) if expires else None,
                  entry.get("fix"), code=str(entry.get("code") or ""))


def ok(summary: str, **details: Any) -> Result:
    return Result(Status.OK, Reason.NONE, summary, details)


def warn(reason: Reason, summary: str, **details: Any) -> Result:
    return Result(Status.WARN, reason, summary, details)


def fail(reason: Reason, summary: str, **details: Any) -> Result:
    return Result(Status.FAIL, reason, summary, details)


def skip(reason: Reason, summary: str, **details: Any) -> Result:
    return Result(Status.SKIP, reason, summary, details)


@dataclass(frozen=True)
class FileDiff:
    """A file a change writes: its current and its new content, both already masked (sbops.diff.file_diff).

    `before` is None when the file does not exist yet; `after` is None when the change deletes it.
    """

    path: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Change:
    """One change a fix or installer step would make.

    `description` and `commands` are for humans, plans, logs and JSON: they must already be masked.
    `commands` are only commands that really run; a change made through an API or a driver says so in
    its description instead. `files` are the files it writes, shown as diffs (Ansible's --diff).
    `apply` performs it; it receives nothing because it closes over what it needs.
    """

    description: str
    commands: tuple[str, ...] = ()
    apply: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    files: tuple[FileDiff, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What a fix would do. `blockers` explain why it cannot run at all (then nothing is applied)."""

    changes: tuple[Change, ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    nothing_to_do: str = ""  # why there is no change, when there is none

    @property
    def empty(self) -> bool:
        return not self.changes
