"""The installers' credentials files, every version: parse with line numbers, render byte-identical, write safely.

Two versions are in the field (ORIGINAL-INSTALLER.md, UPSTREAM-CURRENT.md). Both have a banner of `=`,
`STACKBILL POC CREDENTIALS`, `Generated: <date>`, `PORTAL URL:`, `SERVER IP:` and the sections MYSQL,
MONGODB, RABBITMQ and NFS with indented `Key: value` lines. The current script adds, in simulator mode, a
`CLOUDSTACK SIMULATOR:` section with a four-space `StackBill User:` sub-block, and its banner is 80 `=`.

Reading is tolerant because users arrive with files sbops did not write: a section or nested block it
does not know is kept, named in a warning, and written back byte for byte. Only a section sbops needs
(MYSQL, MONGODB, RABBITMQ, NFS) that cannot be read is an error. Rendering a parsed file changes only the
lines whose values changed (and adds lines for values the file lacked), so an unchanged file renders to
exactly its own bytes.
"""

from __future__ import annotations

import locale
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Mapping

from sbops.errors import UsageError
from sbops.secret import Secret

BANNER = "=" * 60
TITLE = "STACKBILL POC CREDENTIALS"
SECTIONS = ("MYSQL", "MONGODB", "RABBITMQ", "NFS")  # the sections sbops needs: unreadable is an error
CLOUDSTACK = "CLOUDSTACK SIMULATOR"
# sbops's section for an existing CloudStack (`install --cloudstack existing`): the simulator section's layout
# without the default admin; a file holds one or the other.
CLOUDSTACK_EXISTING = "CLOUDSTACK"
CLOUDSTACK_HEADERS = (CLOUDSTACK, CLOUDSTACK_EXISTING)
STACKBILL_USER = "StackBill User"
TOP_KEYS = ("GENERATED", "PORTAL URL", "SERVER IP")
DEFAULT_PATHS = (Path("/root/stackbill-credentials.txt"), Path.home() / "stackbill-credentials.txt")

# The keys each section writes, in order; others are kept when read but not required.
SECTION_KEYS = {
    "MYSQL": ("Host", "Port", "Database", "Username", "Password"),
    "MONGODB": ("Host", "Port", "Database", "Username", "Password"),
    "RABBITMQ": ("Host", "Port", "Username", "Password", "Management"),
    "NFS": ("Server", "Path"),
}
CLOUDSTACK_KEYS = ("URL", "Default Admin")
STACKBILL_USER_KEYS = ("Username", "Password", "API Key", "Secret Key")
# What the current script writes when the simulator gave no key: `${CLOUDSTACK_API_KEY:-"(generate from
# CloudStack UI)"}`. A placeholder, not a key (bash drops the quotes; a hand-made file may keep them).
PLACEHOLDER = re.compile(r'^"?\(generate from [^)]*\)"?$')
# The simulator's published default admin password, written literally by the script ("admin / password").
# It stays a Secret (never printed), but is not used to mask text: masking the dictionary word "password"
# would garble every message that contains it (mysql_native_password) and hides nothing anyone lacks.
PUBLISHED_DEFAULTS = frozenset({"password"})


@dataclass(frozen=True)
class Service:
    """One database or broker section. The password is a Secret."""

    host: str = ""
    port: int | None = None
    username: str = "stackbill"
    password: Secret | None = None
    database: str = ""
    management: str = ""  # RabbitMQ only


@dataclass(frozen=True)
class CloudStack:
    """The current script's CLOUDSTACK SIMULATOR section: the simulator's URL, its default admin, and the
    StackBill user created in it with its API keys (None where the file holds the placeholder). With
    `simulator` False, sbops's CLOUDSTACK section for an existing CloudStack (no default admin)."""

    url: str = ""
    admin_user: str = ""
    admin_password: Secret | None = None
    username: str = ""
    password: Secret | None = None
    api_key: Secret | None = None
    secret_key: Secret | None = None
    simulator: bool = True

    @property
    def header(self) -> str:
        return CLOUDSTACK if self.simulator else CLOUDSTACK_EXISTING

    def secrets(self) -> list[Secret]:
        out = [s for s in (self.password, self.api_key, self.secret_key) if s]
        if self.admin_password and self.admin_password.reveal() not in PUBLISHED_DEFAULTS:
            out.append(self.admin_password)
        return out


