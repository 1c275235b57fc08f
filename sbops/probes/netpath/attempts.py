"""The connection attempts the child makes from inside the pod's network namespace, and how each ends.

Every attempt returns plain JSON (it crosses a pipe): the address, an `outcome`, the error's first line and
the milliseconds it took, plus what the server said about itself. Outcomes are Reason values (`none` for a
connection that did what a pod's client does, `refused`, `timeout`, `unreachable`, `auth_failed`,
`host_blocked`, `access_denied`, `too_many_connections`, `misconfigured` for something that accepts TCP
but does not speak the protocol) and `host_not_allowed` (MySQL's 1130, which a judgement tells apart from a
wrong password although both are the reason auth_failed). The classification reuses each layer's own:
by error code and exception type, never by message text.

MySQL is asked with a full login, never a greeting read alone: a connection that hangs up after the
greeting counts as a connection error against the pod's host (max_connect_errors), so a probe that did
that every scrape would itself get the pods blocked (error 1129). A completed or rejected login does not.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from sbops.model import Reason
from sbops.probes.net import one_line, socket_reason, tcp_probe
from sbops.secret import Secret

HOST_NOT_ALLOWED = "host_not_allowed"
OUTCOMES = frozenset({r.value for r in Reason} | {HOST_NOT_ALLOWED})


def network_outcome(exc: BaseException) -> str:
    """refused / timeout / unreachable for a socket-level failure (a missing unix socket is unreachable here)."""
    reason = socket_reason(exc)
    return Reason.UNREACHABLE.value if reason is Reason.NOT_RUNNING else reason.value


def mysql_outcome(exc: BaseException) -> tuple[str, int | None]:
    """A failed MySQL login's outcome and server error code: 1130 host_not_allowed, else mysql.session.classify."""
    from sbops.probes.mysql.session import ER_HOST_NOT_PRIVILEGED, classify, error_code

    code = error_code(exc)
    if code == ER_HOST_NOT_PRIVILEGED:
        return HOST_NOT_ALLOWED, code
    reason = classify(exc)
    return (Reason.UNREACHABLE.value if reason is Reason.NOT_RUNNING else reason.value), code


def remaining(deadline: float, cap: float) -> float:
    """The timeout for the next step: the attempt's own, but never past the child's deadline."""
    return max(0.05, min(cap, deadline - time.monotonic()))


def _result(host: str, port: int, started: float, outcome: str, error: str = "", **extra: Any) -> dict[str, Any]:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"address": address, "outcome": outcome, "error": error[:300],
            "ms": round((time.monotonic() - started) * 1000), **extra}


# ======================================================================================================
# One attempt per protocol (I/O; run inside the pod's network namespace)
# ======================================================================================================
def tcp(host: str, port: int, timeout: float, deadline: float, **_: Any) -> dict[str, Any]:
    """TCP connect and close (NFS: nfsd accepts on 2049)."""
    started = time.monotonic()
    reason, error = tcp_probe(host, port, remaining(deadline, timeout))
    return _result(host, port, started, reason.value if reason is not Reason.NOT_RUNNING else "unreachable", error)


def mysql(host: str, port: int, timeout: float, deadline: float, user: str = "stackbill",
          password: str = "", **_: Any) -> dict[str, Any]:
    """A full login as the pods log in (PyMySQL: TCP, greeting, authentication), then a clean quit."""
    from sbops.probes.mysql.session import connect, describe_error, strip_version

    started = time.monotonic()
    try:
        conn = connect(user=user, password=Secret(password), timeout=remaining(deadline, timeout), host=host,
                       port=port)
    except Exception as exc:  # noqa: BLE001 - classified
        outcome, code = mysql_outcome(exc)
        return _result(host, port, started, outcome, describe_error(exc), code=code,
                       version=str(getattr(exc, "server_version", "") or ""))
    version = strip_version(str(conn.get_server_info() or ""))
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the login is what we wanted to know
        pass
    return _result(host, port, started, Reason.NONE.value, version=version)


