"""The host layer's findings (SB10xx): host.resources SB1001-SB1009, host.listeners SB1010-SB1019, host.kubelet
SB1030-SB1039, host.containerd SB1040-SB1049,
host.bind-address SB1020-SB1029. Documented in each check's runbook under "## Findings"."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

RESOURCES = "runbooks/host.resources.md"
LISTENERS = "runbooks/host.listeners.md"
BIND = "runbooks/host.bind-address.md"

# host.resources
RESOURCES_OK = define("SB1001", "HostMeetsMinimums", Status.OK,
                      "{cpus} vCPUs, {memory_gb:g} GB memory, {disk_free_gb:g} GB free on {disk_path}", RESOURCES,
                      Reason.NONE)
BELOW_MINIMUMS = define("SB1002", "HostBelowMinimums", Status.WARN, "below the POC minimums: {short}", RESOURCES,
                        Reason.DEGRADED)

# host.listeners
LISTENING = define("SB1010", "ServicesListening", Status.OK, "listening: {services}", LISTENERS, Reason.NONE)
NOT_LISTENING = define("SB1011", "ServiceNotListening", Status.FAIL, "nothing listens for {missing}: start the service",
                       LISTENERS, Reason.NOT_RUNNING)
ALL_REMOTE = define("SB1012", "ServicesAllRemote", Status.SKIP,
                    "every service is on another host; nothing to check here", LISTENERS, Reason.NOT_APPLICABLE)

# host.bind-address
REACHABLE = define("SB1020", "ServicesReachableFromPods", Status.OK,
                   "the databases and the broker listen where pods can reach them", BIND, Reason.NONE)
UNREACHABLE = define("SB1021", "ServiceUnreachableFromPods", Status.FAIL,
                     "pods cannot reach: {problems}; it must listen on 0.0.0.0 or {server_ip}", BIND,
                     Reason.MISCONFIGURED)
NOTHING_TO_JUDGE = define("SB1022", "NoLocalServiceListening", Status.SKIP,
                          "no local database or broker is listening; nothing to judge", BIND, Reason.NOT_APPLICABLE)

KUBELET = "runbooks/host.kubelet.md"
CONTAINERD = "runbooks/host.containerd.md"

# host.kubelet (SB1030-SB1039)
KUBELET_HEALTHY = define("SB1030", "KubeletHealthy", Status.OK, "the kubelet answers ok at {url}", KUBELET, Reason.NONE)
KUBELET_DOWN = define("SB1031", "KubeletNotListening", Status.FAIL,
                      "nothing listens at {url}: the kubelet (K3s: the k3s service) is not running", KUBELET,
                      Reason.NOT_RUNNING)
KUBELET_NO_ANSWER = define("SB1032", "KubeletNoAnswer", Status.FAIL, "the kubelet did not answer at {url}: {error}",
                           KUBELET)
KUBELET_UNHEALTHY = define("SB1033", "KubeletUnhealthy", Status.FAIL,
                           "the kubelet's healthz at {url} answers HTTP {status}: {body}", KUBELET, Reason.DEGRADED)

# host.containerd (SB1040-SB1049)
CONTAINERD_ANSWERS = define("SB1040", "ContainerdAnswers", Status.OK, "containerd answers on {socket} (version {version})",
                            CONTAINERD, Reason.NONE)
CONTAINERD_NO_SOCKET = define("SB1041", "ContainerdNoSocket", Status.FAIL,
                              "no containerd socket at {candidates}: containerd (K3s: the k3s service) is not running",
                              CONTAINERD, Reason.NOT_RUNNING)
CONTAINERD_NO_ANSWER = define("SB1042", "ContainerdNoAnswer", Status.FAIL,
                              "containerd's socket {socket} does not answer: {error}", CONTAINERD)
CONTAINERD_NOT_GRPC = define("SB1043", "ContainerdSocketNotGrpc", Status.FAIL,
                             "{socket} accepts connections but no gRPC server answers on it", CONTAINERD,
                             Reason.MISCONFIGURED)
