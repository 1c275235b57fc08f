"""The original installer's credentials file: parse with line numbers, render byte-compatibly, write safely.

Format (ORIGINAL-INSTALLER.md): a banner, `STACKBILL POC CREDENTIALS`, `Generated: <date>`, then
`PORTAL URL:`, `SERVER IP:` and the sections MYSQL, MONGODB, RABBITMQ, NFS with indented `Key: value` lines.
"""

from __future__ import annotations

import os
import shutil
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


def load(path: Path) -> Credentials:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{path}: credentials file not found") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read credentials file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: credentials file is not text") from None
    return parse(text, path)


def write_atomic(path: Path, text: str, mode: int = 0o600, backup: bool = True) -> None:
    """Write `text` to `path` atomically at `mode`; keep the previous file as `<path>.bak` (same mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if backup and path.exists():
            bak = path.with_name(path.name + ".bak")
            shutil.copy2(path, bak)
            os.chmod(bak, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(creds: Credentials, path: Path) -> None:
    write_atomic(path, render(creds))
