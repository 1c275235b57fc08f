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
import secrets
import ssl
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
BCRYPT_HASH = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
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


def parse(path: Path, text: str) -> WebConfig:
    """The file's settings; every mistake is a UsageError naming the file and line (I/O-free but for TLS files)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        return WebConfig(path)
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{_where(path, root)}: a web-config file is a mapping")
    tls: TlsConfig | None = None
    users: dict[str, str] = {}
    headers: dict[str, str] = {}
    for key_node, value_node in root.value:
        key = key_node.value
        if key == "tls_server_config":
            tls = _tls(path, value_node)
        elif key == "basic_auth_users":
            users = _users(path, value_node)
        elif key == "http_server_config":
            headers = _http(path, value_node)
        else:
            raise UsageError(f"{_where(path, key_node)}: unknown web-config key '{key}' "
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
        raise UsageError(f"{_where(path, node)}: {key} must be a single value")
    return str(node.value)


def _tls(path: Path, node: Any) -> TlsConfig | None:
    import yaml

    values: dict[str, Any] = {}
    lines: dict[str, str] = {}
    for key_node, value_node in _mapping(path, node, "tls_server_config"):
        key = key_node.value
        lines[key] = _where(path, key_node)
        if key in UNSUPPORTED_TLS_KEYS:
            raise UsageError(f"{lines[key]}: tls_server_config.{key} is not supported by sbops exporter "
                             "(Python's TLS stack uses OpenSSL's defaults; use cert_file/key_file/client_ca_file)")
        if key not in TLS_KEYS:
            raise UsageError(f"{lines[key]}: unknown tls_server_config key '{key}'")
        if key == "client_allowed_sans":
            if not isinstance(value_node, yaml.SequenceNode):
                raise UsageError(f"{lines[key]}: client_allowed_sans must be a list")
            values[key] = tuple(_scalar(path, n, key) for n in value_node.value)
        else:
            values[key] = _scalar(path, value_node, key)
    if not values:
        return None
    for key in ("cert_file", "key_file"):
        if not values.get(key):
            raise UsageError(f"{path}: tls_server_config needs {key}")
    auth = values.get("client_auth_type", "")
    where = lines.get("client_auth_type", str(path))
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise UsageError(f"{where}: client_auth_type {auth} (a client certificate without verification) is not "
                         "supported: use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file")
    if auth not in CLIENT_AUTH:
        raise UsageError(f"{where}: client_auth_type must be one of {', '.join(k for k in CLIENT_AUTH if k)}")
    ca = values.get("client_ca_file", "")
    if ca and CLIENT_AUTH[auth] == ssl.CERT_NONE:
        raise UsageError(f"{lines['client_ca_file']}: client_ca_file is set but client_auth_type does not verify "
                         "client certificates (set RequireAndVerifyClientCert)")
    for key in ("min_version", "max_version"):
        if values.get(key) and values[key] not in TLS_VERSIONS:
            raise UsageError(f"{lines[key]}: {key} must be one of {', '.join(TLS_VERSIONS)}")
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
        user, hashed = str(key_node.value), _scalar(path, value_node, "a basic_auth_users entry")
        if not BCRYPT_HASH.match(hashed):
            raise UsageError(f"{_where(path, value_node)}: basic_auth_users.{user} is not a bcrypt hash "
                             "(make one with: htpasswd -nBC 12 '' | tr -d ':\\n')")
        if user in users:
            raise UsageError(f"{_where(path, key_node)}: user '{user}' listed twice")
        users[user] = hashed
    return users


def _http(path: Path, node: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key_node, value_node in _mapping(path, node, "http_server_config"):
        key = key_node.value
        if key == "http2":
            continue  # this server speaks HTTP/1.1 only; the setting changes nothing
        if key != "headers":
            raise UsageError(f"{_where(path, key_node)}: unknown http_server_config key '{key}' (known: headers, http2)")
        for name_node, header_node in _mapping(path, value_node, "headers"):
            name = name_node.value
            allowed = {h.lower(): h for h in ALLOWED_HEADERS}
            if name.lower() not in allowed:
                raise UsageError(f"{_where(path, name_node)}: header {name} is not allowed "
                                 f"(allowed: {', '.join(ALLOWED_HEADERS)})")
            headers[allowed[name.lower()]] = _scalar(path, header_node, name)
    return headers


def load(path: Path) -> WebConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read web-config file: {exc.strerror or exc}") from None
    config = parse(path, text)
    if config.tls is not None:
        server_context(config.tls)  # fail now, naming the file, rather than at the first connection
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
            raise UsageError(f"{file}: {name} not found (tls_server_config)")
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"{tls.cert_file}: cannot use cert_file with key_file {tls.key_file}: "
                         f"{getattr(exc, 'reason', None) or exc}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is None and context.verify_mode != ssl.CERT_NONE:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go does without ClientCAs: the system's roots
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(f"{tls.client_ca_file}: cannot use client_ca_file: {getattr(exc, 'reason', None) or exc}") from None
    return context


def san_allowed(peer_cert: dict[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """client_allowed_sans: the verified client certificate must name one of them (DNS, IP, email or URI)."""
    if not allowed:
        return True
    names = {value for _, value in (peer_cert or {}).get("subjectAltName", ())}
    return bool(names & set(allowed))


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes without telling valid users from unknown ones.

    An unknown user is compared against a dummy hash of the same cost, so both take as long. Successful
    checks are remembered (keyed by a SHA-256 of user, password and hash) because bcrypt is deliberately
    slow and Prometheus sends the same credentials every scrape; failures are never remembered.
    """

    MAX_CACHED = 256

    def __init__(self, users: dict[str, str], hasher: Callable[[bytes, bytes], bool] | None = None) -> None:
        import bcrypt

        self.users = dict(users)
        self._checkpw = hasher or bcrypt.checkpw
        cost = max([int(BCRYPT_HASH.match(h).group(1)) for h in users.values()] or [10])  # type: ignore[union-attr]
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost)).decode()
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


class Watched:
    """The web-config in force: re-read when the file or a file it names changes (stat per request)."""

    def __init__(self, path: Path | None, on_error: Callable[[str], None]) -> None:
        self.path = path
        self._on_error = on_error
        self._lock = threading.Lock()
        self.config = load(path) if path else WebConfig()  # UsageError at start-up
        self._apply(self.config)

    def _apply(self, config: WebConfig) -> None:
        self.config = config
        self.auth = BasicAuth(config.users)
        self.context = server_context(config.tls) if config.tls else None
        self._stamps = self._stamp(config)

    def _stamp(self, config: WebConfig) -> tuple[Any, ...]:
        files = [self.path, *(config.tls.files() if config.tls else [])]
        out = []
        for file in files:
            try:
                info = os.stat(file) if file else None
                out.append((info.st_mtime_ns, info.st_size) if info else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def refresh(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if self._stamp(self.config) == self._stamps:
                return
            try:
                config = load(self.path)
                if (config.tls is None) != (self.config.tls is None):
                    raise UsageError(f"{self.path}: switching TLS on or off needs a restart of sbops exporter")
                self._apply(config)
            except UsageError as exc:
                self._stamps = self._stamp(self.config)  # report once per change
                self._on_error(str(exc))
