"""The exporter step: `sbops exporter` as a systemd service, so the doctor's checks reach Prometheus from the
first boot of a new server instead of the day someone remembers to set it up.

The unit is the shipped deploy/systemd/sbops-exporter.service with its ExecStart pointed at this sbops
(and the install's --config); what to do about it is a pure decision over what was observed (the unit
file on disk, systemd's is-enabled/is-active), so a re-run changes nothing and says why.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sbops.diff import file_diff
from sbops.install.steps import FINAL, Resource, Step
from sbops.model import Change, Plan

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run
    from sbops.probes.system import UnitState

UNIT = "sbops-exporter.service"
SERVING_WAIT = 20.0  # seconds systemd and the exporter's imports may take before /-/healthy answers


def render_unit(shipped: str, sbops_argv: list[str], config: str = "") -> str:
    """Pure: the shipped unit with ExecStart running `sbops_argv exporter [--config FILE]`."""
    argv = [*sbops_argv, "exporter", *(["--config", config] if config else [])]
    lines = [f"ExecStart={shlex.join(argv)}" if line.startswith("ExecStart=") else line for line in shipped.splitlines()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class UnitActions:
    write: bool
    enable: bool  # systemctl enable --now (not enabled, or not running)
    restart: bool  # running with an older unit file

    @property
    def none(self) -> bool:
        return not (self.write or self.enable or self.restart)


def unit_actions(current: str | None, desired: str, state: "UnitState") -> UnitActions:
    """Pure: write the unit when it differs; enable --now when it is not enabled or not running; restart a
    running exporter whose unit file changed (systemd keeps running the old command line until then)."""
    write = current != desired
    running = state.active == "active"
    enable = state.enabled != "enabled" or not running
    return UnitActions(write, enable, write and running and not enable)


def wanted(run: "Run") -> str:
    """'' when the exporter should be installed, else why not."""
    if not run.options.exporter:
        return "--no-exporter"
    if not run.settings["install.exporter"]:
        return "setting install.exporter is off"
    return ""


def plan_unit(run: "Run", ctx: "Context") -> Plan:
    from sbops import shipped
    from sbops.probes import system

    why_not = wanted(run)
    if why_not:
        return Plan(nothing_to_do=f"the exporter is not wanted ({why_not}): `sbops exporter print-unit` prints "
                                  "its unit for a later install")
    path = Path(str(run.settings["install.unit_dir"])) / UNIT
    config = str(Path(run.options.config).resolve()) if run.options.config else ""
    desired = render_unit(shipped.exporter_unit_file().read_text(), shipped.default_sbops(), config)
    state = system.unit_state(run.runner, UNIT)
    actions = unit_actions(run.runner.read_file(path), desired, state)
    listen = run.settings["exporter.listen"]
    if actions.none:
        return Plan(nothing_to_do=f"{UNIT} is installed as wanted, enabled and running (serving {listen})")
    changes = []
    if actions.write:
        def write() -> None:
            run.runner.write_file(path, desired, 0o644)
            _systemctl(run, "daemon-reload")

        changes.append(Change(f"write {path} (`sbops exporter` on {listen})", ("systemctl daemon-reload",),
                              write, (file_diff(str(path), run.runner.read_file(path), desired),)))
    if actions.enable:
        changes.append(Change(f"enable and start {UNIT} (now {state.enabled}, {state.active})",
                              (f"systemctl enable --now {UNIT}",), lambda: _systemctl(run, "enable", "--now", UNIT)))
    if actions.restart:
        changes.append(Change(f"restart {UNIT} so it runs the new unit", (f"systemctl restart {UNIT}",),
                              lambda: _systemctl(run, "restart", UNIT)))
    return Plan(changes=tuple(changes))


def _systemctl(run: "Run", *args: str) -> None:
    result = run.runner.run(["systemctl", *args], timeout=60)
    if not result.ok:
        raise RuntimeError(f"systemctl {' '.join(args)}: {result.one_line_error()}")


def healthy(listen: str, timeout: float) -> tuple[bool, str]:
    """Whether the exporter answers GET /-/healthy at `listen` (HOST:PORT), over HTTP or HTTPS."""
    import http.client

    from sbops.probes.net import tls_context

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    error = ""
    for secure in (False, True):
        conn: http.client.HTTPConnection
        if secure:  # a liveness probe of our own service on this host: the certificate is not the question
            conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=tls_context(False))
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", "/-/healthy")
            status = conn.getresponse().status
            if status in (200, 401):  # 401: basic auth is on, and the exporter answers
                return True, f"HTTP {status}"
            error = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            error = str(exc) or type(exc).__name__
        finally:
            conn.close()
    return False, error


def plan_serving(run: "Run", ctx: "Context") -> Plan:
    why_not = wanted(run)
    listen = str(run.settings["exporter.listen"])
    if why_not:
        return Plan(nothing_to_do=f"the exporter is not wanted ({why_not})")
    up, how = healthy(listen, ctx.net_timeout)
    if up:
        return Plan(nothing_to_do=f"the exporter answers at {listen} ({how})")

    def wait() -> None:
        end = time.monotonic() + SERVING_WAIT
        while True:
            up, how = healthy(listen, 2.0)
            if up:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"the exporter does not answer at {listen} after {SERVING_WAIT:g}s ({how}): "
                                   f"see `journalctl -u {UNIT}`")
            time.sleep(0.5)

    return Plan(changes=(Change(f"wait up to {SERVING_WAIT:g}s for the exporter to answer at {listen} (HTTP GET "
                                f"/-/healthy; now: {how})", (), wait),))


STEPS = {
    "exporter": Step("exporter", "the sbops exporter as a systemd service (the checks as Prometheus metrics)", FINAL, (
        Resource("exporter.unit", plan_unit),
        Resource("exporter.serving", plan_serving, needs=("exporter.unit",)),
    )),
}
