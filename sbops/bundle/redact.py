"""Redaction a bundle can prove: every known secret in every form it may take, plus generic patterns.

Pure: bytes in, bytes and counts out; no I/O. The known secrets come from `sbops.bundle.secrets` (the edges).

Forms of a secret searched for (`forms`):
- `plain`: its UTF-8 bytes;
- `base64`: the part of its base64 encoding that does not depend on its neighbours, at each of the three
  alignments it can have inside a longer stream (0, 1 or 2 bytes before it), in the standard and URL-safe
  alphabets;
- `url`: percent-encoded (upper and lower case hex, `+` for space);
- `json`: JSON-escaped (ASCII-only and not);
- `wrapped`: any form split by a line wrap at 64 or 76 columns (PEM, MIME, `base64 -w 76`): found by
  searching a view of the text without the newlines that end lines of exactly those widths (`WrapView`).

One Aho-Corasick automaton holds every form of every secret, so a scan is one pass over the bytes whatever the
number of secrets. It is ahocorasick-rs's DFA (Rust, on bytes): measured here on a loaded 2-core machine with
100 secrets, it ran at about 75 MB/s, pyahocorasick at 4.5 MB/s (its trie walks each node's children one by
one), and a compiled regex alternation slower still.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote, quote_plus

import ahocorasick_rs

MIN_PLAIN = 6   # shorter values would redact ordinary words; no installer generates them
MIN_ENCODED = 8  # bytes of a secret below which its base64 middle is too short to tell from chance
WRAP_WIDTHS = (64, 76)
FORMS = ("plain", "base64", "url", "json")
MARK = b"[REDACTED:%s]"

# Generic patterns: (name, regex, group holding the secret). The group is replaced; the rest stays readable.
PATTERNS: tuple[tuple[str, "re.Pattern[bytes]", int], ...] = (
    ("pem-private-key", re.compile(
        rb"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(.*?)(-----END [A-Z0-9 ]*PRIVATE KEY-----)", re.S), 2),
    ("authorization-header", re.compile(
        rb"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|token|digest|negotiate)\s+)?)"
        rb"([^\s\"',;]+)"), 2),
    ("url-password", re.compile(rb"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@\"'<>]+:)([^\s@/\"'<>]+)(@)"), 2),
    ("password-field", re.compile(
        rb"(?i)(\b(?:password|passwd|pwd|secret_key|secretkey|client_secret|api_key|apikey|access_key)"
        rb"[\"']?\s*[=:]\s*[\"']?)([^\s\"'&;,<>{}\[\]()]+)"), 2),
    ("aws-key-id", re.compile(rb"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b"), 1),
)
PATTERN_NAMES = tuple(name for name, _, _ in PATTERNS)
# What each pattern cannot match without (in the lower-cased text): a pattern whose words are absent is skipped,
# so a log without any of them costs one lower() and a few substring searches, not five regex passes.
NEEDS: dict[str, tuple[bytes, ...]] = {
    "pem-private-key": (b"private key-----",),
    "authorization-header": (b"authorization",),
    "url-password": (b"://",),
    "password-field": (b"password", b"passwd", b"pwd", b"secret_key", b"secretkey", b"client_secret", b"api_key",
                       b"apikey", b"access_key"),
    "aws-key-id": (b"akia", b"asia"),
}
RULES = FORMS + ("wrapped",) + PATTERN_NAMES  # what a test may disable (`Redactor(disabled=...)`)


def _b64_middles(value: bytes) -> set[bytes]:
    """The base64 characters fully determined by `value` at each alignment (0, 1, 2 bytes before it).

    Character i of an encoding covers bits [6i, 6i+6); `value` occupies bits [8k, 8k+8n) after k bytes.
    """
    out: set[bytes] = set()
    n = len(value)
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + value + b"\0\0\0").rstrip(b"=")
        first = -(-8 * k // 6)
        last = (8 * k + 8 * n) // 6  # exclusive
        middle = encoded[first:last]
        if len(middle) >= MIN_ENCODED:
            out.add(middle)
            out.add(middle.replace(b"+", b"-").replace(b"/", b"_"))
    return out


def forms(secret: str) -> dict[bytes, str]:
    """Every byte string `secret` may appear as, mapped to its form's name (the plain form wins a tie)."""
    raw = secret.encode()
    found: dict[bytes, str] = {}
    if len(raw) < MIN_PLAIN:
        return found
    found[raw] = "plain"
    if len(raw) >= MIN_ENCODED:
        for middle in _b64_middles(raw):
            found.setdefault(middle, "base64")
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe="")):
        upper = encoded.encode()
        lower = re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), upper)
        for variant in (upper, lower):
            found.setdefault(variant, "url")
    for escaped in (json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
        found.setdefault(escaped.encode(), "json")
    return found


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    kind: str  # a form (plain, base64, url, json), "wrapped", or a pattern name


class WrapView:
    """`data` without the line breaks that end a line of exactly 64 or 76 printable characters, and the map
    back: a secret wrapped across such a line is contiguous in `text`. A break is a newline, or the two
    characters `\\n` inside a JSON string (a wrapped base64 value serialized as JSON, as cluster/*.json holds)."""

    _HEAD = re.compile(rb"[!-~]{%d}" % WRAP_WIDTHS[0])
    _CANDIDATE = re.compile(rb"\n[!-~]{%d}" % WRAP_WIDTHS[0])  # a literal first byte: sre's fast search
    _TAIL = re.compile(rb"(?:[!-~]{%d})?(\r?\n)(?=[!-~])" % (WRAP_WIDTHS[1] - WRAP_WIDTHS[0]))
    _ESCAPED = re.compile(rb'(?:(?<=\\n)|(?<="))[A-Za-z0-9+/=_-]{%d}(?:[A-Za-z0-9+/=_-]{%d})?(\\n)(?=[A-Za-z0-9+/=_-])'
                          % (WRAP_WIDTHS[0], WRAP_WIDTHS[1] - WRAP_WIDTHS[0]))

    def __init__(self, data: bytes) -> None:
        self.removed: list[int] = []   # view offsets where a break was removed
        self.shift: list[int] = []     # bytes removed up to and including that point
        spans: list[tuple[int, int]] = []
        starts = [0] if self._HEAD.match(data) else []
        starts += [m.start() + 1 for m in self._CANDIDATE.finditer(data)]
        for line_start in starts:
            match = self._TAIL.match(data, line_start + WRAP_WIDTHS[0])
            if match is not None:
                spans.append(match.span(1))
        if b"\\n" in data:
            spans += [m.span(1) for m in self._ESCAPED.finditer(data)]
            spans.sort()
        parts: list[bytes] = []
        last = 0
        total = 0
        for start, end in spans:
            parts.append(data[last:start])
            last = end
            self.removed.append(start - total)
            total += end - start
            self.shift.append(total)
        parts.append(data[last:])
        self.text = b"".join(parts) if self.removed else data

    def original(self, pos: int, end: bool = False) -> int:
        """The offset in `data` of view offset `pos` (an end offset stays before a removed newline)."""
        index = bisect_right(self.removed, pos - 1 if end else pos) - 1
        return pos + (self.shift[index] if index >= 0 else 0)

    def crosses(self, start: int, end: int) -> bool:
        index = bisect_right(self.removed, start)
        return index < len(self.removed) and self.removed[index] < end


def _automaton(needles: list[bytes]) -> "ahocorasick_rs.BytesAhoCorasick":
    kind = ahocorasick_rs.MatchKind.Standard  # every match, overlapping ones included: spans are merged after
    try:
        return ahocorasick_rs.BytesAhoCorasick(needles, matchkind=kind, implementation=ahocorasick_rs.Implementation.DFA)
    except ValueError:  # a DFA too large for the library's limits: its default (an NFA), slower
        return ahocorasick_rs.BytesAhoCorasick(needles, matchkind=kind)


@dataclass
class Table:
    """The automaton over every form of every known secret. `count` is the number of secrets searched,
    `skipped_short` those too short to search without redacting ordinary words."""

    automaton: "ahocorasick_rs.BytesAhoCorasick | None"
    kinds: list[str]
    count: int
    skipped_short: int = 0

    @classmethod
    def build(cls, secrets: Iterable[str], disabled: Iterable[str] = ()) -> "Table":
        off = set(disabled)
        values = sorted({s for s in secrets if s})
        needles: dict[bytes, str] = {}
        short = 0
        for value in values:
            found = forms(value)
            if not found:
                short += 1
            for needle, kind in found.items():
                if kind not in off:
                    needles.setdefault(needle, kind)
        ordered = list(needles)
        automaton = _automaton(ordered) if ordered else None
        return cls(automaton, [needles[n] for n in ordered], len(values) - short, short)

    def find(self, data: bytes, wrapped: bool = True) -> list[Hit]:
        """Every occurrence of a known form in `data`, as merged spans of `data`."""
        if self.automaton is None or not data:
            return []
        view = WrapView(data) if wrapped else None
        text = view.text if view is not None else data
        hits: list[Hit] = []
        for index, start, end in self.automaton.find_matches_as_indexes(text, overlapping=True):
            kind = self.kinds[index]
            if view is not None and view.removed:
                if view.crosses(start, end):
                    kind = "wrapped"
                start, end = view.original(start), view.original(end, end=True)
            hits.append(Hit(start, end, kind))
        return merge(hits)


def merge(hits: list[Hit]) -> list[Hit]:
    """Overlapping or touching spans merged, in order; a merged span keeps its first hit's kind."""
    out: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        if out and hit.start <= out[-1].end:
            last = out[-1]
            if hit.end > last.end:
                out[-1] = Hit(last.start, hit.end, last.kind)
            continue
        out.append(hit)
    return out


def replace_spans(data: bytes, hits: list[Hit]) -> bytes:
    parts: list[bytes] = []
    last = 0
    for hit in hits:
        parts.append(data[last:hit.start])
        parts.append(MARK % hit.kind.encode())
        last = hit.end
    parts.append(data[last:])
    return b"".join(parts)


def _already_masked(value: bytes) -> bool:
    return value.startswith(b"[REDACTED") or not value.strip(b"*") or value.lower() in (b"null", b"none", b"true", b"false")


def redact_patterns(data: bytes, counts: dict[str, int], disabled: Iterable[str] = ()) -> bytes:
    off = set(disabled)
    lowered = data.lower()
    for name, pattern, group in PATTERNS:
        if name in off or not any(word in lowered for word in NEEDS[name]):
            continue

        def sub(match: "re.Match[bytes]", name: str = name, group: int = group) -> bytes:
            value = match.group(group)
            if _already_masked(value):
                return match.group(0)
            counts[name] = counts.get(name, 0) + 1
            start, end = match.span(group)
            base = match.start(0)
            whole = match.group(0)
            return whole[:start - base] + MARK % name.encode() + whole[end - base:]

        data = pattern.sub(sub, data)
    return data


@dataclass
class Redactor:
    """Known secrets first (every form), then the generic patterns. `disabled` names rules (`RULES`) a test
    turns off to watch verification catch what they would have removed."""

    table: Table
    disabled: frozenset[str] = frozenset()

    @classmethod
    def build(cls, secrets: Iterable[str], disabled: Iterable[str] = ()) -> "Redactor":
        off = frozenset(disabled)
        unknown = off - set(RULES)
        if unknown:
            raise ValueError(f"unknown redaction rule(s): {', '.join(sorted(unknown))}")
        return cls(Table.build(secrets, off), off)

    def redact(self, data: bytes) -> tuple[bytes, dict[str, int]]:
        counts: dict[str, int] = {}
        hits = self.table.find(data, wrapped="wrapped" not in self.disabled)
        for hit in hits:
            counts[hit.kind] = counts.get(hit.kind, 0) + 1
        data = replace_spans(data, hits)
        data = redact_patterns(data, counts, self.disabled)
        return data, counts
