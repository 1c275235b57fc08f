"""The application as a user sees it: the API behind the portal (the white-page test) and the portal itself.

HTTP with the standard library (http.client + ssl): the request goes to the server's HTTPS nodePort (or
setting app.url) with the Host header AND the TLS server name set to the domain, as a browser would send
them, so the ingress gateway picks the StackBill server even when sbops connects to an IP address.
Certificate verification is off unless app.verify_tls is set. Redirects are never followed.

When the API fails, the judgement lists the checks that could explain it, most likely first (`Result.causes`):
for a wrong HTTP answer ARCHITECTURE.md's white-page causes (database, configuration, Kong routing), for no
answer the ingress gateway, for a TLS failure the certificate and Gateway. The probe never runs them: the app
checks declare them (`RELATED`), the engine runs them in the same run, and its post-pass (sbops.correlate)
names the likely cause from their outcomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sbops.messages import app as msg
from sbops.model import Reason, Result
from sbops.probes import net

if TYPE_CHECKING:
    from sbops.context import Context

CLOUDCONFIG_PATH = "/apidocs/api/cloudconfiguration/general"
MAX_BODY = 256 * 1024

# Related checks by what went wrong, most likely cause first, with the cause each stands for.
# The API answered, but wrongly: ARCHITECTURE.md's white-page causes (database, configuration, Kong routing).
# The netpath checks follow their host-side counterparts: MySQL can accept sbops's login on 127.0.0.1 while
# it refuses the pods (bind-address), blocks them (1129) or a firewall drops their traffic.
CAUSES: tuple[tuple[str, str], ...] = (
    ("mysql.auth", "database"),
    ("mysql.schema", "configuration"),
    ("mongodb.auth", "database"),
    ("rabbitmq.auth", "database"),
    ("netpath.mysql", "database, as the pods reach it"),
    ("netpath.mongodb", "database, as the pods reach it"),
    ("netpath.rabbitmq", "database, as the pods reach it"),
    ("pods.ready", "workloads"),
    ("istio.virtualservice", "Kong routing"),
    ("istio.gateway", "Istio routing"),
)
# 404, or 200 that is not JSON: the request went to the wrong place; routing first.
ROUTING_CAUSES: tuple[tuple[str, str], ...] = (
    ("istio.virtualservice", "Kong routing"),
    ("istio.gateway", "Istio routing"),
    ("pods.ready", "workloads"),
    ("mysql.schema", "configuration"),
    ("mysql.auth", "database"),
    ("mongodb.auth", "database"),
    ("rabbitmq.auth", "database"),
    ("netpath.mysql", "database, as the pods reach it"),
    ("netpath.mongodb", "database, as the pods reach it"),
    ("netpath.rabbitmq", "database, as the pods reach it"),
)
# Nothing answered: the way in.
NETWORK_CAUSES: tuple[tuple[str, str], ...] = (
    ("istio.ingress", "ingress gateway"),
    ("istio.istiod", "Istio"),
)
# The TLS handshake or the certificate failed.
TLS_CAUSES: tuple[tuple[str, str], ...] = (
    ("tls.secret", "certificate"),
    ("tls.certificate", "certificate"),
    ("istio.gateway", "Istio routing"),
)
# Every check the app checks may name as a likely cause: the engine runs these beside them.
RELATED: tuple[str, ...] = tuple(dict.fromkeys(cid for group in (CAUSES, ROUTING_CAUSES, NETWORK_CAUSES, TLS_CAUSES)
                                               for cid, _ in group))


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange: a status and body, or the exception that prevented it."""

    url: str
    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    location: str = ""
    error: BaseException | None = field(default=None, compare=False)


# ======================================================================================================
# Where and how to ask
# ======================================================================================================
def base_url(app_url: str, server_ip: str, https_port: int) -> str:
    """Setting app.url, else https://<server_ip>:<the live HTTPS nodePort> (IPv6 literals bracketed)."""
    if app_url:
        return app_url.rstrip("/")
    host = f"[{server_ip}]" if ":" in server_ip else server_ip
    return f"https://{host}:{https_port}"


