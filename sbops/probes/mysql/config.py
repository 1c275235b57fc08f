"""mysql.config: the effective global variables against stackbill.cnf and the option files the server reads;
fix mysql-config's drop-in and SET GLOBAL statements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from sbops.messages import mysql as M
from sbops.model import Change, Plan, Result
from sbops.probes.mysql import cnf
from sbops.probes.mysql.access import any_session, forget_sessions, no_access_blocker, no_access_result
from sbops.probes.mysql.session import ALL_ADDRESSES, is_loopback, truthy, Session

if TYPE_CHECKING:
    from sbops.context import Context


CNF_NAME = "stackbill.cnf"

# The drop-in, as ARCHITECTURE.md gives it (same name, same lines), with one header line.
# Named stackbill.cnf (not 99-stackbill.cnf): it is the file the installer wrote, so sbops replaces that
# one instead of adding a second source of truth, and "s" already sorts after the distro's files
# (50-server.cnf on MariaDB, mysqld.cnf on MySQL: digits and "m" come before "s"), so it wins.
STACKBILL_CNF = """# Managed by sbops (fix mysql-config); the StackBill installer's settings from ARCHITECTURE.md.
[mysqld]
# Allow connections from any IP (for K8s pods)
bind-address = 0.0.0.0

# SQL mode for StackBill compatibility
sql_mode = NO_ENGINE_SUBSTITUTION,STRICT_TRANS_TABLES

# Connection timeouts
wait_timeout = 28800           # 8 hours
interactive_timeout = 230400   # 64 hours
connect_timeout = 36000        # 10 hours

# Connection limits
max_connections = 1000
max_connect_errors = 100000

# Performance optimizations
skip-host-cache
skip-name-resolve

# Required for Flyway migrations
log_bin_trust_function_creators = 1
"""


# ======================================================================================================
# mysql.config: effective global variables against stackbill.cnf, and the files the server reads
# ======================================================================================================
MIN_CONNECTIONS = 1000
MIN_CONNECT_ERRORS = 100000


SQL_MODES = ("NO_ENGINE_SUBSTITUTION", "STRICT_TRANS_TABLES")
DROPIN_NAMES = ("99-stackbill.cnf", CNF_NAME)  # the current script's name first, then the earlier one
DROPIN_DIRS = ("/etc/mysql/mariadb.conf.d", "/etc/mysql/mysql.conf.d", "/etc/mysql/conf.d")


@dataclass(frozen=True)
class Rule:
    variable: str
    want: str  # the value stackbill.cnf sets (also what SET GLOBAL applies)
    test: str  # set | min | equal | on | bind | hostcache
    dynamic: bool  # settable with SET GLOBAL; else only a restart applies it
    option: str = ""  # the stackbill.cnf option that sets it, when its name differs from `variable`
    set_variable: str = ""  # what SET GLOBAL changes, when it differs from `variable`
    set_value: str = ""

    def describe(self) -> str:
        return {"set": f"exactly {self.want}", "min": f">= {self.want}", "on": "ON",
                "bind": "0.0.0.0 or the server IP", "hostcache": "ON (skip-host-cache)"}.get(self.test, self.want)


RULES: tuple[Rule, ...] = (
    Rule("sql_mode", ",".join(SQL_MODES), "set", True),
    Rule("max_connections", str(MIN_CONNECTIONS), "min", True),
    Rule("max_connect_errors", str(MIN_CONNECT_ERRORS), "min", True),
    Rule("log_bin_trust_function_creators", "ON", "on", True),
    Rule("wait_timeout", "28800", "equal", True),
    Rule("interactive_timeout", "230400", "equal", True),
    Rule("connect_timeout", "36000", "equal", True),
    Rule("skip_name_resolve", "ON", "on", False),
    # skip-host-cache: MySQL 8 shows it as host_cache_size 0; MariaDB keeps host_cache_size and only the
    # option files or the command line tell (probe_config fills the pseudo-variable from them). Turning
    # the host cache off online is SET GLOBAL host_cache_size = 0.
    Rule("skip_host_cache", "ON", "hostcache", True, option="skip_host_cache", set_variable="host_cache_size",
         set_value="0"),
    Rule("bind_address", "0.0.0.0", "bind", False),
)


@dataclass(frozen=True)
class Finding:
    variable: str
    observed: str | None
    wanted: str
    dynamic: bool
    set_value: str
    set_variable: str = ""
    missing: tuple[str, ...] = ()  # sql_mode: modes the server lacks
    extra: tuple[str, ...] = ()  # sql_mode: modes the server has beyond the document's

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variable": self.variable, "observed": self.observed, "wanted": self.wanted,
                               "dynamic": self.dynamic}
        if self.missing or self.extra:
            out.update(missing=list(self.missing), extra=list(self.extra))
        return out

    def text(self) -> str:
        if self.missing or self.extra:
            parts = ([f"lacks {','.join(self.missing)}"] if self.missing else []) + \
                    ([f"has extra {','.join(self.extra)}"] if self.extra else [])
            return f"{self.variable} {' and '.join(parts)} (want {self.wanted})"
        return f"{self.variable}={self.observed if self.observed is not None else '(absent)'} (want {self.wanted})"


def sql_modes(value: str) -> list[str]:
    return [m.strip().upper() for m in value.split(",") if m.strip()]


def sql_mode_difference(observed: str, want: Sequence[str] = SQL_MODES) -> tuple[list[str], list[str]]:
    """Pure: (missing, extra) modes of an observed sql_mode against the exact set wanted."""
    have = sql_modes(observed)
    return [m for m in want if m not in have], [m for m in have if m not in want]


def rule_holds(rule: Rule, observed: str, server_ip: str = "") -> bool:
    """Pure: does the observed value satisfy the rule?"""
    if rule.test == "set":
        missing, extra = sql_mode_difference(observed, rule.want.split(","))
        return not missing and not extra
    if rule.test == "min":
        try:
            return int(observed) >= int(rule.want)
        except ValueError:
            return False
    if rule.test in ("on", "hostcache"):
        return truthy(observed)
    if rule.test == "bind":
        # every address, or the server's own (pods reach it there); a loopback one never serves pods
        allowed = {*ALL_ADDRESSES, *([server_ip] if server_ip and not is_loopback(server_ip) else [])}
        addresses = {a.strip() for a in observed.split(",") if a.strip()}
        return bool(addresses) and addresses <= allowed
    return observed.strip() == rule.want


def config_findings(observed: dict[str, str], server_ip: str = "", rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Pure differ: every rule the server's effective globals break. A variable that is absent from
    `observed` because it cannot be seen (skip_host_cache on a remote MariaDB) is left out, not failed."""
    out = []
    for rule in rules:
        value = observed.get(rule.variable)
        if value is None and rule.test == "hostcache":
            continue
        if value is None or not rule_holds(rule, str(value), server_ip):
            missing, extra = sql_mode_difference(str(value or ""), rule.want.split(",")) if rule.test == "set" else ([], [])
            out.append(Finding(rule.variable, None if value is None else str(value), rule.describe(), rule.dynamic,
                               rule.set_value or rule.want, rule.set_variable, tuple(missing), tuple(extra)))
    return out


