"""`sbops exporter`: serve the doctor's checks to Prometheus; `print-rules`, `print-dashboard`, `print-unit`
write out the shipped alert rules, Grafana dashboard and systemd unit.

The typer app object is `exporter_app` (sbops/cli/__init__.py adds it as the group `exporter`).
Exit codes: 0 stopped by SIGTERM/SIGINT (or printed), 2 usage error (bad flag, config, credentials,
kubeconfig or web-config file, address in use), 1 internal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from sbops.cli.options import ConfigOpt, CredsOpt, KubeOpt, TimeoutOpt, check_timeout
from sbops.shipped import MONITORING_FILES, asset, exporter_unit_file

exporter_app = typer.Typer(
    rich_markup_mode=None,
    invoke_without_command=True,
    help="Serve every check as Prometheus metrics.\n\nExample: sbops exporter --listen 127.0.0.1:29100",
)

@exporter_app.callback()
def exporter(
    ctx: typer.Context,
    listen: Optional[str] = typer.Option(None, "--listen", metavar="HOST:PORT",
                                         help="address to serve on (default 127.0.0.1:29100; setting exporter.listen)"),
    web_config: Optional[str] = typer.Option(None, "--web-config", metavar="FILE",
                                             help="exporter-toolkit web-config: TLS and basic auth (setting exporter.web_config)"),
    layers: Optional[str] = typer.Option(None, "--layers", metavar="LAYER,...",
                                         help="serve only these layers (default all; setting exporter.layers)"),
    scrape_timeout: Optional[float] = typer.Option(None, "--scrape-timeout", metavar="SECONDS",
                                                   help="most a scrape may take (default 10; Prometheus's scrape timeout header lowers it)"),
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    kubeconfig: Optional[str] = KubeOpt,
    timeout: Optional[float] = TimeoutOpt,
) -> None:
    """Serve every check as Prometheus metrics: /metrics (all layers), /probe?module=LAYER, /-/healthy;
    /results?layer=LAYER is the doctor's JSON (what `sbops doctor --cluster` asks each node's agent).

    Example: sbops exporter --listen 127.0.0.1:29100 --web-config /etc/sbops/web.yml
    """
    if ctx.invoked_subcommand is not None:
        return
    check_timeout(timeout)
    check_timeout(scrape_timeout, "--scrape-timeout")
    from sbops import kube
    from sbops.exporter.collect import CredentialsSource, Scraper
    from sbops.exporter.server import bind, log, parse_listen, serve, served_layers
    from sbops.exporter.webconfig import Watched
    from sbops.registry import load_all
    from sbops.settings import Settings

    settings = Settings.load(config, flags={"timeout": timeout, "kubeconfig": kubeconfig, "exporter.listen": listen,
                                            "exporter.web_config": web_config, "exporter.timeout": scrape_timeout,
                                            "exporter.layers": layers})
    address = parse_listen(str(settings["exporter.listen"]))
    served_layers(str(settings["exporter.layers"]))  # a name that is not a layer: exit 2 before anything starts

    def reported(kind: str) -> Callable[[str], None]:
        """After start-up a file that changed and is broken is logged and counted, not fatal."""
        def report(message: str) -> None:
            log(f"{message}; keeping the last good copy")
            scraper.count_error(kind)
        return report

    # At start-up every file is read once: a problem is a usage error naming the file (exit 2).
    source = CredentialsSource(credentials, reported("credentials"))
    scraper = Scraper(settings, load_all(), source, kube.find(settings["kubeconfig"]))
    web_path = str(settings["exporter.web_config"])
    web = Watched(Path(web_path) if web_path else None, reported("web_config"))
    serve(bind(address, scraper, web, settings))


@exporter_app.command("print-rules")
def print_rules(
    test: bool = typer.Option(False, "--test", help="print the rules' unit tests (promtool test rules) instead"),
) -> None:
    """Print the Prometheus alert rules (monitoring/alerts.yml).

    Example: sbops exporter print-rules > /etc/prometheus/rules/sbops.yml
    """
    typer.echo(asset(MONITORING_FILES["rules-test" if test else "rules"]).read_text(), nl=False)


@exporter_app.command("print-dashboard")
def print_dashboard() -> None:
    """Print the Grafana dashboard (monitoring/dashboard.json) to import.

    Example: sbops exporter print-dashboard > sbops-dashboard.json
    """
    typer.echo(asset(MONITORING_FILES["dashboard"]).read_text(), nl=False)


@exporter_app.command("print-unit")
def print_unit() -> None:
    """Print the systemd unit that runs the exporter (deploy/systemd/sbops-exporter.service).

    Example: sbops exporter print-unit > /etc/systemd/system/sbops-exporter.service
    """
    typer.echo(exporter_unit_file().read_text(), nl=False)
