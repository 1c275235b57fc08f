"""The Helm release record: Helm 3 stores each revision as a Secret `sh.helm.release.v1.<release>.v<N>`
(type helm.sh/release.v1, labels owner=helm, name, status, version) whose `release` field is
base64(gzip(JSON)) on top of the Secret's own base64. sbops reads it directly (no helm binary needed to
diagnose); helm-rollback runs the helm binary, because a rollback re-applies the old manifest.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from typing import TYPE_CHECKING, Any

from sbops import kube
from sbops.messages import helm as msg
from sbops.model import Change, Plan, Result
from sbops.probes import kubecommon as kc

if TYPE_CHECKING:
    from sbops.context import Context

GZIP_MAGIC = b"\x1f\x8b\x08"
PENDING = frozenset({"pending-install", "pending-upgrade", "pending-rollback", "uninstalling"})
SECRET_PREFIX = "sh.helm.release.v1."
ROLLBACK_TIMEOUT = 120.0


def decode_release(value: str | bytes) -> dict[str, Any]:
    """Helm's encoding (the string Helm stores, i.e. the Secret's data already base64-decoded once):
    base64 of gzip of JSON; Helm also accepts un-gzipped JSON. Raises ValueError when it is neither."""
    try:
        raw = base64.b64decode(value, validate=False)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"release record is not base64: {exc}") from None
    if raw[:3] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"release record is not valid gzip: {exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"release record is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("release record is not a JSON object")
    return data


def decode_secret_field(secret_data_value: str) -> dict[str, Any]:
    """The Secret's `data.release` as the API returns it (base64 of Helm's string) -> the release JSON."""
    try:
        helm_value = base64.b64decode(secret_data_value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"secret data is not base64: {exc}") from None
    return decode_release(helm_value)


def encode_release(release: dict[str, Any]) -> str:
    """The inverse of decode_release (tests, and what Helm writes)."""
    return base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()


def revision_of(secret: dict[str, Any]) -> int:
    """The revision: label `version`, else the name's `.vN` suffix; -1 when neither parses."""
    meta = secret.get("metadata") or {}
    label = (meta.get("labels") or {}).get("version", "")
    if str(label).isdigit():
        return int(label)
    name = meta.get("name", "")
    suffix = name.rsplit(".v", 1)[-1] if ".v" in name else ""
    return int(suffix) if suffix.isdigit() else -1


