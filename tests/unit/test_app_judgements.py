"""Pure app judgements from tables: HTTP answers and errors to reasons, and which checks could explain them."""

from __future__ import annotations

import socket
import ssl

import pytest

from sbops.model import Reason, Status
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
    (answer(200, b'{"a": 1}'), ("SB7001", Status.OK, Reason.NONE)),
    (answer(200, b"<html></html>", "text/html"), ("SB7003", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(200, b""), ("SB7003", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(404, b"no Route matched"), ("SB7004", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(401), ("SB7004", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(301, location="https://x/"), ("SB7004", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(500), ("SB7004", Status.FAIL, Reason.DEGRADED)),
    (answer(503, b"no healthy upstream"), ("SB7004", Status.FAIL, Reason.DEGRADED)),
    (app.Answer(URL, error=ConnectionRefusedError(111, "refused")), ("SB7002", Status.FAIL, Reason.REFUSED)),
    (app.Answer(URL, error=socket.timeout("timed out")), ("SB7002", Status.FAIL, Reason.TIMEOUT)),
    (app.Answer(URL, error=ConnectionResetError(104, "reset")), ("SB7002", Status.FAIL, Reason.MISCONFIGURED)),
    (app.Answer(URL, error=ssl.SSLCertVerificationError("verify failed")), ("SB7002", Status.FAIL, Reason.MISCONFIGURED)),
    (app.Answer(URL, error=socket.gaierror(-2, "Name or service not known")), ("SB7002", Status.FAIL, Reason.UNREACHABLE)),
])
def test_judge_cloudconfiguration(ans: app.Answer, expected: tuple) -> None:
    result = app.judge_cloudconfiguration(ans)
    assert (result.code, result.status, result.reason) == expected


@pytest.mark.parametrize("ans,expected", [
    (answer(200, b"<html>", "text/html"), ("SB7010", Status.OK, Reason.NONE)),
    (answer(302, location="/portal/"), ("SB7010", Status.OK, Reason.NONE)),
    (answer(404), ("SB7012", Status.FAIL, Reason.MISCONFIGURED)),
    (answer(502), ("SB7012", Status.FAIL, Reason.DEGRADED)),
    (app.Answer(URL, error=ConnectionRefusedError(111, "refused")), ("SB7011", Status.FAIL, Reason.REFUSED)),
])
def test_judge_portal(ans: app.Answer, expected: tuple) -> None:
    result = app.judge_portal(ans)
    assert (result.code, result.status, result.reason) == expected


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


def test_a_failed_judgement_carries_its_causes_and_a_passing_one_none() -> None:
    failed = app.judge_with_causes(answer(500), app.judge_cloudconfiguration)
    assert failed.status is Status.FAIL and failed.causes == app.CAUSES
    passing = app.judge_with_causes(answer(200, b"{}"), app.judge_cloudconfiguration)
    assert passing.status is Status.OK and passing.causes == ()


def test_related_covers_every_cause_group() -> None:
    for group in (app.CAUSES, app.ROUTING_CAUSES, app.NETWORK_CAUSES, app.TLS_CAUSES):
        assert {cid for cid, _ in group} <= set(app.RELATED)
