"""Small helpers every Kubernetes layer shares: the domain, the REST client, and API errors as reasons.

The REST client (sbops.kuberest) is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.model import Reason, Result

if TYPE_CHECKING:
    from sbops.context import Context


def domain(ctx: "Context") -> str:
    """Setting `domain`, else the credentials file's PORTAL URL host; "" when unknown (callers say so)."""
    if ctx.settings["domain"]:
        return str(ctx.settings["domain"])
    creds = ctx.credentials
    return (getattr(creds, "domain", "") or "") if creds is not None else ""


def namespace(ctx: "Context") -> str:
    return str(ctx.settings["namespace"])


def api(ctx: "Context") -> Any:
    """The run's KubeApi (raw JSON over the kubeconfig's client): `api(ctx).get(kube.path(...))`."""
    from sbops import kube

    return kube.api(ctx)


def path(**parts: str) -> str:
    """`kube.path`: the REST path of a collection or object."""
    from sbops import kube

    return kube.path(**parts)


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a kubernetes ApiException (matched by attribute, not import), else None."""
    status = getattr(exc, "status", None)
    is_api = any(cls.__name__ == "ApiException" for cls in type(exc).__mro__)  # and its 401/403/404 subclasses
    if is_api and isinstance(status, int) and status > 0:
        return status
    return None


def is_not_found(exc: BaseException) -> bool:
    return api_status(exc) == 404


def api_reason(exc: BaseException) -> Reason:
    """401 auth_failed, 403 access_denied, 404 missing, other HTTP errors unreachable-ish; network errors
    (urllib3 wraps the socket error) -> refused / timeout / unreachable via net.socket_reason."""
    from sbops.kube import NoKubeconfig
    from sbops.probes.net import socket_reason

    if isinstance(exc, NoKubeconfig):
        return Reason.MISSING
    if type(exc).__name__ == "CredentialError":  # sbops.kuberest: the kubeconfig's credential never got sent
        return Reason.AUTH_FAILED
    status = api_status(exc)
    if status is not None:
        return {401: Reason.AUTH_FAILED, 403: Reason.ACCESS_DENIED, 404: Reason.MISSING}.get(status, Reason.UNREACHABLE)
    return socket_reason(exc)


def api_error(exc: BaseException) -> str:
    """One line for evidence: `HTTP 403 Forbidden: <message>` or the network error's first line."""
    import json

    from sbops.probes.net import one_line

    status = api_status(exc)
    if status is None:
        return one_line(exc)
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError, TypeError):
            message = ""
    reason = getattr(exc, "reason", "") or ""
    return f"HTTP {status} {reason}: {message}"[:300].rstrip(": ")


API_HINTS = {
    Reason.AUTH_FAILED: "the API server rejected the kubeconfig's credentials (see k8s.api)",
    Reason.ACCESS_DENIED: "the kubeconfig's user lacks RBAC permission (see the README's read-only role)",
    Reason.MISSING: "not found",
    Reason.REFUSED: "the API server refuses connections (see k8s.api)",
    Reason.TIMEOUT: "the API server did not answer in time (see k8s.api)",
}


def api_failure_summary(what: str, exc: BaseException) -> str:
    """Actionable one-liner for a failed API call, by reason."""
    return f"cannot {what}: {API_HINTS.get(api_reason(exc), api_error(exc))}"


def api_failure(what: str, exc: BaseException) -> Result:
    """The one guard of every Kubernetes layer's API calls: an HTTP or network error becomes the shared
    finding SB6001 (KubernetesApiCallFailed) with the call's reason; anything else (a missing kubeconfig,
    which the engine reports, or a bug in sbops) is raised again, never dressed up as a cluster problem.

        try:
            items = api(ctx).list(...)
        except Exception as exc:  # noqa: BLE001
            return api_failure("list nodes", exc)
    """
    from sbops.messages import k8s as msg

    if not is_api_error(exc):
        raise exc
    reason = api_reason(exc)
    return msg.API_CALL_FAILED.result(reason=reason, what=what, why=API_HINTS.get(reason, api_error(exc)),
                                      details={"error": api_error(exc)})


def is_api_error(exc: BaseException) -> bool:
    """An HTTP error from the API server or a network error reaching it (not a bug in sbops)."""
    from sbops.kube import NoKubeconfig

    if isinstance(exc, NoKubeconfig):
        return False  # the engine reports it
    return api_status(exc) is not None or type(exc).__module__.startswith("urllib3") or isinstance(exc, OSError)


def put_secret(ctx: "Context", body: dict[str, Any], live_type: str | None) -> None:
    """Create or replace a Secret; `live_type` is the existing one's type, None when there is none.
    A Secret's type is immutable, so a wrong-typed one is deleted first."""
    client = api(ctx)
    meta = body["metadata"]
    collection = path(namespace=meta["namespace"], plural="secrets")
    if live_type is not None and live_type != body.get("type"):
        client.delete(f"{collection}/{meta['name']}", ignore_missing=True)
        live_type = None
    if live_type is None:
        client.create(collection, body)
    else:
        client.replace(f"{collection}/{meta['name']}", body)
