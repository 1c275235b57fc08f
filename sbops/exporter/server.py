"""The exporter's HTTP server: /metrics, /probe?module=<layer>, /-/healthy and an index page.

Every request gets its own CollectorRegistry holding the checks' collector (bound to that request's layers and
deadline) and, on /metrics, the exporter's own collectors: there is no module-level metric updated per
scrape. TLS and basic auth come from the web-config file (webconfig.py). Connections are accepted in one
thread and served each in its own; a TLS handshake happens in the connection's thread, with a socket timeout,
so a silent client cannot hold up the others.
"""

from __future__ import annotations

import gzip
import html
import signal
import socket
import sys
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
from sbops.exporter.webconfig import REALM, Watched, san_allowed
from sbops.registry import LAYERS

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
CONNECTION_TIMEOUT = 30.0  # seconds a connection may sit idle (or mid-handshake) before it is dropped


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

    def __init__(self, address: tuple[str, int], scraper: Scraper, web: Watched, settings: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.scraper = scraper
        self.web = web
        self.timeout_cap = float(settings["exporter.timeout"])
        self.timeout_offset = float(settings["exporter.timeout_offset"])
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

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        self.web.refresh()
        context = self.web.context
        if context is not None:  # the handshake happens on first read, in the connection's own thread
            sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line (TLS handshake failures, clients that hang up), never a traceback per connection."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            return
        log(f"connection from {client_address[0]}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


class Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    server_version = f"sbops-exporter/{__version__}"
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection (and TLS session)
    timeout = CONNECTION_TIMEOUT

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
        for name, value in {**self.server.web.config.headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        web = self.server.web
        tls = web.config.tls
        if tls is not None and tls.client_allowed_sans:
            peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            if not san_allowed(peer, tls.client_allowed_sans):
                return self._refuse(403, "client certificate not allowed (client_allowed_sans)", send_body)
        if not web.auth.allows(self.headers.get("Authorization")):
            return self._refuse(401, "Unauthorized", send_body, {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        url = urlsplit(self.path)
        if url.path == "/metrics":
            return self._metrics(list(LAYERS), own=True, send_body=send_body)
        if url.path == "/probe":
            modules = parse_qs(url.query).get("module", [])
            if len(modules) != 1 or modules[0] not in LAYERS:
                given = f"unknown module {modules[0]!r}" if modules else "missing ?module="
                return self._refuse(400, f"{given}: one of {', '.join(LAYERS)}", send_body)
            return self._metrics([modules[0]], own=False, send_body=send_body)
        if url.path == "/-/healthy":
            return self._refuse(200, "OK", send_body)
        if url.path == "/":
            return self._reply(200, index_page().encode(), "text/html; charset=utf-8", send_body)
        return self._refuse(404, "not found: see / for the endpoints", send_body)

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
        """Only refusals and errors: a log line per scrape would flood the journal."""
        if isinstance(code, int) and code >= 400 or str(code).isdigit() and int(str(code)) >= 400:
            log(f"{self.client_address[0]} {self.command} {urlsplit(self.path).path} -> {code}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log(f"{self.client_address[0]}: " + (format % args))


def index_page() -> str:
    probes = "".join(f'<li><a href="/probe?module={layer}">/probe?module={layer}</a></li>' for layer in LAYERS)
    return (f"<!doctype html><html><head><title>sbops exporter</title></head><body>"
            f"<h1>sbops exporter {html.escape(__version__)}</h1>"
            f"<p>The checks of <code>sbops doctor</code> as Prometheus metrics.</p><ul>"
            f'<li><a href="/metrics">/metrics</a>: every layer, and the exporter\'s own metrics</li>'
            f"<li>one layer per scrape job:<ul>{probes}</ul></li>"
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
    log(f"listening on {server.scheme}://{shown}:{port}{auth} (/metrics, /probe?module=LAYER, /-/healthy)")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        server.server_close()
