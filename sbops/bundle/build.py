"""`sbops bundle`: collect in parallel under a deadline, redact, fit --max-size, write the archive atomically
at 0600, verify it, and `--check` an archive. The collectors live in host, config, logs and cluster; the pure
logic in redact, verify, manifest and html."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from sbops import __version__
from sbops.bundle import cluster, config, host, logs
from sbops.bundle.html import render_index
from sbops.bundle.manifest import CollectorRecord, apply_max_size, file_entries, manifest, redaction_report
from sbops.bundle.redact import Redactor, Table
from sbops.bundle.verify import Finding, scan_archive

if TYPE_CHECKING:
    from sbops.context import Context

Put = Callable[[str, bytes], None]
Collector = Callable[["Context", Put], Optional[list]]
SECRETS = "secrets"  # the collector that gathers known secrets (its files: none)


@dataclass
class Options:
    output: Path
    window: logs.Window = field(default_factory=logs.Window)
    layers: list[str] = field(default_factory=list)
    no_logs: bool = False
    max_size: int | None = None
    deadline: float = 90.0
    config_paths: dict[str, list[Path]] | None = None    # a group's starting files (tests, unusual layouts)
    log_paths: dict[str, tuple[str, ...]] | None = None  # a group's log file globs
    disabled_rules: tuple[str, ...] = ()                 # test hook: watch verification catch a missing rule
    extra_collectors: dict[str, Collector] = field(default_factory=dict)  # test hook: a hanging collector


@dataclass
class Built:
    path: Path
    size: int
    manifest: dict[str, Any]
    seconds: float


class LeakFound(Exception):
    """Verification found a known secret in the archive; the archive was deleted. Names members, never values."""

    def __init__(self, archive: Path, findings: list[Finding]) -> None:
        self.archive = archive
        self.findings = findings
        super().__init__(f"{archive}: verification found known secrets in {', '.join(sorted({f.member for f in findings}))}"
                         "; the archive was deleted")


class _Sink:
    """One collector's files; closed at the deadline so a hanging collector cannot add to a written bundle."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.closed = False
        self.lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        with self.lock:
            if not self.closed:
                self.files[name] = data

    def close(self) -> dict[str, bytes]:
        with self.lock:
            self.closed = True
            return dict(self.files)


def default_output(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"sbops-bundle-{socket.gethostname()}-{stamp}.tar.gz")


def collectors(ctx: "Context", opts: Options, known: list[str]) -> dict[str, Collector]:
    timeout = ctx.timeout
    found: dict[str, Collector] = {
        SECRETS: lambda c, put: _gather_secrets(c, known),
        "doctor": lambda c, put: _doctor(c, put, opts.layers),
        "host": lambda c, put: host.collect(c, put, timeout),
        "config": lambda c, put: config.collect(c, put, opts.config_paths),
        "cluster": lambda c, put: cluster.collect(c, put),
    }
    if not opts.no_logs:
        found["logs.journal"] = lambda c, put: logs.journals(c, opts.window, put, timeout)
        found["logs.pods"] = lambda c, put: logs.pods(c, opts.window, put, cluster.namespaces(c))
        found["logs.files"] = lambda c, put: logs.files(c, opts.window, put, opts.log_paths)
    found.update(opts.extra_collectors)
    return found


def _gather_secrets(ctx: "Context", known: list[str]) -> list[str]:
    known += config.local_secrets(ctx)
    if ctx.kubeconfig_path is None:
        return ["cluster Secrets: no kubeconfig (only this host's secrets are known)"]
    known += cluster.known_secrets(ctx)
    return []


def _doctor(ctx: "Context", put: Put, layers: list[str]) -> None:
    from sbops.engine import run_checks
    from sbops.registry import load_all
    from sbops.report.jsonout import doctor_document
    from sbops.report.text import render_doctor

    registry = load_all()
    selected = registry.select(layers or None, None)
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    outcomes = run_checks(ctx, selected, registry=registry)
    url = ctx.settings["runbook_url"]
    doc = doctor_document(outcomes, started, time.monotonic() - began, url)
    put("doctor.json", (json.dumps(doc, indent=2, default=str) + "\n").encode())
    put("summary.txt", render_doctor(outcomes, colour=False, verbose=True, runbook_url=url).encode())


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status:
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def collect(ctx: "Context", jobs: dict[str, Collector], deadline: float,
            progress: Callable[[str], None] | None = None) -> tuple[dict[str, bytes], list[CollectorRecord]]:
    """Run every collector in its own (daemon) thread; at the deadline, record the unfinished as timed out
    and go on without them. An exception is recorded as the collector's failure, never raised."""
    sinks = {name: _Sink() for name in jobs}
    records: dict[str, CollectorRecord] = {}
    began = time.monotonic()
    done = threading.Condition()

    def run(name: str, job: Collector) -> None:
        start = time.monotonic()
        try:
            missing = job(ctx, sinks[name].put) or []
            record = CollectorRecord(name, "ok", time.monotonic() - start, missing=[str(m) for m in missing])
        except Exception as exc:  # noqa: BLE001 - a collector's failure is recorded, never fatal
            record = CollectorRecord(name, "failed", time.monotonic() - start, error=_why(exc))
        with done:
            records.setdefault(name, record)
            done.notify_all()

    for name, job in jobs.items():
        threading.Thread(target=run, args=(name, job), name=f"bundle-{name}", daemon=True).start()
    with done:
        while len(records) < len(jobs):
            left = deadline - (time.monotonic() - began)
            if left <= 0:
                break
            if progress:
                running = [n for n in jobs if n not in records]
                progress(f"collecting: {len(records)}/{len(jobs)} done; waiting for {', '.join(running)}")
            done.wait(timeout=min(left, 0.5))
        for name in jobs:
            if name not in records:
                records[name] = CollectorRecord(name, "timeout", time.monotonic() - began,
                                                error=f"did not finish within the {deadline:g}s deadline")
    files: dict[str, bytes] = {}
    for name in jobs:
        files.update(sinks[name].close())
    return files, [records[n] for n in jobs]


