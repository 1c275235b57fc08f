"""ECR image pull secret checks: thin declarations over sbops.probes.ecr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "ecr"


@check("ecr.secret", layer=LAYER,
       title="the image pull secret exists, is a dockerconfigjson for the ECR registry, and every Deployment uses it",
       severity=Severity.CRITICAL, fix="ecr-refresh")
def secret(ctx: "Context") -> Result:
    from sbops.probes import ecr

    return ecr.probe_secret(ctx)


@check("ecr.expiry", layer=LAYER, title="the ECR token in the pull secret has not expired (warns 2 hours before)",
       severity=Severity.CRITICAL, requires=("ecr.secret",), fix="ecr-refresh")
def expiry(ctx: "Context") -> Result:
    from sbops.probes import ecr

    return ecr.probe_expiry(ctx)
