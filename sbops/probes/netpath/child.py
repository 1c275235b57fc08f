"""The short-lived child that makes the connections from inside a pod's network namespace.

Run as `python -m sbops.probes.netpath.child` by sbops.probes.netpath.enter, never by hand. It reads one
request (JSON) on standard input, joins the network namespace whose file descriptor it inherited
(setns(fd, CLONE_NEWNET) through ctypes: Python 3.11 has no os.setns), makes the attempts, writes one answer
(JSON) on standard output and exits. Nothing runs inside the pod's containers: the child is a process of the
host that only shares the pod's network (interfaces, addresses, routes), so the traffic takes the pod's
path through the CNI bridge, the host firewall and kube-proxy's rules.

The namespace is joined first, in the main thread, before any other thread exists; the threads that run the
attempts side by side (pymongo's monitors too) are created afterwards and inherit it.

Request:  {"netns_fd": 3, "kind": "mysql|mongodb|rabbitmq|tcp|http", "targets": [{"host": h, "port": p}],
           "timeout": per-attempt seconds, "budget": seconds for all, "login": {"user": u, "password": p}}
Answer:   {"attempts": [...], "netns": inode}  or  {"error": "...", "stage": "enter|attempts"}, exit status 3.
The password arrives on standard input only; it is never on a command line, in the environment or in the answer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CLONE_NEWNET = 0x40000000
MAX_WORKERS = 8


def setns(fd: int) -> None:
    """Join the network namespace `fd` refers to (libc setns); OSError with the errno on failure."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"setns: {os.strerror(number)}")


class NotEntered(Exception):
    """The namespace could not be joined (the parent reports it as sbops's own lack of access)."""


def enter(fd: int) -> int:
    """Join the namespace of `fd` and prove it: the inode this thread is in now. Raises NotEntered."""
    try:
        wanted = os.fstat(fd).st_ino
        setns(fd)
        joined = os.stat("/proc/thread-self/ns/net").st_ino
    except OSError as exc:
        raise NotEntered(str(exc)) from None
    if joined != wanted:
        raise NotEntered(f"setns: still in network namespace {joined}, not {wanted}")
    return joined


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Join the namespace, then make every attempt concurrently within the budget."""
    from sbops.probes.netpath.attempts import KINDS

    joined = enter(int(request["netns_fd"]))
    attempt = KINDS[str(request["kind"])]
    deadline = time.monotonic() + float(request["budget"])
    timeout = float(request["timeout"])
    login = request.get("login") or {}
    targets = list(request.get("targets") or [])
    if not targets:
        return {"attempts": [], "netns": joined}

    def one(target: dict[str, Any]) -> dict[str, Any]:
        return attempt(str(target["host"]), int(target["port"]), timeout, deadline, **login)

    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(targets))) as pool:
        return {"attempts": list(pool.map(one, targets)), "netns": joined}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        answer = run(request)
    except Exception as exc:  # noqa: BLE001 - the parent reports it; the password is never in these errors
        text = str(exc).strip().splitlines()
        stage = "enter" if isinstance(exc, NotEntered) else "attempts"
        sys.stdout.write(json.dumps({"error": f"{type(exc).__name__}: {text[0][:300] if text else ''}",
                                     "stage": stage}))
        return 3
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
