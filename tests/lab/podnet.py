"""A pod's network as the kernel sees it, without a kubelet: a process in a network namespace of its own,
joined to the host by a veth pair, and containerd's bookkeeping of it.

- `unshare --net sleep` is the sandbox's process (what the pause container is): its /proc/PID/ns/net is the
  "pod's" network namespace. Inside it: loopback, the veth end 10.98.N.2/30 and a default route via the
  host end 10.98.N.1/30, which stands for the node's address on the CNI bridge. N is picked free at start,
  the interface names are unique (`np<hex>h` / `np<hex>p`), so parallel sessions do not collide.
- `write_bundle(state, pod)` writes what containerd's v2 runtime keeps for a running sandbox:
  `<state>/io.containerd.runtime.v2.task/k8s.io/<id>/config.json` (the CRI plugin's annotations naming the
  pod) and `init.pid`. Only this bookkeeping is a stand-in; the namespace, the veth, the routes and the
  firewall rules are real. Tests against a real kubelet's pods point setting netpath.containerd_state at
  that containerd's state directory instead.
- `drop(port)` / `dnat(ip, port, to_port)` add iptables rules that match this veth only (`-i <host end>`),
  as a host firewall and kube-proxy would; every rule and the veth are removed by `close()`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

TASKS = "io.containerd.runtime.v2.task/k8s.io"


def run(*argv: str) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")


def used_10_98() -> set[int]:
    """Third octets of 10.98.x.y addresses already on this machine's interfaces."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
    used = set()
    for word in out.split():
        if word.startswith("10.98."):
            used.add(int(word.split(".")[2]))
    return used


class PodNet:
    """One fake pod network: start() builds it, close() removes everything it added (idempotent)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(4)
        self.host_if, self.pod_if = f"np{tag}h", f"np{tag}p"
        free = sorted(set(range(1, 255)) - used_10_98())
        if not free:
            raise RuntimeError("no free 10.98.N.0/30 for the lab's veth")
        octet = free[secrets.randbelow(len(free))]
        self.host_ip, self.pod_ip = f"10.98.{octet}.1", f"10.98.{octet}.2"
        self.proc: subprocess.Popen | None = None
        self.rules: list[tuple[str, ...]] = []  # iptables arguments after -A/-I, to delete with -D

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "PodNet":
        import atexit

        atexit.register(self.close)  # an interrupted session must not leave rules or a veth behind
        self.proc = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ns = f"/proc/{self.pid}/ns/net"
        end = time.monotonic() + 5
        while os.stat(ns).st_ino == os.stat("/proc/self/ns/net").st_ino:  # unshare has not run yet
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"unshare --net did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.01)
        try:
            run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.pod_if)
            run("ip", "link", "set", self.pod_if, "netns", str(self.pid))
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            run("ip", "link", "set", self.host_if, "up")
            inside = ("nsenter", "-t", str(self.pid), "-n")
            run(*inside, "ip", "link", "set", "lo", "up")
            run(*inside, "ip", "addr", "add", f"{self.pod_ip}/30", "dev", self.pod_if)
            run(*inside, "ip", "link", "set", self.pod_if, "up")
            run(*inside, "ip", "route", "add", "default", "via", self.host_ip)
        except Exception:
            self.close()
            raise
        return self

    # -- firewall rules on this veth only ----------------------------------------------------------------
    def _add(self, *rule: str) -> None:
        """Insert a rule (first in its chain); `rule` may start with `-t TABLE`."""
        if rule[0] == "-t":
            run("iptables", "-w", *rule[:2], "-I", *rule[2:])
        else:
            run("iptables", "-w", "-I", *rule)
        self.rules.append(rule)

    def drop(self, port: int) -> tuple[str, ...]:
        """A host firewall rule dropping this pod's TCP traffic to the host's `port`."""
        rule = ("INPUT", "-i", self.host_if, "-p", "tcp", "--dport", str(port), "-j", "DROP")
        self._add(*rule)
        return rule

    def dnat(self, ip: str, port: int, to_port: int) -> tuple[str, ...]:
        """kube-proxy's rewrite of a ClusterIP: this pod's traffic to ip:port goes to host_ip:to_port."""
        rule = ("-t", "nat", "PREROUTING", "-i", self.host_if, "-d", ip, "-p", "tcp", "--dport", str(port),
                "-j", "DNAT", "--to-destination", f"{self.host_ip}:{to_port}")
        self._add(*rule)
        return rule

    def remove(self, rule: tuple[str, ...]) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
            if rule[0] == "-t":
                run("iptables", "-w", *rule[:2], "-D", *rule[2:])
            else:
                run("iptables", "-w", "-D", *rule)

    def hang_up_after_greeting(self, host: str, port: int) -> None:
        """From inside the namespace: connect, read the server's first bytes, close (a MySQL connection error)."""
        import sys

        code = ("import socket\n"
                f"s = socket.create_connection(({host!r}, {port}), timeout=5)\n"
                "s.recv(1024)\ns.close()\n")
        run("nsenter", "-t", str(self.pid), "-n", sys.executable, "-c", code)
        time.sleep(0.2)

    # -- containerd's bookkeeping -----------------------------------------------------------------------
    def write_bundle(self, state: Path, pod: dict[str, Any], *, sandbox_id: str = "") -> Path:
        """config.json + init.pid of a running sandbox for `pod` (the API's object: name, namespace, uid)."""
        meta = pod["metadata"]
        sandbox_id = sandbox_id or secrets.token_hex(32)
        bundle = Path(state) / TASKS / sandbox_id
        bundle.mkdir(parents=True)
        spec = {"ociVersion": "1.0.2-dev", "process": {"args": ["/pause"]}, "root": {"path": "rootfs"},
                "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                                "io.kubernetes.cri.sandbox-id": sandbox_id,
                                "io.kubernetes.cri.sandbox-name": meta["name"],
                                "io.kubernetes.cri.sandbox-namespace": meta["namespace"],
                                "io.kubernetes.cri.sandbox-uid": meta["uid"]},
                "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                                         {"type": "network", "path": f"/proc/{self.pid}/ns/net"}]}}
        (bundle / "config.json").write_text(json.dumps(spec))
        (bundle / "init.pid").write_text(str(self.pid))
        return bundle

    def close(self) -> None:
        for rule in list(reversed(self.rules)):
            try:
                self.remove(rule)
            except RuntimeError:
                pass
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=10)  # takes its peer
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def podnet() -> Iterator[PodNet]:
        """A fresh fake pod network per test; removed afterwards whatever happened."""
        if os.geteuid() != 0:
            pytest.fail("the netpath tests create network namespaces, veths and iptables rules: run them as root",
                        pytrace=False)
        net = PodNet().start()
        try:
            yield net
        finally:
            net.close()
