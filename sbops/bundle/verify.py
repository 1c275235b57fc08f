"""Verification of a written bundle: every member scanned again for every known secret in every form.

The pure part (`scan_members`) takes (name, bytes) pairs and a `Table`; `scan_archive` is the edge that reads a
.tar.gz. A finding names the member and the form, never the secret.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sbops.bundle.redact import Table


@dataclass(frozen=True)
class Finding:
    member: str
    kind: str    # the form found: plain, base64, url, json, wrapped
    count: int

    def describe(self) -> str:
        return f"{self.member}: {self.count} known secret(s) found ({self.kind})"


def scan_members(members: Iterable[tuple[str, bytes]], table: Table) -> list[Finding]:
    found: list[Finding] = []
    for name, data in members:
        kinds: dict[str, int] = {}
        for hit in table.find(data):
            kinds[hit.kind] = kinds.get(hit.kind, 0) + 1
        found.extend(Finding(name, kind, n) for kind, n in sorted(kinds.items()))
    return found


class BadArchive(Exception):
    """Not a readable .tar.gz (the message names the file)."""


def read_members(path: Path) -> Iterable[tuple[str, bytes]]:
    """Each regular member's name and bytes (member names are scanned too: a secret can hide in a name)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                yield "(member name)", info.name.encode()
                if info.isfile():
                    handle = tar.extractfile(info)
                    yield info.name, handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadArchive(f"{path}: not a readable .tar.gz ({exc})") from None


def scan_archive(path: Path, table: Table) -> list[Finding]:
    return scan_members(read_members(path), table)
