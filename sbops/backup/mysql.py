"""MySQL/MariaDB in a backup: `mariadb-dump`/`mysqldump` of StackBill's databases, the stackbill accounts with
their grants, and exact row counts per table to verify a restore against.

The dump tool and the `mariadb`/`mysql` client get the login from a 0600 option file (`--defaults-file`, which
also keeps the machine's own option files out), never from their command line. The accounts are read with
SHOW CREATE USER / SHOW GRANTS over PyMySQL and restored the same way (their password hashes are in the archive:
that is why the archive is 0600).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from sbops.secret import Secret, mask_text

from sbops.backup import archive

if TYPE_CHECKING:
    from sbops.backup.archive import Opened, Stage
    from sbops.context import Context
    from sbops.probes.mysql.session import Session

LAYER = "mysql"
DUMP = "mysql/dump.sql"
ACCOUNTS = "mysql/accounts.sql"
DUMP_FLAGS = ("--single-transaction", "--routines", "--triggers", "--events", "--add-drop-database", "--hex-blob",
              "--default-character-set=utf8mb4", "--quick")
NAME = re.compile(r"^[A-Za-z0-9_$-]+$")
QUERY_TIMEOUT = 3600.0  # seconds a backup's or restore's own query may take (row counts of large tables)


# -- pure builders ------------------------------------------------------------------------------------------
def option_value(text: str) -> str:
    """Quote a value for a MySQL option file ("..." with \\ and " escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def defaults_text(user: str, password: str, host: str = "", port: int = 0, unix_socket: str = "") -> str:
    lines = ["[client]", f"user={option_value(user)}", f"password={option_value(password)}"]
    if unix_socket:
        lines.append(f"socket={option_value(unix_socket)}")
    else:
        lines += [f"host={option_value(host)}", f"port={int(port)}", "protocol=TCP"]
    return "\n".join(lines) + "\n"


def dump_argv(tool: str, defaults: str, databases: Sequence[str]) -> list[str]:
    """The dump command: --defaults-file first (as the tools require), the flags, the databases. No secret."""
    for name in databases:
        if not NAME.match(name):
            raise ValueError(f"unsafe database name {name!r}")
    return [tool, f"--defaults-file={defaults}", *DUMP_FLAGS, "--databases", *databases]


def client_argv(tool: str, defaults: str) -> list[str]:
    return [tool, f"--defaults-file={defaults}", "--batch", "--default-character-set=utf8mb4"]


def pick_tool(candidates: Sequence[str], mariadb: bool) -> str | None:
    """The first installed of `candidates`, preferring the MariaDB name for a MariaDB server and MySQL's for MySQL."""
    ordered = sorted(candidates, key=lambda name: (name.startswith("mariadb") != mariadb))
    for name in ordered:
        found = shutil.which(name)
        if found:
            return found
    return None


def account_statements(create_user: str, grants: Sequence[str]) -> list[str]:
    """Pure: SQL that brings an account back as SHOW CREATE USER / SHOW GRANTS described it: created when
    missing, altered to the saved authentication (hash) and options when present, then granted again."""
    match = re.match(r"\s*CREATE\s+USER\s+(.*)$", create_user, re.S | re.I)
    if not match:
        raise ValueError("not a CREATE USER statement")
    rest = match.group(1).strip().rstrip(";")
    return [f"CREATE USER IF NOT EXISTS {rest}", f"ALTER USER {rest}", *[g.strip().rstrip(";") for g in grants]]


def split_statements(text: str) -> list[str]:
    """accounts.sql: one statement per record, records separated by a line holding only ';;'."""
    return [s.strip() for s in text.split("\n;;\n") if s.strip()]


# -- I/O --------------------------------------------------------------------------------------------------------
@contextmanager
def defaults_file(ctx: "Context", admin: bool = False) -> Iterator[str]:
    """A 0600 option file with the login sbops uses (the stackbill login to the credentials file's Host:Port,
    or with `admin` the settings' admin login and target), in a private directory removed afterwards."""
    from sbops.probes.mysql.session import admin_target

    if admin:
        target = admin_target(ctx)
        secret = ctx.settings["mysql.admin_password"]
        text = defaults_text(str(ctx.settings["mysql.admin_user"]), secret.reveal() if secret else "",
                             target.get("host", ""), int(target.get("port", 0) or 0), target.get("unix_socket", ""))
    else:
        host, port = ctx.endpoint("mysql")
        password: Secret = ctx.password("mysql")
        text = defaults_text(ctx.service("mysql").username or "stackbill", password.reveal(), host, port)
    directory = tempfile.mkdtemp(prefix="sbops-mysql-")
    path = Path(directory) / "client.cnf"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        yield str(path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def login(ctx: "Context") -> tuple["Session", bool]:
    """The stackbill login, else the admin login (a restore after the account was dropped): (session, is_admin)."""
    from sbops.probes.mysql.access import any_session

    access = any_session(ctx)
    if access.session is None:
        errors = "; ".join(str(e) for e in access.errors.values())
        raise RuntimeError(f"cannot log in to MySQL: {errors}")
    # The checks' read timeout (a little under --timeout) suits probes, not COUNT(*) of a large table or
    # re-creating accounts after a 1 GiB load: this run's queries may take up to QUERY_TIMEOUT. PyMySQL
    # re-applies _read_timeout before each read, and has no public setter for it.
    access.session.conn._read_timeout = max(access.session.conn._read_timeout or 0, QUERY_TIMEOUT)
    return access.session, access.session.label.startswith("admin ")


def session(ctx: "Context") -> "Session":
    return login(ctx)[0]


def databases_present(s: "Session", wanted: Sequence[str]) -> list[str]:
    have = {str(r["database"]) for r in s.rows("SHOW DATABASES")}
    return [w for w in wanted if w in have]


def table_counts(s: "Session", databases: Sequence[str]) -> dict[str, int]:
    """Exact row counts (COUNT(*)) of every base table of `databases`: {"db.table": rows}."""
    if not databases:
        return {}
    marks = ", ".join(["%s"] * len(databases))
    tables = s.rows("SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name FROM information_schema.TABLES "
                    f"WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({marks}) ORDER BY 1, 2", tuple(databases))
    counts = {}
    for row in tables:
        db, name = str(row["db"]), str(row["name"])
        quoted = "`" + db.replace("`", "``") + "`.`" + name.replace("`", "``") + "`"
        counts[f"{db}.{name}"] = int(s.rows(f"SELECT COUNT(*) AS n FROM {quoted}")[0]["n"])
    return counts


def account_hosts(s: "Session", user: str) -> list[str]:
    return sorted(str(r["host"]) for r in s.rows("SELECT Host AS host FROM mysql.user WHERE User = %s", (user,)))


def account_records(s: "Session", user: str) -> list[str]:
    """For each host of `user`: its restoring statements, joined (secrets: the password hash)."""
    records = []
    for host in account_hosts(s, user):
        create = list(s.rows("SHOW CREATE USER %s@%s", (user, host))[0].values())[0]
        grants = [list(r.values())[0] for r in s.rows("SHOW GRANTS FOR %s@%s", (user, host))]
        records.extend(account_statements(str(create), [str(g) for g in grants]))
    return records


def _tool_version(tool: str) -> str:
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
        return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def backup(ctx: "Context", stage: "Stage", progress: Any) -> dict[str, Any]:
    from sbops.probes.mysql.schema import wanted_databases

    s, admin = login(ctx)
    databases = databases_present(s, wanted_databases(ctx))
    tool = pick_tool(("mariadb-dump", "mysqldump"), s.is_mariadb)
    if tool is None:
        raise RuntimeError("neither mariadb-dump nor mysqldump is installed (Debian: mariadb-client)")
    info: dict[str, Any] = {"versions": {"server": s.version, "dump": _tool_version(tool)},
                            "databases": databases, "missing": [d for d in wanted_databases(ctx) if d not in databases]}
    info["tables"] = table_counts(s, databases)
    user = ctx.service("mysql").username or "stackbill"
    info["accounts"] = [f"{user}@{h}" for h in account_hosts(s, user)]
    stage.write(ACCOUNTS, LAYER, "\n;;\n".join(account_records(s, user)).encode() + b"\n")
    if databases:
        with defaults_file(ctx, admin) as defaults, stage.open(DUMP) as out:
            proc = subprocess.Popen(dump_argv(tool, defaults, databases), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            written = 0
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 20):
                out.write(chunk)
                written += len(chunk)
                progress.show(f"mysql: dumping {', '.join(databases)}: {written >> 20} MiB")
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if proc.wait() != 0:
                last = mask_text(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}", ctx.secrets())
                raise RuntimeError(f"{Path(tool).name} failed: {last}")
        stage.add(DUMP, LAYER)
    return info


def plan(opened: "Opened") -> list[str]:
    info = opened.manifest.layers.get(LAYER, {})
    dump = next((p for p in opened.manifest.parts if p.name == DUMP), None)
    lines = []
    if info.get("databases"):
        lines.append(f"replace databases {', '.join(info['databases'])} (dropped and re-created from a "
                     f"{_size(dump.size if dump else 0)} dump, {len(info.get('tables', {}))} tables)")
    if info.get("accounts"):
        lines.append(f"re-create or reset the accounts {', '.join(info['accounts'])} and their grants")
    return lines


def _size(n: int) -> str:
    from sbops.backup.archive import human

    return human(n)


def restore(ctx: "Context", opened: "Opened", progress: Any) -> dict[str, Any]:
    s, admin = login(ctx)
    info = opened.manifest.layers.get(LAYER, {})
    tool = pick_tool(("mariadb", "mysql"), s.is_mariadb)
    if tool is None:
        raise RuntimeError("neither the mariadb nor the mysql client is installed (Debian: mariadb-client)")
    if info.get("databases"):
        progress.show("mysql: loading the dump", force=True)
        with defaults_file(ctx, admin) as defaults, open(opened.file(DUMP), "rb") as dump:
            proc = subprocess.run(client_argv(tool, defaults), stdin=dump, capture_output=True, timeout=None)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{Path(tool).name} failed loading the dump: "
                               f"{mask_text(err.splitlines()[-1] if err else f'exit {proc.returncode}', ctx.secrets())}")
    statements = split_statements(opened.file(ACCOUNTS).read_text()) if opened.file(ACCOUNTS).exists() else []
    for statement in statements:
        s.execute(statement)
    if statements:
        s.execute("FLUSH PRIVILEGES")
    return {"statements": len(statements)}


def verify(ctx: "Context", opened: "Opened") -> list[str]:
    """Differences between the restored server and the manifest: row counts per table, accounts present."""
    from sbops.probes.mysql.session import ADMIN_KEY, APP_KEY

    ctx.forget(APP_KEY)
    ctx.forget(ADMIN_KEY)
    s = session(ctx)
    info = opened.manifest.layers.get(LAYER, {})
    problems = archive.count_differences(dict(info.get("tables", {})), table_counts(s, list(info.get("databases", []))), "rows")
    user = ctx.service("mysql").username or "stackbill"
    have = {f"{user}@{h}" for h in account_hosts(s, user)}
    problems += [f"account {a} is missing" for a in info.get("accounts", []) if a not in have]
    return problems
