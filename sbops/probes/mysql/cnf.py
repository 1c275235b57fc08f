"""What a MySQL/MariaDB server really reads: my.cnf and its `!include` / `!includedir` chain.

The same walk `my_print_defaults --mysqld` makes, as a pure parser over file contents plus a small reader
that takes the file access as functions (so tables can test it without a disk). A drop-in in a directory
that nothing includes is never read, however right its settings are: that is what this module finds.

Rules followed (MariaDB mysys/my_default.c, MySQL's option-file documentation):
- the default files, in order: /etc/my.cnf, /etc/mysql/my.cnf, ~/.my.cnf (with --defaults-extra-file read
  before ~/.my.cnf); `--defaults-file=F` reads F alone; `--no-defaults` reads nothing;
- `!include F` reads F at that point; `!includedir D` reads D's `*.cnf` files in name order;
- `#` and `;` start comments (also after a value); option names treat `-` and `_` alike; `loose-` is dropped;
- mysqld reads the groups [mysqld], [server], [mysqld-X.Y] and (MariaDB) [mariadb], [mariadbd],
  [mariadb-X.Y], [mariadbd-X.Y], [client-server], [galera]. The last value read wins.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

DEFAULT_FILES = ("/etc/my.cnf", "/etc/mysql/my.cnf")
MAX_DEPTH = 10


@dataclass(frozen=True)
class Entry:
    """One meaningful line of an option file."""

    kind: str  # group | option | include | includedir | error
    line: int
    name: str = ""  # group name, option name (normalised), or the include's path
    value: str | None = None  # an option's value; None for a bare flag (`skip-name-resolve`)


def normalise(name: str) -> str:
    """`skip-name-resolve`, `loose-skip_name_resolve` -> `skip_name_resolve`."""
    name = name.strip().lower().replace("-", "_")
    return name[len("loose_"):] if name.startswith("loose_") else name


def _strip_comment(text: str) -> str:
    """Drop a trailing `#` comment outside quotes."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return text[:i]
    return text


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_cnf(text: str) -> list[Entry]:
    """Pure: the entries of one option file, in order (comments and blank lines dropped)."""
    out: list[Entry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("!"):
            word, _, rest = line[1:].partition(" ")
            path = rest.strip()
            if word in ("include", "includedir") and path:
                out.append(Entry(word, number, path))
            else:
                out.append(Entry("error", number, line))
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                out.append(Entry("error", number, line))
            else:
                out.append(Entry("group", number, line[1:end].strip().lower()))
            continue
        body = _strip_comment(line).strip()
        if not body:
            continue
        name, eq, value = body.partition("=")
        out.append(Entry("option", number, normalise(name), _unquote(value) if eq else None))
    return out


def mysqld_groups(version: str) -> frozenset[str]:
    """The groups mysqld reads for a server version ('10.11.6-MariaDB', '8.0.36')."""
    parts = version.split(".")
    short = ".".join(parts[:2]) if len(parts) >= 2 else ""
    groups = {"mysqld", "server"} | ({f"mysqld-{short}"} if short else set())
    if "mariadb" in version.lower():
        groups |= {"mariadb", "mariadbd", "client-server", "galera"}
        if short:
            groups |= {f"mariadb-{short}", f"mariadbd-{short}"}
    return frozenset(groups)


def default_files(argv: Sequence[str], home: str = "/root") -> list[str] | None:
    """Pure: the files a server started with `argv` reads first; [] for --no-defaults; None when argv is
    unknown (then the caller uses DEFAULT_FILES)."""
    defaults_file = extra = ""
    for arg in argv[1:]:
        if arg == "--no-defaults":
            return []
        if arg.startswith("--defaults-file="):
            defaults_file = arg.split("=", 1)[1]
        elif arg.startswith("--defaults-extra-file="):
            extra = arg.split("=", 1)[1]
    if defaults_file:
        return [defaults_file]
    return [*DEFAULT_FILES, *([extra] if extra else []), posixpath.join(home, ".my.cnf")]


@dataclass(frozen=True)
class Setting:
    name: str
    value: str | None
    file: str
    line: int
    group: str


@dataclass
class Chain:
    """What the walk found: files read in order, directories included, the settings, and problems."""

    roots: list[str]
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def reads(self, path: str) -> bool:
        return posixpath.normpath(path) in {posixpath.normpath(f) for f in self.files}

    def includes_dir(self, directory: str) -> bool:
        return posixpath.normpath(directory) in {posixpath.normpath(d) for d in self.dirs}

    @property
    def first_file(self) -> str | None:
        """The first file read (the one an `!includedir` is added to)."""
        return self.files[0] if self.files else None

    def effective(self, groups: Iterable[str]) -> dict[str, Setting]:
        """The last setting of each option within the given groups (what the server ends up with)."""
        wanted = set(groups)
        out: dict[str, Setting] = {}
        for s in self.settings:
            if s.group in wanted:
                out[s.name] = s
        return out


Reader = Callable[[str], "str | None"]
Lister = Callable[[str], "list[str] | None"]


def read_chain(roots: Sequence[str], read: Reader, listdir: Lister) -> Chain:
    """Walk the option files from `roots` (missing roots are skipped, as the server does).

    `read(path)` returns the text or None when absent/unreadable; `listdir(dir)` the names or None.
    """
    chain = Chain(list(roots))
    for root in roots:
        _walk(root, read, listdir, chain, depth=0, optional=True)
    return chain


def _walk(path: str, read: Reader, listdir: Lister, chain: Chain, depth: int, optional: bool) -> None:
    if depth > MAX_DEPTH:
        chain.problems.append(f"{path}: includes nest deeper than {MAX_DEPTH}")
        return
    text = read(path)
    if text is None:
        if not optional:
            chain.problems.append(f"{path}: included but not readable")
        return
    chain.files.append(path)
    group = ""
    base = posixpath.dirname(path)
    for entry in parse_cnf(text):
        if entry.kind == "group":
            group = entry.name
        elif entry.kind == "option":
            chain.settings.append(Setting(entry.name, entry.value, path, entry.line, group))
        elif entry.kind == "include":
            _walk(posixpath.join(base, entry.name), read, listdir, chain, depth + 1, optional=False)
        elif entry.kind == "includedir":
            directory = posixpath.join(base, entry.name)
            chain.dirs.append(directory)
            names = listdir(directory)
            if names is None:
                chain.problems.append(f"{path}:{entry.line}: !includedir {directory}: not a readable directory")
                continue
            for name in sorted(n for n in names if n.endswith(".cnf")):
                _walk(posixpath.join(directory, name), read, listdir, chain, depth + 1, optional=False)
        else:
            chain.problems.append(f"{path}:{entry.line}: not understood: {entry.name}")


def disk_reader(path: str) -> str | None:
    """The reader for real files (None when absent or unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def disk_lister(directory: str) -> list[str] | None:
    try:
        return [n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n))]
    except OSError:
        return None


def with_includedir(text: str, directory: str) -> str:
    """Pure: `text` with an `!includedir DIRECTORY` line appended (what the fix adds to my.cnf)."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + f"!includedir {directory}\n"
