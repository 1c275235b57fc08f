"""mongodb.bind and fix mongodb-config: the listening addresses (running server, command line, mongod.conf)
and the bindIp/authorization edits to mongod.conf, then a restart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.diff import file_diff
from sbops.errors import NeedsCredentials
from sbops.messages import mongodb as M
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.mongodb.reachable import observe_anonymous_listdatabases
from sbops.probes.mongodb.session import (UNAUTHORIZED, WANTED_BIND, WILDCARDS, first_line, admin_login, app_login,
    forget, is_loopback)
from sbops.probes.net import tcp_probe, wait_for_port
from sbops.runner import display, service_restart_argv

if TYPE_CHECKING:
    from sbops.context import Context


# ---------------------------------------------------------------------------------------------------
# bind addresses
# ---------------------------------------------------------------------------------------------------
def parse_bind_ips(value: Any) -> list[str]:
    """mongod's bindIp: a comma-separated string (or a YAML list); unix socket paths are dropped."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [s for s in (str(i).strip() for i in items) if s and not s.startswith("/")]


def bind_from_net(net: Any) -> list[str] | None:
    """bindIp/bindIpAll of a `net` mapping (getCmdLineOpts' parsed.net or mongod.conf's net), None if absent."""
    if not isinstance(net, dict):
        return None
    if net.get("bindIpAll") in (True, "true", "True"):
        return ["0.0.0.0"]
    if "bindIp" in net:
        return parse_bind_ips(net.get("bindIp"))
    return None


def bind_from_config(doc: Any) -> list[str]:
    """What a mongod.conf binds: its net.bindIp, else mongod's default (localhost only since 3.6)."""
    found = bind_from_net((doc or {}).get("net") if isinstance(doc, dict) else None)
    return found if found is not None else ["localhost"]


def exposure(ips: list[str], server_ip: str) -> str:
    """all (a wildcard), server (the server IP among them), loopback (only), other (specific addresses)."""
    if any(ip in WILDCARDS for ip in ips):
        return "all"
    if not ips or all(is_loopback(ip) for ip in ips):
        return "loopback"  # even when server_ip is itself a loopback address: pods never reach it
    return "server" if server_ip in ips else "other"


def judge_bind(source: str, ips: list[str] | None, server_ip: str, listeners: list[str] | None = None) -> Result:
    """Pods reach MongoDB through the host IP: a loopback-only bind breaks them.

    `listeners` (the running server's sockets, when local) catch a config file that was changed
    but not yet applied by a restart.
    """
    if ips is None:
        return M.BIND_UNKNOWN.result(details={"source": source})
    shown = ",".join(ips) or "(none)"
    evidence: dict[str, Any] = {"source": source, "bind_ip": shown, "server_ip": server_ip}
    if listeners is not None:
        evidence["listening"] = ",".join(listeners) or "(none)"
    kind = exposure(ips, server_ip)
    if kind == "loopback":
        return M.BIND_LOOPBACK.result(bind_ip=shown, source=source, server_ip=server_ip, details=evidence)
    if listeners and exposure(listeners, server_ip) == "loopback":
        return M.BIND_NOT_APPLIED.result(source=source, bind_ip=shown, listeners=",".join(listeners),
                                         details={"restart_pending": True, **evidence})
    if kind == "other":
        return M.BIND_OTHER.result(bind_ip=shown, source=source, server_ip=server_ip, details=evidence)
    return M.BIND_OK.result(bind_ip=shown, source=source, server_ip=server_ip, details=evidence)


def observe_cmdline_net(ctx: "Context") -> tuple[Any, str]:
    """parsed.net of getCmdLineOpts (needs a login with clusterMonitor-like rights); (None, why) otherwise."""
    parsed, source = observe_cmdline(ctx)
    return (None if parsed is None else parsed.get("net")), source


def config_file_mismatch(parsed: dict[str, Any] | None, path: str) -> str:
    """Pure: why `path` is not the file the mongod at Host:Port was started with, or '' when it is (or when the
    server does not say: getCmdLineOpts refused, or a server without parsed.config)."""
    started_with = str((parsed or {}).get("config") or "")
    if not started_with or os.path.normpath(started_with) == os.path.normpath(path):
        return ""
    return (f"the mongod at the credentials file's Host:Port was started with --config {started_with}, not "
            f"{path} (mongodb.config_file): editing {path} would change another server's file")


