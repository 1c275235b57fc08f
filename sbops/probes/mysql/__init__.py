"""MySQL 8 / MariaDB 10.11: observe (logins, greeting, variables, users, host cache), desired state
(ARCHITECTURE.md's stackbill.cnf, the installer's users and databases), pure differs and judgements,
and appliers.

PyMySQL is imported inside functions only, so `sbops --help` never loads it.
Two logins are shared per run through ctx.shared, each with the lock that guards its connection:
  "mysql.app"   the stackbill user with the credentials file's password, over TCP to its Host:Port
  "mysql.admin" settings mysql.admin_user/admin_password, over mysql.admin_socket when that socket
                exists (a real server's root uses unix_socket authentication), else over TCP

The package, by role: session.py (errors, versions, the shared logins), access.py (which server a login
reaches), then one module per check with its observers, pure judgements and its fix's plan: reachable.py
(reachable, auth), config.py (with cnf.py, the option-file chain), host_cache.py, schema.py, users.py,
connections.py.

The names below are the public surface the checks, fixes, installer, uninstaller and tests use
(`from sbops.probes import mysql; mysql.probe_auth(ctx)`); everything else lives in its module.
"""

from __future__ import annotations

from sbops.probes.mysql.access import (Access, any_session, identity_mismatch, no_access_blocker, no_access_result,
    ServerId, WrongServer)
from sbops.probes.mysql.config import (choose_target, config_findings, file_findings, Files, judge_config,
    later_overrides, merge_cnf, plan_config, probe_config, RULES, server_argv, set_global_sql, STACKBILL_CNF,
    unread_dropins, with_file_facts)
from sbops.probes.mysql.connections import judge_connections, probe_connections
from sbops.probes.mysql.host_cache import (blocked_hosts, blocking_notes, flush_statements, HostCache,
    judge_host_blocked, plan_blocked_host, probe_host_blocked)
from sbops.probes.mysql.reachable import judge_login_error, judge_reachable, probe_auth, probe_reachable
from sbops.probes.mysql.schema import (create_database_sql, DATABASES, judge_schema, missing_databases, plan_schema,
    probe_schema, wanted_databases)
from sbops.probes.mysql.session import (admin_target, classify, describe_error, error_code, greeting,
    is_mariadb_version, LoginError, parse_greeting, Session, strip_version, version_tuple)
from sbops.probes.mysql.users import (Account, account_sql, global_grants, judge_user, mask_grant, NATIVE,
    native_hash, observe_accounts, plan_user, probe_user, user_findings, user_statements, UserFinding)

__all__ = ["Access", "Account", "account_sql", "admin_target", "any_session", "blocked_hosts", "blocking_notes",
    "choose_target", "classify", "config_findings", "create_database_sql", "DATABASES", "describe_error",
    "error_code", "file_findings", "Files", "flush_statements", "global_grants", "greeting", "HostCache",
    "identity_mismatch", "is_mariadb_version", "judge_config", "judge_connections", "judge_host_blocked",
    "judge_login_error", "judge_reachable", "judge_schema", "judge_user", "later_overrides", "LoginError",
    "mask_grant", "merge_cnf", "missing_databases", "NATIVE", "native_hash", "no_access_blocker", "no_access_result",
    "observe_accounts", "parse_greeting", "plan_blocked_host", "plan_config", "plan_schema", "plan_user",
    "probe_auth", "probe_config", "probe_connections", "probe_host_blocked", "probe_reachable", "probe_schema",
    "probe_user", "RULES", "server_argv", "ServerId", "Session", "set_global_sql", "STACKBILL_CNF", "strip_version",
    "unread_dropins", "user_findings", "user_statements", "UserFinding", "version_tuple", "wanted_databases",
    "with_file_facts", "WrongServer"]
