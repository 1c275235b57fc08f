"""CloudStack checks: the API answers, StackBill's key pair signs requests it accepts, the simulator's container
runs. Thin declarations over sbops.probes.cloudstack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "cloudstack"


@check("cloudstack.reachable", layer=LAYER, title="the CloudStack API (<cloudstack.url>/api) answers listCapabilities",
       severity=Severity.CRITICAL, relates=("cloudstack.simulator",),
       no_fix="start the simulator (cloudstack-simulator-start) or open the path to the CloudStack management server; "
              "see the runbook")
def reachable(ctx: "Context") -> Result:
    from sbops.probes import cloudstack

    return cloudstack.probe_reachable(ctx)


@check("cloudstack.api-keys", layer=LAYER,
       title="a request signed with StackBill's API key and secret key succeeds (else: wrong secret, unknown key, "
             "disabled user or clock skew)",
       severity=Severity.CRITICAL, requires=("cloudstack.reachable",), fix="cloudstack-keys")
def api_keys(ctx: "Context") -> Result:
    from sbops.probes import cloudstack

    return cloudstack.probe_keys(ctx)


@check("cloudstack.simulator", layer=LAYER,
       title="simulator mode: the Podman container cloudstack-simulator exists, runs and publishes its port",
       severity=Severity.CRITICAL, fix="cloudstack-simulator-start")
def simulator(ctx: "Context") -> Result:
    from sbops.probes import cloudstack

    return cloudstack.probe_simulator(ctx)
