"""The one place `sbops upgrade` takes its backup through: `sbops.backup.create`, the archive `sbops backup`
writes. Should that module be missing from a build, `available()` says so and the upgrade refuses to run
without `--no-backup`: an upgrade never claims a backup it did not take."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sbops.context import Context

MODULE, FUNCTION = "sbops.backup", "create"


def _creator() -> Any:
    try:
        module = importlib.import_module(MODULE)
    except ImportError:
        return None
    return getattr(module, FUNCTION, None)


def available() -> str:
    """"" when the backup can be taken, else why not."""
    if _creator() is None:
        return (f"{MODULE}.{FUNCTION} (sbops backup) is not part of this build: pass --no-backup to upgrade "
                "without a backup, after taking one yourself")
    return ""


def take(ctx: "Context", output: Path) -> tuple[Path, int]:
    """Write the backup archive to `output` (0600, atomically, never over an existing file: `sbops backup`'s own
    guarantees); returns its path and size. `create` records a failed layer in the manifest instead of raising:
    an upgrade needs every layer, so a failed one raises here, naming it."""
    creator = _creator()
    if creator is None:
        raise RuntimeError(available())
    manifest = creator(ctx, output)
    failures = list(getattr(manifest, "failures", []) or [])
    if failures:
        raise RuntimeError("the backup is incomplete: " + "; ".join(f"{f['layer']}: {f['error']}" for f in failures))
    return Path(getattr(manifest, "path", "") or output), int(getattr(manifest, "archive_size", 0) or 0)
