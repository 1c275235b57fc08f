"""Checks made from inside a running pod's network namespace: thin declarations over sbops.probes.netpath.

The right repair depends on the finding (a refused MySQL is its bind-address, a blocked one FLUSH HOSTS, a
silent one a firewall), so every result names its own fix; none is declared here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "netpath"
NO_FIX = ("the result names the paired fix ({fixes}); a timeout is a host firewall (runbook "
          "runbooks/guides/host-firewall.md), repaired by hand")


@check("netpath.mysql", layer=LAYER, title="a pod logs in to MySQL at the address the Helm values give",
       severity=Severity.CRITICAL, no_fix=NO_FIX.format(fixes="mysql-config, mysql-blocked-host, mysql-user"))
def mysql(ctx: "Context") -> Result:
    from sbops.probes import netpath

    return netpath.probe_service(ctx, "mysql")


@check("netpath.mongodb", layer=LAYER, title="a pod reaches MongoDB (hello, login) at the Helm values' address",
       severity=Severity.CRITICAL, no_fix=NO_FIX.format(fixes="mongodb-config, mongodb-user"))
def mongodb(ctx: "Context") -> Result:
    from sbops.probes import netpath

    return netpath.probe_service(ctx, "mongodb")


@check("netpath.rabbitmq", layer=LAYER, title="a pod reaches RabbitMQ (AMQP, login) at the Helm values' address",
       severity=Severity.CRITICAL, no_fix=NO_FIX.format(fixes="rabbitmq-user; listeners by hand"))
def rabbitmq(ctx: "Context") -> Result:
    from sbops.probes import netpath

    return netpath.probe_service(ctx, "rabbitmq")


@check("netpath.nfs", layer=LAYER, title="a pod reaches the NFS server (TCP 2049) at the Helm values' address",
       severity=Severity.CRITICAL, no_fix=NO_FIX.format(fixes="none: start nfsd"))
def nfs(ctx: "Context") -> Result:
    from sbops.probes import netpath

    return netpath.probe_service(ctx, "nfs")


@check("netpath.services", layer=LAYER, title="a pod reaches every Service the VirtualService routes to (HTTP)",
       severity=Severity.CRITICAL, no_fix="see pods.ready and istio.virtualservice for the Service that does not answer")
def services(ctx: "Context") -> Result:
    from sbops.probes import netpath

    return netpath.probe_services(ctx)