def build(ctx: "Context", opts: Options, progress: Callable[[str], None] | None = None) -> Built:
    started = datetime.now(timezone.utc)
    began = time.monotonic()
    known: list[str] = []
    files, records = collect(ctx, collectors(ctx, opts, known), opts.deadline, progress)
    seconds = time.monotonic() - began
    if progress:
        progress("redacting")
    known = list(known)  # a timed-out secrets collector may still be appending
    redactor = Redactor.build(known, opts.disabled_rules)
    redactions: dict[str, dict[str, int]] = {}
    for name in list(files):
        files[name], counts = redactor.redact(files[name])
        if counts:
            redactions[name] = counts
    truncated: list[str] = []
    if opts.max_size is not None:
        files, truncated = apply_max_size(files, opts.max_size, reserve=8192 + 200 * len(files))
    doctor = _doctor_doc(files.get("doctor.json"))
    options = {"since_seconds": opts.window.since, "lines": opts.window.lines, "layers": opts.layers,
               "no_logs": opts.no_logs, "max_size": opts.max_size, "deadline_seconds": opts.deadline}
    report = redaction_report(redactions, redactor.table.count, redactor.table.skipped_short, list(opts.disabled_rules))
    entries = file_entries(files, redactions)
    doc = manifest(version=__version__, started_at=started.isoformat(timespec="seconds"), seconds=seconds,
                   options=options, records=records, entries=entries, report=report, truncated=truncated)
    index = render_index(doctor, doc).encode()
    files["index.html"] = index
    doc["files"].append({"path": "index.html", "size": len(index), "sha256": hashlib.sha256(index).hexdigest()})
    files["manifest.json"] = (json.dumps(doc, indent=2) + "\n").encode()
    if progress:
        progress("writing and verifying")
    full = Table.build(known)  # verification never skips a rule, whatever the redaction did
    size = write_verified(opts.output, files, full, started)
    return Built(opts.output, size, doc, time.monotonic() - began)


def _doctor_doc(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def write_verified(path: Path, files: dict[str, bytes], table: Table, when: datetime) -> int:
    """Write the .tar.gz beside `path` at 0600, scan it, then rename it into place. A finding deletes it and
    raises LeakFound. Members sit under one top directory named after the archive."""
    path = Path(path)
    top = path.name.removesuffix(".tar.gz").removesuffix(".tgz") or "sbops-bundle"
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(files, key=lambda n: (n not in ("index.html", "manifest.json"), n)):
                    data = files[name]
                    info = tarfile.TarInfo(f"{top}/{name}")
                    info.size, info.mode, info.mtime = len(data), 0o600, int(when.timestamp())
                    tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        findings = scan_archive(Path(temp), table)
        if findings:
            raise LeakFound(path, findings)
        os.replace(temp, path)
        temp = ""
        return path.stat().st_size
    finally:
        if temp:
            try:
                os.unlink(temp)
            except OSError:
                pass


def check(path: Path, known: list[str]) -> tuple[list[Finding], Table]:
    table = Table.build(known)
    return scan_archive(path, table), table


def known_here(ctx: "Context") -> tuple[list[str], list[str]]:
    """Every secret sbops can read where it runs (for --check), and what it could not read."""
    known = config.local_secrets(ctx)
    problems: list[str] = []
    if ctx.kubeconfig_path is None:
        problems.append("no kubeconfig: the cluster's Secrets were not searched for")
    else:
        try:
            known += cluster.known_secrets(ctx)
        except Exception as exc:  # noqa: BLE001 - said, not fatal: the local secrets are still checked
            problems.append(f"cluster Secrets not readable ({_why(exc)}): not searched for")
    return known, problems