def observe_cmdline(ctx: "Context") -> tuple[dict[str, Any] | None, str]:
    """`parsed` of getCmdLineOpts through the first login allowed to run it; (None, why) otherwise."""
    from pymongo.errors import OperationFailure, PyMongoError

    for getter in (admin_login, app_login):
        try:
            login = getter(ctx)
        except (NeedsCredentials, PyMongoError, OSError):
            continue
        if login is None or not login.ok:
            continue
        try:
            answer = login.client.admin.command("getCmdLineOpts")
        except (OperationFailure, PyMongoError):
            continue
        return dict(answer.get("parsed") or {}), f"getCmdLineOpts as {login.user}"
    return None, "getCmdLineOpts: no login"


def read_config(ctx: "Context", path: Path) -> tuple[str | None, str]:
    """The config file's text, or (None, why)."""
    try:
        text = ctx.runner.read_file(path)
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    if text is None:
        return None, f"{path}: not found"
    return text, ""


def parse_config(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) or {}


def observe_listeners(port: int) -> list[str] | None:
    """Addresses with a TCP listener on `port` on this host (psutil), None when they cannot be read."""
    try:
        import psutil

        conns = psutil.net_connections(kind="inet")
    except Exception:  # noqa: BLE001 - AccessDenied or an unusual /proc: the source is just unavailable
        return None
    return listeners_on(conns, port)


def listeners_on(conns: list[Any], port: int) -> list[str]:
    found: list[str] = []
    for conn in conns:
        if getattr(conn, "status", "") != "LISTEN" or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.laddr.ip not in found:
            found.append(conn.laddr.ip)
    return sorted(found)


def probe_bind(ctx: "Context") -> Result:
    """bindIp from getCmdLineOpts, else the config file (local server), else the listening sockets."""
    host, port = ctx.endpoint("mongodb")
    local = ctx.is_local(host)
    listeners = observe_listeners(port) if local else None
    if tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE:
        net, source = observe_cmdline_net(ctx)
    else:
        net, source = None, "getCmdLineOpts: server not reachable"
    ips = bind_from_net(net)
    if ips is not None:
        return judge_bind(source, ips, ctx.server_ip, listeners)
    tried = [f"{source} (no bindIp reported)"]
    if local:
        path = Path(ctx.settings["mongodb.config_file"])
        text, why = read_config(ctx, path)
        if text is not None:
            try:
                doc = parse_config(text)
            except Exception as exc:  # noqa: BLE001 - yaml errors: fall through to the sockets
                why = f"{path}: invalid YAML: {first_line(exc)}"
            else:
                return judge_bind(f"config file {path}", bind_from_config(doc), ctx.server_ip, listeners)
        tried.append(why)
        if listeners:
            result = judge_bind(f"listening sockets on port {port}", listeners, ctx.server_ip)
            return replace(result, details={**result.details, "not_used": tried})
        tried.append(f"no listener on port {port} on this host")
    else:
        tried.append(f"{host} is not this host: config file and sockets not consulted")
    result = judge_bind("none", None, ctx.server_ip)
    return replace(result, details={**result.details, "tried": tried})


# ---------------------------------------------------------------------------------------------------
# fix mongodb-config: bindIp and authorization in mongod.conf, then a restart
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigEdit:
    section: str
    key: str
    value: str
    old: Any  # None when absent

    def describe(self) -> str:
        was = "absent" if self.old is None else repr(self.old)
        return f"{self.section}.{self.key}: {self.value} (was {was})"


def config_edits(doc: Any, server_ip: str) -> list[ConfigEdit]:
    """The edits mongod.conf needs: bindIp reachable from pods, authorization enabled (pure)."""
    doc = doc if isinstance(doc, dict) else {}
    edits = []
    net = doc.get("net") if isinstance(doc.get("net"), dict) else {}
    if exposure(bind_from_config(doc), server_ip) not in ("all", "server"):
        edits.append(ConfigEdit("net", "bindIp", WANTED_BIND, net.get("bindIp")))
    security = doc.get("security") if isinstance(doc.get("security"), dict) else {}
    if str(security.get("authorization", "")).lower() != "enabled":
        edits.append(ConfigEdit("security", "authorization", "enabled", security.get("authorization")))
    return edits