def set_global_sql(finding: Finding) -> str:
    """SET GLOBAL for a dynamic finding (values are constants from RULES, never user input)."""
    value = finding.set_value
    literal = value if re.fullmatch(r"\d+|ON|OFF", value) else f"'{value}'"
    return f"SET GLOBAL {finding.set_variable or finding.variable} = {literal}"


def observe_variables(session: Session, names: Iterable[str] | None = None) -> dict[str, str]:
    wanted = sorted(set(names or (r.variable for r in RULES)) | {"version", "version_comment", "host_cache_size",
                                                                  "pid_file"})
    placeholders = ", ".join(["%s"] * len(wanted))
    rows = session.rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", wanted)
    return {str(r["variable_name"]).lower(): str(r["value"]) for r in rows}


# -- the option files the server reads ------------------------------------------------------------------
@dataclass(frozen=True)
class Files:
    """What sbops saw of the server's option files (only for a server on this machine)."""

    chain: cnf.Chain
    argv: tuple[str, ...]  # the server's command line ('' when unreadable)
    unread: tuple[str, ...]  # StackBill drop-ins that exist where nothing includes them
    groups: frozenset[str]

    def effective(self) -> dict[str, cnf.Setting]:
        return self.chain.effective(self.groups)

    def sets(self, option: str) -> bool:
        """Whether the server read `option` as a flag that is on (files, or its command line)."""
        for arg in self.argv[1:]:
            name, eq, value = arg.lstrip("-").partition("=")
            if arg.startswith("--") and cnf.normalise(name) == option and (not eq or truthy(value)):
                return True
        setting = self.effective().get(option)
        return setting is not None and (setting.value is None or truthy(setting.value))

    def as_dict(self) -> dict[str, Any]:
        return {"read": list(self.chain.files), "included_dirs": list(self.chain.dirs),
                "unread_dropins": list(self.unread), "problems": list(self.chain.problems)}


SERVER_PROGRAMS = ("mysqld", "mariadbd", "mysqld-debug")


