"""CloudStack fixes: thin declarations over sbops.probes.cloudstack.

`cloudstack-simulator-start` is SAFE: it starts a stopped container that is proven to be the simulator (its name
and published port); nothing that runs is restarted. `cloudstack-keys` is SAFE: it enables StackBill's user and
records its current keys in the credentials file, and generates keys only for a user that has none, so no key
anything uses is invalidated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("cloudstack-simulator-start", title="start the stopped CloudStack simulator container (podman start)",
     repairs=("cloudstack.simulator", "cloudstack.reachable"), risk=Risk.SAFE)
def start(ctx: "Context") -> Plan:
    from sbops.probes import cloudstack

    return cloudstack.plan_start(ctx)


@fix("cloudstack-keys", title="enable StackBill's CloudStack user and record its working keys in the credentials file",
     repairs=("cloudstack.api-keys",), risk=Risk.SAFE)
def keys(ctx: "Context") -> Plan:
    from sbops.probes import cloudstack

    return cloudstack.plan_keys(ctx)
