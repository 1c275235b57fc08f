"""The web-config file of Prometheus's exporter-toolkit: TLS and basic auth, as node_exporter reads it.

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert (default)
      client_ca_file: clients-ca.crt
      min_version: TLS12               # TLS10..TLS13; also max_version
    basic_auth_users:
      prometheus: $2b$12$...           # bcrypt hash (htpasswd -nBC 12 "" | tr -d ':\\n')
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}

The same file passes `promtool check web-config`. Settings the toolkit knows but Python's ssl module cannot
honour exactly (cipher_suites, curve_preferences, RequestClientCert and RequireAnyClientCert, which ask for a
certificate without verifying it) are refused with a message rather than ignored. The file is read again
when it or a file it names changes, so a renewed certificate or a new user needs no restart; a broken
edit keeps the last good configuration.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sbops.errors import UsageError

CLIENT_AUTH = {"": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
            "prefer_server_cipher_suites", "client_allowed_sans"}
UNSUPPORTED_TLS_KEYS = {"cipher_suites", "curve_preferences", "cert", "key", "client_ca"}
# The headers exporter-toolkit allows in http_server_config.headers.
ALLOWED_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "X-XSS-Protection",
                   "Content-Security-Policy")
# `$2a$`, `$2b$`, `$2y$` (htpasswd), cost and 53 characters of salt and hash; fullmatch, so nothing may follow
# (`$` alone would let a trailing newline through, and such a hash never matches any password).
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# a bcrypt hash after its cost, or a run as long as a hash's last 31 characters: never quoted in a message
HASH_LIKE = re.compile(r"(\$2[a-z]?\$\d*\$?)[./A-Za-z0-9]{8,}|()[./A-Za-z0-9]{30,}")
BCRYPT_COSTS = range(4, 32)  # what bcrypt (Go's and Python's) accepts
MAX_FILE_BYTES = 1 << 20  # a web-config file is a few hundred bytes; refuse to read a huge one into memory
MAX_DEPTH = 16  # the deepest a valid file nests is 4; PyYAML's composer recurses, so bound it before composing
REALM = "sbops exporter"


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = ""
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = ""
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: tuple[str, ...] = ()

    def files(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]


@dataclass(frozen=True)
class WebConfig:
    path: Path | None = None
    tls: TlsConfig | None = None
    users: dict[str, str] = field(default_factory=dict)  # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)


def _where(path: Path, node: Any) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def shown(text: Any, limit: int = 80) -> str:
    """Text from a file or a client, safe in a one-line message or a journal line: printable ASCII kept,
    everything else (newlines, terminal escapes, non-ASCII) as a backslash escape, cut at `limit`, and
    anything shaped like a bcrypt hash cut after its cost (a mis-indented hash can land where a key belongs,
    and a web-config error must not put a hash in the journal)."""
    text = HASH_LIKE.sub(r"\1...", str(text))
    out = []
    for char in text[:limit]:
        if char == "\\":
            out.append("\\\\")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out) + ("..." if len(text) > limit else "")


def decode(path: Path, data: bytes) -> str:
    """The file's text: UTF-8 (as YAML and the toolkit read it), else a UsageError naming the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _compose(path: Path, text: str) -> Any:
    """PyYAML's node tree, after a non-recursive pass that refuses nesting deeper than MAX_DEPTH (the
    composer recurses, so a deep file would otherwise end in RecursionError or a crash)."""
    import yaml

    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UsageError(f"{path}:{event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep "
                                     "(a web-config file needs at most 4)")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        # problem/context only: str(exc) quotes the file's text, which may hold a hash
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise UsageError(f"{path}{line}: invalid YAML: {shown(problem)}") from None


def parse(path: Path, text: str | bytes) -> WebConfig:
    """The file's settings; every mistake is a UsageError naming the file and line (I/O-free but for TLS files).
    Nothing else may escape: tests/faults fuzzes this function."""
    import yaml

    if isinstance(text, bytes):
        text = decode(path, text)
    root = _compose(path, text)
    if root is None:
        return WebConfig(path)
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{_where(path, root)}: a web-config file is a mapping")
    tls: TlsConfig | None = None
    users: dict[str, str] = {}
    headers: dict[str, str] = {}
    for key_node, value_node in root.value:
        key = _key(path, key_node, "web-config")
        if key == "tls_server_config":
            tls = _tls(path, value_node)
        elif key == "basic_auth_users":
            users = _users(path, value_node)
        elif key == "http_server_config":
            headers = _http(path, value_node)
        else:
            raise UsageError(f"{_where(path, key_node)}: unknown web-config key '{shown(key)}' "
                             "(known: tls_server_config, basic_auth_users, http_server_config)")
    return WebConfig(path, tls, users, headers)


