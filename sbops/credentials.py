"""The original installer's credentials file: parse with line numbers, render byte-compatibly, write safely.

Format (ORIGINAL-INSTALLER.md): a banner, `STACKBILL POC CREDENTIALS`, `Generated: <date>`, then
`PORTAL URL:`, `SERVER IP:` and the sections MYSQL, MONGODB, RABBITMQ, NFS with indented `Key: value` lines.
"""

from __future__ import annotations

import locale
import os
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
SECTIONS = ("MYSQL", "MONGODB", "RABBITMQ", "NFS")
DEFAULT_PATHS = (Path("/root/stackbill-credentials.txt"), Path.home() / "stackbill-credentials.txt")

# The keys each section writes, in order; others are kept when read but not required.
SECTION_KEYS = {
    "MYSQL": ("Host", "Port", "Database", "Username", "Password"),
    "MONGODB": ("Host", "Port", "Database", "Username", "Password"),
    "RABBITMQ": ("Host", "Port", "Username", "Password", "Management"),
    "NFS": ("Server", "Path"),
}


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

    @property
    def domain(self) -> str:
        url = self.portal_url
        for prefix in ("https://", "http://"):
            if url.startswith(prefix):
                url = url[len(prefix):]
        return url.rstrip("/")

    def secrets(self) -> list[Secret]:
        return [s.password for s in (self.mysql, self.mongodb, self.rabbitmq) if s.password]


def _parse_port(value: str, where: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise UsageError(f"{where}: Port must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"{where}: Port {port} is out of range")
    return port


def parse(text: str, path: Path | str = "<credentials>") -> Credentials:
    """Parse the file's text; any malformed line raises UsageError naming the file and line."""
    top: dict[str, str] = {}
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped == TITLE:
            continue
        if set(stripped) <= {"="}:
            current = None
            continue
        indented = line[0] in " \t"
        if not indented:
            if stripped.endswith(":") and stripped[:-1] in SECTIONS:
                current = stripped[:-1]
                if current in sections:
                    raise UsageError(f"{where}: section {current} appears twice")
                sections[current] = {}
                continue
            if ":" not in stripped:
                raise UsageError(f"{where}: expected 'KEY: value' or a section header (MYSQL:, MONGODB:, RABBITMQ:, NFS:)")
            key, _, value = stripped.partition(":")
            key = key.strip().upper()
            top[key] = value.strip()
            current = None
            continue
        if current is None:
            raise UsageError(f"{where}: indented line outside a section (MYSQL:, MONGODB:, RABBITMQ:, NFS:)")
        if ":" not in stripped:
            raise UsageError(f"{where}: expected 'Key: value' in section {current}")
        key, _, value = stripped.partition(":")
        key = key.strip()
        if key in sections[current]:
            raise UsageError(f"{where}: {current} has '{key}' twice")
        sections[current][key] = (value.strip(), number)

    def service(name: str, default_db: str) -> Service:
        entries = sections.get(name, {})
        get = lambda k: entries.get(k, ("", 0))[0]  # noqa: E731
        port = None
        if "Port" in entries:
            value, number = entries["Port"]
            port = _parse_port(value, f"{path}:{number}")
        if "Password" in entries and not entries["Password"][0]:
            raise UsageError(f"{path}:{entries['Password'][1]}: {name} Password is empty")
        password = Secret(get("Password")) if get("Password") else None
        return Service(
            host=get("Host"),
            port=port,
            username=get("Username") or "stackbill",
            password=password,
            database=get("Database") or default_db,
            management=get("Management"),
        )

    nfs = sections.get("NFS", {})
    return Credentials(
        portal_url=top.get("PORTAL URL", ""),
        server_ip=top.get("SERVER IP", ""),
        generated=top.get("GENERATED", ""),
        mysql=service("MYSQL", "stackbill"),
        mongodb=service("MONGODB", "admin"),
        rabbitmq=service("RABBITMQ", ""),
        nfs_server=nfs.get("Server", ("", 0))[0],
        nfs_path=nfs.get("Path", ("/data/stackbill", 0))[0],
        path=Path(path) if not isinstance(path, Path) else path,
    )


def render(creds: Credentials) -> str:
    """The file's text, in the original installer's exact layout."""
    ip = creds.server_ip

    def val(service: Service, key: str) -> str:
        return {
            "Host": service.host or ip,
            "Port": str(service.port) if service.port else "",
            "Database": service.database,
            "Username": service.username,
            "Password": service.password.reveal() if service.password else "",
            "Management": service.management,
        }[key]

    defaults = {"MYSQL": 3306, "MONGODB": 27017, "RABBITMQ": 5672}
    lines = [BANNER, TITLE, f"Generated: {creds.generated or datetime.now().strftime('%a %b %d %H:%M:%S %Z %Y').replace('  ', ' ')}", BANNER, ""]
    lines += [f"PORTAL URL: {creds.portal_url}", "", f"SERVER IP: {ip}", ""]
    for name, service in (("MYSQL", creds.mysql), ("MONGODB", creds.mongodb), ("RABBITMQ", creds.rabbitmq)):
        if service.port is None:
            service = replace(service, port=defaults[name])
        if name == "RABBITMQ" and not service.management:
            service = replace(service, management=f"http://{service.host or ip}:15672")
        lines.append(f"{name}:")
        for key in SECTION_KEYS[name]:
            if key == "Password" and not service.password:
                continue  # an empty Password line is refused when read: leave it out, as it was
            lines.append(f"  {key}: {val(service, key)}")
        lines.append("")
    lines += ["NFS:", f"  Server: {creds.nfs_server or ip}", f"  Path: {creds.nfs_path}", "", BANNER]
    return "\n".join(lines) + "\n"


def find(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file to use: --credentials, then SBOPS_CREDENTIALS, then the default paths."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("SBOPS_CREDENTIALS"):
        return Path(env["SBOPS_CREDENTIALS"])
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
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