def summarize(secret: dict[str, Any]) -> dict[str, Any]:
    """Revision, status, chart name/version, app version, description of one release secret (pure)."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    facts: dict[str, Any] = {"secret": meta.get("name", ""), "revision": revision_of(secret),
                             "status": labels.get("status", ""), "chart": "", "chart_version": "",
                             "app_version": "", "description": "", "decoded": False}
    value = (secret.get("data") or {}).get("release")
    if value:
        try:
            release = decode_secret_field(value)
        except ValueError as exc:
            facts["decode_error"] = str(exc)
            return facts
        info = release.get("info") or {}
        chart = (release.get("chart") or {}).get("metadata") or {}
        facts.update(status=info.get("status") or facts["status"], chart=chart.get("name", ""),
                     chart_version=chart.get("version", ""), app_version=chart.get("appVersion", ""),
                     description=str(info.get("description", ""))[:200], decoded=True)
        if isinstance(release.get("version"), int):
            facts["revision"] = release["version"]
    return facts


def judge_release(release: str, namespace: str, revisions: list[dict[str, Any]]) -> Result:
    """The latest revision decides: deployed ok; pending-* stuck; failed failed; none missing."""
    if not revisions:
        return msg.RELEASE_MISSING.result(release=release, namespace=namespace, prefix=SECRET_PREFIX,
                                          details={"release": release, "namespace": namespace})
    ordered = sorted(revisions, key=lambda r: r["revision"])
    latest = ordered[-1]
    chart = f"{latest['chart'] or 'chart'}-{latest['chart_version'] or '?'}"
    details = {"release": release, "namespace": namespace, "revision": latest["revision"], "status": latest["status"],
               "chart": latest["chart"], "chart_version": latest["chart_version"], "app_version": latest["app_version"],
               "description": latest["description"],
               "history": [{k: r[k] for k in ("revision", "status", "chart_version")} for r in ordered[-10:]]}
    if "decode_error" in latest:
        details["decode_error"] = latest["decode_error"]
    where = f"release {release} revision {latest['revision']} ({chart})"
    status = latest["status"]
    if status == "deployed":
        return msg.RELEASE_DEPLOYED.result(where=where, details=details)
    details["last_deployed"] = last_deployed(ordered[:-1])  # what helm-rollback returns to (None: nothing)
    if status in PENDING:
        return msg.RELEASE_STUCK.result(where=where, status=status, details=details)
    if status == "failed":
        return msg.RELEASE_FAILED.result(where=where, description=latest["description"] or "see helm history",
                                         details=details)
    if status == "uninstalled":
        return msg.RELEASE_UNINSTALLED.result(where=where, details=details)
    return msg.RELEASE_ODD_STATUS.result(where=where, status=status or "unknown", details=details)


def last_deployed(older: list[dict[str, Any]]) -> int | None:
    """The revision to return to: the newest older `deployed` one, else the newest `superseded`."""
    for wanted in ("deployed", "superseded"):
        found = [r["revision"] for r in older if r["status"] == wanted and r["revision"] > 0]
        if found:
            return max(found)
    return None


def release_secrets(ctx: "Context", namespace: str, release: str = "") -> list[dict[str, Any]]:
    """Helm 3's release records in `namespace` (one Secret per revision), of one release or of all: the one
    observer the doctor check, the rollback fix, the installer and the uninstaller read releases through."""
    selector = f"owner=helm,name={release}" if release else "owner=helm"
    secrets = kc.api(ctx).list(kc.path(namespace=namespace, plural="secrets"), label_selector=selector)
    return [s for s in secrets if (s.get("metadata") or {}).get("name", "").startswith(SECRET_PREFIX)]


def list_revisions(ctx: "Context", namespace: str, release: str) -> list[dict[str, Any]]:
    return [summarize(s) for s in release_secrets(ctx, namespace, release)]


def probe_release(ctx: "Context") -> Result:
    ns = kc.namespace(ctx)
    release = str(ctx.settings["release"])
    try:
        revisions = list_revisions(ctx, ns, release)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"read Helm release secrets in {ns}", exc)
    return judge_release(release, ns, revisions)


# -- helm-rollback ---------------------------------------------------------------------------------
def rollback_argv(helm: str, release: str, revision: int, namespace: str, kubeconfig: str) -> list[str]:
    """`helm rollback` without waiting (pods may take minutes; pods.ready reports them)."""
    return [helm, "rollback", release, str(revision), "-n", namespace, "--wait=false", *(["--kubeconfig", kubeconfig] if kubeconfig else [])]


def plan_rollback(ctx: "Context") -> Plan:
    ns = kc.namespace(ctx)
    release = str(ctx.settings["release"])
    try:
        revisions = list_revisions(ctx, ns, release)
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kc.api_failure_summary(f"read Helm release secrets in {ns}", exc),))
    verdict = judge_release(release, ns, revisions)
    if verdict.status.passed:
        return Plan(nothing_to_do=verdict.summary)
    if verdict.code not in (msg.RELEASE_STUCK.code, msg.RELEASE_FAILED.code, msg.RELEASE_ODD_STATUS.code):
        return Plan(blockers=(f"cannot roll back: {verdict.summary}",))
    ordered = sorted(revisions, key=lambda r: r["revision"])
    target = last_deployed(ordered[:-1])
    if target is None:
        history = ", ".join(f"{r['revision']} {r['status']}" for r in ordered)
        return Plan(blockers=(f"release {release} has no earlier deployed revision to return to "
                              f"(history: {history}); "
                              "reinstall with helm upgrade --install",))
    helm_cmd = str(ctx.settings["helm.command"])
    helm = shutil.which(helm_cmd)
    if helm is None:
        return Plan(blockers=(f"helm binary {helm_cmd!r} not found (setting helm.command): install Helm 3",))
    if ctx.kubeconfig_path is None:
        return Plan(blockers=("no kubeconfig for helm (use --kubeconfig FILE)",))
    argv = rollback_argv(helm, release, target, ns, kube.kubeconfig_file(ctx.kubeconfig_path))

    def apply() -> None:
        result = ctx.runner.run(argv, timeout=ROLLBACK_TIMEOUT)
        if not result.ok:
            raise RuntimeError(f"helm rollback failed: {result.one_line_error()}")

    from sbops.runner import display

    return Plan(changes=(Change(f"roll release {release} back from revision {verdict.details['revision']} "
                                f"({verdict.details['status']}) to revision {target}",
                                (display(argv),), apply=apply),),
                notes=("helm applies that revision's manifests again and records a new revision; pods restart",))


# -- uninstall ---------------------------------------------------------------------------------------
UNINSTALL_TIMEOUT = 300  # seconds helm itself allows for hooks and deletions (its default, 5m)


def group_releases(secrets: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Helm release secrets -> {release name: [revision summaries]} (pure); the name is the `name` label."""
    out: dict[str, list[dict[str, Any]]] = {}
    for secret in secrets:
        meta = secret.get("metadata") or {}
        name = (meta.get("labels") or {}).get("name", "")
        if name and meta.get("name", "").startswith(SECRET_PREFIX):
            out.setdefault(name, []).append(summarize(secret))
    return out


