"""Blackholed servers on loopback: what a hung API server looks like to a client.

- `Silent`: a listening socket whose connections are accepted and held, never answered (the TLS handshake
  hangs until the client's read timeout).
- `NeverAccepts`: tests.lab.common.Blackhole, a listening socket whose accept queue is full and never drained,
  so the kernel drops new SYNs (the client's connect times out).

Both listen on 127.0.0.1 only and stop by themselves when closed (use as context managers).
`kubeconfig(path, port)` writes a kubeconfig naming https://127.0.0.1:PORT with a token.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import yaml

from tests.lab.common import Blackhole


class Silent:
    """Accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()

    def __enter__(self) -> "Silent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NeverAccepts(Blackhole):
    """tests.lab.common.Blackhole (a full accept queue: further SYNs go unanswered) as a context manager."""

    def __enter__(self) -> "NeverAccepts":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def kubeconfig(path: Path, port: int, token: str = "blackhole-token") -> Path:
    """A valid kubeconfig for https://127.0.0.1:PORT (certificate not verified: nothing ever answers)."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "blackhole",
        "clusters": [{"name": "blackhole", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                       "insecure-skip-tls-verify": True}}],
        "users": [{"name": "blackhole", "user": {"token": token}}],
        "contexts": [{"name": "blackhole", "context": {"cluster": "blackhole", "user": "blackhole"}}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


MODES = {"silent": Silent, "never-accepts": NeverAccepts}
