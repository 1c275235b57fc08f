"""The engine's own findings: what it reports when a check could not say anything itself (SB00xx).

Documented in README.md under "Findings of the engine"."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

DOC = "README.md"

NEEDS_ACCESS = define("SB0001", "SbopsLacksAccess", Status.FAIL, "{why}", DOC, Reason.MISSING)
CRASHED = define("SB0002", "CheckCrashed", Status.ERROR, "check crashed: {error}", DOC, Reason.INTERNAL)
BLOCKED = define("SB0003", "BlockedByRequirement", Status.SKIP, "blocked by {blockers}", DOC, Reason.BLOCKED)
DEADLINE = define("SB0004", "RunDeadlinePassed", Status.ERROR, "not run: the run's deadline of {deadline:g}s passed",
                  DOC, Reason.TIMEOUT)
CYCLE = define("SB0005", "RequirementCycle", Status.ERROR, "requirement cycle among checks", DOC, Reason.INTERNAL)
TIMED_OUT = define("SB0006", "CheckTimedOut", Status.FAIL, "no answer within {budget:.1f}s", DOC, Reason.TIMEOUT)
# correlation (sbops.correlate): what it appends to a failure it could explain, or not
LIKELY_CAUSE = define("SB0010", "LikelyCause", Status.FAIL, "{summary}; likely cause: {cause} ({check}: {reason})",
                      DOC)
NO_CAUSE_FOUND = define("SB0011", "NoRelatedCheckFailed", Status.FAIL,
                        "{summary}; no related check failed: read sb-core's logs "
                        "(kubectl logs -n sb-apps <sb-core-pod> -c sb-core)", DOC)
# sbops doctor --cluster (sbops.cluster): a node whose agent cannot answer gets these on each of its rows
AGENT_NO_ANSWER = define("SB0020", "AgentNoAnswer", Status.ERROR, "the sbops agent {pod} on {node} did not answer: {why}",
                         DOC)
AGENT_NOT_RUNNING = define("SB0021", "AgentNotRunning", Status.ERROR,
                           "the sbops agent {pod} on {node} is {phase}, not Running", DOC, Reason.NOT_RUNNING)
NO_AGENT = define("SB0022", "NodeWithoutAgent", Status.ERROR,
                  "no sbops agent pod on {node} ({selector} in namespace {namespace}): the DaemonSet does not cover "
                  "this node", DOC, Reason.MISSING)
AGENT_OMITTED = define("SB0023", "AgentOmittedCheck", Status.ERROR,
                       "the sbops agent {pod} on {node} did not report this check (it reported: {reported})", DOC,
                       Reason.MISSING)
AGENTS_NOT_LISTED = define("SB0024", "AgentsNotListed", Status.ERROR,
                           "cannot list the nodes and sbops agent pods (namespace {namespace}): {why}", DOC)
