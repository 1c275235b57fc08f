"""The probe pod: when sbops cannot enter a pod sandbox, one short-lived pod per run makes the connections.

One pod serves the run's five netpath checks (ctx.shared, like the sandbox the node path finds): it tries
every target at once, TCP to MySQL, MongoDB, RabbitMQ and NFS and HTTP to the routed Services, so a doctor
run starts one pod, not five. The parent creates it in the StackBill namespace with the namespace's pull
secret (setting `ecr.secret`), polls it until it ends or the check's budget is spent, reads its log through
the API and deletes it: always, on a timeout and a failed pull too. A pod that sbops could not delete (sbops
was killed, the API went away) is stopped by the kubelet at its activeDeadlineSeconds, and the next run
deletes it when it has ended (label app.kubernetes.io/managed-by=sbops, component netpath-probe).

What the pod cannot do: log in. Its spec is readable by anyone who may read pods, so no password goes into
it, and busybox speaks neither MySQL's nor AMQP's protocol; the results say that the logins need sbops on
the node.

RBAC: create, get, list and delete on pods, get on pods/log, in the StackBill namespace (list only for the
clean-up of earlier runs' pods; without it the clean-up is skipped).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sbops.model import Reason
from sbops.probes.netpath import podscript
from sbops.probes.netpath.podscript import Probe

if TYPE_CHECKING:
    from sbops.context import Context

POLL = 0.25
FINISH_ALLOWANCE = 0.6  # seconds kept back from the budget to read the log and delete the pod
NAME_PREFIX = "sbops-netpath-"


@dataclass(frozen=True)
class PodRun:
    """What the probe pod gave: the attempts by probe id, or why there are none (`failure`: a Reason value,
    `verb` the API call that was refused for no_access / access_denied)."""

    namespace: str
    name: str
    image: str
    timeout: int = 1  # each attempt's timeout in the pod, whole seconds
    budget: float = 0.0  # what the pod was given, creation to deletion
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str = ""
    why: str = ""
    verb: str = ""
    deleted: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def pod(self) -> str:
        """How the results name it: namespace/name and the way it tested."""
        return f"{self.namespace}/{self.name} (probe pod)"

    def brief(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "image": self.image, "deleted": self.deleted,
                **self.evidence}


def pod_name() -> str:
    """A name no other run uses: the prefix and eight random hex digits."""
    return NAME_PREFIX + secrets.token_hex(4)


def forbidden(exc: BaseException) -> bool:
    from sbops.probes import kubecommon as kc

    return kc.api_status(exc) in (401, 403)


def run_pod(ctx: "Context", probes: list[Probe], timeout: float, budget: float) -> PodRun:
    """Start the probe pod, wait for its lines within `budget` seconds, read them and delete the pod.

    API errors other than a refusal (401/403, which become failure no_access) propagate: the caller reports
    them as the shared API finding."""
    from sbops.probes import kubecommon as kc

    started = time.monotonic()
    api, namespace = kc.api(ctx), kc.namespace(ctx)
    image, secret = str(ctx.settings["netpath.probe_image"]), str(ctx.settings["ecr.secret"])
    name = pod_name()
    script = podscript.build_script(probes, timeout)
    body = podscript.manifest(name, namespace, image, secret, script, budget)
    pods = kc.path(namespace=namespace, plural="pods")
    run = PodRun(namespace, name, image, timeout=podscript.whole_seconds(timeout), budget=budget)
    try:
        created = api.create(pods, body)
    except Exception as exc:  # noqa: BLE001 - a refusal is a skip; anything else is the caller's API finding
        if forbidden(exc):
            return replace(run, failure=Reason.NO_ACCESS.value, verb="create", why=kc.api_error(exc))
        raise
    try:
        run = wait_and_read(ctx, run, created, started + max(0.2, budget - FINISH_ALLOWANCE), probes)
    finally:
        run = delete(ctx, run)
    if time.monotonic() < started + budget - FINISH_ALLOWANCE / 2:
        clean_up(ctx, namespace, keep=name)
    return run


def wait_and_read(ctx: "Context", run: PodRun, pod: dict[str, Any], deadline: float, probes: list[Probe]) -> PodRun:
    """Poll the pod until it ends, cannot start, or `deadline`; then its log's attempts."""
    from sbops.probes import kubecommon as kc

    api = kc.api(ctx)
    resource = kc.path(namespace=run.namespace, plural="pods", name=run.name)
    state = podscript.read_state(pod)
    while not (state.done or state.failure):
        if time.monotonic() >= deadline:
            reason = podscript.not_started_reason(state)
            return replace(run, failure=reason.value, why=state.why, evidence=placement(pod))
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        try:
            pod = api.get(resource)
        except Exception as exc:  # noqa: BLE001
            if forbidden(exc):
                return replace(run, failure=Reason.NO_ACCESS.value, verb="get", why=kc.api_error(exc))
            raise
        state = podscript.read_state(pod)
    if state.failure:
        return replace(run, failure=state.failure, why=state.why, evidence=placement(pod))
    try:
        text = api.text(f"{resource}/log", container=podscript.CONTAINER)
    except Exception as exc:  # noqa: BLE001
        if forbidden(exc):
            return replace(run, failure=Reason.NO_ACCESS.value, verb="get pods/log", why=kc.api_error(exc),
                           evidence=placement(pod))
        raise
    attempts, complete = podscript.parse_log(text, probes)
    evidence = {**placement(pod), "phase": state.phase, "complete": complete}
    missing = [p.id for p in probes if p.id not in attempts]
    if missing:
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return replace(run, attempts=attempts, failure=Reason.MISCONFIGURED.value,
                       why=f"the pod ended ({state.phase}) without a line for {', '.join(missing)}; its last line: "
                           f"{last[0][:200]}", evidence=evidence)
    return replace(run, attempts=attempts, evidence=evidence)


