"""`sbops install`: flags only; the work is in sbops.install.command."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from sbops.cli.options import ConfigOpt, KubeOpt, Output, OutputOpt, colour
from sbops.errors import UsageError


def install(
    domain: Optional[str] = typer.Option(None, "--domain", metavar="NAME", help="the portal's DNS name (default: the credentials file's PORTAL URL)"),
    ssl_cert: Optional[str] = typer.Option(None, "--ssl-cert", metavar="FILE", help="TLS certificate, full chain, server certificate first"),
    ssl_key: Optional[str] = typer.Option(None, "--ssl-key", metavar="FILE", help="its private key (unencrypted PEM)"),
    letsencrypt: bool = typer.Option(False, "--letsencrypt", help="obtain the certificate from Let's Encrypt with certbot (HTTP-01 on port 80), install its deploy hook and renewal timer; needs --email"),
    email: Optional[str] = typer.Option(None, "--email", metavar="ADDRESS", help="the Let's Encrypt account's e-mail address (expiry notices), with --letsencrypt"),
    skip_infra: bool = typer.Option(False, "--skip-infra", help="skip K3s, Helm and Istio (they are installed already)"),
    skip_db: bool = typer.Option(False, "--skip-db", help="skip MySQL, MongoDB, RabbitMQ and NFS"),
    plan: bool = typer.Option(False, "--plan", help="print what every step would change, and change nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="non-interactive: no prompts, no confirmation"),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="STEP", help="run only this step (repeatable; see --list-steps)"),
    skip: Optional[List[str]] = typer.Option(None, "--skip", metavar="STEP", help="skip this step (repeatable)"),
    resume: bool = typer.Option(False, "--resume", help="continue the last run from the step that failed, with its options"),
    artifacts_dir: Optional[str] = typer.Option(None, "--artifacts-dir", metavar="DIR", help="air-gapped: take K3s, its images, Helm, istioctl and the chart from DIR (checked against DIR/SHA256SUMS)"),
    log_file: Optional[str] = typer.Option(None, "--log-file", metavar="FILE", help="this run's log (default: /var/log/sbops/install-<time>.log)"),
    ecr_token_file: Optional[str] = typer.Option(None, "--ecr-token-file", metavar="FILE", help="ECR token or get-login-password output ('-': stdin; default: $AWS_ECR_TOKEN, else AWS credentials)"),
    no_ecr_refresher: bool = typer.Option(False, "--no-ecr-refresher", help="do not install the ECR token refresher timer"),
    no_exporter: bool = typer.Option(False, "--no-exporter", help="do not install the sbops exporter service (the checks as Prometheus metrics)"),
    cloudstack: Optional[str] = typer.Option(None, "--cloudstack", metavar="simulator|existing", help="simulator: run the CloudStack simulator in Podman and create StackBill's user and keys; existing: record an existing CloudStack's URL and keys (with --cloudstack-url, --cloudstack-api-key and --cloudstack-secret-key-file or $SBOPS_CLOUDSTACK_SECRET_KEY)"),
    cloudstack_url: Optional[str] = typer.Option(None, "--cloudstack-url", metavar="URL", help="--cloudstack existing: the CloudStack UI's URL, http://HOST:8080/client"),
    cloudstack_api_key: Optional[str] = typer.Option(None, "--cloudstack-api-key", metavar="KEY", help="--cloudstack existing: StackBill's user's API key"),
    cloudstack_secret_key_file: Optional[str] = typer.Option(None, "--cloudstack-secret-key-file", metavar="FILE", help="--cloudstack existing: a file holding its secret key (default: $SBOPS_CLOUDSTACK_SECRET_KEY); never saved in the install state"),
    force_os: bool = typer.Option(False, "--force-os", help="install on a distribution other than Ubuntu 22.04/24.04 or Debian 12"),
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = typer.Option(None, "--credentials", metavar="FILE", help="credentials file read and written (default: /root/stackbill-credentials.txt)"),
    kubeconfig: Optional[str] = KubeOpt,
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="seconds each probe's connection may take (default 5; setting timeout)"),
    list_steps: bool = typer.Option(False, "--list-steps", help="list the steps and exit"),
    role: Optional[str] = typer.Option(None, "--role", metavar="database-host", help="database-host: install only the sbops agent on a database host of its own (sbops-agent.service: the database checks over TLS and basic auth, for `sbops doctor` on the StackBill server; settings dbhost.*)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --role: show the plan and the files it would write, and change nothing (as --plan)"),
    agent_cert: Optional[str] = typer.Option(None, "--agent-cert", metavar="FILE", help="with --role database-host: the agent's TLS certificate (default: a self-signed one is generated)"),
    agent_key: Optional[str] = typer.Option(None, "--agent-key", metavar="FILE", help="with --role database-host: its private key"),
) -> None:
    """Install StackBill on this server, or bring an installation back to what it should be.

    Every step probes, plans, applies and verifies; a second run changes nothing and says why.
    On a terminal with no answer given as a flag, it asks the questions (guided mode), shows the plan and
    asks before applying.

    Example: sbops install --domain portal.example.com --ssl-cert fullchain.pem --ssl-key privkey.pem --plan

    Example: sbops install --domain portal.example.com --letsencrypt --email ops@example.com

    Example: sbops install --role database-host --dry-run
    """
    from sbops.install import command, guided

    if role is not None or dry_run or agent_cert or agent_key:
        raise typer.Exit(_database_host(role, plan or dry_run, yes, output, config, credentials, timeout, agent_cert,
                                        agent_key))

    if timeout is not None and not timeout > 0:  # 0 would read as "not given"; nan is not > 0
        raise UsageError(f"--timeout: must be a positive number of seconds, got {timeout:g}")

    if letsencrypt and not email:
        raise UsageError("--letsencrypt: give --email ADDRESS (the Let's Encrypt account's address)")
    if email and not letsencrypt:
        raise UsageError("--email: only used with --letsencrypt")
    if letsencrypt and (ssl_cert or ssl_key):
        raise UsageError(f"--letsencrypt: cannot be combined with {'--ssl-cert' if ssl_cert else '--ssl-key'} "
                         "(the certificate comes either from Let's Encrypt or from files)")
    if email:
        from sbops.probes.acme import email_problem

        problem = email_problem(email)
        if problem:
            raise UsageError(f"--email: {problem}")
    if list_steps:
        typer.echo(command.list_steps(), nl=False)
        return
    if cloudstack is not None and cloudstack not in ("simulator", "existing"):
        raise UsageError(f"--cloudstack: simulator or existing, got {cloudstack!r}")
    if (cloudstack_url or cloudstack_api_key or cloudstack_secret_key_file) and cloudstack != "existing":
        raise UsageError("--cloudstack-url, --cloudstack-api-key and --cloudstack-secret-key-file go with --cloudstack existing")
    if cloudstack_url:
        from sbops.settings_rules import url as url_rule

        if url_rule(cloudstack_url):
            raise UsageError(f"--cloudstack-url: {url_rule(cloudstack_url)}")
    if cloudstack_secret_key_file and not os.path.isfile(cloudstack_secret_key_file):
        raise UsageError(f"--cloudstack-secret-key-file {cloudstack_secret_key_file}: not a file")
    flags = {"domain": domain, "ssl_cert": ssl_cert, "ssl_key": ssl_key,
             "letsencrypt": letsencrypt or None, "email": email, "artifacts_dir": artifacts_dir,
             "ecr_token_file": ecr_token_file, "config": config, "credentials": credentials, "kubeconfig": kubeconfig,
             "timeout": timeout,
             "only": tuple(only) if only else None, "skip": tuple(skip) if skip else None,
             "skip_infra": skip_infra or None, "skip_db": skip_db or None, "force_os": force_os or None,
             "ecr_refresher": False if no_ecr_refresher else None, "exporter": False if no_exporter else None,
             "cloudstack": cloudstack, "cloudstack_url": cloudstack_url, "cloudstack_api_key": cloudstack_api_key,
             "cloudstack_secret_key_file": cloudstack_secret_key_file}
    for key in ("ssl_cert", "ssl_key", "artifacts_dir", "ecr_token_file", "config", "credentials", "kubeconfig",
                "cloudstack_secret_key_file"):
        if flags[key] and flags[key] != "-":  # absolute: --resume may run from another directory
            flags[key] = os.path.abspath(flags[key])
    given = {k: v for k, v in flags.items() if v is not None}
    kind = guided.mode(given, plan=plan, yes=yes, resume=resume, json_output=output is Output.json,
                       tty=sys.stdin.isatty() and sys.stdout.isatty())
    if kind == "refuse":
        raise UsageError(guided.refusal())
    if kind == "guided":
        raise typer.Exit(guided.run(given, plan_only=plan, log_file=log_file or "", colour=colour()))
    code = command.execute(given, plan_only=plan, yes=yes, resume=resume, log_file=log_file or "",
                           json_output=output is Output.json, colour=colour())
    raise typer.Exit(code)


def _database_host(role: Optional[str], dry_run: bool, yes: bool, output: Output, config: Optional[str],
                   credentials: Optional[str], timeout: Optional[float], agent_cert: Optional[str],
                   agent_key: Optional[str]) -> int:
    """`--role database-host`: the agent alone (sbops.install.dbhost)."""
    from sbops.context import Context
    from sbops.install import dbhost

    if role != "database-host":
        if role is None:
            raise UsageError("--dry-run, --agent-cert and --agent-key go with --role database-host "
                             "(a full install's plan is --plan)")
        raise UsageError(f"--role: the only role is database-host, got {role!r}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout: must be a positive number of seconds, got {timeout:g}")
    for flag, value in (("--agent-cert", agent_cert), ("--agent-key", agent_key), ("--credentials", credentials)):
        if value and not os.path.isfile(value):
            raise UsageError(f"{flag} {value}: not a file")
    ctx = Context.load(config, credentials, flags={"timeout": timeout})
    options = dbhost.Options(config=config or "", credentials=credentials or "",
                             agent_cert=os.path.abspath(agent_cert) if agent_cert else "",
                             agent_key=os.path.abspath(agent_key) if agent_key else "")
    return dbhost.execute(ctx, options, dry_run=dry_run, yes=yes, json_output=output is Output.json)
