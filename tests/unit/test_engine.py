"""The runner: parallelism, per-check timeouts, the overall deadline, blocked-by, crash isolation."""

import socket
import threading

from sbops.context import Context
from sbops.engine import run_checks
from sbops.model import Reason, Result, Severity, Status, fail, ok
from sbops.registry import Check
from sbops.settings import Settings
from tests.lab.common import Blackhole


def make(cid, probe, requires=()):
    return Check(cid, "host", cid, Severity.CRITICAL, probe, tuple(requires), fix=None, no_fix="test")


def ctx(**flags):
    return Context(Settings.load(env={}, flags=flags))


def test_checks_run_in_parallel():
    """Eight probes wait for each other at a barrier: only a parallel run lets all of them through.
    (How long a parallel run takes is measured by bench/engine.py, not asserted here.)"""
    barrier = threading.Barrier(8, timeout=10)
    checks = [make(f"t.meet{i}", lambda c: (barrier.wait(), ok("met"))[1]) for i in range(8)]
    outcomes = run_checks(ctx(), checks, timeout=20)
    assert [o.result.status for o in outcomes] == [Status.OK] * 8, [o.result.summary for o in outcomes]


def test_a_crashing_check_becomes_error_and_the_rest_still_run():
    def boom(c):
        raise RuntimeError("kaput\nsecond line")

    outcomes = run_checks(ctx(), [make("t.boom", boom), make("t.fine", lambda c: ok("fine"))])
    assert outcomes[0].result.status is Status.ERROR and outcomes[0].result.reason is Reason.INTERNAL
    assert outcomes[0].result.summary == "check crashed: RuntimeError: kaput"
    assert outcomes[1].result.status is Status.OK


def test_a_probe_stuck_on_a_blackholed_host_times_out():
    hole = Blackhole()

    def connect(c):
        socket.create_connection(("127.0.0.1", hole.port), timeout=30)  # far beyond the check's timeout
        return ok("connected?")

    try:
        # the probe itself would wait 30 s and then crash (error/internal): fail/timeout proves it was abandoned
        [outcome] = run_checks(ctx(), [make("t.hang", connect)], timeout=0.5)
        assert (outcome.result.status, outcome.result.reason) == (Status.FAIL, Reason.TIMEOUT)
    finally:
        hole.close()


def test_failed_requirement_skips_dependents_with_blocked_by():
    checks = [
        make("t.base", lambda c: fail(Reason.REFUSED, "refused")),
        make("t.child", lambda c: ok("never"), requires=["t.base"]),
        make("t.grandchild", lambda c: ok("never"), requires=["t.child"]),
    ]
    outcomes = run_checks(ctx(), checks)
    assert [o.result.status for o in outcomes] == [Status.FAIL, Status.SKIP, Status.SKIP]
    assert outcomes[1].result.summary == "blocked by t.base" and outcomes[1].result.reason is Reason.BLOCKED


def test_requirements_outside_the_selection_are_not_waited_for():
    [outcome] = run_checks(ctx(), [make("t.child", lambda c: ok("ran"), requires=["t.elsewhere"])])
    assert outcome.result.status is Status.OK


def test_overall_deadline_bounds_the_run():
    """Each probe would answer ok after waiting on an event that is only set once the run is over, and the
    per-check timeout is long: timeout results for all of them prove the deadline, not the timeout, ended it."""
    release = threading.Event()
    checks = [make(f"t.slow{i}", lambda c: (release.wait(30), ok("late"))[1]) for i in range(3)]
    try:
        outcomes = run_checks(ctx(), checks, timeout=20, deadline=0.6)
    finally:
        release.set()
    assert all(o.result.reason is Reason.TIMEOUT for o in outcomes)


def test_secrets_echoed_by_a_probe_are_masked():
    from sbops.credentials import Credentials, Service
    from sbops.secret import Secret

    c = Context(Settings.load(env={}), Credentials(mysql=Service(password=Secret("S3cretPassw0rd"))))
    [outcome] = run_checks(c, [make("t.echo", lambda _: fail(Reason.AUTH_FAILED, "denied for S3cretPassw0rd", raw="x S3cretPassw0rd"))])
    assert "S3cretPassw0rd" not in outcome.result.summary + str(outcome.result.details)


def test_related_checks_join_the_run_once_and_the_post_pass_names_the_cause():
    """With the registry, the checks a selected check relates to run in the same run (marked added), each
    once, and the failure is correlated with their outcomes."""
    from sbops.registry import Registry

    calls = []

    def database(c):
        calls.append("t.db")
        return fail(Reason.REFUSED, "nothing listens")

    registry = Registry()
    registry.add_check(make("t.db", database))
    registry.add_check(Check("t.portal", "host", "portal", Severity.CRITICAL,
                             lambda c: Result(Status.FAIL, Reason.DEGRADED, "HTTP 500", {}, causes=(("t.db", "database"),)),
                             no_fix="test", relates=("t.db",)))
    outcomes = run_checks(ctx(), [registry.checks["t.portal"]], registry=registry)
    by_id = {o.check.id: o for o in outcomes}
    assert calls == ["t.db"] and by_id["t.db"].added and not by_id["t.portal"].added
    portal = by_id["t.portal"].result
    assert portal.details["likely_cause"]["check"] == "t.db" and portal.fix is None  # t.db declares no fix

    both = run_checks(ctx(), registry.ordered(), registry=registry)
    assert [o.added for o in both] == [False, False] and len(calls) == 2


def test_a_messages_arguments_are_masked_like_its_evidence():
    """A finding's arguments (kept on the Result for tools) hold what a server said, as its evidence does."""
    from sbops.credentials import Credentials, Service
    from sbops.messages import engine as msg
    from sbops.secret import Secret

    c = Context(Settings.load(env={}), Credentials(mysql=Service(password=Secret("S3cretPassw0rd"))))
    [outcome] = run_checks(c, [make("t.echo", lambda _: msg.NEEDS_ACCESS.result(why="denied for S3cretPassw0rd"))])
    assert "S3cretPassw0rd" not in outcome.result.summary + str(outcome.result.args)
    assert outcome.result.code == "SB0001"
