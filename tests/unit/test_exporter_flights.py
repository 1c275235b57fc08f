"""Single-flight and caching of check executions across concurrent scrapes, and when a scrape's Context closes.

The checks here are small local probes (sleeping, counting): what is tested is the sharing, not a client.
"""

from __future__ import annotations

import threading
import time

from sbops.context import Context
from sbops.engine import run_checks
from sbops.exporter.flights import Flights, Lease
from sbops.model import Reason, ok
from sbops.registry import Check
from sbops.settings import Settings


class Counting:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, ctx: Context):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return ok(f"done after {self.delay}s")


class Gate:
    """A probe that runs until the test opens the gate: the test knows when it has started (an event, never a
    sleep that hopes so), and a caller that waited for it could only return after the gate opened."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.open = threading.Event()

    def __call__(self, ctx: Context):
        self.calls += 1
        self.started.set()
        self.open.wait(30)
        return ok("released")

    def wait_started(self) -> None:
        assert self.started.wait(10), "the probe never started"


def check(probe, cache_seconds: float = 0.0, cid: str = "host.slow") -> Check:
    from sbops.model import Severity

    return Check(cid, "host", "a slow check", Severity.WARNING, probe, cache_seconds=cache_seconds)


def context(timeout: float = 5.0) -> Context:
    settings = Settings.load(env={}).overridden({"timeout": timeout}, "test")
    return Context(settings)


class ClosingContext(Context):
    closed = 0

    def close(self) -> None:
        ClosingContext.closed += 1
        super().close()


def test_concurrent_scrapes_share_one_execution():
    probe = Counting(0.3)
    item = check(probe)
    flights = Flights()
    results = []
    together = threading.Barrier(20)  # all 20 call run() at once: thread start-up on a loaded machine can take
    # longer than the probe, and a late thread would rightly start a second execution

    def scrape() -> None:
        lease = Lease(context())
        together.wait()
        results.append(flights.run(lease, item))
        lease.release()

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert probe.calls == 1 and flights.executions == 1
    assert len(results) == 20 and all(r is not None and r.result.summary == "done after 0.3s" for r in results)
    assert flights.in_flight() == 0
    again = Lease(context())
    flights.run(again, item)  # a later scrape runs it again: nothing is cached without cache_seconds
    assert probe.calls == 2


def test_cached_results_are_reused_until_they_are_older_than_cache_seconds():
    probe = Counting(0.0)
    now = [1000.0]
    flights = Flights(clock=lambda: now[0])
    item = check(probe, cache_seconds=60)
    first = flights.run(Lease(context()), item)
    now[0] += 59
    second = flights.run(Lease(context()), item)
    assert probe.calls == 1 and second.cached and second.finished_at == first.finished_at == 1000.0
    now[0] += 2
    third = flights.run(Lease(context()), item)
    assert probe.calls == 2 and not third.cached and third.finished_at == 1061.0


def test_a_waiting_scrape_gives_up_at_its_own_timeout():
    """The follower's own timeout (0.2 s) ends its wait: it returns None while the leader's execution is still
    held at the gate (had it waited for the leader, it would have returned the leader's result)."""
    probe = Gate()
    item = check(probe)
    flights = Flights()
    leader = threading.Thread(target=lambda: flights.run(Lease(context(5.0)), item))
    leader.start()
    probe.wait_started()
    try:
        assert flights.run(Lease(context(0.2)), item) is None
    finally:
        probe.open.set()
        leader.join()
    assert probe.calls == 1


def test_the_context_closes_after_the_scrape_and_its_executions():
    ClosingContext.closed = 0
    ctx = ClosingContext(Settings.load(env={}).overridden({"timeout": 5.0}, "test"))
    lease = Lease(ctx)
    flights = Flights()
    probe = Gate()
    runner = threading.Thread(target=lambda: flights.run(lease, check(probe)))
    runner.start()
    probe.wait_started()
    lease.release()  # the scrape is done, the execution is not: its clients stay open
    assert ClosingContext.closed == 0
    probe.open.set()
    runner.join()
    assert ClosingContext.closed == 1


def test_the_engine_uses_the_shared_execution_and_reports_its_own_timeout():
    """run_checks(execute=...) keeps the engine's timeouts: with the shared execution held at the gate, the
    engine still ends the check at its own timeout (bench/exporter.py measures how promptly)."""
    probe = Gate()
    item = check(probe)
    flights = Flights()
    lease = Lease(context(0.3))

    def execute(ctx, c):
        found = flights.run(lease, c)
        return found.result if found else ok("unused")

    try:
        [outcome] = run_checks(lease.ctx, [item], timeout=0.3, deadline=0.3, execute=execute)
    finally:
        probe.open.set()
    assert outcome.result.reason is Reason.TIMEOUT
    lease.release()


def scraper_with(item: Check):
    from sbops.exporter.collect import CredentialsSource, Scraper
    from sbops.registry import Registry

    registry = Registry()
    registry.add_check(item)
    return Scraper(Settings.load(env={}), registry, CredentialsSource("", print), None)


def test_concurrent_scrapes_of_the_same_layers_share_one_scrape():
    probe = Counting(0.3)
    scraper = scraper_with(check(probe))
    found = []
    threads = [threading.Thread(target=lambda: found.append(scraper.scrape(["host"], 5.0))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert probe.calls == 1 and scraper.shared_scrapes == 4
    assert len({id(s) for s in found}) == 1
    [layer] = found[0].layers
    assert layer.success and layer.checks[0].result.summary == "done after 0.3s"


def test_a_shorter_scrape_does_not_wait_for_a_longer_one():
    """A 0.3 s scrape arriving while a 5 s one runs does not share it (it could not end in time): it reports
    its own timeout while the longer one is still held at the gate."""
    probe = Gate()
    scraper = scraper_with(check(probe))
    leader = threading.Thread(target=lambda: scraper.scrape(["host"], 5.0))
    leader.start()
    probe.wait_started()
    try:
        short = scraper.scrape(["host"], 0.3)
    finally:
        probe.open.set()
        leader.join()
    assert scraper.shared_scrapes == 0
    assert short.layers[0].checks[0].result.reason is Reason.TIMEOUT

