"""mongodb.user: the StackBill user's roles; fix mongodb-user creates it or resets its password and roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sbops.errors import NeedsCredentials
from sbops.messages import mongodb as M
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.mongodb.access import find_admin_access
from sbops.probes.mongodb.session import (AUTH_DB, REQUIRED_ROLES, admin_login, app_login, first_line, forget,
    guarded, users_info)
from sbops.probes.net import tcp_probe
from sbops.secret import MASK

if TYPE_CHECKING:
    from sbops.context import Context


# ---------------------------------------------------------------------------------------------------
# the stackbill user
# ---------------------------------------------------------------------------------------------------
def role_pairs(roles: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(str(r.get("role")), str(r.get("db"))) for r in roles if isinstance(r, dict)}


def missing_roles(roles: list[dict[str, Any]]) -> list[tuple[str, str]]:
    have = role_pairs(roles)
    return [r for r in REQUIRED_ROLES if r not in have]


def fmt_roles(pairs: list[tuple[str, str]] | set[tuple[str, str]]) -> str:
    return ", ".join(f"{role}@{db}" for role, db in sorted(pairs)) or "none"


def judge_user(username: str, user: dict[str, Any] | None, via: str) -> Result:
    if user is None:
        return M.USER_MISSING.result(user=username, auth_source=AUTH_DB, details={"user": username, "looked_as": via})
    roles = list(user.get("roles") or [])
    lacking = missing_roles(roles)
    evidence = {"user": username, "roles": fmt_roles(role_pairs(roles)), "mechanisms": list(user.get("mechanisms") or []),
                "looked_as": via}
    if lacking:
        return M.USER_LACKS_ROLES.result(user=username, missing=fmt_roles(lacking),
                                         details={"missing_roles": fmt_roles(lacking), **evidence})
    return M.USER_OK.result(user=username, auth_source=AUTH_DB, roles=fmt_roles(REQUIRED_ROLES), details=evidence)


def probe_user(ctx: "Context") -> Result:
    return guarded(lambda: observe_and_judge_user(ctx), ctx)


def observe_and_judge_user(ctx: "Context") -> Result:
    """usersInfo for the StackBill user, as the admin login if configured, else as the user itself."""
    from pymongo.errors import OperationFailure

    username = ctx.service("mongodb").username
    login = admin_login(ctx)
    if login is None or not login.ok:
        if login is not None:
            return M.ADMIN_REJECTED.result(user=login.user, code=login.code, details={"code": login.code})
        login = app_login(ctx)
        if not login.ok:
            return M.NO_USER_ACCESS.result(user=username, details={"code": login.code})
    try:
        user = users_info(login.client, username)
    except OperationFailure as exc:
        return M.USERSINFO_REFUSED.result(user=login.user, code=exc.code, details={"code": exc.code})
    return judge_user(username, user, login.user)


# ---------------------------------------------------------------------------------------------------
# fix mongodb-user: create the user, or reset its password and roles
# ---------------------------------------------------------------------------------------------------


def user_actions(user: dict[str, Any] | None, login_ok: bool, can_view: bool) -> list[str]:
    """What to do to the StackBill user: create, password, roles (pure)."""
    if not can_view:
        return [] if login_ok else ["create"]
    if user is None:
        return ["create"]
    actions = []
    if not login_ok:
        actions.append("password")
    if missing_roles(list(user.get("roles") or [])):
        actions.append("roles")
    return actions


def wanted_roles(user: dict[str, Any] | None) -> list[dict[str, str]]:
    """The required roles plus any others the user already has (the fix adds, never takes away)."""
    roles = [{"role": r, "db": d} for r, d in REQUIRED_ROLES]
    for role, db in sorted(role_pairs(list((user or {}).get("roles") or []))):
        if (role, db) not in REQUIRED_ROLES:
            roles.append({"role": role, "db": db})
    return roles


def _js_roles(roles: list[dict[str, str]]) -> str:
    return "[" + ", ".join(f"{{role: '{r['role']}', db: '{r['db']}'}}" for r in roles) + "]"


def user_statement(username: str, roles: list[dict[str, str]], *, create: bool = False,
                   set_password: bool = False, set_roles: bool = False) -> str:
    """The equivalent mongosh statement, password masked (for plans and logs)."""
    if create:
        return (f"db.getSiblingDB('admin').createUser({{user: '{username}', pwd: '{MASK}', "
                f"roles: {_js_roles(roles)}}})")
    parts = []
    if set_password:
        parts.append(f"pwd: '{MASK}'")
    if set_roles:
        parts.append(f"roles: {_js_roles(roles)}")
    return f"db.getSiblingDB('admin').updateUser('{username}', {{{', '.join(parts)}}})"


def plan_user(ctx: "Context") -> Plan:
    from pymongo.errors import PyMongoError

    host, port = ctx.endpoint("mongodb")
    address = f"{host}:{port}"
    username = ctx.service("mongodb").username
    try:
        password = ctx.password("mongodb")
    except NeedsCredentials as exc:
        return Plan(blockers=(f"{exc}: the fix sets the user's password from the credentials file",))
    reason, error = tcp_probe(host, port, ctx.net_timeout)
    if reason is not Reason.NONE:
        return Plan(blockers=(f"MongoDB at {address} is not reachable ({reason.value}: {error}); see mongodb.reachable",))
    try:
        own = app_login(ctx)
        access, blocker = find_admin_access(ctx, host, own)
        if access is None:
            return Plan(blockers=(blocker,))
        user = users_info(access.client, username) if access.can_view else None
    except PyMongoError as exc:
        return Plan(blockers=(f"MongoDB at {address}: {first_line(exc)}",))
    actions = user_actions(user, own.ok, access.can_view)
    if not actions:
        return Plan(nothing_to_do=f"{username} exists in admin, logs in with the credentials file's password and has "
                    f"roles {fmt_roles(REQUIRED_ROLES)}")
    roles = wanted_roles(user)
    notes = (f"user management {access.description}",)
    client = access.client

    if "create" in actions:
        def create() -> None:
            client.admin.command("createUser", username, pwd=password.reveal(), roles=roles)
            forget(ctx)

        change = Change(f"create user {username} in admin with roles {fmt_roles(REQUIRED_ROLES)} and the "
                        f"credentials file's password, via the MongoDB driver (the createUser command; in mongosh: "
                        f"{user_statement(username, roles, create=True)})", (), create)
        return Plan(changes=(change,), notes=notes)

    set_password = "password" in actions
    set_roles = "roles" in actions
    what = []
    if set_password:
        what.append("reset its password to the credentials file's")
    if set_roles:
        what.append(f"grant {fmt_roles(missing_roles(list(user.get('roles') or [])))}")  # type: ignore[union-attr]

    def update() -> None:
        fields: dict[str, Any] = {}
        if set_password:
            fields["pwd"] = password.reveal()
        if set_roles:
            fields["roles"] = roles
        client.admin.command("updateUser", username, **fields)
        forget(ctx)

    statement = user_statement(username, roles, set_password=set_password, set_roles=set_roles)
    return Plan(changes=(Change(f"{username}: {' and '.join(what)}, via the MongoDB driver (the updateUser command; "
                                f"in mongosh: {statement})", (), update),), notes=notes)
