"""The cloudstack layer's pure parts, from tables: mode, API URL, the three judgements, published ports, and the
credentials file's CloudStack sections."""

from __future__ import annotations

import pytest

from dataclasses import replace

from sbops import credentials as c
from sbops.credentials import CloudStack
from sbops.model import Reason
from sbops.probes import cloudstack as cs
from sbops.secret import Secret


@pytest.mark.parametrize("setting, section, simulator, url, expected", [
    ("auto", True, True, "", "simulator"),
    ("auto", True, False, "", "existing"),
    ("auto", False, False, "http://cs:8080/client", "existing"),
    ("auto", False, False, "", "none"),
    ("none", True, True, "http://cs:8080/client", "none"),
    ("simulator", False, False, "", "simulator"),
])
def test_effective_mode(setting, section, simulator, url, expected):
    assert cs.effective_mode(setting, section, simulator, url) == expected


@pytest.mark.parametrize("url, api", [
    ("http://10.0.0.5:8080/client", "http://10.0.0.5:8080/client/api"),
    ("http://10.0.0.5:8080/client/", "http://10.0.0.5:8080/client/api"),
    ("http://10.0.0.5:8080/client/api", "http://10.0.0.5:8080/client/api"),
])
def test_api_url(url, api):
    assert cs.api_url(url) == api


def body(status, value, command="listcapabilities"):
    return cs.Answer(status, {f"{command}response": value}, "application/json", 1000.0, 1000.0)


UNAUTH = {"errorcode": 401, "errortext": "unable to verify user credentials and/or request signature"}
URL = "http://cs:8080/client"


@pytest.mark.parametrize("mode, url, answer, code, reason", [
    ("none", "", None, "SB8002", Reason.NOT_APPLICABLE),
    ("existing", "", None, "SB8003", Reason.MISCONFIGURED),
    ("simulator", URL, cs.Answer(error="ConnectionError: refused", reason=Reason.REFUSED), "SB8004", Reason.REFUSED),
    ("simulator", URL, cs.Answer(error="ReadTimeout", reason=Reason.TIMEOUT), "SB8004", Reason.TIMEOUT),
    ("existing", URL, cs.Answer(404, None, "text/html"), "SB8005", Reason.MISCONFIGURED),
    ("existing", URL, cs.Answer(200, {"a": 1, "b": 2}, "application/json"), "SB8005", Reason.MISCONFIGURED),
    ("existing", URL, body(200, {"capability": {"cloudstackversion": "4.19.0"}}), "SB8001", Reason.NONE),
    ("existing", URL, body(401, UNAUTH), "SB8001", Reason.NONE),
])
def test_judge_reachable(mode, url, answer, code, reason):
    result = cs.judge_reachable(mode, url, answer)
    assert (result.code, result.reason) == (code, reason)
    assert bool(result.causes) == (mode == "simulator" and code == "SB8004")


ENABLED = {"username": "sb-admin@p.test", "account": "admin", "state": "enabled"}
DISABLED = {**ENABLED, "state": "disabled"}
ACCOUNT_DISABLED = {**ENABLED, "accountstate": "disabled"}
SKEWED = cs.Answer(401, {"listcapabilitiesresponse": UNAUTH}, "application/json", 5000.0, 1000.0)


@pytest.mark.parametrize("has_key, has_secret, answer, lookup, code, reason", [
    (False, True, None, None, "SB8011", Reason.MISSING),
    (True, False, None, None, "SB8011", Reason.MISSING),
    (True, True, cs.Answer(error="refused", reason=Reason.REFUSED), None, "SB8012", Reason.REFUSED),
    (True, True, body(200, {"capability": {}}), None, "SB8010", Reason.NONE),
    (True, True, SKEWED, cs.Lookup(True, user=ENABLED), "SB8016", Reason.MISCONFIGURED),
    (True, True, body(401, UNAUTH), cs.Lookup(False, "no admin login"), "SB8017", Reason.AUTH_FAILED),
    (True, True, body(401, UNAUTH), None, "SB8017", Reason.AUTH_FAILED),
    (True, True, body(401, UNAUTH), cs.Lookup(True, user=None), "SB8014", Reason.MISSING),
    (True, True, body(401, UNAUTH), cs.Lookup(True, user=DISABLED), "SB8015", Reason.ACCESS_DENIED),
    (True, True, body(401, UNAUTH), cs.Lookup(True, user=ACCOUNT_DISABLED), "SB8015", Reason.ACCESS_DENIED),
    (True, True, body(401, UNAUTH), cs.Lookup(True, user=ENABLED), "SB8013", Reason.AUTH_FAILED),
    (True, True, body(432, {"errorcode": 432, "errortext": "not available"}), None, "SB8018", Reason.MISCONFIGURED),
])
def test_judge_keys(has_key, has_secret, answer, lookup, code, reason):
    result = cs.judge_keys("existing", URL, has_key, has_secret, answer, lookup, 600.0)
    assert (result.code, result.reason) == (code, reason)


