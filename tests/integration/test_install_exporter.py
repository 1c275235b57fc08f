"""The installer's exporter step.

What is recorded, not run (no systemd on a test machine): systemctl is-active/is-enabled/daemon-reload/
enable --now/restart, through runner.RecordingRunner; the unit file is really written (to a temp unit_dir).
What is real: the shipped unit file, and a real `sbops exporter` process that the serving resource probes
over HTTP (and no process at all, for the failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sbops.install import flow, monitoring, steps as st
from sbops.install.command import build_run, load_settings
from sbops.install.run import Options, Reporter, Run
from sbops.runner import CommandResult, RecordingRunner
from tests.lab.common import free_port, private_home  # noqa: F401 - a fixture
from tests.lab.env import REPO, LabEnv

# The recording runner and the installer never see the machine's real home or ~/.kube/config.
pytestmark = pytest.mark.usefixtures("private_home")

UNIT = "sbops-exporter.service"


def make_run(tmp_path: Path, runner: RecordingRunner, listen: str, **settings: object) -> Run:
    env = LabEnv(tmp_path / "env").installer()
    env.set("install.exporter", True).set("exporter.listen", listen)
    for key, value in settings.items():
        env.set(key, value)
    env.write()
    options = Options(config=str(env.config_path), credentials=str(env.credentials_path))
    return build_run(options, load_settings(options), runner=runner, fetcher=None, reporter=Reporter(), env={}, ask=None)


def systemd(state: dict[str, str]):
    """systemctl as a dict: enable --now makes the unit enabled and active."""
    def answer(argv: tuple[str, ...]) -> CommandResult:
        verb = argv[1]
        if verb == "is-active":
            return CommandResult(argv, 0 if state["active"] == "active" else 3, state["active"] + "\n", "")
        if verb == "is-enabled":
            return CommandResult(argv, 0 if state["enabled"] == "enabled" else 1, state["enabled"] + "\n", "")
        if verb == "enable":
            state.update(active="active", enabled="enabled")
        return CommandResult(argv, 0, "", "")

    return answer


def unit_only() -> st.Step:
    return st.Step("exporter", "exporter", st.FINAL, (monitoring.STEPS["exporter"].resources[0],))


def run_one(run: Run, item: st.Step) -> st.StepOutcome:
    [outcome] = flow.run_install(run, [item], {item.name: ""}, plan_only=False)
    return outcome


def test_unit_is_written_enabled_then_left_alone(tmp_path: Path) -> None:
    state = {"active": "inactive", "enabled": "not-found"}
    runner = RecordingRunner(responses={"systemctl": systemd(state)})
    run = make_run(tmp_path, runner, "127.0.0.1:29100")
    first = run_one(run, unit_only())
    assert first.status == st.CHANGED, first.error
    changing = [list(c) for c in runner.commands if c[1] not in ("is-active", "is-enabled")]
    assert changing == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT]]
    path = Path(str(run.settings["install.unit_dir"])) / UNIT
    written = runner.files[str(path)]
    assert f"exporter --config {run.options.config}" in written.splitlines()[
        [i for i, line in enumerate(written.splitlines()) if line.startswith("ExecStart=")][0]]
    assert "RestartPreventExitStatus=2" in written  # the rest is the shipped unit
    runner.commands.clear()
    again = run_one(run, unit_only())
    assert again.status == st.UNCHANGED
    assert "installed as wanted, enabled and running" in again.resources[0].plan.nothing_to_do
    assert all(c[1] in ("is-active", "is-enabled") for c in runner.commands)


def test_a_changed_unit_is_rewritten_and_the_running_exporter_restarted(tmp_path: Path) -> None:
    state = {"active": "active", "enabled": "enabled"}
    runner = RecordingRunner(responses={"systemctl": systemd(state)})
    run = make_run(tmp_path, runner, "127.0.0.1:29100")
    path = Path(str(run.settings["install.unit_dir"])) / UNIT
    runner.files[str(path)] = "[Service]\nExecStart=/old/sbops exporter\n"
    outcome = run_one(run, unit_only())
    assert outcome.status == st.CHANGED, outcome.error
    changing = [list(c) for c in runner.commands if c[1] not in ("is-active", "is-enabled")]
    assert changing == [["systemctl", "daemon-reload"], ["systemctl", "restart", UNIT]]


def test_not_wanted_changes_nothing(tmp_path: Path) -> None:
    runner = RecordingRunner()
    run = make_run(tmp_path, runner, "127.0.0.1:29100", **{"install.exporter": False})
    outcome = run_one(run, monitoring.STEPS["exporter"])
    assert outcome.status == st.UNCHANGED
    assert [r.plan.nothing_to_do.split(":")[0] for r in outcome.resources] == [
        "the exporter is not wanted (setting install.exporter is off)", "the exporter is not wanted (setting install.exporter is off)"]
    assert runner.commands == [] and runner.writes == []


def test_a_failing_systemctl_fails_the_step_naming_it(tmp_path: Path) -> None:
    def refuse(argv: tuple[str, ...]) -> CommandResult:
        if argv[1] == "enable":
            return CommandResult(argv, 1, "", "Failed to enable unit: Unit file sbops-exporter.service does not exist.")
        if argv[1] in ("is-active", "is-enabled"):
            return CommandResult(argv, 3, "inactive\n", "")
        return CommandResult(argv, 0, "", "")

    run = make_run(tmp_path, RecordingRunner(responses={"systemctl": refuse}), "127.0.0.1:29100")
    outcome = run_one(run, unit_only())
    assert outcome.status == st.FAILED
    assert "systemctl enable --now sbops-exporter.service: Failed to enable unit" in outcome.error


@pytest.fixture
def exporter(tmp_path: Path):
    """A real `sbops exporter` on a free port (no backends needed: /-/healthy runs no check)."""
    port = free_port()
    env = LabEnv(tmp_path / "served")
    env.write()
    proc = subprocess.Popen([sys.executable, "-m", "sbops", "exporter", "--listen", f"127.0.0.1:{port}",
                             "--config", str(env.config_path), "--credentials", str(env.credentials_path)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 30
    while not monitoring.healthy(f"127.0.0.1:{port}", 1.0)[0]:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < end, "the exporter did not start"
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_serving_exporter_is_nothing_to_do(tmp_path: Path, exporter: str) -> None:
    run = make_run(tmp_path, RecordingRunner(), exporter)
    plan = monitoring.plan_serving(run, run.context())
    assert plan.empty and plan.nothing_to_do == f"the exporter answers at {exporter} (HTTP 200)"


def test_an_exporter_that_never_answers_fails_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitoring, "SERVING_WAIT", 1.0)  # the real wait is 20 s; the logic is the same
    listen = f"127.0.0.1:{free_port()}"
    run = make_run(tmp_path, RecordingRunner(), listen)
    plan = monitoring.plan_serving(run, run.context())
    [change] = plan.changes
    assert change.description.startswith(f"wait up to 1s for the exporter to answer at {listen} (HTTP GET /-/healthy; now: ")
    with pytest.raises(RuntimeError, match=f"the exporter does not answer at {listen} after 1s"):
        change.apply()
