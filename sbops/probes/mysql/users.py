"""mysql.user: the stackbill accounts, their plugin, password and global grants; fix mysql-user.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from sbops.messages import mysql as M
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.mysql.access import any_session, app_login_error, login_notes, no_access_blocker, no_access_result
from sbops.probes.mysql.session import (ER_ACCESS_DENIED_ERROR, ER_NONEXISTING_GRANT, classify, describe_error,
    error_code, Session)
from sbops.secret import MASK

if TYPE_CHECKING:
    from sbops.context import Context


APP_USER_HOSTS = ("%", "localhost")


NATIVE = "mysql_native_password"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.%:-]+$")


# ======================================================================================================
# mysql.user
# ======================================================================================================
@dataclass(frozen=True)
class Account:
    host: str
    plugin: str
    auth_string: str | None  # None: not readable
    grants: tuple[str, ...]  # SHOW GRANTS lines with any password hash masked


@dataclass(frozen=True)
class UserFinding:
    host: str
    kind: str  # missing | plugin | password | grants
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"account": f"'stackbill'@'{self.host}'", "problem": self.kind, "detail": self.detail}


def native_hash(password: str) -> str:
    """mysql_native_password's stored form: '*' + upper hex of SHA1(SHA1(password))."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


_HASH = re.compile(r"(PASSWORD\s+)'[^']*'|(AS\s+)'[^']*'|(USING\s+)'[^']*'", re.I)


def mask_grant(line: str) -> str:
    return _HASH.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + f"'{MASK}'", line)


_GLOBAL_GRANT = re.compile(r"^GRANT\s+(.+?)\s+ON\s+\*\.\*\s+TO\s+", re.I)
IGNORED_PRIVILEGES = {"USAGE", "GRANT OPTION", "PROXY"}


def global_grants(lines: Iterable[str], server_privileges: Iterable[str] = ()) -> tuple[bool, bool, list[str]]:
    """Pure: (has all privileges on *.*, has grant option, privileges missing on *.*).

    MariaDB shows `GRANT ALL PRIVILEGES ON *.*`; MySQL 8 expands ALL into a list (and a second line of
    dynamic privileges), which is compared with what SHOW PRIVILEGES says the server has.
    """
    granted: set[str] = set()
    grant_option = False
    for line in lines:
        match = _GLOBAL_GRANT.match(line.strip())
        if not match:
            continue
        granted |= {p.strip().upper() for p in match.group(1).split(",") if p.strip()}
        if re.search(r"WITH\s+GRANT\s+OPTION", line, re.I):
            grant_option = True
    if "ALL PRIVILEGES" in granted or "ALL" in granted:
        return True, grant_option, []
    available = {p.strip().upper() for p in server_privileges} - IGNORED_PRIVILEGES
    missing = sorted(available - granted) if available else ["ALL PRIVILEGES"]
    return not missing, grant_option, missing


def user_findings(accounts: dict[str, Account], password: str | None, server_privileges: Sequence[str] = (),
                  hosts: Sequence[str] = APP_USER_HOSTS) -> list[UserFinding]:
    """Pure differ of the stackbill accounts against the installer's (plugin, password, grants)."""
    out = []
    for host in hosts:
        account = accounts.get(host)
        if account is None:
            out.append(UserFinding(host, "missing", "does not exist"))
            continue
        plugin = account.plugin or NATIVE
        if plugin != NATIVE:
            out.append(UserFinding(host, "plugin", f"uses {plugin}; the app's connector needs {NATIVE}"))
        elif password is not None and account.auth_string is not None and account.auth_string != native_hash(password):
            out.append(UserFinding(host, "password", "password differs from the credentials file"))
        has_all, grant_option, missing = global_grants(account.grants, server_privileges)
        if not has_all or not grant_option:
            lacking = ", ".join(missing[:5]) + ("..." if len(missing) > 5 else "") if missing else ""
            detail = "lacks " + " and ".join(filter(None, [
                f"privileges on *.* ({lacking})" if not has_all else "", "GRANT OPTION" if not grant_option else ""]))
            out.append(UserFinding(host, "grants", detail))
    return out


def judge_user(findings: list[UserFinding], accounts: dict[str, Account], user: str = "stackbill") -> Result:
    evidence = {"accounts": {h: {"plugin": a.plugin or NATIVE} for h, a in accounts.items()},
                "findings": [f.as_dict() for f in findings]}
    if not findings:
        return M.USER_CORRECT.result(user=user, plugin=NATIVE, details=evidence)
    first = findings[0]
    message = M.USER_MISSING if all(f.kind == "missing" for f in findings) else M.USER_MISCONFIGURED
    more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
    return message.result(user=user, host=first.host, detail=first.detail, more=more, details=evidence)


