"""`sbops upgrade`: the flags, the confirmation, the rendering and the exit code; the upgrade itself is
sbops.upgrade (plan: pure comparisons; flow: the steps, journal and rollback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sbops.cli.options import (EXIT_FAILED, EXIT_OK, ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt,
                               WaitOpt, context, wait_seconds)
from sbops.errors import UsageError


def upgrade(
    chart: Optional[str] = typer.Option(None, "--chart", metavar="REF",
                                        help="chart directory, .tgz, repository or OCI reference (default: setting "
                                             "install.chart)"),
    chart_version: Optional[str] = typer.Option(None, "--chart-version", metavar="V",
                                                help="chart version to upgrade to (default: the newest REF gives)"),
    plan: bool = typer.Option(False, "--plan", help="show the chart diff, the images that change and the values "
                                                    "that differ, and change nothing"),
    force: bool = typer.Option(False, "--force", help="upgrade even when the pre-flight doctor finds failures"),
    auto_rollback: bool = typer.Option(False, "--auto-rollback",
                                       help="roll back to the previous revision when the upgrade fails, without asking"),
    backup_to: Optional[str] = typer.Option(None, "--backup-to", metavar="FILE", help="where the backup goes"),
    no_backup: bool = typer.Option(False, "--no-backup", help="upgrade without taking a backup first"),
    yes: bool = typer.Option(False, "--yes", "-y", help="upgrade without asking"),
    wait_timeout: Optional[float] = WaitOpt,
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Upgrade the StackBill chart: doctor, backup, helm upgrade (values reused), wait for Ready, doctor again.

    Refuses when the pre-flight doctor finds failures (unless --force). When the new pods do not become Ready
    or the doctor fails afterwards, offers `helm rollback` to the previous revision (--auto-rollback does it).
    Exit codes: 0 upgraded (or planned), 3 refused, failed or rolled back, 2 usage error.

    Example: sbops upgrade --chart-version 2.0.0 --plan
    """
    from sbops.upgrade.flow import Upgrade

    if backup_to is not None and no_backup:
        raise UsageError("--backup-to and --no-backup: choose one")
    if chart_version is not None and not chart_version.strip():
        raise UsageError("--chart-version: empty")
    ctx = context(config, credentials, timeout, kubeconfig)
    ref = chart or str(ctx.settings["install.chart"])
    version = chart_version or str(ctx.settings["install.chart_version"] or "")
    wait = wait_seconds(wait_timeout, ctx.settings)
    interactive = sys.stdin.isatty()

    def ask(question: str) -> bool:
        return interactive and not yes and typer.confirm(question, default=False)

    job = Upgrade(ctx, ref, version, force=force, auto_rollback=auto_rollback,
                  backup_to=Path(backup_to) if backup_to else None, no_backup=no_backup, wait_timeout=wait,
                  confirm=ask)
    if plan:
        result = job.plan()
        _render(result.as_dict(), output)
        raise typer.Exit(EXIT_OK if result.result == "planned" else EXIT_FAILED)
    if not yes:
        if not interactive:
            raise UsageError("upgrade changes the running release: pass --yes (or --plan to see what would change)")
        preview = Upgrade(ctx, ref, version).plan()
        _render(preview.as_dict(), Output.text)
        if preview.result != "planned" or not typer.confirm("Upgrade now?", default=False):
            raise typer.Exit(EXIT_FAILED if preview.result != "planned" else EXIT_OK)
    result = job.run()
    _render(result.as_dict(), output)
    raise typer.Exit(EXIT_OK if result.result == "upgraded" else EXIT_FAILED)


def _render(doc: dict, output: Output) -> None:
    if output is Output.json:
        typer.echo(json.dumps(doc, indent=2))
        return
    head = {"planned": "plan", "upgraded": "upgraded", "rolled-back": "FAILED, rolled back to the previous revision",
            "failed": "FAILED", "refused": "refused: nothing changed"}
    typer.echo(f"upgrade {doc['release']} to {doc['chart']}: {head.get(doc['result'], doc['result'])}")
    for blocker in doc["blockers"]:
        typer.echo(f"  because: {blocker}")
    plan = doc.get("plan") or {}
    if plan:
        typer.echo(f"  chart: {plan['chart']['from']} -> {plan['chart']['to']}")
        for title, key in (("images that change", "images"), ("chart defaults that differ", "default_values"),
                           ("release values that differ", "user_values")):
            typer.echo(f"  {title}: {'none' if not plan[key] else ''}")
            for line in plan[key]:
                typer.echo(f"    {line}")
        typer.echo("  manifest diff (Secrets' values masked):" + (" none" if not plan["manifest_diff"] else ""))
        for line in plan["manifest_diff"]:
            typer.echo(f"    {line}")
    for number, step in enumerate(doc["steps"], start=1):
        typer.echo(f"  {number}. {step['step']}: [{step['outcome']}] {step['detail']}")
