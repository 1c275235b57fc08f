"""Correlation after collection (sbops.correlate), from tables: no threads, no servers, no engine."""

from __future__ import annotations

import pytest

from sbops.correlate import Related, attach_cause, correlate, likely_cause, related_findings, root_of
from sbops.model import Reason, Result, Status, fail, ok, skip
from sbops.probes import app

CAUSES = app.CAUSES
ALL = tuple(cid for cid, _ in CAUSES)


def blocked(*by: str) -> Result:
    return skip(Reason.BLOCKED, f"blocked by {', '.join(by)}", blocked_by=list(by))


def portal_failure() -> Result:
    return Result(Status.FAIL, Reason.DEGRADED, "the API answers HTTP 500", {}, causes=CAUSES)


@pytest.mark.parametrize("items,cause", [
    ([], None),
    ([("mysql.auth", ok("fine"), "mysql-user")], None),
    ([("mysql.auth", fail(Reason.REFUSED, "down"), "mysql-user"),
      ("istio.virtualservice", fail(Reason.MISCONFIGURED, "x"), "istio-gateway")], ("mysql.auth", "database", "mysql-user")),
    ([("mysql.auth", ok("fine"), "mysql-user"), ("mysql.schema", fail(Reason.MISSING, "no db"), "mysql-schema")],
     ("mysql.schema", "configuration", "mysql-schema")),
    ([("pods.ready", ok("fine"), None), ("istio.virtualservice", fail(Reason.MISCONFIGURED, "x"), "istio-gateway")],
     ("istio.virtualservice", "Kong routing", "istio-gateway")),
    ([("mysql.auth", Result(Status.ERROR, Reason.INTERNAL, "crashed"), "mysql-user")], ("mysql.auth", "database", "mysql-user")),
])
def test_likely_cause(items: list, cause: tuple | None) -> None:
    causes = dict(CAUSES)
    found = likely_cause([Related(cid, causes[cid], result, fix) for cid, result, fix in items])
    assert (None if found is None else (found["check"], found["cause"], found["fix"])) == cause


def test_attach_cause_names_it_and_takes_its_fix() -> None:
    result = attach_cause(portal_failure(), [Related("mysql.auth", "database", fail(Reason.AUTH_FAILED, "denied"), "mysql-user"),
                                            Related("rabbitmq.auth", "database", ok("fine"), "rabbitmq-user")])
    assert result.fix == "mysql-user"
    assert result.details["likely_cause"]["check"] == "mysql.auth"
    assert result.details["failed_related"] == ["mysql.auth"]
    assert result.details["related_checks"] == {"mysql.auth": "fail/auth_failed", "rabbitmq.auth": "ok/none"}


def test_attach_cause_without_failures_points_at_the_logs_and_keeps_passing_results() -> None:
    result = attach_cause(portal_failure(), [Related("mysql.auth", "database", ok("fine"), "mysql-user")])
    assert result.fix is None and "likely_cause" not in result.details and "sb-core" in result.summary
    passing = ok("fine")
    assert attach_cause(passing, []) is passing


@pytest.mark.parametrize("results,start,root", [
    ({"mysql.auth": blocked("mysql.reachable"), "mysql.reachable": fail(Reason.REFUSED, "x")}, "mysql.auth", "mysql.reachable"),
    # a chain: schema <- auth <- reachable
    ({"mysql.schema": blocked("mysql.auth"), "mysql.auth": blocked("mysql.reachable"),
      "mysql.reachable": fail(Reason.TIMEOUT, "x")}, "mysql.schema", "mysql.reachable"),
    # the blocker is not in the run: stay where we are
    ({"mysql.auth": blocked("mysql.reachable")}, "mysql.auth", "mysql.auth"),
    ({"mysql.auth": fail(Reason.AUTH_FAILED, "x")}, "mysql.auth", "mysql.auth"),
    ({}, "mysql.auth", "mysql.auth"),
])
def test_root_of_follows_blocked_by(results: dict, start: str, root: str) -> None:
    assert root_of(start, {cid: (r, None) for cid, r in results.items()}) == root


def test_related_findings_notes_what_could_not_run() -> None:
    results = {"mysql.auth": (fail(Reason.REFUSED, "down"), "mysql-user")}
    found, note = related_findings(CAUSES[:3], able=("mysql.auth", "mysql.schema"), results=results)
    assert [f.check for f in found] == ["mysql.auth"]
    assert "not run (sbops lacks the password or kubeconfig they need): mongodb.auth" in note
    assert "not in this run: mysql.schema" in note
    assert related_findings(CAUSES[:1], able=(), results={}) [1].startswith("not run")
    assert related_findings((), able=(), results={}) == ([], "no related check can run here")


def test_correlate_uses_the_runs_own_outcomes_and_follows_blockers() -> None:
    findings = [
        ("mysql.reachable", fail(Reason.REFUSED, "nothing listens on 3306"), "mysql-config"),
        ("mysql.auth", blocked("mysql.reachable"), "mysql-user"),
        ("rabbitmq.auth", ok("fine"), "rabbitmq-user"),
        ("app.cloudconfiguration", portal_failure(), None),
    ]
    changed = correlate(findings, {"app.cloudconfiguration": ALL})
    assert list(changed) == ["app.cloudconfiguration"]
    result = changed["app.cloudconfiguration"]
    assert result.details["likely_cause"]["check"] == "mysql.reachable"
    assert result.details["likely_cause"]["cause"] == "database"
    assert result.fix == "mysql-config"


@pytest.mark.parametrize("result", [ok("fine"), fail(Reason.DEGRADED, "no causes declared")])
def test_correlate_leaves_passing_results_and_those_without_causes(result: Result) -> None:
    assert correlate([("app.portal", result, None), ("mysql.auth", fail(Reason.REFUSED, "x"), "mysql-user")],
                     {"app.portal": ALL}) == {}


def test_a_check_sbops_cannot_look_at_is_never_the_cause() -> None:
    """mysql.auth fails because sbops has no password: the engine leaves it out of `able`, so it is not blamed."""
    findings = [("mysql.auth", fail(Reason.MISSING, "no Password line"), "mysql-user"),
                ("istio.virtualservice", fail(Reason.MISCONFIGURED, "no /api route"), "istio-gateway"),
                ("app.cloudconfiguration", portal_failure(), None)]
    able = tuple(cid for cid in ALL if cid != "mysql.auth")
    result = correlate(findings, {"app.cloudconfiguration": able})["app.cloudconfiguration"]
    assert result.details["likely_cause"]["check"] == "istio.virtualservice"
    assert "mysql.auth" in result.details["related_note"]