def _mapping(path: Path, node: Any, what: str) -> list[tuple[Any, Any]]:
    import yaml

    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return []
    if not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{_where(path, node)}: {what} must be a mapping")
    return node.value


def _scalar(path: Path, node: Any, key: str) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise UsageError(f"{_where(path, node)}: {shown(key)} must be a single value")
    return str(node.value)


def _key(path: Path, node: Any, where: str) -> str:
    """A mapping key, which must be a plain value (`{[a]: b}` has a list as a key)."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise UsageError(f"{_where(path, node)}: a key of {where} must be a single value, not a list or mapping")
    return str(node.value)


def _tls(path: Path, node: Any) -> TlsConfig | None:
    import yaml

    values: dict[str, Any] = {}
    lines: dict[str, str] = {}
    for key_node, value_node in _mapping(path, node, "tls_server_config"):
        key = _key(path, key_node, "tls_server_config")
        lines[key] = _where(path, key_node)
        if key in UNSUPPORTED_TLS_KEYS:
            raise UsageError(f"{lines[key]}: tls_server_config.{key} is not supported by sbops exporter "
                             "(Python's TLS stack uses OpenSSL's defaults; use cert_file/key_file/client_ca_file)")
        if key not in TLS_KEYS:
            raise UsageError(f"{lines[key]}: unknown tls_server_config key '{shown(key)}'")
        if key == "client_allowed_sans":
            if not isinstance(value_node, yaml.SequenceNode):
                raise UsageError(f"{lines[key]}: client_allowed_sans must be a list")
            values[key] = tuple(_scalar(path, n, key) for n in value_node.value)
        else:
            values[key] = _scalar(path, value_node, key)
    if not values:
        return None
    for key in ("cert_file", "key_file"):
        if not values.get(key) or values[key] in ("~", "null"):
            raise UsageError(f"{path}: tls_server_config needs {key}")
    auth = values.get("client_auth_type", "")
    where = lines.get("client_auth_type", str(path))
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise UsageError(f"{where}: client_auth_type {auth} (a client certificate without verification) is not "
                         "supported: use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file")
    if auth not in CLIENT_AUTH:
        raise UsageError(f"{where}: client_auth_type must be one of {', '.join(k for k in CLIENT_AUTH if k)}")
    for key in ("cert_file", "key_file", "client_ca_file"):
        if "\0" in values.get(key, ""):
            raise UsageError(f"{lines[key]}: {key} is not a file name (it holds a NUL character)")
    ca = values.get("client_ca_file", "")
    if ca and CLIENT_AUTH[auth] == ssl.CERT_NONE:
        raise UsageError(f"{lines['client_ca_file']}: client_ca_file is set but client_auth_type does not verify "
                         "client certificates (set RequireAndVerifyClientCert)")
    for key in ("min_version", "max_version"):
        if values.get(key) and values[key] not in TLS_VERSIONS:
            raise UsageError(f"{lines[key]}: {key} must be one of {', '.join(TLS_VERSIONS)}")
    order = list(TLS_VERSIONS)
    if values.get("min_version") and values.get("max_version") and \
            order.index(values["min_version"]) > order.index(values["max_version"]):
        raise UsageError(f"{lines['max_version']}: max_version {values['max_version']} is below min_version "
                         f"{values['min_version']}: no client could connect")
    prefer = str(values.get("prefer_server_cipher_suites", "true")).lower()
    if prefer not in ("true", "false"):
        raise UsageError(f"{lines['prefer_server_cipher_suites']}: prefer_server_cipher_suites must be true or false")
    base = path.parent
    return TlsConfig(cert_file=base / values["cert_file"], key_file=base / values["key_file"], client_auth_type=auth,
                     client_ca_file=base / ca if ca else None, min_version=values.get("min_version") or "TLS12",
                     max_version=values.get("max_version", ""), prefer_server_cipher_suites=prefer == "true",
                     client_allowed_sans=values.get("client_allowed_sans", ()))


def _users(path: Path, node: Any) -> dict[str, str]:
    users: dict[str, str] = {}
    for key_node, value_node in _mapping(path, node, "basic_auth_users"):
        user, hashed = _key(path, key_node, "basic_auth_users"), _scalar(path, value_node, "a basic_auth_users entry")
        where = f"{_where(path, value_node)}: basic_auth_users.{shown(user)}"
        if ":" in user or not user:
            raise UsageError(f"{_where(path, key_node)}: user name '{shown(user)}' cannot be used with basic auth "
                             "(it is empty or holds ':')")
        if hashed != hashed.rstrip() and BCRYPT_HASH.fullmatch(hashed.rstrip()):
            # a YAML block scalar (`|`) or a quoted "...\n" keeps the newline; such a hash would never match
            raise UsageError(f"{where}: the bcrypt hash ends with a newline or space; write it on one line as a "
                             "plain value (or use '|-')")
        match = BCRYPT_HASH.fullmatch(hashed)
        if not match:
            raise UsageError(f"{where} is not a bcrypt hash "
                             "(make one with: htpasswd -nBC 12 '' | tr -d ':\\n')")
        if int(match.group(1)) not in BCRYPT_COSTS:
            raise UsageError(f"{where}: bcrypt cost {match.group(1)} is outside "
                             f"{BCRYPT_COSTS.start}-{BCRYPT_COSTS.stop - 1}")
        if not _checkable(hashed):
            raise UsageError(f"{where}: the bcrypt hash is damaged (bcrypt cannot read its salt); make a new one "
                             "(htpasswd -nBC 12 '' | tr -d ':\\n')")
        if user in users:
            raise UsageError(f"{_where(path, key_node)}: user '{shown(user)}' listed twice")
        users[user] = hashed
    return users


def _checkable(hashed: str) -> bool:
    """Whether bcrypt can check a password against the hash at all (not the case when, say, the salt's last
    character has bits set that 16 bytes cannot hold): tried at cost 4, so it takes a millisecond whatever
    the hash's own cost."""
    import bcrypt

    try:
        bcrypt.checkpw(b"", (hashed[:4] + "04" + hashed[6:]).encode())
    except ValueError:
        return False
    return True


