"""MongoDB findings (SB30xx), one block of codes per check; documented in runbooks/mongodb.<check>.md.

SB3000 mongodb.reachable (SB3008-SB3009: any check whose server stops answering mid-way), SB3010
mongodb.auth, SB3020 mongodb.authorization, SB3030 mongodb.user, SB3040 mongodb.bind, SB3050 mongodb.version.
"""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

REACHABLE, AUTH, AUTHORIZATION = ("runbooks/mongodb.reachable.md", "runbooks/mongodb.auth.md",
                                  "runbooks/mongodb.authorization.md")
USER, BIND, VERSION = "runbooks/mongodb.user.md", "runbooks/mongodb.bind.md", "runbooks/mongodb.version.md"

# mongodb.reachable
ANSWERS = define("SB3000", "MongodbAnswers", Status.OK, "MongoDB answers at {address} (wire version {wire}, {role})",
                 REACHABLE, Reason.NONE)
REFUSED = define("SB3001", "MongodbRefusesConnections", Status.FAIL,
                 "MongoDB at {address}: connection refused: mongod is not running or listens elsewhere", REACHABLE,
                 Reason.REFUSED)
TIMEOUT = define("SB3002", "MongodbDoesNotAnswer", Status.FAIL,
                 "MongoDB at {address}: no answer in time: a firewall drops the packets, or the host is down",
                 REACHABLE, Reason.TIMEOUT)
UNREACHABLE = define("SB3003", "MongodbUnreachable", Status.FAIL,
                     "MongoDB at {address}: the address cannot be reached (name does not resolve, or no route)",
                     REACHABLE, Reason.UNREACHABLE)
NOT_MONGODB = define("SB3004", "MongodbNoHello", Status.FAIL,
                     "{address} accepts connections but does not answer MongoDB's hello (another program on the port?)",
                     REACHABLE, Reason.MISCONFIGURED)
# any check whose connection breaks mid-way (probes.mongodb.guarded)
STOPPED_ANSWERING = define("SB3008", "MongodbStoppedAnswering", Status.FAIL,
                           "MongoDB at {address} stopped answering: {error}", REACHABLE, Reason.TIMEOUT)
CONNECTION_LOST = define("SB3009", "MongodbConnectionLost", Status.FAIL, "MongoDB at {address}: {error}", REACHABLE)

# mongodb.auth
LOGIN_OK = define("SB3010", "MongodbLoginWorks", Status.OK, "{user} logs in to {address} with {mechanism} "
                  "(authSource {auth_source})", AUTH, Reason.NONE)
LOGIN_REJECTED = define("SB3011", "MongodbLoginRejected", Status.FAIL,
                        "MongoDB rejected {user}'s login (code 18): wrong password in the credentials file, or the "
                        "user does not exist in {auth_source}", AUTH, Reason.AUTH_FAILED)
LOGIN_NO_STATUS = define("SB3012", "MongodbConnectionStatusRefused", Status.FAIL,
                         "{user} could not run connectionStatus after logging in (code {code})", AUTH,
                         Reason.ACCESS_DENIED)

# mongodb.authorization
AUTHORIZATION_OFF = define("SB3020", "MongodbAuthorizationDisabled", Status.FAIL,
                           "authorization is not enabled: anyone who reaches {address} can read and change every "
                           "database without a password", AUTHORIZATION, Reason.INSECURE)
AUTHORIZATION_ON = define("SB3021", "MongodbAuthorizationEnforced", Status.OK,
                          "MongoDB refuses unauthenticated clients (listDatabases: code 13 Unauthorized)",
                          AUTHORIZATION, Reason.NONE)
AUTHORIZATION_UNCLEAR = define("SB3022", "MongodbAuthorizationUnclear", Status.WARN,
                               "unexpected answer to an unauthenticated listDatabases (code {code})", AUTHORIZATION,
                               Reason.MISCONFIGURED)

# mongodb.user
USER_OK = define("SB3030", "MongodbUserCorrect", Status.OK, "{user} exists in {auth_source} with roles {roles}", USER,
                 Reason.NONE)
USER_MISSING = define("SB3031", "MongodbUserMissing", Status.FAIL, "user {user} does not exist in {auth_source}", USER,
                      Reason.MISSING)
USER_LACKS_ROLES = define("SB3032", "MongodbUserLacksRoles", Status.FAIL,
                          "{user} lacks role(s) {missing} that StackBill's installer grants", USER, Reason.MISCONFIGURED)
ADMIN_REJECTED = define("SB3033", "MongodbAdminLoginRejected", Status.SKIP,
                        "cannot look at users: the admin login {user} was rejected (code {code}); check "
                        "mongodb.admin_user/mongodb.admin_password", USER, Reason.NO_ACCESS)
NO_USER_ACCESS = define("SB3034", "MongodbUsersNotVisible", Status.SKIP,
                        "cannot look at users: {user}'s own login fails (see mongodb.auth) and no admin login is "
                        "configured (mongodb.admin_user, mongodb.admin_password)", USER, Reason.NO_ACCESS)
USERSINFO_REFUSED = define("SB3035", "MongodbUsersInfoRefused", Status.SKIP, "{user} may not run usersInfo (code {code})",
                           USER, Reason.NO_ACCESS)

# mongodb.bind
BIND_OK = define("SB3040", "MongodbBindReachable", Status.OK,
                 "MongoDB binds {bind_ip} (from {source}): reachable through {server_ip}", BIND, Reason.NONE)
BIND_LOOPBACK = define("SB3041", "MongodbBindsLoopbackOnly", Status.FAIL,
                       "MongoDB binds only {bind_ip} (from {source}): pods reach it through the host IP {server_ip}",
                       BIND, Reason.MISCONFIGURED)
BIND_NOT_APPLIED = define("SB3042", "MongodbBindNotApplied", Status.FAIL,
                          "{source} says bindIp {bind_ip} but mongod listens only on {listeners}: the change is not "
                          "applied until mongod restarts", BIND, Reason.MISCONFIGURED)
BIND_OTHER = define("SB3043", "MongodbBindMissesServerIp", Status.WARN,
                    "MongoDB binds {bind_ip} (from {source}) but not the server IP {server_ip} that pods use", BIND,
                    Reason.MISCONFIGURED)
BIND_UNKNOWN = define("SB3044", "MongodbBindUnknown", Status.SKIP,
                      "cannot tell which addresses MongoDB binds: getCmdLineOpts gives no bindIp, the config file is "
                      "unreadable and the server is not on this host", BIND, Reason.NO_ACCESS)

# mongodb.version
VERSION_OK = define("SB3050", "MongodbVersionSupported", Status.OK, "MongoDB {version}", VERSION, Reason.NONE)
VERSION_UNKNOWN = define("SB3051", "MongodbVersionUnknown", Status.WARN,
                         "buildInfo reports no version number ({version!r})", VERSION, Reason.MISCONFIGURED)
VERSION_TOO_OLD = define("SB3052", "MongodbVersionTooOld", Status.FAIL,
                         "MongoDB {version} is older than {minimum}: StackBill needs {supported}.0", VERSION,
                         Reason.MISCONFIGURED)
VERSION_OTHER_MAJOR = define("SB3053", "MongodbVersionUntested", Status.WARN,
                             "MongoDB {version} is not the {supported}.x that StackBill's installer pins: untested "
                             "combination", VERSION, Reason.MISCONFIGURED)
BUILDINFO_REFUSED = define("SB3054", "MongodbBuildInfoRefused", Status.SKIP, "{why}", VERSION, Reason.NO_ACCESS)
