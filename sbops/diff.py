"""Unified diffs of the files a plan writes, with secrets masked (like Ansible's --diff).

A plan shows what a file would become before it is written. Both sides are masked before they are kept,
so a FileDiff can go into text plans, JSON and logs: known secret values (the credentials file's passwords,
the admin passwords) and the value of any line that looks like a password or key assignment.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable

from sbops.model import FileDiff
from sbops.secret import MASK, Secret, mask_text

# `Password: x`, `password = x`, `secret_key: x`, `token=x` ... : the value part is masked.
_SECRET_LINE = re.compile(
    r"^(?P<key>\s*[\w .-]*(?:password|passwd|secret|token|api[ _-]?key|secret[ _-]?key)[\w .-]*\s*[:=]\s*)"
    r"(?P<value>\S.*?)\s*$",
    re.I,
)


def mask_content(text: str | None, secrets: Iterable[Secret | str | None] = ()) -> str | None:
    """Pure: the text with every known secret value and every password-like assignment's value masked."""
    if text is None:
        return None
    text = mask_text(text, list(secrets))
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        match = _SECRET_LINE.match(body)
        if match and match.group("value") != MASK:
            body = match.group("key") + MASK
        out.append(body + ending)
    return "".join(out)


def file_diff(path: str, before: str | None, after: str | None,
              secrets: Iterable[Secret | str | None] = ()) -> FileDiff:
    """A FileDiff with both sides masked: the only way plans should build one."""
    secrets = list(secrets)
    return FileDiff(str(path), mask_content(before, secrets), mask_content(after, secrets))


def unified(diff: FileDiff, context: int = 3) -> list[str]:
    """Pure: the unified diff lines of a FileDiff (no line endings), `--- path` / `+++ path` headers first.

    A new file diffs against /dev/null, a deleted one against /dev/null on the other side, as diff(1) does.
    """
    before = [] if diff.before is None else diff.before.splitlines()
    after = [] if diff.after is None else diff.after.splitlines()
    old = "/dev/null" if diff.before is None else f"{diff.path} (current)"
    new = "/dev/null" if diff.after is None else f"{diff.path} (new)"
    lines = list(difflib.unified_diff(before, after, old, new, n=context, lineterm=""))
    if not lines and diff.before != diff.after:
        lines = [f"--- {old}", f"+++ {new}", "@@ only line endings or the final newline differ @@"]
    return lines


def as_json(diff: FileDiff) -> dict[str, object]:
    """The JSON form: path, before, after (masked) and the unified diff text."""
    return {"path": diff.path, "before": diff.before, "after": diff.after, "diff": "\n".join(unified(diff))}
