"""The command line: parse flags, build a Context, call in, render, choose the exit code. No logic here.

This module builds the app from the commands' modules (doctor, fix, install, uninstall, bundle, backup, rotate,
upgrade, ecr, exporter, tls), which
share their options through sbops.cli.options and never import this module or one another.

Exit codes: 0 all passed, 4 warnings only, 3 a failure or error (or a fix that did not fix),
2 usage error, 1 internal error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from sbops import __version__
from sbops.cli import backup, bundle, doctor, ecr, exporter, fix, install, rotate, tls, uninstall, upgrade
from sbops.cli.options import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_WARN
from sbops.errors import UsageError

__all__ = ["app", "main", "EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_FAILED", "EXIT_WARN", "EXIT_INTERRUPTED"]


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sbops {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:
    """Install, diagnose, repair and monitor a StackBill POC server."""


# `sbops --help` lists the commands in this order, then the groups.
app.command("install")(install.install)
app.command("doctor")(doctor.doctor)
app.command("fix")(fix.fix)
app.command("explain")(doctor.explain)
app.command("uninstall")(uninstall.uninstall)
app.command("bundle")(bundle.bundle)
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
app.command("rotate-credentials")(rotate.rotate_credentials)
app.command("upgrade")(upgrade.upgrade)
app.add_typer(doctor.config_app, name="config")
app.add_typer(ecr.ecr_app, name="ecr")
app.add_typer(exporter.exporter_app, name="exporter")
app.add_typer(tls.tls_app, name="tls")


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
