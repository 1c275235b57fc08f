"""Host layer: machine resources, which service ports listen, and on which addresses.

Observers (psutil, imported inside functions) return plain data; judgements are pure functions of it,
so they are tested from tables without a machine of the right size or services on their ports.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from sbops.messages import host as msg
from sbops.model import Result

if TYPE_CHECKING:
    from sbops.context import Context

GIB = 1024**3
# A "16 GB" VM reports a little less (the kernel and firmware keep some): accept 5% below the minimum.
MEMORY_TOLERANCE = 0.95

# Services whose address must be reachable from pods (the databases and the broker), with their fix.
BIND_FIXES = {"mysql": "mysql-config", "mongodb": "mongodb-config", "rabbitmq": None}


# -- resources -------------------------------------------------------------------------------------
def observe_resources(disk_path: str) -> dict[str, Any]:
    """CPU count, total memory and free disk space at `disk_path`, as psutil sees them."""
    import psutil

    disk = psutil.disk_usage(disk_path)
    return {
        "cpus": psutil.cpu_count(logical=True) or 0,
        "memory_gb": round(psutil.virtual_memory().total / GIB, 1),
        "disk_path": disk_path,
        "disk_free_gb": round(disk.free / GIB, 1),
    }


def judge_resources(observed: dict[str, Any], min_cpus: int, min_memory_gb: float, min_disk_gb: float) -> Result:
    """Warn (degraded) listing each resource below the POC minimum."""
    short = []
    if observed["cpus"] < min_cpus:
        short.append(f"{observed['cpus']} vCPUs < {min_cpus}")
    if observed["memory_gb"] < min_memory_gb * MEMORY_TOLERANCE:
        short.append(f"{observed['memory_gb']:g} GB memory < {min_memory_gb:g} GB")
    if observed["disk_free_gb"] < min_disk_gb:
        short.append(f"{observed['disk_free_gb']:g} GB free on {observed['disk_path']} < {min_disk_gb:g} GB")
    minimums = {"cpus": min_cpus, "memory_gb": min_memory_gb, "disk_free_gb": min_disk_gb}
    if short:
        return msg.BELOW_MINIMUMS.result(short="; ".join(short), details={**observed, "minimums": minimums,
                                                                          "short": short})
    return msg.RESOURCES_OK.result(cpus=observed["cpus"], memory_gb=observed["memory_gb"],
                                   disk_free_gb=observed["disk_free_gb"], disk_path=observed["disk_path"],
                                   details={**observed, "minimums": minimums})


def probe_resources(ctx: "Context") -> Result:
    """host.resources: this machine against the settings' minimums."""
    observed = observe_resources(str(ctx.settings["host.disk_path"]))
    return judge_resources(observed, int(ctx.settings["host.min_cpus"]), float(ctx.settings["host.min_memory_gb"]),
                           float(ctx.settings["host.min_disk_gb"]))


# -- listeners -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listener:
    """One TCP socket in LISTEN state."""

    ip: str
    port: int
    pid: int | None = None
    process: str = ""


@dataclass(frozen=True)
class Expected:
    """A port StackBill needs on this host. `local` is False when the credentials put it on another host."""

    name: str  # mysql, mongodb, rabbitmq, rabbitmq-management, nfs
    host: str
    port: int
    local: bool


def observe_listeners() -> list[Listener]:
    """Every TCP LISTEN socket (IPv4 and IPv6) with its process where the OS lets us see it."""
    import psutil

    names: dict[int, str] = {}
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        pid = conn.pid
        if pid is not None and pid not in names:
            try:
                names[pid] = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                names[pid] = ""
        found.append(Listener(conn.laddr.ip.split("%")[0], conn.laddr.port, pid, names.get(pid, "") if pid else ""))
    return found


def run_listeners(ctx: "Context") -> list[Listener]:
    """The listeners, observed once per run and shared by the host and nfs checks."""
    return ctx.shared("host.listeners", observe_listeners)


def management_endpoint(url: str, default_host: str, default_port: int) -> tuple[str, int]:
    """Host and port of the RabbitMQ management API from the credentials' `Management:` URL."""
    if url:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            port = parts.port
        except ValueError:
            port = None
        return parts.hostname or default_host, port or default_port
    return default_host, default_port


def expected_ports(ctx: "Context") -> list[Expected]:
    """The ports StackBill's services should listen on, from the credentials file and settings."""
    out = []
    for name in ("mysql", "mongodb", "rabbitmq"):
        host, port = ctx.endpoint(name)
        out.append(Expected(name, host, port, ctx.is_local(host)))
    amqp_host = ctx.endpoint("rabbitmq")[0]
    m_host, m_port = management_endpoint(ctx.service("rabbitmq").management, amqp_host,
                                         int(ctx.settings["rabbitmq.management_port"]))
    out.append(Expected("rabbitmq-management", m_host, m_port, ctx.is_local(m_host)))
    nfs_host = (ctx.credentials.nfs_server if ctx.credentials else "") or ctx.server_ip
    out.append(Expected("nfs", nfs_host, int(ctx.settings["nfs.port"]), ctx.is_local(nfs_host)))
    return out


