"""RabbitMQ in a backup: the definitions from the management API (GET /api/definitions): vhosts, users,
permissions, topic permissions, parameters, policies, queues, exchanges and bindings. Messages are not
definitions and are not kept.

Users' password hashes are removed unless `--include-password-hashes`. Restoring an archive without them
imports everything but those users; a user that no longer exists and is the credentials file's user is
re-created with the credentials file's password, others are reported as not restored. The import adds and
updates; it does not delete what was created after the backup.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.backup.archive import Opened, Stage
    from sbops.context import Context

LAYER = "rabbitmq"
DEFINITIONS = "rabbitmq/definitions.json"
HASH_KEYS = ("password_hash", "hashing_algorithm")
KINDS = ("vhosts", "users", "permissions", "topic_permissions", "parameters", "global_parameters", "policies",
         "queues", "exchanges", "bindings")


# -- pure ---------------------------------------------------------------------------------------------------
def strip_hashes(definitions: dict[str, Any]) -> dict[str, Any]:
    users = [{k: v for k, v in u.items() if k not in HASH_KEYS} for u in definitions.get("users", [])]
    return {**definitions, "users": users}


def summary(definitions: dict[str, Any]) -> dict[str, int]:
    return {kind: len(definitions.get(kind) or []) for kind in KINDS if kind in definitions}


def split_users(definitions: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(what can be imported, users without a password hash)."""
    users = definitions.get("users") or []
    with_hash = [u for u in users if u.get("password_hash")]
    without = [u for u in users if not u.get("password_hash")]
    return {**definitions, "users": with_hash}, without


def identity(kind: str, item: dict[str, Any]) -> tuple[Any, ...]:
    """What names an item of `kind`, so presence can be compared across servers."""
    if kind == "vhosts" or kind == "users":
        return (item.get("name"),)
    if kind in ("permissions", "topic_permissions"):
        return (item.get("user"), item.get("vhost"), item.get("exchange", ""))
    if kind == "bindings":
        return (item.get("vhost"), item.get("source"), item.get("destination"), item.get("destination_type"),
                item.get("routing_key"))
    if kind == "global_parameters":
        return (item.get("name"),)
    if kind == "parameters":
        return (item.get("vhost"), item.get("component"), item.get("name"))
    return (item.get("vhost"), item.get("name"))


def missing_items(expected: dict[str, Any], observed: dict[str, Any], skip_users: set[str]) -> list[str]:
    out = []
    for kind in KINDS:
        have = {identity(kind, i) for i in observed.get(kind) or []}
        for item in expected.get(kind) or []:
            if kind == "users" and item.get("name") in skip_users:
                continue
            if kind == "global_parameters" and item.get("name") == "internal_cluster_id":
                continue
            if identity(kind, item) not in have:
                out.append(f"{kind[:-1] if kind.endswith('s') else kind} {'/'.join(str(p) for p in identity(kind, item))} is missing")
    return out


# -- I/O --------------------------------------------------------------------------------------------------------
def _api(ctx: "Context") -> Any:
    from sbops.probes.rabbitmq.session import api

    return api(ctx)


def _get_definitions(ctx: "Context") -> dict[str, Any]:
    answer = _api(ctx).get("/api/definitions")
    if answer.status != 200 or not isinstance(answer.data, dict):
        raise RuntimeError(f"GET /api/definitions: {answer.status or answer.error or answer.reason.value}")
    return answer.data


def backup(ctx: "Context", stage: "Stage", progress: Any, include_password_hashes: bool = False) -> dict[str, Any]:
    progress.show("rabbitmq: definitions", force=True)
    definitions = _get_definitions(ctx)
    if not include_password_hashes:
        definitions = strip_hashes(definitions)
    stage.write(DEFINITIONS, LAYER, json.dumps(definitions, indent=1, sort_keys=True).encode())
    return {"versions": {"server": str(definitions.get("rabbitmq_version", ""))}, "definitions": summary(definitions),
            "password_hashes": include_password_hashes}


def plan(opened: "Opened") -> list[str]:
    info = opened.manifest.layers.get(LAYER, {})
    if not info:
        return []
    counts = ", ".join(f"{n} {k}" for k, n in info.get("definitions", {}).items() if n)
    extra = "" if info.get("password_hashes") else "; users without saved password hashes are not re-created " \
                                                   "(but the credentials file's user)"
    return [f"import definitions ({counts}); newer objects are kept{extra}"]


def restore(ctx: "Context", opened: "Opened", progress: Any) -> dict[str, Any]:
    from sbops.probes.rabbitmq.session import path_user, username

    definitions = json.loads(opened.file(DEFINITIONS).read_text())
    importable, without = split_users(definitions)
    client = _api(ctx)
    present = {u.get("name") for u in (client.get("/api/users").data or [])} if without else set()
    skipped = []
    for user in without:
        if user.get("name") in present:
            continue
        if user.get("name") == username(ctx):
            answer = client.request("PUT", path_user(user["name"]), {"password": ctx.password("rabbitmq").reveal(),
                                                                      "tags": user.get("tags", "")})
            if answer.status not in (201, 204):
                raise RuntimeError(f"re-creating user {user['name']}: HTTP {answer.status}")
            continue
        skipped.append(str(user.get("name")))
    progress.show("rabbitmq: importing definitions", force=True)
    answer = client.request("POST", "/api/definitions", importable)
    if answer.status not in (200, 201, 204):
        detail = answer.data.get("reason", "") if isinstance(answer.data, dict) else (answer.error or "")
        raise RuntimeError(f"POST /api/definitions: HTTP {answer.status} {mask_text(str(detail), ctx.secrets())}".strip())
    return {"users_not_restored": skipped}


def verify(ctx: "Context", opened: "Opened", skipped: list[str] | None = None) -> list[str]:
    expected = json.loads(opened.file(DEFINITIONS).read_text())
    return missing_items(expected, _get_definitions(ctx), set(skipped or []))
