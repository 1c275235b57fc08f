"""A private RabbitMQ 3.10 node for tests: own node name, ports, data, logs, cookie; never the machine's node.

Started with Debian's /usr/lib/rabbitmq/bin/rabbitmq-server -detached and an environment pointing everything
at a temp dir. D/bin/rabbitmqctl and D/bin/rabbitmq-plugins are wrappers that export that environment and
exec the real tools, so sbops's settings `rabbitmq.ctl_command` / `rabbitmq.plugins_command` can run the real
CLIs against this node. A lab-only administrator (`labadmin`) lets tests reset state over the HTTP API fast.

Script use: python -m tests.lab.rabbitmq start|stop|restart DIR
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from tests.lab.common import free_port, port_open, tail, wait_closed

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
LAB_PASSWORD = "LabRabbitPw12345"
LAB_ADMIN = "labadmin"


class RabbitMQ:
    """One private node: start(), stop(), restart(), seed_stackbill(password), plus helpers to break it."""

    def __init__(self, root: Path, *, name: str | None = None, management: bool = True, bind: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.bind = bind  # AMQP listener address; the lab stack uses 0.0.0.0 as a StackBill host does
        self.name = name or f"sbopslab{os.getpid()}{secrets.token_hex(3)}"
        self.node = f"{self.name}@localhost"
        self.port = free_port()
        self.management_port = free_port()
        self.dist_port = free_port()
        self.management = management
        self.admin_password = secrets.token_hex(12)

    # -- files -------------------------------------------------------------------------------------
    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def ctl_command(self) -> str:
        return str(self.bin / "rabbitmqctl")

    @property
    def plugins_command(self) -> str:
        return str(self.bin / "rabbitmq-plugins")

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def log(self) -> Path:
        return self.root / "log" / f"{self.node}.log"

    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "HOME": str(self.root / "home"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }

    def prepare(self) -> "RabbitMQ":
        for sub in ("mnesia", "log", "home", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.bind}:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            f"management.tcp.ip = {self.bind}\n"
            "collect_statistics_interval = 1000\n"
        )
        exports = "".join(f"export {k}='{v}'\n" for k, v in self.env().items() if k != "PATH")
        for tool in ("rabbitmqctl", "rabbitmq-plugins"):
            script = self.bin / tool
            script.write_text(f"#!/bin/sh\n# lab node {self.node}\n{exports}exec {RABBIT_BIN / tool} -n {self.node} \"$@\"\n")
            script.chmod(0o755)
        (self.root / "lab.json").write_text(json.dumps({
            "name": self.name, "port": self.port, "management_port": self.management_port,
            "dist_port": self.dist_port, "admin_password": self.admin_password, "management": self.management,
            "bind": self.bind}))
        if self.management and not (self.root / "enabled_plugins").exists():
            self.plugins("enable", "--offline", "rabbitmq_management")
        return self

    @classmethod
    def load(cls, root: Path) -> "RabbitMQ":
        data = json.loads((Path(root) / "lab.json").read_text())
        server = cls(root, name=data["name"], management=data["management"], bind=data.get("bind", "127.0.0.1"))
        server.port, server.management_port = data["port"], data["management_port"]
        server.dist_port, server.admin_password = data["dist_port"], data["admin_password"]
        return server

    # -- lifecycle -----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            return int((self.root / "rabbit.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and Path(f"/proc/{pid}").exists()

    def start(self, timeout: float = 90.0) -> "RabbitMQ":
        if not (self.root / "lab.json").exists():
            self.prepare()
        subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self.env(), check=True,
                       capture_output=True, timeout=30)
        end = time.monotonic() + timeout
        while True:
            result = self.ctl("-q", "await_startup", "--timeout", "10", check=False, timeout=30)
            if result.returncode == 0:
                break
            if time.monotonic() > end:
                raise TimeoutError(f"{self.node} did not start in {timeout:g}s: {tail(self.log)}")
            time.sleep(0.3)
        if self.management and (self.root / "enabled_plugins").read_text().find("rabbitmq_management") >= 0:
            self.wait_api(timeout)
        return self

    def wait_api(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.management_port):
            if time.monotonic() > end:
                raise TimeoutError(f"the management API of {self.node} did not open in {timeout:g}s: {tail(self.log)}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        if not self.running:
            return
        pid = self.pid()
        self.ctl("shutdown", check=False, timeout=timeout)
        end = time.monotonic() + timeout
        while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < end:
            time.sleep(0.1)
        if pid and Path(f"/proc/{pid}").exists():
            os.kill(pid, 9)
        wait_closed("127.0.0.1", self.port, timeout=10)

    def restart(self) -> "RabbitMQ":
        self.stop()
        return self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- tools ---------------------------------------------------------------------------------------
    def ctl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real rabbitmqctl against this node (through the wrapper once it exists)."""
        argv = [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return proc

    def plugins(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(RABBIT_BIN / "rabbitmq-plugins"), "-n", self.node, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"rabbitmq-plugins {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return proc

    def api(self, method: str, path: str, body: Any = None, user: str = LAB_ADMIN, password: str | None = None) -> Any:
        """The management API as the lab's own administrator (or another user)."""
        import requests

        return requests.request(method, self.management_url + path, json=body, timeout=10,
                                auth=(user, self.admin_password if password is None else password))

    # -- state ---------------------------------------------------------------------------------------
    def seed_stackbill(self, password: str = LAB_PASSWORD) -> "RabbitMQ":
        """As the installer does: plugin on, user stackbill (administrator, '.*' on /), guest deleted.

        Also creates the lab-only administrator `labadmin` so tests can reset state over HTTP.
        """
        for user, pw in ((LAB_ADMIN, self.admin_password), ("stackbill", password)):
            if user not in self.users():
                self.ctl("add_user", user, input=pw + "\n")
            else:
                self.ctl("change_password", user, input=pw + "\n")
            self.ctl("set_user_tags", user, "administrator")
            self.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        if "guest" in self.users():
            self.ctl("delete_user", "guest")
        return self

    def users(self) -> dict[str, list[str]]:
        out = self.ctl("-q", "list_users", "--formatter", "json").stdout
        return {u["user"]: u["tags"] for u in json.loads(out or "[]")}

    def reset(self, password: str = LAB_PASSWORD) -> "RabbitMQ":
        """Back to the seeded state quickly (HTTP API as labadmin), re-enabling the plugin if a test disabled it."""
        if not self.running:
            self.start()
        if not port_open("127.0.0.1", self.management_port):
            self.plugins("enable", "rabbitmq_management")
            self.wait_api()
        for attempt in range(50):
            answer = self.api("GET", "/api/overview")
            if answer.status_code == 200:
                break
            time.sleep(0.2)
        self.api("PUT", "/api/users/stackbill", {"password": password, "tags": "administrator"}).raise_for_status()
        self.api("PUT", "/api/permissions/%2F/stackbill", {"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        self.api("DELETE", "/api/users/guest")
        return self

    def add_guest(self) -> None:
        self.api("PUT", "/api/users/guest", {"password": "guest", "tags": "administrator"}).raise_for_status()
        self.api("PUT", "/api/permissions/%2F/guest", {"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()

    def alarms(self) -> list[dict[str, Any]]:
        answer = self.api("GET", "/api/health/checks/alarms")
        return answer.json().get("alarms", [])


# -- pytest fixtures ------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="module")
    def rabbitmq_node(tmp_path_factory) -> Iterator[RabbitMQ]:
        """One seeded node per test module (about 6 s to start); tests reset it with node.reset()."""
        server = RabbitMQ(tmp_path_factory.mktemp("rabbitmq")).start()
        server.seed_stackbill(LAB_PASSWORD)
        yield server
        server.destroy()

    @pytest.fixture
    def rabbitmq_healthy(rabbitmq_node) -> RabbitMQ:
        """The module's node, reset to the seeded state before the test."""
        return rabbitmq_node.reset(LAB_PASSWORD)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("start", "stop", "restart"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    command, root = argv[0], Path(argv[1])
    server = RabbitMQ.load(root) if (root / "lab.json").exists() else RabbitMQ(root)
    try:
        getattr(server, command)()
        if command == "start":
            server.seed_stackbill(LAB_PASSWORD)
    except (RuntimeError, TimeoutError) as exc:
        print(f"{command} failed: {exc}", file=sys.stderr)
        return 1
    if command != "stop":
        print(f"rabbitmq node {server.node}: amqp {server.port}, management {server.management_port}, "
              f"rabbitmqctl {server.ctl_command}, stackbill password {LAB_PASSWORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
