"""`sbops ecr install-refresher`: keep the ECR pull secret fresh with a systemd timer (why a timer on the host
rather than a CronJob: sbops/shipped.py, which renders the units).

The typer app object is `ecr_app` (sbops/cli/__init__.py adds it as the group `ecr`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sbops.shipped import DEFAULT_UNIT_DIR, REFRESHER_UNIT, default_sbops, install_refresher_units, render_refresher_units

ecr_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="ECR image pull secret helpers.")


@ecr_app.callback()
def ecr() -> None:
    """ECR image pull secret helpers (a group even with one command, so `sbops ecr install-refresher` parses)."""


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

    units = render_refresher_units(default_sbops(), str(Path(config).resolve()) if config else "", interval)
    if dry_run:
        for name, content in units.items():
            typer.echo(f"# {Path(unit_dir) / name}\n{content}")
        typer.echo(f"# then: systemctl daemon-reload && systemctl enable --now {REFRESHER_UNIT}.timer\ndry run: nothing was changed")
        return
    problems = install_refresher_units(SubprocessRunner(), unit_dir, units)
    for problem in problems:
        typer.echo(f"sbops: {problem}", err=True)
    if problems:
        raise typer.Exit(3)
    typer.echo(f"installed {unit_dir}/{REFRESHER_UNIT}.service and .timer; `systemctl list-timers {REFRESHER_UNIT}.timer` shows the next run")
