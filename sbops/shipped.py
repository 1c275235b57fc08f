"""What sbops ships beside its code and the systemd units it renders: runbooks, the monitoring assets, the
exporter's unit file, and the ECR refresher's service and timer.

Here, below the CLI, so the installer, the uninstaller and the commands share one copy; the CLI modules only
parse flags and print.

Why a systemd timer on the host refreshes the ECR token, rather than a CronJob in the cluster: getting a
token needs AWS credentials (a profile or the instance role). On the host they stay where the administrator
put them. A CronJob would need them copied into a cluster Secret readable by anyone who can read sb-apps,
and an image with the AWS CLI pulled from a registry that the expired token may no longer reach. The timer
runs `sbops fix ecr-refresh --yes` every 6 hours (tokens last 12), at boot, and catches up missed runs.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from sbops.errors import UsageError

REFRESHER_UNIT = "sbops-ecr-refresh"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
MONITORING_FILES = {"rules": "alerts.yml", "rules-test": "alerts_test.yml", "dashboard": "dashboard.json"}
EXPORTER_UNIT_FILE = ("systemd", "sbops-exporter.service")
AGENT_UNIT_FILE = ("systemd", "sbops-agent.service")


def shared_dir(name: str) -> Path:
    """<name>/ of a checkout (runbooks, monitoring, deploy), else the copy installed under <prefix>/share/sbops."""
    here = Path(__file__).resolve().parent.parent / name
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "sbops" / name


def runbooks_dir() -> Path:
    """runbooks/ of a checkout, else the copy installed under <prefix>/share/sbops/runbooks."""
    return shared_dir("runbooks")


def _shipped(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"{path}: shipped file missing (is sbops installed completely?)")
    return path


def asset(name: str) -> Path:
    """A shipped file under monitoring/ (a checkout's, else the installed copy)."""
    return _shipped(shared_dir("monitoring") / name)


def exporter_unit_file() -> Path:
    """deploy/systemd/sbops-exporter.service (a checkout's, else the installed copy)."""
    return _shipped(shared_dir("deploy") / EXPORTER_UNIT_FILE[0] / EXPORTER_UNIT_FILE[1])


def agent_unit_file() -> Path:
    """deploy/systemd/sbops-agent.service: a database host's agent (sbops install --role database-host)."""
    return _shipped(shared_dir("deploy") / AGENT_UNIT_FILE[0] / AGENT_UNIT_FILE[1])


def default_sbops() -> list[str]:
    """argv that starts this sbops: the installed script when on PATH, else this interpreter with -m sbops."""
    found = shutil.which("sbops")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "sbops"]


def render_refresher_units(sbops_argv: list[str], config: str = "", interval_hours: int = 6) -> dict[str, str]:
    """The ECR refresher's .service and .timer contents (pure, so tests verify them without systemd)."""
    argv = [*sbops_argv, "fix", "ecr-refresh", "--yes"]
    if config:
        argv += ["--config", config]
    service = f"""[Unit]
Description=Refresh the StackBill ECR image pull secret (sbops fix ecr-refresh)
Documentation=https://github.com/sbops/sbops/blob/main/runbooks/ecr.expiry.md
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={shlex.join(argv)}
"""
    timer = f"""[Unit]
Description=Refresh the StackBill ECR image pull secret every {interval_hours} hours (tokens last 12)

[Timer]
OnBootSec=2min
OnCalendar=*-*-* 00/{interval_hours}:00:00
RandomizedDelaySec=5min
Persistent=true
Unit={REFRESHER_UNIT}.service

[Install]
WantedBy=timers.target
"""
    return {f"{REFRESHER_UNIT}.service": service, f"{REFRESHER_UNIT}.timer": timer}


def install_refresher_units(runner, unit_dir: Path, units: dict[str, str], reload: bool = True) -> list[str]:
    """Write the units and enable the timer through the runner; returns problems (empty when fine)."""
    for name, content in units.items():
        runner.write_file(Path(unit_dir) / name, content, 0o644)
    problems = []
    commands = [["systemctl", "daemon-reload"]] if reload else []
    commands.append(["systemctl", "enable", "--now", f"{REFRESHER_UNIT}.timer"])
    for argv in commands:
        result = runner.run(argv, timeout=60)
        if not result.ok:
            problems.append(f"{shlex.join(argv)}: {result.one_line_error()}")
            break
    return problems