def placement(pod: dict[str, Any]) -> dict[str, Any]:
    """Where the pod ran (node, address): evidence that it took a pod's path."""
    status = pod.get("status") or {}
    return {"node": (pod.get("spec") or {}).get("nodeName") or "", "pod_ip": status.get("podIP") or ""}


def delete(ctx: "Context", run: PodRun) -> PodRun:
    """Delete the probe pod at once (grace period 0); say whether the API took the request.

    A pod that has ended goes at once anyway; one that never started (its image does not pull) would stay
    until the kubelet confirms, which a kubelet busy backing off a pull takes its time over. Nothing depends
    on the probe pod's name or state, and the kubelet kills whatever it still runs of a pod the API no
    longer has, so sbops does not wait for that confirmation."""
    from sbops.probes import kubecommon as kc

    resource = kc.path(namespace=run.namespace, plural="pods", name=run.name)
    try:
        kc.api(ctx).request("DELETE", resource, query={"gracePeriodSeconds": 0})
    except Exception as exc:  # noqa: BLE001 - the finding stands; the evidence says the pod is left
        if kc.api_status(exc) == 404:
            return replace(run, deleted=True)
        return replace(run, deleted=False, evidence={**run.evidence, "delete_error": kc.api_error(exc)})
    return replace(run, deleted=True)


def clean_up(ctx: "Context", namespace: str, keep: str) -> None:
    """Delete earlier runs' probe pods that have ended (sbops was stopped before it could): best effort."""
    from sbops.probes import kubecommon as kc

    api = kc.api(ctx)
    try:
        for pod in api.list(kc.path(namespace=namespace, plural="pods"), label_selector=podscript.SELECTOR):
            name = (pod.get("metadata") or {}).get("name") or ""
            ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if name.startswith(NAME_PREFIX) and name != keep and ended:
                api.delete(kc.path(namespace=namespace, plural="pods", name=name), ignore_missing=True)
    except Exception:  # noqa: BLE001 - no list permission or a flaky API: the kubelet has stopped them anyway
        return