def http_get(url: str, *, domain: str, verify: bool, timeout: float) -> Answer:
    """GET `url` with Host (and TLS SNI) = domain; never follows redirects; never raises."""
    import http.client
    import socket

    parts = urlsplit(url)
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sni = domain or host

    class SNIConnection(http.client.HTTPSConnection):
        def connect(self) -> None:  # the TLS server name is the domain, not the address we dial
            self.sock = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = self._context.wrap_socket(self.sock, server_hostname=sni)  # type: ignore[attr-defined]

    try:
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = SNIConnection(host, parts.port or 443, timeout=timeout,
                                                            context=net.tls_context(verify))
        else:
            conn = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": domain or parts.netloc, "Accept": "application/json, */*",
                                               "User-Agent": "sbops"})
            resp = conn.getresponse()
            body = resp.read(MAX_BODY)
            return Answer(url, resp.status, resp.getheader("Content-Type", "") or "", body,
                          resp.getheader("Location", "") or "")
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - classified by judge_*
        return Answer(url, error=exc)


# ======================================================================================================
# Judgements (pure)
# ======================================================================================================
def is_json(answer: Answer) -> bool:
    try:
        json.loads(answer.body.decode("utf-8"))
        return True
    except (UnicodeDecodeError, ValueError):
        return False


def error_reason(exc: BaseException) -> tuple[Reason, str]:
    """(reason, hint) for a request that got no HTTP answer."""
    import ssl

    from sbops.probes.net import socket_reason

    if isinstance(exc, ssl.SSLCertVerificationError):
        return Reason.MISCONFIGURED, "its certificate is not trusted for the domain (see tls.certificate)"
    if isinstance(exc, ssl.SSLError) or isinstance(exc, ConnectionResetError):
        return Reason.MISCONFIGURED, ("the TLS handshake failed: the gateway has no HTTPS server for the domain "
                                      "(see istio.gateway, tls.secret)")
    reason = socket_reason(exc)
    hints = {
        Reason.REFUSED: "nothing listens there (see istio.ingress)",
        Reason.TIMEOUT: "no answer in time (firewall, or the gateway is overloaded)",
        Reason.UNREACHABLE: "the address is unreachable",
    }
    return reason, hints.get(reason, "")


def status_reason(status: int) -> tuple[Reason, str]:
    """(reason, what it suggests) for an HTTP status that is not the expected one."""
    if status == 404:
        return Reason.MISCONFIGURED, "not found: Kong routing or the VirtualService does not route this path"
    if status in (502, 503, 504):
        return Reason.DEGRADED, "the gateway has no healthy backend (pods not ready, or the API cannot start)"
    if status >= 500:
        return Reason.DEGRADED, "the API fails (database connection or missing initial configuration)"
    if 300 <= status < 400:
        return Reason.MISCONFIGURED, "redirected instead of answering"
    return Reason.MISCONFIGURED, "refused by the application or the gateway"


def judge_cloudconfiguration(answer: Answer) -> Result:
    """200 with a JSON body is healthy; anything else fails with the reason of what happened."""
    details: dict[str, Any] = {"url": answer.url}
    if answer.error is not None:
        from sbops.probes.net import one_line

        reason, hint = error_reason(answer.error)
        return msg.API_NO_ANSWER.result(reason=reason, url=answer.url, hint=hint,
                                        details={**details, "error": one_line(answer.error)})
    details.update(http_status=answer.status, content_type=answer.content_type,
                   body_start=answer.body[:200].decode("utf-8", "replace"))
    if answer.status == 200:
        if is_json(answer):
            return msg.API_ANSWERS.result(details=details)
        return msg.API_NOT_JSON.result(url=answer.url, content_type=answer.content_type or "no content type",
                                       details=details)
    reason, hint = status_reason(int(answer.status or 0))
    return msg.API_HTTP_ERROR.result(reason=reason, url=answer.url, http_status=answer.status, hint=hint,
                                     details=details)


def judge_portal(answer: Answer) -> Result:
    """/ answering 2xx or 3xx is healthy (a redirect to the login page is normal)."""
    details: dict[str, Any] = {"url": answer.url}
    if answer.error is not None:
        from sbops.probes.net import one_line

        reason, hint = error_reason(answer.error)
        return msg.PORTAL_NO_ANSWER.result(reason=reason, url=answer.url, hint=hint,
                                           details={**details, "error": one_line(answer.error)})
    details.update(http_status=answer.status, content_type=answer.content_type)
    if answer.location:
        details["location"] = answer.location
    if 200 <= int(answer.status or 0) < 400:
        return msg.PORTAL_ANSWERS.result(http_status=answer.status, details=details)
    reason, hint = status_reason(int(answer.status or 0))
    return msg.PORTAL_HTTP_ERROR.result(reason=reason, url=answer.url, http_status=answer.status, hint=hint,
                                        details=details)


def cause_group(answer: Answer) -> tuple[tuple[str, str], ...]:
    """Which related checks can explain this failure: network, TLS, or a wrong HTTP answer."""
    import ssl

    if answer.error is None:
        if answer.status == 404 or (answer.status == 200 and not is_json(answer)):
            return ROUTING_CAUSES
        return CAUSES
    if isinstance(answer.error, (ssl.SSLError, ConnectionResetError)):
        return TLS_CAUSES
    return NETWORK_CAUSES


def judge_with_causes(answer: Answer, judge: Any) -> Result:
    """The judgement, plus the checks that could explain a failure (for the engine's post-pass)."""
    result = judge(answer)
    if result.status.passed:
        return result
    return replace(result, causes=cause_group(answer))


# ======================================================================================================
# The probes
# ======================================================================================================
def https_port(ctx: "Context") -> int:
    """The ingress gateway's live HTTPS nodePort (what the server runs wins: the current bash installer uses
    31443, ARCHITECTURE.md 31882), else setting nodeport_https when the Service cannot be read."""
    from sbops.probes import istio

    return istio.live_ports(ctx)[1]


def _target(ctx: "Context") -> tuple[str, str, bool]:
    from sbops.probes import kubecommon

    app_url = str(ctx.settings["app.url"])
    base = base_url(app_url, ctx.server_ip, 0 if app_url else https_port(ctx))
    return base, kubecommon.domain(ctx), bool(ctx.settings["app.verify_tls"])


def _run(ctx: "Context", path: str, judge: Any) -> Result:
    base, domain, verify = _target(ctx)
    answer = http_get(base + path, domain=domain, verify=verify, timeout=ctx.net_timeout)
    return judge_with_causes(answer, judge)


def probe_cloudconfiguration(ctx: "Context") -> Result:
    return _run(ctx, CLOUDCONFIG_PATH, judge_cloudconfiguration)


def probe_portal(ctx: "Context") -> Result:
    return _run(ctx, "/", judge_portal)
