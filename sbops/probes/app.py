"""The application as a user sees it: the API behind the portal (the white-page test) and the portal itself.

HTTP with the standard library (http.client + ssl): the request goes to the server's HTTPS nodePort (or
setting app.url) with the Host header AND the TLS server name set to the domain, as a browser would send
them, so the ingress gateway picks the StackBill server even when sbops connects to an IP address.
Certificate verification is off unless app.verify_tls is set. Redirects are never followed.

When the API fails, the probe names the likely cause from the related checks' results: for a wrong HTTP
answer ARCHITECTURE.md's white-page causes (database, configuration, Kong routing), for no answer the
ingress gateway, for a TLS failure the certificate and Gateway. They run through the engine after the
request, in parallel with each other, within what is left of the check's time, sharing the run's logins
(ctx.shared); checks sbops cannot run here (no password, no kubeconfig) are left out and named.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sbops.model import Reason, Result, Status, fail, ok
from sbops.probes.net import tls_context

if TYPE_CHECKING:
    from sbops.context import Context

CLOUDCONFIG_PATH = "/apidocs/api/cloudconfiguration/general"
MAX_BODY = 256 * 1024

# Related checks by what went wrong, most likely cause first, with the cause each stands for.
# The API answered, but wrongly: ARCHITECTURE.md's white-page causes (database, configuration, Kong routing).
CAUSES: tuple[tuple[str, str], ...] = (
    ("mysql.auth", "database"),
    ("mysql.schema", "configuration"),
    ("mongodb.auth", "database"),
    ("rabbitmq.auth", "database"),
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
# Areas whose checks need the credentials file's password, and those that need a kubeconfig: without them
# those checks fail for want of sbops's own access, which says nothing about the portal.
DATA_AREAS = ("mysql", "mongodb", "rabbitmq")
KUBE_AREAS = ("pods", "istio", "tls", "k8s", "ecr", "helm")


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
                                                            context=tls_context(verify))
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
        return fail(reason, f"the portal API at {answer.url} did not answer: {hint}", error=one_line(answer.error),
                    **details)
    details.update(http_status=answer.status, content_type=answer.content_type,
                   body_start=answer.body[:200].decode("utf-8", "replace"))
    if answer.status == 200:
        if is_json(answer):
            return ok("the portal API answers with its cloud configuration (HTTP 200, JSON)", **details)
        return fail(Reason.MISCONFIGURED, f"the portal API at {answer.url} answers HTTP 200 but not JSON "
                    f"({answer.content_type or 'no content type'}): the white page; Kong routing sends it "
                    "elsewhere", **details)
    reason, hint = status_reason(int(answer.status or 0))
    return fail(reason, f"the portal API at {answer.url} answers HTTP {answer.status}: {hint}", **details)


def judge_portal(answer: Answer) -> Result:
    """/ answering 2xx or 3xx is healthy (a redirect to the login page is normal)."""
    details: dict[str, Any] = {"url": answer.url}
    if answer.error is not None:
        from sbops.probes.net import one_line

        reason, hint = error_reason(answer.error)
        return fail(reason, f"the portal at {answer.url} did not answer: {hint}", error=one_line(answer.error),
                    **details)
    details.update(http_status=answer.status, content_type=answer.content_type)
    if answer.location:
        details["location"] = answer.location
    if 200 <= int(answer.status or 0) < 400:
        return ok(f"the portal answers HTTP {answer.status}", **details)
    reason, hint = status_reason(int(answer.status or 0))
    return fail(reason, f"the portal at {answer.url} answers HTTP {answer.status}: {hint}", **details)


def cause_group(answer: Answer) -> tuple[tuple[str, str], ...]:
    """Which related checks can explain this failure: network, TLS, or a wrong HTTP answer."""
    if answer.error is None:
        if answer.status == 404 or (answer.status == 200 and not is_json(answer)):
            return ROUTING_CAUSES
        return CAUSES
    if isinstance(answer.error, (ssl.SSLError, ConnectionResetError)):
        return TLS_CAUSES
    return NETWORK_CAUSES


def can_look(check_id: str, has_password: Any, has_kubeconfig: bool) -> bool:
    """Whether sbops has what the related check needs (has_password(area) for the data services)."""
    area = check_id.split(".", 1)[0]
    if area in DATA_AREAS:
        return bool(has_password(area))
    if area in KUBE_AREAS:
        return has_kubeconfig
    return True


def likely_cause(results: list[tuple[str, str, Result, str | None]]) -> dict[str, Any] | None:
    """The first failed related check, in the group's order: {check, cause, reason, summary, fix}; None if none.

    `results`: (check id, cause, result, its fix name) for each related check that ran.
    """
    for check_id, cause, result, fix in results:
        if result.status in (Status.FAIL, Status.ERROR):
            return {"check": check_id, "cause": cause, "reason": result.reason.value, "summary": result.summary,
                    "fix": fix}
    return None


def with_cause(result: Result, related: list[tuple[str, str, Result, str | None]], note: str = "") -> Result:
    """Name the likely cause in the summary and details; the cause's fix becomes the result's fix."""
    if result.status.passed:
        return result
    details = dict(result.details)
    details["related_checks"] = {cid: f"{r.status.value}/{r.reason.value}" for cid, _, r, _ in related}
    details["failed_related"] = [cid for cid, _, r, _ in related if r.status in (Status.FAIL, Status.ERROR)]
    if note:
        details["related_note"] = note
    cause = likely_cause(related)
    if cause is None:
        summary = result.summary + "; no related check failed: read sb-core's logs (kubectl logs -n sb-apps " \
                                   "<sb-core-pod> -c sb-core)"
        return Result(result.status, result.reason, summary, details)
    details["likely_cause"] = cause
    summary = f"{result.summary}; likely cause: {cause['cause']} ({cause['check']}: {cause['reason']})"
    return Result(result.status, result.reason, summary, details, fix=cause["fix"])


# ======================================================================================================
# Related checks, run in the background while the request is under way
# ======================================================================================================
class RelatedRun:
    """Runs each registered related check through the engine in its own daemon thread.

    Waiting stops as soon as the likely cause is known (every check before the first failed one, in
    CAUSES order, has finished), so a slow unrelated check (a blackholed MongoDB) does not hold it up.
    """

    def __init__(self, ctx: "Context", group: tuple[tuple[str, str], ...], budget: float) -> None:
        from sbops.registry import REGISTRY

        self.ctx = ctx

        def has_password(area: str) -> bool:
            return bool(ctx.service(area).password)

        known = [cid for cid, _ in group if cid in REGISTRY.checks]
        self.unable = [cid for cid in known if not can_look(cid, has_password, ctx.kubeconfig_path is not None)]
        self.checks = [REGISTRY.checks[cid] for cid in known if cid not in self.unable]
        self.causes = dict(group)
        self.budget = max(0.2, budget)
        self.done: dict[str, Result] = {}
        self._changed = threading.Condition()

    def start(self) -> "RelatedRun":
        for item in self.checks:
            threading.Thread(target=self._run, args=(item,), name=f"app-related-{item.id}", daemon=True).start()
        return self

    def _run(self, item: Any) -> None:
        from sbops.engine import run_checks

        outcome = run_checks(self.ctx, [item], timeout=self.budget, deadline=self.budget)[0]
        with self._changed:
            self.done[item.id] = outcome.result
            self._changed.notify_all()

    def _decided(self) -> bool:
        for item in self.checks:
            result = self.done.get(item.id)
            if result is None:
                return False
            if not result.status.passed:
                return True
        return True

    def results(self, wait: float) -> tuple[list[tuple[str, str, Result, str | None]], str]:
        """The related checks that finished (in CAUSES order) once the cause is decided or `wait` passed."""
        if not self.checks:
            return [], "no related check can run here" + (f" (no access for {', '.join(self.unable)})"
                                                            if self.unable else "")
        end = time.monotonic() + max(0.0, wait)
        with self._changed:
            while not self._decided() and time.monotonic() < end:
                self._changed.wait(max(0.0, end - time.monotonic()))
            done = dict(self.done)
            decided = self._decided()
        pending = [c.id for c in self.checks if c.id not in done]
        found = [(c.id, self.causes[c.id], done[c.id], done[c.id].fix or c.fix) for c in self.checks if c.id in done]
        notes = []
        if pending:
            why = "still running when the likely cause was known" if decided else "not finished in time"
            notes.append(f"{why}: {', '.join(pending)}")
        if self.unable:
            notes.append(f"not run (sbops lacks the password or kubeconfig they need): {', '.join(self.unable)}")
        return found, "; ".join(notes)


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
    began = time.monotonic()
    budget = ctx.timeout - 0.3  # the engine's budget for this check, less a margin to report
    base, domain, verify = _target(ctx)
    answer = http_get(base + path, domain=domain, verify=verify, timeout=ctx.net_timeout)
    result = judge(answer)
    if result.status.passed:
        return result
    left = budget - (time.monotonic() - began)
    related = RelatedRun(ctx, cause_group(answer), left - 0.1).start()
    found, note = related.results(left)
    return with_cause(result, found, note)


def probe_cloudconfiguration(ctx: "Context") -> Result:
    return _run(ctx, CLOUDCONFIG_PATH, judge_cloudconfiguration)


def probe_portal(ctx: "Context") -> Result:
    return _run(ctx, "/", judge_portal)
