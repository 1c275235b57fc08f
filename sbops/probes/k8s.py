"""The Kubernetes cluster itself: API server, nodes, the StackBill namespace, storage.

Observations are plain dicts (the API's JSON shape, camelCase), judgements are pure functions of them,
so the tables in tests/unit/test_k8s_*.py cover the logic without a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.messages import k8s as msg
from sbops.model import Change, Plan, Reason, Result
from sbops.probes import kubecommon as kc

if TYPE_CHECKING:
    from sbops.context import Context

INJECTION_LABEL = "istio-injection"
INJECTION_VALUE = "enabled"
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")


# -- k8s.api ---------------------------------------------------------------------------------------
def probe_api(ctx: "Context") -> Result:
    """GET /version with the kubeconfig's credentials: a wrong token is a 401 even here."""
    from sbops import kube

    server = kube.api_client(ctx).host
    try:
        info = kc.api(ctx).get("/version") or {}
    except Exception as exc:  # noqa: BLE001 - every API/network error becomes a reason
        if not kc.is_api_error(exc):
            raise
        return api_failure(exc, server, str(ctx.kubeconfig_path))
    version = str(info.get("gitVersion") or "")
    return msg.API_ANSWERS.result(server=server, version=version, details={
        "server": server, "version": version, "platform": str(info.get("platform") or ""),
        "kubeconfig": str(ctx.kubeconfig_path)})


# How the API server failed to answer, by reason (SB6013).
NOT_ANSWERING = {
    Reason.REFUSED: "refuses connections: is K3s running?",
    Reason.TIMEOUT: "did not answer in time: K3s overloaded or a firewall drops packets",
    Reason.UNREACHABLE: "is unreachable",
}


def api_failure(exc: BaseException, server: str, kubeconfig: str) -> Result:
    """Judge a failed GET /version: auth, RBAC, network, or something that is not an API server."""
    reason = kc.api_reason(exc)
    error = kc.api_error(exc)
    details = {"server": server, "kubeconfig": kubeconfig, "error": error}
    if reason is Reason.AUTH_FAILED:
        return msg.API_CREDENTIALS_REJECTED.result(server=server, kubeconfig=kubeconfig, details=details)
    if reason is Reason.ACCESS_DENIED:
        return msg.API_ACCESS_DENIED.result(server=server, details=details)
    if reason in (Reason.MISSING, Reason.MISCONFIGURED):  # /version is never 404 on an API server
        return msg.NOT_AN_API_SERVER.result(server=server, kubeconfig=kubeconfig, details=details)
    if kc.api_status(exc) is not None or reason not in NOT_ANSWERING:  # an HTTP error other than 401/403/404
        return msg.API_NOT_ANSWERING.result(reason=Reason.UNREACHABLE, server=server, problem=f"answered {error}",
                                            details=details)
    return msg.API_NOT_ANSWERING.result(reason=reason, server=server, problem=NOT_ANSWERING[reason], details=details)


# -- k8s.nodes -------------------------------------------------------------------------------------
def node_facts(node: dict[str, Any]) -> dict[str, Any]:
    """Name, Ready and the pressure conditions of one node (API JSON)."""
    conditions = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
    ready = conditions.get("Ready") or {}
    return {
        "name": (node.get("metadata") or {}).get("name", ""),
        "ready": ready.get("status") == "True",
        "ready_reason": ready.get("reason", "") or ("no Ready condition" if not ready else ""),
        "ready_message": ready.get("message", "") or "",
        "pressure": [t for t in PRESSURES if (conditions.get(t) or {}).get("status") == "True"],
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
    }


def judge_nodes(facts: list[dict[str, Any]]) -> Result:
    """not Ready -> fail not_ready; a pressure condition -> warn degraded; none at all -> fail missing."""
    if not facts:
        return msg.NO_NODES.result(details={"nodes": []})
    down = [f for f in facts if not f["ready"]]
    if down:
        names = ", ".join(f"{f['name']} ({f['ready_reason'] or 'NotReady'})" for f in down)
        return msg.NODES_NOT_READY.result(nodes=names, details={"nodes": facts})
    pressed = [f for f in facts if f["pressure"]]
    if pressed:
        names = ", ".join(f"{f['name']} ({'/'.join(f['pressure'])})" for f in pressed)
        return msg.NODES_UNDER_PRESSURE.result(nodes=names, details={"nodes": facts})
    return msg.NODES_READY.result(count=len(facts), details={"nodes": facts})


