"""A stand-in TCP listener process: binds HOST:PORT, accepts and closes connections until SIGTERM.

Host tests use it in place of mysqld/mongod/rabbitmq/nfsd ports (those services' own tests belong to
their layers): `python tests/lab/listener.py 0.0.0.0 3306 [NAME]`, or `ListenerProc(host, port).start()`.
NAME, when given, becomes the process's name (as `ps -o comm` and psutil show it): the NFS lab's
stand-in is called nfsd, the name the installer's port validation accepts on the NFS port.
"""

from __future__ import annotations

import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()


@dataclass
class ListenerProc:
    """A listener in its own process (so psutil shows a pid and a name, and stop() really closes it)."""

    host: str
    port: int
    log: Path | None = None
    name: str = ""
    proc: object = field(default=None, repr=False)

    def start(self) -> "ListenerProc":
        import tempfile

        from tests.lab.common import Proc, wait_port

        log = self.log or Path(tempfile.mkstemp(prefix="listener.", suffix=".log")[1])
        argv = [sys.executable, str(HERE), self.host, str(self.port), *([self.name] if self.name else [])]
        self.proc = Proc(argv, log).start()
        probe = "::1" if ":" in self.host and self.host != "::" else "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        wait_port(probe, self.port, timeout=10, proc=self.proc.popen, log=log)  # type: ignore[attr-defined]
        return self

    @property
    def pid(self) -> int:
        return self.proc.popen.pid  # type: ignore[attr-defined]

    def stop(self) -> None:
        from tests.lab.common import wait_closed

        if self.proc is not None:
            self.proc.stop()  # type: ignore[attr-defined]
            if self.host in ("0.0.0.0", "127.0.0.1"):
                wait_closed("127.0.0.1", self.port, timeout=10)


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): the name the kernel reports for this process (15 bytes at most)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode()[:15], 0, 0, 0)


def serve(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        conn, _ = sock.accept()
        conn.close()


if __name__ == "__main__":
    if len(sys.argv) > 3:
        set_name(sys.argv[3])
    serve(sys.argv[1], int(sys.argv[2]))
