"""How a fix may manage users: an admin login, no authorization at all, the stackbill login itself, or the
localhost exception, tried in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sbops.probes.mongodb.session import UNAUTHORIZED, admin_login, anon_client, is_loopback, Login

if TYPE_CHECKING:
    from sbops.context import Context


@dataclass
class AdminAccess:
    """How the fix may manage users: `client` to use, `kind`, and whether it can read users (usersInfo)."""

    kind: str  # admin-login, no-authorization, own-login, localhost-exception
    description: str
    client: Any = field(repr=False, default=None)
    can_view: bool = True


def find_admin_access(ctx: "Context", host: str, own: Login) -> tuple[AdminAccess | None, str]:
    """The first way to manage users that works: admin login, no authorization, own login, localhost exception."""
    from pymongo.errors import OperationFailure

    admin_user = str(ctx.settings["mongodb.admin_user"] or "")
    if admin_user:
        if not ctx.settings["mongodb.admin_password"]:
            return None, (f"mongodb.admin_user is {admin_user} but its password is empty: set mongodb.admin_password "
                          f"or SBOPS_MONGODB_ADMIN_PASSWORD")
        login = admin_login(ctx)
        assert login is not None
        if not login.ok:
            return None, (f"the admin login {admin_user} (mongodb.admin_user, authSource admin) was rejected "
                          f"(code {login.code}): correct mongodb.admin_password / SBOPS_MONGODB_ADMIN_PASSWORD")
        return AdminAccess("admin-login", f"as {admin_user} (mongodb.admin_user)", login.client), ""
    anon = anon_client(ctx)
    try:
        anon.admin.command("usersInfo", 1)
    except OperationFailure as exc:
        anon_code = exc.code
    else:
        return AdminAccess("no-authorization", "without a login: authorization is not enforced", anon), ""
    if own.ok:
        try:
            own.client.admin.command("usersInfo", 1)
            return AdminAccess("own-login", f"as {own.user} itself (its login works)", own.client), ""
        except OperationFailure:
            pass
    why_not = localhost_exception_blocker(host, anon)
    if not why_not:
        return AdminAccess("localhost-exception", "through the localhost exception (auth on, no users yet)",
                           anon, can_view=False), ""
    return None, ("no admin access to MongoDB: set mongodb.admin_user and mongodb.admin_password (or env "
                  "SBOPS_MONGODB_ADMIN_PASSWORD) to a user with userAdmin rights in admin; anonymous usersInfo is "
                  f"refused (code {anon_code}) and the localhost exception is not available ({why_not})")


def localhost_exception_blocker(host: str, anon: Any) -> str:
    """Why the localhost exception cannot be used, or "" when it is in effect.

    mongod grants an unauthenticated loopback connection the bootstrap privileges (createUser, grantRole,
    replSetGetStatus) only while no user exists; replSetGetStatus is the side-effect-free probe of that:
    in effect it answers (or NoReplicationEnabled), otherwise code 13.
    """
    from pymongo.errors import OperationFailure

    if not is_loopback(host):
        return f"sbops reaches MongoDB through {host}, not a loopback address"
    try:
        anon.admin.command("replSetGetStatus")
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            return "an unauthenticated replSetGetStatus on loopback is refused: users exist, or the server has none"
    return ""
