"""`sbops uninstall`: the command line of the uninstaller (flags of the original uninstall.sh plus sbops's own)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import typer

from sbops.cli.options import ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt, check_timeout, colour
from sbops.errors import UsageError

if TYPE_CHECKING:
    from sbops.context import Context

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,51}[a-z0-9])?$")  # Helm 3: at most 53 characters


def uninstall(
    namespace: Optional[str] = typer.Option(None, "--namespace", "-n", metavar="NS",
                                            help="namespace of the release (default: setting namespace, sb-apps)"),
    release: Optional[str] = typer.Option(None, "--release", "-r", metavar="NAME",
                                          help="Helm release (default: setting release, stackbill)"),
    delete_pvc: bool = typer.Option(False, "--delete-pvc", help="also delete the namespace's PVCs (their data follows "
                                                               "the volumes' reclaim policy)"),
    delete_namespace: bool = typer.Option(False, "--delete-namespace",
                                          help="also delete the namespace (with its PVCs) and the TLS secret"),
    delete_db: bool = typer.Option(False, "--delete-db", help="also drop the MySQL databases and the StackBill users "
                                                             "of MySQL, MongoDB and RabbitMQ, then the credentials file"),
    delete_mongo_data: bool = typer.Option(False, "--delete-mongo-data",
                                           help="also drop every MongoDB database but admin, config and local"),
    purge_packages: bool = typer.Option(False, "--purge-packages",
                                        help="also purge the installed database and NFS packages with apt-get "
                                             "(setting uninstall.packages), as uninstall.sh --delete-db does"),
    delete_data_dirs: bool = typer.Option(False, "--delete-data-dirs",
                                          help="also delete their data directories (setting uninstall.data_dirs, and "
                                               "nfs.path); refused for a directory a running process uses"),
    backup_to: Optional[str] = typer.Option(None, "--backup-to", metavar="FILE",
                                            help="with --delete-db: first back up the databases and the cluster's "
                                                 "StackBill objects into FILE (sbops backup); stop if that fails"),
    no_backup: bool = typer.Option(False, "--no-backup", help="with --delete-db: go on without a backup (needed when "
                                                             "standard input is not a terminal and --backup-to is not given)"),
    force: bool = typer.Option(False, "--force", help="do not ask for confirmation (as uninstall.sh --force)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="same as --force"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be deleted and change nothing"),
    wait: float = typer.Option(120.0, "--wait", metavar="SECONDS",
                               help="how long PVCs and the namespace may take to finish terminating"),
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Remove StackBill: its Helm release, and with flags its volumes, namespace and databases.

    Lists what each level would delete, measured on this server, and asks once. Never removes K3s or Istio;
    the database packages and their data directories only with --purge-packages and --delete-data-dirs.

    --delete-db first offers a backup (sbops backup): --backup-to FILE takes it, --no-backup declines.

    Example: sbops uninstall --delete-pvc --delete-db --backup-to /root/before-uninstall.tar
    """
    from sbops.uninstall.plan import Levels
    from sbops.uninstall.flow import run

    if namespace is not None and not DNS_LABEL.match(namespace):
        raise UsageError(f"--namespace: {namespace!r} is not a valid namespace name (lower case letters, digits, '-')")
    if release is not None and not RELEASE_NAME.match(release):
        raise UsageError(f"--release: {release!r} is not a valid Helm release name (lower case letters, digits, '-', "
                         "'.'; at most 53 characters)")
    if wait < 0:
        raise UsageError(f"--wait: must be zero or more seconds, got {wait:g}")
    ctx = context(config, credentials, timeout, kubeconfig, namespace, release)
    from sbops.probes.k8s import PROTECTED_NAMESPACES

    ns = str(ctx.settings["namespace"])
    if delete_namespace and ns in PROTECTED_NAMESPACES:
        raise UsageError(f"--delete-namespace: refusing to delete namespace {ns}: it is not StackBill's")
    if (backup_to or no_backup) and not delete_db:
        raise UsageError("--backup-to and --no-backup go with --delete-db")
    if backup_to and no_backup:
        raise UsageError("--backup-to and --no-backup exclude each other")
    if delete_db and not dry_run:
        offer_backup(ctx, backup_to, no_backup, output is Output.json)
    levels = Levels(pvc=delete_pvc, namespace=delete_namespace, db=delete_db, mongo_data=delete_mongo_data,
                    purge_packages=purge_packages, data_dirs=delete_data_dirs)
    code = run(ctx, str(ctx.settings["release"]), levels, yes=yes or force, dry_run=dry_run, wait=wait,
               json_output=output is Output.json, colour=colour())
    raise typer.Exit(code)


def offer_backup(ctx: "Context", backup_to: Optional[str], no_backup: bool, json_output: bool) -> None:
    """Before --delete-db: back up into --backup-to, or ask on a terminal; refuse without a terminal unless
    --no-backup. A backup whose database layers failed stops the uninstall (exit 3); nothing is deleted."""
    import sys

    from sbops import backup
    from sbops.backup.archive import ArchiveError, Progress, human

    if no_backup:
        return
    if backup_to is None:
        if not sys.stdin.isatty():
            raise UsageError("--delete-db: add --backup-to FILE to take a backup first, or --no-backup to go on "
                             "without one (standard input is not a terminal)")
        if not typer.confirm("--delete-db drops the databases. Take a backup first?", default=True, err=True):
            return
        backup_to = typer.prompt("Backup file", default=str(backup.default_output(False)), err=True)
    say = (lambda text: typer.echo(text, err=True)) if json_output else typer.echo
    try:
        manifest = backup.create(ctx, str(backup_to), backup.LAYERS, progress=Progress(None if not json_output else False))
    except ArchiveError as exc:
        raise UsageError(f"--backup-to: {exc}") from None
    failed = [f for f in manifest.failures if f["layer"] != "cluster"]
    for failure in manifest.failures:
        say(f"backup: layer {failure['layer']} failed: {failure['error']}")
    if failed:
        say(f"Backup {backup_to} is incomplete ({', '.join(f['layer'] for f in failed)}): nothing was deleted.")
        raise typer.Exit(3)
    say(f"Backup written: {backup_to} ({human(manifest.archive_size)}, mode 0600)")


def context(config: Optional[str], credentials: Optional[str], timeout: Optional[float], kubeconfig: Optional[str],
            namespace: Optional[str], release: Optional[str]) -> "Context":
    """Like the other commands' Context, except that a credentials file that does not exist is not an error:
    after `--delete-db` it is gone, and running uninstall again must say so rather than refuse."""
    from sbops import credentials as creds_mod
    from sbops import kube
    from sbops.context import Context
    from sbops.settings import Settings

    check_timeout(timeout)
    settings = Settings.load(config, flags={"timeout": timeout, "kubeconfig": kubeconfig, "namespace": namespace,
                                            "release": release})
    path = creds_mod.find(credentials)
    loaded = creds_mod.load(path) if path is not None and path.exists() else None
    return Context(settings, loaded, path, None, kube.find(settings["kubeconfig"]))
