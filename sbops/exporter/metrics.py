"""Check outcomes as Prometheus metric families: pure functions of a Scrape, tested from tables.

Naming follows Prometheus's "Metric and label naming" and "Writing exporters" guides: the `sbops_` prefix,
base units in the name (`_seconds`, `_timestamp_seconds`), enumerations as one 0/1 series per state
(`reason`, `status`) rather than a changing label, and labels only from fixed lists (layers, check ids,
Reason, Severity, the findings catalog's codes, Kubernetes waiting reasons, Helm statuses) — never error
text, addresses or secrets. The finding's code is the one exception to the state-set rule: one series with
the current code (a check has several codes of its own plus the engine's; a state set over all of them would
multiply the series for no query that needs the zeros).
Evidence comes from the checks' own results (`details`, `expires_at`): nothing is probed again here.
"""

from __future__ import annotations

import platform
from typing import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sbops import __version__
from sbops.exporter.collect import CheckRun, Scrape
from sbops.model import Reason, Status
from sbops.probes.pods import WAITING_REASONS

REASONS = tuple(r.value for r in Reason)
# Helm 3's release statuses (helm.sh/helm/v3/pkg/release/status.go).
HELM_STATUSES = ("unknown", "deployed", "uninstalled", "superseded", "failed", "uninstalling",
                 "pending-install", "pending-upgrade", "pending-rollback")
ECR_EXPIRY_CHECK = "ecr.expiry"
TLS_CERT_CHECK = "tls.certificate"
PODS_CHECK = "pods.ready"
HELM_CHECK = "helm.release"


def check_families(scrape: Scrape, cached: dict[str, float]) -> list[Metric]:
    """Per-check series, per-layer collector series and the evidence-derived series of one scrape.
    `cached` maps check ids to the seconds their results are reused (named in HELP texts)."""
    cache_note = (" Results of " + ", ".join(f"{cid} ({seconds:g} s)" for cid, seconds in sorted(cached.items()))
                  + " are reused for that long: their probe is costly or rate-limited.") if cached else ""
    success = GaugeMetricFamily(
        "sbops_check_success",
        "1 when the check passed (ok or warn), 0 when it failed or could not run (fail, error); "
        "no sample when it was skipped (see sbops_check_failure_reason).", labels=["layer", "check"])
    reason = GaugeMetricFamily(
        "sbops_check_failure_reason",
        "The reason of the check's result, one series per reason of the fixed list (1 for the current one); "
        "none when it passed.", labels=["layer", "check", "reason"])
    finding = GaugeMetricFamily(
        "sbops_check_finding",
        "The code of the check's current finding, from sbops's fixed catalog (runbooks/<check>.md, heading "
        "'### <code> <Name>'), always 1; the code label changes with the finding, passing ones included.",
        labels=["layer", "check", "code"])
    duration = GaugeMetricFamily(
        "sbops_check_duration_seconds", "Seconds the check's last execution took." + cache_note,
        labels=["layer", "check"])
    last_run = GaugeMetricFamily(
        "sbops_check_last_run_timestamp_seconds",
        "Unix time the check's result was produced." + cache_note, labels=["layer", "check"])
    info = GaugeMetricFamily(
        "sbops_check_info", "The checks of this scrape, with their severity (join on layer and check).",
        labels=["layer", "check", "severity"])
    collector_success = GaugeMetricFamily(
        "sbops_scrape_collector_success",
        "1 when sbops evaluated every check of the layer, 0 when sbops itself failed (a bug, not a finding).",
        labels=["layer"])
    collector_duration = GaugeMetricFamily(
        "sbops_scrape_collector_duration_seconds", "Seconds the layer's checks took in this scrape.",
        labels=["layer"])
    timeout = GaugeMetricFamily(
        "sbops_probe_timeout_seconds",
        "The deadline this scrape ran with: Prometheus's scrape timeout minus the offset, capped by the "
        "exporter's timeout.")
    timeout.add_metric([], scrape.timeout)
    runs: list[CheckRun] = []
    for layer in scrape.layers:
        collector_success.add_metric([layer.layer], 1.0 if layer.success else 0.0)
        collector_duration.add_metric([layer.layer], round(layer.duration, 6))
        for run in layer.checks:
            runs.append(run)
            labels = [layer.layer, run.check.id]
            status = run.result.status
            info.add_metric([*labels, run.check.severity.value], 1.0)
            if status is not Status.SKIP:
                success.add_metric(labels, 1.0 if status.passed else 0.0)
            for value in REASONS:
                reason.add_metric([*labels, value], 1.0 if run.result.reason.value == value else 0.0)
            if run.result.code:
                finding.add_metric([*labels, run.result.code], 1.0)
            duration.add_metric(labels, run.duration)
            last_run.add_metric(labels, round(run.finished_at, 3))
    families: list[Metric] = [success, reason, finding, duration, last_run, info, collector_success, collector_duration,
                              timeout]
    families += list(evidence_families(runs))
    return families


