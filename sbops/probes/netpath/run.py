"""The netpath probes: find a pod to test from, find what it is configured to reach, connect from inside it.

Each check says honestly when it cannot test (a `skip`, never a pass): sbops is not root, no containerd state
is visible (sbops does not run on the node), or no running pod with a network namespace of its own is there.
In the first two cases, setting `netpath.probe_image` names an image for a short-lived probe pod that makes
TCP and HTTP attempts instead (sbops.probes.netpath.probepod); when that pod cannot run either, the checks
skip with the reason. The pod (found or started) and the Helm values are looked up once per run and shared
by the five checks.

Time: the check's budget is the run's network timeout (Context.net_timeout, a little under setting
`timeout`). What the API lookups leave of it goes to the child; each connection attempt inside it is bounded
by setting `netpath.attempt_timeout` and by the child's deadline, and the parent kills the child when the
budget is spent.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from sbops.messages import netpath as msg
from sbops.model import Reason, Result
from sbops.probes.netpath import judge, podscript, probepod, sandbox, targets
from sbops.probes.netpath.enter import EnterFailed, attempts_budget, run_in_netns

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.messages.netpath import Common

COMMON: dict[str, "Common"] = {"mysql": msg.MYSQL_COMMON, "mongodb": msg.MONGO_COMMON,
                               "rabbitmq": msg.RABBIT_COMMON, "nfs": msg.NFS_COMMON,
                               "services": msg.SERVICES_COMMON}
KIND = {"mysql": "mysql", "mongodb": "mongodb", "rabbitmq": "rabbitmq", "nfs": "tcp", "services": "http"}
DEFAULT_USERS = {"mysql": "stackbill", "mongodb": "", "rabbitmq": "stackbill"}
MIN_BUDGET = 0.5
PROBE_POD = "probe pod"  # where_to_test's answer when a probe pod (setting netpath.probe_image) tests instead
SERVICE_PROBES = ("mysql", "mongodb", "rabbitmq", "nfs")


def where_to_test(ctx: "Context", common: "Common") -> Result | sandbox.Located | str:
    """The sandbox to test from (shared by the run's netpath checks), PROBE_POD when sbops cannot enter one but
    setting netpath.probe_image names an image, or the skip that says why there is neither."""
    from sbops.probes import kubecommon as kc

    image = str(ctx.settings["netpath.probe_image"])
    if os.geteuid() != 0:
        return PROBE_POD if image else common.not_root.result(uid=os.geteuid())
    dirs = sandbox.split_dirs(str(ctx.settings["netpath.containerd_state"]))
    try:
        located = ctx.shared("netpath.located", lambda: sandbox.locate(ctx, dirs))
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure("list the pods of this node's sandboxes", exc)
    if not located.state_dir:
        if image:
            return PROBE_POD
        return common.no_state.result(dirs=", ".join(dirs) or "(none configured)", details={"looked_in": dirs})
    if located.sandbox is None:
        return common.no_pod.result(why=located.why_none(), details=located.evidence())
    return located


def pod_evidence(located: sandbox.Located) -> dict[str, Any]:
    assert located.sandbox is not None
    return {**located.sandbox.brief(), "ready": sandbox.pod_ready(located.pod or {})}


def configured_target(ctx: "Context", service: str, evidence: dict[str, Any]) -> "targets.Target | Result":
    """The address the pods are configured to reach `service` at (the Helm values, else the credentials file),
    or the result that says why there is none; the same for the sandbox and the probe-pod ways in."""
    from sbops.probes import kubecommon as kc

    try:
        target = targets.target(ctx, service)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"read the Helm release {ctx.settings['release']}'s values", exc)
    if target is None:
        return COMMON[service].no_target.result(why=f"neither the Helm release's values nor a credentials file name "
                                                    f"{service}'s address", details=evidence)
    return target


def enter(located: sandbox.Located, request: dict[str, Any], budget: float, common: "Common",
          details: dict[str, Any]) -> dict[str, Any] | Result:
    """The child's answer from inside the pod's network namespace, or the skip that says why it could not run."""
    assert located.sandbox is not None
    try:
        return run_in_netns(located.sandbox.netns, located.netns_inode, request, budget)
    except EnterFailed as exc:
        return common.probe_failed.result(pod=located.pod_name, error=str(exc), reason=Reason(exc.reason),
                                          details=details)


def budget_left(ctx: "Context", started: float) -> float:
    return max(MIN_BUDGET, ctx.net_timeout - (time.monotonic() - started))


def attempt_timeout(ctx: "Context", budget: float) -> float:
    """Each attempt's timeout: setting netpath.attempt_timeout, never more than the child's share of the budget
    (so a `timeout` finding always means the server stayed silent that long)."""
    return min(float(ctx.settings["netpath.attempt_timeout"]), attempts_budget(budget))


def login_for(ctx: "Context", service: str) -> tuple[str, dict[str, str]]:
    """(who, the child's login) from the credentials file: MySQL needs its password (NeedsCredentials
    otherwise); MongoDB and RabbitMQ without one are only asked to answer their protocol."""
    user = ctx.service(service).username or DEFAULT_USERS.get(service, "")
    if service == "mysql":
        return user, {"user": user, "password": ctx.password("mysql").reveal()}
    password = ctx.service(service).password
    if not (user and password):
        return user or "(no user)", {}
    return user, {"user": user, "password": password.reveal()}


def probe_service(ctx: "Context", service: str) -> Result:
    """netpath.mysql / mongodb / rabbitmq / nfs: one connection to the address the pods are configured with."""

    started = time.monotonic()
    common = COMMON[service]
    gate = where_to_test(ctx, common)
    if isinstance(gate, Result):
        return gate
    if gate == PROBE_POD:
        return probe_pod_service(ctx, service, started)
    assert isinstance(gate, sandbox.Located)
    located = gate
    target = configured_target(ctx, service, {"tested_from": located.evidence()})
    if isinstance(target, Result):
        return target
    who, login = login_for(ctx, service) if service != "nfs" else ("", {})
    budget = budget_left(ctx, started)
    timeout = attempt_timeout(ctx, budget)
    details: dict[str, Any] = {"pod": pod_evidence(located), "target": target.brief(), "timeout_seconds": timeout,
                               "tested_from": located.evidence()}
    request = {"kind": KIND[service], "targets": [{"host": target.host, "port": target.port}], "timeout": timeout,
               "login": login}
    answer = enter(located, request, budget, common, details)
    if isinstance(answer, Result):
        return answer
    attempt = answer["attempts"][0]
    details["attempts"] = answer["attempts"]
    return judge.JUDGES[service](located.pod_name, target, attempt, who=who, timeout=timeout,
                                 local=ctx.is_local(target.host), details=details)


def probe_services(ctx: "Context") -> Result:
    """netpath.services: HTTP to each Service the VirtualService routes to, at its ClusterIP:port."""
    from sbops.probes import kubecommon as kc

    started = time.monotonic()
    common = COMMON["services"]
    gate = where_to_test(ctx, common)
    if isinstance(gate, Result):
        return gate
    if gate == PROBE_POD:
        return probe_pod_services(ctx, started)
    assert isinstance(gate, sandbox.Located)
    located = gate
    namespace, vs = kc.namespace(ctx), str(ctx.settings["istio.virtualservice"])
    try:
        routes, found, untestable = routed(ctx)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"read VirtualService {namespace}/{vs} and its Services", exc)
    if not routes:
        return msg.SERVICES_NO_ROUTES.result(virtualservice=vs, namespace=namespace,
                                             details={"tested_from": located.evidence()})
    if not found:
        return common.no_target.result(why="; ".join(untestable), details={"untestable": untestable})
    budget = budget_left(ctx, started)
    timeout = attempt_timeout(ctx, budget)
    details: dict[str, Any] = {"pod": pod_evidence(located), "targets": [t.brief() | {"service": t.key} for t in found],
                               "timeout_seconds": timeout, "tested_from": located.evidence()}
    request = {"kind": "http", "targets": [{"host": t.host, "port": t.port} for t in found], "timeout": timeout}
    answer = enter(located, request, budget, common, details)
    if isinstance(answer, Result):
        return answer
    details["attempts"] = answer["attempts"]
    return judge.judge_services(located.pod_name, found, answer["attempts"], untestable, details)



def routed(ctx: "Context") -> tuple[list[targets.Route], list[targets.Target], list[str]]:
    """targets.services, once per run (the probe pod needs the Services' addresses too)."""
    return ctx.shared("netpath.services", lambda: targets.services(ctx))


# ======================================================================================================
# The probe pod (setting netpath.probe_image): one per run, TCP and HTTP only
# ======================================================================================================
def pod_probes(ctx: "Context") -> list[podscript.Probe]:
    """Every attempt the run's probe pod makes: each service's address (TCP) and each routed Service (HTTP).
    A target that cannot be read is left out here; its own check reports why."""
    probes: list[podscript.Probe] = []
    for service in SERVICE_PROBES:
        try:
            target = targets.target(ctx, service)
        except Exception:  # noqa: BLE001 - reported by the service's own check
            continue
        if target is not None and podscript.safe_host(target.host):
            probes.append(podscript.Probe(service, "tcp", target.host, target.port))
    try:
        _, found, _ = routed(ctx)
    except Exception:  # noqa: BLE001 - reported by netpath.services
        found = []
    probes += [podscript.Probe(f"services.{i}", "http", t.host, t.port) for i, t in enumerate(found)]
    return probes


def pod_timeout(ctx: "Context", budget: float) -> float:
    """Each attempt's timeout in the probe pod: setting netpath.attempt_timeout, at most half the budget (the
    pod must also be scheduled and started), at least the one second busybox can count."""
    return min(float(ctx.settings["netpath.attempt_timeout"]), max(1.0, budget / 2))


def pod_run(ctx: "Context", started: float) -> probepod.PodRun:
    """The run's probe pod (started by the first netpath check that needs it, within what the API lookups
    leave of that check's budget)."""

    def start() -> probepod.PodRun:
        probes = pod_probes(ctx)
        budget = budget_left(ctx, started)
        return probepod.run_pod(ctx, probes, pod_timeout(ctx, budget), budget)

    return ctx.shared("netpath.probe_pod", start)


def pod_failure(common: "Common", run: probepod.PodRun, secret: str, details: dict[str, Any]) -> Result:
    """The skip for a probe pod that gave no answer, by its failure (pure; `secret`: setting ecr.secret)."""
    if run.failure == Reason.NO_ACCESS.value:
        return common.pod_forbidden.result(verb=run.verb or "create", namespace=run.namespace, error=run.why,
                                           details=details)
    if run.failure == Reason.IMAGE_PULL.value:
        return common.pod_image.result(pod=run.pod, image=run.image, why=run.why,
                                       secret=secret, details=details)
    if run.failure in (Reason.PENDING.value, Reason.TIMEOUT.value):
        return common.pod_not_started.result(pod=run.pod, budget=round(run.budget, 1), why=run.why,
                                             reason=Reason(run.failure), details=details)
    why = f"its container cannot start: {run.why}" if run.failure == Reason.NOT_RUNNING.value else \
        (run.why or "it gave no answer")
    reason = Reason(run.failure) if run.failure else Reason.MISCONFIGURED
    return common.pod_no_answer.result(pod=run.pod, why=why, image=run.image, reason=reason, details=details)


def probe_pod_service(ctx: "Context", service: str, started: float) -> Result:
    """netpath.mysql / mongodb / rabbitmq / nfs from the run's probe pod: TCP to the configured address."""
    from sbops.probes import kubecommon as kc

    common = COMMON[service]
    target = configured_target(ctx, service, {"via": PROBE_POD})
    if isinstance(target, Result):
        return target
    if not podscript.safe_host(target.host):
        return common.no_target.result(why=f"{service}'s address {target.host!r} is neither an IP address nor a "
                                           "DNS name", details={"via": PROBE_POD, "target": target.brief()})
    try:
        run = pod_run(ctx, started)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"run a probe pod in {kc.namespace(ctx)}", exc)
    details: dict[str, Any] = {"via": PROBE_POD, "probe_pod": run.brief(), "target": target.brief(),
                               "timeout_seconds": run.timeout}
    attempt = run.attempts.get(service)
    if attempt is None:
        return pod_failure(common, run, str(ctx.settings["ecr.secret"]), details)
    details["attempts"] = [attempt]
    return judge.judge_tcp_only(service, run.pod, target, attempt, timeout=run.timeout,
                                local=ctx.is_local(target.host), details=details)


def probe_pod_services(ctx: "Context", started: float) -> Result:
    """netpath.services from the run's probe pod: HTTP to each routed Service's ClusterIP:port."""
    from sbops.probes import kubecommon as kc

    common = COMMON["services"]
    namespace, vs = kc.namespace(ctx), str(ctx.settings["istio.virtualservice"])
    try:
        routes, found, untestable = routed(ctx)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"read VirtualService {namespace}/{vs} and its Services", exc)
    if not routes:
        return msg.SERVICES_NO_ROUTES.result(virtualservice=vs, namespace=namespace, details={"via": PROBE_POD})
    if not found:
        return common.no_target.result(why="; ".join(untestable), details={"untestable": untestable})
    try:
        run = pod_run(ctx, started)
    except Exception as exc:  # noqa: BLE001
        return kc.api_failure(f"run a probe pod in {namespace}", exc)
    details: dict[str, Any] = {"via": PROBE_POD, "probe_pod": run.brief(),
                               "targets": [t.brief() | {"service": t.key} for t in found],
                               "timeout_seconds": run.timeout}
    attempts = [run.attempts.get(f"services.{i}") for i in range(len(found))]
    if any(a is None for a in attempts):
        return pod_failure(common, run, str(ctx.settings["ecr.secret"]), details)
    details["attempts"] = attempts
    return judge.judge_services(run.pod, found, attempts, untestable, details)  # type: ignore[arg-type]
