"""The backup archive: a tar whose first member is manifest.json, then one member per part.

The manifest lists every part with its layer, size and sha256, each layer's versions and facts (row counts,
document counts, definitions) and what failed and why. Reading verifies before anything is used: a member
missing (the archive was cut short), a size or digest that differs (tampered or damaged) or a tar that ends
inside a member is refused with the part named.

Parts are first written to a private staging directory (0700) beside the output, so the tar can be written
with sizes known and the output appears only when complete (os.replace of a 0600 temporary file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

FORMAT = "sbops-backup/1"
MANIFEST = "manifest.json"
COPY = 1 << 20


class ArchiveError(Exception):
    """The archive cannot be used: truncated, tampered, not an sbops backup. The message names the part."""


@dataclass
class Part:
    name: str  # path inside the archive: mysql/dump.sql
    layer: str
    size: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "size": self.size, "sha256": self.sha256}


@dataclass
class Manifest:
    """What the archive holds. `layers[name]` has "status" (ok/failed), "error", "versions" and layer facts."""

    created: str = ""
    host: str = ""
    sbops: str = ""
    encrypted: bool = False
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    path: str = ""  # where it was written (not stored)
    archive_size: int = 0  # not stored

    @property
    def failures(self) -> list[dict[str, str]]:
        return [{"layer": name, "error": str(info.get("error", ""))}
                for name, info in self.layers.items() if info.get("status") != "ok"]

    def parts_of(self, layer: str) -> list[Part]:
        return [p for p in self.parts if p.layer == layer]

    def size_of(self, layer: str) -> int:
        return sum(p.size for p in self.parts_of(layer))

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "created": self.created, "host": self.host, "sbops": self.sbops,
                "layers": self.layers, "parts": [p.as_dict() for p in self.parts], "failures": self.failures}

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArchiveError(f"{MANIFEST}: not an sbops backup manifest (format {data.get('format') if isinstance(data, dict) else None!r})")
        try:
            parts = [Part(str(p["name"]), str(p["layer"]), int(p["size"]), str(p["sha256"])) for p in data["parts"]]
            layers = {str(k): dict(v) for k, v in data["layers"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"{MANIFEST}: damaged ({type(exc).__name__}: {exc})") from None
        for part in parts:
            if part.name == MANIFEST or part.name.startswith("/") or ".." in part.name.split("/"):
                raise ArchiveError(f"{MANIFEST}: unsafe part name {part.name!r}")
        return cls(created=str(data.get("created", "")), host=str(data.get("host", "")),
                   sbops=str(data.get("sbops", "")), layers=layers, parts=parts)


class Stage:
    """A private directory the layers write their parts into; digests and sizes are taken as they are added."""

    def __init__(self, near: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=".sbops-backup-", dir=near))
        os.chmod(self.root, 0o700)
        self.parts: list[Part] = []

    def path(self, name: str) -> Path:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return target

    def open(self, name: str) -> IO[bytes]:
        """A new 0600 file for part `name` (call add() once it is closed)."""
        target = self.path(name)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "wb")

    def write(self, name: str, layer: str, data: bytes) -> Part:
        with self.open(name) as handle:
            handle.write(data)
        return self.add(name, layer)

    def add(self, name: str, layer: str) -> Part:
        part = Part(name, layer, *file_digest(self.root / name))
        self.parts.append(part)
        return part

    def drop_layer(self, layer: str) -> None:
        """Forget a failed layer's parts (its files go with the stage)."""
        self.parts = [p for p in self.parts if p.layer != layer]

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def host_name() -> str:
    return socket.gethostname()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    return info


def write_tar(stage: Stage, manifest: Manifest, target: IO[bytes]) -> None:
    """manifest.json first, then the parts in the manifest's order (plain tar: dumps are copied, not re-packed)."""
    body = json.dumps(manifest.as_dict(), indent=2, sort_keys=True).encode()
    with tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        import io

        tar.addfile(_tarinfo(MANIFEST, len(body)), io.BytesIO(body))
        for part in manifest.parts:
            with open(stage.root / part.name, "rb") as handle:
                tar.addfile(_tarinfo(part.name, part.size), handle)


def temp_beside(path: Path) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o600)
    return fd, tmp


