"""mysql.schema: the StackBill databases exist; fix mysql-schema creates the missing ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Sequence

from sbops.messages import mysql as M
from sbops.model import Change, Plan, Result
from sbops.probes.mysql.access import any_session, login_notes, no_access_blocker, no_access_result
from sbops.probes.mysql.session import Session

if TYPE_CHECKING:
    from sbops.context import Context


DATABASES = ("stackbill", "configuration")


# ======================================================================================================
# mysql.schema
# ======================================================================================================
def wanted_databases(ctx: "Context") -> tuple[str, ...]:
    extra = ctx.service("mysql").database
    return tuple(dict.fromkeys([*DATABASES, *([extra] if extra else [])]))


def missing_databases(present: Iterable[str], wanted: Iterable[str]) -> list[str]:
    have = {p.lower() for p in present}
    return [w for w in wanted if w.lower() not in have]


def observe_databases(session: Session) -> list[str]:
    return [str(r["schema_name"]) for r in session.rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")]


def judge_schema(missing: list[str], wanted: Sequence[str]) -> Result:
    if missing:
        return M.DATABASES_MISSING.result(missing=", ".join(missing), details={"missing": missing, "wanted": list(wanted)})
    return M.DATABASES_PRESENT.result(databases=", ".join(wanted), details={"wanted": list(wanted)})


def probe_schema(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "list the databases")
    wanted = wanted_databases(ctx)
    return judge_schema(missing_databases(observe_databases(access.session), wanted), wanted)


def create_database_sql(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_$-]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    return f"CREATE DATABASE IF NOT EXISTS `{name}`"


def plan_schema(ctx: "Context") -> Plan:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access),))
    session = access.session
    wanted = wanted_databases(ctx)
    missing = missing_databases(observe_databases(session), wanted)
    notes = login_notes(access)
    if not missing:
        return Plan(notes=notes, nothing_to_do=f"databases present: {', '.join(wanted)}")
    changes = []
    for name in missing:
        sql = create_database_sql(name)
        changes.append(Change(f"create database {name}", (sql,), lambda sql=sql: session.execute(sql)))
    return Plan(changes=tuple(changes), notes=notes)
