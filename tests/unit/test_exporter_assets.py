"""The shipped monitoring assets: promtool checks and unit-tests the rules, the dashboard is well formed and
its PromQL parses, the CLI prints exactly the shipped files, and pyproject installs them with the package.
promtool comes from scripts/get-promtool; a missing promtool fails these tests (never a skip)."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from sbops.shipped import EXPORTER_UNIT_FILE as UNIT_FILE, MONITORING_FILES
from sbops.registry import LAYERS
from tests.lab.env import REPO
from tests.lab.exporter import run_promtool

MONITORING = REPO / "monitoring"
ALERTS = yaml.safe_load((MONITORING / "alerts.yml").read_text())
DASHBOARD = json.loads((MONITORING / "dashboard.json").read_text())


def rules() -> list[dict]:
    return [rule for group in ALERTS["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    check = run_promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_promtool_unit_tests_pass():
    result = run_promtool("test", "rules", str(MONITORING / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_for_severity_summary_description_and_runbook():
    names = {rule["alert"] for rule in rules()}
    assert {"SbopsCheckFailing", "SbopsEcrPullSecretExpiringSoon", "SbopsTlsCertificateExpiringSoon",
            "SbopsPodsNotReady", "SbopsHelmReleaseNotDeployed", "SbopsExporterDown"} <= names
    for rule in rules():
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"], rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        url = notes["runbook_url"]
        assert url.startswith("https://github.com/sbops/sbops/blob/main/"), url
        page = url.split("/blob/main/")[1].split("#")[0]
        if "{{" not in page:
            assert (REPO / page).is_file(), page


def test_the_unit_tests_cover_every_alert_firing_and_not_firing():
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    evals = [e for t in tests for e in t["alert_rule_test"]]
    for rule in rules():
        mine = [e for e in evals if e["alertname"] == rule["alert"]]
        assert any(e["exp_alerts"] for e in mine), f"{rule['alert']} never shown firing"
        assert any(not e["exp_alerts"] for e in mine), f"{rule['alert']} never shown not firing"


def test_dashboard_shape():
    assert DASHBOARD["uid"] == "sbops-overview"
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    exprs = [(p["title"], t["expr"]) for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    for layer in LAYERS:
        assert any(f'layer="{layer}"' in expr for _, expr in exprs), f"no panel for layer {layer}"
    assert any("sbops_ecr_pull_secret_expiry_timestamp_seconds" in e and "time()" in e for _, e in exprs)
    assert any("sbops_tls_cert_expiry_timestamp_seconds" in e and "time()" in e for _, e in exprs)
    assert any("Failing checks" in title and "sbops_check_failure_reason" in e for title, e in exprs)
    assert all('instance=~"$instance"' in e for _, e in exprs), "every query follows the instance variable"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path):
    """promtool parses each expression (Grafana's variables replaced) as a recording rule."""
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    group = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": e.replace("$instance", ".*").replace("$__rate_interval", "5m")}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(group))
    check = run_promtool("check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def sbops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sbops", *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_cli_prints_the_shipped_files():
    for args, path in ((("print-rules",), MONITORING / "alerts.yml"), (("print-rules", "--test"), MONITORING / "alerts_test.yml"),
                       (("print-dashboard",), MONITORING / "dashboard.json"),
                       (("print-unit",), REPO / "deploy" / UNIT_FILE[0] / UNIT_FILE[1])):
        proc = sbops("exporter", *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == path.read_text()
    helped = sbops("exporter", "--help")
    assert "Example: sbops exporter" in helped.stdout


def test_pyproject_installs_the_assets_like_the_runbooks():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert data["share/sbops/monitoring"] == [f"monitoring/{name}" for name in MONITORING_FILES.values()]
    # the exporter's unit, and the database host's agent (sbops install --role database-host)
    assert data["share/sbops/deploy/systemd"] == [f"deploy/systemd/{UNIT_FILE[1]}", "deploy/systemd/sbops-agent.service"]
    assert "bcrypt" in " ".join(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def test_systemd_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((REPO / "deploy" / UNIT_FILE[0] / UNIT_FILE[1]).read_text())
    assert unit["Service"]["ExecStart"].split()[1:] == ["exporter"]
    assert unit["Service"]["ExecStart"].split()[0].endswith("/sbops")
    assert unit["Service"]["RestartPreventExitStatus"] == "2"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
