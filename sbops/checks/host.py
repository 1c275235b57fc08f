"""Host checks: resources, listening ports, bind addresses. Thin declarations over sbops.probes.host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.probes import host as probe
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context


@check("host.resources", layer="host", title="CPU, memory and disk meet the POC minimums",
       severity=Severity.WARNING,
       no_fix="hardware: add vCPUs, memory or disk to the machine (settings host.min_* set the minimums)")
def resources(ctx: "Context") -> Result:
    observed = probe.observe_resources(str(ctx.settings["host.disk_path"]))
    return probe.judge_resources(observed, int(ctx.settings["host.min_cpus"]),
                                 float(ctx.settings["host.min_memory_gb"]), float(ctx.settings["host.min_disk_gb"]))


@check("host.listeners", layer="host", title="MySQL, MongoDB, RabbitMQ and NFS ports are listening",
       severity=Severity.CRITICAL,
       no_fix="start the stopped service with systemctl (see the runbook); sbops does not start services")
def listeners(ctx: "Context") -> Result:
    return probe.judge_listeners(probe.expected_ports(ctx), probe.run_listeners(ctx))


@check("host.bind-address", layer="host", title="Databases and broker listen where pods can reach them",
       severity=Severity.CRITICAL,
       no_fix="the result names the service's own fix (mysql-config, mongodb-config); RabbitMQ is manual")
def bind_address(ctx: "Context") -> Result:
    return probe.judge_bind(probe.expected_ports(ctx), probe.run_listeners(ctx), ctx.server_ip)