def server_argv(pid_file: str, read: Callable[[Path], str | None]) -> list[str] | None:
    """The server's command line from its pid file and /proc (None when either is unreadable, or when that
    pid is not a MySQL server here: a server in another pid namespace, a stale pid file)."""
    try:
        text = read(Path(pid_file)) if pid_file else None
        if not text or not text.strip().isdigit():
            return None
        raw = read(Path(f"/proc/{text.strip()}/cmdline"))
    except OSError:
        return None
    argv = [a for a in raw.split("\0") if a] if raw else []
    if not argv or Path(argv[0]).name not in SERVER_PROGRAMS:
        return None
    return argv


def dropin_dirs(ctx: "Context") -> list[str]:
    chosen = str(ctx.settings["mysql.config_dir"] or "")
    return list(dict.fromkeys([*([chosen] if chosen else []), *DROPIN_DIRS]))


def unread_dropins(chain: cnf.Chain, dirs: Iterable[str], exists: Callable[[str], bool]) -> list[str]:
    """Pure (given `exists`): StackBill drop-ins that exist but that the chain never reads."""
    out = []
    for directory in dirs:
        for name in DROPIN_NAMES:
            path = f"{directory.rstrip('/')}/{name}"
            if exists(path) and not chain.reads(path):
                out.append(path)
    return out


def observe_files(ctx: "Context", variables: dict[str, str]) -> Files | None:
    """Follow the server's option files from how it was started (its --defaults-file, else the defaults).
    None when one of them cannot be read (not root): then nothing is claimed about what the server reads."""
    unreadable: list[str] = []

    def read(path: str) -> str | None:
        try:
            return ctx.runner.read_file(Path(path))
        except OSError:  # PermissionError, IsADirectoryError: it exists, sbops cannot see it
            unreadable.append(path)
            return None

    chosen = str(ctx.settings["mysql.defaults_file"] or "")
    argv = server_argv(variables.get("pid_file", ""), ctx.runner.read_file) or []
    roots = [chosen] if chosen else (cnf.default_files(argv) if argv else None)
    if roots is None:
        roots = list(cnf.DEFAULT_FILES)
    chain = cnf.read_chain(roots, read, cnf.disk_lister)
    if unreadable or any("not a readable directory" in p for p in chain.problems):
        return None
    unread = unread_dropins(chain, dropin_dirs(ctx), lambda p: Path(p).is_file())
    version = variables.get("version", "")
    if "mariadb" in variables.get("version_comment", "").lower() and "mariadb" not in version.lower():
        version += "-MariaDB"
    return Files(chain, tuple(argv), tuple(unread), cnf.mysqld_groups(version))


def with_file_facts(observed: dict[str, str], files: Files | None) -> dict[str, str]:
    """The observed variables plus the pseudo-variable skip_host_cache: ON when host_cache_size is 0 or the
    server read skip-host-cache; OFF when its files are visible and do not; absent when they are not."""
    out = dict(observed)
    if observed.get("host_cache_size", "").strip() == "0" or (files is not None and files.sets("skip_host_cache")):
        out["skip_host_cache"] = "ON"
    elif files is not None:
        out["skip_host_cache"] = "OFF"
    return out


def judge_config(findings: list[Finding], observed: dict[str, str], files: Files | None = None) -> Result:
    """Pure: a StackBill drop-in that nothing reads fails (not_read) even when the live values are right:
    the next restart loses them. Otherwise every finding on the live values fails (misconfigured)."""
    evidence: dict[str, Any] = {"variables": {k: v for k, v in observed.items() if k in {r.variable for r in RULES}}}
    if files is not None:
        evidence["files"] = files.as_dict()
    else:
        evidence["files"] = None
    evidence["findings"] = [f.as_dict() for f in findings]
    if files is not None and files.unread:
        read = ", ".join(files.chain.files) or "no file"
        return M.DROPIN_NOT_READ.result(file=files.unread[0], read=read,
                                        differ=f"; and {len(findings)} setting(s) differ" if findings else "",
                                        details=evidence)
    if not findings:
        if "skip_host_cache" not in observed:  # a MariaDB whose option files sbops cannot see
            return M.VISIBLE_SETTINGS_MATCH.result(count=len(RULES) - 1, details=evidence)
        return M.SETTINGS_MATCH.result(count=len(RULES), details=evidence)
    listed = ", ".join(f.text() for f in findings[:4]) + (", ..." if len(findings) > 4 else "")
    return M.SETTINGS_DIFFER.result(count=len(findings), listed=listed, details=evidence)


