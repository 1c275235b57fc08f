"""`sbops fix NAME`: the flags, turned into the keyword arguments the fix declares (sbops.fixes), then
sbops.fixflow shows the plan, confirms, applies and re-checks."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Optional

import typer

from sbops.cli.options import ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt, colour, context
from sbops.errors import UsageError

if TYPE_CHECKING:
    from sbops.registry import Fix

# Each field of FixOptions is the keyword argument a fix declaration takes, spelt on the command line as:
FLAGS = {"allow_restart": "--restart", "workload": "--workload", "cert_file": "--cert", "key_file": "--key",
         "token_file": "--token-file", "profile": "--profile", "region": "--region", "http_port": "--http-port",
         "https_port": "--https-port"}
# --restart is consent, not a setting: every fix accepts it (README: `restart-workload` and `helm-rollback`
# restart anyway, running them is the consent) and only the fixes that declare allow_restart receive it.
CONSENT = frozenset({"allow_restart"})


@dataclass(frozen=True)
class FixOptions:
    """What the user passed to `sbops fix`, and nothing else: a bag of parsed flags that never leaves the CLI.
    `params_for` hands a fix the keyword arguments its declaration accepts."""

    allow_restart: bool = False
    workload: str | None = None  # restart-workload: the Deployment to restart
    cert_file: str | None = None  # tls-secret: certificate (full chain) file
    key_file: str | None = None  # tls-secret: private key file
    token_file: str | None = None  # ecr-refresh: a file holding an ECR token ('-': stdin)
    profile: str | None = None  # ecr-refresh: AWS profile
    region: str | None = None  # ecr-refresh: AWS region
    http_port: int | None = None  # istio-nodeports: the HTTP nodePort the user names (moves a working one)
    https_port: int | None = None  # istio-nodeports: the HTTPS nodePort the user names

    def params_for(self, spec: "Fix") -> dict[str, Any]:
        """The keyword arguments for `spec.plan`; a fix-specific flag the fix does not accept is a usage error."""
        params: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in spec.params:
                params[item.name] = value
            elif item.name not in CONSENT and value is not None:
                raise UsageError(f"{FLAGS[item.name]}: does not apply to fix {spec.name}")
        return params


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
    spec = registry.fix_for(name)
    options = FixOptions(allow_restart=restart, workload=workload, cert_file=cert, key_file=key, token_file=token_file,
                         profile=profile, region=region, http_port=http_port, https_port=https_port)
    params = options.params_for(spec)
    for flag, port in (("--http-port", http_port), ("--https-port", https_port)):
        if port is not None and not 30000 <= port <= 32767:
            raise UsageError(f"{flag}: {port} is outside the NodePort range 30000-32767")
    if http_port is not None and http_port == https_port:
        raise UsageError(f"--http-port and --https-port: both are {http_port}; HTTP and HTTPS need two ports")
    ctx = context(config, credentials, timeout, kubeconfig)
    code = run_fix(ctx, registry, spec, yes=yes, dry_run=dry_run, params=params, json_output=output is Output.json,
                   colour=colour())
    raise typer.Exit(code)
