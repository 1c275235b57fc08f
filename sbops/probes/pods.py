"""The StackBill workloads: are the pods in the namespace Ready, and if not, why; restart counts;
rollout-restart of the Deployments behind broken pods.

Diagnosis is a pure function of the pod's JSON (and, for Pending pods, its events), tested from tables.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sbops.messages import pods as msg
from sbops.model import Change, Plan, Reason, Result
from sbops.probes import kubecommon as kc

if TYPE_CHECKING:
    from sbops.context import Context

IMAGE_PULL_STATES = frozenset({"ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"})
SIDECAR = "istio-proxy"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Most actionable first: image_pull has a fix of its own (ecr-refresh); crash_loop has a cause in the logs.
PRIORITY = (Reason.IMAGE_PULL, Reason.CRASH_LOOP, Reason.PENDING, Reason.NOT_READY)
MAX_EVENTS = 3
# A crash-looping container's last log lines: what `kubectl logs --previous --tail` shows, the usual first
# clue (a bad config, a refused database). Bounded in lines and bytes, for a few pods only.
LOG_LINES, LOG_BYTES, LOG_PODS = 5, 2048, 3
STUCK_AFTER = 60  # seconds past a pod's deletionTimestamp after which it counts as stuck terminating
KUBELET_NO_LOG = "unable to retrieve container logs for "  # the kubelet's answer when the log file is gone
# Container waiting reasons counted in pods.ready's evidence (`waiting`), the list kube-state-metrics uses;
# any other reason counts as "other", so the exporter's sbops_pods_waiting{reason} stays bounded.
WAITING_REASONS = ("ContainerCreating", "PodInitializing", "CrashLoopBackOff", "CreateContainerConfigError",
                   "CreateContainerError", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "other")


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _status(pod).get("conditions") or [])


def container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = _status(pod)
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def split_departing(pods: list[dict[str, Any]], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pods to judge, pods on their way out). A pod being deleted (a rollout's old pod, one ecr-refresh
    deleted) is leaving: judging it would report what was already dealt with. One still there STUCK_AFTER
    seconds past its deletion time (a finalizer, a node that does not answer) is judged: that is a problem."""
    judged, leaving = [], []
    for pod in pods:
        when = _parse_time(str(_meta(pod).get("deletionTimestamp") or ""))
        if when is not None and (now - when).total_seconds() <= STUCK_AFTER:
            leaving.append(pod)
        else:
            judged.append(pod)
    return judged, leaving


def diagnose_pod(pod: dict[str, Any]) -> dict[str, Any] | None:
    """None for a Ready (or finished) pod, else {name, phase, reason, container, detail} from container states."""
    status = _status(pod)
    phase = status.get("phase", "") or "Unknown"
    name = _meta(pod).get("name", "")
    if phase == "Succeeded" or is_ready(pod):
        return None
    found = {"name": name, "phase": phase}
    deleting = _meta(pod).get("deletionTimestamp")
    if deleting:  # past split_departing's grace: stuck
        finalizers = ", ".join(_meta(pod).get("finalizers") or []) or "none"
        return {**found, "reason": Reason.NOT_READY.value, "container": "",
                "detail": f"stuck terminating since {deleting} (finalizers: {finalizers}; is its node answering?)"}
    statuses = container_statuses(pod)
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_STATES:
            return {**found, "reason": Reason.IMAGE_PULL.value, "container": cs.get("name", ""),
                    "image": cs.get("image", ""),
                    "detail": f"{waiting['reason']}: {waiting.get('message', '') or cs.get('image', '')}"[:300]}
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") == "CrashLoopBackOff" or (terminated and terminated.get("exitCode", 0) != 0
                                                             and cs.get("restartCount", 0) > 0):
            term = last or terminated
            return {**found, "reason": Reason.CRASH_LOOP.value, "container": cs.get("name", ""),
                    "restarts": cs.get("restartCount", 0), "exit_code": term.get("exitCode"),
                    "last_termination": term.get("reason", "") or "",
                    "detail": f"CrashLoopBackOff: last exit {term.get('exitCode', '?')} "
                              f"({term.get('reason', '') or 'no reason'}), {cs.get('restartCount', 0)} restarts"}
    if phase == "Pending":
        scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        waits = [((cs.get("state") or {}).get("waiting") or {}).get("reason", "") for cs in statuses]
        detail = scheduled.get("message", "") or ", ".join(w for w in waits if w) or "not scheduled or not started"
        return {**found, "reason": Reason.PENDING.value, "container": "", "detail": detail[:300]}
    not_ready = [cs for cs in statuses if not cs.get("ready")]
    not_ready.sort(key=lambda cs: cs.get("name") != SIDECAR)  # name the sidecar when it is the one
    if not_ready:
        cs = not_ready[0]
        state = cs.get("state") or {}
        what = next(iter(state), "unknown")
        why = (state.get(what) or {}).get("reason", "") if isinstance(state.get(what), dict) else ""
        label = "Istio sidecar " if cs.get("name") == SIDECAR else "container "
        return {**found, "reason": Reason.NOT_READY.value, "container": cs.get("name", ""),
                "detail": f"{label}{cs.get('name', '')} not ready ({what}{': ' + why if why else ''})"}
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return {**found, "reason": Reason.NOT_READY.value, "container": "",
            "detail": (cond.get("message") or cond.get("reason") or f"phase {phase}, not Ready")[:300]}


