"""The one place `sbops upgrade` takes its backup through: `sbops.backup.create`, the archive `sbops backup`
writes (branch h17-backup builds it). Until that module is part of this build, `available()` says so and the
upgrade refuses to run without `--no-backup`: an upgrade never claims a backup it did not take."""

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


def take(ctx: "Context", output: Path) -> Path:
    """Write the backup archive to `output` (0600, atomically: sbops backup's own guarantees); return its path."""
    creator = _creator()
    if creator is None:
        raise RuntimeError(available())
    result = creator(ctx, output=output)
    return Path(result) if isinstance(result, (str, Path)) else output
