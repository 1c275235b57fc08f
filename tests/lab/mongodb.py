"""A private MongoDB-wire server for tests: SecantusDB (PyPI SecantusDB==0.7.0b3) driven by a mongod.conf.

The lab keeps a mongod.conf in mongod's own YAML format (storage.dbPath, net.port, net.bindIp,
security.authorization) and starts SecantusDB from it, so sbops's `mongodb-config` fix edits a real
config file and its restart command (`python -m tests.lab.mongodb restart DIR`) really applies it.

Script use:
    lab = MongoLab(Path("/tmp/m")); lab.seed_stackbill("pw"); ...; lab.stop()
    python -m tests.lab.mongodb start|stop|restart DIR

SecantusDB differs from mongod 7 (see TESTENV.md): version 8.2.x, getCmdLineOpts has an empty `net`,
no localhost exception (users are created before auth is turned on), SCRAM-SHA-256 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from tests.lab.common import free_port, port_open, tail

STACKBILL_ROLES = [{"role": "root", "db": "admin"}, {"role": "readWriteAnyDatabase", "db": "admin"}]
LAB_ADMIN = "labadmin"  # a second root user the tests use to break things (never given to sbops unless a test says so)


def secantusd() -> str:
    here = Path(sys.executable).parent / "secantusd-py"
    found = str(here) if here.exists() else shutil.which("secantusd-py")
    if not found:
        raise RuntimeError("secantusd-py not found: pip install SecantusDB==0.7.0b3 (test extra)")
    return found


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds no files or sockets: it counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


_STOPPING: list[tuple[int, "MongoLab"]] = []  # labs signalled with stop(wait=False)


def wait_stopped(timeout: float = 20.0) -> None:
    """Wait for every lab stopped with wait=False to exit (SIGKILL after `timeout`)."""
    end = time.monotonic() + timeout
    while _STOPPING:
        pid, lab = _STOPPING[0]
        if _alive(pid) and time.monotonic() < end:
            lab._reap()
            time.sleep(0.05)
            continue
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            continue
        lab._reap()
        _STOPPING.pop(0)


class MongoLab:
    """One SecantusDB instance under `root`: mongod.conf, data/, mongod.log, mongod.pid."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.root / "mongod.conf"
        self.data = self.root / "data"
        self.log = self.root / "mongod.log"
        self.pidfile = self.root / "mongod.pid"
        self.toml = self.root / "secantusd.toml"  # empty: stops SecantusDB from reading ~/.secantus or /etc
        self._popen: subprocess.Popen | None = None
        if not self.conf_path.exists():
            self.write_conf(port=port or free_port(), bind_ip="0.0.0.0", auth=False)

    # -- the config file ---------------------------------------------------------------------------
    def read_conf(self) -> dict[str, Any]:
        return yaml.safe_load(self.conf_path.read_text()) or {}

    def write_conf(self, *, port: int | None = None, bind_ip: str | None = None, auth: bool | None = None) -> None:
        """Write mongod.conf like the StackBill installer does (auth None: keep; False: no security section)."""
        old = self.read_conf() if self.conf_path.exists() else {}
        port = port or int(old.get("net", {}).get("port"))
        bind_ip = bind_ip or str(old.get("net", {}).get("bindIp", "0.0.0.0"))
        if auth is None:
            auth = str(old.get("security", {}).get("authorization", "")) == "enabled"
        text = (
            "# mongod.conf (sbops lab)\n"
            "storage:\n"
            f"  dbPath: {self.data}\n"
            "\n"
            "systemLog:\n"
            "  destination: file\n"
            "  logAppend: true\n"
            f"  path: {self.log}\n"
            "\n"
            "net:\n"
            f"  port: {port}\n"
            f"  bindIp: {bind_ip}    # pods connect through the host IP\n"
            "\n"
            "processManagement:\n"
            "  timeZoneInfo: /usr/share/zoneinfo\n"
        )
        if auth:
            text += "\nsecurity:\n  authorization: enabled\n"
        self.conf_path.write_text(text)

    @property
    def port(self) -> int:
        return int(self.read_conf()["net"]["port"])

    def argv(self) -> list[str]:
        """SecantusDB's command line for what mongod.conf says (the first bindIp; a wildcard wins)."""
        conf = self.read_conf()
        net = conf.get("net") or {}
        binds = [b.strip() for b in str(net.get("bindIp", "127.0.0.1")).split(",") if b.strip()]
        if net.get("bindIpAll") is True or "0.0.0.0" in binds:
            host = "0.0.0.0"
        else:
            host = binds[0] if binds else "127.0.0.1"
            host = "127.0.0.1" if host == "localhost" else host
        data = (conf.get("storage") or {}).get("dbPath") or str(self.data)
        argv = [secantusd(), "--config", str(self.toml), "--host", host, "--port", str(net.get("port", 27017)),
                "--storage-path", str(data), "--standalone", "--log-level", "WARNING"]
        if str((conf.get("security") or {}).get("authorization", "")).lower() == "enabled":
            argv.append("--auth")
        return argv

    # -- process -----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The recorded server pid, if that process is still ours and alive."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        return pid if _alive(pid) and str(self.toml) in cmdline else None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 30.0) -> "MongoLab":
        if self.running:
            return self
        self.toml.touch()
        port = self.port
        with open(self.log, "ab") as handle:
            self._popen = subprocess.Popen(self.argv(), stdout=handle, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, cwd=self.root, start_new_session=True)
        self.pidfile.write_text(f"{self._popen.pid}\n")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if port_open("127.0.0.1", port) and self._answers_hello():
                return self
            if self._popen.poll() is not None:
                raise RuntimeError(f"SecantusDB exited with {self._popen.returncode}: {tail(self.log)}")
            time.sleep(0.05)
        raise TimeoutError(f"SecantusDB not listening on {port} after {timeout:g}s: {tail(self.log)}")

    def _answers_hello(self) -> bool:
        """A full hello round trip: SecantusDB stopped right after a bare TCP probe can hang in shutdown."""
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        try:
            with MongoClient("127.0.0.1", self.port, directConnection=True, serverSelectionTimeoutMS=2000,
                             connectTimeoutMS=2000, socketTimeoutMS=2000) as client:
                client.admin.command("hello")
            return True
        except PyMongoError:
            return False

    def stop(self, timeout: float = 20.0, wait: bool = True) -> None:
        """SIGTERM and wait until the process is gone (its WiredTiger lock released); SIGKILL if it hangs.

        wait=False only signals (SecantusDB takes about 2 s to exit): for teardown of a lab nobody reuses;
        wait_stopped() waits for those later.
        """
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not wait:
                _STOPPING.append((pid, self))
                return
            end = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < end:
                self._reap()
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    self._reap()
                    time.sleep(0.05)
        self._reap()
        self.pidfile.unlink(missing_ok=True)

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.poll()

    def restart(self) -> "MongoLab":
        self.stop()
        return self.start()

    # -- clients and users -------------------------------------------------------------------------
    def client(self, user: str = "", password: str = "", host: str = "127.0.0.1") -> Any:
        from pymongo import MongoClient

        options: dict[str, Any] = dict(directConnection=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000,
                                       socketTimeoutMS=10000)
        if user:
            options.update(username=user, password=password, authSource="admin", authMechanism="SCRAM-SHA-256")
        return MongoClient(host, self.port, **options)

    def command(self, *args: Any, login: tuple[str, str] = ("", ""), **kwargs: Any) -> dict[str, Any]:
        with self.client(*login) as client:
            return client.admin.command(*args, **kwargs)

    def users(self, login: tuple[str, str] = ("", "")) -> dict[str, list[dict[str, str]]]:
        answer = self.command("usersInfo", 1, login=login)
        return {u["user"]: u["roles"] for u in answer["users"]}

    def seed_stackbill(self, password: str, admin_password: str | None = None) -> "MongoLab":
        """As the installer: start without auth, create stackbill (root + readWriteAnyDatabase), enable auth, restart.
        Idempotent: on a data directory that has the users already, their passwords and roles are set again.

        `admin_password` also creates the lab's own root user `labadmin` (tests use it to break things).
        """
        self.stop()
        self.write_conf(auth=False)
        self.start()
        self.ensure_user("stackbill", password, STACKBILL_ROLES)
        if admin_password:
            self.ensure_user(LAB_ADMIN, admin_password, [{"role": "root", "db": "admin"}])
        self.write_conf(auth=True)
        return self.restart()

    def ensure_user(self, name: str, password: str, roles: list[dict[str, str]]) -> None:
        """createUser, or updateUser when the data directory already has the user (a lab started again
        after `down`, or after its server was killed): seeding is idempotent."""
        if name in self.users():
            self.command("updateUser", name, pwd=password, roles=roles)
        else:
            self.command("createUser", name, pwd=password, roles=roles)

    def set_bind(self, bind_ip: str) -> "MongoLab":
        self.write_conf(bind_ip=bind_ip)
        return self.restart()

    def set_auth(self, enabled: bool) -> "MongoLab":
        self.write_conf(auth=enabled)
        return self.restart()

    def clone_to(self, root: Path, *, bind_ip: str | None = None, auth: bool | None = None) -> "MongoLab":
        """A new (stopped) lab on its own port with a copy of this stopped lab's data and its settings,
        or the given bind_ip/auth (so a broken server starts broken without an extra restart)."""
        if self.running:
            raise RuntimeError("clone_to: stop the source lab first (WiredTiger files must be at rest)")
        root = Path(root)
        shutil.copytree(self.data, root / "data")
        conf = self.read_conf()
        clone = MongoLab(root, port=free_port())
        own_auth = str(conf.get("security", {}).get("authorization", "")) == "enabled"
        clone.write_conf(bind_ip=bind_ip or str(conf["net"]["bindIp"]), auth=own_auth if auth is None else auth)
        return clone

    def restart_command(self) -> str:
        """What sbops's mongodb.restart_command should be for this lab."""
        import shlex

        return shlex.join([sys.executable, "-m", "tests.lab.mongodb", "restart", str(self.root)])


