"""A string wrapper that never prints itself, so secrets cannot leak through str(), repr() or f-strings.

Masking works on text and on plain data, never on serialized JSON: a secret such as `2049`, `true` or
`": "` replaced inside a JSON document breaks the document, and one holding `"`, `\\`, a tab or non-ASCII
is escaped by the serializer and so never found. `mask_value` therefore masks the string leaves of the data
(keys included) before anything is serialized.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

MASK = "****"
MIN_LENGTH = 3  # shorter values would mask ordinary text ("1", "ok"); no installer generates them


class Secret:
    """Holds a password or token; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return "Secret('****')"

    def __format__(self, spec: str) -> str:
        return MASK


def _values(secrets: "Iterable[Secret | str | None]") -> list[str]:
    """The maskable values, longest first (so a secret containing another is masked whole). A value made
    only of the mask's `*` is left out: it cannot be told from the mask itself."""
    found = {s.reveal() if isinstance(s, Secret) else s for s in secrets if s}
    return sorted((v for v in found if v and len(v) >= MIN_LENGTH and v.strip("*")), key=len, reverse=True)


def _pattern(values: list[str]) -> "re.Pattern[str] | None":
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def _mask_with(text: str, pattern: "re.Pattern[str] | None") -> str:
    """Replace every match until none is left: a mask next to ordinary text can itself complete a secret
    that holds `*` (secrets `abc` and `**d` in `abcd`). Each pass removes at least one non-`*` character,
    so this ends."""
    if pattern is None:
        return text
    while True:
        masked = pattern.sub(MASK, text)
        if masked == text:
            return masked
        text = masked


def mask_text(text: str, secrets: "Iterable[Secret | str | None]") -> str:
    """Replace every occurrence of each secret's value in `text` (error messages from servers, plain text
    output). Never use it on serialized JSON: mask the data with `mask_value`, then serialize."""
    return _mask_with(text, _pattern(_values(secrets)))


def mask_value(value: Any, secrets: "Iterable[Secret | str | None]") -> Any:
    """A copy of plain data (dicts, lists, tuples, strings, numbers, booleans, None) with every string
    leaf and every string key masked. Numbers, booleans and None stay what they are: the NFS port 2049 is
    evidence, not the password that happens to be `2049` (NaN and infinities, which JSON cannot hold,
    become their names as text). A Secret becomes the mask; any other object
    becomes its masked str() (what `json.dumps(default=str)` would have printed)."""
    pattern = _pattern(_values(secrets))
    return _mask_data(value, pattern)


def append_masked_line(path: "Any", entry: dict[str, Any], secrets: "Iterable[Secret | str | None]", what: str) -> None:
    """Append `entry` as one JSON line to `path`, every secret in it masked first. A log that cannot be
    written warns on stderr (naming `what`) and never stops the work it records."""
    import sys
    from pathlib import Path

    target = Path(path)
    line = json.dumps(mask_value(entry, secrets))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        sys.stderr.write(f"sbops: warning: cannot write {what}{target}: {exc.strerror or exc}\n")


def _mask_data(value: Any, pattern: "re.Pattern[str] | None") -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return _mask_with(str.__str__(value), pattern)  # a str Enum serializes as its value, not its name
    if isinstance(value, float) and not math.isfinite(value):
        return _mask_with(json.dumps(value), pattern)  # NaN and Infinity are not JSON: their names, as text
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_mask_with(_key(k), pattern): _mask_data(v, pattern) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask_data(v, pattern) for v in value]
    return _mask_with(str(value), pattern)


def _key(key: Any) -> str:
    """A dict key as JSON writes it (keys are strings there, so a key 2049 is masked like text)."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, (int, float)):
        return json.dumps(key)
    return str(key)
