"""Host checks: resources, listening ports, bind addresses. Thin declarations over sbops.probes.host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "host"


@check("host.resources", layer=LAYER, title="CPU, memory and disk meet the POC minimums",
       severity=Severity.WARNING,
       no_fix="hardware: add vCPUs, memory or disk to the machine (settings host.min_* set the minimums)")
def resources(ctx: "Context") -> Result:
    from sbops.probes import host

    return host.probe_resources(ctx)


@check("host.listeners", layer=LAYER, title="MySQL, MongoDB, RabbitMQ and NFS ports are listening",
       severity=Severity.CRITICAL,
       no_fix="start the stopped service with systemctl (see the runbook); sbops does not start services")
def listeners(ctx: "Context") -> Result:
    from sbops.probes import host

    return host.probe_listeners(ctx)


@check("host.bind-address", layer=LAYER, title="Databases and broker listen where pods can reach them",
       severity=Severity.CRITICAL,
       no_fix="the result names the service's own fix (mysql-config, mongodb-config); RabbitMQ is manual")
def bind_address(ctx: "Context") -> Result:
    from sbops.probes import host

    return host.probe_bind(ctx)


@check("host.kubelet", layer=LAYER, title="The kubelet on this node answers its health endpoint",
       severity=Severity.CRITICAL,
       no_fix="start or restart the kubelet (K3s: systemctl restart k3s / k3s-agent) after reading its journal; "
              "sbops does not restart node services")
def kubelet(ctx: "Context") -> Result:
    from sbops.probes import node

    return node.probe_kubelet(ctx)


@check("host.containerd", layer=LAYER, title="containerd on this node answers on its socket",
       severity=Severity.CRITICAL,
       no_fix="start or restart containerd (K3s runs it: systemctl restart k3s / k3s-agent) after reading its log; "
              "sbops does not restart node services")
def containerd(ctx: "Context") -> Result:
    from sbops.probes import node

    return node.probe_containerd(ctx)
