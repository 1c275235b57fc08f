"""`sbops backup` and `sbops restore`: parse flags, build a Context, call sbops.backup, render, exit code.

Exit codes: 0 every layer backed up (restored and verified); 3 a layer failed, was not verified, or the restore
was declined; 2 a bad flag, a passphrase file that cannot be read, or an archive refused as truncated or tampered.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from sbops.cli.options import ConfigOpt, CredsOpt, KubeOpt, TimeoutOpt, context
from sbops.errors import UsageError

EXIT_OK, EXIT_FAILED = 0, 3


class Format(str, Enum):
    text = "text"
    json = "json"


FormatOpt = typer.Option(Format.text, "--format", help="text or json (--output names the archive file)")
LayerOpt = typer.Option(None, "--layer", "-l", metavar="LAYER",
                        help="only this layer: mysql, mongodb, rabbitmq or cluster (repeatable; default: all)")
PassOpt = typer.Option(None, "--passphrase-file", metavar="FILE",
                       help="encrypt (backup) or decrypt (restore) with the passphrase on this file's first line "
                            "(scrypt + AES-256-GCM)")


def _layers(values: Optional[List[str]]) -> list[str]:
    from sbops.backup import LAYERS

    chosen = []
    for value in values or []:
        for name in value.split(","):
            name = name.strip()
            if name not in LAYERS:
                raise UsageError(f"--layer: unknown layer {name!r} (choose from {', '.join(LAYERS)})")
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def _passphrase(path: Optional[str]) -> Optional[bytes]:
    from sbops.backup.crypto import read_passphrase

    if path is None:
        return None
    try:
        return read_passphrase(path)
    except ValueError as exc:
        raise UsageError(f"--passphrase-file: {exc}") from None


def backup(
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE",
                                         help="the archive to write (default: ./sbops-backup-<UTC time>.tar[.enc]); "
                                              "never overwritten"),
    layer: Optional[List[str]] = LayerOpt,
    passphrase_file: Optional[str] = PassOpt,
    include_password_hashes: bool = typer.Option(False, "--include-password-hashes",
                                                 help="keep RabbitMQ users' password hashes (so restore re-creates "
                                                      "every user)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be backed up, and where; write nothing"),
    fmt: Format = FormatOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Back up MySQL, MongoDB, RabbitMQ and the cluster's StackBill objects into one 0600 archive.

    The archive holds the passwords and keys the server runs on (that is its point): it is written at mode 0600,
    atomically, and with --passphrase-file encrypted. A manifest lists every part's sha256 and size, the versions,
    and what failed and why; a layer that fails does not stop the others (exit 3).

    Example: sbops backup --output /root/stackbill-backup.tar --passphrase-file /root/backup-pass
    """
    from sbops import backup as backup_mod
    from sbops.backup.archive import ArchiveError, Progress, human

    layers = _layers(layer) or list(backup_mod.LAYERS)
    passphrase = _passphrase(passphrase_file)
    path = Path(output) if output else backup_mod.default_output(passphrase is not None)
    ctx = context(config, credentials, timeout, kubeconfig)
    as_json = fmt is Format.json
    if dry_run:
        if as_json:
            typer.echo(json.dumps({"result": "dry-run", "output": str(path), "layers": layers,
                                   "encrypted": passphrase is not None}, indent=2))
        else:
            typer.echo(f"Would back up {', '.join(layers)} into {path} (mode 0600"
                       f"{', encrypted' if passphrase else ''}); nothing written.")
        raise typer.Exit(EXIT_OK)

    def said(name: str, info: dict) -> None:
        if not as_json:
            typer.echo(f"  {name:<9} {'ok' if info['status'] == 'ok' else 'FAILED: ' + str(info.get('error', ''))}")

    if not as_json:
        typer.echo(f"Backing up {', '.join(layers)} into {path}")
    try:
        manifest = backup_mod.create(ctx, path, layers, passphrase=passphrase,
                                     include_password_hashes=include_password_hashes,
                                     progress=Progress(None if not as_json else False), on_layer=said)
    except ArchiveError as exc:
        raise UsageError(f"--output: {exc}") from None
    finally:
        ctx.close()
    failed = manifest.failures
    if as_json:
        doc = {"result": "partial" if failed else "ok", "output": str(path), "bytes": manifest.archive_size,
               "encrypted": manifest.encrypted, **manifest.as_dict()}
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        typer.echo(f"Wrote {path} ({human(manifest.archive_size)}, {len(manifest.parts)} parts, mode 0600"
                   f"{', encrypted' if manifest.encrypted else ''})"
                   + (f"; {len(failed)} layer(s) failed" if failed else ""))
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def restore(
    archive: str = typer.Argument(..., metavar="ARCHIVE", help="an archive written by sbops backup"),
    layer: Optional[List[str]] = LayerOpt,
    passphrase_file: Optional[str] = PassOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    dry_run: bool = typer.Option(False, "--dry-run", help="verify the archive and show the plan; change nothing"),
    fmt: Format = FormatOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Restore from an archive of sbops backup: verify it, show the plan, ask, apply, verify the result.

    A truncated or tampered archive is refused with the part named, before anything changes. Afterwards each
    layer is checked against the manifest: row counts per table, document counts per collection, RabbitMQ
    definitions and cluster objects present.

    Example: sbops restore /root/stackbill-backup.tar --layer mysql --dry-run
    """
    from sbops.backup import restore as restore_mod
    from sbops.backup.archive import ArchiveError, Progress, open_archive

    layers = _layers(layer)
    passphrase = _passphrase(passphrase_file)
    if not Path(archive).is_file():
        raise UsageError(f"ARCHIVE: {archive}: no such file")
    as_json = fmt is Format.json
    try:
        opened = open_archive(Path(archive), passphrase)
    except ArchiveError as exc:
        raise UsageError(f"{archive}: refused: {exc}") from None
    try:
        plans = restore_mod.choose_layers(opened, layers)
        if not as_json:
            typer.echo(restore_mod.render_plan(opened, plans), nl=False)
        if dry_run:
            _finish(as_json, restore_mod.document(opened, plans, None, "dry-run"), EXIT_OK)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("restore replaces data: add --yes to confirm (standard input is not a terminal)")
            if not typer.confirm("Restore as planned?", default=False):
                _finish(as_json, restore_mod.document(opened, plans, None, "declined"), EXIT_FAILED)
        ctx = context(config, credentials, timeout, kubeconfig)
        try:
            outcomes = restore_mod.apply(ctx, opened, plans, Progress(None if not as_json else False))
        finally:
            ctx.close()
        bad = [o for o in outcomes if o.status in ("failed", "not-verified")]
        if not as_json:
            for o in outcomes:
                typer.echo(f"  {o.layer:<9} {o.status}" + (f": {o.error}" if o.error else ""))
                for problem in o.problems:
                    typer.echo(f"      {problem}")
            typer.echo("Restored and verified." if not bad else f"{len(bad)} layer(s) not restored or not verified.")
        _finish(as_json, restore_mod.document(opened, plans, outcomes, "restored" if not bad else "incomplete"),
                EXIT_FAILED if bad else EXIT_OK)
    finally:
        opened.cleanup()


def _finish(as_json: bool, doc: dict, code: int) -> None:
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    raise typer.Exit(code)
