"""Istio fixes: thin declarations over sbops.probes.istio's differs and appliers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import FixOptions, Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("istio-gateway", title="apply the Gateway and VirtualService as the installer defines them for the domain",
     repairs=("istio.gateway", "istio.virtualservice"), risk=Risk.SAFE)
def gateway(ctx: "Context", opts: FixOptions) -> Plan:
    from sbops.probes import istio

    return istio.plan_gateway(ctx)


# RESTARTS_SERVICE: moving a nodePort cuts the connections open on the old port and breaks every client,
# firewall rule or forwarder that uses it, like a restart on a new port. The plan asks for --restart only
# when open nodePorts move; turning a ClusterIP Service into NodePort disturbs nothing and needs no consent.
@fix("istio-nodeports", title="set the ingress gateway Service to NodePort on the configured nodePorts",
     repairs=("istio.ingress",), risk=Risk.RESTARTS_SERVICE)
def nodeports(ctx: "Context", opts: FixOptions) -> Plan:
    from sbops.probes import istio

    return istio.plan_nodeports(ctx, opts.allow_restart)
