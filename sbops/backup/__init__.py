"""`sbops backup` and `sbops restore`: one archive holding what a StackBill server cannot lose.

`create(ctx, output, layers)` is the entry point other commands use (`sbops upgrade` takes a backup first):
it writes the archive atomically at 0600 and returns its Manifest. Layers: mysql, mongodb, rabbitmq, cluster.
A layer that fails is recorded in the manifest with its reason; the others are still written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sbops import __version__
from sbops.backup.archive import ArchiveError, Manifest, Progress, Stage, host_name, now_iso, write_archive
from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.context import Context

LAYERS = ("mysql", "mongodb", "rabbitmq", "cluster")

__all__ = ["ArchiveError", "LAYERS", "Manifest", "create", "default_output", "layer_module"]


def layer_module(name: str) -> Any:
    from sbops.backup import cluster, mongodb, mysql, rabbitmq

    return {"mysql": mysql, "mongodb": mongodb, "rabbitmq": rabbitmq, "cluster": cluster}[name]


def default_output(encrypted: bool) -> Path:
    stamp = now_iso().replace("-", "").replace(":", "")
    return Path(f"sbops-backup-{stamp}.tar" + (".enc" if encrypted else ""))


def create(ctx: "Context", output: str | Path, layers: Sequence[str] = LAYERS, *, passphrase: bytes | None = None,
           include_password_hashes: bool = False, progress: Progress | None = None,
           on_layer: Callable[[str, dict[str, Any]], None] | None = None) -> Manifest:
    """Back up `layers` into `output` (refused when it exists); returns the manifest (failures included).

    Raises ArchiveError when the output cannot be written; a failing layer does not raise."""
    path = Path(output)
    if path.exists() or path.is_symlink():
        raise ArchiveError(f"{path}: exists; choose another --output (a backup is never overwritten)")
    if not path.parent.is_dir():
        raise ArchiveError(f"{path.parent}: no such directory")
    progress = progress or Progress(False)
    stage = Stage(path.parent)
    manifest = Manifest(created=now_iso(), host=host_name(), sbops=__version__, encrypted=passphrase is not None)
    try:
        for name in layers:
            module = layer_module(name)
            try:
                if name == "rabbitmq":
                    info = module.backup(ctx, stage, progress, include_password_hashes=include_password_hashes)
                else:
                    info = module.backup(ctx, stage, progress)
                info = {"status": "ok", **info}
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest; the other layers go on
                stage.drop_layer(name)
                info = {"status": "failed", "error": mask_text(f"{type(exc).__name__}: {exc}", ctx.secrets())}
            manifest.layers[name] = info
            if on_layer:
                on_layer(name, info)
        manifest.parts = list(stage.parts)
        progress.show("writing the archive", force=True)
        write_archive(stage, manifest, path, passphrase)
    finally:
        stage.cleanup()
        progress.done()
    manifest.path = str(path)
    manifest.archive_size = os.stat(path).st_size
    return manifest
