"""rabbitmq.alarms: memory and disk alarms that block publishers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.messages import rabbitmq as M
from sbops.model import Result
from sbops.probes.rabbitmq.session import Answer, api
from sbops.probes.rabbitmq.users import judge_api_refusal

if TYPE_CHECKING:
    from sbops.context import Context


# -- alarms --------------------------------------------------------------------------------------------
def human_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def node_alarms(node: dict[str, Any]) -> list[str]:
    """Pure: the alarm lines of one /api/nodes entry, with the numbers."""
    name = node.get("name", "?")
    found = []
    if node.get("mem_alarm"):
        found.append(f"memory alarm on {name}: {human_bytes(node.get('mem_used'))} used, "
                     f"high watermark {human_bytes(node.get('mem_limit'))}")
    if node.get("disk_free_alarm"):
        found.append(f"disk alarm on {name}: {human_bytes(node.get('disk_free'))} free, "
                     f"limit {human_bytes(node.get('disk_free_limit'))}")
    return found


NODE_FIELDS = ("name", "running", "mem_alarm", "mem_used", "mem_limit", "disk_free_alarm", "disk_free", "disk_free_limit")


def health_alarms(health: Answer | None) -> list[dict[str, Any]]:
    """Pure: the alarms of GET /api/health/checks/alarms (503 with a list when any is in effect)."""
    if health is None or health.status != 503 or not isinstance(health.data, dict):
        return []
    return [a for a in health.data.get("alarms", []) if isinstance(a, dict)]


def judge_alarms(nodes: list[dict[str, Any]], health: Answer | None = None) -> Result:
    """Pure: alarms from /api/nodes (with the numbers) and from the live health check.

    /api/nodes is refreshed every statistics interval (5 s by default), the health check is not: an alarm
    either reports counts, with the numbers from /api/nodes when it has them.
    """
    evidence: dict[str, Any] = {"nodes": [{k: n.get(k) for k in NODE_FIELDS} for n in nodes]}
    found = [line for n in nodes for line in node_alarms(n)]
    by_node = {n.get("name"): n for n in nodes}
    for alarm in health_alarms(health):
        resource, name = alarm.get("resource", "?"), alarm.get("node", "?")
        kind = "mem_alarm" if resource == "memory" else "disk_free_alarm" if str(resource).startswith("disk") else ""
        if kind and by_node.get(name, {}).get(kind):
            continue  # already reported with its numbers
        node = dict(by_node.get(name, {"name": name}), **{kind: True}) if kind else None
        found.extend(node_alarms(node) if node else [f"{resource} alarm on {name}"])
    if health is not None and health.status is not None:
        evidence["health_check"] = health.data if isinstance(health.data, dict) else {"http_status": health.status}
    if found:
        return M.ALARM.result(alarms="; ".join(found), details={"alarms": found, **evidence})
    down = [n.get("name", "?") for n in nodes if n.get("running") is False]
    if down:
        return M.NODE_DOWN.result(nodes=", ".join(down), details=evidence)
    return M.NO_ALARM.result(details=evidence)


def probe_alarms(ctx: "Context") -> Result:
    client = api(ctx)
    answer = client.get("/api/nodes")
    if answer.status != 200 or not isinstance(answer.data, list):
        if answer.status in (401, 403):
            return M.ALARMS_UNREADABLE.result(user=client.user, details={"http_status": answer.status})
        return judge_api_refusal("/api/nodes", answer, client.user)
    nodes = [n for n in answer.data if isinstance(n, dict)]
    return judge_alarms(nodes, client.get("/api/health/checks/alarms"))
