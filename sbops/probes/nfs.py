"""NFS layer: the export of nfs.path to the nodes, its directory, and the running server.

Who mounts: an NFS persistent volume is mounted by the kubelet in the node's own network namespace, so
the NFS server sees the node's address (on a one-node K3s: the server's own), never a pod's. The export's
clients must therefore cover every Node's InternalIP (read from the API) and the server's own address;
ARCHITECTURE.md's `10.42.0.0/16` (the pod network) refuses every mount.

Pure parts: the exports(5) parser, the `exportfs -v` parser, the judgements, and the rewrite of the
exports file (old text -> new text, every other line and comment kept). I/O: reading files, probing
the directory, listing listeners, running exportfs through ctx.runner.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.diff import file_diff
from sbops.messages import Message
from sbops.messages import nfs as msg
from sbops.model import Change, Plan, Reason, Result

if TYPE_CHECKING:
    from sbops.context import Context

log = logging.getLogger("sbops.nfs")

GIB = 1024**3
# The options the installer uses (and the fix writes). no_root_squash: the nfs-subdir-external-provisioner
# runs as root and creates/archives/deletes volume directories holding files of any pod's user; squashed to
# nobody it cannot, and pods that chown their data directory as root fail. Exposure is limited to the nodes.
DESIRED_OPTIONS = ("rw", "sync", "no_subtree_check", "no_root_squash")
# nfs-utils' defaults for options a client entry does not set.
DEFAULT_OPTIONS = ("ro", "sync", "root_squash", "wdelay", "no_subtree_check")
WORLD = "*"
# Pairs of options where the last one given wins.
_OPPOSITES = {"rw": "ro", "ro": "rw", "sync": "async", "async": "sync",
              "root_squash": "no_root_squash", "no_root_squash": "root_squash"}


# -- the exports(5) parser -------------------------------------------------------------------------
@dataclass(frozen=True)
class Client:
    host: str  # "*" for everyone
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Export:
    path: str
    clients: tuple[Client, ...]
    line: int  # first physical line, 1-based
    end_line: int  # last physical line, 1-based
    comment: str = ""  # a trailing '# ...' on the entry, kept when the fix rewrites it
    defaults: tuple[str, ...] = ()  # '-opts' given after the path, applying to the clients after it
    error: str = ""  # a syntax error exportfs would reject the entry for (it then exports nothing of it)


def _unescape(token: str) -> str:
    """exports(5) paths may use octal escapes such as \\040 for a space."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), token)


def _tokenize(text: str) -> tuple[list[str], str]:
    """Split one logical line into tokens (double quotes group), and return any trailing comment."""
    tokens: list[str] = []
    current = ""
    in_token = False
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == '"':
                quoted = False
            else:
                current += ch
        elif ch == '"':
            quoted = True
            in_token = True
        elif ch == "#" and not in_token:
            if current or in_token:
                tokens.append(current)
            return tokens, text[i:].rstrip()
        elif ch.isspace():
            if in_token:
                tokens.append(current)
                current, in_token = "", False
        else:
            current += ch
            in_token = True
        i += 1
    if in_token:
        tokens.append(current)
    return tokens, ""


