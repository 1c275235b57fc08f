"""Concurrent scrapes share one execution of a check, and costly checks' results are reused for a while.

Prometheus servers in HA pairs, a dashboard's refresh and /probe jobs can scrape at the same moment. Without
sharing, each scrape would open its own MySQL, MongoDB and AMQP logins and each would pile up threads on a
blackholed host. Here at most one execution of a check is alive at any time, whatever the number of
scrapes: a scrape that needs a check already running waits for that run's result (up to its own budget)
instead of starting another, and a check that declares `cache_seconds` (registry.Check) is not probed again
until its last result is that old. So the connections the exporter holds are bounded by the number of
checks, not by the scrape rate. (collect.Scraper shares whole scrapes the same way: a scrape of the same
layers that arrives while one is running, with a deadline no shorter, waits for it instead of starting.)

Each scrape has its own Context (fresh clients, its timeouts). A Lease closes it once the scrape and every
execution it started have finished: an execution outlives an impatient scrape and still needs its clients.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from sbops.engine import call_probe
from sbops.model import Result

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.registry import Check


@dataclass(frozen=True)
class Run:
    """One execution of a check: its result, when it finished (Unix time) and how long it took."""

    result: Result
    finished_at: float
    duration: float
    cached: bool = False  # served from the cache by a later scrape


class Lease:
    """A scrape's Context, closed when the scrape and every execution started with it have released it."""

    def __init__(self, ctx: "Context") -> None:
        self.ctx = ctx
        self._holders = 1  # the scrape itself
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self.ctx.close()


class Flight:
    """One execution in progress; waiters block on `done`, then read `run` (whatever it produced)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.run: Any = None


class Flights:
    """Single-flight execution of checks across concurrent scrapes, with per-check result caching."""

    def __init__(self, probe: Callable[["Context", "Check"], Result] = call_probe,
                 clock: Callable[[], float] = time.time) -> None:
        self._probe = probe
        self._clock = clock
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}
        self._cache: dict[str, Run] = {}
        self.executions = 0  # probes really run (the rest were shared or cached)

    def run(self, lease: Lease, item: "Check") -> Run | None:
        """The check's result: from the cache while fresh, else from the execution already in flight, else
        from a new execution with the lease's Context. None when a shared execution outlasted this scrape's
        per-check timeout (the engine reports that as a timeout)."""
        with self._lock:
            cached = self._cache.get(item.id)
            if cached is not None and self._clock() - cached.finished_at < item.cache_seconds:
                return replace(cached, cached=True)
            flight = self._flights.get(item.id)
            leader = flight is None
            if leader:
                flight = self._flights[item.id] = Flight()
                self.executions += 1
                lease.hold()
        assert flight is not None
        if not leader:
            flight.done.wait(lease.ctx.timeout)
            return flight.run
        began = time.monotonic()
        try:
            result = self._probe(lease.ctx, item)  # call_probe never raises
            run = Run(result, self._clock(), time.monotonic() - began)
            flight.run = run
            with self._lock:
                if item.cache_seconds > 0:
                    self._cache[item.id] = run
        finally:
            with self._lock:
                self._flights.pop(item.id, None)
            flight.done.set()
            lease.release()
        return run

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)
