"""`sbops ecr install-refresher`: the unit files (verified with systemd-analyze when present) and the
systemctl calls (recorded: systemd does not run on this test machine, so nothing is enabled for real)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sbops import shipped
from sbops.cli import ecr as ecr_cli
from sbops.runner import CommandResult, RecordingRunner, succeeds


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.fixture
def units() -> dict[str, str]:
    return shipped.render_refresher_units(["/usr/local/bin/sbops"], config="/etc/sbops/config.yaml")


def test_unit_contents(units: dict[str, str]) -> None:
    service = parse(units["sbops-ecr-refresh.service"])
    timer = parse(units["sbops-ecr-refresh.timer"])
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"] == \
        "/usr/local/bin/sbops fix ecr-refresh --yes --config /etc/sbops/config.yaml"
    assert "network-online.target" in service["Unit"]["After"]
    assert timer["Timer"]["OnCalendar"] == "*-*-* 00/6:00:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["OnBootSec"] == "2min"
    assert timer["Timer"]["Unit"] == "sbops-ecr-refresh.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert "AWS_" not in units["sbops-ecr-refresh.service"]  # no credentials in unit files


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: scripts/setup installs the systemd package"
    for name, content in shipped.render_refresher_units([str(Path(shutil.which("true") or "/bin/true"))]).items():
        (tmp_path / name).write_text(content)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "sbops-ecr-refresh.timer"),
                           str(tmp_path / "sbops-ecr-refresh.service")], capture_output=True, text=True, timeout=60)
    # verify exits 0 on some problems (e.g. a bad OnCalendar is only logged): nothing may be printed either
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stderr


def test_install_writes_units_and_enables_timer(units: dict[str, str], tmp_path: Path) -> None:
    runner = RecordingRunner(responses=succeeds("systemctl"))
    assert shipped.install_refresher_units(runner, tmp_path, units) == []
    assert sorted(runner.files) == [str(tmp_path / "sbops-ecr-refresh.service"), str(tmp_path / "sbops-ecr-refresh.timer")]
    assert all(mode == 0o644 for _, mode in runner.writes)
    assert runner.commands == [("systemctl", "daemon-reload"), ("systemctl", "enable", "--now", "sbops-ecr-refresh.timer")]


def test_install_reports_systemctl_failure(units: dict[str, str], tmp_path: Path) -> None:
    runner = RecordingRunner(responses={"systemctl": CommandResult(("systemctl",), 1, "", "System has not been booted with systemd")})
    problems = shipped.install_refresher_units(runner, tmp_path, units)
    assert problems == ["systemctl daemon-reload: System has not been booted with systemd"]
    assert runner.commands == [("systemctl", "daemon-reload")]


def test_cli_dry_run_prints_units_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(ecr_cli.ecr_app, ["install-refresher", "--dry-run", "--unit-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "[Timer]" in result.output and "ExecStart=" in result.output and "dry run" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_install_uses_unit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = RecordingRunner(responses=succeeds("systemctl"))
    monkeypatch.setattr("sbops.runner.SubprocessRunner", lambda: runner)
    result = CliRunner().invoke(ecr_cli.ecr_app, ["install-refresher", "--unit-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "sbops-ecr-refresh.timer") in runner.files
    assert ("systemctl", "enable", "--now", "sbops-ecr-refresh.timer") in runner.commands
