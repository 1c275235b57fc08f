"""`sbops doctor --cluster`: every node's checks from the node's sbops agent, merged with the cluster-wide
checks run here, into one report.

The agents are the chart's DaemonSet pods (settings cluster.namespace, cluster.agent_selector). Each is asked
for `/results` (the doctor's JSON, sbops.exporter.server) through the API server's pod proxy, with the kube
client's own authentication, all at once, each within cluster.agent_timeout. Node-level checks (the layers of
cluster.node_layers) get one row per node; a node whose agent does not answer, is not Running or does not
exist gets an `error` on each of its rows saying why, never a gap.

Reading the pods and nodes and asking the agents is I/O (`observe`, `ask`); what rows the report gets from
what was seen is pure (`placement`, `judge_reply`, `merge`) and table-tested (tests/unit/test_cluster.py).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from sbops.engine import Outcome
from sbops.messages import engine as msg
from sbops.model import Reason, Result, result_from_json
from sbops.registry import LAYERS

if TYPE_CHECKING:
    from sbops.kube import KubeApi
    from sbops.registry import Check

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"  # the agent fits its run inside it (exporter deadline)


@dataclass(frozen=True)
class Agent:
    node: str
    pod: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    ip: str


@dataclass(frozen=True)
class Reply:
    """What asking one agent gave: its document, or why there is none (a Result saying so)."""

    agent: Agent
    document: dict[str, Any] | None = None
    problem: Result | None = None


# -- pure -------------------------------------------------------------------------------------------------

def _running_first(pod: dict[str, Any]) -> tuple[int, str]:
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return (0 if phase == "Running" and not deleting else 1, (pod.get("metadata") or {}).get("name") or "")


def placement(pods: Iterable[dict[str, Any]], nodes: Iterable[str]) -> tuple[dict[str, Agent], list[str]]:
    """The agent of each node (a Running one when the node has several, e.g. during a rollout) and the nodes
    with none. Pods not scheduled yet belong to no node and are left out; a pod on a node the API does not list
    (just deleted) still reports."""
    chosen: dict[str, Agent] = {}
    for pod in sorted(pods, key=_running_first):
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node or node in chosen:
            continue
        status = pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase == "Running" and (pod.get("metadata") or {}).get("deletionTimestamp"):
            phase = "Terminating"
        chosen[node] = Agent(node, pod["metadata"]["name"], phase, status.get("podIP") or "")
    missing = sorted(set(nodes) - set(chosen))
    return dict(sorted(chosen.items())), missing


def judge_reply(agent: Agent, status: int | None, body: str, error: str = "", timed_out: bool = False) -> Reply:
    """One agent's answer through the pod proxy: a document, or an error Result naming why.

    `status` None: no HTTP answer at all (`error` says why; `timed_out` when the per-agent timeout passed). When
    the API server cannot reach the pod it answers 500 (1.20) or 503 with a Status object whose message says
    "error trying to reach service: dial tcp IP:PORT: connect: connection refused" (or "i/o timeout")."""
    def problem(reason: Reason, why: str) -> Reply:
        return Reply(agent, problem=msg.AGENT_NO_ANSWER.result(reason=reason, node=agent.node, pod=agent.pod, why=why,
                                                                  details={"pod": agent.pod, "pod_ip": agent.ip}))

    if status is None:
        return problem(Reason.TIMEOUT if timed_out else Reason.UNREACHABLE, error or "no answer")
    text = " ".join(body.split())[:300]
    if status == 200:
        try:
            document = json.loads(body)
        except ValueError:
            return problem(Reason.INTERNAL, f"HTTP 200 but not JSON: {text[:80]!r}")
        if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
            return problem(Reason.INTERNAL, "HTTP 200 but not a doctor document (no checks)")
        return Reply(agent, document=document)
    text = status_message(body) or text
    lowered = text.lower()
    dialing = "error trying to reach service" in lowered or status in (502, 503, 504)
    if dialing and "connection refused" in lowered:
        return problem(Reason.REFUSED, f"HTTP {status}: nothing listens on the agent's port ({text})")
    if dialing and ("timeout" in lowered or "deadline" in lowered or "timed out" in lowered):
        return problem(Reason.TIMEOUT, f"HTTP {status}: {text}")
    if dialing and ("no route" in lowered or "unreachable" in lowered):
        return problem(Reason.UNREACHABLE, f"HTTP {status}: {text}")
    if status in (401, 403):
        return problem(Reason.ACCESS_DENIED, f"HTTP {status}: {text} (the pod proxy needs get on pods/proxy; an "
                                             f"agent with basic auth refuses a proxied request)")
    if status == 404:
        return problem(Reason.MISSING, f"HTTP 404: {text} (an agent older than /results, or the pod is gone)")
    if status == 400:
        return problem(Reason.MISCONFIGURED, f"HTTP 400: {text} (the agent's exporter.layers lacks a layer of "
                                             f"cluster.node_layers)")
    return problem(Reason.UNREACHABLE, f"HTTP {status}: {text}")


def status_message(body: str) -> str:
    """The message of a Kubernetes Status object (how the API server words a proxy failure), else ""."""
    try:
        found = json.loads(body)
    except ValueError:
        return ""
    if isinstance(found, dict) and found.get("kind") == "Status":
        return " ".join(str(found.get("message") or "").split())[:300]
    return ""


def merge(checks: list["Check"], agents: dict[str, Agent], missing: list[str], replies: dict[str, Reply],
          namespace: str, selector: str) -> list[Outcome]:
    """One outcome per node-level check per node (nodes in name order, under each check), from the agents'
    replies: a node without an agent, or whose agent did not answer, gets an error on each row saying why."""
    nodes = sorted([*agents, *missing])
    out: list[Outcome] = []
    for item in checks:
        for node in nodes:
            if node in missing:
                result = msg.NO_AGENT.result(node=node, selector=selector, namespace=namespace)
                out.append(Outcome(item, result, 0.0, node=node))
                continue
            agent = agents[node]
            reply = replies.get(node)
            if agent.phase != "Running":
                result = msg.AGENT_NOT_RUNNING.result(node=node, pod=agent.pod, phase=agent.phase)
                out.append(Outcome(item, result, 0.0, node=node))
                continue
            if reply is None or reply.problem is not None:
                result = reply.problem if reply is not None and reply.problem is not None else \
                    msg.AGENT_NO_ANSWER.result(reason=Reason.INTERNAL, node=node, pod=agent.pod, why="not asked")
                out.append(Outcome(item, result, 0.0, node=node))
                continue
            entries = [e for e in (reply.document or {}).get("checks", []) if not e.get("added_as_related")]
            entry = next((e for e in entries if e.get("id") == item.id), None)
            if entry is None:
                reported = ", ".join(sorted({str(e.get("layer")) for e in entries})) or "nothing"
                out.append(Outcome(item, msg.AGENT_OMITTED.result(node=node, pod=agent.pod, reported=reported), 0.0,
                                   node=node))
                continue
            try:
                result = result_from_json(entry)
            except (KeyError, ValueError, TypeError) as exc:
                result = msg.AGENT_NO_ANSWER.result(reason=Reason.INTERNAL, node=node, pod=agent.pod,
                                                    why=f"unreadable result: {type(exc).__name__}")
            out.append(Outcome(item, result, float(entry.get("duration_seconds") or 0.0), node=node))
    return out


def unlisted(checks: list["Check"], namespace: str, reason: Reason, why: str) -> list[Outcome]:
    """The nodes and agents could not be listed: one error row per node-level check (node "?"), never none."""
    result = msg.AGENTS_NOT_LISTED.result(reason=reason, namespace=namespace, why=why)
    return [Outcome(item, result, 0.0, node="?") for item in checks]


def in_report_order(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Layers in LAYERS' order; within a layer the order given (check, then node)."""
    return sorted(outcomes, key=lambda o: LAYERS.index(o.check.layer))


