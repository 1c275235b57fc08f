"""Running the attempts inside a pod's network namespace: a child process, a deadline, and a kill.

Why a fresh interpreter (`python -m sbops.probes.netpath.child`) rather than os.fork(): sbops runs its
checks in threads (the doctor's engine up to 16 at once, the exporter's HTTP server and scrapes beside
them), and pymongo keeps monitor threads of its own. fork() copies only the calling thread; a lock another
thread held at that moment (the import lock, a logging handler's, a shared client's, OpenSSL's) stays locked
forever in the child, which then hangs in its first import or log line. subprocess starts the child with
fork+exec done in C with nothing in between, so the child begins with one thread and clean locks. The
price is the interpreter's start (about a tenth of a second), paid inside the check's budget.

The parent opens the namespace file itself (/proc/<pid>/ns/net) and hands the open descriptor down
(pass_fds): once open, it names that namespace even if the sandbox's process exits and its pid is reused,
and the parent checks its inode against the one the finder saw. The request, with the password, goes on
standard input; the child's environment is reduced to PATH and the path to this sbops, so no SBOPS_*
secret reaches it. The parent waits at most the budget, then kills the child's process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = "sbops.probes.netpath.child"
START_ALLOWANCE = 1.0  # seconds the interpreter may take to start, beyond the attempts' own budget


class EnterFailed(Exception):
    """The child could not make the attempts; `reason` is a Reason value (no_access, timeout, internal)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def child_env() -> dict[str, str]:
    """PATH, a UTF-8 locale and the directory that holds this sbops, nothing else (no SBOPS_* secrets)."""
    root = str(Path(__file__).resolve().parents[3])
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
            "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1"}


def attempts_budget(budget: float) -> float:
    """What the attempts may spend of `budget`: all but the interpreter's start, and at least half of it."""
    return max(budget * 0.5, budget - START_ALLOWANCE)


def run_in_netns(netns: str, expected_inode: int | None, request: dict[str, Any], budget: float) -> dict[str, Any]:
    """Run one request in the namespace at `netns`; the child's answer ({"attempts": [...], "netns": inode}).

    `budget`: seconds for everything, the child's start included; the attempts get attempts_budget(budget).
    Raises EnterFailed."""
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise EnterFailed("no_access", f"cannot open {netns}: {exc.strerror or exc}") from None
    try:
        if expected_inode is not None and os.fstat(fd).st_ino != expected_inode:
            raise EnterFailed("not_running", f"{netns} is another network namespace now (the pod restarted)")
        payload = json.dumps({**request, "netns_fd": fd, "budget": attempts_budget(budget)}).encode()
        try:
            proc = subprocess.Popen([sys.executable, "-m", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(fd,), env=child_env(), start_new_session=True)
        except OSError as exc:
            raise EnterFailed("internal", f"cannot start {sys.executable}: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(payload, timeout=budget)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise EnterFailed("timeout", f"the probe inside the pod did not finish within {budget:.1f}s") from None
    finally:
        os.close(fd)
    return parse_answer(proc.returncode, out, err)


def parse_answer(returncode: int, out: bytes, err: bytes) -> dict[str, Any]:
    """The child's JSON answer, or EnterFailed saying what went wrong (pure)."""
    try:
        answer = json.loads(out.decode("utf-8", "replace")) if out.strip() else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        raise EnterFailed("no_access" if answer.get("stage") == "enter" else "internal", str(answer["error"]))
    if returncode != 0 or not isinstance(answer, dict) or not isinstance(answer.get("attempts"), list):
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise EnterFailed("internal", f"the probe child exited with status {returncode}: "
                                      f"{lines[-1][:300] if lines else 'no output'}")
    return answer


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        pass
