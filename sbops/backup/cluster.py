"""The cluster in a backup: the Helm release's values and chart (decoded from its newest release record:
base64, gzip, JSON), the Secrets `awscred` and the Gateway's TLS secret, the Istio objects of the namespace,
and sbops's config file and the credentials file.

Restore re-applies the Secrets and Istio objects (created, or replaced), writes the two files back atomically
(the current ones kept as .bak), and when the release's values differ from the saved ones runs
`helm upgrade` of the saved chart version with the values on standard input (never --set).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sbops.backup.archive import Opened, Stage
    from sbops.context import Context

LAYER = "cluster"
RELEASE = "cluster/release.json"
ISTIO_GROUP, ISTIO_VERSION = "networking.istio.io", "v1beta1"
ISTIO_KINDS = ("gateways", "virtualservices", "destinationrules")
DROPPED_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")
CONFIG = "cluster/files/config.yaml"
CREDENTIALS = "cluster/files/credentials.txt"


# -- pure ---------------------------------------------------------------------------------------------------
def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as it can be created again: no status, no server-set metadata."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in DROPPED_METADATA}
    meta.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return {k: v for k, v in obj.items() if k not in ("status", "metadata")} | {"metadata": meta}


def release_summary(record: dict[str, Any]) -> dict[str, Any]:
    chart = (record.get("chart") or {}).get("metadata") or {}
    return {"name": record.get("name", ""), "namespace": record.get("namespace", ""),
            "revision": record.get("version"), "status": (record.get("info") or {}).get("status", ""),
            "chart": {"name": chart.get("name", ""), "version": chart.get("version", ""),
                      "appVersion": chart.get("appVersion", "")},
            "values": record.get("config") or {}}


def object_part(kind: str, namespace: str, name: str) -> str:
    return f"{LAYER}/{kind}/{namespace}/{name}.json"


# -- I/O --------------------------------------------------------------------------------------------------------
def _api(ctx: "Context") -> Any:
    from sbops import kube

    return kube.api(ctx)


def _objects(ctx: "Context") -> list[tuple[str, str, str, str, str]]:
    """(part, plural, group, namespace, name) of what the layer keeps."""
    ns = str(ctx.settings["namespace"])
    wanted = [("secrets", "", ns, str(ctx.settings["ecr.secret"])),
              ("secrets", "", str(ctx.settings["tls.namespace"]), str(ctx.settings["tls.secret"]))]
    return [(object_part(plural, n, name), plural, group, n, name) for plural, group, n, name in wanted]


def backup(ctx: "Context", stage: "Stage", progress: Any) -> dict[str, Any]:
    from sbops import kube
    from sbops.probes import helm

    api = _api(ctx)
    ns, release = str(ctx.settings["namespace"]), str(ctx.settings["release"])
    progress.show("cluster: release, secrets, Istio objects", force=True)
    info: dict[str, Any] = {"objects": [], "missing": [], "files": {}}
    record = helm.latest_record(ctx, ns, release)
    if record is None:
        info["missing"].append(f"Helm release {release} in {ns}")
    else:
        summary = release_summary(record)
        stage.write(RELEASE, LAYER, json.dumps(summary, indent=1, sort_keys=True).encode())
        info["release"] = {k: v for k, v in summary.items() if k != "values"}
        info["versions"] = {"chart": summary["chart"]["version"]}
    for part, plural, group, namespace, name in _objects(ctx):
        obj = api.get_or_none(kube.path(namespace=namespace, plural=plural, name=name))
        if obj is None:
            info["missing"].append(f"{plural}/{namespace}/{name}")
            continue
        stage.write(part, LAYER, json.dumps(clean(obj), indent=1, sort_keys=True).encode())
        info["objects"].append(f"{plural}/{namespace}/{name}")
    for plural in ISTIO_KINDS:
        try:
            items = api.list(kube.path(group=ISTIO_GROUP, version=ISTIO_VERSION, namespace=ns, plural=plural))
        except Exception as exc:  # noqa: BLE001 - a cluster without Istio's CRDs has none of these
            if getattr(exc, "status", None) == 404:
                continue
            raise
        for obj in items:
            name = str(obj["metadata"]["name"])
            stage.write(object_part(plural, ns, name), LAYER, json.dumps(clean(obj), indent=1, sort_keys=True).encode())
            info["objects"].append(f"{plural}/{ns}/{name}")
    for part, path in ((CONFIG, ctx.settings.config_path), (CREDENTIALS, ctx.credentials_path)):
        if path is not None and Path(path).is_file():
            stage.write(part, LAYER, Path(path).read_bytes())
            info["files"][part] = str(Path(path).resolve())
    return info


def plan(opened: "Opened") -> list[str]:
    info = opened.manifest.layers.get(LAYER, {})
    lines = []
    if info.get("release"):
        chart = info["release"]["chart"]
        lines.append(f"Helm release {info['release']['name']}: upgrade to chart {chart['name']} {chart['version']} "
                     "with the saved values, if its values differ")
    if info.get("objects"):
        lines.append(f"create or replace {len(info['objects'])} objects: {', '.join(info['objects'])}")
    for part, path in info.get("files", {}).items():
        lines.append(f"write {path} (the current file kept as {Path(path).name}.bak)")
    return lines


def _part_of(kind_ns_name: str) -> str:
    plural, namespace, name = kind_ns_name.split("/", 2)
    return object_part(plural, namespace, name)


def _resource(kind_ns_name: str) -> tuple[str, str]:
    from sbops import kube

    plural, namespace, name = kind_ns_name.split("/", 2)
    group = ISTIO_GROUP if plural in ISTIO_KINDS else ""
    return (kube.path(group=group, version=ISTIO_VERSION if group else "v1", namespace=namespace, plural=plural),
            kube.path(group=group, version=ISTIO_VERSION if group else "v1", namespace=namespace, plural=plural, name=name))


def restore(ctx: "Context", opened: "Opened", progress: Any) -> dict[str, Any]:
    from sbops.credentials import write_atomic

    api = _api(ctx)
    info = opened.manifest.layers.get(LAYER, {})
    for ref in info.get("objects", []):
        body = json.loads(opened.file(_part_of(ref)).read_text())
        collection, one = _resource(ref)
        current = api.get_or_none(one)
        if current is None:
            api.create(collection, body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            api.replace(one, body)
    for part, path in info.get("files", {}).items():
        write_atomic(Path(path), opened.file(part).read_text())
    upgraded = False
    if info.get("release"):
        upgraded = _restore_release(ctx, json.loads(opened.file(RELEASE).read_text()))
    return {"release_upgraded": upgraded}


def _restore_release(ctx: "Context", saved: dict[str, Any]) -> bool:
    import yaml

    from sbops import kube
    from sbops.probes import helm

    record = helm.latest_record(ctx, saved["namespace"], saved["name"])
    if record is not None and (record.get("config") or {}) == saved["values"]:
        return False
    argv = helm.upgrade_argv(str(ctx.settings["helm.command"]), saved["name"], str(ctx.settings["install.chart"]),
                             saved["namespace"], kube.kubeconfig_file(ctx.kubeconfig_path), saved["chart"]["version"])
    proc = subprocess.run(argv, input=yaml.safe_dump(saved["values"]), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        from sbops.secret import mask_text

        err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise RuntimeError(f"helm upgrade: {mask_text(err, ctx.secrets())}")
    return True


def verify(ctx: "Context", opened: "Opened") -> list[str]:
    from sbops.probes import helm

    api = _api(ctx)
    info = opened.manifest.layers.get(LAYER, {})
    problems = [f"{ref} is missing" for ref in info.get("objects", []) if api.get_or_none(_resource(ref)[1]) is None]
    if info.get("release"):
        saved = json.loads(opened.file(RELEASE).read_text())
        record = helm.latest_record(ctx, saved["namespace"], saved["name"])
        if record is None or (record.get("config") or {}) != saved["values"]:
            problems.append(f"Helm release {saved['name']}: values differ from the saved ones")
    for part, path in info.get("files", {}).items():
        if not Path(path).is_file() or Path(path).read_bytes() != opened.file(part).read_bytes():
            problems.append(f"{path} differs from the saved file")
    return problems