def pod_counts(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """Evidence for dashboards: `desired` (pods that should be Ready: all but completed ones), `ready`, and
    `waiting` (pods with a container waiting, per reason of WAITING_REASONS; a pod counts once per reason)."""
    live = [p for p in pods if _status(p).get("phase") != "Succeeded"]
    waiting = dict.fromkeys(WAITING_REASONS, 0)
    for pod in live:
        reasons = {((cs.get("state") or {}).get("waiting") or {}).get("reason") for cs in container_statuses(pod)
                   if (cs.get("state") or {}).get("waiting") is not None}
        for reason in {r if r in waiting else "other" for r in reasons}:
            waiting[reason] += 1
    return {"desired": len(live), "ready": sum(1 for p in live if is_ready(p)), "waiting": waiting}


def latest_events(events: list[dict[str, Any]], limit: int = MAX_EVENTS) -> list[str]:
    """`Reason: message` of the newest events first (lastTimestamp, eventTime or creation time)."""

    def when(e: dict[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or _meta(e).get("creationTimestamp") or "")

    ordered = sorted(events, key=when, reverse=True)
    return [f"{e.get('reason', '')}: {e.get('message', '')}".strip()[:300] for e in ordered[:limit]]


def choose(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """The most actionable problem (PRIORITY order, then name for stability)."""
    order = {r.value: i for i, r in enumerate(PRIORITY)}
    return sorted(problems, key=lambda p: (order.get(p["reason"], len(order)), p["name"]))[0]


def judge_ready(namespace: str, pods: list[dict[str, Any]], problems: list[dict[str, Any]],
                terminating: int = 0) -> Result:
    """ok when every pod is Ready; otherwise the most actionable reason, with every failing pod in details.
    `terminating`: pods on their way out (split_departing), counted in the evidence, not judged."""
    counts = {**pod_counts(pods), "terminating": terminating}
    if not pods:
        return msg.NO_PODS.result(namespace=namespace, details={"namespace": namespace, "pods": [], **counts})
    if not problems:
        return msg.PODS_READY.result(count=len(pods), namespace=namespace,
                                     details={"namespace": namespace, "pods": len(pods), **counts})
    top = choose(problems)
    reason = Reason(top["reason"])
    same = [p["name"] for p in problems if p["reason"] == top["reason"]]
    others = len(problems) - len(same)
    args = {"count": len(same), "pods": ", ".join(same[:4]) + (f" and {len(same) - 4} more" if len(same) > 4 else ""),
            "more": f" (+{others} other not-ready pod(s))" if others else ""}
    details = {"namespace": namespace, "pods": len(pods), "not_ready": problems, **counts}
    if reason is Reason.IMAGE_PULL:
        return msg.PODS_CANNOT_PULL.result(details=details, fix="ecr-refresh", **args)
    if reason is Reason.CRASH_LOOP:
        logs = top.get("last_logs") or []
        return msg.PODS_CRASH_LOOPING.result(container=top["container"], exit_code=top.get("exit_code"),
                                             termination=top.get("last_termination") or "no reason",
                                             log=f"; last log line: {logs[-1]}" if logs else "",
                                             details=details, **args)
    if reason is Reason.PENDING:
        events = top.get("events") or []
        return msg.PODS_PENDING.result(why=(events[0] if events else top.get("detail", ""))[:300], details=details,
                                       **args)
    return msg.PODS_NOT_READY.result(why=str(top.get("detail", ""))[:300], details=details, **args)


# What the judgements of this module read of a pod (diagnose_pod, restarts, pod_counts, split_departing,
# selects): everything else (spec, managedFields, annotations, ...) is dropped as soon as a pod is decoded.
LEAN_META = ("name", "namespace", "labels", "deletionTimestamp", "finalizers")
LEAN_STATUS = ("phase", "conditions", "containerStatuses", "initContainerStatuses")


def lean_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The fields of a pod (API JSON) the judgements read, nothing else: judging lean_pod(p) gives the same
    findings as judging p (a unit table and an integration test pin it). At 5,000 pods a pod's managedFields
    and spec are most of its bytes; keeping them would hold tens of MB for nothing."""
    meta, status = _meta(pod), _status(pod)
    return {"metadata": {k: meta[k] for k in LEAN_META if k in meta},
            "status": {k: status[k] for k in LEAN_STATUS if k in status}}


PAGE = 500  # pods per list call, as kubectl's --chunk-size


def list_pods(ctx: "Context", namespace: str) -> list[dict[str, Any]]:
    """The namespace's pods, lean (lean_pod), listed once per run: pods.ready and pods.restarts (and the
    exporter's scrape, one Context each) judge the same list instead of asking the API server twice for
    every pod. A fix's re-check gets a fresh Context, so it lists again. Listed PAGE pods at a time (`limit`
    and continue tokens, as kubectl does), each page made lean before the next is read: the peak memory of
    a namespace of thousands of pods is one page of full objects, not all of them."""
    def fetch() -> list[dict[str, Any]]:
        api, resource = kc.api(ctx), kc.path(namespace=namespace, plural="pods")
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            page = api.get(resource, limit=PAGE, **({"continue": token} if token else {})) or {}
            found += [lean_pod(p) for p in page.get("items") or []]
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return found

    return ctx.shared(f"pods.list:{namespace}", fetch)


def pod_events(ctx: "Context", namespace: str, name: str) -> list[dict[str, Any]]:
    return kc.api(ctx).list(kc.path(namespace=namespace, plural="events"), field_selector=f"involvedObject.name={name}")


def log_tail(text: str, lines: int = LOG_LINES) -> list[str]:
    """The last `lines` non-empty lines of a log, each cut to 300 characters."""
    kept = [line.rstrip()[:300] for line in text.splitlines() if line.strip()]
    return kept[-lines:]


def last_logs(ctx: "Context", namespace: str, pod: str, container: str) -> list[str]:
    """The last lines of the container's latest run, as `kubectl logs --tail` shows them; [] when the kubelet has
    none. The latest run first: for a container waiting in CrashLoopBackOff that is the run that just crashed,
    while `previous` may name a run whose log the kubelet's garbage collection already removed (it answers
    200 with "unable to retrieve container logs ..." then). A log that cannot be read is said in the list, not
    raised: the diagnosis stands without it."""
    api = kc.api(ctx)
    resource = kc.path(namespace=namespace, plural="pods", name=pod) + "/log"
    for previous in ("false", "true"):
        try:
            text = api.text(resource, container=container, previous=previous, tailLines=LOG_LINES,
                            limitBytes=LOG_BYTES)
        except Exception as exc:  # noqa: BLE001 - e.g. 400 "container ... is waiting to start"
            if kc.api_status(exc) in (400, 404):
                continue
            return [f"(logs unavailable: {kc.api_failure_summary('read the log', exc)})"]
        lines = log_tail(text)
        if lines and not lines[-1].startswith(KUBELET_NO_LOG):
            return lines
    return []


def probe_ready(ctx: "Context") -> Result:
    ns = kc.namespace(ctx)
    try:
        pods, leaving = split_departing(list_pods(ctx, ns), datetime.now(timezone.utc))
        problems = [p for p in (diagnose_pod(pod) for pod in pods) if p is not None]
        for problem in [p for p in problems if p["reason"] == Reason.PENDING.value][:5]:
            problem["events"] = latest_events(pod_events(ctx, ns, problem["name"]))
        for problem in [p for p in problems if p["reason"] == Reason.CRASH_LOOP.value][:LOG_PODS]:
            problem["last_logs"] = last_logs(ctx, ns, problem["name"], problem["container"])
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"list pods in {ns}", exc)
    return judge_ready(ns, pods, problems, terminating=len(leaving))


# -- pods.restarts ---------------------------------------------------------------------------------
def restarts(pods: list[dict[str, Any]], threshold: int) -> list[dict[str, Any]]:
    """Containers that restarted more than `threshold` times, most restarts first."""
    found = []
    for pod in pods:
        for cs in container_statuses(pod):
            count = int(cs.get("restartCount") or 0)
            if count > threshold:
                last = (cs.get("lastState") or {}).get("terminated") or {}
                found.append({"pod": _meta(pod).get("name", ""), "container": cs.get("name", ""), "restarts": count,
                              "last_termination": last.get("reason", "") or "", "exit_code": last.get("exitCode")})
    return sorted(found, key=lambda f: (-f["restarts"], f["pod"], f["container"]))


def judge_restarts(namespace: str, found: list[dict[str, Any]], threshold: int) -> Result:
    details = {"namespace": namespace, "threshold": threshold}
    if not found:
        return msg.RESTARTS_NORMAL.result(namespace=namespace, threshold=threshold, details=details)
    top = found[0]
    last = f", last {top['last_termination']} exit {top['exit_code']}" if top["last_termination"] else ""
    return msg.CONTAINERS_RESTARTING.result(count=len(found), threshold=threshold, pod=top["pod"],
                                            container=top["container"], restarts=top["restarts"], last=last,
                                            details={**details, "containers": found})


def probe_restarts(ctx: "Context") -> Result:
    ns = kc.namespace(ctx)
    threshold = int(ctx.settings["pods.restart_threshold"])
    try:
        pods = list_pods(ctx, ns)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"list pods in {ns}", exc)
    return judge_restarts(ns, restarts(pods, threshold), threshold)


# -- restart-workload ------------------------------------------------------------------------------
def selects(deployment: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether the Deployment's selector (matchLabels; matchExpressions In/NotIn/Exists) matches the pod."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    labels = _meta(pod).get("labels") or {}
    match = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not match and not exprs:
        return False
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in exprs:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def restart_targets(deployments: list[dict[str, Any]], problems: list[dict[str, Any]],
                    pods: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Deployments to restart (their pods crash-loop or are not Ready) and notes for pods a restart won't help."""
    by_name = {_meta(p).get("name"): p for p in pods}
    targets: list[str] = []
    notes: list[str] = []
    for problem in problems:
        if problem["reason"] == Reason.IMAGE_PULL.value:
            notes.append(f"pod {problem['name']} cannot pull its image: a restart does not help; "
                         "run `sbops fix ecr-refresh`")
            continue
        if problem["reason"] == Reason.PENDING.value:
            notes.append(f"pod {problem['name']} is Pending (not scheduled): a restart does not help; see pods.ready")
            continue
        pod = by_name.get(problem["name"]) or {}
        owners = [_meta(d).get("name", "") for d in deployments if selects(d, pod)]
        if not owners:
            notes.append(f"pod {problem['name']} belongs to no Deployment: delete it by hand if it should go")
        for owner in owners:
            if owner not in targets:
                targets.append(owner)
    return sorted(targets), notes


def restart_patch(now: datetime) -> dict[str, Any]:
    """What `kubectl rollout restart` patches: the pod template's restartedAt annotation (RFC 3339)."""
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def plan_restart(ctx: "Context", *, workload: str | None = None) -> Plan:
    ns = kc.namespace(ctx)
    target = workload
    try:
        api = kc.api(ctx)
        if target:
            if api.get_or_none(kc.path(group="apps", namespace=ns, plural="deployments", name=target)) is None:
                return Plan(blockers=(f"no Deployment {target} in namespace {ns} (`kubectl get deploy -n {ns}`)",))
            targets, notes = [target], []
        else:
            deployments = api.list(kc.path(group="apps", namespace=ns, plural="deployments"))
            pods, _ = split_departing(list_pods(ctx, ns), datetime.now(timezone.utc))
            problems = [p for p in (diagnose_pod(pod) for pod in pods) if p is not None]
            targets, notes = restart_targets(deployments, problems, pods)
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kc.api_failure_summary(f"read the workloads in {ns}", exc),))
    if not targets:
        return Plan(notes=tuple(notes), nothing_to_do=f"no Deployment in {ns} has crash-looping or not-Ready pods")
    changes = tuple(Change(f"via the Kubernetes API: rollout-restart Deployment {name} in {ns} (new pods replace the "
                           "old ones; waits for the rollout)", (),
                           apply=_restart_applier(ctx, ns, name)) for name in targets)
    return Plan(changes=changes, notes=tuple(notes))