def probe_nodes(ctx: "Context") -> Result:
    try:
        items = kc.api(ctx).list(kc.path(plural="nodes"))
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure("list nodes", exc)
    return judge_nodes([node_facts(n) for n in items])


# -- k8s.namespace ---------------------------------------------------------------------------------
def read_namespace(ctx: "Context", name: str) -> dict[str, Any] | None:
    """The namespace as JSON, None when it does not exist; other API errors propagate."""
    return kc.api(ctx).get_or_none(kc.path(plural="namespaces", name=name))


def judge_namespace(name: str, ns: dict[str, Any] | None) -> Result:
    if ns is None:
        return msg.NAMESPACE_MISSING.result(namespace=name, details={"namespace": name})
    labels = (ns.get("metadata") or {}).get("labels") or {}
    phase = (ns.get("status") or {}).get("phase", "")
    details = {"namespace": name, "labels": labels}
    if phase == "Terminating":
        return msg.NAMESPACE_TERMINATING.result(namespace=name, details={**details, "phase": phase})
    value = labels.get(INJECTION_LABEL)
    if value != INJECTION_VALUE:
        return msg.NAMESPACE_NOT_INJECTED.result(namespace=name, label=INJECTION_LABEL, value=INJECTION_VALUE,
                                                 found=repr(value), details=details)
    return msg.NAMESPACE_READY.result(namespace=name, label=INJECTION_LABEL, value=INJECTION_VALUE, details=details)


def probe_namespace(ctx: "Context") -> Result:
    name = kc.namespace(ctx)
    try:
        ns = read_namespace(ctx, name)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"read namespace {name}", exc)
    return judge_namespace(name, ns)


def helm_ownership(release: str, namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations by which Helm adopts an existing object into a release (the original
    installer put them on the namespace so a chart that also declares it can install over it)."""
    return ({"app.kubernetes.io/managed-by": "Helm"},
            {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace})


def namespace_changes(name: str, ns: dict[str, Any] | None, labels: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(description, kubectl equivalent, action) for what k8s-namespace must do; pure.

    `labels`/`annotations` are wanted in addition to istio-injection=enabled (the installer's Helm ownership).
    """
    wanted = {INJECTION_LABEL: INJECTION_VALUE, **(labels or {})}
    notes = dict(annotations or {})
    shown = ",".join(f"{k}={v}" for k, v in wanted.items())
    if ns is None:
        extra = f" and annotated {','.join(f'{k}={v}' for k, v in notes.items())}" if notes else ""
        return [(f"create namespace {name} labelled {shown}{extra}", f"kubectl create namespace {name} && "
                 f"kubectl label namespace {name} {' '.join(f'{k}={v}' for k, v in wanted.items())}",
                 {"create": name, "labels": wanted, "annotations": notes})]
    meta = ns.get("metadata") or {}
    have_labels, have_notes = meta.get("labels") or {}, meta.get("annotations") or {}
    labels_missing = {k: v for k, v in wanted.items() if have_labels.get(k) != v}
    notes_missing = {k: v for k, v in notes.items() if have_notes.get(k) != v}
    out = []
    if labels_missing:
        text = " ".join(f"{k}={v}" for k, v in labels_missing.items())
        out.append((f"label namespace {name} {text}", f"kubectl label namespace {name} {text} --overwrite",
                    {"label": name, "labels": labels_missing}))
    if notes_missing:
        text = " ".join(f"{k}={v}" for k, v in notes_missing.items())
        out.append((f"annotate namespace {name} {text}", f"kubectl annotate namespace {name} {text} --overwrite",
                    {"annotate": name, "annotations": notes_missing}))
    return out


def plan_namespace(ctx: "Context", helm_release: str = "") -> Plan:
    """The namespace with istio-injection=enabled; with `helm_release`, also Helm's ownership metadata."""
    name = kc.namespace(ctx)
    try:
        ns = read_namespace(ctx, name)
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kc.api_failure_summary(f"read namespace {name}", exc),))
    if ns is not None and (ns.get("status") or {}).get("phase") == "Terminating":
        return Plan(blockers=(f"namespace {name} is being deleted (Terminating): wait for it to go, then re-run",))
    labels, annotations = helm_ownership(helm_release, name) if helm_release else ({}, {})
    changes = []
    for description, _kubectl, action in namespace_changes(name, ns, labels, annotations):
        changes.append(Change(f"via the Kubernetes API: {description}", (), apply=_namespace_applier(ctx, action)))
    if not changes:
        owned = f" and Helm's ownership of release {helm_release}" if helm_release else ""
        return Plan(nothing_to_do=f"namespace {name} exists with {INJECTION_LABEL}={INJECTION_VALUE}{owned}")
    return Plan(changes=tuple(changes))


