"""`sbops bundle`: one archive with everything support needs, redacted and verified; `--check` an archive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from sbops.cli.options import EXIT_FAILED, ConfigOpt, CredsOpt, KubeOpt, Output, OutputOpt, TimeoutOpt, context
from sbops.errors import UsageError


def bundle(
    output_file: Optional[str] = typer.Option(None, "--output-file", "-f", metavar="FILE",
                                              help="archive to write (default: ./sbops-bundle-HOST-TIME.tar.gz)"),
    since: Optional[str] = typer.Option(None, "--since", metavar="DURATION", help="logs newer than this (30m, 2h, 1d) instead of the last --lines"),
    lines: int = typer.Option(2000, "--lines", metavar="N", help="last N lines of each log (default 2000)"),
    layer: Optional[List[str]] = typer.Option(None, "--layer", "-l", metavar="LAYER", help="only this layer's checks in doctor.json (repeatable)"),
    no_logs: bool = typer.Option(False, "--no-logs", help="leave logs/ out"),
    max_size: Optional[str] = typer.Option(None, "--max-size", metavar="SIZE", help="at most this many bytes uncompressed (20M, 1G): logs are cut first, newest lines kept"),
    deadline: float = typer.Option(90.0, "--deadline", metavar="SECONDS", help="collection stops waiting after this; what is unfinished is listed in the manifest"),
    check: Optional[str] = typer.Option(None, "--check", metavar="FILE", help="only verify an existing archive against every secret sbops can read here"),
    output: Output = OutputOpt,
    config: Optional[str] = ConfigOpt,
    credentials: Optional[str] = CredsOpt,
    timeout: Optional[float] = TimeoutOpt,
    kubeconfig: Optional[str] = KubeOpt,
) -> None:
    """Write a support bundle (.tar.gz): doctor results, host facts, configs, logs and cluster state, with every
    known secret redacted in every form, verified after writing. Open index.html in it first.

    Example: sbops bundle --since 2h --max-size 50M; sbops bundle --check sbops-bundle-host-20260101T000000Z.tar.gz
    """
    import json

    from sbops.bundle import build as bundle_mod
    from sbops.bundle.logs import Window, parse_duration
    from sbops.bundle.manifest import parse_size
    from sbops.bundle.verify import BadArchive

    try:
        window = Window(lines=lines, since=parse_duration(since) if since else None)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    if lines <= 0:
        raise UsageError(f"--lines: must be a positive number, got {lines}")
    try:
        size = parse_size(max_size) if max_size else None
    except ValueError as exc:
        raise UsageError(f"--max-size: {exc}") from None
    if not deadline > 0:
        raise UsageError(f"--deadline: must be a positive number of seconds, got {deadline:g}")
    if layer:
        from sbops.registry import load_all

        load_all().select(layer, None)  # an unknown layer is a usage error here, not a failed collector
    ctx = context(config, credentials, timeout, kubeconfig)
    if check:
        path = Path(check)
        if not path.is_file():
            raise UsageError(f"--check: {path}: no such file")
        known, problems = bundle_mod.known_here(ctx)
        try:
            findings, table = bundle_mod.check(path, known)
        except BadArchive as exc:
            raise UsageError(f"--check: {exc}") from None
        ctx.close()
        if output is Output.json:
            typer.echo(json.dumps({"archive": str(path), "ok": not findings, "known_secrets": table.count,
                                   "findings": [f.__dict__ for f in findings], "problems": problems}, indent=2))
        else:
            for problem in problems:
                sys.stderr.write(f"warning: {problem}\n")
            for finding in findings:
                typer.echo(f"LEAK {finding.describe()}")
            typer.echo(f"{path}: {'known secrets found: do not send it' if findings else 'no known secret found'} "
                       f"({table.count} secrets searched in every form)")
        if findings:
            raise typer.Exit(EXIT_FAILED)
        return
    target = Path(output_file) if output_file else bundle_mod.default_output()
    if target.exists() and target.is_dir():
        raise UsageError(f"--output-file: {target} is a directory")
    if not target.parent.exists():
        raise UsageError(f"--output-file: {target.parent}: no such directory")
    opts = bundle_mod.Options(output=target, window=window, layers=list(layer or []), no_logs=no_logs,
                              max_size=size, deadline=deadline)
    tty = sys.stderr.isatty() and output is Output.text

    def progress(text: str) -> None:
        sys.stderr.write(f"\r{text[:110]:<110}")
        sys.stderr.flush()

    try:
        built = bundle_mod.build(ctx, opts, progress if tty else None)
    except bundle_mod.LeakFound as exc:
        if tty:
            sys.stderr.write("\r" + " " * 110 + "\r")
        sys.stderr.write(f"sbops: {exc}\n")
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        ctx.close()
    if tty:
        sys.stderr.write("\r" + " " * 110 + "\r")
    doc = built.manifest
    if output is Output.json:
        typer.echo(json.dumps({"archive": str(built.path), "size": built.size, "seconds": round(built.seconds, 3),
                               "files": len(doc["files"]), "redactions": doc["redaction"]["total"],
                               "not_collected": doc["not_collected"], "truncated": doc["truncated"]}, indent=2))
        return
    typer.echo(f"wrote {built.path} ({built.size} bytes, {len(doc['files'])} files, "
               f"{doc['redaction']['total']} values redacted, verified) in {built.seconds:.1f}s")
    for line in doc["not_collected"]:
        typer.echo(f"  not collected: {line}")
    typer.echo("Open index.html in it first; check it again before sending: sbops bundle --check FILE")
