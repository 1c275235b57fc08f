"""A seeded mutator of YAML documents for the fault-injection suite: deterministic, so a failing round is
reproduced by its seed and round number.

Two kinds of mutation: on the text (bytes flipped, YAML syntax and tags spliced in, lines cut, swapped or
duplicated, nesting and aliases) and on the parsed data (a value replaced by one of another shape, a key
dropped or renamed), each then dumped again.
"""

from __future__ import annotations

import random
from typing import Any

import yaml

# Fragments that have crashed YAML consumers: tags, aliases, collections where scalars belong, special floats,
# control and non-UTF-8 bytes, explicit keys, merge keys, document markers.
TOKENS = [
    "", " ", "\n", "\t", ":", ": ", "- ", "? ", "[", "]", "{", "}", ",", "&a ", "*a", "&b [*b]", "*b", "<<: *a",
    "!!binary aGVsbG8=", "!!binary ", "!!int ", "!!int x", "!!float ", "!!str ", "!!set {a, b}", "!!omap [a: 1]",
    "!!python/object:os.system", "!custom ", "!!timestamp 2001-12-14", "!!null ", ".inf", "-.inf", ".nan", "~",
    "null", "yes", "no", "on", "0x1F", "0o17", "1_000", "1e400", "-0", "9" * 40, "2001-12-14t21:59:43.10-05:00",
    "'", '"', "'unterminated", '"\\x00"', '"\\ud800"', "|", ">", "|-\n  x", "%YAML 1.1\n---\n", "---\n", "...\n",
    "\x00", "\x1b[31m", "\u2028", "\ufeff", "#", " # comment", "[" * 40, "{a: " * 30, "- " * 30, "\\",
    "{", "}", "%", "@", "`", "10.42.0.0/16(rw,no_root_squash) *", "{id", "}", "{0}", "{id}{", "/etc/../x",
]
BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\x80", b"\xed\xa0\x80", b"\x00"]
SHAPES: list[Any] = [None, "", "x", 0, -1, 1.5, float("inf"), True, [], [1, 2], {}, {"a": 1}, "\x00", "a\nb",
                     "{", 65536, "../relative", "/no/such/file", "日本", 2 ** 70]


class Mutator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- text ------------------------------------------------------------------------------------------
    def text(self, doc: str) -> bytes:
        """1 to 4 textual mutations of `doc`; the result may not be UTF-8."""
        data = doc
        raw: bytes | None = None
        for _ in range(self.rng.randint(1, 4)):
            kind = self.rng.randrange(8)
            lines = data.split("\n")
            if kind == 0:  # splice a token at a random place
                at = self.rng.randint(0, len(data))
                data = data[:at] + self.rng.choice(TOKENS) + data[at:]
            elif kind == 1:  # replace a line's value with a token
                i = self.rng.randrange(len(lines))
                head = lines[i].split(":", 1)[0]
                lines[i] = f"{head}: {self.rng.choice(TOKENS)}"
                data = "\n".join(lines)
            elif kind == 2:  # delete a span
                at = self.rng.randint(0, len(data))
                data = data[:at] + data[at + self.rng.randint(1, 12):]
            elif kind == 3:  # duplicate or swap lines
                i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
                if self.rng.random() < 0.5:
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = "\n".join(lines)
            elif kind == 4:  # change indentation
                i = self.rng.randrange(len(lines))
                lines[i] = " " * self.rng.choice([0, 1, 2, 3, 4, 8]) + lines[i].lstrip()
                data = "\n".join(lines)
            elif kind == 5:  # deep nesting
                depth = self.rng.choice([5, 50, 500, 5000])
                opener, closer = self.rng.choice([("[", "]"), ("{a: ", "}")])
                i = self.rng.randrange(len(lines))
                head = lines[i].split(":", 1)[0]
                lines[i] = f"{head}: {opener * depth}1{closer * depth}"
                data = "\n".join(lines)
            elif kind == 6:  # anchors and aliases, recursive or exponential
                anchor = self.rng.choice(["&r [*r]", "&r {k: *r}", "&l [x, x, x, x, x, x, x, x]",
                                          "&m {port: 1}", "*r", "*l", "*m", "*undefined"])
                i = self.rng.randrange(len(lines))
                head = lines[i].split(":", 1)[0]
                lines[i] = f"{head}: {anchor}"
                data = "\n".join(lines)
            else:  # flip to raw bytes
                encoded = (raw if raw is not None else data.encode("utf-8", "surrogatepass"))
                at = self.rng.randint(0, len(encoded))
                raw = encoded[:at] + self.rng.choice(BYTES) + encoded[at:]
                continue
            raw = None
        return raw if raw is not None else data.encode("utf-8", "surrogatepass")

    # -- structure -----------------------------------------------------------------------------------------
    def paths(self, node: Any, prefix: tuple = ()) -> list[tuple]:
        found = [prefix]
        if isinstance(node, dict):
            for key, value in node.items():
                found += self.paths(value, prefix + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                found += self.paths(value, prefix + (index,))
        return found

    def data(self, doc: Any) -> Any:
        """`doc` (a fresh copy) with 1 to 3 values replaced, keys dropped or renamed."""
        import copy

        doc = copy.deepcopy(doc)
        for _ in range(self.rng.randint(1, 3)):
            path = self.rng.choice(self.paths(doc)[1:] or [()])
            if not path:
                return copy.deepcopy(self.rng.choice(SHAPES))
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            last = path[-1]
            action = self.rng.randrange(4)
            if action == 0 or isinstance(parent, list):
                parent[last] = copy.deepcopy(self.rng.choice(SHAPES + [self.rng.choice(TOKENS)]))
            elif action == 1:
                del parent[last]
            elif action == 2:
                parent[self.rng.choice(["name", "server", "token", "tokenFile", "certificate-authority", "exec",
                                        "user", "cluster", "auth-provider", last + "x"])] = parent.pop(last)
            else:
                parent[last] = [parent[last]]
        return doc

    def dump(self, doc: Any) -> bytes:
        try:
            return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return repr(doc).encode("utf-8", "surrogatepass")
