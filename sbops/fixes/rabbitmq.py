"""RabbitMQ fixes: thin declarations over sbops.probes.rabbitmq's differs and appliers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("rabbitmq-user", title="create or repair the stackbill user (password, administrator tag, '.*' on vhost /)",
     repairs=("rabbitmq.auth", "rabbitmq.permissions"), risk=Risk.SAFE)
def user(ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_user(ctx)


# Enabling a plugin starts its listener inside the running broker: no restart, no data touched.
@fix("rabbitmq-management", title="enable the rabbitmq_management plugin and wait for its API",
     repairs=("rabbitmq.management",), risk=Risk.SAFE)
def management(ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_management(ctx)


@fix("rabbitmq-guest", title="delete the default guest user (only once stackbill works as administrator)",
     repairs=("rabbitmq.guest",), risk=Risk.CHANGES_DATA)
def guest(ctx: "Context") -> Plan:
    from sbops.probes import rabbitmq

    return rabbitmq.plan_guest(ctx)
