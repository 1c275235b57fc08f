"""The exporter's HTTP server: /metrics, /probe?module=<layer>, /results (the doctor's JSON), /-/healthy and an
index page.

Every request gets its own CollectorRegistry holding the checks' collector (bound to that request's layers and
deadline) and, on /metrics, the exporter's own collectors: there is no module-level metric updated per
scrape. TLS and basic auth come from the web-config file (webconfig.py). Connections are accepted in one
thread, which does nothing else (a listen backlog of LISTEN_BACKLOG absorbs bursts), and served each in its
own: there the web-config is re-read if it changed, and the TLS handshake happens, with a socket timeout, so
neither a silent client nor a broken file can hold up or stop the others. Lines a client causes in the log
(refusals, malformed requests) are escaped and rate-limited.
"""

from __future__ import annotations

import gzip
import html
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.core import Metric

from sbops import __version__
from sbops.errors import UsageError
from sbops.exporter.collect import Scraper, scrape_deadline
from sbops.exporter.metrics import check_families, exporter_families
from sbops.exporter.webconfig import REALM, Active, Watched, san_allowed, shown
from sbops.registry import LAYERS

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
CONNECTION_TIMEOUT = 30.0  # seconds a connection may sit idle (or mid-handshake) before it is dropped
# Connections the kernel queues before the accept loop takes them (capped by net.core.somaxconn). With
# socketserver's default of 5, 50 concurrent scrapes already waited for SYN retransmits (1 s, 3 s, 7 s, ...).
LISTEN_BACKLOG = 1024
CLIENT_LOG_LINES = 20  # lines caused by clients (refusals, malformed requests) logged per CLIENT_LOG_WINDOW
CLIENT_LOG_WINDOW = 60.0


class LogBudget:
    """At most `lines` log lines per `window` seconds; counts what it holds back, to say so in the next line.
    Any client can cause a 401 or a malformed request, and must not be able to flood the journal with them."""

    def __init__(self, lines: int = CLIENT_LOG_LINES, window: float = CLIENT_LOG_WINDOW,
                 clock: Any = time.monotonic) -> None:
        self.lines = lines
        self.window = window
        self.clock = clock
        self._started = float("-inf")
        self._used = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """None: stay silent. Otherwise log, noting the returned number of lines held back since the last one."""
        with self._lock:
            now = self.clock()
            if now - self._started >= self.window:
                self._started, self._used = now, 0
            if self._used >= self.lines:
                self.suppressed += 1
                return None
            self._used += 1
            held, self.suppressed = self.suppressed, 0
            return held


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (every IPv4 address) -> (host, port); errors name --listen."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen: expected HOST:PORT (e.g. 127.0.0.1:29100), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--listen: write an IPv6 address in brackets, e.g. [::1]:{port}")
    return host or "0.0.0.0", int(port)


class ChecksCollector(Collector):
    """Runs the layers' checks when collected (once per request) and yields their metric families."""

    def __init__(self, scraper: Scraper, layers: list[str], deadline: float) -> None:
        self.scraper = scraper
        self.layers = layers
        self.deadline = deadline

    def collect(self) -> Iterable[Metric]:
        scrape = self.scraper.scrape(self.layers, self.deadline)
        cached = {c.id: c.cache_seconds for layer in self.layers for c in self.scraper.checks_by_layer[layer]
                  if c.cache_seconds > 0}
        return check_families(scrape, cached)


