"""A database host of its own for sbops's tests: a network namespace on a lab /30 (10.98.N.0/30, a veth pair:
the host side .1, the database host .2), running its OWN MariaDB on 10.98.N.2:3306 and the sbops agent installed
by the real `sbops install --role database-host` inside the namespace.

The MariaDB (tests/lab/mariadb.py) differs from any local one on purpose: a drop-in `zz-lab.cnf` sets
max_connections = 1234 (still what StackBill needs, and a value no other lab server has), so a test can tell
that doctor read THIS server's configuration. Processes enter the namespace with `nsenter --net=/run/netns/X`
(never `ip netns exec`, which remounts /sys); they share the file system and the pid namespace with the host,
as a VM's would not, which is fine: sbops on the database host only reads its own server's files.

The agent runs as systemd would run it: the unit is written and enabled offline (dbhost.systemd_root), and the
lab starts the unit's own ExecStart line inside the namespace. Everything is removed by close().
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.common import port_open
from tests.lab.env import LabEnv
from tests.lab.mariadb import MariaDB

REPO = Path(__file__).resolve().parents[2]
LINK_PREFIX = "10.98"
AGENT_PORT = 29120
LAB_CNF = "# the database host's own setting: no other lab server has it\n[mysqld]\nmax_connections = 1234\n"
DISTINCT_MAX_CONNECTIONS = "1234"


class DbHostError(RuntimeError):
    pass


def _run(*argv: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise DbHostError(f"{shlex.join(argv)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-600:]}")
    return done


@dataclass(frozen=True)
class Link:
    suffix: str  # netns sbd-<suffix>, host veth sbdh-<suffix>
    subnet: int  # N in 10.98.N.0/30

    @property
    def netns(self) -> str:
        return f"sbd-{self.suffix}"

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def host_if(self) -> str:
        return f"sbdh-{self.suffix}"

    @property
    def host_ip(self) -> str:
        return f"{LINK_PREFIX}.{self.subnet}.1"

    @property
    def db_ip(self) -> str:
        return f"{LINK_PREFIX}.{self.subnet}.2"


def pick_link() -> Link:
    used = set()
    for word in _run("ip", "-4", "-o", "addr", "show", check=False).stdout.split():
        if word.startswith(f"{LINK_PREFIX}."):
            try:
                used.add(int(word.split(".")[2]))
            except (IndexError, ValueError):
                continue
    existing = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for _ in range(200):
        subnet, suffix = random.randint(1, 254), f"{random.getrandbits(24):06x}"
        if subnet not in used and f"sbd-{suffix}" not in existing:
            return Link(suffix, subnet)
    raise DbHostError("no free 10.98.N.0/30 subnet for the database host")


class DbHost:
    """The namespace, its MariaDB and its agent. `password` is the stackbill user's."""

    def __init__(self, root: Path, password: str) -> None:
        self.root = Path(root)
        self.password = password
        self.link = pick_link()
        self.mariadb = MariaDB(self.root / "mariadb", port=3306, bind="0.0.0.0")
        self.env = LabEnv(self.root / "host-env")  # sbops's files ON the database host
        self.agent: subprocess.Popen | None = None
        self._up = False

    @property
    def ip(self) -> str:
        return self.link.db_ip

    @property
    def agent_url(self) -> str:
        return f"https://{self.ip}:{AGENT_PORT}"

    @property
    def agent_dir(self) -> Path:
        return self.root / "agent"

    @property
    def systemd_root(self) -> Path:
        return self.root / "sysroot"

    @property
    def unit_path(self) -> Path:
        return self.systemd_root / "etc/systemd/system/sbops-agent.service"

    def inside(self, *argv: str) -> list[str]:
        return ["nsenter", f"--net={self.link.netns_path}", *argv]

    # -- bring up -----------------------------------------------------------------------------------------
    def up(self) -> "DbHost":
        link = self.link
        peer = f"sbdp-{link.suffix}"
        _run("ip", "netns", "add", link.netns)
        self._up = True
        _run("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", link.netns)
        _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        _run("ip", "link", "set", link.host_if, "up")
        inside = self.inside
        _run(*inside("ip", "link", "set", "lo", "up"))
        _run(*inside("ip", "link", "set", peer, "name", "eth0"))
        _run(*inside("ip", "addr", "add", f"{link.db_ip}/30", "dev", "eth0"))
        _run(*inside("ip", "link", "set", "eth0", "up"))
        _run(*inside("ip", "route", "add", "default", "via", link.host_ip))
        self.mariadb.prepare()
        (self.mariadb.conf_d / "zz-lab.cnf").write_text(LAB_CNF)
        self.mariadb_ctl("start")
        self.mariadb.seed_stackbill(self.password)  # through the unix socket: a file, reachable from here
        return self

    def mariadb_ctl(self, command: str) -> None:
        """start | stop | restart the database host's MariaDB inside its namespace (the lab script)."""
        _run(*self.inside(sys.executable, "-m", "tests.lab.mariadb", command, str(self.mariadb.root)), timeout=120)

    # -- sbops on the database host -----------------------------------------------------------------------
    def configure(self) -> LabEnv:
        """The database host's own sbops settings and credentials file: MySQL is here, at its own address."""
        env = self.env
        env.set("server_ip", self.ip)
        env.set("mysql.admin_socket", str(self.mariadb.socket))
        env.set("mysql.config_dir", str(self.mariadb.conf_d))
        env.set("mysql.restart_command", str(self.mariadb.restart_script))
        env.set("dbhost.listen", f"{self.ip}:{AGENT_PORT}")
        env.set("dbhost.layers", "mysql")
        env.set("dbhost.dir", str(self.agent_dir))
        env.set("dbhost.systemd_root", str(self.systemd_root))
        env.set("install.unit_dir", str(self.systemd_root / "etc/systemd/system"))
        env.service("mysql", host=self.ip, port=3306, password=self.password)
        return env.write()

    def sbops(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """`python -m sbops ARGS --config C --credentials F` run ON the database host (inside its namespace)."""
        env = self.configure()
        argv = self.inside(sys.executable, "-m", "sbops", *args, "--config", str(env.config_path),
                           "--credentials", str(env.credentials_path))
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env={**os.environ, "NO_COLOR": "1"}, stdin=subprocess.DEVNULL)

    def install_agent(self, *extra: str) -> subprocess.CompletedProcess:
        self.systemd_root.mkdir(parents=True, exist_ok=True)
        return self.sbops("install", "--role", "database-host", "--yes", *extra)

    def unit_argv(self) -> list[str]:
        """The ExecStart of the unit the install wrote (what systemd would run)."""
        for line in self.unit_path.read_text().splitlines():
            if line.startswith("ExecStart="):
                return shlex.split(line[len("ExecStart="):])
        raise DbHostError(f"{self.unit_path} has no ExecStart")

    def start_agent(self, timeout: float = 60.0) -> None:
        if self.agent is not None and self.agent.poll() is None:
            return
        log = open(self.root / "agent.log", "ab")
        self.agent = subprocess.Popen(self.inside(*self.unit_argv()), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if port_open(self.ip, AGENT_PORT):
                return
            if self.agent.poll() is not None:
                break
            time.sleep(0.1)
        raise DbHostError(f"the agent did not listen on {self.ip}:{AGENT_PORT}: "
                          f"{(self.root / 'agent.log').read_text()[-1500:]}")

    def stop_agent(self) -> None:
        if self.agent is None:
            return
        if self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGTERM)
            try:
                self.agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait(timeout=15)
        self.agent = None

    # -- tear down ----------------------------------------------------------------------------------------
    def close(self) -> None:
        errors: list[str] = []
        for step in (self.stop_agent, lambda: self.mariadb_ctl("stop") if self.mariadb.running else None):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep tearing down
                errors.append(str(exc))
        if self._up:
            _run("ip", "netns", "del", self.link.netns, check=False)
            _run("ip", "link", "del", self.link.host_if, check=False)
            self._up = False
        if errors:
            raise DbHostError("; ".join(errors))

    def __enter__(self) -> "DbHost":
        return self.up()

    def __exit__(self, *exc: Any) -> None:
        self.close()
