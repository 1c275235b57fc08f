"""One scrape: run the chosen layers' checks (the doctor's registry and engine) within a deadline.

Each layer runs as its own engine run, all layers at once, so each has its own success and duration
(sbops_scrape_collector_*{layer}) and /metrics is exactly the union of the /probe?module=<layer> answers.
The settings and kubeconfig are read once at start; the credentials file is read again when it changes
(a fix that rotates a password rewrites it), keeping the last good copy if the new one does not parse.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sbops import credentials as creds_mod
from sbops.context import Context
from sbops.engine import run_checks
from sbops.errors import UsageError
from sbops.exporter.flights import Flight, Flights, Lease, Run
from sbops.model import Reason, Result, fail
from sbops.registry import LAYERS

if TYPE_CHECKING:
    from sbops.credentials import Credentials
    from sbops.engine import Outcome
    from sbops.kube import KubeSource
    from sbops.registry import Check, Registry
    from sbops.runner import HostRunner
    from sbops.settings import Settings

# sbops_exporter_errors_total{kind}: the exporter's own failures, never the checks' findings.
ERROR_KINDS = ("check_crashed", "collector", "credentials", "scrape", "web_config")
MIN_DEADLINE = 0.1


@dataclass(frozen=True)
class CheckRun:
    check: "Check"
    result: Result
    duration: float  # seconds the execution that produced the result took
    finished_at: float  # Unix time that result was produced (older than the scrape when cached)


@dataclass(frozen=True)
class LayerRun:
    layer: str
    checks: tuple[CheckRun, ...]
    duration: float
    success: bool  # sbops evaluated the layer: no check crashed and the run itself did not fail


@dataclass(frozen=True)
class Scrape:
    layers: tuple[LayerRun, ...]
    timeout: float  # the deadline this scrape ran with, seconds


def scrape_deadline(header: str | None, offset: float, cap: float) -> float:
    """Prometheus's X-Prometheus-Scrape-Timeout-Seconds minus `offset`, at most `cap` (the whole budget
    when the header is absent or not a number), never below MIN_DEADLINE."""
    deadline = cap
    if header:
        try:
            given = float(header)
        except ValueError:
            given = float("nan")
        if given == given and given > 0:  # not NaN
            deadline = min(cap, given - offset)
    return max(MIN_DEADLINE, deadline)


class CredentialsSource:
    """The credentials file, re-read when its size or mtime changes; the last good copy otherwise."""

    def __init__(self, explicit: str | None, on_error: Callable[[str], None]) -> None:
        self._explicit = explicit
        self._on_error = on_error
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.path: Path | None = creds_mod.find(explicit)
        self.credentials: "Credentials | None" = creds_mod.load(self.path) if self.path else None  # UsageError at start
        if self.path is not None:
            self._stamp = _stamp(self.path)

    def current(self) -> tuple["Credentials | None", Path | None]:
        with self._lock:
            path = self.path or creds_mod.find(self._explicit)
            if path is None:
                return None, None
            stamp = _stamp(path)
            if stamp != self._stamp or path != self.path:
                try:
                    self.credentials = creds_mod.load(path)
                    self.path, self._stamp = path, stamp
                except UsageError as exc:
                    self._stamp = stamp  # report once per change, keep the last good copy
                    self._on_error(str(exc))
                except Exception as exc:  # noqa: BLE001 - a bug in parsing it: still keep serving the last copy
                    self._stamp = stamp
                    self._on_error(f"{path}: cannot use credentials file: unexpected {type(exc).__name__} "
                                   "(please report this bug of sbops)")
            return self.credentials, self.path


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class Scraper:
    """Runs scrapes; shared by every request of the server (thread-safe)."""

    def __init__(self, settings: "Settings", registry: "Registry", credentials: CredentialsSource,
                 kubeconfig_path: "KubeSource | None", runner: "HostRunner | None" = None,
                 flights: Flights | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.credentials = credentials
        self.kubeconfig_path = kubeconfig_path
        self.runner = runner
        self.flights = flights or Flights()
        self._errors = dict.fromkeys(ERROR_KINDS, 0)
        self._errors_lock = threading.Lock()
        self.checks_by_layer: dict[str, list["Check"]] = {layer: registry.select([layer]) for layer in LAYERS}
        self._scrapes: dict[tuple[str, ...], tuple[Flight, float]] = {}  # layers -> (scrape running, its deadline)
        self._scrapes_lock = threading.Lock()
        self.shared_scrapes = 0  # scrapes answered with a concurrent scrape's results

    # -- the exporter's own errors ------------------------------------------------------------------
    def count_error(self, kind: str, n: int = 1) -> None:
        with self._errors_lock:
            self._errors[kind] += n

    def errors(self) -> dict[str, int]:
        with self._errors_lock:
            return dict(self._errors)

    # -- scraping -------------------------------------------------------------------------------------
    def context(self, deadline: float) -> Context:
        """A fresh Context for one scrape: its clients' timeouts fit inside the scrape's deadline."""
        per_check = min(float(self.settings["timeout"]), deadline)
        settings = self.settings.overridden({"timeout": per_check, "deadline": deadline}, "exporter scrape deadline")
        creds, path = self.credentials.current()
        return Context(settings, creds, path, self.runner, self.kubeconfig_path)

    def scrape(self, layers: list[str], deadline: float) -> Scrape:
        """Run the layers' checks at once; returns within about `deadline` seconds whatever the backends do.

        A scrape of the same layers already running with a deadline no longer than this one's ends in time for
        this one too: its results are shared (20 dashboards refreshing at once cost one scrape, not 20)."""
        key = tuple(layers)
        with self._scrapes_lock:
            running = self._scrapes.get(key)
            if running is not None and running[1] <= deadline:
                flight = running[0]
                self.shared_scrapes += 1
            else:
                flight = None
                if running is None:
                    mine = Flight()
                    self._scrapes[key] = (mine, deadline)
        if flight is not None:
            if not flight.done.wait(deadline):  # cannot happen while the engine keeps its deadline
                self.count_error("collector")
                return Scrape(tuple(LayerRun(layer, (), deadline, False) for layer in layers), deadline)
            if flight.run is not None:
                return flight.run
            return self._run(layers, deadline)  # the other scrape failed at once: run our own
        if running is not None:  # a longer one is running: ours stands alone (checks are still shared)
            return self._run(layers, deadline)
        try:
            mine.run = self._run(layers, deadline)
            return mine.run
        finally:
            with self._scrapes_lock:
                self._scrapes.pop(key, None)
            mine.done.set()

    def outcomes(self, checks: list["Check"], deadline: float) -> list["Outcome"]:
        """The doctor's run of `checks` (related checks and correlation included) within `deadline`: what
        /results renders with the doctor's own JSON. Executions are shared with concurrent scrapes (flights)."""
        lease = Lease(self.context(deadline))
        try:
            def execute(ctx: Context, item: "Check") -> Result:
                run = self.flights.run(lease, item)
                if run is None:
                    return fail(Reason.TIMEOUT, f"no answer within {ctx.timeout:.1f}s (still running for an earlier scrape)")
                return run.result

            return run_checks(lease.ctx, checks, timeout=lease.ctx.timeout, deadline=deadline, execute=execute,
                              registry=self.registry)
        finally:
            lease.release()

    def _run(self, layers: list[str], deadline: float) -> Scrape:
        lease = Lease(self.context(deadline))
        try:
            if len(layers) == 1:
                runs = [self._layer(lease, layers[0], deadline)]
            else:
                runs = self._parallel(lease, layers, deadline)
        finally:
            lease.release()
        return Scrape(tuple(runs), deadline)

    def _parallel(self, lease: Lease, layers: list[str], deadline: float) -> list[LayerRun]:
        found: dict[str, LayerRun] = {}
        threads = [threading.Thread(target=lambda layer=layer: found.__setitem__(layer, self._layer(lease, layer, deadline)),
                                    name=f"scrape-{layer}", daemon=True) for layer in layers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(deadline + 1.0)
        return [found.get(layer) or LayerRun(layer, (), deadline, False) for layer in layers]

    def _layer(self, lease: Lease, layer: str, deadline: float) -> LayerRun:
        began = time.monotonic()
        seen: dict[str, Run] = {}

        def execute(ctx: Context, item: "Check") -> Result:
            run = self.flights.run(lease, item)
            if run is None:
                return fail(Reason.TIMEOUT, f"no answer within {ctx.timeout:.1f}s (still running for an earlier scrape)")
            seen[item.id] = run
            return run.result

        try:
            # related checks of other layers run through the same shared executions (flights), so a failing
            # portal never probes mysql.auth a second time; only this layer's own checks become its metrics
            outcomes = run_checks(lease.ctx, self.checks_by_layer[layer], timeout=lease.ctx.timeout,
                                  deadline=deadline, execute=execute, registry=self.registry)
            outcomes = [o for o in outcomes if not o.added]
        except Exception:  # noqa: BLE001 - a bug in sbops: report the layer as not collected, keep serving
            self.count_error("collector")
            return LayerRun(layer, (), time.monotonic() - began, False)
        now = time.time()
        checks = []
        for outcome in outcomes:
            run = seen.get(outcome.check.id)
            if run is not None and run.result.status is outcome.result.status:
                checks.append(CheckRun(outcome.check, outcome.result, round(run.duration, 6), run.finished_at))
            else:  # blocked, not run, or timed out by the engine
                checks.append(CheckRun(outcome.check, outcome.result, outcome.duration, now))
        crashed = sum(1 for c in checks if c.result.reason is Reason.INTERNAL)
        if crashed:
            self.count_error("check_crashed", crashed)
        return LayerRun(layer, tuple(checks), time.monotonic() - began, crashed == 0)
