"""rabbitmq.permissions and rabbitmq.guest: the stackbill user's desired state (exists, password,
administrator tag, ".*" on "/") and its difference, the guest user; fixes rabbitmq-user and rabbitmq-guest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sbops.messages import rabbitmq as M
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.rabbitmq.access import (Action, admin_via_api, admin_via_ctl, Ctl, HttpAdmin, observe_user_api,
    parse_tags, UserState)
from sbops.probes.rabbitmq.session import (ADMIN_TAG, VHOST, WANT_PERMISSIONS, Answer, api, Login, login, path_user,
    username)
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context


def format_permissions(perms: dict[str, str] | None) -> str:
    if perms is None:
        return "none"
    return " ".join(f"{k} '{perms.get(k, '')}'" for k in WANT_PERMISSIONS)


def wanted_tags(current: Sequence[str]) -> tuple[str, ...]:
    """administrator plus whatever other tags the user already has."""
    return (ADMIN_TAG, *[t for t in current if t != ADMIN_TAG])


def user_actions(state: UserState) -> list[Action]:
    """Pure: what to do so `state` becomes the desired stackbill user."""
    if not state.exists:
        return [Action("add_user", state.name),
                Action("set_tags", state.name, tags=(ADMIN_TAG,)),
                Action("set_permissions", state.name, permissions=dict(WANT_PERMISSIONS))]
    actions: list[Action] = []
    if state.password_ok is False:
        actions.append(Action("change_password", state.name, was="it does not match"))
    if ADMIN_TAG not in state.tags:
        actions.append(Action("set_tags", state.name, tags=wanted_tags(state.tags), was=",".join(state.tags)))
    current = state.permissions
    if current is None or any(current.get(k) != v for k, v in WANT_PERMISSIONS.items()):
        actions.append(Action("set_permissions", state.name, permissions=dict(WANT_PERMISSIONS),
                              was=format_permissions(current)))
    return actions


def judge_permissions(state: UserState) -> Result:
    """Pure: the stackbill user's tags and vhost permissions against what StackBill needs."""
    evidence = {"user": state.name, "vhost": VHOST, "tags": list(state.tags),
                "permissions": state.permissions, "want_tags": [ADMIN_TAG], "want_permissions": WANT_PERMISSIONS}
    if not state.exists:
        return M.USER_MISSING.result(user=state.name, details=evidence)
    actions = [a for a in user_actions(state) if a.kind in ("set_tags", "set_permissions")]
    if not actions:
        return M.USER_OK.result(user=state.name, vhost=VHOST, details=evidence)
    differs = []
    if any(a.kind == "set_tags" for a in actions):
        differs.append(f"tags are [{','.join(state.tags)}] (want {ADMIN_TAG})")
    if any(a.kind == "set_permissions" for a in actions):
        differs.append(f"permissions on '{VHOST}' are {format_permissions(state.permissions)} (want '.*' '.*' '.*')")
    return M.USER_DIFFERS.result(user=state.name, differs="; ".join(differs),
                                 details={"changes": [a.describe() for a in actions], **evidence})


def judge_api_refusal(what: str, answer: Answer, user: str) -> Result:
    """An API read that was refused or failed (the check's prerequisites passed a moment ago)."""
    if answer.status in (401, 403):
        return M.READ_NOT_ADMIN.result(user=user, what=what, details={"http_status": answer.status})
    if answer.status is None:
        return M.READ_NO_ANSWER.result(reason=answer.reason, what=what, error=answer.error,
                                       details={"error": answer.error})
    return M.READ_UNEXPECTED.result(what=what, status=answer.status, details={"http_status": answer.status})


def probe_permissions(ctx: "Context") -> Result:
    client = api(ctx)
    state = observe_user_api(client, client.user)
    if isinstance(state, Answer):
        if state.status == 401:
            who = client.get("/api/whoami")
            if who.status == 200 and isinstance(who.data, dict):
                return judge_permissions(UserState(client.user, True, parse_tags(who.data.get("tags")), None))
            if login(ctx).ok:
                return M.USER_NOT_ADMIN.result(user=client.user, details={"user": client.user,
                                                                          "http_status": who.status})
            return M.USER_PASSWORD.result(user=client.user, details={"user": client.user, "http_status": who.status})
        return judge_api_refusal(f"user {client.user}", state, client.user)
    return judge_permissions(state)


