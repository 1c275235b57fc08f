"""Helm check: the StackBill release's latest revision is deployed (not stuck pending, not failed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "helm"


# cache_seconds: every probe lists and decodes each revision's record (the gzipped chart manifest, Helm keeps
# 10 by default); the release changes only when someone runs helm, so the exporter re-reads it once a minute.
@check("helm.release", layer=LAYER, title="The Helm release's latest revision is deployed",
       severity=Severity.CRITICAL, requires=("k8s.namespace",), fix="helm-rollback", cache_seconds=60)
def release(ctx: "Context") -> Result:
    from sbops.probes import helm

    return helm.probe_release(ctx)
