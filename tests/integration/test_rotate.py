"""`sbops rotate-credentials` on the living cluster (tests/lab/living.py), end to end.

Real here: the new passwords go to the lab's MariaDB (both stackbill accounts), MongoDB-wire server (updateUser)
and RabbitMQ (the management API), then into the Helm release by the real `helm upgrade --reuse-values`, whose
chart turns them into the Secret `stackbill-credentials` that every stand-in reads its *_PASSWORD from
(secretKeyRef). The restarted pods are started and probed by the kubelet: sb-core is Ready only while it can log
in to MariaDB with the password of its environment, and app.cloudconfiguration goes through the gateway to it.

The failing rotation is a real cause, not a stub: MariaDB picks the most specific account, and the test gives
the pods' address (NODE_IP, where their traffic is masqueraded to) an account of its own, `stackbill`@NODE_IP,
holding the old password. The rotation changes the two accounts the installer makes (`%` and `localhost`), so
sbops's own login (from HOST_IP) works with the new password while the restarted sb-core cannot log in:
app.cloudconfiguration fails and the rotation must put the old password back everywhere.

Each test leaves the cluster as it found it: the servers' passwords, the release's values and the pods.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from sbops import credentials as creds_mod
from tests.integration.test_living_workloads import core_api
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.living import STACKBILL_CHART, LivingCluster, lab_env, services_of
from tests.lab.stack import helm_binary

NS = lab.NAMESPACE
SECRET = "stackbill-credentials"


class PortalWatch:
    """Asks the portal (through the gateway's HTTPS NodePort, as a browser would) every 0.3 s while a rotation
    runs, and keeps each answer: the UI's "/" and sb-core's configuration route."""

    PATHS = ("/", "/apidocs/api/cloudconfiguration/general")

    def __init__(self, living: LivingCluster) -> None:
        self.host = living.node_ip
        self.answers: dict[str, list[tuple[float, Any]]] = {p: [] for p in self.PATHS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def ask(self, path: str) -> Any:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(self.host, lab.NODEPORT_HTTPS, timeout=3, context=context)
        try:
            conn.request("GET", path, headers={"Host": lab.DOMAIN})
            return conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.PATHS:
                self.answers[path].append((time.monotonic(), self.ask(path)))
            self._stop.wait(0.3)

    def __enter__(self) -> "PortalWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def failures(self, path: str) -> list[Any]:
        return [a for _, a in self.answers[path] if a != 200]

    def longest_outage(self, path: str) -> float:
        """Seconds between the first and last failed answer of the longest run of failures."""
        longest, start = 0.0, None
        for when, answer in self.answers[path]:
            if answer != 200:
                start = when if start is None else start
                longest = max(longest, when - start)
            else:
                start = None
        return longest


def env_for(living: LivingCluster, root: Path) -> LabEnv:
    env = lab_env(living, root, living.servers)
    return env.set("helm.command", helm_binary()).set("pods.rollout_timeout", 150)


def secret_passwords(living: LivingCluster) -> dict[str, str]:
    import base64

    data = core_api(living).read_namespaced_secret(SECRET, NS).data
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def put_back(living: LivingCluster) -> None:
    """The session's passwords on the servers and in the release, and the healthy pods (whatever a test did)."""
    from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, STACKBILL_ROLES

    servers = living.servers
    passwords = servers["passwords"]
    servers["mysql"].seed_stackbill(passwords["mysql"])
    servers["mongodb"].command("updateUser", "stackbill", pwd=passwords["mongodb"], roles=STACKBILL_ROLES,
                               login=(LAB_ADMIN, MONGO_ADMIN_PASSWORD))
    servers["rabbitmq"].ctl("change_password", "stackbill", input=passwords["rabbitmq"] + "\n")
    living.helm("stackbill", STACKBILL_CHART, NS, living.values(services_of(servers)))
    living.restore()


@pytest.fixture
def rotating(living: LivingCluster) -> Iterator[LivingCluster]:
    try:
        yield living
    finally:
        put_back(living)


def rotate(env: LabEnv, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    env.write()
    env.credentials_file = False  # from here on the file is the rotation's: LabEnv must not rewrite it
    proc = env.sbops("rotate-credentials", "--yes", "--output", "json", *args, timeout=timeout)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def journal(env: LabEnv) -> list[dict[str, Any]]:
    path = Path(env.settings["journal"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_dry_run_shows_the_plan_and_changes_nothing(rotating: LivingCluster, tmp_path: Path) -> None:
    env = env_for(rotating, tmp_path / "env")
    before = secret_passwords(rotating)
    proc = env.sbops("rotate-credentials", "--service", "mysql", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for step in ("generate", "set-on-server", "update-release", "restart-workloads", "verify", "write-credentials"):
        assert f". {step}:" in text, text
    assert "--reuse-values" in text and "sb-core" in text and "global.mysql.password" in text
    assert rotating.servers["passwords"]["mysql"] not in text
    assert secret_passwords(rotating) == before and not journal(env)


def test_rotation_of_all_three_keeps_the_portal_answering(rotating: LivingCluster, tmp_path: Path) -> None:
    env = env_for(rotating, tmp_path / "env")
    old = dict(rotating.servers["passwords"])
    started = time.monotonic()
    with PortalWatch(rotating) as portal, ArgvWatcher(list(old.values())) as argv:
        code, doc, stderr = rotate(env)
    took = time.monotonic() - started
    assert code == 0 and doc["result"] == "rotated", (json.dumps(doc, indent=1) + stderr
                                                      + f"\nportal answers: {portal.answers}")
    assert [s["step"] for s in doc["steps"]] == ["generate", "set-on-server", "set-on-server", "set-on-server",
                                                 "update-release", "restart-workloads", "verify", "write-credentials"]

    # the credentials file holds three new passwords; its previous version is kept, both 0600
    new_creds = creds_mod.load(env.credentials_path)
    new = {s: getattr(new_creds, s).password.reveal() for s in ("mysql", "mongodb", "rabbitmq")}
    assert all(new[s] != old[s] and len(new[s]) == 16 and new[s].isalnum() for s in new), "passwords not rotated"
    backup = env.credentials_path.with_name(env.credentials_path.name + ".bak")
    assert creds_mod.load(backup).mysql.password.reveal() == old["mysql"]
    for path in (env.credentials_path, backup):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    # what the pods read is the new password, and every server takes it (the doctor's own logins)
    assert secret_passwords(rotating) == {"mysql-password": new["mysql"], "mongo-password": new["mongodb"],
                                          "rabbitmq-password": new["rabbitmq"]}
    wanted = ("mysql.auth", "mongodb.auth", "rabbitmq.auth", "app.cloudconfiguration", "pods.ready")
    results = env.doctor(*wanted)
    assert {cid: results[cid]["status"] for cid in wanted} == {
        "mysql.auth": "ok", "mongodb.auth": "ok", "rabbitmq.auth": "ok", "app.cloudconfiguration": "ok",
        "pods.ready": "ok"}, results

    # the portal's UI answered throughout; sb-core's route may blink while its pod is replaced (measured)
    assert portal.answers["/"] and not portal.failures("/"), portal.failures("/")
    outage = portal.longest_outage("/apidocs/api/cloudconfiguration/general")
    print(f"\nrotation of 3 services: {took:.1f}s; portal '/': {len(portal.answers['/'])} answers, all 200; "
          f"sb-core's route: longest outage {outage:.1f}s")

    # no password in any command line, none in the journal or the output
    assert argv.samples > 50 and not argv.hits
    assert not [line for line in argv.seen if any(p in line for p in new.values())]
    text = Path(env.settings["journal"]).read_text() + json.dumps(doc) + stderr
    assert not [p for p in [*old.values(), *new.values()] if p in text]
    assert [e["step"] for e in journal(env)][-1] == "write-credentials"


def test_failed_verification_rolls_everything_back(rotating: LivingCluster, tmp_path: Path) -> None:
    env = env_for(rotating, tmp_path / "env")
    mysql = rotating.servers["mysql"]
    old = rotating.servers["passwords"]["mysql"]
    node = rotating.node_ip
    mysql.sql(f"CREATE USER 'stackbill'@'{node}' IDENTIFIED BY %s", args=(old,))
    mysql.sql(f"GRANT ALL PRIVILEGES ON *.* TO 'stackbill'@'{node}'")
    try:
        with PortalWatch(rotating) as portal:
            code, doc, stderr = rotate(env, "--service", "mysql", "--wait-timeout", "40")
    finally:
        mysql.sql(f"DROP USER IF EXISTS 'stackbill'@'{node}'")
    assert code == 3 and doc["result"] == "rolled-back", json.dumps(doc, indent=1) + stderr
    steps = [(s["step"], s["outcome"]) for s in doc["steps"]]
    assert ("verify", "failed") in steps, steps
    assert steps[-4:] == [("undo set-on-server", "done"), ("undo update-release", "done"),
                          ("undo restart-workloads", "done"), ("verify the old password", "done")], steps
    assert any("restarted pods not Ready: sb-core" in b for b in doc["blockers"]), doc["blockers"]

    # the old password is back everywhere, and the credentials file was never touched
    assert secret_passwords(rotating)["mysql-password"] == old
    assert creds_mod.load(env.credentials_path).mysql.password.reveal() == old
    assert not env.credentials_path.with_name(env.credentials_path.name + ".bak").exists()
    env.credentials_file = True
    results = env.doctor("mysql.auth", "app.cloudconfiguration")
    assert {cid: results[cid]["status"] for cid in ("mysql.auth", "app.cloudconfiguration")} == {
        "mysql.auth": "ok", "app.cloudconfiguration": "ok"}
    # the UI is restarted twice here (new password, then old); a rolling restart can drop a request while a
    # terminating pod leaves kube-proxy's rules, so only "answered again at the end" is asserted
    assert portal.answers["/"] and portal.answers["/"][-1][1] == 200, portal.answers["/"][-5:]
    print(f"\nfailed rotation rolled back: portal '/' {len(portal.answers['/'])} answers, "
          f"{len(portal.failures('/'))} not 200")
    assert old not in Path(env.settings["journal"]).read_text()


def test_refuses_when_the_current_password_does_not_work(rotating: LivingCluster, tmp_path: Path) -> None:
    """The server's password was changed behind sbops's back: the file and the release agree, but neither logs
    in. Rotating from there could not be undone, so nothing is touched."""
    env = env_for(rotating, tmp_path / "env")
    rotating.servers["mysql"].seed_stackbill("changed-behind-our-back")
    before = secret_passwords(rotating)
    proc = env.sbops("rotate-credentials", "--service", "mysql", "--yes", "--output", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 3 and doc["result"] == "refused", doc
    assert any("mysql.auth" in b for b in doc["blockers"]), doc["blockers"]
    assert secret_passwords(rotating) == before and not journal(env)


def test_refuses_when_the_release_and_the_file_disagree(rotating: LivingCluster, tmp_path: Path) -> None:
    env = env_for(rotating, tmp_path / "env")
    env.service("mysql", host=rotating.host_ip, port=rotating.servers["mysql"].port, password="not-the-password")
    proc = env.sbops("rotate-credentials", "--service", "mysql", "--yes", "--output", "json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 3 and doc["result"] == "refused", doc
    assert any("holds another MYSQL password" in b for b in doc["blockers"]), doc["blockers"]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    env = LabEnv(tmp_path / "env")
    proc = env.sbops("rotate-credentials", "--service", "postgres", "--dry-run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "postgres" in proc.stderr
    proc = env.sbops("rotate-credentials", "--service", "mysql")  # no terminal, no --yes
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr
