"""ECR fixes: thin declarations over sbops.probes.ecr.

`ecr-refresh` is SAFE: it replaces a secret and deletes only pods that are not Ready because a container
waits for its image (they serve nothing; their controllers recreate them). Nothing that runs is restarted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("ecr-refresh", title="replace the ECR pull secret with a fresh token and delete pods stuck in ImagePullBackOff",
     repairs=("ecr.secret", "ecr.expiry"), risk=Risk.SAFE)
def refresh(ctx: "Context", *, token_file: str | None = None, profile: str | None = None,
            region: str | None = None) -> Plan:
    from sbops.probes import ecr

    return ecr.plan_refresh(ctx, token_file=token_file, profile=profile, region=region)