def observe_accounts(session: Session, user: str) -> tuple[dict[str, Account], list[str]]:
    """The user's accounts (host -> plugin, stored hash, masked grants) and SHOW PRIVILEGES."""
    rows = session.rows("SELECT Host, plugin, authentication_string FROM mysql.user WHERE User = %s", (user,))
    accounts = {}
    for row in rows:
        host = str(row["host"])
        try:
            grants = tuple(mask_grant(str(next(iter(g.values()))))
                           for g in session.rows("SHOW GRANTS FOR %s@%s", (user, host)))
        except Exception as exc:  # noqa: BLE001 - 1141: no grants at all
            if error_code(exc) != ER_NONEXISTING_GRANT:
                raise
            grants = ()
        auth = row.get("authentication_string")
        accounts[host] = Account(host, str(row.get("plugin") or ""), None if auth is None else str(auth), grants)
    privileges = [str(r["privilege"]) for r in session.rows("SHOW PRIVILEGES")]
    return accounts, privileges


def probe_user(ctx: "Context") -> Result:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return no_access_result(access, "read the MySQL users")
    user = ctx.service("mysql").username or "stackbill"
    try:
        accounts, privileges = observe_accounts(access.session, user)
    except Exception as exc:  # noqa: BLE001
        if classify(exc) is Reason.ACCESS_DENIED:
            return M.USERS_UNREADABLE.result(who=access.session.label, error=describe_error(exc))
        raise
    password = _password_or_none(ctx)
    return judge_user(user_findings(accounts, password, privileges), accounts, user)


def _password_or_none(ctx: "Context") -> str | None:
    try:
        return ctx.password("mysql").reveal()
    except Exception:  # noqa: BLE001 - no credentials file: the password cannot be compared
        return None


@dataclass(frozen=True)
class Statement:
    """SQL with `%s` for the password when `secret`; `shown` is the masked form for plans."""

    sql: str
    secret: bool = False

    @property
    def shown(self) -> str:
        return self.sql.replace("%s", f"'{MASK}'").replace("%%", "%") if self.secret else self.sql


def account_sql(user: str, host: str, escape: bool) -> str:
    for name in (user, host):
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"unsafe account name {name!r}")
    return f"'{user}'@'{host.replace('%', '%%') if escape else host}'"


def identified(mariadb: bool) -> str:
    return f"IDENTIFIED VIA {NATIVE} USING PASSWORD(%s)" if mariadb else f"IDENTIFIED WITH {NATIVE} BY %s"


def user_statements(findings: Sequence[UserFinding], user: str, mariadb: bool) -> list[tuple[str, list[Statement]]]:
    """Pure: (description, statements) per account that differs; passwords are parameters."""
    by_host: dict[str, list[UserFinding]] = {}
    for finding in findings:
        by_host.setdefault(finding.host, []).append(finding)
    out = []
    for host, items in by_host.items():
        acct = account_sql(user, host, escape=True)
        plain = account_sql(user, host, escape=False)
        kinds = {f.kind for f in items}
        statements: list[Statement] = []
        if "missing" in kinds:
            statements.append(Statement(f"CREATE USER {acct} {identified(mariadb)}", True))
            kinds.add("grants")
            description = f"create {plain} with {NATIVE} and the credentials file's password"
        elif kinds & {"plugin", "password"}:
            statements.append(Statement(f"ALTER USER {acct} {identified(mariadb)}", True))
            description = f"set {plain} to {NATIVE} with the credentials file's password"
        else:
            description = f"grant ALL PRIVILEGES ON *.* WITH GRANT OPTION to {plain}"
        if "grants" in kinds:
            statements.append(Statement(f"GRANT ALL PRIVILEGES ON *.* TO {plain} WITH GRANT OPTION"))
            if "missing" not in kinds and kinds & {"plugin", "password"}:
                description += ", and grant ALL PRIVILEGES WITH GRANT OPTION"
        out.append((description, statements))
    return out


def plan_user(ctx: "Context") -> Plan:
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access, "set mysql.admin_user/admin_password or mysql.admin_socket"),))
    session = access.session
    user = ctx.service("mysql").username or "stackbill"
    password = ctx.password("mysql")
    accounts, privileges = observe_accounts(session, user)
    findings = user_findings(accounts, password.reveal(), privileges)
    login = app_login_error(ctx)
    if login is not None and login.code == ER_ACCESS_DENIED_ERROR and not findings:
        # The stored hashes were not readable (or matched another path): a failed login proves a wrong password.
        findings = [UserFinding(h, "password", "login failed (1045)") for h in accounts]
    notes = login_notes(access)
    if not findings:
        return Plan(notes=notes, nothing_to_do=f"{user}@'%' and @'localhost' already match (plugin, password, grants)")
    changes = []
    for description, statements in user_statements(findings, user, session.is_mariadb):
        def apply(statements: list[Statement] = statements) -> None:
            for st in statements:
                session.execute(st.sql, (password.reveal(),) if st.secret else None)

        changes.append(Change(description, tuple(st.shown for st in statements), apply))
    return Plan(changes=tuple(changes), notes=tuple(notes))
