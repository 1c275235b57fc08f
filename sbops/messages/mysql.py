"""MySQL/MariaDB findings (SB20xx), one block of codes per check; documented in runbooks/mysql.<check>.md.

SB2000-SB2007 mysql.reachable, SB2008-SB2009 any check that needs a login (documented in mysql.auth),
SB2010 mysql.auth, SB2020 mysql.host-blocked, SB2030 mysql.config, SB2040 mysql.schema, SB2050 mysql.user,
SB2060 mysql.connections.
"""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

REACHABLE, AUTH, HOSTS = "runbooks/mysql.reachable.md", "runbooks/mysql.auth.md", "runbooks/mysql.host-blocked.md"
CONFIG, SCHEMA, USER = "runbooks/mysql.config.md", "runbooks/mysql.schema.md", "runbooks/mysql.user.md"
CONNECTIONS = "runbooks/mysql.connections.md"

# mysql.reachable
ANSWERS = define("SB2000", "MysqlAnswers", Status.OK, "MySQL at {host}:{port} answers ({version})", REACHABLE,
                 Reason.NONE)
TURNS_AWAY = define("SB2001", "MysqlTurnsClientAway", Status.WARN,
                    "MySQL at {host}:{port} answers but turns this client away: {error}", REACHABLE)
REFUSED = define("SB2002", "MysqlRefusesConnections", Status.FAIL,
                 "MySQL at {host}:{port} refuses connections: is MySQL running and listening on that address "
                 "(bind-address)?", REACHABLE, Reason.REFUSED)
TIMEOUT = define("SB2003", "MysqlDoesNotAnswer", Status.FAIL,
                 "MySQL at {host}:{port} does not answer: a firewall drops the packets or the server hangs",
                 REACHABLE, Reason.TIMEOUT)
UNREACHABLE = define("SB2004", "MysqlUnreachable", Status.FAIL,
                     "MySQL at {host}:{port} cannot be reached: check the address and the network", REACHABLE)
# any check that reads through a login
NO_LOGIN = define("SB2008", "MysqlNoLoginWorks", Status.SKIP, "cannot {what}: no MySQL login works ({why})", AUTH,
                  Reason.NO_ACCESS)
WRONG_SERVER = define("SB2009", "MysqlAdminReachesAnotherServer", Status.SKIP, "cannot {what}: {why}", AUTH,
                      Reason.WRONG_SERVER)

# mysql.auth
LOGIN_OK = define("SB2010", "MysqlLoginWorks", Status.OK, "{who} logs in ({version})", AUTH, Reason.NONE)
LOGIN_REFUSED = define("SB2011", "MysqlLoginRefused", Status.FAIL,
                       "{who} cannot log in: the password in the credentials file does not match the server's "
                       "stackbill user (or the user is missing)", AUTH, Reason.AUTH_FAILED)
LOGIN_HOST_BLOCKED = define("SB2012", "MysqlLoginHostBlocked", Status.FAIL,
                            "{who} cannot log in: the server blocked this host after too many connection errors",
                            AUTH, Reason.HOST_BLOCKED)
LOGIN_NO_SLOT = define("SB2013", "MysqlLoginNoFreeConnection", Status.FAIL,
                       "{who} cannot log in: the server has no free connection (max_connections reached)", AUTH,
                       Reason.TOO_MANY_CONNECTIONS)
LOGIN_CONNECTION_REFUSED = define("SB2014", "MysqlLoginConnectionRefused", Status.FAIL,
                                  "{who} cannot log in: the server refused the connection", AUTH, Reason.REFUSED)
LOGIN_TIMEOUT = define("SB2015", "MysqlLoginTimedOut", Status.FAIL,
                       "{who} cannot log in: the server did not answer in time", AUTH, Reason.TIMEOUT)
LOGIN_FAILED = define("SB2016", "MysqlLoginFailed", Status.FAIL, "{who} cannot log in: {error}", AUTH)

# mysql.host-blocked
HOSTS_BLOCKED = define("SB2020", "MysqlHostsBlocked", Status.FAIL,
                       "MySQL blocks {count} host(s) after too many connection errors: {hosts}", HOSTS,
                       Reason.HOST_BLOCKED)
THIS_HOST_BLOCKED = define("SB2021", "MysqlBlocksThisMachine", Status.FAIL, "MySQL blocks this machine ({who}: error 1129)",
                           HOSTS, Reason.HOST_BLOCKED)