def publish(tmp: str, path: Path) -> None:
    """fsync, rename into place, fsync the directory."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_archive(stage: Stage, manifest: Manifest, path: Path, passphrase: bytes | None) -> None:
    """The archive at `path`, 0600, atomically: a temporary file beside it, renamed when complete."""
    from sbops.backup import crypto

    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as out:
            if passphrase is None:
                write_tar(stage, manifest, out)
            else:
                plain_fd, plain = tempfile.mkstemp(prefix=".plain-", dir=stage.root)
                with os.fdopen(plain_fd, "w+b") as clear:
                    write_tar(stage, manifest, clear)
                    clear.seek(0)
                    crypto.encrypt_stream(clear, out, passphrase)
                os.unlink(plain)
        publish(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- reading ------------------------------------------------------------------------------------------------
@dataclass
class Opened:
    """A verified archive unpacked into a private directory; `file(name)` is a part's path."""

    manifest: Manifest
    root: Path

    def file(self, name: str) -> Path:
        return self.root / name

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        try:
            info = tar.next()
        except (tarfile.ReadError, EOFError) as exc:
            raise ArchiveError(f"the archive is truncated or damaged after its last complete part ({exc})") from None
        if info is None:
            return
        yield info


def open_archive(path: Path, passphrase: bytes | None, work: Path | None = None) -> Opened:
    """Decrypt when needed, unpack into a 0700 directory and verify every part against the manifest.

    Raises ArchiveError naming the part that is missing, cut short, or differs from its digest."""
    from sbops.backup import crypto

    path = Path(path)
    root = Path(tempfile.mkdtemp(prefix=".sbops-restore-", dir=work))
    os.chmod(root, 0o700)
    try:
        source = path
        if crypto.is_encrypted(path):
            if passphrase is None:
                raise ArchiveError(f"{path} is encrypted: give --passphrase-file FILE")
            source = root / ".plain.tar"
            fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                try:
                    crypto.decrypt_stream(src, dst, passphrase)
                except crypto.CryptoError as exc:
                    raise ArchiveError(str(exc)) from None
        opened = Opened(_unpack(source, root), root)
        opened.manifest.encrypted = source != path
        if source != path:
            os.unlink(source)
        return opened
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _unpack(source: Path, root: Path) -> Manifest:
    try:
        tar = tarfile.open(source, mode="r|")
    except (tarfile.ReadError, EOFError) as exc:
        raise ArchiveError(f"{source}: not a backup archive ({exc})") from None
    with tar:
        members = _members(tar)
        first = next(members, None)
        if first is None or first.name != MANIFEST:
            raise ArchiveError(f"{MANIFEST} is missing: not an sbops backup, or truncated at its start")
        handle = tar.extractfile(first)
        try:
            manifest = Manifest.from_dict(json.loads(handle.read() if handle else b""))
        except (ValueError, tarfile.ReadError, EOFError) as exc:
            raise ArchiveError(f"{MANIFEST} is truncated or damaged ({exc})") from None
        wanted = {p.name: p for p in manifest.parts}
        seen: set[str] = set()
        for info in members:
            part = wanted.get(info.name)
            if part is None or not info.isfile():
                raise ArchiveError(f"part {info.name}: not listed in the manifest (tampered)")
            if info.name in seen:
                raise ArchiveError(f"part {info.name}: appears twice (tampered)")
            seen.add(info.name)
            target = root / part.name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            digest, size = hashlib.sha256(), 0
            stream = tar.extractfile(info)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                try:
                    while chunk := stream.read(COPY):  # type: ignore[union-attr]
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                except (tarfile.ReadError, EOFError, OSError) as exc:
                    raise ArchiveError(f"part {part.name}: truncated ({size} of {part.size} bytes; {exc})") from None
            if size != part.size:
                raise ArchiveError(f"part {part.name}: {size} bytes, the manifest says {part.size} (truncated or tampered)")
            if digest.hexdigest() != part.sha256:
                raise ArchiveError(f"part {part.name}: sha256 differs from the manifest (tampered or damaged)")
        missing = [name for name in wanted if name not in seen]
        if missing:
            raise ArchiveError(f"the archive is truncated: part {missing[0]} is missing"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return manifest


class Progress:
    """One updating status line on stderr, only when stderr is a terminal (and not for JSON output)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        sys.stderr.write("\r\x1b[K" + text[:150])
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def count_differences(expected: dict[str, int], observed: dict[str, int], unit: str) -> list[str]:
    """Pure: 'NAME: N <unit>, expected M' for each table or collection whose count differs, or that is missing."""
    out = []
    for name, count in sorted(expected.items()):
        got = observed.get(name)
        if got is None:
            out.append(f"{name}: missing, expected {count} {unit}")
        elif got != count:
            out.append(f"{name}: {got} {unit}, expected {count}")
    return out
