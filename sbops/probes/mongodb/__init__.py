"""MongoDB: observe the server (hello, logins, users, bindIp, version, mongod.conf), judge, plan and apply.

Observers do I/O and return plain data; judgements and differs are pure and tested from tables.
pymongo, psutil and yaml are imported inside functions so `sbops --help` stays light.
Authentication failures are recognised by the server's error code (18), never by message text:
servers word them differently (mongod "Authentication failed.", SecantusDB "authentication failed").

The package, by role: session.py (clients, logins, usersInfo, guarded), access.py (how a fix may manage
users), then one module per check with its observers, pure judgements and its fix's plan: reachable.py
(reachable, auth, authorization), users.py, config.py (bind, and the mongod.conf edits), version.py.

The names below are the public surface the checks, fixes, installer, uninstaller and tests use
(`from sbops.probes import mongodb; mongodb.probe_auth(ctx)`); everything else lives in its module.
"""

from __future__ import annotations

from sbops.probes.mongodb.access import AdminAccess, find_admin_access
from sbops.probes.mongodb.config import (apply_edits, bind_from_config, bind_from_net, probe_bind, config_edits,
    config_file_mismatch, exposure, judge_bind, listeners_on, parse_bind_ips, plan_config, running_differs,
    set_yaml_key)
from sbops.probes.mongodb.reachable import (answers_hello, judge_auth, judge_authorization, judge_reachable,
    observe_anonymous_listdatabases, observe_hello, probe_auth, probe_authorization, probe_reachable)
from sbops.probes.mongodb.session import address, app_login, AUTH_DB, client_options, guarded, Login, users_info
from sbops.probes.mongodb.users import (probe_user, judge_user, missing_roles, plan_user, user_actions,
    user_statement, wanted_roles)
from sbops.probes.mongodb.version import judge_version, observe_build_info, parse_version, probe_version

__all__ = ["address", "AdminAccess", "answers_hello", "app_login", "apply_edits", "AUTH_DB", "bind_from_config",
    "bind_from_net", "client_options", "config_edits", "config_file_mismatch", "exposure", "find_admin_access",
    "guarded", "judge_auth", "judge_authorization", "judge_bind", "judge_reachable", "judge_user", "judge_version",
    "listeners_on", "Login", "missing_roles", "observe_anonymous_listdatabases", "observe_build_info",
    "observe_hello", "parse_bind_ips", "parse_version", "plan_config", "plan_user", "probe_auth",
    "probe_authorization", "probe_bind", "probe_reachable", "probe_user", "probe_version", "running_differs",
    "set_yaml_key", "user_actions", "user_statement", "users_info", "wanted_roles"]