THIS_HOST_BLOCKED_OTHERS_UNKNOWN = define(
    "SB2022", "MysqlBlocksThisMachineOthersUnlisted", Status.FAIL,
    "MySQL blocks this machine ({who}: error 1129); other blocked hosts cannot be listed: {why}", HOSTS,
    Reason.HOST_BLOCKED)
HOST_CACHE_OFF = define("SB2023", "MysqlHostCacheOff", Status.OK, "the host cache is off ({how}): MySQL cannot block hosts",
                        HOSTS, Reason.NONE)
NO_HOST_BLOCKED = define("SB2024", "MysqlNoHostBlocked", Status.OK,
                         "no host is blocked ({rows} in the host cache, max_connect_errors {max_connect_errors})",
                         HOSTS, Reason.NONE)
BLOCKED_HOSTS_UNLISTED = define("SB2025", "MysqlBlockedHostsUnlisted", Status.WARN,
                                "cannot list blocked pod hosts: {why}; sbops's own login is not blocked", HOSTS,
                                Reason.NO_ACCESS)
HOST_CACHE_UNREADABLE = define("SB2026", "MysqlHostCacheUnreadable", Status.SKIP,
                               "cannot tell whether hosts are blocked: {why}", HOSTS, Reason.NO_ACCESS)

# mysql.config
DROPIN_NOT_READ = define("SB2030", "MysqlDropInNeverRead", Status.FAIL,
                         "{file} is never read: nothing in the server's option files ({read}) includes its "
                         "directory{differ}", CONFIG, Reason.NOT_READ)
SETTINGS_MATCH = define("SB2031", "MysqlSettingsMatch", Status.OK, "all {count} settings match stackbill.cnf", CONFIG,
                        Reason.NONE)
VISIBLE_SETTINGS_MATCH = define("SB2032", "MysqlVisibleSettingsMatch", Status.OK,
                                "the {count} settings sbops can see match stackbill.cnf (skip-host-cache shows only "
                                "in the option files of a MariaDB, which sbops cannot read from here)", CONFIG,
                                Reason.NONE)
SETTINGS_DIFFER = define("SB2033", "MysqlSettingsDiffer", Status.FAIL,
                         "{count} MySQL setting(s) differ from stackbill.cnf: {listed}", CONFIG, Reason.MISCONFIGURED)

# mysql.schema
DATABASES_PRESENT = define("SB2040", "MysqlDatabasesPresent", Status.OK, "databases present: {databases}", SCHEMA,
                           Reason.NONE)
DATABASES_MISSING = define("SB2041", "MysqlDatabasesMissing", Status.FAIL, "database(s) missing: {missing}", SCHEMA,
                           Reason.MISSING)

# mysql.user
USER_CORRECT = define("SB2050", "MysqlUserCorrect", Status.OK,
                      "{user}@'%' and @'localhost' exist with {plugin} and ALL PRIVILEGES WITH GRANT OPTION", USER,
                      Reason.NONE)
USER_MISSING = define("SB2051", "MysqlUserMissing", Status.FAIL, "{user}@'{host}' {detail}{more}", USER, Reason.MISSING)
USER_MISCONFIGURED = define("SB2052", "MysqlUserMisconfigured", Status.FAIL, "{user}@'{host}' {detail}{more}", USER,
                            Reason.MISCONFIGURED)
USERS_UNREADABLE = define("SB2053", "MysqlUsersUnreadable", Status.SKIP,
                          "{who} may not read mysql.user: {error}; set mysql.admin_user/admin_password or "
                          "mysql.admin_socket", USER, Reason.NO_ACCESS)

# mysql.connections
CONNECTIONS_OK = define("SB2060", "MysqlConnectionsAvailable", Status.OK,
                        "{threads} of {maximum} connections in use ({percent:.0f}%)", CONNECTIONS, Reason.NONE)
CONNECTIONS_NEAR_MAX = define("SB2061", "MysqlConnectionsNearMax", Status.WARN,
                              "{threads} of {maximum} connections in use ({percent:.0f}%): close to max_connections",
                              CONNECTIONS, Reason.DEGRADED)
CONNECTIONS_EXHAUSTED = define("SB2062", "MysqlConnectionsExhausted", Status.FAIL,
                               "{threads} of {maximum} connections in use ({percent:.0f}%): new logins get error 1040",
                               CONNECTIONS, Reason.TOO_MANY_CONNECTIONS)
