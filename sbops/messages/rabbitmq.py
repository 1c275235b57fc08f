"""RabbitMQ findings (SB40xx), one block of codes per check; documented in runbooks/rabbitmq.<check>.md.

SB4000 rabbitmq.reachable, SB4010 rabbitmq.auth, SB4020 rabbitmq.management, SB4030 rabbitmq.permissions
(SB4033-SB4035: the management API's refusals, which rabbitmq.guest and rabbitmq.alarms report too),
SB4040 rabbitmq.guest, SB4050 rabbitmq.alarms.
"""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

REACHABLE, AUTH, MANAGEMENT = ("runbooks/rabbitmq.reachable.md", "runbooks/rabbitmq.auth.md",
                               "runbooks/rabbitmq.management.md")
PERMISSIONS, GUEST, ALARMS = ("runbooks/rabbitmq.permissions.md", "runbooks/rabbitmq.guest.md",
                              "runbooks/rabbitmq.alarms.md")

# rabbitmq.reachable
ANSWERS = define("SB4000", "RabbitmqAnswersAmqp", Status.OK, "{name} answers AMQP on {where}", REACHABLE, Reason.NONE)
OTHER_AMQP = define("SB4001", "RabbitmqOtherAmqpVersion", Status.FAIL,
                    "{where} speaks another AMQP version than 0-9-1 (not RabbitMQ's AMQP port?)", REACHABLE,
                    Reason.MISCONFIGURED)
SILENT = define("SB4002", "RabbitmqNoAmqpAnswer", Status.FAIL,
                "{where} accepted the connection but sent no AMQP answer in time: the broker hangs, or this is not "
                "its AMQP port", REACHABLE, Reason.TIMEOUT)
CLOSED = define("SB4003", "RabbitmqClosedWithoutAnswer", Status.FAIL,
                "{where} accepted the connection but closed it without an AMQP answer", REACHABLE, Reason.MISCONFIGURED)
NOT_AMQP = define("SB4004", "RabbitmqNotAmqp", Status.FAIL,
                  "something answers on {where} but it is not AMQP: check the RABBITMQ Port", REACHABLE,
                  Reason.MISCONFIGURED)
REFUSED = define("SB4005", "RabbitmqRefusesConnections", Status.FAIL,
                 "nothing listens on {where}: start RabbitMQ (systemctl start rabbitmq-server) or fix the RABBITMQ Port",
                 REACHABLE, Reason.REFUSED)
TIMEOUT = define("SB4006", "RabbitmqDoesNotAnswer", Status.FAIL,
                 "no answer from {where}: a firewall drops the traffic or the broker hangs", REACHABLE, Reason.TIMEOUT)
UNREACHABLE = define("SB4007", "RabbitmqUnreachable", Status.FAIL, "cannot reach {where}: {error}", REACHABLE)

# rabbitmq.auth
LOGIN_OK = define("SB4010", "RabbitmqLoginWorks", Status.OK, "{user} logs in to {where} and opens vhost '{vhost}'", AUTH,
                  Reason.NONE)
LOGIN_REFUSED = define("SB4011", "RabbitmqLoginRefused", Status.FAIL,
                       "RabbitMQ refused the login of {who}: wrong password or no such user", AUTH, Reason.AUTH_FAILED)
VHOST_DENIED = define("SB4012", "RabbitmqVhostDenied", Status.FAIL,
                      "{user} logs in but may not use vhost '{vhost}': no permissions there", AUTH, Reason.ACCESS_DENIED)

# rabbitmq.management
API_OK = define("SB4020", "RabbitmqManagementAnswers", Status.OK, "management API answers at {base} (RabbitMQ {version})",
                MANAGEMENT, Reason.NONE)
API_OFF = define("SB4021", "RabbitmqManagementOff", Status.FAIL,
                 "the management API does not listen on {base}: the rabbitmq_management plugin is off", MANAGEMENT,
                 Reason.REFUSED)
API_TIMEOUT = define("SB4022", "RabbitmqManagementTimeout", Status.FAIL,
                     "no answer from the management API at {base} in time", MANAGEMENT, Reason.TIMEOUT)