def local_files(ctx: "Context", observed: dict[str, str]) -> Files | None:
    host, _ = ctx.endpoint("mysql")
    return observe_files(ctx, observed) if ctx.is_local(host) else None


def probe_config(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "read the server's variables")
    observed = observe_variables(access.session)
    files = local_files(ctx, observed)
    observed = with_file_facts(observed, files)
    return judge_config(config_findings(observed, ctx.server_ip), observed, files)


def config_dir(ctx: "Context", mariadb: bool) -> Path:
    chosen = ctx.settings["mysql.config_dir"]
    if chosen:
        return Path(chosen)
    return Path("/etc/mysql/mariadb.conf.d" if mariadb else "/etc/mysql/mysql.conf.d")


def service_name(ctx: "Context", mariadb: bool) -> str:
    return ctx.settings["mysql.service"] or ("mariadb" if mariadb else "mysql")


# -- what to write --------------------------------------------------------------------------------------
def cnf_lines(text: str = STACKBILL_CNF) -> dict[str, str]:
    """Pure: option name -> its line in stackbill.cnf (`sql_mode = ...`, `skip-host-cache`)."""
    return {e.name: text.splitlines()[e.line - 1].strip() for e in cnf.parse_cnf(text) if e.kind == "option"}


def option_of(rule: Rule) -> str:
    return rule.option or rule.variable


def file_findings(files: Files, server_ip: str) -> list[Rule]:
    """Pure-ish: the rules the server's option files do not satisfy (what a restart would bring back)."""
    effective = files.effective()
    values: dict[str, str] = {}
    for rule in RULES:
        setting = effective.get(option_of(rule))
        if setting is not None:
            values[rule.variable] = "ON" if setting.value is None else setting.value
    values["skip_host_cache"] = "ON" if files.sets("skip_host_cache") else "OFF"
    return [r for r in RULES if r.variable not in values or not rule_holds(r, values[r.variable], server_ip)]


def merge_cnf(text: str, lines: dict[str, str], groups: Iterable[str] = ("mysqld",)) -> str:
    """Pure: `text` with the given options set: an existing line of the option (in a mysqld group) is
    replaced in place, the others are appended to the first [mysqld] group (created when there is none).
    Everything else in the file (comments, other options, other groups) is kept as it is."""
    wanted = set(groups)
    out: list[str] = []
    group = ""
    done: set[str] = set()
    insert_at: int | None = None
    for raw in text.splitlines():
        entries = cnf.parse_cnf(raw)
        entry = entries[0] if entries else None
        if entry is not None and entry.kind == "group":
            if group == "mysqld" and insert_at is None:
                insert_at = len(out)
            group = entry.name
        if entry is not None and entry.kind == "option" and group in wanted and entry.name in lines:
            out.append(lines[entry.name])
            done.add(entry.name)
            continue
        out.append(raw)
    if group == "mysqld" and insert_at is None:
        insert_at = len(out)
    missing = [line for name, line in lines.items() if name not in done]
    if missing:
        if insert_at is None:
            out += ([""] if out and out[-1].strip() else []) + ["[mysqld]"] + missing
        else:
            while insert_at > 0 and not out[insert_at - 1].strip():
                insert_at -= 1  # before the blank lines that end the group
            out[insert_at:insert_at] = missing
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class FileTarget:
    """Where the settings go, and whether an !includedir must be added for the server to read them."""

    path: str
    adopted: bool  # an existing StackBill drop-in
    include_in: str = ""  # the option file an !includedir line goes into ('' when not needed)
    include_dir: str = ""
    blocker: str = ""


def choose_target(files: Files, default_dir: str, dir_exists: Callable[[str], bool]) -> FileTarget:
    """Pure (given `dir_exists`): adopt the StackBill drop-in the server reads last; else one that exists
    unread (and include its directory); else a new stackbill.cnf in the drop-in directory."""
    read = [f for f in files.chain.files if f.rsplit("/", 1)[-1] in DROPIN_NAMES]
    if read:
        return FileTarget(read[-1], adopted=True)
    if files.unread:
        path = files.unread[0]
        directory = path.rsplit("/", 1)[0]
        adopted = True
    else:
        directory = default_dir.rstrip("/")
        path = f"{directory}/{CNF_NAME}"
        adopted = False
        if files.chain.includes_dir(directory):
            return FileTarget(path, adopted)
        if not dir_exists(directory):
            return FileTarget(path, adopted, blocker=f"{directory} does not exist and no drop-in directory is read: "
                                                     "set mysql.config_dir to a directory of the server's my.cnf chain")
    root = files.chain.first_file
    if root is None:
        return FileTarget(path, adopted, blocker="the server reads no option file (started with --no-defaults, "
                                                 "or none exists): set mysql.defaults_file")
    return FileTarget(path, adopted, include_in=root, include_dir=directory)


