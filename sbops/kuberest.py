"""A small Kubernetes REST client on urllib3: TLS, credentials and JSON over HTTP, nothing else.

Why not the kubernetes package's ApiClient: importing any part of that package runs its `__init__`, which
imports every typed model (built with pydantic), the dynamic client, watch, stream and the informers:
about 0.2 s of CPU before the first request, more than all of the doctor's Kubernetes checks together
(issue 16). sbops reads and writes plain JSON through a few dozen REST paths, so what it needs from a client
is what client-go's `rest.Config` holds: the server, how to trust it, how to authenticate, timeouts. That is
this module. The kubeconfig itself is parsed and validated by sbops.kube.

Credentials, as client-go takes them: a bearer token (or a token file, re-read when it changes: bound
ServiceAccount tokens rotate), basic auth, a client certificate and key (files or inline data), or an exec
plugin (client.authentication.k8s.io ExecCredential: a token or a certificate, cached until it expires).
No retries: urllib3's default Retry(3) would make each call against a hung API server take four times the
timeout. Connections are pooled and reused across calls and threads.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlencode, urlsplit

EXEC_TIMEOUT = 30.0  # an exec plugin that takes longer is broken (client-go has no limit; a doctor must not hang)


class ApiException(Exception):
    """An HTTP error answer of the API server: status, reason, body (the Status object's JSON) and headers.
    Named as the kubernetes package's class, so sbops.probes.kubecommon.api_status recognises either."""

    def __init__(self, status: int = 0, reason: str = "", body: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(status, reason)
        self.status, self.reason, self.body = status, reason, body
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        text = f"({self.status})\nReason: {self.reason}\n"
        return text + (f"HTTP response body: {self.body}\n" if self.body else "")


class CredentialError(OSError):
    """A credential could not be obtained (an exec plugin failed, a certificate did not load): one line.
    An OSError, as a network error is: the request never reached the API server, and every check already
    reports such errors with their message (sbops.probes.kubecommon.api_reason: auth_failed)."""


class TokenFile:
    """A bearer token in a file, re-read when the file changes: the kubelet rotates bound tokens (they
    expire after about an hour) by swapping the projected volume's ..data symlink, so a long-running
    exporter must not keep the first one. One stat per request; a read only when (inode, size, mtime)
    moved. A token that cannot be read keeps the last good one (the API server says 401 if it expired)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self.token = ""
        self.reads = 0
        self.refresh()

    def refresh(self) -> str:
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
                if stamp != self._stamp:
                    token = self.path.read_text(encoding="utf-8").strip()
                    if token:
                        self.token, self._stamp = token, stamp
                        self.reads += 1
            except (OSError, UnicodeDecodeError):
                pass
            return self.token


@dataclass(frozen=True)
class ExecPlugin:
    """users[].user.exec of a kubeconfig: a command that prints an ExecCredential."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1beta1"
    base: Path = Path(".")  # the kubeconfig's folder: a relative command with a slash is resolved against it

    def argv(self) -> list[str]:
        command = self.command
        if "/" in command and not os.path.isabs(command):
            command = str(self.base / command)
        return [command, *self.args]


def parse_exec_credential(stdout: str) -> tuple[dict[str, str], dt.datetime | None]:
    """An ExecCredential's status -> ({"token"} or {"cert", "key"}, its expiry or None); pure.
    CredentialError when it holds neither or is not JSON."""
    try:
        status = (json.loads(stdout) or {}).get("status") or {}
    except (ValueError, AttributeError):
        raise CredentialError("the exec plugin did not print an ExecCredential (not JSON)") from None
    if not isinstance(status, dict):
        raise CredentialError("the exec plugin's ExecCredential has no status")
    found: dict[str, str] = {}
    if isinstance(status.get("token"), str) and status["token"]:
        found["token"] = status["token"]
    elif isinstance(status.get("clientCertificateData"), str) and isinstance(status.get("clientKeyData"), str):
        found = {"cert": status["clientCertificateData"], "key": status["clientKeyData"]}
    else:
        raise CredentialError("the exec plugin's ExecCredential has neither a token nor a client certificate")
    expiry = None
    stamp = status.get("expirationTimestamp")
    if isinstance(stamp, str) and stamp:
        try:
            expiry = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise CredentialError(f"the exec plugin's expirationTimestamp {stamp[:40]!r} is not a time") from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=dt.timezone.utc)
    return found, expiry


class ExecCredentials:
    """Runs an exec plugin when there is no credential yet or the last one expired; thread-safe."""

    def __init__(self, plugin: ExecPlugin, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
        self.plugin = plugin
        self._run = run
        self._lock = threading.Lock()
        self._found: dict[str, str] | None = None
        self._expiry: dt.datetime | None = None
        self.runs = 0

    def get(self) -> dict[str, str]:
        with self._lock:
            now = dt.datetime.now(dt.timezone.utc)
            if self._found is None or (self._expiry is not None and now >= self._expiry):
                self._found, self._expiry = parse_exec_credential(self._call())
            return self._found

    def _call(self) -> str:
        info = {"apiVersion": self.plugin.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env = {**os.environ, **dict(self.plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
        argv = self.plugin.argv()
        try:
            proc = self._run(argv, env=env, capture_output=True, text=True, timeout=EXEC_TIMEOUT,
                             stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialError(f"exec plugin {argv[0]}: {exc}") from None
        self.runs += 1
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [""])[-1][:200]
            raise CredentialError(f"exec plugin {argv[0]} exited {proc.returncode}: {last}")
        return proc.stdout


@dataclass
class Credentials:
    """How a request authenticates: at most one of token / token_file / basic / exec, plus an optional client
    certificate (PEM bytes, from a file or inline data)."""

    token: str = ""
    token_file: TokenFile | None = None
    basic: tuple[str, str] | None = None
    exec_plugin: ExecCredentials | None = None
    cert_pem: bytes = b""
    key_pem: bytes = b""

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.refresh() or token
        if self.exec_plugin is not None:
            token = self.exec_plugin.get().get("token", "") or token
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.basic is not None:
            pair = f"{self.basic[0]}:{self.basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


@dataclass
class Server:
    """Where the API server is and how to trust it."""

    url: str
    ca_pem: bytes = b""          # '' = the system's trust store
    ca_file: str = ""           # kept for reports (where the CA came from)
    insecure: bool = False      # insecure-skip-tls-verify
    server_name: str = ""       # tls-server-name: SNI and the name the certificate must carry
    proxy_url: str = ""


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """SSLContext.load_cert_chain reads files only: the PEMs go through a private 0600 file, removed at once."""
    with tempfile.TemporaryDirectory(prefix="sbops-kube-") as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except (ssl.SSLError, ValueError) as exc:
            raise CredentialError(f"the client certificate or key does not load: {exc}") from None


def tls_context(server: Server, credentials: Credentials) -> ssl.SSLContext:
    """The TLS context for `server`, with the client certificate when there is one (an exec plugin's included)."""
    if server.insecure or server.ca_pem:  # as client-go: the kubeconfig's CA alone, not the system's as well
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # (and no CA store loaded for nothing: ~10 ms)
        if server.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.load_verify_locations(cadata=server.ca_pem.decode("ascii", "replace"))
    else:
        context = ssl.create_default_context()
    cert, key = credentials.cert_pem, credentials.key_pem
    if credentials.exec_plugin is not None:
        found = credentials.exec_plugin.get()
        if "cert" in found:
            cert, key = found["cert"].encode(), found["key"].encode()
    if cert and key:
        _load_chain(context, cert, key)
    return context


@dataclass
class Response:
    status: int
    reason: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Connection:
    """One API server with its credentials; a pool of keep-alive connections shared by every thread. The TLS
    context (and an exec plugin's first run) is built on the first request, so that building a Connection
    never fails: a credential that cannot load is that request's error, reported by the check that made it."""

    def __init__(self, server: Server, credentials: Credentials, *, pool_size: int = 16) -> None:
        self.server = server
        self.credentials = credentials
        self.host = server.url.rstrip("/")
        self.pool_size = pool_size
        self._pool: Any = None
        self._lock = threading.Lock()

    def _manager(self) -> Any:
        with self._lock:
            if self._pool is None:
                import urllib3

                kwargs: dict[str, Any] = {"num_pools": 4, "maxsize": self.pool_size, "block": False,
                                          "retries": urllib3.Retry(total=0, redirect=0, raise_on_redirect=False)}
                if urlsplit(self.host).scheme == "https":
                    kwargs["ssl_context"] = tls_context(self.server, self.credentials)
                    if self.server.insecure:
                        kwargs["cert_reqs"] = "CERT_NONE"
                        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                    if self.server.server_name:
                        kwargs["server_hostname"] = self.server.server_name
                        kwargs["assert_hostname"] = self.server.server_name
                if self.server.proxy_url:
                    self._pool = urllib3.ProxyManager(self.server.proxy_url, **kwargs)
                else:
                    self._pool = urllib3.PoolManager(**kwargs)
            return self._pool

    def request(self, method: str, path: str, *, params: Sequence[tuple[str, Any]] = (),
                headers: Mapping[str, str] | None = None, body: Any = None,
                timeout: tuple[float, float] = (10.0, 10.0)) -> Response:
        """One HTTP call: `body` is bytes as they are, or JSON-encoded. Network errors raise (urllib3's,
        with the socket error in their chain); HTTP errors are returned, not raised."""
        import urllib3

        url = self.host + path
        query = [(k, _param(v)) for k, v in params if v is not None and v != ""]
        if query:
            url += "?" + urlencode(query)
        sent = {**self.credentials.headers(), **dict(headers or {})}
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        answer = self._manager().request(method, url, body=body, headers=sent, 
                                         timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        return Response(answer.status, answer.reason or "", answer.data, dict(answer.headers))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.clear()
                self._pool = None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def raise_for_status(response: Response) -> bytes:
    """The body of a 2xx answer; ApiException otherwise."""
    if 200 <= response.status <= 299:
        return response.data
    raise ApiException(response.status, response.reason, response.data.decode("utf-8", "replace"), response.headers)
