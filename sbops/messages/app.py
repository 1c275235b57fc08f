"""The application's findings (SB70xx): app.cloudconfiguration SB7001-SB7009, app.portal SB7010-SB7019.
Documented in each check's runbook under "## Findings". The reason of a request that got no answer, or a
wrong HTTP status, is the caller's (refused/timeout/unreachable/misconfigured/degraded)."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

API = "runbooks/app.cloudconfiguration.md"
PORTAL = "runbooks/app.portal.md"

# app.cloudconfiguration
API_ANSWERS = define("SB7001", "PortalApiAnswers", Status.OK,
                     "the portal API answers with its cloud configuration (HTTP 200, JSON)", API, Reason.NONE)
API_NO_ANSWER = define("SB7002", "PortalApiNoAnswer", Status.FAIL, "the portal API at {url} did not answer: {hint}",
                       API)
API_NOT_JSON = define("SB7003", "PortalApiWhitePage", Status.FAIL,
                      "the portal API at {url} answers HTTP 200 but not JSON ({content_type}): the white page; Kong "
                      "routing sends it elsewhere", API, Reason.MISCONFIGURED)
API_HTTP_ERROR = define("SB7004", "PortalApiHttpError", Status.FAIL,
                        "the portal API at {url} answers HTTP {http_status}: {hint}", API)

# app.portal
PORTAL_ANSWERS = define("SB7010", "PortalAnswers", Status.OK, "the portal answers HTTP {http_status}", PORTAL,
                        Reason.NONE)
PORTAL_NO_ANSWER = define("SB7011", "PortalNoAnswer", Status.FAIL, "the portal at {url} did not answer: {hint}",
                          PORTAL)
PORTAL_HTTP_ERROR = define("SB7012", "PortalHttpError", Status.FAIL,
                           "the portal at {url} answers HTTP {http_status}: {hint}", PORTAL)
