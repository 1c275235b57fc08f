"""What the user sees: a line per step as it finishes (a spinner while it works, on a terminal), the plan,
and the final recap; or one JSON document. Everything shown is already masked (plans and Change
descriptions never hold secrets; errors go through mask_text)."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from sbops import __version__
from sbops.diff import unified
from sbops.install import monitoring, steps as st
from sbops.install.run import Reporter

if TYPE_CHECKING:
    from sbops.install.run import Run
    from sbops.install.validation import Findings

SYMBOLS = {st.CHANGED: "✔", st.UNCHANGED: "✔", st.FAILED: "✘", st.SKIPPED: "-", st.NOT_RUN: "·",
           st.PLANNED: "+", st.DEFERRED: "?", st.BLOCKED: "✘", st.INTERRUPTED: "!"}
COLOURS = {st.CHANGED: "33", st.UNCHANGED: "32", st.FAILED: "31", st.BLOCKED: "31", st.PLANNED: "33",
           st.DEFERRED: "36", st.SKIPPED: "2", st.NOT_RUN: "2", st.INTERRUPTED: "31"}
WORDS = {st.PLANNED: "would change", st.DEFERRED: "at apply time", st.BLOCKED: "cannot run", st.UNCHANGED: "nothing to do"}


def paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def step_lines(outcome: st.StepOutcome, *, plan_only: bool, colour: bool = False) -> list[str]:
    """The step's head line and what it did, would do, or why it did nothing (one line each)."""
    status = outcome.status
    word = WORDS.get(status, status)
    took = f"{outcome.duration:5.1f}s" if status not in (st.SKIPPED, st.NOT_RUN) else ""
    head = f"  {paint(SYMBOLS[status], COLOURS[status], colour)} {outcome.step.name:<17} {paint(f'{word:<14}', COLOURS[status], colour)} {took}"
    if outcome.why_skipped:
        return [f"{head.rstrip()} ({outcome.why_skipped})"]
    lines = [head.rstrip()]
    for r in outcome.resources:
        if r.deferred:
            lines.append(f"      ? {r.name}: {r.deferred}")
            continue
        if r.plan is not None and not r.plan.blockers:
            shown = r.applied if (r.applied or not plan_only) else [c.description for c in r.plan.changes]
            for change in r.plan.changes:
                if change.description in shown:
                    lines.append(f"      + {change.description}")
                    if plan_only:
                        lines += [f"          $ {cmd}" for cmd in change.commands]
                        lines += [f"          {line}" for diff in change.files for line in unified(diff)]
            if r.plan.empty and r.plan.nothing_to_do:
                lines.append(f"      = {r.name}: {r.plan.nothing_to_do}")
            lines += [f"      note: {n}" for n in r.plan.notes]
        if r.error:
            lines.append(paint(f"      ✘ {r.name}: {r.error}", "31", colour))
    if outcome.error and not any(r.error for r in outcome.resources):
        lines.append(paint(f"      ✘ {outcome.error}", "31", colour))
    return lines


def validation_lines(findings: "Findings", colour: bool = False) -> list[str]:
    if findings.errors:
        return [f"  {paint('✘', '31', colour)} validate          {paint('failed', '31', colour)}"] + \
               [f"      ✘ {e}" for e in findings.errors] + [f"      ! {w}" for w in findings.warnings]
    lines = [f"  {paint('✔', '32', colour)} validate          {paint('ok', '32', colour)}: {', '.join(findings.passed)}"]
    return lines + [f"      ! {paint(w, '33', colour)}" for w in findings.warnings]


class PlainReporter(Reporter):
    """Plain lines (a log, CI): each step's lines when it finishes, and what it is doing while it works."""

    def __init__(self, stream: TextIO, plan_only: bool = False) -> None:
        self.stream = stream
        self.plan_only = plan_only
        self._last = ""

    def step_started(self, name: str, title: str) -> None:
        if not self.plan_only:  # progress for a log or CI; a plan is quick and its lines say it all
            self.stream.write(f"  ... {name}: {title}\n")
            self.stream.flush()

    def activity(self, text: str) -> None:
        if text != self._last and not self.plan_only:
            self._last = text
            self.stream.write(f"      ... {text}\n")
            self.stream.flush()

    def step_finished(self, outcome: Any) -> None:
        self.stream.write("\n".join(step_lines(outcome, plan_only=self.plan_only)) + "\n")
        self.stream.flush()


class TerminalReporter(Reporter):
    """A spinner with the current activity while a step works, then the step's lines."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO, plan_only: bool = False, colour: bool = True) -> None:
        self.stream = stream
        self.plan_only = plan_only
        self.colour = colour
        self._text = ""
        self._name = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._began = 0.0

    def _spin(self) -> None:
        for frame in itertools.cycle(self.FRAMES):
            if self._stop.wait(0.1):
                return
            with self._lock:
                width = 100
                line = f"  {frame} {self._name:<17} {time.monotonic() - self._began:5.1f}s  {self._text}"
                self.stream.write("\r\x1b[2K" + line[:width])
                self.stream.flush()

    def step_started(self, name: str, title: str) -> None:
        self._name, self._text, self._began = name, title, time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def activity(self, text: str) -> None:
        with self._lock:
            self._text = text

    def abort(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def step_finished(self, outcome: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.stream.write("\r\x1b[2K" + "\n".join(step_lines(outcome, plan_only=self.plan_only, colour=self.colour)) + "\n")
            self.stream.flush()


class QuietReporter(Reporter):
    """--output json: nothing until the document."""


def make_reporter(json_output: bool, plan_only: bool, colour: bool, stream: TextIO | None = None) -> Reporter:
    """A spinner on a terminal, plain lines otherwise, nothing for --output json."""
    stream = stream or sys.stdout
    if json_output:
        return QuietReporter()
    if getattr(stream, "isatty", lambda: False)():
        return TerminalReporter(stream, plan_only, colour)
    return PlainReporter(stream, plan_only)


# -- the recap ---------------------------------------------------------------------------------------
def counts(outcomes: list[st.StepOutcome]) -> dict[str, int]:
    found: dict[str, int] = {}
    for o in outcomes:
        found[o.status] = found.get(o.status, 0) + 1
    return found


def portal_ports(run: "Run") -> tuple[int, int, str]:
    """The ingress gateway's live nodePorts (a server set up by another installer keeps its own), else the
    settings' (no cluster yet, or the Service is not exposed)."""
    from sbops.probes import istio

    try:
        ctx = run.context()
    except Exception:  # noqa: BLE001 - no kubeconfig yet: the configured ports are the plan
        return int(run.settings["nodeport_http"]), int(run.settings["nodeport_https"]), "settings"
    try:
        return istio.live_ports(ctx)
    finally:
        ctx.close()