def evidence_families(runs: Iterable[CheckRun]) -> Iterator[Metric]:
    """Expiry times, pod counts and the Helm release status, from the results of the checks that saw them."""
    by_id = {run.check.id: run for run in runs}
    if ECR_EXPIRY_CHECK in by_id:
        yield expiry_family("sbops_ecr_pull_secret_expiry_timestamp_seconds",
                            "Unix time the ECR token in the image pull secret expires (read from the token, no AWS call).",
                            by_id[ECR_EXPIRY_CHECK])
    if TLS_CERT_CHECK in by_id:
        yield expiry_family("sbops_tls_cert_expiry_timestamp_seconds",
                            "Unix time the ingress gateway's TLS certificate (the Gateway's credentialName secret) expires.",
                            by_id[TLS_CERT_CHECK])
    if PODS_CHECK in by_id:
        yield from pod_families(by_id[PODS_CHECK])
    if HELM_CHECK in by_id:
        yield helm_family(by_id[HELM_CHECK])


def expiry_family(name: str, documentation: str, run: CheckRun) -> Metric:
    """The check's expires_at as a timestamp; no sample when the check could not tell."""
    family = GaugeMetricFamily(name, documentation)
    if run.result.expires_at is not None:
        family.add_metric([], run.result.expires_at.timestamp())
    return family


def pod_families(run: CheckRun) -> Iterator[Metric]:
    details = run.result.details
    ready = GaugeMetricFamily("sbops_pods_ready", "Pods in the StackBill namespace that are Ready.")
    desired = GaugeMetricFamily(
        "sbops_pods_desired", "Pods in the StackBill namespace that should be Ready (all but completed ones).")
    waiting = GaugeMetricFamily(
        "sbops_pods_waiting",
        "Pods in the StackBill namespace with a container waiting for this reason (other: any other reason).",
        labels=["reason"])
    if isinstance(details.get("ready"), int) and isinstance(details.get("desired"), int):
        ready.add_metric([], details["ready"])
        desired.add_metric([], details["desired"])
        counts = details.get("waiting") or {}
        for name in WAITING_REASONS:
            waiting.add_metric([name], int(counts.get(name, 0)))
    yield from (ready, desired, waiting)


def helm_family(run: CheckRun) -> Metric:
    """The latest revision's status as a state set; all 0 when there is no release, absent when unknown."""
    family = GaugeMetricFamily(
        "sbops_helm_release_status",
        "Status of the StackBill Helm release's latest revision, one series per Helm status (1 for the current "
        "one; all 0 when the release does not exist). Re-read once a minute.", labels=["status"])
    details = run.result.details
    current = details.get("status")
    if current is None and not (run.result.reason is Reason.MISSING and "error" not in details):
        return family  # the release could not be read: no samples rather than a false state
    if current is not None and current not in HELM_STATUSES:
        current = "unknown"
    for status in HELM_STATUSES:
        family.add_metric([status], 1.0 if status == current else 0.0)
    return family


def exporter_families(errors: dict[str, int]) -> list[Metric]:
    """The exporter's own series, on /metrics only."""
    build = GaugeMetricFamily("sbops_build_info", "sbops's version and Python's, always 1.",
                              labels=["version", "pythonversion"])
    build.add_metric([__version__, platform.python_version()], 1.0)
    counter = CounterMetricFamily(
        "sbops_exporter_errors", "Failures of the exporter itself (not the checks' findings), by kind: "
        "check_crashed (a check raised: a bug), collector (a layer could not be evaluated), "
        "credentials (the credentials file changed and does not parse; the last good copy is used), "
        "scrape (a request failed with 500), web_config (the web-config file changed and is invalid; the last "
        "good configuration is used).", labels=["kind"])
    for kind, count in sorted(errors.items()):
        counter.add_metric([kind], count)
    return [build, counter]