def test_a_server_clock_behind_is_not_skew_for_expiry():
    """A server behind this host's clock accepts requests that expire later: a 401 then is about the keys."""
    behind = cs.Answer(401, {"listcapabilitiesresponse": UNAUTH}, "application/json", 0.0, 5000.0)
    assert cs.judge_keys("existing", URL, True, True, behind, cs.Lookup(True, user=None), 600.0).code == "SB8014"


def inspect(running=True, ports=(("8080", "5050"),), status="running", exit_code=0):
    return {"State": {"Running": running, "Status": status, "ExitCode": exit_code},
            "HostConfig": {"PortBindings": {f"{c}/tcp": [{"HostIp": "", "HostPort": h}] for h, c in ports}}}


@pytest.mark.parametrize("mode, doc, error, code, reason", [
    ("existing", None, "", "SB8031", Reason.NOT_APPLICABLE),
    ("simulator", None, "podman: not found", "SB8032", Reason.NO_ACCESS),
    ("simulator", None, "", "SB8033", Reason.MISSING),
    ("simulator", inspect(False, status="exited", exit_code=137), "", "SB8034", Reason.NOT_RUNNING),
    ("simulator", inspect(ports=(("9090", "5050"),)), "", "SB8035", Reason.MISCONFIGURED),
    ("simulator", inspect(ports=()), "", "SB8035", Reason.MISCONFIGURED),
    ("simulator", inspect(), "", "SB8030", Reason.NONE),
])
def test_judge_container(mode, doc, error, code, reason):
    result = cs.judge_container(mode, "cloudstack-simulator", doc, error, 8080, 5050)
    assert (result.code, result.reason) == (code, reason)


BASE = """============================================================
STACKBILL POC CREDENTIALS
Generated: Thu Nov 26 10:00:00 UTC 2026
============================================================

PORTAL URL: https://portal.test

SERVER IP: 10.0.0.5

MYSQL:
  Host: 10.0.0.5
  Port: 3306
  Database: stackbill
  Username: stackbill
  Password: My12Sq34Lp56Ab78

MONGODB:
  Host: 10.0.0.5
  Port: 27017
  Database: admin
  Username: stackbill
  Password: Mo12Ng34Od56Bb78

RABBITMQ:
  Host: 10.0.0.5
  Port: 5672
  Username: stackbill
  Password: Ra12Bb34It56Mq78
  Management: http://10.0.0.5:15672

NFS:
  Server: 10.0.0.5
  Path: /data/stackbill

============================================================
"""


@pytest.mark.parametrize("simulator", [True, False])
def test_a_cloudstack_section_is_added_to_a_file_without_one_and_read_back(simulator):
    section = CloudStack(url="http://10.0.0.5:8080/client", admin_user="admin" if simulator else "",
                         admin_password=Secret("password") if simulator else None, username="sb-admin@portal.test",
                         password=Secret("Us12Er34Pa56Ss78") if simulator else None,
                         api_key=Secret("Ak12Ak34Ak56Ak78Ak90"), secret_key=Secret("Sk12Sk34Sk56Sk78Sk90"),
                         simulator=simulator)
    text = c.render(replace(c.parse(BASE, "/x"), cloudstack=section))
    assert text.startswith(BASE.rsplit("=" * 60, 1)[0])  # the rest of the file is untouched
    assert text.rstrip().endswith("=" * 60)
    back = c.parse(text, "/x")
    assert back.cloudstack == section
    assert ("CLOUDSTACK SIMULATOR:" in text) is simulator and ("Default Admin" in text) is simulator
    assert c.render(back) == text
    values = c.settings_values(back)
    assert values["cloudstack.secret_key"][0] == "Sk12Sk34Sk56Sk78Sk90"
    assert values["cloudstack.url"][0] == "http://10.0.0.5:8080/client"
