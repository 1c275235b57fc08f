"""Istio checks: thin declarations over sbops.probes.istio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "istio"


@check("istio.istiod", layer=LAYER, title="istiod (Istio's control plane) is ready",
       severity=Severity.CRITICAL, requires=("k8s.api",),
       no_fix="look at istiod's pod events and logs (see the runbook); "
              "`kubectl -n istio-system rollout restart deployment/istiod` restarts it")
def istiod(ctx: "Context") -> Result:
    from sbops.probes import istio

    return istio.probe_istiod(ctx)


@check("istio.ingress", layer=LAYER, title="the ingress gateway Service exposes distinct HTTP and HTTPS nodePorts that reach the gateway",
       severity=Severity.CRITICAL, requires=("k8s.api",), fix="istio-nodeports")
def ingress(ctx: "Context") -> Result:
    from sbops.probes import istio

    return istio.probe_ingress(ctx)


@check("istio.gateway", layer=LAYER, title="the Gateway selects the ingress gateway and serves the domain over HTTPS",
       severity=Severity.CRITICAL, requires=("k8s.api",), fix="istio-gateway")
def gateway(ctx: "Context") -> Result:
    from sbops.probes import istio

    return istio.probe_gateway(ctx)


@check("istio.virtualservice", layer=LAYER,
       title="the VirtualService is bound to the Gateway and routes to Services with ready endpoints",
       severity=Severity.CRITICAL, requires=("k8s.api",), fix="istio-gateway")
def virtualservice(ctx: "Context") -> Result:
    from sbops.probes import istio

    return istio.probe_virtualservice(ctx)
