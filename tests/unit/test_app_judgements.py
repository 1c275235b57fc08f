"""Pure app judgements from tables: HTTP answers and errors to reasons, the likely white-page cause."""

from __future__ import annotations

import socket
import ssl

import pytest

from sbops.model import Reason, Result, Status, fail, ok
from sbops.probes import app

URL = "https://10.0.0.10:31882" + app.CLOUDCONFIG_PATH


def answer(status: int, body: bytes = b"", ctype: str = "application/json", location: str = "") -> app.Answer:
    return app.Answer(URL, status, ctype, body, location)


@pytest.mark.parametrize("app_url,ip,port,expected", [
    ("", "10.0.0.10", 31882, "https://10.0.0.10:31882"),
    ("", "fd00::1", 31882, "https://[fd00::1]:31882"),
    ("https://portal.example.com/", "10.0.0.10", 31882, "https://portal.example.com"),
])
def test_base_url(app_url: str, ip: str, port: int, expected: str) -> None:
    assert app.base_url(app_url, ip, port) == expected


@pytest.mark.parametrize("ans,expected", [
    (answer(200, b'{"a": 1}'), (Status.OK, Reason.NONE)),
    (answer(200, b"<html></html>", "text/html"), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(200, b""), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(404, b"no Route matched"), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(401), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(301, location="https://x/"), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(500), (Status.FAIL, Reason.DEGRADED)),
    (answer(503, b"no healthy upstream"), (Status.FAIL, Reason.DEGRADED)),
    (app.Answer(URL, error=ConnectionRefusedError(111, "refused")), (Status.FAIL, Reason.REFUSED)),
    (app.Answer(URL, error=socket.timeout("timed out")), (Status.FAIL, Reason.TIMEOUT)),
    (app.Answer(URL, error=ConnectionResetError(104, "reset")), (Status.FAIL, Reason.MISCONFIGURED)),
    (app.Answer(URL, error=ssl.SSLCertVerificationError("verify failed")), (Status.FAIL, Reason.MISCONFIGURED)),
    (app.Answer(URL, error=socket.gaierror(-2, "Name or service not known")), (Status.FAIL, Reason.UNREACHABLE)),
])
def test_judge_cloudconfiguration(ans: app.Answer, expected: tuple) -> None:
    result = app.judge_cloudconfiguration(ans)
    assert (result.status, result.reason) == expected


@pytest.mark.parametrize("ans,expected", [
    (answer(200, b"<html>", "text/html"), (Status.OK, Reason.NONE)),
    (answer(302, location="/portal/"), (Status.OK, Reason.NONE)),
    (answer(404), (Status.FAIL, Reason.MISCONFIGURED)),
    (answer(502), (Status.FAIL, Reason.DEGRADED)),
    (app.Answer(URL, error=ConnectionRefusedError(111, "refused")), (Status.FAIL, Reason.REFUSED)),
])
def test_judge_portal(ans: app.Answer, expected: tuple) -> None:
    result = app.judge_portal(ans)
    assert (result.status, result.reason) == expected


def related(*items: tuple[str, Result, str | None]) -> list[tuple[str, str, Result, str | None]]:
    causes = dict(app.CAUSES)
    return [(cid, causes[cid], result, fix) for cid, result, fix in items]


@pytest.mark.parametrize("items,cause", [
    ([], None),
    ([("mysql.auth", ok("fine"), "mysql-user")], None),
    ([("mysql.auth", fail(Reason.REFUSED, "down"), "mysql-user"),
      ("istio.virtualservice", fail(Reason.MISCONFIGURED, "x"), "istio-gateway")], ("mysql.auth", "database", "mysql-user")),
    ([("mysql.auth", ok("fine"), "mysql-user"), ("mysql.schema", fail(Reason.MISSING, "no db"), "mysql-schema")],
     ("mysql.schema", "configuration", "mysql-schema")),
    ([("pods.ready", ok("fine"), None), ("istio.virtualservice", fail(Reason.MISCONFIGURED, "x"), "istio-gateway")],
     ("istio.virtualservice", "Kong routing", "istio-gateway")),
])
def test_likely_cause(items: list, cause: tuple | None) -> None:
    found = app.likely_cause(related(*items))
    assert (None if found is None else (found["check"], found["cause"], found["fix"])) == cause


def test_with_cause_names_it_and_takes_its_fix() -> None:
    base = fail(Reason.DEGRADED, "API answers HTTP 500")
    result = app.with_cause(base, related(("mysql.auth", fail(Reason.AUTH_FAILED, "denied"), "mysql-user"),
                                          ("rabbitmq.auth", ok("fine"), "rabbitmq-user")))
    assert result.fix == "mysql-user"
    assert "likely cause: database (mysql.auth: auth_failed)" in result.summary
    assert result.details["failed_related"] == ["mysql.auth"]
    assert result.details["related_checks"] == {"mysql.auth": "fail/auth_failed", "rabbitmq.auth": "ok/none"}


def test_with_cause_without_failures_points_at_the_logs_and_keeps_passing_results() -> None:
    result = app.with_cause(fail(Reason.DEGRADED, "HTTP 500"), related(("mysql.auth", ok("fine"), "mysql-user")))
    assert result.fix is None and "sb-core" in result.summary
    passing = ok("fine")
    assert app.with_cause(passing, []) is passing


@pytest.mark.parametrize("ans,first", [
    (answer(500), "mysql.auth"),
    (answer(503), "mysql.auth"),
    (answer(404), "istio.virtualservice"),
    (answer(200, b"<html>", "text/html"), "istio.virtualservice"),
    (app.Answer(URL, error=ConnectionRefusedError(111, "refused")), "istio.ingress"),
    (app.Answer(URL, error=socket.timeout("timed out")), "istio.ingress"),
    (app.Answer(URL, error=ConnectionResetError(104, "reset")), "tls.secret"),
    (app.Answer(URL, error=ssl.SSLCertVerificationError("verify failed")), "tls.secret"),
])
def test_cause_group_depends_on_what_failed(ans: app.Answer, first: str) -> None:
    assert app.cause_group(ans)[0][0] == first


@pytest.mark.parametrize("check_id,password,kubeconfig,expected", [
    ("mysql.auth", True, False, True),
    ("mysql.auth", False, True, False),
    ("rabbitmq.auth", False, True, False),
    ("pods.ready", True, False, False),
    ("istio.virtualservice", False, True, True),
    ("tls.secret", False, True, True),
])
def test_can_look(check_id: str, password: bool, kubeconfig: bool, expected: bool) -> None:
    assert app.can_look(check_id, lambda area: password, kubeconfig) is expected