def logical_lines(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, joined text) per logical line: a trailing backslash continues a line."""
    out = []
    physical = text.splitlines()
    i = 0
    while i < len(physical):
        start = i
        joined = ""
        line = physical[i]
        while line.rstrip().endswith("\\") and i + 1 < len(physical):
            joined += line.rstrip()[:-1] + " "
            i += 1
            line = physical[i]
        joined += line.rstrip().removesuffix("\\")
        out.append((start + 1, i + 1, joined))
        i += 1
    return out


_CLIENT = re.compile(r"^(?P<host>[^()]*)(?:\((?P<opts>[^()]*)\))?$")


def parse_exports(text: str) -> list[Export]:
    """Parse an exports table. A client written as '(opts)' (a space before the parenthesis) is everyone."""
    exports = []
    for first, last, joined in logical_lines(text):
        tokens, comment = _tokenize(joined)
        if not tokens:
            continue
        path = _unescape(tokens[0])
        defaults: list[str] = []
        clients = []
        error = ""
        for token in tokens[1:]:
            if token.startswith("-") and not clients:
                defaults += [o for o in token[1:].split(",") if o]
                continue
            match = _CLIENT.match(token)
            if match:
                host = match.group("host") or WORLD
                opts = tuple(o for o in (match.group("opts") or "").split(",") if o)
            else:
                host, opts = token, ()
                error = error or f"bad option list in '{token}' (no spaces inside the parentheses)"
            clients.append(Client(host, opts))
        if not clients:
            clients.append(Client(WORLD, ()))
        exports.append(Export(path, tuple(clients), first, last, comment, tuple(defaults), error))
    return exports


def norm_path(path: str) -> str:
    return os.path.normpath(path) if path else path


def entries_for(exports: list[Export], path: str) -> list[Export]:
    return [e for e in exports if norm_path(e.path) == norm_path(path)]


def effective_options(options: tuple[str, ...], defaults: tuple[str, ...] = ()) -> dict[str, bool]:
    """Resolve rw/ro, sync/async, root squashing: later options override earlier ones and the defaults."""
    state = {"rw": False, "sync": True, "root_squash": True}
    for opt in (*DEFAULT_OPTIONS, *defaults, *options):
        if opt in ("rw", "ro"):
            state["rw"] = opt == "rw"
        elif opt in ("sync", "async"):
            state["sync"] = opt == "sync"
        elif opt in ("root_squash", "no_root_squash"):
            state["root_squash"] = opt == "root_squash"
    return state


def client_network(host: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The IP network a client names (10.42.0.0/16, 10.42.0.0/255.255.0.0, a single IP), else None."""
    if host in (WORLD, "<world>"):
        return ipaddress.ip_network("0.0.0.0/0")
    try:
        return ipaddress.ip_network(host.strip("[]").replace("]/", "/"), strict=False)
    except ValueError:
        return None


def covers(host: str, pod_network: str) -> bool:
    """Whether the client `host` covers the whole network `pod_network` (or the one address it names)."""
    net = client_network(host)
    pod = ipaddress.ip_network(pod_network, strict=False)
    return net is not None and net.version == pod.version and pod.subnet_of(net)  # type: ignore[arg-type]


def is_world(host: str) -> bool:
    """Everyone: `*`, `<world>` or a /0 network."""
    net = client_network(host)
    return host in (WORLD, "<world>") or (net is not None and net.prefixlen == 0)


def node_internal_ips(nodes: list[dict[str, Any]]) -> list[str]:
    """Every Node's InternalIP addresses, in the API's order (a dual-stack node has two)."""
    out: list[str] = []
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP" and address.get("address") and address["address"] not in out:
                out.append(address["address"])
    return out


@dataclass(frozen=True)
class Mounters:
    """The addresses NFS mounts come from: the nodes' InternalIPs and the server's own address. `note` says
    why the node list is missing (then only the server's address is known) and is '' when it was read."""

    addresses: tuple[str, ...]
    nodes: tuple[str, ...]
    server: str
    note: str = ""


def mounters(node_ips: list[str] | None, server_ip: str, why: str = "") -> Mounters:
    """Pure: the addresses the export must cover. Without a node list, the server's own address only (never
    the pod network: the kubelet does not mount from a pod address)."""
    nodes = tuple(node_ips or ())
    addresses = tuple(dict.fromkeys((*nodes, server_ip) if server_ip else nodes))
    note = "" if node_ips is not None else (f"the node list cannot be read ({why}): judged against this server's "
                                            f"address {server_ip} only")
    return Mounters(addresses, nodes, server_ip, note)


def _export_result(message: Message, who: Mounters, details: dict[str, Any], **args: Any) -> Result:
    """An nfs.export finding, with the note on the node list (empty when it was read) in its summary."""
    if who.note:
        details = {**details, "nodes_unknown": who.note}
    return message.result(note=f" ({who.note})" if who.note else "", details=details, **args)


