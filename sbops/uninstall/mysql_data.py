"""MySQL for `sbops uninstall --delete-db`: which of StackBill's databases exist, with their sizes, and the
statements that drop them and the stackbill accounts (pure builders, tested from tables)."""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from sbops.probes.mysql import Session, error_code


def observe_database_sizes(session: Session, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{name: {"tables", "rows", "bytes", "disk_bytes"}} for those of `names` that exist.

    bytes: data + index length from information_schema.TABLES (InnoDB's statistics: an estimate that lags
    behind recent writes); rows: its TABLE_ROWS estimate; disk_bytes: the tables' tablespace files from
    information_schema.INNODB_(SYS_)TABLESPACES, what DROP DATABASE frees, or None when that is not readable.
    """
    if not names:
        return {}
    marks = ", ".join(["%s"] * len(names))
    rows = session.rows(
        "SELECT s.SCHEMA_NAME AS name, COUNT(t.TABLE_NAME) AS tables, COALESCE(SUM(t.TABLE_ROWS), 0) AS table_rows, "
        "COALESCE(SUM(t.DATA_LENGTH), 0) + COALESCE(SUM(t.INDEX_LENGTH), 0) AS bytes "
        "FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME "
        f"WHERE s.SCHEMA_NAME IN ({marks}) GROUP BY s.SCHEMA_NAME", tuple(names))
    found = {str(r["name"]): {"tables": int(r["tables"] or 0), "rows": int(r["table_rows"] or 0),
                              "bytes": int(r["bytes"] or 0)} for r in rows}
    disk = observe_tablespace_sizes(session, list(found))
    for name, entry in found.items():
        entry["disk_bytes"] = None if disk is None else disk.get(name, 0)
    return found


def observe_tablespace_sizes(session: Session, names: Sequence[str]) -> dict[str, int] | None:
    """Bytes of each database's InnoDB file-per-table tablespaces (named "<db>/<table>"); None when the view
    cannot be read (it needs the PROCESS privilege)."""
    if not names:
        return {}
    view = "INNODB_SYS_TABLESPACES" if session.is_mariadb else "INNODB_TABLESPACES"
    try:
        rows = session.rows(f"SELECT NAME AS name, FILE_SIZE AS size FROM information_schema.{view}")
    except Exception as exc:  # noqa: BLE001 - 1227 without PROCESS, or an engine without the view
        if error_code(exc) is None:
            raise
        return None
    return tablespace_totals([(str(r["name"]), int(r["size"] or 0)) for r in rows], names)


def tablespace_totals(tablespaces: Iterable[tuple[str, int]], names: Sequence[str]) -> dict[str, int]:
    """Pure: sum tablespace sizes by their database part ("stackbill/account#P#p0" counts for stackbill)."""
    totals = {name: 0 for name in names}
    for space, size in tablespaces:
        db = space.split("/", 1)[0] if "/" in space else ""
        if db in totals:
            totals[db] += size
    return totals


def drop_database_sql(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_$-]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    return f"DROP DATABASE IF EXISTS `{name}`"


def drop_user_statement(user: str, host: str) -> tuple[str, tuple[str, str], str]:
    """(sql, args, shown): the account goes as parameters, so any host text (a netmask, a wildcard) is quoted
    by the client library; `shown` is what a person would type."""
    def quoted(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return "DROP USER IF EXISTS %s@%s", (user, host), f"DROP USER IF EXISTS {quoted(user)}@{quoted(host)}"
