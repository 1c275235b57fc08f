"""Outcomes -> metric families (pure), the scrape deadline, and the naming rules of the Prometheus guides."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sbops.exporter.collect import CheckRun, LayerRun, Scrape, scrape_deadline
from sbops.exporter.metrics import HELM_STATUSES, REASONS, check_families, exporter_families
from sbops.model import Reason, Result, Status, fail, ok, skip, warn
from sbops.probes.pods import WAITING_REASONS
from sbops.registry import LAYERS, load_all

REGISTRY = load_all()
NOW = 1_800_000_000.0


def run(check_id: str, result: Result, duration: float = 0.25) -> CheckRun:
    return CheckRun(REGISTRY.checks[check_id], result, duration, NOW)


def scrape(*runs: CheckRun, success: bool = True, timeout: float = 9.5) -> Scrape:
    layers: dict[str, list[CheckRun]] = {}
    for item in runs:
        layers.setdefault(item.check.layer, []).append(item)
    return Scrape(tuple(LayerRun(layer, tuple(items), 0.5, success) for layer, items in layers.items()), timeout)


def render(families) -> dict[tuple[str, frozenset], float]:
    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def labels(**kv: str) -> frozenset:
    return frozenset(kv.items())


@pytest.mark.parametrize("result, expected", [
    (ok("fine"), 1.0),
    (warn(Reason.DEGRADED, "small"), 1.0),
    (fail(Reason.REFUSED, "down"), 0.0),
    (Result(Status.ERROR, Reason.TIMEOUT, "not run"), 0.0),
    (skip(Reason.BLOCKED, "blocked by mysql.reachable"), None),
])
def test_check_success_is_1_for_ok_and_warn_0_for_fail_and_error_absent_when_skipped(result, expected):
    samples = render(check_families(scrape(run("mysql.auth", result)), {}))
    assert samples.get(("sbops_check_success", labels(layer="mysql", check="mysql.auth"))) == expected
    states = {dict(k)["reason"]: v for (n, k), v in samples.items() if n == "sbops_check_failure_reason"}
    assert set(states) == set(REASONS) and sum(states.values()) == 1 and states[result.reason.value] == 1
    assert samples[("sbops_check_info", labels(layer="mysql", check="mysql.auth", severity="critical"))] == 1
    assert samples[("sbops_check_duration_seconds", labels(layer="mysql", check="mysql.auth"))] == 0.25
    assert samples[("sbops_check_last_run_timestamp_seconds", labels(layer="mysql", check="mysql.auth"))] == NOW


def test_check_finding_carries_the_code_of_the_current_result_from_the_catalog():
    from sbops.messages import CATALOG
    from sbops.messages import host as host_messages

    short = host_messages.BELOW_MINIMUMS.result(short="2 vCPUs < 8")
    good = host_messages.LISTENING.result(services="mysql")
    samples = render(check_families(scrape(run("host.resources", short), run("host.listeners", good),
                                           run("mysql.auth", fail(Reason.REFUSED, "no code yet"))), {}))
    findings = {dict(k)["check"]: (dict(k)["code"], v) for (n, k), v in samples.items() if n == "sbops_check_finding"}
    assert findings == {"host.resources": ("SB1002", 1.0), "host.listeners": ("SB1010", 1.0)}  # no code: no sample
    assert {code for code, _ in findings.values()} <= set(CATALOG.messages)


def test_collector_and_deadline_series():
    samples = render(check_families(scrape(run("nfs.export", ok("x")), success=False, timeout=2.5), {}))
    assert samples[("sbops_scrape_collector_success", labels(layer="nfs"))] == 0
    assert samples[("sbops_scrape_collector_duration_seconds", labels(layer="nfs"))] == 0.5
    assert samples[("sbops_probe_timeout_seconds", labels())] == 2.5


def test_expiry_series_come_from_the_results_expires_at():
    when = datetime(2027, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ecr = Result(Status.WARN, Reason.EXPIRING, "soon", {}, expires_at=when)
    tls = Result(Status.FAIL, Reason.EXPIRED, "gone", {}, expires_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    samples = render(check_families(scrape(run("ecr.expiry", ecr), run("tls.certificate", tls)), {}))
    assert samples[("sbops_ecr_pull_secret_expiry_timestamp_seconds", labels())] == when.timestamp()
    assert samples[("sbops_tls_cert_expiry_timestamp_seconds", labels())] == datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    blocked = render(check_families(scrape(run("ecr.expiry", skip(Reason.BLOCKED, "blocked by ecr.secret"))), {}))
    assert not [k for k in blocked if k[0].startswith("sbops_ecr_pull_secret")], "no expiry known: no sample"


def test_pod_series_from_the_evidence():
    waiting = dict.fromkeys(WAITING_REASONS, 0) | {"ImagePullBackOff": 2}
    result = fail(Reason.IMAGE_PULL, "2 pods", namespace="sb-apps", pods=10, desired=10, ready=8, waiting=waiting,
                  not_ready=[])
    samples = render(check_families(scrape(run("pods.ready", result)), {}))
    assert samples[("sbops_pods_ready", labels())] == 8 and samples[("sbops_pods_desired", labels())] == 10
    assert {dict(k)["reason"]: v for (n, k), v in samples.items() if n == "sbops_pods_waiting"} == waiting
    api_down = render(check_families(scrape(run("pods.ready", fail(Reason.REFUSED, "no API", error="x"))), {}))
    assert not [k for k in api_down if k[0].startswith("sbops_pods_")]


@pytest.mark.parametrize("result, current", [
    (ok("deployed", status="deployed", revision=3), "deployed"),
    (fail(Reason.STUCK, "stuck", status="pending-upgrade"), "pending-upgrade"),
    (fail(Reason.MISCONFIGURED, "odd", status="something-new"), "unknown"),
    (fail(Reason.MISSING, "no release", release="stackbill", namespace="sb-apps"), None),  # all 0
])
def test_helm_status_state_set(result, current):
    samples = render(check_families(scrape(run("helm.release", result)), {}))
    states = {dict(k)["status"]: v for (n, k), v in samples.items() if n == "sbops_helm_release_status"}
    assert set(states) == set(HELM_STATUSES)
    assert {s for s, v in states.items() if v == 1} == ({current} if current else set())


def test_helm_status_absent_when_the_release_could_not_be_read():
    samples = render(check_families(scrape(run("helm.release", fail(Reason.ACCESS_DENIED, "403", error="HTTP 403"))), {}))
    assert not [k for k in samples if k[0] == "sbops_helm_release_status"]


def test_help_says_which_results_are_cached():
    families = check_families(scrape(run("helm.release", ok("x", status="deployed"))), {"helm.release": 60})
    helps = {f.name: f.documentation for f in families}
    assert "helm.release (60 s)" in helps["sbops_check_last_run_timestamp_seconds"]
    assert REGISTRY.checks["helm.release"].cache_seconds == 60


def test_names_units_and_label_values_follow_the_guides():
    """Every family: sbops_ prefix, snake_case, base units; every label value from a fixed list."""
    runs = [run(cid, ok("fine", status="deployed", ready=1, desired=1, waiting={}), 0.1) for cid in REGISTRY.checks]
    families = check_families(scrape(*runs), {}) + exporter_families({"scrape": 1})
    fixed = {"layer": set(LAYERS), "check": set(REGISTRY.checks), "reason": set(REASONS) | set(WAITING_REASONS),
             "severity": {"critical", "warning", "info"}, "status": set(HELM_STATUSES),
             "kind": {"check_crashed", "collector", "credentials", "scrape", "web_config"}}
    for family in families:
        assert re.fullmatch(r"sbops_[a-z_]+", family.name), family.name
        assert family.documentation and family.type in ("gauge", "counter")
        if "time" in family.name or "duration" in family.name or "timeout" in family.name:
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            for key, val in sample.labels.items():
                if key in fixed:
                    assert val in fixed[key], (family.name, key, val)
                else:
                    assert family.name == "sbops_build_info" and key in ("version", "pythonversion")
    assert any(f.type == "counter" and f.name == "sbops_exporter_errors" for f in families)


@pytest.mark.parametrize("header, expected", [
    (None, 10.0),             # no header: the configured cap
    ("15", 10.0),             # capped
    ("5", 4.5),               # minus the offset
    ("0.3", 0.1),             # never below the minimum
    ("banana", 10.0),         # ignored
    ("-4", 10.0),
    ("nan", 10.0),
])
def test_scrape_deadline(header, expected):
    assert scrape_deadline(header, 0.5, 10.0) == pytest.approx(expected)
