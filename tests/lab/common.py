"""Process and port helpers shared by the lab servers (MariaDB, RabbitMQ, MongoDB-wire, ...)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Wait until something accepts on host:port; fail early (with the log's tail) if `proc` died."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}: {tail(log)}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g}s: {tail(log)}")


def wait_closed(host: str, port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} still accepts after {timeout:g}s")


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """TERM a child we started, KILL it when it does not exit within `timeout`; nothing when it is gone."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not Path(log).exists():
        return ""
    return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Proc:
    """A background server process with its log; stop() is idempotent."""

    argv: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> "Proc":
        handle = open(self.log, "ab")
        self.popen = subprocess.Popen(
            list(self.argv), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, start_new_session=True,
        )
        handle.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if not self.running:
            return
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


class Blackhole:
    """A loopback port that never completes a TCP handshake: a listener whose accept queue is full.

    Connects to it hang until the client's own timeout, like a firewalled (DROP) host, without
    sending a single packet off this machine.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(4):  # fill the accept and SYN queues; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.05)

    def close(self) -> None:
        for sock in self.fillers:
            sock.close()
        self.listener.close()


@pytest.fixture
def private_home(tmp_path_factory, monkeypatch) -> Path:
    """HOME and KUBECONFIG pointed at an empty temp dir, so code under test (kubeconfig discovery, ~/.kube)
    never reads or writes the real home of the machine running the tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return home
