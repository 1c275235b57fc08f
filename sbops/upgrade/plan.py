"""Pure parts of an upgrade: what changes between two rendered releases (chart, images, default values, the
manifest as a diff with every Secret's data masked), which checks count as a failed doctor, and the argv of the
helm commands. No I/O here."""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping, Sequence

import yaml

from sbops.secret import MASK, mask_text, mask_value

# The doctor's layers an upgrade relies on or changes; host, NFS, TLS files and CloudStack are not its business
# (and a failure there would block every upgrade for a reason the upgrade cannot change).
LAYERS = ("mysql", "mongodb", "rabbitmq", "kubernetes", "helm", "ecr", "istio", "workloads", "app")
FAILED = ("fail", "error")


def objects(manifest: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(manifest or "") if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise ValueError(f"a release manifest is not YAML: {exc}") from None


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('name', '?')}"


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def images(objs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{"Deployment/sb-core sb-core": image} for every container of every pod template (and bare pod)."""
    out: dict[str, str] = {}
    for obj in objs:
        pod = _pod_spec(obj)
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            out[f"{_key(obj)} {container.get('name', '?')}"] = str(container.get("image", ""))
    return out


def image_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append(f"{key}: {old or '(none)'} -> {new or '(removed)'}")
    return out


def masked(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object with a Secret's data and stringData values replaced by the mask (keys kept)."""
    out = dict(obj)
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(obj.get(field), dict):
                out[field] = {k: MASK for k in obj[field]}
    return out


def manifest_diff(before: str, after: str, secrets: Sequence[Any] = ()) -> list[str]:
    """A unified diff of the two manifests, object by object in a stable order, Secrets' values masked and any
    known secret masked in the rest (a chart may put a password in a ConfigMap or an env value)."""
    def render(manifest: str) -> list[str]:
        docs = sorted((masked(o) for o in objects(manifest)), key=_key)
        text = "".join("---\n" + yaml.safe_dump(d, sort_keys=True) for d in docs)
        return mask_text(text, secrets).splitlines()

    return list(difflib.unified_diff(render(before), render(after), "deployed", "upgraded", lineterm="", n=2))


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict) and values:
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): values}


def value_changes(before: Any, after: Any, secrets: Sequence[Any] = ()) -> list[str]:
    """Dotted keys whose value differs, with old and new values; a key that names a password or token, or a
    value that is a known secret, shows the mask."""
    old, new = flatten(before or {}), flatten(after or {})
    out = []
    for key in sorted(set(old) | set(new)):
        if key and old.get(key) != new.get(key):
            shown = [old.get(key, "(unset)"), new.get(key, "(unset)")]
            if any(word in key.lower() for word in ("password", "token", "secret", "key")):
                shown = [MASK if v not in ("(unset)", None, "") else v for v in shown]
            shown = mask_value(shown, secrets)
            out.append(f"{key}: {shown[0]!r} -> {shown[1]!r}")
    return out


def chart_name(record: Mapping[str, Any]) -> str:
    meta = ((record or {}).get("chart") or {}).get("metadata") or {}
    return f"{meta.get('name', '?')}-{meta.get('version', '?')} (app {meta.get('appVersion', '?')})"


def changes(deployed: Mapping[str, Any], upgraded: Mapping[str, Any], secrets: Sequence[Any] = ()) -> dict[str, Any]:
    """What --plan shows: chart, images, chart default values, user-supplied values (reused), manifest diff."""
    old_objs, new_objs = objects(deployed.get("manifest") or ""), objects(upgraded.get("manifest") or "")
    return {
        "chart": {"from": chart_name(deployed), "to": chart_name(upgraded)},
        "images": image_changes(images(old_objs), images(new_objs)),
        "default_values": value_changes((deployed.get("chart") or {}).get("values"),
                                        (upgraded.get("chart") or {}).get("values"), secrets),
        "user_values": value_changes(deployed.get("config"), upgraded.get("config"), secrets),
        "manifest_diff": manifest_diff(deployed.get("manifest") or "", upgraded.get("manifest") or "", secrets),
    }


def deployments(manifest: str) -> list[str]:
    return sorted((o.get("metadata") or {}).get("name", "") for o in objects(manifest) if o.get("kind") == "Deployment")


def failed(statuses: Mapping[str, str]) -> list[str]:
    """The checks that failed or errored (warnings and skips do not block an upgrade)."""
    return sorted(cid for cid, status in statuses.items() if status in FAILED)


def upgrade_argv(helm: str, release: str, chart: str, namespace: str, kubeconfig: str, version: str = "",
                 dry_run: bool = False) -> list[str]:
    """`helm upgrade --reset-then-reuse-values` (Helm 3.14+): the release's own values (with its passwords) stay
    in the release, so none goes on a command line or through a file. Not `--reuse-values`: that one also keeps
    the *old chart's* defaults in place of the new chart's (Helm replaces the new chart's values with the old
    coalesced ones), so a changed default of the new version would silently not apply; on the lab, chart 2.0.0's
    new pull policy did not reach a single pod. No --wait: sbops waits by the pods' Ready condition."""
    argv = [helm, "upgrade", release, chart, "-n", namespace, "--reset-then-reuse-values",
            *(["--version", version] if version else []), *(["--kubeconfig", kubeconfig] if kubeconfig else [])]
    return argv + (["--dry-run", "-o", "json"] if dry_run else ["--timeout", "10m"])


def rollback_argv(helm: str, release: str, revision: int, namespace: str, kubeconfig: str) -> list[str]:
    return [helm, "rollback", release, str(revision), "-n", namespace, "--wait=false",
            *(["--kubeconfig", kubeconfig] if kubeconfig else [])]


def local_version_mismatch(found: str, wanted: str) -> str:
    """A chart directory or .tgz has one version: asking another is a mistake ("" when fine)."""
    if wanted and found and found != wanted:
        return f"the chart at this path is version {found}, not {wanted}"
    return ""