def judge_export(exports: list[Export] | None, path: str, who: Mounters, exports_file: str,
                 pod_network: str = "") -> Result:
    """missing (no entry) / misconfigured (a node or the server not covered, or not rw+sync for it) /
    insecure (exported to everyone) / ok. The narrowest client covering an address is the one that applies."""
    if exports is None:
        return _export_result(msg.NO_EXPORTS_FILE, who, {"exports_file": exports_file}, exports_file=exports_file,
                              path=path)
    mine = entries_for(exports, path)
    if not mine:
        return _export_result(msg.NO_ENTRY, who, {"exports_file": exports_file,
                                                  "exported_paths": [e.path for e in exports]},
                              exports_file=exports_file, path=path)
    broken = [e for e in mine if e.error]
    if broken:
        return _export_result(msg.SYNTAX_ERROR, who, {"exports_file": exports_file, "lines": [e.line for e in mine]},
                              exports_file=exports_file, line=broken[0].line, error=broken[0].error, path=path)
    clients = [(c, e.defaults) for e in mine for c in e.clients]
    evidence: dict[str, Any] = {
        "exports_file": exports_file, "lines": [e.line for e in mine],
        "clients": {c.host: ",".join((*d, *c.options)) for c, d in clients},
        "node_addresses": list(who.nodes), "server_address": who.server, "required": list(who.addresses),
    }
    applies: dict[str, tuple[Client, tuple[str, ...]]] = {}
    for address in who.addresses:
        covering = [(c, d) for c, d in clients if covers(c.host, address)]
        if covering:
            applies[address] = max(covering, key=lambda cd: client_network(cd[0].host).prefixlen)  # type: ignore[union-attr]
    missing = [a for a in who.addresses if a not in applies]
    shown = ", ".join(c.host for c, _ in clients)
    if missing:
        evidence["missing"] = missing
        named = [c.host for c, _ in clients if client_network(c.host) is None]
        if named:
            evidence["not_comparable"] = named
            return _export_result(msg.MAY_MISS_NODES, who, evidence, path=path, clients=shown,
                                  missing=", ".join(missing), names=", ".join(named))
        pods = bool(pod_network) and all(covers(pod_network, c.host) for c, _ in clients if client_network(c.host))
        return _export_result(msg.MISSES_NODES, who, evidence, path=path, clients=shown,
                              pods_only=" (the pod network only)" if pods else "", missing=", ".join(missing))
    evidence["applies"] = {a: c.host for a, (c, _) in applies.items()}
    lacking = {}
    for address, (client, defaults) in applies.items():
        state = effective_options(client.options, defaults)
        gaps = [name for name, good in (("rw", state["rw"]), ("sync", state["sync"])) if not good]
        if gaps:
            lacking[address] = gaps
    if lacking:
        evidence["lacking"] = lacking
        first, gaps = next(iter(lacking.items()))
        return _export_result(msg.NOT_RW_SYNC, who, evidence, path=path, client=applies[first][0].host,
                              gaps=" and ".join(gaps), addresses=", ".join(lacking))
    wide = [c for c, _ in clients if is_world(c.host)]
    if wide:
        root = [c.host for c, d in clients if c in wide and not effective_options(c.options, d)["root_squash"]]
        evidence["wider_than_nodes"] = [c.host for c in wide]
        return _export_result(msg.TO_EVERYONE, who, evidence, path=path, addresses=", ".join(who.addresses),
                              root=" with no_root_squash (root access for anyone who reaches port 2049)" if root
                              else "")
    return _export_result(msg.EXPORTED, who, evidence, path=path, addresses=", ".join(who.addresses))


# -- rewriting the exports file (pure) -------------------------------------------------------------
def _quote(path: str) -> str:
    return f'"{path}"' if re.search(r'[\s"#]', path) else path


def _client_text(client: Client) -> str:
    return f"{client.host}({','.join(client.options)})" if client.options else client.host


def desired_clients(current: list[Client], addresses: tuple[str, ...] | list[str],
                    pod_network: str = "") -> list[Client]:
    """The export's clients after the fix: each mounting address with the installer's options, then the
    clients it had that are neither everyone, nor the pod network (ARCHITECTURE.md's wrong target, which
    gives every pod root access to the volumes), nor one of those addresses: someone else's are kept."""
    wanted = [Client(a, DESIRED_OPTIONS) for a in addresses]
    named = {str(client_network(a)) for a in addresses}
    pods = str(ipaddress.ip_network(pod_network, strict=False)) if pod_network else ""
    kept = []
    for client in current:
        net = client_network(client.host)
        if is_world(client.host) or (net is not None and (str(net) in named or str(net) == pods)):
            continue
        if client not in kept:
            kept.append(client)
    return wanted + kept