# -- guest ---------------------------------------------------------------------------------------------
def judge_guest(answer: Answer, user: str) -> Result:
    if answer.status == 404:
        return M.GUEST_GONE.result()
    if answer.status == 200 and isinstance(answer.data, dict):
        return M.GUEST_EXISTS.result(details={"guest_tags": list(parse_tags(answer.data.get("tags")))})
    if answer.status in (401, 403):
        return M.GUEST_UNKNOWN.result(user=user, details={"http_status": answer.status})
    return judge_api_refusal("user guest", answer, user)


def probe_guest(ctx: "Context") -> Result:
    client = api(ctx)
    return judge_guest(client.get(path_user("guest")), client.user)


# -- fix: rabbitmq-user ---------------------------------------------------------------------------------
def build_changes(backend: Ctl | HttpAdmin, actions: list[Action], password: Secret, state: UserState) -> tuple[Change, ...]:
    changes = []
    for action in actions:
        if isinstance(backend, Ctl):
            changes.append(Change(action.describe(), backend.commands(action), backend.applier(action, password)))
        else:
            # an HTTP request is not a command anyone runs: the description names it instead
            request = backend.commands(action, password, state.tags)[0]
            changes.append(Change(f"{action.describe()}, via the RabbitMQ management API: {request}", (),
                                  backend.applier(action, password, state.tags)))
    return tuple(changes)


def plan_user(ctx: "Context") -> Plan:
    """Create/repair stackbill: rabbitmqctl on this host, else the API when stackbill is already an administrator."""
    password = ctx.password("rabbitmq")
    name = username(ctx)
    backend: Ctl | HttpAdmin | None
    backend, why_api = admin_via_api(ctx)
    why_ctl = ""
    if backend is None:
        backend, why_ctl = admin_via_ctl(ctx)
    if backend is None:
        return Plan(blockers=(f"no way to manage RabbitMQ users: {why_ctl}; {why_api}",))
    try:
        state = backend.observe(name, password)
    except RuntimeError as exc:
        return Plan(blockers=(str(exc),))
    notes: tuple[str, ...] = (f"using {backend.name}",)
    if state.exists and state.password_ok is None:
        login_now = login(ctx)
        if login_now.reason in (Reason.AUTH_FAILED,):
            state = UserState(state.name, True, state.tags, state.permissions, False)
        elif login_now.reason in (Reason.NONE, Reason.ACCESS_DENIED):
            state = UserState(state.name, True, state.tags, state.permissions, True)
    actions = user_actions(state)
    if not actions:
        return Plan(nothing_to_do=f"{name} exists, its password matches, it is an administrator with '.*' '.*' '.*' on '{VHOST}'",
                    notes=notes)
    return Plan(changes=build_changes(backend, actions, password, state), notes=notes)


# -- fix: rabbitmq-guest --------------------------------------------------------------------------------
def guest_blockers(login_result: Login, stackbill: UserState | None, why: str) -> list[str]:
    """Pure: why guest must not be deleted yet (it may be the only working administrator)."""
    if stackbill is None:
        return [f"cannot verify the stackbill user ({why}): run `sbops fix rabbitmq-user` first"]
    problems = []
    if not login_result.ok:
        problems.append(f"{stackbill.name} cannot log in ({login_result.reason.value})")
    if not stackbill.exists:
        problems.append(f"{stackbill.name} does not exist")
    elif ADMIN_TAG not in stackbill.tags:
        problems.append(f"{stackbill.name} lacks the {ADMIN_TAG} tag")
    if problems:
        return ["deleting guest could leave no working administrator: " + "; ".join(problems)
                + ": run `sbops fix rabbitmq-user` first"]
    return []


def plan_guest(ctx: "Context") -> Plan:
    name = username(ctx)
    password = ctx.password("rabbitmq")
    backend: Ctl | HttpAdmin | None
    backend, why_api = admin_via_api(ctx)
    why_ctl = ""
    if backend is None:
        backend, why_ctl = admin_via_ctl(ctx)
    stackbill: UserState | None = None
    why = "; ".join(w for w in (why_api, why_ctl) if w)
    if backend is not None:
        try:
            stackbill = backend.observe(name, None)
        except RuntimeError as exc:
            why = str(exc)
    blockers = guest_blockers(login(ctx), stackbill, why)
    if blockers or backend is None:
        return Plan(blockers=tuple(blockers) or (why,))
    try:
        guest = backend.observe("guest", None)
    except RuntimeError as exc:
        return Plan(blockers=(str(exc),))
    if not guest.exists:
        return Plan(nothing_to_do="the guest user does not exist")
    action = Action("delete_user", "guest")
    return Plan(changes=build_changes(backend, [action], password, guest),
                notes=(f"using {backend.name}; {name} logs in and is an {ADMIN_TAG}",))
