"""The Kubernetes connection: which kubeconfig, validated cheaply at start-up, and one API client per run.

Order: --kubeconfig (setting `kubeconfig`), then $KUBECONFIG, then ~/.kube/config, then
/etc/rancher/k3s/k3s.yaml (K3s's own). The kubernetes package is imported only when a check needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from sbops.errors import UsageError

if TYPE_CHECKING:
    from sbops.context import Context

K3S_KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")


class NoKubeconfig(Exception):
    """No kubeconfig anywhere sbops looks: the Kubernetes checks report it instead of failing the run."""


def candidates(explicit: str, env: Mapping[str, str]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if explicit:
        found.append((Path(explicit), "--kubeconfig"))
    elif env.get("KUBECONFIG"):
        found.append((Path(env["KUBECONFIG"].split(os.pathsep)[0]), "KUBECONFIG"))
    else:
        found += [(Path.home() / ".kube" / "config", ""), (K3S_KUBECONFIG, "")]
    return found


def find(explicit: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The kubeconfig to use; an explicitly named one that is missing or invalid is a usage error."""
    env = os.environ if env is None else env
    for path, source in candidates(explicit, env):
        if source and not path.exists():
            raise UsageError(f"{path}: kubeconfig not found (from {source})")
        if path.exists():
            validate(path)
            return path
    return None


def validate(path: Path) -> None:
    """Cheap structural check (YAML with clusters, users and contexts), so errors name the file at start-up."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read kubeconfig: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: invalid kubeconfig: not YAML") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: invalid kubeconfig: not a mapping")
    for key in ("clusters", "contexts", "users"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise UsageError(f"{path}: invalid kubeconfig: no {key}")
    current = data.get("current-context")
    names = {c.get("name") for c in data["contexts"] if isinstance(c, dict)}
    if current and current not in names:
        raise UsageError(f"{path}: invalid kubeconfig: current-context {current!r} is not among its contexts")


def api_client(ctx: "Context") -> Any:
    """One kubernetes ApiClient per run (shared by every check), or NoKubeconfig."""

    def make() -> Any:
        if ctx.kubeconfig_path is None:
            raise NoKubeconfig(
                f"no kubeconfig (looked at $KUBECONFIG, ~/.kube/config, {K3S_KUBECONFIG}; use --kubeconfig FILE)")
        from kubernetes import config

        client = config.new_client_from_config(config_file=str(ctx.kubeconfig_path))
        client.configuration.retries = 0
        return client

    return ctx.shared("kube.client", make)


def request_timeout(ctx: "Context") -> tuple[float, float]:
    """(connect, read) for every API call: pass as `_request_timeout=`."""
    return (ctx.net_timeout, ctx.net_timeout)


# -- the REST calls ---------------------------------------------------------------------------------------
# sbops makes a few dozen kinds of API call and reads the answers as kubectl-style dicts. Going through
# ApiClient.call_api with raw JSON keeps the kubeconfig handling of the kubernetes package (certificates,
# tokens, exec plugins) without importing its typed API classes: kubernetes 37 builds those with pydantic,
# and CoreV1Api alone costs about a second of start-up, more than all the checks together.

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def path(*, group: str = "", version: str = "v1", namespace: str = "", plural: str = "", name: str = "",
         sub: str = "") -> str:
    """The REST path of a collection or object: path(plural="secrets", namespace="sb-apps", name="awscred")."""
    from urllib.parse import quote

    parts = ["/api/v1"] if not group else [f"/apis/{group}/{version}"]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    if plural:
        parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if sub:
        parts.append(sub)
    return "/".join(parts)


class KubeApi:
    """JSON in, dicts out, over one kubeconfig-authenticated ApiClient. Errors are the kubernetes package's
    ApiException (status, reason, body), so `kubecommon.api_reason` classifies them as before."""

    def __init__(self, client: Any, timeout: tuple[float, float]) -> None:
        self.client = client
        self.timeout = timeout

    def request(self, method: str, resource: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json") -> Any:
        import json

        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v not in (None, "")]
        method, url, headers, body, _ = self.client.param_serialize(
            method, resource, query_params=params, header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, body=body, _request_timeout=self.timeout)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=data.decode("utf-8", "replace"), data=None)
        return json.loads(data) if data else None

    def get(self, resource: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", resource, query=query)

    def get_or_none(self, resource: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404); other errors raise."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.get(resource)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, resource: str, *, label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:
        found = self.get(resource, labelSelector=label_selector, fieldSelector=field_selector)
        return list((found or {}).get("items") or [])

    def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", resource, body=body)

    def replace(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", resource, body=body)

    def patch(self, resource: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]:
        return self.request("PATCH", resource, body=body, content_type=content_type)

    def delete(self, resource: str, *, ignore_missing: bool = False) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.request("DELETE", resource)
        except ApiException as exc:
            if not (ignore_missing and exc.status == 404):
                raise


def api(ctx: "Context") -> KubeApi:
    """One KubeApi per run, over the shared ApiClient, with the run's (connect, read) timeouts."""
    return ctx.shared("kube.api", lambda: KubeApi(api_client(ctx), request_timeout(ctx)))
