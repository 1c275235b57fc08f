"""The files the installer downloads or takes from --artifacts-dir, each verified by sha256 before use.

Online: the file is downloaded next to the sha256 file its publisher puts beside it (K3s's
sha256sum-<arch>.txt, Helm's .sha256sum, Istio's .sha256) and checked against it; downloads are cached
in install.download_dir and re-verified when reused.
Air-gapped (--artifacts-dir DIR): DIR holds the files under their published names and a manifest
DIR/SHA256SUMS in `sha256sum` format ("<64 hex>  <name>"); a file that is not listed or does not match
is refused. `images/*.tar*` listed in the manifest are extra container images for K3s to import.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sbops.errors import UsageError
from sbops.versions import Artifact

MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$")


class FetchError(Exception):
    """A download failed; the message names the URL and why."""


class Fetcher(Protocol):
    def get(self, url: str) -> bytes: ...

    def download(self, url: str, dest: Path) -> None: ...


@dataclass
class HttpFetcher:
    """requests with connect/read timeouts; large files are streamed to disk."""

    connect_timeout: float = 15.0
    read_timeout: float = 120.0

    def get(self, url: str) -> bytes:
        import requests

        try:
            response = requests.get(url, timeout=(self.connect_timeout, self.read_timeout))
        except requests.RequestException as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        if response.status_code != 200:
            raise FetchError(f"{url}: HTTP {response.status_code}")
        return response.content

    def download(self, url: str, dest: Path) -> None:
        import requests

        try:
            with requests.get(url, stream=True, timeout=(self.connect_timeout, self.read_timeout)) as response:
                if response.status_code != 200:
                    raise FetchError(f"{url}: HTTP {response.status_code}")
                with open(dest, "wb") as handle:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        handle.write(chunk)
        except requests.RequestException as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None


def parse_sums(text: str, where: str) -> dict[str, str]:
    """Pure: `sha256sum` output -> {file name: lower-case hex}; a malformed line names where and which line."""
    out = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise UsageError(f"{where}:{number}: expected '<sha256 hex>  <file name>'")
        out[match.group(2).removeprefix("./")] = match.group(1).lower()
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Artifacts:
    """Where each artifact comes from, verified. `directory` set: air-gapped, never downloads."""

    directory: Path | None
    download_dir: Path
    fetcher: Fetcher
    _manifest: dict[str, str] | None = None
    _verified: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (path, size, mtime) -> sha256

    @property
    def offline(self) -> bool:
        return self.directory is not None

    def manifest(self) -> dict[str, str]:
        if self._manifest is None:
            assert self.directory is not None
            path = self.directory / MANIFEST
            try:
                text = path.read_text()
            except FileNotFoundError:
                raise UsageError(f"--artifacts-dir: {path} not found (a sha256sum manifest of the artifacts)") from None
            except OSError as exc:
                raise UsageError(f"--artifacts-dir: cannot read {path}: {exc.strerror or exc}") from None
            self._manifest = parse_sums(text, str(path))
        return self._manifest

    def _digest(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._verified:
            self._verified[key] = sha256_of(path)
        return self._verified[key]

    def check(self, name: str) -> str:
        """Air-gapped: why DIR/name cannot be used ('' when it is listed and matches)."""
        assert self.directory is not None
        want = self.manifest().get(name)
        path = self.directory / name
        if want is None:
            return f"--artifacts-dir: {name} is not listed in {self.directory / MANIFEST}"
        if not path.is_file():
            return f"--artifacts-dir: {path} is listed in {MANIFEST} but missing"
        got = self._digest(path)
        if got != want:
            return f"--artifacts-dir: {path} does not match {MANIFEST} (sha256 {got[:12]}..., expected {want[:12]}...)"
        return ""

    def verify_all(self) -> list[str]:
        """Air-gapped: every file the manifest lists must be there and match (run before anything changes)."""
        return [p for p in (self.check(name) for name in sorted(self.manifest())) if p]

    def extra_images(self) -> list[Path]:
        """Air-gapped: image tarballs for K3s to import (images/*.tar, *.tar.gz, *.tar.zst in the manifest)."""
        if self.directory is None:
            return []
        return [self.directory / n for n in sorted(self.manifest())
                if n.startswith("images/") and re.search(r"\.tar(\.gz|\.zst)?$", n)]

    def find(self, pattern: str) -> list[str]:
        """Air-gapped: manifest names matching a regex (the chart: `stackbill-.*\\.tgz`)."""
        return sorted(n for n in self.manifest() if re.fullmatch(pattern, n))

    def source(self, artifact: Artifact) -> str:
        """For plans: where the file will come from."""
        if self.directory is not None:
            return f"{self.directory / artifact.name} (sha256 checked against {MANIFEST})"
        return f"{artifact.url} (sha256 checked against {artifact.checksum_url.rsplit('/', 1)[-1]})"

    def get(self, artifact: Artifact) -> Path:
        """A verified local copy of the artifact; raises RuntimeError saying why there is none."""
        if self.directory is not None:
            problem = self.check(artifact.name)
            if problem:
                raise RuntimeError(problem)
            return self.directory / artifact.name
        try:
            sums = parse_sums(self.fetcher.get(artifact.checksum_url).decode("utf-8", "replace"), artifact.checksum_url)
        except (FetchError, UsageError) as exc:
            raise RuntimeError(f"cannot get the checksum of {artifact.what}: {exc}") from None
        want = sums.get(artifact.name) or (next(iter(sums.values())) if len(sums) == 1 else None)
        if want is None:
            raise RuntimeError(f"{artifact.checksum_url} does not list {artifact.name}")
        self.download_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.download_dir / artifact.name
        if target.is_file() and self._digest(target) == want:
            return target
        fd, tmp = tempfile.mkstemp(prefix=f".{artifact.name}.", dir=self.download_dir)
        os.close(fd)
        try:
            self.fetcher.download(artifact.url, Path(tmp))
            got = sha256_of(Path(tmp))
            if got != want:
                raise RuntimeError(f"{artifact.url}: sha256 {got[:12]}... does not match the published {want[:12]}...")
            os.replace(tmp, target)
        except FetchError as exc:
            raise RuntimeError(f"cannot download {artifact.what}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target