def desired_line(path: str, addresses: tuple[str, ...] | list[str], current: list[Client] | None = None,
                 defaults: tuple[str, ...] = (), pod_network: str = "") -> str:
    """The export line the installer and the fix write: the mounting addresses (plus kept clients)."""
    opts = f" -{','.join(defaults)}" if defaults else ""
    clients = desired_clients(current or [], addresses, pod_network)
    return f"{_quote(path)}{opts} " + " ".join(_client_text(c) for c in clients)


def rewrite_exports(old: str, path: str, addresses: tuple[str, ...] | list[str], pod_network: str = "") -> str:
    """Replace the entry (entries) for `path` with the desired line; keep every other line byte for byte.

    A trailing comment on the replaced entry is kept; a missing entry is appended. Clients of the old
    entry that are not everyone or the pod network are kept on the new line.
    """
    mine = entries_for(parse_exports(old), path)
    current = [c for e in mine for c in e.clients]
    defaults = mine[0].defaults if mine else ()
    line = desired_line(path, addresses, current, defaults, pod_network)
    physical = old.splitlines(keepends=True)
    if not mine:
        prefix = old if not old or old.endswith("\n") else old + "\n"
        return prefix + line + "\n"
    first = mine[0]
    ending = "\n" if physical[first.end_line - 1].endswith("\n") else ""
    replacement = line + (f"  {first.comment}" if first.comment else "") + ending
    drop = {n for e in mine for n in range(e.line, e.end_line + 1)}
    out = []
    for number, text in enumerate(physical, start=1):
        if number == first.line:
            out.append(replacement)
        elif number not in drop:
            out.append(text)
    return "".join(out)


# -- `exportfs -v` ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Active:
    path: str
    client: str  # "*" for <world>
    options: tuple[str, ...] = ()


def parse_exportfs(text: str) -> list[Active]:
    """Parse `exportfs -v`: 'path<TAB>client(opts)', or a long path alone with the client on the next line."""
    out: list[Active] = []
    path = ""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        tokens = raw.split()
        if not raw[0].isspace():
            path = _unescape(tokens[0])
            tokens = tokens[1:]
        for token in tokens:
            match = _CLIENT.match(token)
            host = (match.group("host") if match else token) or WORLD
            opts = tuple(o for o in ((match.group("opts") or "") if match else "").split(",") if o)
            out.append(Active(path, WORLD if host == "<world>" else host, opts))
    return out


def judge_server(listening: bool, port: int, listeners: dict[str, Any], exportfs_ok: bool, exportfs_error: str,
                 active: list[Active], path: str, file_clients: list[str] | None) -> Result:
    """not_running (port closed), missing/no_access (exportfs unusable), misconfigured (export not active)."""
    evidence: dict[str, Any] = {"port": port, "listening": listening, **listeners}
    if not listening:
        return msg.NOT_LISTENING.result(port=port, details=evidence)
    if not exportfs_ok:
        reason = Reason.MISSING if "not found" in exportfs_error else Reason.NO_ACCESS
        return msg.EXPORTFS_UNUSABLE.result(reason=reason, error=exportfs_error, details=evidence)
    mine = [a for a in active if norm_path(a.path) == norm_path(path)]
    evidence["active_exports"] = sorted({a.path for a in active})
    evidence["active_clients"] = [a.client for a in mine]
    if not mine:
        return msg.NOT_ACTIVE.result(path=path, fix="nfs-export", details=evidence)
    clients = ", ".join(a.client for a in mine)
    if file_clients is not None and same_clients(file_clients, [a.client for a in mine]) is False:
        evidence["file_clients"] = sorted(set(file_clients))
        return msg.STALE.result(path=path, clients=clients, fix="nfs-export", details=evidence)
    return msg.SERVING.result(port=port, path=path, clients=clients, details=evidence)


def _comparable(clients: list[str]) -> bool:
    """Only IP forms and '*' can be compared with exportfs -v; hostnames may come back canonicalised."""
    return all(c == WORLD or client_network(c) is not None for c in clients)