# ---------------------------------------------------------------------------------------------------
# pytest fixtures (registered by tests/conftest.py through pytest_plugins, or imported by a test module)
# ---------------------------------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

MONGO_PASSWORD = "Sb7mongoPass2024"  # like the installer's 16 alphanumerics
MONGO_ADMIN_PASSWORD = "LabAdminPass0001"

if pytest is not None:

    @pytest.fixture(scope="session")
    def mongo_template(tmp_path_factory: Any) -> Iterator[MongoLab]:
        """A stopped, seeded lab (stackbill + labadmin, auth on, 0.0.0.0) that the others copy."""
        lab = MongoLab(tmp_path_factory.mktemp("mongo-template"))
        lab.seed_stackbill(MONGO_PASSWORD, admin_password=MONGO_ADMIN_PASSWORD)
        lab.stop()
        yield lab
        lab.stop()
        wait_stopped()

    @pytest.fixture(scope="module")
    def mongo_shared(mongo_template: MongoLab, tmp_path_factory: Any) -> Iterator[MongoLab]:
        """A healthy running lab shared by a module's tests that do not break it."""
        lab = mongo_template.clone_to(tmp_path_factory.mktemp("mongo-shared")).start()
        yield lab
        lab.stop(wait=False)

    @pytest.fixture()
    def mongo_factory(mongo_template: MongoLab, tmp_path: Path) -> Iterator[Callable[..., MongoLab]]:
        """make(bind_ip=, auth=) -> a fresh running lab (seeded like the installer) a test may break."""
        labs: list[MongoLab] = []

        def make(*, bind_ip: str | None = None, auth: bool | None = None) -> MongoLab:
            lab = mongo_template.clone_to(tmp_path / f"mongo{len(labs)}", bind_ip=bind_ip, auth=auth)
            labs.append(lab)
            return lab.start()

        yield make
        for lab in labs:
            lab.stop(wait=False)

    @pytest.fixture()
    def mongo_lab(mongo_factory: Callable[..., MongoLab]) -> MongoLab:
        """A fresh healthy running lab a test may break."""
        return mongo_factory()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop", "restart"):
        print("usage: python -m tests.lab.mongodb start|stop|restart DIR", file=sys.stderr)
        return 2
    lab = MongoLab(Path(argv[1]))
    getattr(lab, argv[0])()
    print(f"{argv[0]}: ok (port {lab.port})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
