"""The pod network's findings (SB81xx): connections made from inside a running pod's network namespace.

One block of twenty codes per check, documented in runbooks/netpath.<check>.md under "## Findings":
SB8100-SB8119 netpath.mysql, SB8120-SB8139 netpath.mongodb, SB8140-SB8159 netpath.rabbitmq, SB8160-SB8179
netpath.nfs, SB8180-SB8199 netpath.services. Offsets 0-9 are the check's own findings; offsets 10-18 are
the same nine in every block (why the check could not test from a pod: 10-14 from a pod sandbox on the node,
15-18 from a probe pod, setting netpath.probe_image), so each stays in its own runbook. Offset 9 is the pass
of a probe pod, which tests TCP only (MySQL, MongoDB, RabbitMQ: their logins need sbops on the node).
`{pod}` is namespace/name of the pod tested from, `{address}` HOST:PORT, `{source}` where the address came
from (helm values, or the credentials file when there is no release).
"""

from __future__ import annotations

from dataclasses import dataclass

from sbops.messages import Message, define
from sbops.model import Reason, Status

MYSQL, MONGODB = "runbooks/netpath.mysql.md", "runbooks/netpath.mongodb.md"
RABBITMQ, NFS, SERVICES = "runbooks/netpath.rabbitmq.md", "runbooks/netpath.nfs.md", "runbooks/netpath.services.md"


@dataclass(frozen=True)
class Common:
    """The five findings every netpath check can report when it cannot test from a pod."""

    not_root: Message
    no_state: Message
    no_pod: Message
    probe_failed: Message
    no_target: Message
    pod_forbidden: Message
    pod_image: Message
    pod_not_started: Message
    pod_no_answer: Message


def _common(number: int, prefix: str, doc: str, what: str) -> Common:
    def code(offset: int) -> str:
        return f"SB{number + offset:04d}"

    return Common(
        define(code(10), f"{prefix}NeedsRoot", Status.SKIP,
               f"cannot test {what} from a pod: entering a pod's network namespace needs root (sbops runs as uid "
               "{uid}; or name an image in setting netpath.probe_image to test from a probe pod)", doc,
               Reason.NO_ACCESS),
        define(code(11), f"{prefix}NoContainerdState", Status.SKIP,
               f"cannot test {what} from a pod: no containerd state in {{dirs}} (sbops does not run on the node; "
               "setting netpath.containerd_state; or name an image in setting netpath.probe_image to test from a "
               "probe pod)", doc, Reason.NO_ACCESS),
        define(code(12), f"{prefix}NoPodToTestFrom", Status.SKIP,
               f"cannot test {what} from a pod: no running pod with a network namespace of its own on this node "
               "({why})", doc, Reason.NOT_RUNNING),
        define(code(13), f"{prefix}PodProbeFailed", Status.SKIP,
               f"cannot test {what} from pod {{pod}}: {{error}}", doc),
        define(code(14), f"{prefix}NoAddress", Status.SKIP, "no address to test: {why}", doc, Reason.NOT_APPLICABLE),
        define(code(15), f"{prefix}ProbePodForbidden", Status.SKIP,
               f"cannot test {what} from a probe pod: sbops may not {{verb}} pods in {{namespace}} ({{error}}); grant "
               "create, get, list and delete on pods and get on pods/log there, or run sbops as root on the node",
               doc, Reason.NO_ACCESS),
        define(code(16), f"{prefix}ProbePodImagePull", Status.SKIP,
               f"cannot test {what} from pod {{pod}}: its image {{image}} does not pull ({{why}}); check "
               "setting netpath.probe_image and the pull secret {secret}", doc, Reason.IMAGE_PULL),
        define(code(17), f"{prefix}ProbePodNotStarted", Status.SKIP,
               f"cannot test {what} from pod {{pod}}: it did not finish within {{budget:g}}s ({{why}}); "
               "raise setting timeout (--timeout) or see why the pod does not start", doc),
        define(code(18), f"{prefix}ProbePodNoAnswer", Status.SKIP,
               f"cannot test {what} from pod {{pod}}: {{why}} (the image {{image}} needs busybox's sh, nc, "
               "wget and timeout)", doc),
    )


# netpath.mysql
MYSQL_OK = define("SB8100", "MysqlReachableFromPod", Status.OK,
                  "from pod {pod}, {who} logs in to MySQL at {address} ({source}; {version})", MYSQL, Reason.NONE)