def rollout_progress(deployment: dict[str, Any]) -> tuple[bool, str]:
    """(done, what is left) of a Deployment's rollout, by the rules of `kubectl rollout status`: the controller
    saw the latest spec, every replica runs the new template and is available, and no old replica is left."""
    spec, status = deployment.get("spec") or {}, _status(deployment)
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    if int(status.get("observedGeneration") or 0) < int(_meta(deployment).get("generation") or 0):
        return False, "the Deployment controller has not seen the change yet"
    updated, total = int(status.get("updatedReplicas") or 0), int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return False, f"{updated} of {want} new replica(s) created"
    if total > updated:
        return False, f"{total - updated} old replica(s) pending termination"
    if available < updated:
        return False, f"{available} of {updated} new replica(s) available"
    return True, f"{updated} new replica(s) available"


def wait_rollout(ctx: "Context", ns: str, name: str, timeout: float, poll: float = 1.0) -> tuple[bool, str]:
    """Poll the Deployment until its rollout is done or `timeout` seconds pass; (done, last progress)."""
    import time

    resource = kc.path(group="apps", namespace=ns, plural="deployments", name=name)
    end = time.monotonic() + timeout
    while True:
        done, left = rollout_progress(kc.api(ctx).get(resource))
        if done or time.monotonic() >= end:
            return done, left
        time.sleep(min(poll, max(0.0, end - time.monotonic())))


def _restart_applier(ctx: "Context", ns: str, name: str) -> Any:
    """Patch the template (what `kubectl rollout restart` does), then wait for the rollout as `kubectl rollout
    status` would, so the fix's re-check judges the new pods, not the old ones still being replaced. A rollout
    still going at pods.rollout_timeout is left to run: the re-check then says what is not Ready yet."""
    def apply() -> None:
        kc.api(ctx).patch(kc.path(group="apps", namespace=ns, plural="deployments", name=name),
                          restart_patch(datetime.now(timezone.utc)))
        wait_rollout(ctx, ns, name, float(ctx.settings["pods.rollout_timeout"]))

    return apply
