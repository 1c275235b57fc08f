"""MongoDB for `sbops uninstall --delete-db` / `--delete-mongo-data`: does the StackBill user exist, which
databases hold data, and the statements that drop them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sbops.errors import NeedsCredentials
from sbops.model import Reason
from sbops.probes.mongodb import AUTH_DB, AdminAccess, Login, app_login, find_admin_access, users_info
from sbops.probes.net import tcp_probe

if TYPE_CHECKING:
    from sbops.context import Context

USER_NOT_FOUND = 11
SYSTEM_DATABASES = frozenset({"admin", "config", "local"})


def parse_database_list(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """listDatabases -> [{name, bytes, empty}] without MongoDB's own databases (admin, config, local), by name."""
    out = []
    for entry in answer.get("databases") or []:
        name = str(entry.get("name", ""))
        if not name or name in SYSTEM_DATABASES:
            continue
        size = entry.get("sizeOnDisk")
        out.append({"name": name, "bytes": int(size) if isinstance(size, (int, float)) else None,
                    "empty": bool(entry.get("empty", False))})
    return sorted(out, key=lambda d: d["name"])


@dataclass(frozen=True)
class UserPresence:
    """Whether the StackBill user exists (None: cannot tell, `how` says why), and the access that told."""

    exists: bool | None
    how: str
    access: AdminAccess | None = field(default=None, compare=False, repr=False)

    @property
    def can_list_databases(self) -> bool:
        return self.access is not None and self.access.can_view


def observe_user_presence(ctx: "Context") -> UserPresence:
    """The StackBill user's existence through the first access that works (find_admin_access's order).
    With no credentials file its own login is simply not tried; the localhost exception being in effect
    means mongod has no user at all, so the StackBill user is gone too."""
    host, port = ctx.endpoint("mongodb")
    reason, error = tcp_probe(host, port, ctx.net_timeout)
    if reason is not Reason.NONE:  # one timeout, not one per login tried below
        return UserPresence(None, f"MongoDB at {host}:{port} is not reachable ({reason.value}: {error})")
    username = ctx.service("mongodb").username
    try:
        own = app_login(ctx)
    except NeedsCredentials as exc:
        own = Login(username, False, None, str(exc))
    access, blocker = find_admin_access(ctx, host, own)
    if access is None:
        return UserPresence(None, blocker)
    if not access.can_view:
        return UserPresence(False, f"no user exists at all ({access.description})", access)
    return UserPresence(users_info(access.client, username) is not None, access.description, access)


def observe_databases(client: Any) -> list[dict[str, Any]]:
    return parse_database_list(dict(client.admin.command("listDatabases")))


def drop_user_statement(username: str) -> str:
    return f"db.getSiblingDB('{AUTH_DB}').dropUser('{username}')"


def drop_database_statement(name: str) -> str:
    return f"db.getSiblingDB('{name}').dropDatabase()"


def drop_user(client: Any, username: str) -> None:
    """dropUser; a user that is already gone (code 11) is fine."""
    from pymongo.errors import OperationFailure

    try:
        client.admin.command("dropUser", username)
    except OperationFailure as exc:
        if exc.code != USER_NOT_FOUND:
            raise