def latest(revisions: list[dict[str, Any]]) -> dict[str, Any]:
    return max(revisions, key=lambda r: r["revision"])


def list_releases(ctx: "Context", namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Every Helm 3 release recorded in `namespace` with its revisions."""
    return group_releases(release_secrets(ctx, namespace))


def uninstall_argv(helm: str, release: str, namespace: str, kubeconfig: str) -> list[str]:
    """`helm uninstall`: runs the chart's delete hooks, deletes its objects and its release records."""
    return [helm, "uninstall", release, "-n", namespace, *(["--kubeconfig", kubeconfig] if kubeconfig else []), "--timeout", f"{UNINSTALL_TIMEOUT}s"]


# -- the installer's release -----------------------------------------------------------------------
def latest_record(ctx: "Context", namespace: str, release: str) -> dict[str, Any] | None:
    """The decoded record of the release's newest revision (info.status filled from the label when the
    record lacks it), None when the release has no revision at all."""
    secrets = release_secrets(ctx, namespace, release)
    if not secrets:
        return None
    newest = max(secrets, key=revision_of)
    try:
        record = decode_secret_field((newest.get("data") or {}).get("release") or "")
    except ValueError:
        record = {}
    record.setdefault("version", revision_of(newest))
    info = record.setdefault("info", {})
    info.setdefault("status", ((newest.get("metadata") or {}).get("labels") or {}).get("status", ""))
    return record


def chart_identity(ref: str) -> tuple[str, str]:
    """(name, version) of a chart directory or .tgz from its Chart.yaml; for a repository or OCI reference
    the name is its last path segment and the version unknown until Helm pulls it."""
    import tarfile
    from pathlib import Path

    import yaml

    path = Path(ref)
    try:
        if path.is_dir():
            meta = yaml.safe_load((path / "Chart.yaml").read_text()) or {}
        elif path.is_file():
            with tarfile.open(path) as tar:
                member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
                meta = yaml.safe_load(tar.extractfile(member).read()) or {}  # type: ignore[union-attr]
        else:
            return ref.rstrip("/").rsplit("/", 1)[-1].split(":")[0], ""
    except (OSError, StopIteration, tarfile.TarError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"{ref}: not a readable Helm chart ({type(exc).__name__})") from None
    return str(meta.get("name", "")), str(meta.get("version", ""))


def value_differences(deployed: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Pure: the dotted keys whose values differ (names only: the values may be passwords)."""
    if isinstance(deployed, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(deployed) | set(wanted), key=str):
            out += value_differences(deployed.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if deployed == wanted else [prefix.rstrip(".")]


def release_changes(record: dict[str, Any] | None, chart_name: str, chart_version: str,
                    values: dict[str, Any]) -> tuple[str, list[str]]:
    """Pure: ("", []) when the deployed release already is the wanted one, else ("install" | "upgrade" |
    "blocked", reasons). A pending revision blocks: Helm refuses to upgrade over it."""
    if record is None:
        return "install", ["the release does not exist"]
    info = record.get("info") or {}
    meta = (record.get("chart") or {}).get("metadata") or {}
    revision, status = record.get("version", "?"), info.get("status", "")
    if status in PENDING:
        return "blocked", [f"revision {revision} is {status}: an earlier Helm run was interrupted; "
                           "`sbops fix helm-rollback` returns to the last deployed revision"]
    reasons = []
    if status != "deployed":
        reasons.append(f"revision {revision} is {status or 'of unknown status'}")
    if chart_name and meta.get("name") and meta.get("name") != chart_name:
        reasons.append(f"chart {meta.get('name')} -> {chart_name}")
    if chart_version and meta.get("version") != chart_version:
        reasons.append(f"chart version {meta.get('version') or '?'} -> {chart_version}")
    changed = value_differences(record.get("config") or {}, values)
    if changed:
        reasons.append("values differ: " + ", ".join(changed))
    return ("upgrade", reasons) if reasons else ("", [])


def upgrade_argv(helm: str, release: str, chart: str, namespace: str, kubeconfig: str, version: str = "") -> list[str]:
    """`helm upgrade --install` with the values on standard input (`-f -`), never --set: values on a command
    line show up in `ps`. No --wait: the installer waits for pods itself, by their Ready condition."""
    argv = [helm, "upgrade", "--install", release, chart, "-n", namespace, "-f", "-", "--timeout", "10m",
            *(["--kubeconfig", kubeconfig] if kubeconfig else [])]
    return argv + (["--version", version] if version else [])


def plan_release(ctx: "Context", helm: str, chart: str, version: str, values: dict[str, Any]) -> Plan:
    """Install or upgrade the release so its chart and values are the wanted ones; nothing when they are."""
    import yaml

    from sbops.runner import display
    from sbops.secret import Secret, mask_text

    ns = kc.namespace(ctx)
    release = str(ctx.settings["release"])
    try:
        name, found_version = chart_identity(chart)
    except ValueError as exc:
        return Plan(blockers=(str(exc),))
    version = version or ""
    try:
        record = latest_record(ctx, ns, release)
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kc.api_failure_summary(f"read Helm release secrets in {ns}", exc),))
    action, reasons = release_changes(record, name, version or found_version, values)
    if action == "blocked":
        return Plan(blockers=tuple(reasons))
    if not action:
        meta = ((record or {}).get("chart") or {}).get("metadata") or {}
        return Plan(nothing_to_do=f"release {release} revision {(record or {}).get('version')} "
                    f"({meta.get('name')}-{meta.get('version')}) is deployed with the wanted values")
    if ctx.kubeconfig_path is None:
        return Plan(blockers=("no kubeconfig for helm (use --kubeconfig FILE)",))
    argv = upgrade_argv(helm, release, chart, ns, kube.kubeconfig_file(ctx.kubeconfig_path), version)
    document = Secret(yaml.safe_dump(values, sort_keys=True))

    def apply() -> None:
        result = ctx.runner.run(argv, input=document, timeout=900)
        if not result.ok:
            raise RuntimeError(f"helm {action} failed: {mask_text(result.one_line_error(), ctx.secrets())}")

    shown_chart = f"{chart}{' ' + (version or found_version) if (version or found_version) else ''}"
    return Plan(changes=(Change(f"{action} release {release} in {ns} from {shown_chart}: {'; '.join(reasons)}",
                                (display(argv) + "   # values (with the passwords) on standard input",), apply),))