def same_clients(wanted: list[str], live: list[str]) -> bool | None:
    """Whether two client lists name the same networks (10.42.0.0/255.255.0.0 == 10.42.0.0/16); None: can't say."""
    if not (_comparable(wanted) and _comparable(live)):
        return None
    return {str(client_network(c)) for c in wanted} == {str(client_network(c)) for c in live}


# -- observing -------------------------------------------------------------------------------------
def nfs_is_local(ctx: "Context") -> tuple[bool, str]:
    host = str(ctx.settings["nfs.server"]) or ctx.server_ip
    return ctx.is_local(host), host


def observe_mounters(ctx: "Context") -> Mounters:
    """The nodes' InternalIPs from the API plus the server's own address; when the node list cannot be read
    (no kubeconfig, API down, no permission), the server's address only and a note saying why."""
    from sbops.kube import NoKubeconfig
    from sbops.probes import kubecommon

    try:
        nodes = kubecommon.api(ctx).list(kubecommon.path(plural="nodes"))
    except NoKubeconfig:
        return mounters(None, ctx.server_ip, "no kubeconfig")
    except Exception as exc:  # noqa: BLE001 - only API and network errors; anything else is a bug
        if not kubecommon.is_api_error(exc):
            raise
        return mounters(None, ctx.server_ip, f"Kubernetes API: {kubecommon.api_reason(exc).value}")
    return mounters(node_internal_ips(nodes), ctx.server_ip)


def read_exports(ctx: "Context") -> tuple[str | None, str]:
    """The exports file's text (None when absent) and its path; unreadable raises PermissionError."""
    path = str(ctx.settings["nfs.exports_file"])
    return ctx.runner.read_file(Path(path)), path


def exportfs_argv(ctx: "Context", *args: str) -> list[str]:
    return [*shlex.split(str(ctx.settings["nfs.exportfs_command"])), *args]


def observe_directory(path: str) -> dict[str, Any]:
    """Whether `path` exists, is a directory, accepts a new file, and its free space."""
    info: dict[str, Any] = {"path": path, "exists": os.path.exists(path)}
    if not info["exists"]:
        return info
    st = os.stat(path)
    info.update(is_dir=os.path.isdir(path), mode=oct(st.st_mode & 0o7777), uid=st.st_uid, gid=st.st_gid)
    if not info["is_dir"]:
        return info
    try:
        fd, name = tempfile.mkstemp(prefix=".sbops-write-test.", dir=path)
        os.close(fd)
        os.unlink(name)
        info["writable"] = True
    except OSError as exc:
        info["writable"] = False
        info["write_error"] = errno.errorcode.get(exc.errno or 0, "") + f": {exc.strerror}"
        info["as_root"] = os.geteuid() == 0
    usage = shutil.disk_usage(path)
    info["free_gb"] = round(usage.free / GIB, 1)
    return info


def judge_directory(info: dict[str, Any], min_free_gb: float) -> Result:
    path = info["path"]
    if not info["exists"]:
        return msg.DIRECTORY_MISSING.result(path=path, details=info)
    if not info["is_dir"]:
        return msg.NOT_A_DIRECTORY.result(path=path, details=info)
    if not info["writable"] and info.get("write_error", "").startswith("EACCES") and not info.get("as_root", True):
        return msg.DIRECTORY_NEEDS_ROOT.result(path=path, details=info)
    if not info["writable"]:
        return msg.DIRECTORY_READ_ONLY.result(path=path, error=info.get("write_error", ""), details=info)
    details = {"min_free_gb": min_free_gb, **info}
    if info["free_gb"] < min_free_gb:
        return msg.DIRECTORY_LOW_SPACE.result(path=path, free_gb=info["free_gb"], min_free_gb=min_free_gb,
                                              details=details)
    return msg.DIRECTORY_OK.result(path=path, free_gb=info["free_gb"], details=details)


WILDCARDS = frozenset({"0.0.0.0", "::", "*", ""})


def serves(listener_ip: str, server: str) -> bool:
    """Whether a socket listening on `listener_ip` answers clients that connect to `server`: a wildcard does, a
    specific address only for itself (nfsd on another address of this machine does not serve the pods')."""
    try:
        ipaddress.ip_address(server)
    except ValueError:
        return True  # a name: any local listener may be the one it resolves to
    return listener_ip in WILDCARDS or listener_ip == server


