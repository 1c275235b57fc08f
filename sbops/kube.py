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