@dataclass(frozen=True)
class Source:
    """The file as read: its lines (with their endings), where each understood value sits, and the value
    each field had (defaults included), so render() can rewrite exactly the lines whose values changed."""

    lines: tuple[str, ...]
    where: Mapping[str, tuple[int, int]]  # field id -> (line index, column where the value starts)
    values: Mapping[str, str]  # field id -> value as read (or as derived when the line is absent)
    sections: Mapping[str, tuple[int, int, str]]  # section -> (header index, last content index, key indent)


@dataclass(frozen=True)
class Credentials:
    portal_url: str = ""
    server_ip: str = ""
    generated: str = ""
    mysql: Service = field(default_factory=lambda: Service(database="stackbill"))
    mongodb: Service = field(default_factory=lambda: Service(database="admin"))
    rabbitmq: Service = field(default_factory=Service)
    nfs_server: str = ""
    nfs_path: str = "/data/stackbill"
    path: Path | None = None
    cloudstack: CloudStack | None = None
    # what parse() could not understand (kept in the file as is), one sentence each naming file and line
    warnings: tuple[str, ...] = field(default=(), compare=False)
    source: Source | None = field(default=None, compare=False, repr=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)  # field id -> line number

    @property
    def domain(self) -> str:
        url = self.portal_url
        for prefix in ("https://", "http://"):
            if url.startswith(prefix):
                url = url[len(prefix):]
        return url.rstrip("/")

    def secrets(self) -> list[Secret]:
        """Every password and key the file holds (for masking): the services', then the CloudStack ones."""
        found = [s.password for s in (self.mysql, self.mongodb, self.rabbitmq) if s.password]
        return found + (self.cloudstack.secrets() if self.cloudstack else [])