def _namespace_applier(ctx: "Context", action: dict[str, Any]) -> Any:
    def apply() -> None:
        api = kc.api(ctx)
        meta = {"labels": action.get("labels") or {}}
        if action.get("annotations"):
            meta["annotations"] = action["annotations"]
        if "create" in action:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": action["create"], **meta}}
            api.create(kc.path(plural="namespaces"), body)
        else:
            target = action.get("label") or action["annotate"]
            api.patch(kc.path(plural="namespaces", name=target), {"metadata": meta})

    return apply


def answers_kube_api(host: str, port: int, timeout: float) -> bool:
    """Whether what listens on host:port is a Kubernetes API server: GET /version over TLS (certificate not
    checked: this only identifies the listener) answers its version, or an API Status for anonymous users."""
    import http.client
    import json

    from sbops.probes.net import tls_context

    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls_context(False))
    try:
        conn.request("GET", "/version")
        body = conn.getresponse().read(65536)
        doc = json.loads(body)
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return isinstance(doc, dict) and ("gitVersion" in doc or doc.get("kind") == "Status")


# -- k8s.storage -----------------------------------------------------------------------------------
def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def judge_storage(storage_class: str, sc_found: bool, pvcs: list[dict[str, Any]], selector: str,
                  provisioners: list[dict[str, Any]]) -> Result:
    """Most basic first: no StorageClass, then the provisioner, then claims not Bound."""
    claims = [{"name": (p.get("metadata") or {}).get("name", ""),
               "phase": (p.get("status") or {}).get("phase", "") or "Pending",
               "storage_class": (p.get("spec") or {}).get("storageClassName") or ""} for p in pvcs]
    pods = [{"name": (p.get("metadata") or {}).get("name", ""),
             "namespace": (p.get("metadata") or {}).get("namespace", ""),
             "phase": (p.get("status") or {}).get("phase", ""), "ready": pod_ready(p)} for p in provisioners]
    details = {"storage_class": storage_class, "claims": claims, "provisioner_selector": selector,
               "provisioner_pods": pods}
    if not sc_found:
        return msg.STORAGE_CLASS_MISSING.result(storage_class=storage_class, details=details)
    if not pods:
        return msg.PROVISIONER_MISSING.result(selector=selector, details=details)
    running = [p for p in pods if p["phase"] == "Running" and p["ready"]]
    if not running:
        states = ", ".join(f"{p['namespace']}/{p['name']} ({p['phase'] or 'unknown'}, not Ready)" for p in pods)
        return msg.PROVISIONER_NOT_READY.result(pods=states, details=details)
    unbound = [c for c in claims if c["phase"] != "Bound"]
    if unbound:
        names = ", ".join(f"{c['name']} ({c['phase']})" for c in unbound)
        return msg.CLAIMS_NOT_BOUND.result(claims=names, details=details)
    return msg.STORAGE_READY.result(storage_class=storage_class, claims=len(claims), details=details)


def probe_storage(ctx: "Context") -> Result:
    name = str(ctx.settings["k8s.storage_class"])
    selector = str(ctx.settings["k8s.provisioner_label"])
    ns = kc.namespace(ctx)
    try:
        api = kc.api(ctx)
        found = api.get_or_none(kc.path(group="storage.k8s.io", plural="storageclasses", name=name)) is not None
        pvcs = api.list(kc.path(namespace=ns, plural="persistentvolumeclaims"))
        pods = api.list(kc.path(plural="pods"), label_selector=selector)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure("read storage", exc)
    return judge_storage(name, found, pvcs, selector, pods)


# -- uninstall: claims, their volumes and users; the namespace's deletion ------------------------------
PVC_PROTECTION = "kubernetes.io/pvc-protection"
# Namespaces that are never StackBill's to delete, whatever --namespace says.
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "istio-system"})
FINISHED_PHASES = ("Succeeded", "Failed")


