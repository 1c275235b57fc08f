"""host/: OS release, resources, listeners, mounts, /etc/exports, the stack's package versions and the
systemd status of its services. Pure: `packages_argv`, `render_listeners`. I/O: `collect`."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sbops.bundle.logs import UNITS

if TYPE_CHECKING:
    from sbops.context import Context

PACKAGES = ("mariadb-server", "mysql-server", "mongodb-org-server", "rabbitmq-server", "erlang-base",
            "nfs-kernel-server", "nfs-common", "certbot", "containerd", "k3s", "python3")


def packages_argv() -> list[str]:
    return ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n", *PACKAGES]


def render_listeners(rows: list[dict[str, Any]]) -> str:
    """One line per listening socket: proto, address:port, pid, process name (sorted by port)."""
    lines = [f"{'proto':<5} {'address':<40} {'pid':>7} process"]
    for row in sorted(rows, key=lambda r: (r["port"], r["address"], r["proto"])):
        addr = f"[{row['address']}]:{row['port']}" if ":" in row["address"] else f"{row['address']}:{row['port']}"
        lines.append(f"{row['proto']:<5} {addr:<40} {row['pid'] or '-':>7} {row['process'] or '-'}")
    return "\n".join(lines) + "\n"


def _listeners() -> list[dict[str, Any]]:
    import socket

    import psutil

    names: dict[int, str] = {}
    rows = []
    for conn in psutil.net_connections(kind="inet"):
        udp = conn.type == socket.SOCK_DGRAM
        if not conn.laddr or (not udp and conn.status != psutil.CONN_LISTEN) or (udp and conn.raddr):
            continue
        if conn.pid and conn.pid not in names:
            try:
                names[conn.pid] = psutil.Process(conn.pid).name()
            except psutil.Error:
                names[conn.pid] = ""
        rows.append({"proto": "udp" if udp else "tcp", "address": conn.laddr.ip, "port": conn.laddr.port,
                     "pid": conn.pid, "process": names.get(conn.pid or 0, "")})
    return rows


def _resources() -> dict[str, Any]:
    import psutil

    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    disks = {}
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks[part.mountpoint] = {"device": part.device, "fstype": part.fstype, "total": usage.total,
                                  "used": usage.used, "percent": usage.percent}
    return {"cpus": psutil.cpu_count(), "load": list(psutil.getloadavg()), "memory_total": mem.total,
            "memory_available": mem.available, "swap_total": swap.total, "swap_used": swap.used,
            "boot_time": psutil.boot_time(), "disks": disks}


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def collect(ctx: "Context", put: Callable[[str, bytes], None], timeout: float) -> list[str]:
    """Returns what could not be read (recorded in the manifest, never fatal)."""
    missing: list[str] = []
    for path, name in (("/etc/os-release", "os-release"), ("/proc/mounts", "mounts"), ("/etc/exports", "exports")):
        data = _read(path)
        if data is None:
            missing.append(f"{path}: not readable")
        else:
            put(f"host/{name}", data)
    uname = platform.uname()
    put("host/uname", f"{uname.system} {uname.node} {uname.release} {uname.version} {uname.machine}\n".encode())
    put("host/resources.json", (json.dumps(_resources(), indent=2) + "\n").encode())
    try:
        put("host/listeners.txt", render_listeners(_listeners()).encode())
    except Exception as exc:  # noqa: BLE001 - psutil refuses without root on some systems: recorded
        missing.append(f"listeners: {type(exc).__name__}")
    result = ctx.runner.run(packages_argv(), timeout=timeout)
    put("host/packages.txt", (result.stdout + (result.stderr if not result.ok else "")).encode())
    for unit in UNITS:
        status = ctx.runner.run(["systemctl", "status", "--no-pager", "--full", "--lines=0", unit], timeout=timeout)
        put(f"host/systemd/{unit}.txt",
            (status.stdout or status.stderr or f"exit code {status.returncode}\n").encode())
    return missing
