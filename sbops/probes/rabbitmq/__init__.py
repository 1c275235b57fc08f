"""RabbitMQ: observe the broker (AMQP handshake, pika login, management API, rabbitmqctl), judge, plan, apply.

The managed resource is the `stackbill` user: exists, has the credentials file's password, carries the
`administrator` tag and ".*" ".*" ".*" on vhost "/". Its desired state, the pure difference (a list of
`Action`s) and two ways of applying it (rabbitmqctl on this host, or the management API as stackbill
when it is already an administrator) live here. pika and requests are imported inside functions.

The package, by role: session.py (the AMQP handshake, the pika login, the management API client),
access.py (the user model and the two ways a fix may change it: rabbitmqctl or the management API), then one
module per check with its observers, pure judgements and its fix's plan: reachable.py (reachable, auth),
users.py (permissions, guest), management.py, alarms.py.

The names below are the public surface the checks, fixes, installer, uninstaller and tests use
(`from sbops.probes import rabbitmq; rabbitmq.probe_auth(ctx)`); everything else lives in its module.
"""

from __future__ import annotations

from sbops.probes.rabbitmq.access import (Action, admin_via_api, admin_via_ctl, Ctl, ctl_failure,
    ctl_identity_mismatch, HttpAdmin, parse_tags, UserState)
from sbops.probes.rabbitmq.alarms import human_bytes, judge_alarms, probe_alarms
from sbops.probes.rabbitmq.management import (judge_management, parse_plugin_list, plan_management, PluginState,
    probe_management)
from sbops.probes.rabbitmq.reachable import judge_handshake, judge_login, probe_auth, probe_reachable
from sbops.probes.rabbitmq.session import (amqp_handshake, Answer, classify_login_error, Handshake, Login,
    management_port, parse_answer, username, WANT_PERMISSIONS)
from sbops.probes.rabbitmq.users import (build_changes, guest_blockers, judge_guest, judge_permissions, plan_guest,
    plan_user, probe_guest, probe_permissions, user_actions)

__all__ = ["Action", "admin_via_api", "admin_via_ctl", "amqp_handshake", "Answer", "build_changes",
    "classify_login_error", "Ctl", "ctl_failure", "ctl_identity_mismatch", "guest_blockers", "Handshake",
    "HttpAdmin", "human_bytes", "judge_alarms", "judge_guest", "judge_handshake", "judge_login", "judge_management",
    "judge_permissions", "Login", "management_port", "parse_answer", "parse_plugin_list", "parse_tags", "plan_guest",
    "plan_management", "plan_user", "PluginState", "probe_alarms", "probe_auth", "probe_guest", "probe_management",
    "probe_permissions", "probe_reachable", "user_actions", "username", "UserState", "WANT_PERMISSIONS"]