_TOP_KEY = re.compile(r"^([A-Za-z_][\w.]*)\s*:(.*)$")


def set_yaml_key(text: str, section: str, key: str, value: str) -> str:
    """Set `section.key: value` in a YAML text, keeping every other line (and comments) as they are.

    Handles block mappings (mongod.conf's style) line by line; anything else (flow style, odd
    indentation) falls back to re-dumping the document, which keeps keys but drops comments.
    """
    import yaml

    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = None
    for i, line in enumerate(lines):
        match = _TOP_KEY.match(line)
        if match and match.group(1) == section:
            rest = match.group(2).split("#", 1)[0].strip()
            if rest:  # flow style or a scalar: not a block mapping
                return _redump(text, section, key, value)
            start = i
            break
    if start is None:
        out = "".join(lines)
        if out and not out.endswith("\n\n"):
            out += "\n" if out.strip() else ""
        result = out + f"{section}:\n  {key}: {value}\n"
    else:
        end = start + 1
        indent = None
        found = None
        while end < len(lines):
            line = lines[end]
            if line.strip() and not line[0].isspace() and not line.lstrip().startswith("#"):
                break
            if line.strip() and not line.lstrip().startswith("#"):
                this = len(line) - len(line.lstrip())
                indent = indent if indent is not None else this
                child = re.match(r"^\s*([\w.]+)\s*:", line)
                if this == indent and child and child.group(1) == key:
                    found = end
            end += 1
        pad = " " * (indent or 2)
        new_line = f"{pad}{key}: {value}\n"
        if found is not None:
            lines[found] = new_line
        else:
            last = start
            for j in range(start + 1, end):
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    last = j
            lines.insert(last + 1, new_line)
        result = "".join(lines)
    try:
        before = yaml.safe_load(text) or {}
        after = yaml.safe_load(result) or {}
    except yaml.YAMLError:
        return _redump(text, section, key, value)
    expected = _with_key(before, section, key, value)
    return result if after == expected else _redump(text, section, key, value)


def _with_key(doc: Any, section: str, key: str, value: str) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    if not isinstance(out.get(section), dict):
        out[section] = {}
    out[section][key] = value
    return out


def _redump(text: str, section: str, key: str, value: str) -> str:
    import yaml

    return yaml.safe_dump(_with_key(yaml.safe_load(text) or {}, section, key, value), sort_keys=False,
                          default_flow_style=False)


def apply_edits(text: str, edits: list[ConfigEdit]) -> str:
    for edit in edits:
        text = set_yaml_key(text, edit.section, edit.key, edit.value)
    return text


CONFIG_KEYS = frozenset({"bindIp", "authorization"})


def running_differs(doc: Any, authz_enforced: bool | None, listeners: list[str] | None, server_ip: str,
                    keys: frozenset[str] = CONFIG_KEYS) -> list[str]:
    """Ways the running server differs from a config file that is already right (a restart is pending)."""
    why = []
    security = (doc or {}).get("security") if isinstance(doc, dict) else None
    file_authz = isinstance(security, dict) and str(security.get("authorization", "")).lower() == "enabled"
    if "authorization" in keys and file_authz and authz_enforced is False:
        why.append("the running server does not enforce authorization")
    if "bindIp" in keys and listeners and exposure(listeners, server_ip) == "loopback" and \
            exposure(bind_from_config(doc), server_ip) in ("all", "server"):
        why.append(f"the running server listens only on {','.join(listeners)}")
    return why