class ExporterCollector(Collector):
    """sbops_build_info and sbops_exporter_errors_total."""

    def __init__(self, scraper: Scraper) -> None:
        self.scraper = scraper

    def collect(self) -> Iterable[Metric]:
        return exporter_families(self.scraper.errors())


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], scraper: Scraper, web: Watched, settings: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.scraper = scraper
        self.web = web
        self.timeout_cap = float(settings["exporter.timeout"])
        self.timeout_offset = float(settings["exporter.timeout_offset"])
        self.layers = served_layers(str(settings["exporter.layers"]))
        self.client_log = LogBudget()
        # The exporter's own metrics live in a registry of their own, added to /metrics' per-request one.
        self.own = CollectorRegistry(auto_describe=False)
        self.own.register(ExporterCollector(scraper))
        ProcessCollector(registry=self.own)
        PlatformCollector(registry=self.own)
        GCCollector(registry=self.own)
        super().__init__(address, Handler)

    @property
    def scheme(self) -> str:
        return "https" if self.web.context is not None else "http"

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's own thread: the web-config in force (re-read if it changed), the TLS handshake
        (on first read), then the requests. The accept loop only accepts."""
        active = self.web.refresh()
        if active.context is None:
            Handler(request, client_address, self, active)
            return
        wrapped = active.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            Handler(wrapped, client_address, self, active)
        finally:
            self.shutdown_request(wrapped)  # `request` is detached now: socketserver's own close is a no-op

    def shutdown_request(self, request: Any) -> None:
        """Close after a lingering read, as Apache does: a client still sending (an over-long request line) would
        otherwise get a TCP reset that can destroy the answer it has not read yet."""
        try:
            request.shutdown(socket.SHUT_WR)
            drain(request)
        except (OSError, ValueError):
            pass
        self.close_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line (TLS handshake failures, clients that hang up), never a traceback per connection."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return
        self.client_line(f"connection from {client_address[0]}: {type(exc).__name__}: {shown(exc, 200)}")

    def client_line(self, message: str) -> None:
        """A log line a client caused: within the budget, else counted and said in the next one."""
        held = self.client_log.take()
        if held is not None:
            log(message + (f" ({held} similar lines suppressed)" if held else ""))


class Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"sbops-exporter/{__version__}"
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection (and TLS session)
    default_request_version = "HTTP/1.1"  # no HTTP/0.9: the answer to a malformed line has a status line too
    # headers and body are two writes: with Nagle's algorithm the body waited for the client's delayed ACK,
    # 40 ms per answer on a kept-alive connection
    disable_nagle_algorithm = True
    timeout = CONNECTION_TIMEOUT

    def __init__(self, request: Any, client_address: Any, server: ExporterServer, active: Active) -> None:
        self.active = active  # one web-config for the whole connection, even if the file changes meanwhile
        super().__init__(request, client_address, server)

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nothing a client needs

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(send_body=False)

    def _refuse(self, code: int, message: str, send_body: bool, headers: dict[str, str] | None = None) -> None:
        self._reply(code, (message + "\n").encode(), "text/plain; charset=utf-8", send_body, headers)

    def _reply(self, code: int, body: bytes, content_type: str, send_body: bool,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self.active.config.headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        web = self.active
        tls = web.config.tls
        if tls is not None and tls.client_allowed_sans:
            peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            if not san_allowed(peer, tls.client_allowed_sans):
                return self._refuse(403, "client certificate not allowed (client_allowed_sans)", send_body)
        if not web.auth.allows(self.headers.get("Authorization")):
            return self._refuse(401, "Unauthorized", send_body, {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        try:
            url = urlsplit(self.path)
        except ValueError:  # "//[x": urlsplit takes it for an IPv6 authority and refuses it
            return self._refuse(400, "malformed path", send_body)
        if url.path == "/metrics":
            return self._metrics(list(self.server.layers), own=True, send_body=send_body)
        if url.path == "/probe":
            modules = parse_qs(url.query).get("module", [])
            if len(modules) != 1 or modules[0] not in self.server.layers:
                given = f"unknown module {modules[0]!r}" if modules else "missing ?module="
                if modules and modules[0] in LAYERS:
                    given = f"module {modules[0]!r} is not served here (exporter.layers)"
                return self._refuse(400, f"{given}: one of {', '.join(self.server.layers)}", send_body)
            return self._metrics([modules[0]], own=False, send_body=send_body)
        if url.path == "/results":
            return self._results(parse_qs(url.query), send_body)
        if url.path == "/-/healthy":
            return self._refuse(200, "OK", send_body)
        if url.path == "/":
            return self._reply(200, index_page(self.server.layers).encode(), "text/html; charset=utf-8", send_body)
        return self._refuse(404, "not found: see / for the endpoints", send_body)

    def _results(self, query: dict[str, list[str]], send_body: bool) -> None:
        """The doctor's JSON (`sbops doctor --output json`) for ?layer= (repeatable, default every layer served)
        and ?check= (id globs, repeatable), with the node's name: what `sbops doctor --cluster` asks each agent."""
        import json
        from datetime import datetime, timezone

        from sbops.report.jsonout import doctor_document

        server = self.server
        layers = query.get("layer") or list(server.layers)
        foreign = [layer for layer in layers if layer not in server.layers]
        if foreign:
            return self._refuse(400, f"layer {foreign[0]!r} is not served here (exporter.layers): one of "
                                     f"{', '.join(server.layers)}", send_body)
        try:
            checks = server.scraper.registry.select(layers, query.get("check") or None)
        except UsageError as exc:
            return self._refuse(400, str(exc).replace("--check", "check=").replace("--layer", "layer="), send_body)
        deadline = scrape_deadline(self.headers.get(TIMEOUT_HEADER), server.timeout_offset, server.timeout_cap)
        started_at = datetime.now(timezone.utc)
        began = time.monotonic()
        try:
            outcomes = server.scraper.outcomes(checks, deadline)
        except Exception as exc:  # noqa: BLE001 - sbops itself is broken: 500, counted, and keep serving
            server.scraper.count_error("scrape")
            log(f"/results failed: {type(exc).__name__}: {exc}")
            return self._refuse(500, f"sbops exporter failed to run the checks: {type(exc).__name__}", send_body)
        document = doctor_document(outcomes, started_at, time.monotonic() - began,
                                   str(server.scraper.settings["runbook_url"]), node=node_name())
        release_memory()
        self._reply(200, (json.dumps(document) + "\n").encode(), "application/json", send_body)

    def _metrics(self, layers: list[str], own: bool, send_body: bool) -> None:
        server = self.server
        deadline = scrape_deadline(self.headers.get(TIMEOUT_HEADER), server.timeout_offset, server.timeout_cap)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ChecksCollector(server.scraper, layers, deadline))
        if own:
            registry.register(server.own)
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(registry)
        except Exception as exc:  # noqa: BLE001 - sbops itself is broken: 500, counted, and keep serving
            server.scraper.count_error("scrape")
            log(f"scrape of {','.join(layers) if len(layers) == 1 else 'all layers'} failed: {type(exc).__name__}: {exc}")
            return self._refuse(500, f"sbops exporter failed to collect: {type(exc).__name__}", send_body)
        release_memory()
        headers = {}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        self._reply(200, body, content_type, send_body, headers)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Only refusals and errors (a line per scrape would flood the journal), escaped and rate-limited.
        Also called for requests too long or malformed to have a command or a path."""
        if not (isinstance(code, int) and code >= 400 or str(code).isdigit() and int(str(code)) >= 400):
            return
        path, command, raw = getattr(self, "path", None), getattr(self, "command", None), getattr(self, "raw_requestline", b"")
        if command and path is not None:
            what = f"{shown(command, 16)} {shown(path.split('?', 1)[0], 200)}"
        elif len(raw) > 65536:
            what = f"request line over 64 KiB: {shown(raw[:40].decode('latin-1'), 40)}"
        else:
            what = f"malformed request line {shown(getattr(self, 'requestline', ''), 120)!s}"
        self.server.client_line(f"{self.client_address[0]} {what} -> {int(code)}")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        if format.startswith("code %d"):
            return  # send_error's own line: log_request writes the one line for it
        self.log_message(format, *args)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        self.server.client_line(f"{self.client_address[0]}: {shown(format % args, 200)}")


LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20


def drain(sock: Any) -> None:
    """Read and discard what the client still sends, until it closes, for at most LINGER_SECONDS or
    LINGER_BYTES (a client that hung up already costs one read)."""
    end = time.monotonic() + LINGER_SECONDS
    left = LINGER_BYTES
    while left > 0:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        sock.settimeout(remaining)
        chunk = sock.recv(min(65536, left))
        if not chunk:
            return
        left -= len(chunk)


def served_layers(setting: str) -> tuple[str, ...]:
    """exporter.layers ('' or 'host, nfs'; its form checked when the settings load) as layers in LAYERS'
    order; a name that is not a layer is a usage error."""
    wanted = {part.strip() for part in setting.split(",") if part.strip()}
    unknown = sorted(wanted - set(LAYERS))
    if unknown:
        raise UsageError(f"--layers (exporter.layers): {', '.join(unknown)} is not a layer: one of {', '.join(LAYERS)}")
    return tuple(layer for layer in LAYERS if not wanted or layer in wanted)


def node_name(env: Any = None) -> str:
    """The node this agent runs on: NODE_NAME (the chart passes spec.nodeName through the downward API), else
    the host name (host network: the node's own)."""
    import os

    env = os.environ if env is None else env
    return str(env.get("NODE_NAME") or "").strip() or socket.gethostname()


def index_page(layers: tuple[str, ...] = LAYERS) -> str:
    probes = "".join(f'<li><a href="/probe?module={layer}">/probe?module={layer}</a></li>' for layer in layers)
    return (f"<!doctype html><html><head><title>sbops exporter</title></head><body>"
            f"<h1>sbops exporter {html.escape(__version__)}</h1>"
            f"<p>The checks of <code>sbops doctor</code> as Prometheus metrics.</p><ul>"
            f'<li><a href="/metrics">/metrics</a>: every layer served, and the exporter\'s own metrics</li>'
            f"<li>one layer per scrape job:<ul>{probes}</ul></li>"
            f'<li><a href="/results">/results</a>?layer=LAYER&amp;check=ID: the checks as '
            f'<code>sbops doctor --output json</code> prints them, with the node\'s name</li>'
            f'<li><a href="/-/healthy">/-/healthy</a>: 200 while the exporter runs (no check is run)</li>'
            f"</ul></body></html>\n")


# glibc keeps one malloc arena per thread that allocates (up to 8 per core), and a scrape allocates in
# dozens of short-lived threads: freed memory then stays scattered over arenas and resident memory creeps
# up. Two arenas and a trim after each scrape keep the exporter's footprint flat (bench/exporter.py).
M_ARENA_MAX = -8


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None  # not glibc: nothing to tune


LIBC = _libc()


def limit_malloc_arenas() -> None:
    if LIBC is not None:
        LIBC.mallopt(M_ARENA_MAX, 2)


def release_memory() -> None:
    if LIBC is not None:
        LIBC.malloc_trim(0)


def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} sbops exporter: {message}\n")
    sys.stderr.flush()


def bind(address: tuple[str, int], scraper: Scraper, web: Watched, settings: Any) -> ExporterServer:
    try:
        return ExporterServer(address, scraper, web, settings)
    except OSError as exc:
        raise UsageError(f"--listen {address[0]}:{address[1]}: cannot listen: {exc.strerror or exc}") from None


def serve(server: ExporterServer) -> None:
    """Serve until SIGTERM or SIGINT, then close the listening socket (exit status 0)."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    limit_malloc_arenas()
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = ", basic auth" if server.web.auth.enabled else ""
    log(f"listening on {server.scheme}://{shown}:{port}{auth} (/metrics, /probe?module=LAYER, /results, /-/healthy)")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        server.server_close()