def node_layers(setting: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in setting.split(",") if part.strip())


# -- I/O ----------------------------------------------------------------------------------------------------

def observe(api: "KubeApi", namespace: str, selector: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The agent pods and the node names (ApiException on a refusal: the caller reports it)."""
    pods = api.list(f"/api/v1/namespaces/{namespace}/pods", label_selector=selector)
    nodes = [n["metadata"]["name"] for n in api.list("/api/v1/nodes")]
    return pods, nodes


def ask(api: "KubeApi", namespace: str, agent: Agent, scheme: str, port: int, layers: Iterable[str],
        patterns: Iterable[str], timeout: float) -> Reply:
    """GET /results of one agent through the API server's pod proxy, within `timeout` seconds."""
    target = f"{agent.pod}:{port}" if scheme == "http" else f"{scheme}:{agent.pod}:{port}"
    resource = f"/api/v1/namespaces/{namespace}/pods/{target}/proxy/results"
    params = [("layer", layer) for layer in layers] + [("check", pattern) for pattern in patterns]
    try:
        status, body = api.raw("GET", resource, params=params, headers={TIMEOUT_HEADER: f"{timeout:g}"},
                               timeout=(min(timeout, 5.0), timeout))
    except Exception as exc:  # noqa: BLE001 - urllib3's timeouts and connection errors: the agent's row says so
        name = type(exc).__name__
        timed_out = "timeout" in name.lower() or "timed out" in str(exc).lower()
        why = f"no answer within {timeout:g}s" if timed_out else f"{name}: {' '.join(str(exc).split())[:200]}"
        return judge_reply(agent, None, "", why, timed_out)
    return judge_reply(agent, status, body.decode("utf-8", "replace"))


def ask_all(api: "KubeApi", namespace: str, agents: dict[str, Agent], scheme: str, port: int, layers: Iterable[str],
            patterns: Iterable[str], timeout: float) -> dict[str, Reply]:
    """Every Running agent at once (a thread each, at most 32 at a time); the others are judged by merge."""
    running = [a for a in agents.values() if a.phase == "Running"]
    if not running:
        return {}
    layers, patterns = list(layers), list(patterns)
    with ThreadPoolExecutor(max_workers=min(32, len(running)), thread_name_prefix="agent") as pool:
        replies = pool.map(lambda a: ask(api, namespace, a, scheme, port, layers, patterns, timeout), running)
        return {reply.agent.node: reply for reply in replies}


def run(ctx: Any, registry: Any, selected: list["Check"], patterns: list[str]) -> tuple[list[Outcome], list[str]]:
    """The whole `doctor --cluster` run: the selected checks of cluster.node_layers from every node's agent,
    the others here as `sbops doctor` runs them, at the same time. Returns the outcomes in report order and the
    nodes seen. No kubeconfig: sbops.kube.NoKubeconfig (the CLI's one-line usage error)."""
    import threading

    from sbops import kube
    from sbops.engine import run_checks
    from sbops.probes.kubecommon import api_error, api_reason

    wanted = node_layers(str(ctx.settings["cluster.node_layers"]))
    node_checks = [c for c in selected if c.layer in wanted]
    local_checks = [c for c in selected if c.layer not in wanted]
    namespace, selector = str(ctx.settings["cluster.namespace"]), str(ctx.settings["cluster.agent_selector"])
    api = kube.api(ctx)  # NoKubeconfig before anything runs
    found: dict[str, Any] = {}

    def nodes_part() -> None:
        try:
            pods, nodes = observe(api, namespace, selector)
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, forbidden: every node row says so
            reason, why = api_reason(exc), api_error(exc)
            found["outcomes"], found["nodes"] = unlisted(node_checks, namespace, reason, why), []
            return
        agents, missing = placement(pods, nodes)
        layers = sorted({c.layer for c in node_checks}, key=LAYERS.index)
        replies = ask_all(api, namespace, agents, str(ctx.settings["cluster.agent_scheme"]),
                          int(ctx.settings["cluster.agent_port"]), layers, patterns,
                          float(ctx.settings["cluster.agent_timeout"]))
        found["outcomes"] = merge(node_checks, agents, missing, replies, namespace, selector)
        found["nodes"] = sorted([*agents, *missing])

    worker = threading.Thread(target=nodes_part, name="cluster-agents", daemon=True)
    if node_checks:
        worker.start()
    local = run_checks(ctx, local_checks, registry=registry) if local_checks else []
    if node_checks:
        worker.join()
    # related checks of the node layers would be this machine's, not a node's: left out of the merged report
    local = [o for o in local if not (o.added and o.check.layer in wanted)]
    return in_report_order([*local, *found.get("outcomes", [])]), list(found.get("nodes", []))