def listening_on(ctx: "Context", port: int) -> tuple[bool, dict[str, Any]]:
    from sbops.probes.host import run_listeners

    server = str(ctx.settings["nfs.server"]) or ctx.server_ip
    found = [item for item in run_listeners(ctx) if item.port == port and serves(item.ip, server)]
    procs = sorted({f"{i.process or '?'}/{i.pid}" for i in found if i.pid})
    return bool(found), {"addresses": sorted({i.ip for i in found}), "processes": procs}


def active_exports(ctx: "Context") -> tuple[bool, str, list[Active]]:
    result = ctx.runner.run(exportfs_argv(ctx, "-v"), timeout=ctx.net_timeout)
    if not result.ok:
        return False, result.one_line_error(), []
    return True, "", parse_exportfs(result.stdout)


def file_clients(ctx: "Context") -> list[str] | None:
    try:
        text, _ = read_exports(ctx)
    except OSError:
        return None
    if text is None:
        return None
    mine = entries_for(parse_exports(text), str(ctx.settings["nfs.path"]))
    return [c.host for e in mine for c in e.clients] or None


def not_local(ctx: "Context", message: Message = msg.EXPORT_REMOTE) -> Result | None:
    """The check's skip when the NFS server is another host (each check reports its own code), else None."""
    local, host = nfs_is_local(ctx)
    if local:
        return None
    return message.result(host=host, details={"nfs_server": host})


# -- the checks' bodies ----------------------------------------------------------------------------
def probe_export(ctx: "Context") -> Result:
    """nfs.export: the exports file's entry for nfs.path against the addresses the kubelet mounts from."""
    remote = not_local(ctx, msg.EXPORT_REMOTE)
    if remote:
        return remote
    exports_file = str(ctx.settings["nfs.exports_file"])
    try:
        text, path = read_exports(ctx)
    except PermissionError as exc:
        return msg.EXPORTS_UNREADABLE.result(exports_file=exports_file, error=exc.strerror or str(exc))
    exports = None if text is None else parse_exports(text)
    return judge_export(exports, str(ctx.settings["nfs.path"]), observe_mounters(ctx), path,
                        str(ctx.settings["pod_network"]))


def probe_directory(ctx: "Context") -> Result:
    """nfs.directory: nfs.path exists, accepts a new file, has free space."""
    return not_local(ctx, msg.DIRECTORY_REMOTE) or judge_directory(observe_directory(str(ctx.settings["nfs.path"])),
                                                                   float(ctx.settings["nfs.min_free_gb"]))


def probe_server(ctx: "Context") -> Result:
    """nfs.server: the NFS port listens and exportfs lists nfs.path as the exports file has it."""
    remote = not_local(ctx, msg.SERVER_REMOTE)
    if remote:
        return remote
    port = int(ctx.settings["nfs.port"])
    listening, listeners = listening_on(ctx, port)
    if not listening:
        return judge_server(False, port, listeners, False, "", [], "", None)
    good, error, active = active_exports(ctx)
    return judge_server(True, port, listeners, good, error, active, str(ctx.settings["nfs.path"]), file_clients(ctx))


# -- fixes -----------------------------------------------------------------------------------------
def _writable(path: Path) -> str:
    """Why `path` cannot be replaced atomically, or '' when it can."""
    parent = path.parent
    if not parent.is_dir():
        return f"{parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable (read-only filesystem or permissions)"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable (read-only, immutable attribute or permissions)"
    return ""


