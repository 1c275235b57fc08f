"""The workloads' findings (SB61xx): pods.ready and pods.restarts."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

READY, RESTARTS = "runbooks/pods.ready.md", "runbooks/pods.restarts.md"

# pods.ready
PODS_READY = define("SB6110", "PodsReady", Status.OK, "all {count} pod(s) in {namespace} are Ready", READY, Reason.NONE)
NO_PODS = define("SB6111", "NoPods", Status.FAIL,
                 "no pods in namespace {namespace}: StackBill is not deployed there", READY, Reason.MISSING)
PODS_CANNOT_PULL = define("SB6112", "PodsCannotPullImage", Status.FAIL,
                          "{count} pod(s) cannot pull their image ({pods}){more}: the ECR pull secret has probably "
                          "expired (see ecr.expiry)", READY, Reason.IMAGE_PULL)
PODS_CRASH_LOOPING = define("SB6113", "PodsCrashLooping", Status.FAIL,
                            "{count} pod(s) crash-looping ({pods}): {container} last exited {exit_code} "
                            "({termination}){log}{more}", READY, Reason.CRASH_LOOP)
PODS_PENDING = define("SB6114", "PodsPending", Status.FAIL, "{count} pod(s) Pending ({pods}): {why}{more}", READY,
                      Reason.PENDING)
PODS_NOT_READY = define("SB6115", "PodsNotReady", Status.FAIL, "{count} pod(s) not Ready ({pods}): {why}{more}", READY,
                        Reason.NOT_READY)

# pods.restarts
RESTARTS_NORMAL = define("SB6120", "RestartsBelowThreshold", Status.OK,
                         "no container in {namespace} restarted more than {threshold} times", RESTARTS, Reason.NONE)
CONTAINERS_RESTARTING = define("SB6121", "ContainersRestarting", Status.WARN,
                               "{count} container(s) restarted more than {threshold} times: {pod}/{container} "
                               "{restarts} times{last}", RESTARTS, Reason.DEGRADED)
