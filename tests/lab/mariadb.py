"""A private MariaDB 10.11 for sbops's tests: own data dir, own free port, own socket; restartable for real.

Layout of an instance directory D:
    D/data/        the datadir (copied from a template made once per process by mariadb-install-db)
    D/my.cnf       the basics ([mysqld] datadir, socket, port, bind-address, skip-log-bin, user=root, ...)
                   and `!includedir D/conf.d` (unless includedir=False: then nothing reads conf.d, as on a
                   server whose my.cnf has no includes), so a drop-in written there (the mysql-config fix
                   with mysql.config_dir = D/conf.d) really takes effect when the server restarts. Written
                   once: a restart keeps what a fix changed in it. The server runs with
                   --defaults-file=D/my.cnf, which is how sbops finds this file (/proc/PID/cmdline)
    D/conf.d/      drop-ins (the installer's stackbill.cnf when seeded; `dropin` names it, e.g. the current
                   script's 99-stackbill.cnf)
    D/restart.sh   a restart command for the setting mysql.restart_command
    D/lab.json     port and options, so `python -m tests.lab.mariadb restart D` can act on the instance

The server is started detached and tracked by its pid file, so a restart done by the sbops CLI in
another process (through D/restart.sh) and a stop() from the test process manage the same server.

Script use:  python -m tests.lab.mariadb start D [--bare] | stop D | restart D
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from sbops.probes.mysql import STACKBILL_CNF
from tests.lab.common import free_port, tail, wait_closed, wait_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
REPO = Path(__file__).resolve().parents[2]

# The installer's /etc/mysql/mysql.conf.d/stackbill.cnf: ARCHITECTURE.md's text, which sbops's drop-in
# repeats under its own header line.
INSTALLER_CNF = STACKBILL_CNF.split("\n", 1)[1]

_template: Path | None = None


def template_datadir() -> Path:
    """A freshly installed, never started datadir, made once per process (copying it is faster)."""
    global _template
    if _template is None or not _template.exists():
        base = Path(tempfile.mkdtemp(prefix="sbops-mariadb-template-"))
        target = base / "data"
        proc = subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={target}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=8M"],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {proc.stderr[-2000:]}")
        _template = target
        atexit.register(shutil.rmtree, base, True)
    return _template


class MariaDB:
    """One lab server. `bare=True`: no stackbill.cnf drop-in (bind 127.0.0.1, name resolution on)."""

    def __init__(self, root: Path, *, port: int | None = None, bind: str = "0.0.0.0",
                 performance_schema: bool = True, stackbill_cnf: bool = True, includedir: bool = True,
                 dropin: str = "stackbill.cnf") -> None:
        self.root = Path(root)
        self.includedir = includedir
        self.dropin = dropin
        self.port = port or free_port("0.0.0.0")
        self.bind = bind
        self.performance_schema = performance_schema
        self.stackbill_cnf = stackbill_cnf
        self._popen: subprocess.Popen | None = None

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def conf_d(self) -> Path:
        return self.root / "conf.d"

    @property
    def pid_file(self) -> Path:
        return self.root / "mysqld.pid"

    @property
    def log(self) -> Path:
        return self.root / "mysqld.log"

    @property
    def restart_script(self) -> Path:
        return self.root / "restart.sh"

    # -- setup ---------------------------------------------------------------------------------------
    def prepare(self) -> "MariaDB":
        """Create the directory, datadir, my.cnf, conf.d and the restart script (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.datadir.exists():
            shutil.copytree(template_datadir(), self.datadir, symlinks=True)
        self.conf_d.mkdir(exist_ok=True)
        if not (self.root / "my.cnf").exists():  # written once: a restart keeps what a test or a fix changed
            (self.root / "my.cnf").write_text(self.my_cnf())
            if self.stackbill_cnf:
                (self.conf_d / self.dropin).write_text(INSTALLER_CNF)
        self.restart_script.write_text(
            f"#!/bin/sh\ncd {REPO} && exec {sys.executable} -m tests.lab.mariadb restart {self.root}\n")
        self.restart_script.chmod(0o755)
        (self.root / "lab.json").write_text(json.dumps({
            "port": self.port, "bind": self.bind, "performance_schema": self.performance_schema,
            "stackbill_cnf": self.stackbill_cnf, "includedir": self.includedir, "dropin": self.dropin}))
        return self

    def my_cnf(self) -> str:
        return (
            "[mysqld]\n"
            f"datadir = {self.datadir}\n"
            f"socket = {self.socket}\n"
            f"port = {self.port}\n"
            f"bind-address = {self.bind}\n"
            f"pid-file = {self.pid_file}\n"
            f"log-error = {self.log}\n"
            "skip-log-bin\n"
            "user = root\n"
            f"performance_schema = {'ON' if self.performance_schema else 'OFF'}\n"
            "innodb_buffer_pool_size = 16M\n"
            "innodb_log_file_size = 8M\n"
            + (f"!includedir {self.conf_d}\n" if self.includedir else "")
        )

    @classmethod
    def load(cls, root: Path) -> "MariaDB":
        """The instance described by root/lab.json (used by the restart script)."""
        data = json.loads((Path(root) / "lab.json").read_text())
        return cls(Path(root), **data)

    # -- process -------------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The server's pid: the process this object started, else the pid file's (for the restart script)."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 60.0) -> "MariaDB":
        """Start detached (a new session, outliving the caller) and wait until port, socket and pid file exist."""
        self.prepare()
        if self.running:
            return self
        with open(self.log, "ab") as handle:
            self._popen = subprocess.Popen(
                [MARIADBD, f"--defaults-file={self.root / 'my.cnf'}"],
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        wait_port("127.0.0.1", self.port, timeout=timeout, proc=self._popen, log=self.log)
        end = time.monotonic() + timeout
        while not (self.socket.exists() and self.pid_file.exists()) and time.monotonic() < end:
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < end:
            if self._popen is not None and self._popen.pid == pid:
                self._popen.poll()  # reaps our own child
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        wait_closed("127.0.0.1", self.port, timeout=timeout)

    def restart(self) -> "MariaDB":
        self.stop()
        return self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return tail(self.log)

    # -- SQL as root -----------------------------------------------------------------------------------
    def connect(self, user: str = "root", password: str = "", **kwargs: Any):  # -> pymysql.Connection
        """A root login through the unix socket (or TCP when host= is given)."""
        import pymysql

        if "host" in kwargs:
            kwargs.setdefault("port", self.port)
        else:
            kwargs["unix_socket"] = str(self.socket)
        return pymysql.connect(user=user, password=password, connect_timeout=5, read_timeout=10,
                               autocommit=True, **kwargs)

    def sql(self, *statements: str, args: Any = None) -> list[tuple]:
        """Run statements as root; returns the last one's rows."""
        conn = self.connect()
        try:
            rows: list[tuple] = []
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement, args)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()

    def seed_stackbill(self, password: str) -> "MariaDB":
        """What the StackBill installer does: databases, users at % and localhost, grants, globals."""
        self.sql("CREATE DATABASE IF NOT EXISTS stackbill", "CREATE DATABASE IF NOT EXISTS configuration")
        for host in ("%", "localhost"):
            quoted = host.replace("%", "%%")  # pymysql formats with % when args are given
            self.sql(f"CREATE USER IF NOT EXISTS 'stackbill'@'{quoted}' IDENTIFIED BY %s", args=(password,))
            self.sql(f"ALTER USER 'stackbill'@'{quoted}' IDENTIFIED BY %s", args=(password,))
            self.sql(f"GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'{host}' WITH GRANT OPTION")
        self.sql("SET GLOBAL max_connect_errors = 100000")
        return self

    def block_host(self, source: str = "127.0.0.2") -> None:
        """TESTENV.md's recipe: max_connect_errors=1, then a TCP connect from `source` that says nothing."""
        self.sql("SET GLOBAL max_connect_errors = 1")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(source, 0)) as sock:
            sock.recv(1024)  # the greeting; closing without a handshake counts as a connect error
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# -- pytest fixtures ------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def mariadb_template() -> Path:
        """mariadb-install-db once per session; instances copy it."""
        return template_datadir()

    @pytest.fixture
    def mariadb_factory(tmp_path_factory, mariadb_template) -> Iterator[Any]:
        """Make fresh instances for tests that break their server; all are destroyed afterwards."""
        made: list[MariaDB] = []

        def make(**kwargs: Any) -> MariaDB:
            server = MariaDB(tmp_path_factory.mktemp("mariadb"), **kwargs).start()
            made.append(server)
            return server

        yield make
        for server in made:
            server.destroy()

    @pytest.fixture(scope="module")
    def mariadb_seeded(tmp_path_factory, mariadb_template) -> Iterator[MariaDB]:
        """A seeded server shared by a module's tests that do not break it (password: lab-Passw0rd)."""
        server = MariaDB(tmp_path_factory.mktemp("mariadb-shared")).start()
        server.seed_stackbill(LAB_PASSWORD)
        yield server
        server.destroy()


LAB_PASSWORD = "LabPassw0rd12345"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("start", "stop", "restart"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    command, root = argv[0], Path(argv[1])
    if command == "start" and not (root / "lab.json").exists():
        server = MariaDB(root, stackbill_cnf="--bare" not in argv)
    else:
        server = MariaDB.load(root)
    try:
        getattr(server, command)()
    except (RuntimeError, TimeoutError) as exc:
        print(f"{command} failed: {exc}", file=sys.stderr)
        return 1
    if command != "stop":
        print(f"mariadb on port {server.port}, socket {server.socket}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