MYSQL_REFUSED = define("SB8101", "MysqlRefusesPods", Status.FAIL,
                       "from pod {pod}, MySQL at {address} ({source}) refuses connections: {hint}", MYSQL,
                       Reason.REFUSED)
MYSQL_TIMEOUT = define("SB8102", "MysqlSilentToPods", Status.FAIL,
                       "from pod {pod}, MySQL at {address} ({source}) does not answer within {timeout:g}s: a "
                       "firewall drops the pods' traffic (see the host firewall runbook)", MYSQL, Reason.TIMEOUT)
MYSQL_UNREACHABLE = define("SB8103", "MysqlUnreachableFromPods", Status.FAIL,
                           "from pod {pod}, MySQL at {address} ({source}) is unreachable: {error}", MYSQL,
                           Reason.UNREACHABLE)
MYSQL_BLOCKED = define("SB8104", "MysqlBlocksPods", Status.FAIL,
                       "from pod {pod}, MySQL at {address} ({source}) blocks the pod's host after too many "
                       "connection errors (error 1129)", MYSQL, Reason.HOST_BLOCKED)
MYSQL_HOST_NOT_ALLOWED = define("SB8105", "MysqlHostNotAllowedForPods", Status.FAIL,
                                "from pod {pod}, MySQL at {address} ({source}) does not let the pod's address "
                                "connect (error 1130): {who} has no account for that host (stackbill@'%')", MYSQL,
                                Reason.AUTH_FAILED)
MYSQL_AUTH = define("SB8106", "MysqlRejectsPodLogin", Status.FAIL,
                    "from pod {pod}, MySQL at {address} ({source}) rejects {who}'s password (error 1045)", MYSQL,
                    Reason.AUTH_FAILED)
MYSQL_OTHER = define("SB8107", "MysqlLoginFailsFromPod", Status.FAIL,
                     "from pod {pod}, {who} cannot log in to MySQL at {address} ({source}): {error}", MYSQL)
MYSQL_TCP_OK = define("SB8109", "MysqlTcpReachableFromProbePod", Status.OK,
                      "from pod {pod}, MySQL at {address} ({source}) accepts TCP connections; the login is not "
                      "tested (that needs sbops on the node)", MYSQL, Reason.NONE)
MYSQL_COMMON = _common(8100, "NetpathMysql", MYSQL, "MySQL")

# netpath.mongodb
MONGO_OK = define("SB8120", "MongodbReachableFromPod", Status.OK,
                  "from pod {pod}, MongoDB at {address} ({source}) answers{login}", MONGODB, Reason.NONE)
MONGO_REFUSED = define("SB8121", "MongodbRefusesPods", Status.FAIL,
                       "from pod {pod}, MongoDB at {address} ({source}) refuses connections: {hint}", MONGODB,
                       Reason.REFUSED)
MONGO_TIMEOUT = define("SB8122", "MongodbSilentToPods", Status.FAIL,
                       "from pod {pod}, MongoDB at {address} ({source}) does not answer within {timeout:g}s: a "
                       "firewall drops the pods' traffic (see the host firewall runbook)", MONGODB, Reason.TIMEOUT)
MONGO_UNREACHABLE = define("SB8123", "MongodbUnreachableFromPods", Status.FAIL,
                           "from pod {pod}, MongoDB at {address} ({source}) is unreachable: {error}", MONGODB,
                           Reason.UNREACHABLE)
MONGO_AUTH = define("SB8124", "MongodbRejectsPodLogin", Status.FAIL,
                    "from pod {pod}, MongoDB at {address} ({source}) rejects {who}'s login (error 18)", MONGODB,
                    Reason.AUTH_FAILED)
MONGO_NOT_MONGO = define("SB8125", "MongodbNotAnsweringPods", Status.FAIL,
                         "from pod {pod}, {address} ({source}) accepts TCP but does not answer as MongoDB: {error}",
                         MONGODB, Reason.MISCONFIGURED)
MONGO_TCP_OK = define("SB8129", "MongodbTcpReachableFromProbePod", Status.OK,
                      "from pod {pod}, MongoDB at {address} ({source}) accepts TCP connections; hello and the "
                      "login are not tested (that needs sbops on the node)", MONGODB, Reason.NONE)
MONGO_COMMON = _common(8120, "NetpathMongodb", MONGODB, "MongoDB")