def _http(path: Path, node: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key_node, value_node in _mapping(path, node, "http_server_config"):
        key = _key(path, key_node, "http_server_config")
        if key == "http2":
            continue  # this server speaks HTTP/1.1 only; the setting changes nothing
        if key != "headers":
            raise UsageError(f"{_where(path, key_node)}: unknown http_server_config key '{shown(key)}' "
                             "(known: headers, http2)")
        for name_node, header_node in _mapping(path, value_node, "headers"):
            name = _key(path, name_node, "headers")
            allowed = {h.lower(): h for h in ALLOWED_HEADERS}
            if name.lower() not in allowed:
                raise UsageError(f"{_where(path, name_node)}: header {shown(name)} is not allowed "
                                 f"(allowed: {', '.join(ALLOWED_HEADERS)})")
            value = _scalar(path, header_node, name)
            if any(not " " <= c <= "~" and c != "\t" for c in value):
                # a CR or LF would let the file inject headers (or a body) into every response
                raise UsageError(f"{_where(path, header_node)}: header {name} holds a control or non-ASCII "
                                 "character")
            headers[allowed[name.lower()]] = value
    return headers


def read(path: Path) -> bytes:
    """The file's bytes: a regular file of at most MAX_FILE_BYTES (a FIFO would block the reader forever)."""
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{path}: web-config is not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read web-config file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path}: web-config file is larger than {MAX_FILE_BYTES // 1024} KiB")
    return data


def load(path: Path) -> WebConfig:
    config = parse(path, read(path))
    if config.tls is not None:
        try:
            server_context(config.tls)  # fail now, naming the files, rather than at the first connection
        except UsageError as exc:
            raise UsageError(f"{path}: tls_server_config: {exc}") from None
    return config


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """An SSLContext for the listening side; problems with the files are UsageErrors naming them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    for name in ("cert_file", "key_file", "client_ca_file"):
        file = getattr(tls, name)
        if file is not None and not Path(file).is_file():
            raise UsageError(f"{shown(file, 300)}: {name} not found (tls_server_config)")
    try:
        # an encrypted key: fail, rather than let OpenSSL prompt on a terminal the service does not have
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=_no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"{shown(tls.cert_file, 300)}: cannot use cert_file with key_file {shown(tls.key_file, 300)}: "
                         f"{shown(getattr(exc, 'reason', None) or exc, 200)}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is None and context.verify_mode != ssl.CERT_NONE:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go does without ClientCAs: the system's roots
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(f"{shown(tls.client_ca_file, 300)}: cannot use client_ca_file: "
                             f"{shown(getattr(exc, 'reason', None) or exc, 200)}") from None
    return context


def _no_password() -> bytes:
    raise ValueError("the key is encrypted; sbops needs an unencrypted key_file (mode 0600)")


def san_allowed(peer_cert: dict[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """client_allowed_sans: the verified client certificate must name one of them (DNS, IP, email or URI)."""
    if not allowed:
        return True
    names = {value for _, value in (peer_cert or {}).get("subjectAltName", ())}
    return bool(names & set(allowed))


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes without telling valid users from unknown ones.

    An unknown user is compared against the costliest configured hash (and refused whatever the outcome), so
    both take as long; nothing is hashed up front, so a high cost cannot stall a (re)load. Successful
    checks are remembered (keyed by a SHA-256 of user, password and hash) because bcrypt is deliberately
    slow and Prometheus sends the same credentials every scrape; failures are never remembered.
    """

    MAX_CACHED = 256

    def __init__(self, users: dict[str, str], hasher: Callable[[bytes, bytes], bool] | None = None) -> None:
        import bcrypt

        self.users = dict(users)
        self._checkpw = hasher or bcrypt.checkpw
        self._dummy = max(self.users.values(), key=_cost, default="")
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def allows(self, header: str | None) -> bool:
        if not self.users:
            return True
        user, password = parse_basic(header)
        if user is None or password is None:
            return False
        hashed = self.users.get(user, self._dummy)
        key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed.encode()])).digest()
        with self._lock:
            if key in self._ok:
                return True
        try:
            good = self._checkpw(password.encode(), hashed.encode())
        except ValueError:
            good = False
        good = good and user in self.users
        if good:
            with self._lock:
                if len(self._ok) >= self.MAX_CACHED:
                    self._ok.clear()
                self._ok.add(key)
        return good