def mongodb(host: str, port: int, timeout: float, deadline: float, user: str = "", password: str = "",
            **_: Any) -> dict[str, Any]:
    """TCP, then `hello`; with the credentials' user, a SCRAM login (connectionStatus) instead."""
    started = time.monotonic()
    reason, error = tcp_probe(host, port, remaining(deadline, timeout))
    if reason is not Reason.NONE:
        return _result(host, port, started, reason.value if reason is not Reason.NOT_RUNNING else "unreachable",
                       error)
    from pymongo.errors import PyMongoError

    from sbops.probes.mongodb.session import AUTH_FAILED, make_client, try_login

    try:
        if user and password:
            login = try_login(host, port, remaining(deadline, timeout), user, Secret(password))
            login.close()
            if login.ok:
                return _result(host, port, started, Reason.NONE.value, login=True)
            outcome = Reason.AUTH_FAILED.value if login.code == AUTH_FAILED else Reason.ACCESS_DENIED.value
            return _result(host, port, started, outcome, login.error, code=login.code)
        client = make_client(host, port, remaining(deadline, timeout))
        try:
            answer = client.admin.command("hello")
        finally:
            client.close()
        return _result(host, port, started, Reason.NONE.value, login=False,
                       primary=bool(answer.get("isWritablePrimary", answer.get("ismaster"))))
    except PyMongoError as exc:
        return _result(host, port, started, Reason.MISCONFIGURED.value, one_line(exc))


def rabbitmq(host: str, port: int, timeout: float, deadline: float, user: str = "", password: str = "",
             **_: Any) -> dict[str, Any]:
    """The AMQP 0-9-1 protocol header -> Connection.Start; with the credentials' user, a PLAIN login (pika)."""
    from sbops.probes.rabbitmq.session import amqp_handshake, amqp_login

    started = time.monotonic()
    try:
        handshake = amqp_handshake(host, port, remaining(deadline, timeout))
    except OSError as exc:
        return _result(host, port, started, network_outcome(exc), one_line(exc))
    if handshake.kind != "start":
        what = {"silent": "no answer to the protocol header", "closed": "closed the connection",
                "header": f"another AMQP version ({handshake.other_header})"}.get(handshake.kind, "not AMQP")
        return _result(host, port, started, Reason.MISCONFIGURED.value, what)
    product = f"{handshake.product} {handshake.version}".strip()
    if not (user and password):
        return _result(host, port, started, Reason.NONE.value, product=product, login=False)
    login = amqp_login(host, port, user, Secret(password), remaining(deadline, timeout))
    return _result(host, port, started, login.reason.value if login.reason is not Reason.NOT_RUNNING else
                   "unreachable", login.error, product=product, login=login.ok)


def http(host: str, port: int, timeout: float, deadline: float, **_: Any) -> dict[str, Any]:
    """GET / over plain HTTP to a ClusterIP: any HTTP status means the Service answered."""
    from sbops.probes.app import http_get

    import http.client

    started = time.monotonic()
    shown = f"[{host}]" if ":" in host else host
    answer = http_get(f"http://{shown}:{port}/", domain="", verify=False, timeout=remaining(deadline, timeout))
    if isinstance(answer.error, http.client.RemoteDisconnected) and deadline - time.monotonic() > 0.5:
        # Closed before a status line: a server restarting or shedding load does that once; one that does
        # not speak HTTP does it again. One more try tells them apart (urllib3 retries this case too).
        answer = http_get(f"http://{shown}:{port}/", domain="", verify=False, timeout=remaining(deadline, timeout))
    if answer.error is not None:
        spoke = isinstance(answer.error, http.client.HTTPException)  # it answered, but not HTTP
        return _result(host, port, started, Reason.MISCONFIGURED.value if spoke else network_outcome(answer.error),
                       one_line(answer.error))
    return _result(host, port, started, Reason.NONE.value, http_status=answer.status)


KINDS: dict[str, Callable[..., dict[str, Any]]] = {"tcp": tcp, "mysql": mysql, "mongodb": mongodb,
                                                  "rabbitmq": rabbitmq, "http": http}
