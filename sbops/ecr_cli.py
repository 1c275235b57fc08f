"""`sbops ecr install-refresher`: keep the ECR pull secret fresh with a systemd timer.

Why a systemd timer on the host rather than a CronJob in the cluster: getting a token needs AWS
credentials (a profile or the instance role). On the host they stay where the administrator put them;
a CronJob would need them copied into a cluster Secret readable by anyone who can read sb-apps, plus an
image with the AWS CLI pulled from a registry the expired token may no longer reach. The timer runs
`sbops fix ecr-refresh --yes` every 6 hours (tokens last 12), at boot, and catches up missed runs.

The typer app object is `ecr_app` (wired into sbops/cli.py as `app.add_typer(ecr_app, name="ecr")`).
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

UNIT = "sbops-ecr-refresh"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")

ecr_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="ECR image pull secret helpers.")


@ecr_app.callback()
def ecr() -> None:
    """ECR image pull secret helpers (a group even with one command, so `sbops ecr install-refresher` parses)."""


def default_sbops() -> list[str]:
    """argv that starts this sbops: the installed script when on PATH, else this interpreter with -m sbops."""
    found = shutil.which("sbops")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "sbops"]


def render_units(sbops_argv: list[str], config: str = "", interval_hours: int = 6) -> dict[str, str]:
    """The .service and .timer contents (pure, so tests verify them without systemd)."""
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
Unit={UNIT}.service

[Install]
WantedBy=timers.target
"""
    return {f"{UNIT}.service": service, f"{UNIT}.timer": timer}


def install(runner, unit_dir: Path, units: dict[str, str], reload: bool = True) -> list[str]:
    """Write the units and enable the timer through the runner; returns problems (empty when fine)."""
    for name, content in units.items():
        runner.write_file(Path(unit_dir) / name, content, 0o644)
    problems = []
    commands = [["systemctl", "daemon-reload"]] if reload else []
    commands.append(["systemctl", "enable", "--now", f"{UNIT}.timer"])
    for argv in commands:
        result = runner.run(argv, timeout=60)
        if not result.ok:
            problems.append(f"{shlex.join(argv)}: {result.one_line_error()}")
            break
    return problems


@ecr_app.command("install-refresher")
def install_refresher(
    unit_dir: Path = typer.Option(DEFAULT_UNIT_DIR, "--unit-dir", metavar="DIR", help="where the unit files go"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the unit files and change nothing"),
    config: Optional[str] = typer.Option(None, "--config", metavar="FILE", help="config file the timer's sbops uses"),
    interval: int = typer.Option(6, "--interval-hours", min=1, max=11, help="hours between refreshes (tokens last 12)"),
) -> None:
    """Install a systemd timer that runs `sbops fix ecr-refresh --yes` every 6 hours.

    Example: sbops ecr install-refresher --dry-run
    """
    from sbops.runner import SubprocessRunner

    units = render_units(default_sbops(), str(Path(config).resolve()) if config else "", interval)
    if dry_run:
        for name, content in units.items():
            typer.echo(f"# {Path(unit_dir) / name}\n{content}")
        typer.echo(f"# then: systemctl daemon-reload && systemctl enable --now {UNIT}.timer\ndry run: nothing was changed")
        return
    problems = install(SubprocessRunner(), unit_dir, units)
    for problem in problems:
        typer.echo(f"sbops: {problem}", err=True)
    if problems:
        raise typer.Exit(3)
    typer.echo(f"installed {unit_dir}/{UNIT}.service and .timer; `systemctl list-timers {UNIT}.timer` shows the next run")