def plan_config(ctx: "Context", *, allow_restart: bool = False, keys: frozenset[str] = CONFIG_KEYS) -> Plan:
    """bindIp and authorization in mongod.conf, then a restart. `keys` limits it to one of the two: the
    installer binds first, creates the user while authorization is off, then enables authorization."""
    from pymongo.errors import PyMongoError

    path = Path(ctx.settings["mongodb.config_file"])
    host, port = ctx.endpoint("mongodb")
    if not ctx.is_local(host):
        return Plan(blockers=(f"MongoDB at {host} is not on this host: run sbops on the MongoDB server to edit {path}",))
    parsed = None
    if tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE:
        try:
            parsed, _ = observe_cmdline(ctx)
        except PyMongoError:
            parsed = None
    other = config_file_mismatch(parsed, str(path))
    if other:
        return Plan(blockers=(f"refusing to change anything: {other}; set mongodb.config_file to that file",))
    text, why = read_config(ctx, path)
    if text is None:
        return Plan(blockers=(f"cannot read mongod's config ({why}): set mongodb.config_file",))
    try:
        doc = parse_config(text)
    except Exception as exc:  # noqa: BLE001 - yaml errors carry the line
        return Plan(blockers=(f"{path}: invalid YAML: {first_line(exc)}; fix it by hand first",))
    if not isinstance(doc, dict):
        return Plan(blockers=(f"{path}: not a YAML mapping; fix it by hand first",))
    edits = [e for e in config_edits(doc, ctx.server_ip) if e.key in keys]
    reachable = tcp_probe(host, port, ctx.net_timeout)[0] is Reason.NONE
    authz_enforced: bool | None = None
    if reachable:
        try:
            allowed, code, _ = observe_anonymous_listdatabases(ctx)
            authz_enforced = not allowed and code == UNAUTHORIZED
        except PyMongoError:
            authz_enforced = None
    listeners = observe_listeners(port)
    pending = running_differs(doc, authz_enforced, listeners, ctx.server_ip, keys)
    if not edits and not pending:
        settled = {"bindIp": f"bindIp {','.join(bind_from_config(doc))}", "authorization": "authorization enabled"}
        return Plan(nothing_to_do=f"{path} has {' and '.join(settled[k] for k in settled if k in keys)}, "
                    f"and the running server matches it")

    if any(e.key == "authorization" for e in edits) or "the running server does not enforce authorization" in pending:
        blocker = authorization_blocker(ctx, reachable)
        if blocker:
            return Plan(blockers=(blocker,))

    changes: list[Change] = []
    notes: list[str] = []
    if edits:
        new_text = apply_edits(text, edits)
        mode = _file_mode(path)

        def write() -> None:
            ctx.runner.write_file(path, new_text, mode)

        changes.append(Change(f"edit {path}: " + "; ".join(e.describe() for e in edits) + f" (backup {path}.bak)",
                              (), write, (file_diff(str(path), text, new_text, ctx.secrets()),)))
    argv = service_restart_argv(str(ctx.settings["mongodb.service"]), str(ctx.settings["mongodb.restart_command"]))
    why_restart = "to apply the new config" if edits else "because " + " and ".join(pending)
    if allow_restart:
        def restart() -> None:
            result = ctx.runner.run(argv, timeout=120)
            forget(ctx)
            if not result.ok:
                raise RuntimeError(f"restart failed: {display(argv)}: {result.one_line_error()}")
            if not wait_for_port(host, port, 60):
                raise RuntimeError(f"MongoDB did not accept connections on {host}:{port} within 60s of the restart")

        changes.append(Change(f"restart MongoDB {why_restart}", (display(argv),), restart))
    else:
        notes.append(f"restart pending: MongoDB keeps its old settings until it restarts ({why_restart}); "
                     f"rerun with --restart or run `{display(argv)}`")
    return Plan(changes=tuple(changes), notes=tuple(notes))


def authorization_blocker(ctx: "Context", reachable: bool) -> str:
    """Enabling authorization before the StackBill user can log in would lock the portal out (installer: user first)."""
    from pymongo.errors import PyMongoError

    username = ctx.service("mongodb").username
    if not reachable:
        return (f"enabling authorization needs proof that {username} can log in, and MongoDB is not reachable; "
                f"start it and run `sbops fix mongodb-user` first")
    try:
        login = app_login(ctx)
    except NeedsCredentials as exc:
        return f"enabling authorization needs {username}'s password to verify its login: {exc}"
    except PyMongoError as exc:
        return f"enabling authorization needs proof that {username} can log in: {first_line(exc)}"
    if not login.ok:
        return (f"enabling authorization now would lock StackBill out: {username} cannot log in (code {login.code}); "
                f"run `sbops fix mongodb-user` first")
    return ""


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o644
