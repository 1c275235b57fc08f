"""RabbitMQ checks: thin declarations over sbops.probes.rabbitmq."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "rabbitmq"


@check("rabbitmq.reachable", layer=LAYER, title="RabbitMQ answers AMQP 0-9-1 on the credentials file's Host:Port",
       severity=Severity.CRITICAL, no_fix="start RabbitMQ (systemctl start rabbitmq-server) or open the network path; see the runbook")
def reachable(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_reachable(ctx)


@check("rabbitmq.auth", layer=LAYER, title="stackbill logs in over AMQP with the credentials file's password and opens vhost /",
       severity=Severity.CRITICAL, requires=("rabbitmq.reachable",), fix="rabbitmq-user")
def auth(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_auth(ctx)


@check("rabbitmq.management", layer=LAYER, title="the management HTTP API answers /api/overview for stackbill",
       severity=Severity.WARNING, requires=("rabbitmq.reachable",), fix="rabbitmq-management")
def management(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_management(ctx)


@check("rabbitmq.permissions", layer=LAYER, title="stackbill is an administrator with '.*' '.*' '.*' on vhost /",
       severity=Severity.CRITICAL, requires=("rabbitmq.management",), fix="rabbitmq-user")
def permissions(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_permissions(ctx)


@check("rabbitmq.guest", layer=LAYER, title="the default guest user has been removed",
       severity=Severity.WARNING, requires=("rabbitmq.management",), fix="rabbitmq-guest")
def guest(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_guest(ctx)


@check("rabbitmq.alarms", layer=LAYER, title="no memory or disk alarm blocks publishers",
       severity=Severity.CRITICAL, requires=("rabbitmq.management",),
       no_fix="an alarm means the node lacks memory or disk: it needs capacity (free disk, more RAM, consumers "
              "draining queues), not a setting sbops could safely change; see the runbook")
def alarms(ctx: "Context") -> Result:
    from sbops.probes import rabbitmq

    return rabbitmq.probe_alarms(ctx)