def _parse_port(value: str, where: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise UsageError(f"{where}: Port must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"{where}: Port {port} is out of range")
    return port


@dataclass
class _Reader:
    """The parser's state while it walks the lines (kept out of parse() so each rule is a small method)."""

    path: str
    top: dict[str, tuple[str, int]] = field(default_factory=dict)
    sections: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    where: dict[str, tuple[int, int]] = field(default_factory=dict)
    spans: dict[str, list] = field(default_factory=dict)  # section -> [header index, last index, key indent]
    warnings: list[str] = field(default_factory=list)
    current: str | None = None  # a section sbops reads, or None
    unknown: str | None = None  # a section sbops does not read (its lines are kept silently)
    block: str | None = None  # a sub-block inside the current section (StackBill User, or unknown)
    block_indent: int = 0

    def warn(self, number: int, text: str) -> None:
        self.warnings.append(f"{self.path}:{number}: {text}; kept as is")

    def leave(self) -> None:
        self.current = self.unknown = self.block = None


def _value_column(raw: str) -> int:
    """Where the value of a `Key: value` line starts (after the colon and its spaces)."""
    column = raw.index(":") + 1
    while column < len(raw) and raw[column] in " \t":
        column += 1
    return column


def _top_line(r: _Reader, index: int, raw: str, stripped: str) -> None:
    number = index + 1
    key, colon, value = stripped.partition(":")
    name = key.strip().upper()
    if not colon:
        if stripped.upper() in (*SECTIONS, *CLOUDSTACK_HEADERS):
            raise UsageError(f"{r.path}:{number}: expected '{stripped.upper()}:' (a section header ends with ':')")
        r.warn(number, f"line {stripped[:40]!r} is not one sbops reads")
        r.leave()
        return
    value = value.strip()
    if name in TOP_KEYS:
        r.leave()
        r.top[name] = (value, number)
        r.where[name] = (index, _value_column(raw))
        return
    if value:
        r.leave()
        r.warn(number, f"'{key.strip()}' is not a field sbops reads")
        return
    # a section header
    r.leave()
    if name in SECTIONS or name in CLOUDSTACK_HEADERS:
        if name in r.sections or (name in CLOUDSTACK_HEADERS and any(h in r.sections for h in CLOUDSTACK_HEADERS)):
            if name in SECTIONS:
                raise UsageError(f"{r.path}:{number}: section {name} appears twice")
            r.warn(number, f"a second {name} section is not read")
            r.unknown = name
            return
        r.current = name
        r.sections[name] = {}
        r.spans[name] = [index, index, 0]
        return
    r.unknown = key.strip()
    r.warn(number, f"section {key.strip()} is not one sbops reads")


def _section_line(r: _Reader, index: int, raw: str, stripped: str, indent: int) -> None:
    number = index + 1
    name = r.current
    assert name is not None
    span = r.spans[name]
    needed = name in SECTIONS
    if not span[2]:
        span[2] = indent
    span[1] = index
    key, colon, value = stripped.partition(":")
    key, value = key.strip(), value.strip()
    if indent > span[2]:  # inside a sub-block
        if r.block == STACKBILL_USER and name in CLOUDSTACK_HEADERS and colon:
            _field(r, index, raw, f"{name}/{STACKBILL_USER}", key, value, STACKBILL_USER_KEYS, needed=False)
        elif r.block is None:
            r.block = "?"
            r.warn(number, f"nested lines in {name} are not read")
        return
    r.block = None
    if not colon:
        if needed:
            raise UsageError(f"{r.path}:{number}: expected 'Key: value' in section {name}")
        r.warn(number, f"line {stripped[:40]!r} in {name} is not one sbops reads")
        return
    if not value and name in CLOUDSTACK_HEADERS and key == STACKBILL_USER:
        r.block = STACKBILL_USER
        return
    if not value and not needed:
        r.block = "?"
        r.warn(number, f"block {key} in {name} is not one sbops reads")
        return
    keys = SECTION_KEYS.get(name, CLOUDSTACK_KEYS)
    _field(r, index, raw, name, key, value, keys, needed)


def _field(r: _Reader, index: int, raw: str, section: str, key: str, value: str, keys: tuple[str, ...],
           needed: bool) -> None:
    number = index + 1
    entries = r.sections.setdefault(section, {})
    if key in entries:
        if needed:
            raise UsageError(f"{r.path}:{number}: {section} has '{key}' twice")
        r.warn(number, f"a second '{key}' in {section} is not read")
        return
    if key not in keys and not (section == "RABBITMQ" and key == "Management"):
        r.warn(number, f"'{key}' in {section} is not a field sbops reads")
    entries[key] = (value, number)
    r.where[f"{section}.{key}"] = (index, _value_column(raw))


def _walk(text: str, path: str) -> _Reader:
    r = _Reader(path)
    for index, raw in enumerate(text.splitlines(keepends=True)):
        content = raw.rstrip()
        stripped = content.strip()
        if not stripped:
            continue  # blank lines do not end a section: the CLOUDSTACK one has one inside
        if stripped == TITLE:
            continue
        if set(stripped) <= {"="}:
            r.leave()
            continue
        indent = len(content) - len(content.lstrip(" \t"))
        if indent == 0:
            _top_line(r, index, raw, stripped)
        elif r.current is not None:
            _section_line(r, index, raw, stripped, indent)
        elif r.unknown is None:
            r.warn(index + 1, "indented line outside a section")
    return r


def _service(r: _Reader, name: str, default_db: str) -> Service:
    entries = r.sections.get(name, {})
    get = lambda k: entries.get(k, ("", 0))[0]  # noqa: E731
    port = None
    if "Port" in entries:
        value, number = entries["Port"]
        port = _parse_port(value, f"{r.path}:{number}")
    if "Password" in entries and not entries["Password"][0]:
        raise UsageError(f"{r.path}:{entries['Password'][1]}: {name} Password is empty")
    password = Secret(get("Password")) if get("Password") else None
    return Service(host=get("Host"), port=port, username=get("Username") or "stackbill", password=password,
                   database=get("Database") or default_db, management=get("Management"))


def _key(value: str) -> Secret | None:
    return None if not value or PLACEHOLDER.match(value) else Secret(value)


def _cloudstack(r: _Reader) -> CloudStack | None:
    header = next((h for h in CLOUDSTACK_HEADERS if h in r.sections), None)
    if header is None:
        return None
    top = r.sections[header]
    user = r.sections.get(f"{header}/{STACKBILL_USER}", {})
    admin = top.get("Default Admin", ("", 0))[0]
    admin_user, _, admin_password = (part.strip() for part in admin.partition("/"))
    get = lambda entries, k: entries.get(k, ("", 0))[0]  # noqa: E731
    return CloudStack(url=get(top, "URL"), admin_user=admin_user, admin_password=_key(admin_password),
                      username=get(user, "Username"), password=_key(get(user, "Password")),
                      api_key=_key(get(user, "API Key")), secret_key=_key(get(user, "Secret Key")),
                      simulator=header == CLOUDSTACK)


def parse(text: str, path: Path | str = "<credentials>") -> Credentials:
    """Parse either version's text. What is not understood is kept and listed in `warnings`; a section sbops
    needs that cannot be read raises UsageError naming the file and line (never showing a password)."""
    r = _walk(text, str(path))
    nfs = r.sections.get("NFS", {})
    creds = Credentials(
        portal_url=r.top.get("PORTAL URL", ("", 0))[0],
        server_ip=r.top.get("SERVER IP", ("", 0))[0],
        generated=r.top.get("GENERATED", ("", 0))[0],
        mysql=_service(r, "MYSQL", "stackbill"),
        mongodb=_service(r, "MONGODB", "admin"),
        rabbitmq=_service(r, "RABBITMQ", ""),
        nfs_server=nfs.get("Server", ("", 0))[0],
        nfs_path=nfs.get("Path", ("/data/stackbill", 0))[0],
        path=Path(path) if not isinstance(path, Path) else path,
        cloudstack=_cloudstack(r),
        warnings=tuple(r.warnings),
    )
    numbers = {name: v[1] for name, v in r.top.items()}
    numbers.update({f"{s}.{k}": v[1] for s, entries in r.sections.items() for k, v in entries.items()})
    sections = {name: (span[0], span[1], span[2] or 2) for name, span in r.spans.items()}
    source = Source(tuple(text.splitlines(keepends=True)), dict(r.where), field_values(creds), sections)
    return replace(creds, source=source, lines=numbers)


# -- rendering -------------------------------------------------------------------------------------------
def _reveal(secret: Secret | None) -> str:
    return secret.reveal() if secret else ""


def field_values(creds: Credentials) -> dict[str, str]:
    """Every field's text as the file writes it (section defaults filled in), keyed `SECTION.Key`."""
    ip = creds.server_ip
    out = {"GENERATED": creds.generated, "PORTAL URL": creds.portal_url, "SERVER IP": ip}
    for name, service in (("MYSQL", creds.mysql), ("MONGODB", creds.mongodb), ("RABBITMQ", creds.rabbitmq)):
        out.update({f"{name}.Host": service.host or ip, f"{name}.Port": str(service.port) if service.port else "",
                    f"{name}.Database": service.database, f"{name}.Username": service.username,
                    f"{name}.Password": _reveal(service.password)})
    out["RABBITMQ.Management"] = creds.rabbitmq.management
    out["NFS.Server"] = creds.nfs_server or ip
    out["NFS.Path"] = creds.nfs_path
    cs = creds.cloudstack
    if cs is not None:
        admin = f"{cs.admin_user} / {_reveal(cs.admin_password)}" if cs.admin_user or cs.admin_password else ""
        user = f"{cs.header}/{STACKBILL_USER}"
        out[f"{cs.header}.URL"] = cs.url
        if cs.simulator:
            out[f"{cs.header}.Default Admin"] = admin
        out.update({f"{user}.Username": cs.username, f"{user}.Password": _reveal(cs.password),
                    f"{user}.API Key": _reveal(cs.api_key), f"{user}.Secret Key": _reveal(cs.secret_key)})
    return out


def render(creds: Credentials) -> str:
    """The file's text. A parsed file keeps its own bytes except the values that changed; a new one gets the
    original installer's exact layout."""
    if creds.source is None:
        return _render_new(creds)
    return _render_over(creds, creds.source)


def _render_over(creds: Credentials, source: Source) -> str:
    lines = list(source.lines)
    inserts: dict[int, list[str]] = {}
    for key, value in field_values(creds).items():
        if value == source.values.get(key, ""):
            continue
        if key in source.where:
            index, column = source.where[key]
            raw = lines[index]
            body = raw.rstrip("\r\n")
            lines[index] = body[:column] + value + raw[len(body):]
            continue
        section, _, name = key.rpartition(".")
        if not value or key == "GENERATED":
            continue  # an empty value, or the date of a file that has none: nothing worth adding
        if not section:  # PORTAL URL / SERVER IP the file lacks: before its first section, as the installers put it
            first = min((span[0] for span in source.sections.values()), default=len(lines))
            inserts.setdefault(first, []).append(f"{key}: {value}\n\n")
            continue
        span = source.sections.get(section)
        if span is not None:
            inserts.setdefault(span[1] + 1, []).append(f"{' ' * span[2]}{name}: {value}\n")
    for at in sorted(inserts, reverse=True):
        if at and not lines[at - 1].endswith("\n"):
            lines[at - 1] += "\n"
        lines[at:at] = inserts[at]
    text = "".join(lines)
    missing = [name for name in SECTIONS if name not in source.sections]
    if missing:
        text = _add_sections(text, _render_new(creds), missing)
    if creds.cloudstack is not None and not any(h in source.sections for h in CLOUDSTACK_HEADERS):
        text = _add_block(text, "\n".join(_cloudstack_lines(creds.cloudstack, field_values(creds))) + "\n")
    return text


def _add_block(text: str, block: str) -> str:
    """`block` (lines ending with a blank one) before the file's closing banner, else at its end."""
    body = text.rstrip("\n")
    last = body.rfind("\n")
    if last >= 0 and set(body[last + 1:]) == {"="}:
        return body[:last + 1] + block + body[last + 1:] + "\n"
    return (text if text.endswith("\n") or not text else text + "\n") + "\n" + block


def _cloudstack_lines(cs: CloudStack, values: dict[str, str]) -> list[str]:
    """The CLOUDSTACK SIMULATOR section as the current script writes it (or sbops's CLOUDSTACK one)."""
    user = f"{cs.header}/{STACKBILL_USER}"
    lines = [f"{cs.header}:", f"  URL: {values[f'{cs.header}.URL']}"]
    if cs.simulator:
        lines.append(f"  Default Admin: {values[f'{cs.header}.Default Admin']}")
    lines += ["", f"  {STACKBILL_USER}:"]
    lines += [f"    {key}: {values[f'{user}.{key}'] or '(generate from CloudStack UI)'}" for key in STACKBILL_USER_KEYS]
    return lines + [""]


def _add_sections(text: str, full: str, missing: list[str]) -> str:
    """Put the sections a file lacks (as a new file would have them) before its closing banner."""
    blocks = full.split("\n\n")
    added = "".join(b + "\n\n" for b in blocks if b.split(":", 1)[0] in missing)
    body = text.rstrip("\n")
    last = body.rfind("\n")
    if last >= 0 and set(body[last + 1:]) == {"="}:
        return body[:last + 1] + added + body[last + 1:] + "\n"
    return (text if text.endswith("\n") or not text else text + "\n") + "\n" + added


def _render_new(creds: Credentials) -> str:
    """A new file in the original installer's layout (plus the CLOUDSTACK block when there is one)."""
    ip = creds.server_ip
    values = field_values(creds)
    defaults = {"MYSQL": 3306, "MONGODB": 27017, "RABBITMQ": 5672}
    generated = creds.generated or datetime.now().strftime("%a %b %d %H:%M:%S %Z %Y").replace("  ", " ")
    lines = [BANNER, TITLE, f"Generated: {generated}", BANNER, ""]
    lines += [f"PORTAL URL: {creds.portal_url}", "", f"SERVER IP: {ip}", ""]
    for name, service in (("MYSQL", creds.mysql), ("MONGODB", creds.mongodb), ("RABBITMQ", creds.rabbitmq)):
        if not service.port:
            values[f"{name}.Port"] = str(defaults[name])
        if name == "RABBITMQ" and not service.management:
            values["RABBITMQ.Management"] = f"http://{service.host or ip}:15672"
        lines.append(f"{name}:")
        for key in SECTION_KEYS[name]:
            if key == "Password" and not service.password:
                continue  # an empty Password line is refused when read: leave it out, as it was
            lines.append(f"  {key}: {values[f'{name}.{key}']}")
        lines.append("")
    lines += ["NFS:", f"  Server: {values['NFS.Server']}", f"  Path: {values['NFS.Path']}", ""]
    if creds.cloudstack is not None:
        lines += _cloudstack_lines(creds.cloudstack, values)
    lines.append(BANNER)
    return "\n".join(lines) + "\n"


def settings_values(creds: Credentials) -> dict[str, tuple[str, int]]:
    """The settings the file provides, with the line each comes from: NFS server and path, and the
    CloudStack simulator's URL, user, password, keys and default admin (secrets revealed here only to be
    stored as Secret settings)."""
    out: dict[str, tuple[str, int]] = {}
    where = creds.lines
    if creds.nfs_server:
        out["nfs.server"] = (creds.nfs_server, where.get("NFS.Server", 0))
    if "NFS.Path" in where and creds.nfs_path:
        out["nfs.path"] = (creds.nfs_path, where["NFS.Path"])
    cs = creds.cloudstack
    if cs is not None:
        user = f"{cs.header}/{STACKBILL_USER}"
        for key, value, line in (("cloudstack.url", cs.url, f"{cs.header}.URL"),
                                 ("cloudstack.username", cs.username, f"{user}.Username"),
                                 ("cloudstack.password", _reveal(cs.password), f"{user}.Password"),
                                 ("cloudstack.api_key", _reveal(cs.api_key), f"{user}.API Key"),
                                 ("cloudstack.secret_key", _reveal(cs.secret_key), f"{user}.Secret Key"),
                                 ("cloudstack.admin_user", cs.admin_user, f"{cs.header}.Default Admin"),
                                 ("cloudstack.admin_password", _reveal(cs.admin_password),
                                  f"{cs.header}.Default Admin")):
            if value:
                out[key] = (value, where.get(line, 0))
    return out


def find(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file to use: --credentials, then SBOPS_CREDENTIALS, then the default paths. A default
    path in a directory this user may not search (/root, for sbops as a non-root user: the chart's cluster
    Deployment) is not there for it, as when it does not exist."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("SBOPS_CREDENTIALS"):
        return Path(env["SBOPS_CREDENTIALS"])
    for candidate in DEFAULT_PATHS:
        try:
            if candidate.exists():
                return candidate
        except PermissionError:
            continue
    return None


MAX_BYTES = 64 * 1024  # the installers write well under 1 KiB; anything this big is not a credentials file

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(info: os.stat_result) -> str:
    """What a non-regular file is, for the error message ('' for a regular file, or /dev/null: the
    usual way to say "no credentials", which reads nothing and never blocks)."""
    if stat.S_ISREG(info.st_mode) or _is_devnull(info):
        return ""
    return next((kind for test, kind in _KINDS if test(info.st_mode)), "not a regular file")


def _is_devnull(info: os.stat_result) -> bool:
    try:
        return os.path.samestat(info, os.stat(os.devnull))
    except OSError:
        return False


def read_text_limited(path: Path, limit: int = MAX_BYTES, what: str = "credentials file") -> str:
    """The text of a regular file of at most `limit` bytes. A FIFO would block the read forever and a
    device (/dev/zero) would never end: both are refused before they are opened, and again after (the
    name could have been swapped in between), in one line naming the file."""
    def refuse(why: str) -> UsageError:
        return UsageError(f"{path}: cannot read {what}: {why}")

    try:
        kind = _not_regular(os.stat(path))
        if kind:
            raise refuse(f"{kind}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        kind = _not_regular(info)
        if kind:
            raise refuse(f"{kind}, not a regular file")
        if info.st_size > limit:
            raise refuse(f"{info.st_size} bytes, over the limit of {limit}")
        with os.fdopen(fd, "r", closefd=False) as handle:
            text = handle.read(limit + 1)  # a file still growing is cut here, not read without end
    except UnicodeDecodeError:
        raise UsageError(f"{path}: {what} is not text") from None
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(text) > limit:
        raise refuse(f"over the limit of {limit} bytes")
    return text


def load(path: Path) -> Credentials:
    return parse(read_text_limited(Path(path)), path)


def _temp_with(path: Path, data: bytes, mode: int) -> str:
    """A new file in `path`'s directory holding `data` at `mode`: created 0600 by mkstemp (O_EXCL, so never
    an existing file or a planted symlink), narrowed or widened only once the data is in, and synced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _previous(path: Path) -> "tuple[bytes, os.stat_result] | None":
    """The current file's bytes and status, when it is a regular file (what its backup keeps)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(), info
    finally:
        os.close(fd)


def _unlink(name: str | None) -> None:
    if name is not None:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def write_atomic(path: Path, text: str, mode: int = 0o600, backup: bool = True) -> None:
    """Write `text` to `path` atomically at `mode`; keep the previous file as `<path>.bak`.

    The backup is written the way the file is: a new temporary file in the same directory, then
    os.replace. An existing `.bak` is never opened, so a symlink planted there, a file another user owns
    (or a hard link to one) or a root-owned file is replaced, never written into or chmod-ed; and the
    backup is never readable by others, not even briefly. Its mode is `mode` narrowed by the previous
    file's (a 0600 file's old passwords stay 0600 even when the new file is 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_with(path, text.encode(locale.getpreferredencoding(False)), mode)
    bak_tmp = None
    try:
        previous = _previous(path) if backup else None
        if previous is not None:
            data, info = previous
            bak_tmp = _temp_with(path, data, mode & stat.S_IMODE(info.st_mode))
            os.utime(bak_tmp, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.replace(bak_tmp, path.with_name(path.name + ".bak"))
            bak_tmp = None
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        _unlink(bak_tmp)
        raise
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(creds: Credentials, path: Path) -> None:
    write_atomic(path, render(creds))
