"""The command line: parse flags, build a Context, call in, render, choose the exit code. No logic here.

Exit codes: 0 all passed, 4 warnings only, 3 a failure or error (or a fix that did not fix),
2 usage error, 1 internal error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import List, Optional

import typer
from typer.core import TyperGroup

from sbops import __version__
from sbops.errors import UsageError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_FAILED, EXIT_WARN, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class _Interrupted(BaseException):
    """Ctrl-C that no command handled. Typer turns a KeyboardInterrupt leaving a command into a silent
    exit 130; this one passes through it to `_run`, which says so."""


class _Group(TyperGroup):
    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Install, diagnose, repair and monitor a StackBill POC server.\n\nExample: sbops doctor --layer mysql",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect sbops's effective configuration.")
app.add_typer(config_app, name="config")


def _add_ecr_app() -> None:
    from sbops.ecr_cli import ecr_app

    app.add_typer(ecr_app, name="ecr")


_add_ecr_app()


def _add_exporter_app() -> None:
    from sbops.exporter_cli import exporter_app

    app.add_typer(exporter_app, name="exporter")


_add_exporter_app()


def _add_uninstall_command() -> None:
    """Defined in sbops/uninstall_cli.py with the shared options below: called once they exist."""
    from sbops.uninstall_cli import register

    register(app)


def _add_install_command() -> None:
    from sbops.install_cli import install

    app.command("install")(install)


_add_install_command()


class Output(str, Enum):
    text = "text"
    json = "json"


ConfigOpt = typer.Option(None, "--config", metavar="FILE", help="YAML settings (default: $SBOPS_CONFIG, /etc/sbops/config.yaml)")
CredsOpt = typer.Option(None, "--credentials", metavar="FILE", help="credentials file (default: $SBOPS_CREDENTIALS, /root/stackbill-credentials.txt)")
TimeoutOpt = typer.Option(None, "--timeout", metavar="SECONDS", help="per-check timeout (default 5)")
KubeOpt = typer.Option(None, "--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, /etc/rancher/k3s/k3s.yaml)")
OutputOpt = typer.Option(Output.text, "--output", "-o", help="text or json")


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _context(config: Optional[str], credentials: Optional[str], timeout: Optional[float], kubeconfig: Optional[str] = None):
    from sbops.context import Context

    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout: must be a positive number of seconds, got {timeout:g}")
    return Context.load(config, credentials, flags={"timeout": timeout, "kubeconfig": kubeconfig})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sbops {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:
    """Install, diagnose, repair and monitor a StackBill POC server."""


@app.command()
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
) -> None:
    """Run the health checks and name the fix for each failure.

    Example: sbops doctor --check 'mysql.*' --output json
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
    ctx = _context(config, credentials, timeout, kubeconfig)
    started_at = datetime.now(timezone.utc)
    began = time.monotonic()
    if sys.stderr.isatty() and output is Output.text:
        sys.stderr.write(f"running {len(selected)} checks...\r")
        sys.stderr.flush()
    outcomes = run_checks(ctx, selected, registry=registry)
    if sys.stderr.isatty() and output is Output.text:
        sys.stderr.write(" " * 40 + "\r")
    duration = time.monotonic() - began
    runbook_url = ctx.settings["runbook_url"]
    if output is Output.json:
        import json

        typer.echo(json.dumps(doctor_document(outcomes, started_at, duration, runbook_url), indent=2))
    else:
        typer.echo(render_doctor(outcomes, colour=_colour(), verbose=verbose, runbook_url=runbook_url), nl=False)
    ctx.close()
    statuses = {o.result.status.value for o in outcomes}
    if statuses & {"fail", "error"}:
        raise typer.Exit(EXIT_FAILED)
    if "warn" in statuses:
        raise typer.Exit(EXIT_WARN)


@app.command()
def fix(
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="the fix to apply (see --list)"),
    list_fixes: bool = typer.Option(False, "--list", help="list the fixes, what they repair and their risk"),
    yes: bool = typer.Option(False, "--yes", "-y", help="apply without asking"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and change nothing"),
    restart: bool = typer.Option(False, "--restart", help="allow restarting a service when a change needs it"),
    workload: Optional[str] = typer.Option(None, "--workload", metavar="NAME", help="restart-workload: the Deployment"),
    cert: Optional[str] = typer.Option(None, "--cert", metavar="FILE", help="tls-secret: certificate (full chain)"),
    key: Optional[str] = typer.Option(None, "--key", metavar="FILE", help="tls-secret: private key"),
    token_file: Optional[str] = typer.Option(None, "--token-file", metavar="FILE", help="ecr-refresh: ECR token file ('-' for stdin)"),
    profile: Optional[str] = typer.Option(None, "--profile", metavar="NAME", help="ecr-refresh: AWS profile"),
    region: Optional[str] = typer.Option(None, "--region", metavar="REGION", help="ecr-refresh: AWS region"),
    http_port: Optional[int] = typer.Option(None, "--http-port", metavar="PORT", help="istio-nodeports: move the HTTP nodePort to PORT"),
    https_port: Optional[int] = typer.Option(None, "--https-port", metavar="PORT", help="istio-nodeports: move the HTTPS nodePort to PORT"),
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Repair what a failed check found: show the plan, confirm, apply, re-check.

    Example: sbops fix mysql-blocked-host --dry-run
    """
    from sbops.fixflow import list_fixes as do_list, run_fix
    from sbops.registry import load_all

    registry = load_all()
    if list_fixes:
        typer.echo(do_list(registry, json_output=output is Output.json), nl=False)
        return
    if not name:
        raise UsageError("fix: missing NAME (see `sbops fix --list`)")
    from sbops.registry import OPTION_FLAGS, FixOptions

    spec = registry.fix_for(name)
    given = {"workload": workload, "cert": cert, "key": key, "token_file": token_file, "profile": profile, "region": region,
             "http_port": http_port, "https_port": https_port}
    for field, value in given.items():
        if value is not None and field not in spec.options:
            raise UsageError(f"{OPTION_FLAGS[field]}: does not apply to fix {name}")
    for flag, port in (("--http-port", http_port), ("--https-port", https_port)):
        if port is not None and not 30000 <= port <= 32767:
            raise UsageError(f"{flag}: {port} is outside the NodePort range 30000-32767")
    if http_port is not None and http_port == https_port:
        raise UsageError(f"--http-port and --https-port: both are {http_port}; HTTP and HTTPS need two ports")
    ctx = _context(config, credentials, timeout, kubeconfig)
    code = run_fix(ctx, registry, spec, yes=yes, dry_run=dry_run, options=FixOptions(allow_restart=restart, **given),
                   json_output=output is Output.json, colour=_colour())
    raise typer.Exit(code)


@app.command()
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
    ctx = _context(config, credentials, timeout, kubeconfig)
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


_add_uninstall_command()


def _run() -> int:
    debug = bool(os.environ.get("SBOPS_DEBUG"))
    try:
        app()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:
        typer.echo(f"sbops: error: {exc}", err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, _Interrupted):
        typer.echo("\nsbops: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only with SBOPS_DEBUG
        if debug:
            raise
        typer.echo(f"sbops: internal error: {type(exc).__name__}: {exc} (set SBOPS_DEBUG=1 for the traceback)", err=True)
        return EXIT_INTERNAL
    return EXIT_OK


def main() -> None:
    """Exit without interpreter teardown once output is flushed: client libraries' background threads
    (pymongo's monitors) and probes abandoned at their timeout would otherwise hold the exit up to a second."""
    code = _run()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(code)