def _by_port(listeners: Iterable[Listener]) -> dict[int, list[Listener]]:
    table: dict[int, list[Listener]] = {}
    for item in listeners:
        table.setdefault(item.port, []).append(item)
    return table


def _describe(items: list[Listener]) -> dict[str, Any]:
    procs = sorted({f"{i.process or '?'}/{i.pid}" for i in items if i.pid})
    return {"addresses": sorted({i.ip for i in items}), "processes": procs}


def judge_listeners(expected: list[Expected], listeners: list[Listener]) -> Result:
    """Fail (not_running) naming each local service whose port has no listener."""
    table = _by_port(listeners)
    evidence: dict[str, Any] = {}
    missing: list[Expected] = []
    remote = []
    for item in expected:
        if not item.local:
            remote.append(item.name)
            evidence[item.name] = {"host": item.host, "port": item.port, "status": "not_applicable (remote host)"}
            continue
        found = table.get(item.port, [])
        evidence[item.name] = {"port": item.port, "listening": bool(found), **_describe(found)}
        if not found:
            missing.append(item)
    if len(remote) == len(expected):
        return msg.ALL_REMOTE.result(details={"services": evidence})
    if missing:
        return msg.NOT_LISTENING.result(missing=", ".join(f"{e.name} (port {e.port})" for e in missing),
                                        details={"services": evidence, "missing": [e.name for e in missing]})
    names = [e.name for e in expected if e.local]
    return msg.LISTENING.result(services=", ".join(names), details={"services": evidence, "remote": remote})


def probe_listeners(ctx: "Context") -> Result:
    """host.listeners: the credentials' local services against this run's LISTEN sockets."""
    return judge_listeners(expected_ports(ctx), run_listeners(ctx))


# -- bind address ----------------------------------------------------------------------------------
def _is_wildcard(ip: str) -> bool:
    return ip in ("0.0.0.0", "::", "")


def _is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


def judge_bind(expected: list[Expected], listeners: list[Listener], server_ip: str) -> Result:
    """Each local database/broker must listen on a wildcard or on the server's (non-loopback) IP.

    A service listening only on loopback (or only on some other address) is unreachable from pods.
    Services that do not listen at all are left to host.listeners.
    """
    table = _by_port(listeners)
    evidence: dict[str, Any] = {}
    bad: list[str] = []
    judged = 0
    for item in expected:
        if item.name not in BIND_FIXES:
            continue
        if not item.local:
            evidence[item.name] = {"host": item.host, "status": "not_applicable (remote host)"}
            continue
        addresses = sorted({i.ip for i in table.get(item.port, [])})
        if not addresses:
            evidence[item.name] = {"port": item.port, "status": "not listening (see host.listeners)"}
            continue
        judged += 1
        reachable = any(_is_wildcard(ip) or (ip == server_ip and not _is_loopback(ip)) for ip in addresses)
        if reachable:
            evidence[item.name] = {"port": item.port, "addresses": addresses, "reachable": True}
            continue
        where = "loopback only" if all(_is_loopback(ip) for ip in addresses) else f"not on {server_ip}"
        evidence[item.name] = {"port": item.port, "addresses": addresses, "reachable": False, "problem": where}
        bad.append(item.name)
    if judged == 0:
        return msg.NOTHING_TO_JUDGE.result(details={"services": evidence, "server_ip": server_ip})
    if not bad:
        return msg.REACHABLE.result(details={"services": evidence, "server_ip": server_ip})
    parts = [f"{n} listens on {', '.join(evidence[n]['addresses'])} ({evidence[n]['problem']}"
             + ("; listeners.tcp in rabbitmq.conf" if n == "rabbitmq" else "") + ")" for n in bad]
    fixes = [BIND_FIXES[n] for n in bad if BIND_FIXES[n]]
    # The first service's fix is the result's; the others are in details (the runbook says to run each).
    return msg.UNREACHABLE.result(problems="; ".join(parts), server_ip=server_ip, fix=fixes[0] if fixes else None,
                                  details={"services": evidence, "server_ip": server_ip, "unreachable": bad,
                                           "fixes": fixes})


def probe_bind(ctx: "Context") -> Result:
    """host.bind-address: where the local databases and the broker listen, against the server's address."""
    return judge_bind(expected_ports(ctx), run_listeners(ctx), ctx.server_ip)
