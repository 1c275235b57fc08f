"""`sbops rotate-credentials`: the flags, the confirmation, the rendering and the exit code; the rotation itself
is sbops.rotate (plan: pure decisions; flow: the steps, journal and undo)."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from sbops.cli.options import (EXIT_FAILED, EXIT_OK, ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt,
                               WaitOpt, context, wait_seconds)
from sbops.errors import UsageError


def rotate_credentials(
    service: Optional[List[str]] = typer.Option(None, "--service", "-s", metavar="NAME",
                                                help="mysql, mongodb or rabbitmq; repeat for several (default: all three)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="rotate without asking"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    wait_timeout: Optional[float] = WaitOpt,
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Change a service's password everywhere it lives: the server, the Helm release, the pods, the credentials file.

    Order: generate; set it on the server (both MySQL accounts); helm upgrade --reuse-values with the new
    value on standard input; restart the workloads that read it and wait until Ready; verify the service's
    login and app.cloudconfiguration; then write the credentials file (previous kept as .bak, 0600). When a
    step fails, the old password goes back on the server and in the release, and the output says so.
    Exit codes: 0 rotated, 3 rolled back or failed, 2 usage error.

    Example: sbops rotate-credentials --service mysql --dry-run
    """
    from sbops.rotate.flow import Rotation
    from sbops.rotate.plan import choose_services

    try:
        services = choose_services(service or [])
    except ValueError as exc:
        raise UsageError(f"--service: {exc}") from None
    ctx = context(config, credentials, timeout, kubeconfig)
    wait = wait_seconds(wait_timeout, ctx.settings)
    rotation = Rotation(ctx, services, wait_timeout=wait)
    if not dry_run and not yes:
        preview = Rotation(ctx, services, wait_timeout=wait).run(dry_run=True)
        if preview.blockers:
            _render(preview.as_dict(), output)
            raise typer.Exit(EXIT_FAILED)
        if not sys.stdin.isatty():
            raise UsageError("rotate-credentials changes passwords on the servers and in the cluster: pass --yes "
                             "(or --dry-run to see the plan)")
        _render(preview.as_dict(), Output.text)
        if not typer.confirm("Rotate now?", default=False):
            typer.echo("nothing changed")
            raise typer.Exit(EXIT_OK)
    result = rotation.run(dry_run=dry_run)
    _render(result.as_dict(), output)
    raise typer.Exit(EXIT_OK if result.result in ("planned", "rotated") else EXIT_FAILED)


def _render(doc: dict, output: Output) -> None:
    if output is Output.json:
        typer.echo(json.dumps(doc, indent=2))
        return
    head = {"planned": "plan", "rotated": "rotated", "rolled-back": "ROLLED BACK: the old password is back in place",
            "failed": "FAILED, and the undo did not complete: see the steps", "refused": "refused: nothing changed"}
    typer.echo(f"rotate-credentials {', '.join(doc['services'])}: {head.get(doc['result'], doc['result'])}")
    for blocker in doc["blockers"]:
        typer.echo(f"  cannot: {blocker}" if doc["result"] == "refused" else f"  because: {blocker}")
    for number, step in enumerate(doc["steps"], start=1):
        mark = "" if step["outcome"] == "planned" else f"[{step['outcome']}] "
        typer.echo(f"  {number}. {step['step']}: {mark}{step['detail']}")
