"""`sbops doctor`, `sbops explain` and `sbops config show`: run the checks, read a runbook, show the settings."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from sbops.cli.options import (EXIT_FAILED, EXIT_WARN, ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt,
                               colour, context)
from sbops.errors import UsageError

config_app = typer.Typer(no_args_is_help=True, help="Inspect sbops's effective configuration.")


def doctor(
    layer: Optional[List[str]] = typer.Option(None, "--layer", "-l", metavar="LAYER", help="only this layer (repeatable)"),
    check: Optional[List[str]] = typer.Option(None, "--check", "-c", metavar="ID", help="only checks matching this id or glob, e.g. 'mysql.*' (repeatable)"),
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="details and evidence for every check"),
    list_checks: bool = typer.Option(False, "--list", help="list the checks and exit"),
    cluster: bool = typer.Option(False, "--cluster", help="every node's checks from its sbops agent (through the API "
                                                          "server's pod proxy), one row per node, with the cluster-wide checks"),
) -> None:
    """Run the health checks and name the fix for each failure.

    Example: sbops doctor --check 'mysql.*' --output json; sbops doctor --cluster
    """
    import time
    from datetime import datetime, timezone

    from sbops.engine import run_checks
    from sbops.registry import load_all
    from sbops.report.jsonout import doctor_document
    from sbops.report.text import render_doctor

    registry = load_all()
    selected = registry.select(layer, check)
    if list_checks:
        for item in selected:
            typer.echo(f"{item.id:<26} {item.layer:<10} {item.severity.value:<9} {item.fix or '-'}")
        return
    ctx = context(config, credentials, timeout, kubeconfig)
    started_at = datetime.now(timezone.utc)
    began = time.monotonic()
    if sys.stderr.isatty() and output is Output.text:
        sys.stderr.write(f"running {len(selected)} checks...\r")
        sys.stderr.flush()
    extra: dict = {}
    if cluster:
        from sbops import cluster as cluster_mod
        from sbops.kube import NoKubeconfig

        try:
            outcomes, nodes = cluster_mod.run(ctx, registry, selected, list(check or []))
        except NoKubeconfig as exc:
            raise UsageError(f"--cluster: no kubeconfig to reach the API server with: {exc}") from None
        extra["nodes"] = nodes
        extra["per_node"] = True
    else:
        outcomes = run_checks(ctx, selected, registry=registry)
    if sys.stderr.isatty() and output is Output.text:
        sys.stderr.write(" " * 40 + "\r")
    duration = time.monotonic() - began
    runbook_url = ctx.settings["runbook_url"]
    if output is Output.json:
        import json

        typer.echo(json.dumps(doctor_document(outcomes, started_at, duration, runbook_url, **extra), indent=2))
    else:
        typer.echo(render_doctor(outcomes, colour=colour(), verbose=verbose, runbook_url=runbook_url), nl=False)
    ctx.close()
    statuses = {o.result.status.value for o in outcomes}
    if statuses & {"fail", "error"}:
        raise typer.Exit(EXIT_FAILED)
    if "warn" in statuses:
        raise typer.Exit(EXIT_WARN)


def explain(
    id: str = typer.Argument(..., metavar="ID", help="a check id (mysql.auth) or a fix name (mysql-user)"),
) -> None:
    """Print a check's runbook: what it means, how to diagnose and repair it.

    Example: sbops explain mysql.host-blocked
    """
    from sbops.registry import load_all
    from sbops.shipped import runbooks_dir

    registry = load_all()
    if id in registry.fixes:
        spec = registry.fixes[id]
        typer.echo(f"fix {spec.name}: {spec.title}\nrisk: {spec.risk.value}\nrepairs: {', '.join(spec.repairs)}\n")
        typer.echo("See the runbooks of the checks it repairs: " + ", ".join(f"sbops explain {c}" for c in spec.repairs))
        return
    if id not in registry.checks:
        raise UsageError(f"explain: unknown check or fix '{id}' (see `sbops doctor --list`, `sbops fix --list`)")
    path = runbooks_dir() / f"{id}.md"
    if not path.exists():
        raise UsageError(f"explain: no runbook for {id} at {path}")
    typer.echo(path.read_text(), nl=False)


@config_app.command("show")
def config_show(
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Print the effective settings and where each came from (secrets masked).

    Example: sbops config show --config /etc/sbops/config.yaml
    """
    ctx = context(config, credentials, timeout, kubeconfig)
    rows = [(k, str(v), src) for k, v, src in ctx.settings.items()]
    creds = str(ctx.credentials_path) if ctx.credentials_path else "none found"
    kubeconfig_used = str(ctx.kubeconfig_path) if ctx.kubeconfig_path else "none found"
    if output is Output.json:
        import json

        typer.echo(json.dumps({"settings": {k: {"value": v, "source": s} for k, v, s in rows}, "credentials": creds,
                               "kubeconfig": kubeconfig_used}, indent=2))
        return
    width = max(len(k) for k, _, _ in rows)
    typer.echo(f"{'credentials':<{width}}  {creds}")
    typer.echo(f"{'kubeconfig (used)':<{width}}  {kubeconfig_used}")
    for key, value, source in rows:
        shown = value or '""'
        typer.echo(f"{key:<{width}}  {shown:<48} {source}")