API_UNREACHABLE = define("SB4023", "RabbitmqManagementUnreachable", Status.FAIL,
                         "cannot reach the management API at {base}: {error}", MANAGEMENT)
API_NOT_ADMIN = define("SB4024", "RabbitmqManagementNotAdministrator", Status.FAIL,
                       "{user} logs in over AMQP but the management API refuses it: it lacks the administrator tag",
                       MANAGEMENT, Reason.ACCESS_DENIED)
API_PASSWORD = define("SB4025", "RabbitmqManagementPasswordRejected", Status.FAIL,
                      "the management API at {base} rejects {user}'s password (HTTP 401)", MANAGEMENT,
                      Reason.AUTH_FAILED)
API_UNEXPECTED = define("SB4026", "RabbitmqManagementUnexpectedAnswer", Status.FAIL,
                        "{base}/api/overview answered HTTP {status} without the expected JSON: is the Management URL's "
                        "port RabbitMQ's?", MANAGEMENT, Reason.MISCONFIGURED)

# rabbitmq.permissions
USER_OK = define("SB4030", "RabbitmqUserCorrect", Status.OK,
                 "{user} is an administrator with configure/write/read '.*' on vhost '{vhost}'", PERMISSIONS, Reason.NONE)
USER_MISSING = define("SB4031", "RabbitmqUserMissing", Status.FAIL, "user {user} does not exist", PERMISSIONS,
                      Reason.MISSING)
USER_DIFFERS = define("SB4032", "RabbitmqUserMisconfigured", Status.FAIL, "{user}: {differs}", PERMISSIONS,
                      Reason.MISCONFIGURED)
READ_NOT_ADMIN = define("SB4033", "RabbitmqApiReadNeedsAdministrator", Status.FAIL,
                        "{user} may not read {what} from the management API: it lacks the administrator tag",
                        PERMISSIONS, Reason.MISCONFIGURED)
READ_NO_ANSWER = define("SB4034", "RabbitmqApiNoAnswer", Status.FAIL,
                        "the management API did not answer reading {what}: {error}", PERMISSIONS)
READ_UNEXPECTED = define("SB4035", "RabbitmqApiUnexpectedStatus", Status.FAIL,
                         "reading {what} from the management API gave HTTP {status}", PERMISSIONS, Reason.MISCONFIGURED)
USER_NOT_ADMIN = define("SB4036", "RabbitmqUserLacksAdministratorTag", Status.FAIL,
                        "{user} logs in over AMQP but the management API refuses it: it lacks the administrator tag",
                        PERMISSIONS, Reason.MISCONFIGURED)
USER_PASSWORD = define("SB4037", "RabbitmqApiRejectsPassword", Status.FAIL,
                       "the management API rejects {user}'s password", PERMISSIONS, Reason.AUTH_FAILED)

# rabbitmq.guest
GUEST_GONE = define("SB4040", "RabbitmqGuestRemoved", Status.OK, "the default guest user has been removed", GUEST,
                    Reason.NONE)
GUEST_EXISTS = define("SB4041", "RabbitmqGuestExists", Status.WARN,
                      "the default guest user (password 'guest', administrator) still exists", GUEST, Reason.INSECURE)
GUEST_UNKNOWN = define("SB4042", "RabbitmqGuestUnknown", Status.SKIP,
                       "cannot tell whether guest exists: {user} may not list users (no administrator tag)", GUEST,
                       Reason.NO_ACCESS)

# rabbitmq.alarms
NO_ALARM = define("SB4050", "RabbitmqNoAlarm", Status.OK, "no memory or disk alarm", ALARMS, Reason.NONE)
ALARM = define("SB4051", "RabbitmqResourceAlarm", Status.FAIL, "{alarms}: publishers are blocked until it clears", ALARMS,
               Reason.DEGRADED)
NODE_DOWN = define("SB4052", "RabbitmqNodeDown", Status.FAIL, "node(s) not running: {nodes}", ALARMS, Reason.NOT_RUNNING)
ALARMS_UNREADABLE = define("SB4053", "RabbitmqAlarmsUnreadable", Status.SKIP,
                           "cannot read node alarms: {user} may not read /api/nodes (no administrator tag)", ALARMS,
                           Reason.NO_ACCESS)
