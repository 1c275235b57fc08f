"""Application checks: the portal's API (the white-page test) and the portal, over HTTPS like a browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.probes.app import RELATED
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "app"
NO_FIX = "the fix is the cause's: the summary names the failing check behind it and its fix"
# The checks the app checks may name as a likely cause: the engine runs them in the same run and correlates.


@check("app.cloudconfiguration", layer=LAYER,
       title="the portal API answers /apidocs/api/cloudconfiguration/general with JSON",
       severity=Severity.CRITICAL, no_fix=NO_FIX, relates=RELATED)
def cloudconfiguration(ctx: "Context") -> Result:
    from sbops.probes import app

    return app.probe_cloudconfiguration(ctx)


@check("app.portal", layer=LAYER, title="the portal answers / over HTTPS", severity=Severity.CRITICAL, no_fix=NO_FIX,
       relates=RELATED)
def portal(ctx: "Context") -> Result:
    from sbops.probes import app

    return app.probe_portal(ctx)