def later_overrides(files: Files, target: str, options: Iterable[str]) -> list[str]:
    """Option files read after `target` that set one of `options` again (they would win)."""
    out = []
    names = set(options)
    order = {f: i for i, f in enumerate(files.chain.files)}
    position = order.get(target, len(order))
    for s in files.chain.settings:
        if s.group in files.groups and s.name in names and order.get(s.file, -1) > position and s.file != target:
            out.append(f"{s.file}:{s.line} sets {s.name}")
    return out


def plan_config(ctx: "Context", *, allow_restart: bool = False) -> Plan:
    from sbops.diff import file_diff
    from sbops.runner import display, service_restart_argv

    host, _ = ctx.endpoint("mysql")
    access = any_session(ctx, prefer_admin=True)
    if access.session is None:
        return Plan(blockers=(no_access_blocker(access),))
    session = access.session
    variables = observe_variables(session)
    local = ctx.is_local(host)
    files = observe_files(ctx, variables) if local else None
    observed = with_file_facts(variables, files)
    findings = config_findings(observed, ctx.server_ip)
    if not findings and not (files is not None and files.unread):
        return Plan(nothing_to_do="the server's effective settings already match stackbill.cnf")
    if not local:
        return Plan(blockers=(f"MySQL at {host} is not on this machine: run sbops on the database server "
                              "to write stackbill.cnf there",))
    if files is None:
        return Plan(blockers=("cannot read the server's option files (run as root, or set mysql.defaults_file): "
                              "sbops does not write settings where it cannot tell whether the server reads them",))
    target = choose_target(files, str(config_dir(ctx, session.is_mariadb)), lambda d: Path(d).is_dir())
    if target.blocker:
        return Plan(blockers=(target.blocker,))
    changes: list[Change] = []
    notes: list[str] = []
    if target.include_in:
        before = ctx.runner.read_file(Path(target.include_in)) or ""
        after = cnf.with_includedir(before, target.include_dir)
        changes.append(Change(
            f"add `!includedir {target.include_dir}` to {target.include_in}: nothing the server reads includes "
            "that directory, so a drop-in there is ignored",
            (), lambda: ctx.runner.write_file(Path(target.include_in), after, 0o644),
            (file_diff(target.include_in, before, after, ctx.secrets()),)))
    current = ctx.runner.read_file(Path(target.path))
    if target.adopted and current is not None:
        wanted = cnf_lines()
        lacking = file_findings(files, ctx.server_ip) if not target.include_in else list(RULES)
        new_text = merge_cnf(current, {option_of(r): wanted[option_of(r)] for r in lacking})
    else:
        new_text = STACKBILL_CNF
    if current != new_text:
        what = "update the settings in" if target.adopted else "write"
        survive = "so they survive restarts" if not target.include_in else "read once the include is added"
        changes.append(Change(f"{what} {target.path} (0644) with ARCHITECTURE.md's settings, {survive}", (),
                              lambda: ctx.runner.write_file(Path(target.path), new_text, 0o644),
                              (file_diff(target.path, current, new_text, ctx.secrets()),)))
    overrides = later_overrides(files, target.path, (option_of(r) for r in RULES))
    if overrides:
        notes.append("option files read after " + target.path + " set the same options again and win: "
                     + "; ".join(overrides[:4]))
    dynamic = [f for f in findings if f.dynamic]
    static = [f for f in findings if not f.dynamic]
    if dynamic:
        statements = tuple(set_global_sql(f) for f in dynamic)

        def set_globals() -> None:
            for sql in statements:
                session.execute(sql)

        changes.append(Change("apply online (SQL through the admin login): "
                              + ", ".join(f.set_variable or f.variable for f in dynamic), statements, set_globals))
    if static:
        names = ", ".join(f.variable for f in static)
        argv = service_restart_argv(service_name(ctx, session.is_mariadb), ctx.settings["mysql.restart_command"])
        if allow_restart:
            def restart() -> None:
                forget_sessions(ctx)
                result = ctx.runner.run(argv, timeout=180)
                if not result.ok:
                    raise RuntimeError(f"restart failed: {result.one_line_error()}")

            changes.append(Change(f"restart MySQL so {names} take effect (connections drop briefly)",
                                  (display(argv),), restart))
        else:
            notes.append(f"restart pending: {names} only change when MySQL restarts; the re-check will still fail "
                         f"on them until then (run again with --restart, or `{display(argv)}`)")
    return Plan(changes=tuple(changes), notes=tuple(notes))
