"""`sbops tls deploy-hook`: what certbot's deploy hook runs after each renewal (sbops.probes.acme.deploy_renewed).

The typer app object is `tls_app` (sbops/cli/__init__.py adds it as the group `tls`).
"""

from __future__ import annotations

import os
from typing import Optional

import typer

from sbops.cli.options import EXIT_FAILED, ConfigOpt, CredsOpt, KubeOpt, context

tls_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="TLS certificate helpers.")


@tls_app.callback()
def tls() -> None:
    """TLS certificate helpers (a group even with one command, so `sbops tls deploy-hook` parses)."""


@tls_app.command("deploy-hook")
def deploy_hook(
    lineage: Optional[str] = typer.Option(None, "--lineage", metavar="DIR",
                                          help="the renewed lineage (default: $RENEWED_LINEAGE, which certbot sets)"),
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Put certbot's renewed certificate into the ingress gateway's TLS secret, through the Kubernetes API.

    certbot runs this from <config_dir>/renewal-hooks/deploy/ (installed by `sbops install --letsencrypt`).
    It logs one line per run to letsencrypt.hook_log, never the key.

    Example: RENEWED_LINEAGE=/etc/letsencrypt/live/portal.example.com sbops tls deploy-hook
    """
    from sbops.probes import acme

    ctx = context(config, credentials, None, kubeconfig)
    try:
        ok, text = acme.deploy_renewed(ctx, lineage or os.environ.get("RENEWED_LINEAGE", ""))
    finally:
        ctx.close()
    typer.echo(f"sbops tls deploy-hook: {text}", err=not ok)
    if not ok:
        raise typer.Exit(EXIT_FAILED)
