"""RabbitMQ for `sbops uninstall --delete-db`: who may delete the stackbill user, and the change that does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Change
from sbops.probes.rabbitmq import Action, Ctl, HttpAdmin, UserState, admin_via_api, admin_via_ctl, build_changes
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context


def removal_backend(ctx: "Context") -> tuple[Ctl | HttpAdmin | None, str]:
    """Who may see and delete users: the management API as stackbill when it is an administrator (one HTTP
    request, where rabbitmqctl boots an Erlang VM per call, about 0.6 s), else rabbitmqctl on this host,
    which still works once the user or the credentials file is gone. (None, why) when neither works."""
    from sbops.errors import NeedsCredentials

    backend: Ctl | HttpAdmin | None
    try:
        backend, why_api = admin_via_api(ctx)
    except NeedsCredentials as exc:
        backend, why_api = None, f"management API: {exc}"
    if backend is not None:
        return backend, ""
    backend, why_ctl = admin_via_ctl(ctx)
    if backend is not None:
        return backend, ""
    return None, f"{why_api}; {why_ctl}"


def delete_user_change(backend: Ctl | HttpAdmin, name: str) -> Change:
    """The change that deletes `name` through `backend` (no password involved)."""
    return build_changes(backend, [Action("delete_user", name)], Secret(""), UserState(name, True))[0]
