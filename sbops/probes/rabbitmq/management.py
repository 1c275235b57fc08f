"""rabbitmq.management: the management API answers stackbill; fix rabbitmq-management enables the plugin.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sbops.messages import rabbitmq as M
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.rabbitmq.access import ctl_failure, local_blocker
from sbops.probes.rabbitmq.session import API_WAIT, PLUGIN, Answer, Api, api, api_base, login, overview
from sbops.runner import display

if TYPE_CHECKING:
    from sbops.context import Context


def judge_management(base: str, answer: Answer, login_ok: bool | None) -> Result:
    """Pure: what GET /api/overview answered. A 401 is the user's fault when AMQP login works (tags)."""
    evidence = {"url": base + "/api/overview", "http_status": answer.status}
    if answer.status is None:
        if answer.reason is Reason.REFUSED:
            return M.API_OFF.result(base=base, details={"error": answer.error, **evidence})
        if answer.reason is Reason.TIMEOUT:
            return M.API_TIMEOUT.result(base=base, details={"error": answer.error, **evidence})
        return M.API_UNREACHABLE.result(reason=answer.reason, base=base, error=answer.error,
                                        details={"error": answer.error, **evidence})
    if answer.status == 401:
        message = M.API_NOT_ADMIN if login_ok else M.API_PASSWORD
        return message.result(base=base, user="stackbill", details=evidence, fix="rabbitmq-user")
    if answer.status == 200 and answer.is_json and isinstance(answer.data, dict):
        data = answer.data
        return M.API_OK.result(base=base, version=data.get("rabbitmq_version", "?"), details={
            "rabbitmq_version": data.get("rabbitmq_version"), "node": data.get("node"),
            "cluster_name": data.get("cluster_name"), **evidence})
    return M.API_UNEXPECTED.result(base=base, status=answer.status,
                                   details={"body": str(answer.data)[:200], **evidence})


def probe_management(ctx: "Context") -> Result:
    answer = overview(ctx)
    login_ok = login(ctx).ok if answer.status == 401 else None
    return judge_management(api_base(ctx), answer, login_ok)


# -- fix: rabbitmq-management --------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginState:
    node_running: bool
    enabled: bool  # explicitly enabled (in the enabled_plugins file)
    running: bool  # started on the node


def parse_plugin_list(text: str, plugin: str = PLUGIN) -> PluginState:
    """Pure: `rabbitmq-plugins -q list --formatter json` (it answers even when the node is down)."""
    data = json.loads(text)
    entry = next((p for p in data.get("plugins", []) if p.get("name") == plugin), {})
    return PluginState(node_running=data.get("status") == "running",
                       enabled=entry.get("enabled") in ("enabled", "implicit"),
                       running=bool(entry.get("running")))


class Plugins:
    name = "rabbitmq-plugins"

    def __init__(self, ctx: "Context") -> None:
        self.runner = ctx.runner
        self.argv = shlex.split(ctx.settings["rabbitmq.plugins_command"])
        self.timeout = max(60.0, ctx.timeout * 12)

    def state(self) -> tuple[PluginState | None, str]:
        """The management plugin's state on this host's node, else why it cannot be read."""
        result = self.runner.run([*self.argv, "-q", "list", "--formatter", "json", PLUGIN], timeout=self.timeout)
        if not result.ok:
            return None, ctl_failure(result, self.name)
        try:
            return parse_plugin_list(result.stdout), ""
        except (ValueError, AttributeError):
            return None, f"{self.name} list: unexpected output: {result.stdout.strip()[:120]}"

    def enable_argv(self) -> list[str]:
        return [*self.argv, "enable", PLUGIN]


def wait_for_api(client: Api, deadline: float) -> Answer:
    """Poll GET /api/overview until the API answers anything HTTP, or the deadline passes."""
    end = time.monotonic() + deadline
    answer = client.get("/api/overview")
    while answer.status is None and time.monotonic() < end:
        time.sleep(0.5)
        answer = client.get("/api/overview")
    return answer


def plan_management(ctx: "Context") -> Plan:
    client = api(ctx)
    now = client.get("/api/overview")
    if now.status is not None:
        return Plan(nothing_to_do=f"the management API answers at {client.base} (HTTP {now.status})")
    blocker = local_blocker(ctx, "enabling a plugin")
    if blocker:
        return Plan(blockers=(blocker,))
    plugins = Plugins(ctx)
    state, why = plugins.state()
    if state is None:
        return Plan(blockers=(why,))
    if not state.node_running:
        return Plan(blockers=(f"{plugins.name} cannot reach the RabbitMQ node: it is not running, or this user's Erlang "
                              "cookie (~/.erlang.cookie) differs from the node's (run as root)",))
    if state.enabled and state.running:
        return Plan(blockers=(f"{PLUGIN} is enabled but nothing answers at {client.base}: the Management URL's port "
                              "differs from management.tcp.port in rabbitmq.conf, or the listener failed (see the node's log)",))
    argv = plugins.enable_argv()

    def apply() -> None:
        result = ctx.runner.run(argv, timeout=plugins.timeout)
        if not result.ok:
            raise RuntimeError(ctl_failure(result, plugins.name))
        answer = wait_for_api(client, API_WAIT)
        if answer.status is None:
            raise RuntimeError(f"{PLUGIN} is enabled but the API at {client.base} did not answer within {API_WAIT:g}s")

    return Plan(changes=(Change(f"enable the {PLUGIN} plugin on the running node (no restart), then wait up to "
                                f"{API_WAIT:g}s for {client.base}", (display(argv),), apply),),
                notes=("enabling a plugin starts its listener inside the running broker; AMQP clients stay connected",))