def recap_facts(run: "Run", outcomes: list[st.StepOutcome], plan_only: bool, invalid: bool = False) -> dict[str, Any]:
    """What the recap says, as data (the JSON output has the same)."""
    http, https, source = portal_ports(run)
    domain = run.credentials.domain
    failed = next((o for o in outcomes if o.status in (st.FAILED, st.BLOCKED)), None)
    if invalid:
        result, nxt = "invalid", "sbops install, once the validation errors are fixed (nothing was changed)"
    elif plan_only:
        result, nxt = ("blocked" if failed else "planned"), "sbops install"
    elif failed:
        result, nxt = "failed", "sbops install --resume (after fixing the cause above)"
    else:
        result, nxt = "finished", "sbops doctor"
    creds = run.credentials
    closed = sorted({s.port or int(run.settings[f"{n}.port"]) for n, s in
                     (("mysql", creds.mysql), ("mongodb", creds.mongodb), ("rabbitmq", creds.rabbitmq))}
                    | {int(run.settings["rabbitmq.management_port"]), int(run.settings["nfs.port"]), 6443, 10250})
    ecr = next((o for o in outcomes if o.step.name == "ecr-secret"), None)
    refresher = ""
    if ecr is not None:
        refresher = next((r.plan.nothing_to_do or (r.applied[0] if r.applied else "")
                          for r in ecr.resources if r.name == "ecr.refresher" and r.plan), "")
    exporter = ""
    ran = next((o for o in outcomes if o.step.name == "exporter" and o.status not in (st.SKIPPED, st.NOT_RUN)), None)
    if ran is not None and not monitoring.wanted(run):
        exporter = f"http://{run.settings['exporter.listen']}/metrics ({monitoring.UNIT}; alert rules: sbops exporter print-rules)"
    return {
        "result": result, "failed_step": failed.step.name if failed else "",
        "counts": counts(outcomes),
        "portal_url": f"https://{domain}:{https}" if domain else "",
        "portal_by_ip": f"https://{run.credentials.server_ip}:{https}",
        "nodeports": {"http": http, "https": https, "source": source},
        "firewall": {"open": [http, https], "keep_closed": closed},
        "credentials_file": str(run.credentials_path),
        "ecr_refresher": refresher,
        "exporter": exporter,
        "log_file": str(run.log.path) if run.log else "",
        "next": nxt,
    }


def recap_lines(facts: dict[str, Any], colour: bool = False) -> list[str]:
    c = facts["counts"]
    summary = ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
    head = {"finished": paint("Install finished", "32", colour),
            "failed": paint(f"Install failed at step {facts['failed_step']}", "31", colour),
            "planned": "Plan only: nothing was changed",
            "blocked": paint(f"Plan only: nothing was changed; step {facts['failed_step']} cannot run as things are",
                             "31", colour)}[facts["result"]]
    lines = ["", f"{head} ({summary})"]
    if facts["portal_url"]:
        lines.append(f"  Portal:      {facts['portal_url']}  (admin UI under /admin; by address: {facts['portal_by_ip']})")
    ports = facts["nodeports"]
    lines.append(f"  NodePorts:   HTTPS {ports['https']}, HTTP {ports['http']} (redirects to HTTPS)")
    lines.append(f"  Firewall:    open TCP {', '.join(map(str, facts['firewall']['open']))} to the portal's users; keep "
                 f"{', '.join(map(str, facts['firewall']['keep_closed']))} closed to the outside (pods reach them on the host)")
    lines.append(f"  Credentials: {facts['credentials_file']} (mode 0600; passwords are not shown)")
    if facts["ecr_refresher"]:
        lines.append(f"  ECR token:   {facts['ecr_refresher']}")
    if facts["exporter"]:
        lines.append(f"  Metrics:     {facts['exporter']}")
    if facts["log_file"]:
        lines.append(f"  Log:         {facts['log_file']}")
    lines.append(f"  Next:        {facts['next']}")
    return lines


def document(run: "Run", findings: "Findings", outcomes: list[st.StepOutcome], *, plan_only: bool,
             started_at: str, duration: float) -> dict[str, Any]:
    return {
        "schema": 1, "version": __version__, "mode": "plan" if plan_only else "apply", "started_at": started_at,
        "duration_seconds": round(duration, 3),
        "validation": {"errors": findings.errors, "warnings": findings.warnings, "passed": findings.passed},
        "steps": [o.as_dict() for o in outcomes],
        **recap_facts(run, outcomes, plan_only, invalid=bool(findings.errors)),
        "state_file": str(run.settings["install.state_file"]),
    }