def claim_facts(pvc: dict[str, Any], pv: dict[str, Any] | None = None,
                storage_class: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an uninstall says about one PVC (pure): its size, class, phase, and where its data goes when it
    is deleted (the volume's reclaim policy; the NFS provisioner's archiveOnDelete)."""
    meta, spec, status = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "")
    pv_spec = (pv or {}).get("spec") or {}
    params = (storage_class or {}).get("parameters") or {}
    return {
        "name": meta.get("name", ""),
        "capacity": (status.get("capacity") or {}).get("storage") or requested or "?",
        "storage_class": spec.get("storageClassName") or "",
        "phase": status.get("phase") or "Pending",
        "volume": spec.get("volumeName") or "",
        "terminating": bool(meta.get("deletionTimestamp")),
        "finalizers": list(meta.get("finalizers") or []),
        "resource_version": meta.get("resourceVersion", ""),
        "reclaim_policy": pv_spec.get("persistentVolumeReclaimPolicy", "") if pv else "",
        "nfs_path": (pv_spec.get("nfs") or {}).get("path", "") if pv else "",
        "archive_on_delete": str(params.get("archiveOnDelete", "")).lower() in ("true", "1", "yes") if storage_class else None,
    }


def data_fate(claim: dict[str, Any]) -> str:
    """Where a deleted claim's data goes, in words (pure)."""
    where = f" ({claim['nfs_path']})" if claim["nfs_path"] else ""
    policy = claim["reclaim_policy"]
    if not claim["volume"]:
        return "no volume is bound to it"
    if policy == "Retain":
        return f"volume {claim['volume']} has reclaim policy Retain: it and its data{where} stay"
    if policy == "Delete":
        if claim["archive_on_delete"]:
            return (f"volume {claim['volume']} has reclaim policy Delete: the NFS provisioner renames its "
                    f"directory{where} to archived-* (archiveOnDelete)")
        return f"volume {claim['volume']} has reclaim policy Delete: its data{where} is deleted"
    return f"volume {claim['volume']}{where}, reclaim policy {policy or 'unknown'}"


def claim_users(pods: list[dict[str, Any]], claim: str) -> list[str]:
    """Pods that still mount `claim` (finished pods do not count, as for the pvc-protection controller)."""
    users = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
            continue
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if any(((v.get("persistentVolumeClaim") or {}).get("claimName")) == claim for v in volumes):
            users.append((pod.get("metadata") or {}).get("name", ""))
    return sorted(users)


def observe_claims(ctx: "Context", namespace: str) -> list[dict[str, Any]]:
    """The namespace's PVCs with their volume's reclaim policy and the class's archiveOnDelete (best effort:
    a volume or class that cannot be read leaves those facts empty)."""
    api = kc.api(ctx)
    out = []
    classes: dict[str, dict[str, Any] | None] = {}
    for pvc in api.list(kc.path(namespace=namespace, plural="persistentvolumeclaims")):
        spec = pvc.get("spec") or {}
        pv = _read_quietly(ctx, kc.path(plural="persistentvolumes", name=spec["volumeName"])) \
            if spec.get("volumeName") else None
        cls = spec.get("storageClassName") or ""
        if cls and cls not in classes:
            classes[cls] = _read_quietly(ctx, kc.path(group="storage.k8s.io", plural="storageclasses", name=cls))
        out.append(claim_facts(pvc, pv, classes.get(cls)))
    return out


def _read_quietly(ctx: "Context", resource: str) -> dict[str, Any] | None:
    try:
        return kc.api(ctx).get_or_none(resource)
    except Exception as exc:  # noqa: BLE001 - 403 on a cluster-scoped read: the fact is just unknown
        if kc.api_status(exc) == 403:
            return None
        raise


def claim_path(namespace: str, name: str) -> str:
    return kc.path(namespace=namespace, plural="persistentvolumeclaims", name=name)


def release_claim(ctx: "Context", namespace: str, claim: dict[str, Any]) -> None:
    """Remove pvc-protection from a Terminating claim that no pod mounts: what the controller-manager's
    pvc-protection controller does, for when it does not run. resourceVersion makes it fail (409) if the
    claim changed since it was read."""
    keep = [f for f in claim["finalizers"] if f != PVC_PROTECTION]
    body = {"metadata": {"finalizers": keep, "resourceVersion": claim["resource_version"]}}
    kc.api(ctx).patch(claim_path(namespace, claim["name"]), body)


def namespace_conditions(ns: dict[str, Any] | None) -> list[str]:
    """The namespace controller's reasons a deletion has not finished (NamespaceContentRemaining, ...)."""
    found = []
    for cond in ((ns or {}).get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("message"):
            found.append(f"{cond.get('type')}: {cond['message']}")
    return found