# netpath.rabbitmq
RABBIT_OK = define("SB8140", "RabbitmqReachableFromPod", Status.OK,
                   "from pod {pod}, RabbitMQ at {address} ({source}) answers AMQP ({product}){login}", RABBITMQ,
                   Reason.NONE)
RABBIT_REFUSED = define("SB8141", "RabbitmqRefusesPods", Status.FAIL,
                        "from pod {pod}, RabbitMQ at {address} ({source}) refuses connections: {hint}", RABBITMQ,
                        Reason.REFUSED)
RABBIT_TIMEOUT = define("SB8142", "RabbitmqSilentToPods", Status.FAIL,
                        "from pod {pod}, RabbitMQ at {address} ({source}) does not answer within {timeout:g}s: a "
                        "firewall drops the pods' traffic (see the host firewall runbook)", RABBITMQ,
                        Reason.TIMEOUT)
RABBIT_UNREACHABLE = define("SB8143", "RabbitmqUnreachableFromPods", Status.FAIL,
                            "from pod {pod}, RabbitMQ at {address} ({source}) is unreachable: {error}", RABBITMQ,
                            Reason.UNREACHABLE)
RABBIT_AUTH = define("SB8144", "RabbitmqRejectsPodLogin", Status.FAIL,
                     "from pod {pod}, RabbitMQ at {address} ({source}) rejects {who}'s login (ACCESS_REFUSED)",
                     RABBITMQ, Reason.AUTH_FAILED)
RABBIT_DENIED = define("SB8145", "RabbitmqDeniesPodVhost", Status.FAIL,
                       "from pod {pod}, RabbitMQ at {address} ({source}) lets {who} log in but not open vhost / "
                       "(NOT_ALLOWED)", RABBITMQ, Reason.ACCESS_DENIED)
RABBIT_NOT_AMQP = define("SB8146", "RabbitmqNotAnsweringPods", Status.FAIL,
                         "from pod {pod}, {address} ({source}) accepts TCP but does not answer as AMQP 0-9-1: "
                         "{error}", RABBITMQ, Reason.MISCONFIGURED)
RABBIT_TCP_OK = define("SB8149", "RabbitmqTcpReachableFromProbePod", Status.OK,
                       "from pod {pod}, RabbitMQ at {address} ({source}) accepts TCP connections; AMQP and the "
                       "login are not tested (that needs sbops on the node)", RABBITMQ, Reason.NONE)
RABBIT_COMMON = _common(8140, "NetpathRabbitmq", RABBITMQ, "RabbitMQ")

# netpath.nfs
NFS_OK = define("SB8160", "NfsReachableFromPod", Status.OK,
                "from pod {pod}, the NFS server at {address} ({source}) accepts TCP connections", NFS, Reason.NONE)
NFS_REFUSED = define("SB8161", "NfsRefusesPods", Status.FAIL,
                     "from pod {pod}, the NFS server at {address} ({source}) refuses connections: nfsd is not "
                     "running there", NFS, Reason.REFUSED)
NFS_TIMEOUT = define("SB8162", "NfsSilentToPods", Status.FAIL,
                     "from pod {pod}, the NFS server at {address} ({source}) does not answer within {timeout:g}s: a "
                     "firewall drops the pods' traffic (see the host firewall runbook)", NFS, Reason.TIMEOUT)
NFS_UNREACHABLE = define("SB8163", "NfsUnreachableFromPods", Status.FAIL,
                         "from pod {pod}, the NFS server at {address} ({source}) is unreachable: {error}", NFS,
                         Reason.UNREACHABLE)
NFS_COMMON = _common(8160, "NetpathNfs", NFS, "NFS")

# netpath.services
SERVICES_OK = define("SB8180", "ServicesAnswerPods", Status.OK,
                     "from pod {pod}, every routed Service answers HTTP: {services}", SERVICES, Reason.NONE)
SERVICES_FAIL = define("SB8181", "ServicesSilentToPods", Status.FAIL,
                       "from pod {pod}, {failed} of {total} routed Service(s) do not answer: {problems}", SERVICES)
SERVICES_NO_ROUTES = define("SB8182", "NoRoutedServices", Status.SKIP,
                            "nothing to test: the VirtualService {virtualservice} routes to no Service of {namespace}",
                            SERVICES, Reason.NOT_APPLICABLE)
SERVICES_COMMON = _common(8180, "NetpathServices", SERVICES, "the in-cluster Services")
