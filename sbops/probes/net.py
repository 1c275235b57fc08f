"""Network failures as reasons, shared by every layer: refused / timeout / unreachable / not_running.

Decided by exception type and errno along the whole exception chain (client libraries wrap the socket
error: PyMySQL's original_exception, urllib3's MaxRetryError.reason, pika's connector exception), never
by message text.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from sbops.model import Reason

# Timeouts of requests/urllib3/pika, matched by class name so this module imports none of them.
TIMEOUT_NAMES = frozenset({"ConnectTimeout", "ReadTimeout", "Timeout", "ConnectTimeoutError", "ReadTimeoutError",
                           "AMQPConnectorStackTimeout", "NetworkTimeout"})


def chain(exc: BaseException | None) -> list[BaseException]:
    """The exception, its causes and contexts, and the errors client libraries keep inside it."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or any(item is s for s in seen) or len(seen) > 20:
            continue
        seen.append(item)
        stack.append(item.__cause__)
        stack.append(item.__context__)
        for attr in ("reason", "exception", "original_exception"):
            held = getattr(item, attr, None)
            stack.append(held if isinstance(held, BaseException) else None)
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return seen


def socket_reason(exc: BaseException) -> Reason:
    """refused / timeout / not_running (a unix socket that is not there) / unreachable (no name, no route)."""
    items = chain(exc)
    codes = {getattr(e, "errno", None) for e in items}
    if any(isinstance(e, ConnectionRefusedError) for e in items) or errno.ECONNREFUSED in codes:
        return Reason.REFUSED
    if any(isinstance(e, (socket.timeout, TimeoutError)) for e in items) or errno.ETIMEDOUT in codes:
        return Reason.TIMEOUT
    if {type(e).__name__ for e in items} & TIMEOUT_NAMES:
        return Reason.TIMEOUT
    if any(isinstance(e, FileNotFoundError) for e in items):
        return Reason.NOT_RUNNING
    return Reason.UNREACHABLE


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` (at most 200 characters), for evidence."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def tcp_probe(host: str, port: int, timeout: float) -> tuple[Reason, str]:
    """Open and close a TCP connection: (Reason.NONE, "") or the reason and the error text."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Reason.NONE, ""
    except OSError as exc:
        return socket_reason(exc), str(exc) or type(exc).__name__


def tls_context(verify: bool) -> Any:
    """A client TLS context; verify=False for probes that identify or time a listener rather than trust it
    (the portal's self-signed certificate by default, a K3s API on a port, our own exporter's liveness)."""
    import ssl

    if verify:
        return ssl.create_default_context()
    # Without verification there is no use for the system's CA store, whose loading costs 5-30 ms of CPU
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for_port(host: str, port: int, seconds: float, step: float = 0.2) -> bool:
    """Whether something accepts connections on host:port within `seconds` (after a service start)."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if tcp_probe(host, port, min(1.0, step * 5))[0] is Reason.NONE:
            return True
        time.sleep(step)
    return False