def _cost(hashed: str) -> int:
    match = BCRYPT_HASH.fullmatch(hashed)
    return int(match.group(1)) if match else 0


def parse_basic(header: str | None) -> tuple[str | None, str | None]:
    """(user, password) of an `Authorization: Basic ...` header, (None, None) when absent or malformed."""
    if not header or not header[:6].lower() == "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    if ":" not in decoded:
        return None, None
    user, password = decoded.split(":", 1)
    return user, password


@dataclass(frozen=True)
class Active:
    """One consistent web-config in force: a connection is served with one of these from start to end."""

    config: WebConfig
    auth: BasicAuth
    context: ssl.SSLContext | None
    stamps: tuple[Any, ...]  # (mtime, size) of the file and the TLS files it names, when they were read


class Watched:
    """The web-config in force, re-read when the file or a file it names changes.

    `refresh()` runs in each connection's own thread (never the accept loop): a stat of the files, and a
    re-read when one changed. A broken file at run time, whatever is wrong with it, keeps the last good
    configuration, is reported once per change through `on_error` (one log line, one counted error), and the
    exporter keeps serving; at start-up the same file is a UsageError (one line, exit 2: systemd's
    RestartPreventExitStatus=2 then stops retrying)."""

    def __init__(self, path: Path | None, on_error: Callable[[str], None]) -> None:
        self.path = path
        self._on_error = on_error
        self._lock = threading.Lock()
        self._failed: tuple[Any, ...] | None = None  # the stamps of the broken version last reported
        try:
            config = load(path) if path else WebConfig()
            self.active = self._build(config, self._stamp(config))
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug of sbops, but still the file's problem to the user
            raise UsageError(unexpected(path, exc)) from None

    @property
    def config(self) -> WebConfig:
        return self.active.config

    @property
    def auth(self) -> BasicAuth:
        return self.active.auth

    @property
    def context(self) -> ssl.SSLContext | None:
        return self.active.context

    @staticmethod
    def _build(config: WebConfig, stamps: tuple[Any, ...]) -> Active:
        return Active(config, BasicAuth(config.users), server_context(config.tls) if config.tls else None, stamps)

    def _files(self, config: WebConfig) -> list[Path | None]:
        return [self.path, *(config.tls.files() if config.tls else [])]

    def _stamp(self, config: WebConfig) -> tuple[Any, ...]:
        out = []
        for file in self._files(config):
            try:
                info = os.stat(file) if file else None
                out.append((info.st_mtime_ns, info.st_size) if info else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def refresh(self) -> Active:
        """The configuration to serve a connection with, re-read first if a file changed. Never raises."""
        active = self.active
        if self.path is None:
            return active
        stamps = self._stamp(active.config)
        if stamps in (active.stamps, self._failed):
            return active
        if not self._lock.acquire(blocking=False):
            return self.active  # another connection is re-reading it: serve this one with what is in force
        try:
            active = self.active
            stamps = self._stamp(active.config)  # taken before reading: a write during the read is seen next time
            if stamps in (active.stamps, self._failed):
                return active
            try:
                config = load(self.path)
                if (config.tls is None) != (active.config.tls is None):
                    raise UsageError(f"{self.path}: switching TLS on or off needs a restart of sbops exporter")
                same_files = self._files(config) == self._files(active.config)
                self.active = self._build(config, stamps if same_files else self._stamp(config))
                self._failed = None
            except Exception as exc:  # noqa: BLE001 - whatever it is, the exporter keeps its last good copy
                self._failed = stamps  # report once per change
                self._on_error(str(exc) if isinstance(exc, UsageError) else unexpected(self.path, exc))
            return self.active
        finally:
            self._lock.release()


def unexpected(path: Path | None, exc: BaseException) -> str:
    """One line for an error sbops did not foresee in reading the file (a bug to report, not a crash)."""
    return f"{path}: cannot use web-config file: unexpected {type(exc).__name__} (please report this bug of sbops)"