def plan_export(ctx: "Context") -> Plan:
    """Rewrite the export line for nfs.path to the nodes' addresses (when the check does not pass: a working
    export is left alone) and re-export."""
    exports_file = Path(str(ctx.settings["nfs.exports_file"]))
    path = str(ctx.settings["nfs.path"])
    pod_network = str(ctx.settings["pod_network"])
    argv = exportfs_argv(ctx, "-ra")
    blockers = []
    remote = not_local(ctx)
    if remote:
        return Plan(blockers=(remote.summary,))
    if shutil.which(argv[0]) is None:
        blockers.append(f"{argv[0]} not found: install nfs-kernel-server (apt-get install nfs-kernel-server)")
    try:
        old = ctx.runner.read_file(exports_file)
    except PermissionError as exc:
        return Plan(blockers=(f"cannot read {exports_file}: {exc.strerror}",))
    who = observe_mounters(ctx)
    verdict = judge_export(None if old is None else parse_exports(old), path, who, str(exports_file), pod_network)
    new = old or ""
    if not verdict.status.passed or verdict.reason is Reason.INSECURE:
        new = rewrite_exports(old or "", path, who.addresses, pod_network)
    changes: list[Change] = []
    notes: tuple[str, ...] = ()
    if new != (old or ""):
        why = _writable(exports_file)
        if why:
            blockers.append(why)
        if who.note:
            notes += (f"{who.note}; run this fix again when the API answers, to add the other nodes",)

        def write() -> None:
            ctx.runner.write_file(exports_file, new, 0o644)

        changes.append(Change(f"rewrite the entry of {path} in {exports_file} ({verdict.reason.value} now); "
                              f"other lines kept, previous file saved as {exports_file.name}.bak",
                              (), write, (file_diff(str(exports_file), old, new, ctx.secrets()),)))
    _, _, active = active_exports(ctx) if not blockers else (False, "", [])
    wanted = sorted({c.host for e in entries_for(parse_exports(new), path) for c in e.clients})
    live = sorted({a.client for a in active if norm_path(a.path) == norm_path(path)})
    if changes or not live or same_clients(wanted, live) is False:
        if not os.path.isdir(path):
            blockers.append(f"{path} does not exist: run `sbops fix nfs-directory` first (exportfs cannot export it)")

        def reexport() -> None:
            result = ctx.runner.run(argv, timeout=60)
            if result.ok:
                return
            # exportfs exits 1 when ANY entry is bad (say, another export's directory is gone) but still
            # exports the good ones: succeed when ours is now active, as the file says.
            _, _, now = active_exports(ctx)
            ours = [a.client for a in now if norm_path(a.path) == norm_path(path)]
            if not ours or same_clients(wanted, ours) is False:
                raise RuntimeError(f"{' '.join(argv)} failed: {result.one_line_error()}")
            log.warning("%s reported problems with other entries: %s", " ".join(argv), result.one_line_error())

        changes.append(Change("re-export every entry of the exports table (makes the file's export active)",
                              (" ".join(shlex.quote(a) for a in argv),), reexport))
    if blockers:
        return Plan(blockers=tuple(blockers))
    if not changes:
        return Plan(nothing_to_do=f"{path} is exported to {', '.join(who.addresses)} as required and the export "
                                  "is active")
    others = sorted({e.path for e in parse_exports(new) if norm_path(e.path) != norm_path(path)
                     and not os.path.isdir(e.path)})
    notes += tuple(f"exportfs will complain about {p} (no such directory); sbops leaves other entries alone"
                   for p in others)
    return Plan(changes=tuple(changes), notes=notes)


def plan_directory(ctx: "Context") -> Plan:
    """Create nfs.path with mode 0777, as the installer does; refuse to touch anything else."""
    remote = not_local(ctx)
    if remote:
        return Plan(blockers=(remote.summary,))
    path = str(ctx.settings["nfs.path"])
    info = observe_directory(path)
    if info["exists"] and not info["is_dir"]:
        return Plan(blockers=(f"{path} exists but is not a directory: move it away yourself (sbops deletes nothing)",))
    if info["exists"] and not info["writable"]:
        return Plan(blockers=(f"{path} is not writable ({info.get('write_error', '')}): a read-only mount or "
                              f"an immutable attribute (lsattr -d {path}); see `sbops explain nfs.directory`",))
    if info["exists"]:
        return Plan(nothing_to_do=f"{path} exists and is writable (free space needs more disk, not a fix)")
    mkdir = ["mkdir", "-p", path]
    chmod = ["chmod", "0777", path]

    def apply() -> None:
        for argv in (mkdir, chmod):
            result = ctx.runner.run(argv, timeout=30)
            if not result.ok:
                raise RuntimeError(f"{' '.join(argv)} failed: {result.one_line_error()}")

    return Plan(changes=(Change(f"create {path} with mode 0777 (as the installer does)",
                                (shlex.join(mkdir), shlex.join(chmod)), apply),))

