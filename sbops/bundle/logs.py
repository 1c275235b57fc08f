"""logs/: the journals of the stack's services, each StackBill pod's containers (current and previous), the
ingress gateway and istiod, the MariaDB/mongod/RabbitMQ log files and sbops's fix journal.

Pure: `parse_duration`, `tail`, `journal_argv`, `log_query`. I/O: the collectors below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from sbops.context import Context

UNITS = ("k3s", "mariadb", "mysql", "mongod", "rabbitmq-server", "nfs-server", "sbops-exporter",
         "sbops-ecr-refresh.timer", "certbot.timer")
ISTIO_APPS = ("istio-ingressgateway", "istiod")
LOG_FILES: dict[str, tuple[str, ...]] = {
    "mysql": ("/var/log/mysql/error.log", "/var/log/mariadb/mariadb.log", "/var/log/mysqld.log"),
    "mongodb": ("/var/log/mongodb/mongod.log",),
    "rabbitmq": ("/var/log/rabbitmq/*.log",),
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Window:
    """How much of each log: the last `lines` lines, or what is newer than `since` seconds."""

    lines: int = 2000
    since: int | None = None


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d', '1h30m' -> seconds; anything else raises ValueError (the CLI names the flag)."""
    parts = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"'{text}' is not a duration such as 30m, 2h or 1d")
    days, hours, minutes, seconds = (int(g or 0) for g in parts.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"'{text}' is not a positive duration")
    return total


def tail(data: bytes, lines: int) -> bytes:
    """The last `lines` lines of `data`."""
    if lines <= 0:
        return b""
    end = len(data) - (1 if data.endswith(b"\n") else 0)
    pos = end
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return data
    return data[pos + 1:]


def journal_argv(unit: str, window: Window) -> list[str]:
    argv = ["journalctl", "--no-pager", "--output=short-iso", "-u", unit]
    if window.since is not None:
        argv.append(f"--since=-{window.since}s")  # journalctl reads a leading '-' as "ago"
    else:
        argv.append(f"--lines={window.lines}")
    return argv


def log_query(container: str, window: Window, previous: bool) -> dict[str, Any]:
    query: dict[str, Any] = {"container": container, "timestamps": "true"}
    if window.since is not None:
        query["sinceSeconds"] = window.since
    else:
        query["tailLines"] = window.lines
    if previous:
        query["previous"] = "true"
    return query


def read_tail(path: Path, window: Window, limit: int = 64 << 20) -> bytes:
    """The end of a log file: at most `limit` bytes read from its end, then its last lines."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    return tail(data, window.lines) if window.since is None else data


# -- I/O --------------------------------------------------------------------------------------------------

def journals(ctx: "Context", window: Window, put: Callable[[str, bytes], None], timeout: float) -> None:
    for unit in UNITS:
        result = ctx.runner.run(journal_argv(unit, window), timeout=timeout)
        body = result.stdout if result.ok else f"journalctl exited {result.returncode}: {result.one_line_error()}\n"
        put(f"logs/journal/{unit}.log", body.encode())


def pods(ctx: "Context", window: Window, put: Callable[[str, bytes], None], namespaces: list[str]) -> None:
    """Each pod's containers in the StackBill namespace, and istio's gateway and istiod."""
    from sbops import kube

    api = kube.api(ctx)
    stackbill = ctx.settings["namespace"]
    for ns in namespaces:
        for pod in api.list(kube.path(namespace=ns, plural="pods")):
            name = pod["metadata"]["name"]
            labels = pod["metadata"].get("labels") or {}
            if ns != stackbill and labels.get("app") not in ISTIO_APPS:
                continue
            statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
            for container in [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]:
                restarted = (statuses.get(container) or {}).get("restartCount", 0) > 0
                for previous in ((False, True) if restarted else (False,)):
                    where = f"logs/pods/{ns}/{name}/{container}{'.previous' if previous else ''}.log"
                    try:
                        text = api.text(kube.path(namespace=ns, plural="pods", name=name, sub="log"),
                                        **log_query(container, window, previous))
                    except Exception as exc:  # noqa: BLE001 - one container's log is not fatal
                        text = f"(not available: {_why(exc)})\n"
                    put(where, text.encode())


def files(ctx: "Context", window: Window, put: Callable[[str, bytes], None],
          paths: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """The services' log files and the fix journal; returns what was not found."""
    import glob

    wanted = dict(paths or LOG_FILES)
    wanted.setdefault("sbops", (str(ctx.settings["journal"]),))
    missing: list[str] = []
    for group, patterns in wanted.items():
        found = [p for pattern in patterns for p in sorted(glob.glob(pattern))]
        if not found:
            missing.append(f"{group}: none of {', '.join(patterns)}")
        for name in found:
            try:
                put(f"logs/{group}/{Path(name).name}", read_tail(Path(name), window))
            except OSError as exc:
                missing.append(f"{name}: {exc.strerror or exc}")
    return missing


def _why(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status:
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return type(exc).__name__
