"""cluster/: the Kubernetes objects of a StackBill install, Secrets as metadata only, the Helm history decoded;
and the known secrets the cluster holds (the data of every Secret in the StackBill namespaces and istio-system).

Pure: `secret_metadata`, `secret_values`, `helm_record`, `slim`. I/O: `collect`, `known_secrets`.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from sbops.probes import ecr, helm

if TYPE_CHECKING:
    from sbops.context import Context

SECRET_KEY = re.compile(r"(?i)pass|secret|token|key|auth|credential|cert|private")
MASK = "[REDACTED:helm-value]"
PUBLIC_KEYS = frozenset({"namespace", "ca.crt"})  # a ServiceAccount token Secret's namespace name is no secret

# (file, group, version, plural, namespaced)
RESOURCES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("nodes", "", "v1", "nodes", False),
    ("namespaces", "", "v1", "namespaces", False),
    ("pods", "", "v1", "pods", True),
    ("deployments", "apps", "v1", "deployments", True),
    ("replicasets", "apps", "v1", "replicasets", True),
    ("services", "", "v1", "services", True),
    ("endpoints", "", "v1", "endpoints", True),
    ("events", "", "v1", "events", True),
    ("configmaps", "", "v1", "configmaps", True),
    ("persistentvolumes", "", "v1", "persistentvolumes", False),
    ("persistentvolumeclaims", "", "v1", "persistentvolumeclaims", True),
    ("storageclasses", "storage.k8s.io", "v1", "storageclasses", False),
    ("gateways", "networking.istio.io", "v1beta1", "gateways", True),
    ("virtualservices", "networking.istio.io", "v1beta1", "virtualservices", True),
)


def namespaces(ctx: "Context") -> list[str]:
    """The StackBill namespaces and istio-system: where the bundle looks and whose Secrets it knows."""
    names = [ctx.settings["namespace"], "istio-system"]
    return list(dict.fromkeys(n for n in names if n))


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without managedFields and the last-applied annotation (noise, and the latter can hold a
    Secret's data or a ConfigMap's values as written)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def _decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return None


def _cert_expiry(pem: bytes) -> str | None:
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(pem)
    except Exception:  # noqa: BLE001 - not a certificate: no expiry shown
        return None
    return cert.not_valid_after_utc.isoformat()


def secret_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """Name, namespace, type, keys, and the expiry of a certificate or ECR token it holds; never data."""
    meta = obj.get("metadata") or {}
    data = obj.get("data") or {}
    out: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace"), "type": obj.get("type"),
                           "keys": sorted(data), "created": meta.get("creationTimestamp"),
                           "labels": meta.get("labels") or {}}
    for key in ("tls.crt", "ca.crt"):
        raw = _decode(data.get(key, ""))
        expiry = _cert_expiry(raw) if raw else None
        if expiry:
            out[f"{key} not_after"] = expiry
    config = _dockerconfig(data)
    if config is not None:
        registries = {}
        for registry, entry in config.items():
            password = _docker_password(entry)
            expiry = ecr.token_expiry(password) if password else None
            registries[registry] = {"token_expires": expiry.isoformat() if expiry else None}
        out["registries"] = registries
    return out


def _dockerconfig(data: dict[str, Any]) -> dict[str, Any] | None:
    raw = _decode(data.get(".dockerconfigjson", "")) or _decode(data.get(".dockercfg", ""))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    auths = doc.get("auths", doc) if isinstance(doc, dict) else None
    return auths if isinstance(auths, dict) else None


def _docker_password(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    if entry.get("password"):
        return str(entry["password"])
    raw = _decode(str(entry.get("auth") or ""))
    text = raw.decode("utf-8", "replace") if raw else ""
    return text.split(":", 1)[1] if ":" in text else ""


def _secret_leaves(node: Any, found: list[str], secret_key: bool = False) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _secret_leaves(value, found, secret_key or bool(SECRET_KEY.search(str(key))))
    elif isinstance(node, list):
        for value in node:
            _secret_leaves(value, found, secret_key)
    elif secret_key and isinstance(node, str) and node:
        found.append(node)


def secret_values(obj: dict[str, Any]) -> list[str]:
    """Every secret a Secret holds, in the forms sbops can name: each data value as stored (base64) and
    decoded, a registry's password, auth and ECR token's password, and a Helm release's values under keys
    that look secret (password, token, key, ...)."""
    found: list[str] = []
    data = obj.get("data") or {}
    for key, value in data.items():
        if not isinstance(value, str) or not value or key in PUBLIC_KEYS:
            continue
        found.append(value)
        raw = _decode(value)
        if raw is None:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if obj.get("type") == "helm.sh/release.v1" and key == "release":
            try:
                release = helm.decode_secret_field(value)
            except Exception:  # noqa: BLE001 - a record Helm could not read either: its raw value is known
                continue
            _secret_leaves(release.get("config") or {}, found)
            continue
        if text.lstrip().startswith("-----BEGIN CERTIFICATE"):
            continue  # public: redacting it would hide the evidence a TLS problem needs
        found.append(text)
        for line in text.splitlines():  # a key or certificate also appears line by line (in a log, say)
            if len(line) >= 16 and not line.startswith("-----"):
                found.append(line)
    for entry in (_dockerconfig(data) or {}).values():
        password = _docker_password(entry)
        if password:
            found.append(password)
            found.append(ecr.split_token(password))
        if isinstance(entry, dict) and entry.get("auth"):
            found.append(str(entry["auth"]))
    return list(dict.fromkeys(v for v in found if v))


def _masked(node: Any, secret_key: bool = False) -> Any:
    if isinstance(node, dict):
        return {k: _masked(v, secret_key or bool(SECRET_KEY.search(str(k)))) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v, secret_key) for v in node]
    if secret_key and isinstance(node, str) and node:
        return MASK
    return node


def helm_record(obj: dict[str, Any]) -> dict[str, Any]:
    """One revision of a Helm release, decoded: name, revision, status, chart, dates, and its values with
    every value under a secret-looking key masked. Templates and the rendered manifest are left out."""
    meta = obj.get("metadata") or {}
    try:
        release = helm.decode_secret_field((obj.get("data") or {}).get("release", ""))
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        return {"record": meta.get("name"), "error": f"cannot decode: {type(exc).__name__}"}
    chart = (release.get("chart") or {}).get("metadata") or {}
    return {"record": meta.get("name"), "name": release.get("name"), "namespace": release.get("namespace"),
            "revision": release.get("version"), "info": release.get("info"),
            "chart": {"name": chart.get("name"), "version": chart.get("version"),
                      "appVersion": chart.get("appVersion")},
            "values": _masked(release.get("config") or {})}


# -- I/O --------------------------------------------------------------------------------------------------

def _list(ctx: "Context", group: str, version: str, plural: str, namespace: str = "") -> list[dict[str, Any]]:
    from sbops import kube

    return kube.api(ctx).list(kube.path(group=group, version=version, namespace=namespace, plural=plural))


def _secrets(ctx: "Context") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for ns in namespaces(ctx):
        found += _list(ctx, "", "v1", "secrets", ns)
    return found


def known_secrets(ctx: "Context") -> list[str]:
    values: list[str] = []
    for obj in _secrets(ctx):
        values += secret_values(obj)
    return values


def collect(ctx: "Context", put: Callable[[str, bytes], None]) -> None:
    """Write cluster/*.json. A resource the API cannot list (a missing CRD, RBAC) is written as its error."""
    errors: dict[str, str] = {}
    for name, group, version, plural, namespaced in RESOURCES:
        try:
            if namespaced:
                items = [slim(o) for ns in namespaces(ctx) for o in _list(ctx, group, version, plural, ns)]
            else:
                items = [slim(o) for o in _list(ctx, group, version, plural)]
        except Exception as exc:  # noqa: BLE001 - one resource's failure is evidence, not fatal
            errors[name] = _why(exc)
            continue
        put(f"cluster/{name}.json", _json(items))
    secrets = _secrets(ctx)
    put("cluster/secrets.json", _json([secret_metadata(o) for o in secrets]))
    history = [helm_record(o) for o in secrets if o.get("type") == "helm.sh/release.v1"]
    history.sort(key=lambda r: (str(r.get("name")), r.get("revision") or 0))
    put("cluster/helm-history.json", _json(history))
    if errors:
        put("cluster/errors.json", _json(errors))


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
