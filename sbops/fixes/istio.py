"""Istio fixes: thin declarations over sbops.probes.istio's differs and appliers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("istio-gateway", title="apply the Gateway and VirtualService as the installer defines them for the domain",
     repairs=("istio.gateway", "istio.virtualservice"), risk=Risk.SAFE)
def gateway(ctx: "Context") -> Plan:
    from sbops.probes import istio

    return istio.plan_gateway(ctx)


# RESTARTS_SERVICE: moving a nodePort cuts the connections open on the old port and breaks every client,
# firewall rule or forwarder that uses it, like a restart on a new port. A working port is never moved
# unless the user names new ones (--http-port/--https-port), and then only with --restart. Turning a
# ClusterIP Service into NodePort, or giving a missing port one, disturbs nothing and needs no consent.
@fix("istio-nodeports", title="make the ingress gateway Service NodePort; keep working nodePorts unless "
     "--http-port/--https-port name new ones", repairs=("istio.ingress",), risk=Risk.RESTARTS_SERVICE)
def nodeports(ctx: "Context", *, allow_restart: bool = False, http_port: int | None = None,
              https_port: int | None = None) -> Plan:
    from sbops.probes import istio

    return istio.plan_nodeports(ctx, allow_restart=allow_restart, http_port=http_port, https_port=https_port)
