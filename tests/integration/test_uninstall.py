"""`sbops uninstall` against real servers: the lab's kube-apiserver with a chart installed by a real Helm 3,
a private MariaDB, SecantusDB (MongoDB wire) and RabbitMQ. Every run is the real CLI in a subprocess.

What the lab cannot run, and what stands in for it (nothing else is simulated):
- the controller-manager: a PVC's kubernetes.io/pvc-protection finalizer and a namespace's `kubernetes`
  finalizer are only ever removed by controllers. sbops itself removes pvc-protection once no pod mounts the
  claim (that is its design, tested here as is); for the namespace, `namespace_controller()` below finalizes
  a Terminating namespace as the namespace controller does once the content is gone (the content it would
  delete first is left in etcd; the kube fixture's reset removes it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.test_helm import CHART, DEMO, helm  # helm_bin, helm_env: fixtures of tests/lab/helm.py
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import REPO, LabEnv
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, MONGO_PASSWORD
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD

NS = lab.NAMESPACE
SECRETS = [MYSQL_PASSWORD, MONGO_PASSWORD, MONGO_ADMIN_PASSWORD, RABBIT_PASSWORD]
ALL_LEVELS = ("--delete-pvc", "--delete-namespace", "--delete-db", "--delete-mongo-data")


# -- helpers ----------------------------------------------------------------------------------------------
def uninstall(env: LabEnv, *args: str, extra_env: dict[str, str] | None = None, write: bool = True,
              input: str | None = None) -> tuple[int, dict[str, Any], subprocess.CompletedProcess]:
    """Run `sbops uninstall ARGS --output json`; write=False keeps the files as the last run left them (the
    credentials file a previous --delete-db removed stays removed)."""
    if write:
        env.write()
    argv = [sys.executable, "-m", "sbops", "uninstall", *args, "--output", "json", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO, input=input,
                          env={**os.environ, "NO_COLOR": "1", **(extra_env or {})})
    assert proc.returncode in (0, 3), f"uninstall exited {proc.returncode}: {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc


def kube_env(root: Path, kube: lab.KubeLab, helm_path: str) -> LabEnv:
    """The cluster only: the database areas point at nothing (no server on port 1, no admin socket, no
    rabbitmqctl), so a test of the Kubernetes levels never reads this machine's own servers."""
    return (LabEnv(root).set("kubeconfig", str(kube.kubeconfig)).set("helm.command", helm_path)
            .set("mysql.admin_socket", str(root / "no-socket")).set("rabbitmq.ctl_command", str(root / "no-ctl"))
            .set("mongodb.port", 1).set("mysql.port", 1).set("rabbitmq.port", 1).set("rabbitmq.management_port", 1))


def full_env(root: Path, kube: lab.KubeLab, helm_path: str, mysql: Any, mongo: Any, rabbit: Any) -> LabEnv:
    """Cluster and data servers; their ports are settings too, so a run after the credentials file is gone
    still finds them (as on a real server, where they are the defaults)."""
    env = LabEnv(root).set("kubeconfig", str(kube.kubeconfig)).set("helm.command", helm_path)
    env.service("mysql", port=mysql.port, password=MYSQL_PASSWORD)
    env.set("mysql.admin_socket", str(mysql.socket)).set("mysql.port", mysql.port)
    env.service("mongodb", port=mongo.port, password=MONGO_PASSWORD)
    env.set("mongodb.admin_user", LAB_ADMIN).set("mongodb.admin_password", MONGO_ADMIN_PASSWORD)
    env.set("mongodb.port", mongo.port)
    env.service("rabbitmq", port=rabbit.port, password=RABBIT_PASSWORD, management=rabbit.management_url)
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    env.set("rabbitmq.port", rabbit.port).set("rabbitmq.management_port", rabbit.management_port)
    return env


def seed_data(mysql: Any, mongo: Any) -> None:
    """StackBill's data: a table in each MySQL database, a MongoDB database with documents."""
    mysql.seed_stackbill(MYSQL_PASSWORD)
    for db in ("stackbill", "configuration"):
        mysql.sql(f"CREATE TABLE {db}.settings (id INT PRIMARY KEY, value VARCHAR(200))",
                  f"INSERT INTO {db}.settings VALUES (1, 'a'), (2, 'b')")
    with mongo.client("stackbill", MONGO_PASSWORD) as client:
        client["usage"]["events"].insert_many([{"i": i, "pad": "x" * 200} for i in range(200)])


def mysql_state(mysql: Any) -> tuple[set[str], set[str]]:
    databases = {r[0] for r in mysql.sql("SHOW DATABASES")}
    hosts = {r[0] for r in mysql.sql("SELECT Host FROM mysql.user WHERE User = 'stackbill'")}
    return databases & {"stackbill", "configuration"}, hosts


def exists(read: Any, *args: Any) -> bool:
    return lab._exists(read, *args)


def custom_exists(custom: Any, plural: str, name: str) -> bool:
    return exists(custom.get_namespaced_custom_object, lab.ISTIO_GROUP, lab.ISTIO_VERSION_API, NS, plural, name)


def helm_records(core: Any, release: str) -> list[str]:
    return [s.metadata.name for s in core.list_namespaced_secret(NS, label_selector=f"owner=helm,name={release}").items]


def kinds(doc: dict[str, Any]) -> list[str]:
    return [s["kind"] for s in doc["plan"]["steps"]]


@pytest.fixture
def chart(kube: lab.KubeLab, core: Any, helm_bin: str, helm_env: dict[str, str]) -> str:
    """The demo chart installed by real Helm as release `stackbill` (an upgrade of the seeded record to revision
    2, with a real manifest); returns the name of the ConfigMap it made, which uninstalling must remove."""
    helm(helm_bin, helm_env, kube, "upgrade", "--install", "stackbill", str(CHART))
    assert exists(core.read_namespaced_config_map, "stackbill-settings", NS)
    return "stackbill-settings"


@contextmanager
def namespace_controller(kube: lab.KubeLab, name: str) -> Iterator[None]:
    """Stands in for kube-controller-manager's namespace controller (see the module docstring)."""
    from kubernetes import client

    core = client.CoreV1Api(kube.api())
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                current = core.read_namespace(name)
                if current.metadata.deletion_timestamp is not None:
                    current.spec.finalizers = []
                    core.replace_namespace_finalize(name, current)
            except Exception:  # noqa: BLE001 - 404 once it is gone; keep watching until told to stop
                pass
            stop.wait(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# -- the default level --------------------------------------------------------------------------------------
def test_default_level_uninstalls_a_real_helm_release_and_the_objects_around_it(
        kube: lab.KubeLab, core: Any, custom: Any, helm_bin: str, helm_env: dict[str, str], tmp_path: Path) -> None:
    helm(helm_bin, helm_env, kube, "upgrade", "--install", DEMO, str(CHART))
    assert exists(core.read_namespaced_config_map, f"{DEMO}-settings", NS)
    env = kube_env(tmp_path / "env", kube, helm_bin)

    code, doc, _ = uninstall(env, "--release", DEMO, "--yes", extra_env=helm_env)

    assert code == 0 and doc["outcome"] == "uninstalled", doc
    assert kinds(doc) == ["helm-uninstall", "delete-object", "delete-object", "delete-object"]
    helm_step = doc["plan"]["steps"][0]
    assert "chart sbops-demo-0.1.0, revision 1, deployed" in helm_step["description"]
    assert helm_step["commands"][0].startswith(f"{helm_bin} uninstall {DEMO} -n {NS} --kubeconfig ")
    # the chart's objects and its release records are gone, and so are the Gateway, VirtualService, pull secret
    assert not exists(core.read_namespaced_config_map, f"{DEMO}-settings", NS)
    assert helm_records(core, DEMO) == []
    assert not custom_exists(custom, "gateways", lab.GATEWAY)
    assert not custom_exists(custom, "virtualservices", lab.VIRTUALSERVICE)
    assert not exists(core.read_namespaced_secret, lab.PULL_SECRET, NS)
    assert all(v["gone"] for v in doc["verify"])
    # what the default level keeps, and says it keeps: the PVC (with its size and class), the TLS secret, the
    # namespace, the other release in it
    kept = {k["what"]: k["why"] for k in doc["plan"]["kept"]}
    assert kept[f"PVC {NS}/sb-data (10Gi, {lab.STORAGE_CLASS})"] == "add --delete-pvc to delete it"
    assert f"secret {lab.ISTIO_NAMESPACE}/{lab.TLS_SECRET}" in kept and f"namespace {NS}" in kept
    assert exists(core.read_namespaced_persistent_volume_claim, "sb-data", NS)
    assert exists(core.read_namespaced_secret, lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    assert helm_records(core, "stackbill") == [lab.HELM_SECRET]
    assert core.read_namespace(NS).status.phase == "Active"

    # a second run has nothing to do, and says why for each item
    code, doc, _ = uninstall(env, "--release", DEMO, "--yes", extra_env=helm_env)
    assert code == 0 and doc["outcome"] == "nothing-to-do" and doc["plan"]["steps"] == []
    gone = {g["what"]: g["why"] for g in doc["plan"]["gone"]}
    assert gone[f"Helm release {DEMO}"] == f"no release record in namespace {NS}"
    assert gone[f"gateway {NS}/{lab.GATEWAY}"] == "does not exist"
    assert gone[f"secret {NS}/{lab.PULL_SECRET}"] == "does not exist"


def test_text_plan_and_dry_run_change_nothing(kube: lab.KubeLab, core: Any, helm_bin: str, tmp_path: Path) -> None:
    env = kube_env(tmp_path / "env", kube, helm_bin)
    proc = env.sbops("uninstall", "--delete-pvc", "--delete-namespace", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "uninstall Helm release stackbill (chart stackbill-1.0.0, revision 1, deployed)" in out
    assert (f"delete PVC {NS}/sb-data (10Gi, {lab.STORAGE_CLASS}, Bound): volume pvc-" in out
            and "has reclaim policy Delete: the NFS provisioner renames its directory" in out)
    assert f"delete namespace {NS} and everything left in it" in out
    assert "never removed: K3s; Istio" in out and "dry run: nothing was changed" in out
    assert helm_records(core, "stackbill") == [lab.HELM_SECRET]
    assert exists(core.read_namespaced_persistent_volume_claim, "sb-data", NS)
    assert core.read_namespace(NS).status.phase == "Active"


def test_refuses_to_apply_without_yes_when_stdin_is_not_a_terminal(kube: lab.KubeLab, core: Any, helm_bin: str,
                                                                    tmp_path: Path) -> None:
    env = kube_env(tmp_path / "env", kube, helm_bin)
    proc = env.sbops("uninstall", input="y\n")
    assert proc.returncode == 2 and "pass --yes (or --force)" in proc.stderr, proc.stderr
    assert helm_records(core, "stackbill") == [lab.HELM_SECRET]
    code, doc, _ = uninstall(env, "--force")  # uninstall.sh's own flag for the same thing
    assert code == 0 and doc["outcome"] == "uninstalled" and helm_records(core, "stackbill") == []


# -- PVCs and the namespace ----------------------------------------------------------------------------------
def test_pvc_held_by_a_pod_is_reported_then_removed_once_the_pod_is_gone(kube: lab.KubeLab, core: Any, helm_bin: str,
                                                                          helm_env: dict[str, str], chart: str,
                                                                          tmp_path: Path) -> None:
    core.create_namespaced_pod(NS, {"metadata": {"name": "sb-worker"}, "spec": {
        "nodeName": lab.NODE, "containers": [{"name": "w", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "sb-data"}}]}})
    env = kube_env(tmp_path / "env", kube, helm_bin)

    code, doc, _ = uninstall(env, "--delete-pvc", "--yes", "--wait", "1", extra_env=helm_env)

    assert code == 3 and doc["outcome"] == "failed", doc
    assert not exists(core.read_namespaced_config_map, chart, NS)  # the release went first
    assert doc["failed"] == {"what": f"PVC {NS}/sb-data",
                             "error": f"PVC {NS}/sb-data is still Terminating after 1s: pod(s) sb-worker still mount it"}
    assert "mounted by pod(s) sb-worker" in " ".join(doc["plan"]["notes"])
    pvc = core.read_namespaced_persistent_volume_claim("sb-data", NS)
    assert pvc.metadata.deletion_timestamp is not None and pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]

    core.delete_namespaced_pod("sb-worker", NS, grace_period_seconds=0)
    code, doc, _ = uninstall(env, "--delete-pvc", "--yes", "--wait", "1")
    assert code == 0 and doc["outcome"] == "uninstalled", doc
    assert "Bound, Terminating" in doc["plan"]["steps"][0]["description"]  # it says the claim was already going
    assert not exists(core.read_namespaced_persistent_volume_claim, "sb-data", NS)


def test_namespace_still_terminating_is_reported_and_a_rerun_converges(kube: lab.KubeLab, core: Any, helm_bin: str,
                                                                        helm_env: dict[str, str], chart: str,
                                                                        tmp_path: Path) -> None:
    env = kube_env(tmp_path / "env", kube, helm_bin)
    code, doc, _ = uninstall(env, "--delete-namespace", "--yes", "--wait", "1", extra_env=helm_env)
    assert code == 3 and doc["outcome"] == "failed"
    assert not exists(core.read_namespaced_config_map, chart, NS) and helm_records(core, "stackbill") == []
    assert doc["failed"]["error"].startswith(f"namespace {NS} is still Terminating after 1s: the namespace controller")
    assert kinds(doc)[-3:] == ["delete-pvc", "delete-object", "delete-namespace"]  # PVCs go first, explicitly
    assert not exists(core.read_namespaced_persistent_volume_claim, "sb-data", NS)
    assert not exists(core.read_namespaced_secret, lab.TLS_SECRET, lab.ISTIO_NAMESPACE)

    code, doc, _ = uninstall(env, "--delete-namespace", "--dry-run")
    assert [s["description"] for s in doc["plan"]["steps"]] == [f"via the Kubernetes API: finish deleting namespace {NS} (already Terminating)"]
    with namespace_controller(kube, NS):  # the controller finally does its part...
        end = time.monotonic() + 10
        while exists(core.read_namespace, NS) and time.monotonic() < end:
            time.sleep(0.1)
    code, doc, _ = uninstall(env, "--delete-namespace", "--yes")  # ...and a re-run finds nothing left to do
    assert code == 0 and doc["outcome"] == "nothing-to-do"
    assert {g["what"]: g["why"] for g in doc["plan"]["gone"]}[f"namespace {NS}"] == "does not exist"


# -- everything, with the databases --------------------------------------------------------------------------
def test_full_uninstall_drops_everything_then_a_second_run_is_a_no_op(
        kube: lab.KubeLab, core: Any, custom: Any, helm_bin: str, helm_env: dict[str, str], chart: str,
        mariadb_factory: Any, mongo_factory: Any, rabbitmq_healthy: Any, tmp_path: Path) -> None:
    mysql, mongo, rabbit = mariadb_factory(), mongo_factory(), rabbitmq_healthy
    seed_data(mysql, mongo)
    env = full_env(tmp_path / "env", kube, helm_bin, mysql, mongo, rabbit)

    # the plan, measured on the live servers, before anything is asked or changed
    code, plan, _ = uninstall(env, *ALL_LEVELS, "--dry-run")
    assert code == 0 and plan["outcome"] == "dry-run"
    described = [s["description"] for s in plan["plan"]["steps"]]
    assert described[0].startswith("uninstall Helm release stackbill (chart sbops-demo-0.1.0, revision 2, deployed)")
    assert kinds(plan) == ["helm-uninstall", "delete-object", "delete-object", "delete-object", "delete-pvc",
                           "delete-object", "delete-namespace", "drop-mongodb-database", "drop-mysql-database",
                           "drop-mysql-database", "drop-mysql-user", "drop-mysql-user", "drop-mongodb-user",
                           "delete-rabbitmq-user", "remove-credentials"]
    assert any(d.startswith("drop MySQL database stackbill (1 table, ") and d.endswith(" on disk)")
               for d in described)
    assert any(d.startswith("drop MongoDB database usage (") and "kB on disk)" in d for d in described)
    assert "drop MySQL account 'stackbill'@'%' and its grants" in described
    assert plan["inventory"]["mongodb"]["databases"][0]["bytes"] > 10_000
    assert mysql_state(mysql) == ({"stackbill", "configuration"}, {"%", "localhost"})
    assert env.credentials_path.exists()

    with ArgvWatcher(SECRETS) as watch, namespace_controller(kube, NS):
        code, doc, proc = uninstall(env, *ALL_LEVELS, "--no-backup", "--yes", "--wait", "10", write=False, extra_env=helm_env)
    assert code == 0 and doc["outcome"] == "uninstalled", json.dumps(doc, indent=1)[:3000]
    assert all(v["gone"] for v in doc["verify"]) and len(doc["verify"]) == 15
    assert doc["credentials"].startswith(f"removed {env.credentials_path}")

    # really gone, looked at with the servers' own tools
    assert mysql_state(mysql) == (set(), set())
    assert "stackbill" not in mongo.users(login=(LAB_ADMIN, MONGO_ADMIN_PASSWORD))
    with mongo.client(LAB_ADMIN, MONGO_ADMIN_PASSWORD) as client:
        assert "usage" not in client.list_database_names()
    assert "stackbill" not in rabbit.users()
    assert not env.credentials_path.exists()
    assert helm_records(core, "stackbill") == [] and not exists(core.read_namespace, NS)
    assert not exists(core.read_namespaced_config_map, chart, NS)
    assert not exists(core.read_namespaced_secret, lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    # what it never removes is still there
    assert exists(core.read_namespace, lab.ISTIO_NAMESPACE) and mysql.running and mongo.running and rabbit.running

    # no secret on any command line (helm, rabbitmqctl) or in the output
    assert watch.samples > 20 and watch.hits == [], watch.hits[:1]
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr

    # a second run: nothing to do, and why, for every item (the credentials file stays gone: write=False)
    code, again, _ = uninstall(env, *ALL_LEVELS, "--no-backup", "--yes", write=False)
    assert code == 0 and again["outcome"] == "nothing-to-do" and again["plan"]["steps"] == []
    gone = {g["what"]: g["why"] for g in again["plan"]["gone"]}
    assert gone["Helm release stackbill"] == f"no release record in namespace {NS}"
    assert gone[f"namespace {NS}"] == "does not exist"
    assert gone["MySQL database stackbill"] == "does not exist" and gone["MySQL user stackbill"] == "no account"
    assert gone["MongoDB user stackbill"] == f"does not exist (as {LAB_ADMIN} (mongodb.admin_user))"
    assert gone["MongoDB databases"] == "none besides admin, config and local"
    assert gone["RabbitMQ user stackbill"] == "does not exist"
    assert gone["credentials file"] == f"{env.credentials_path} does not exist"


def test_credentials_file_is_kept_when_a_drop_fails_and_removed_once_it_succeeds(
        kube: lab.KubeLab, helm_bin: str, helm_env: dict[str, str], mariadb_factory: Any, mongo_factory: Any,
        rabbitmq_healthy: Any, tmp_path: Path) -> None:
    mysql, mongo, rabbit = mariadb_factory(), mongo_factory(), rabbitmq_healthy
    seed_data(mysql, mongo)
    # an admin login that may look but not drop: the first DROP DATABASE fails
    admin_pw = "LimitedAdmin4242"
    mysql.sql("CREATE USER 'limited'@'localhost' IDENTIFIED BY %s", args=(admin_pw,))
    mysql.sql("GRANT SELECT ON *.* TO 'limited'@'localhost'")
    env = full_env(tmp_path / "env", kube, helm_bin, mysql, mongo, rabbit).set("mysql.admin_user", "limited")
    secret_env = {**helm_env, "SBOPS_MYSQL_ADMIN_PASSWORD": admin_pw}
    env.write()
    before = env.credentials_path.read_text()

    code, doc, proc = uninstall(env, "--delete-db", "--no-backup", "--yes", write=False, extra_env=secret_env)

    assert code == 3 and doc["outcome"] == "failed"
    assert doc["failed"]["what"] == "MySQL database stackbill" and "(1044)" in doc["failed"]["error"]
    assert doc["credentials"] is None and env.credentials_path.read_text() == before
    left = {v["what"] for v in doc["verify"] if not v["gone"]}
    assert {"MySQL database stackbill", "MongoDB user stackbill", "RabbitMQ user stackbill",
            f"credentials file {env.credentials_path}"} <= left
    assert "stackbill" in rabbit.users() and mysql_state(mysql)[0] == {"stackbill", "configuration"}
    assert admin_pw not in proc.stdout + proc.stderr

    mysql.sql("GRANT ALL PRIVILEGES ON *.* TO 'limited'@'localhost' WITH GRANT OPTION")
    code, doc, _ = uninstall(env, "--delete-db", "--no-backup", "--yes", write=False, extra_env=secret_env)
    assert code == 0 and doc["outcome"] == "uninstalled", doc
    assert mysql_state(mysql) == (set(), set()) and not env.credentials_path.exists()
    assert doc["credentials"].startswith(f"removed {env.credentials_path}")


def test_credentials_file_is_kept_when_the_drops_cannot_be_verified(
        kube: lab.KubeLab, helm_bin: str, helm_env: dict[str, str], mariadb_factory: Any, mongo_factory: Any,
        rabbitmq_healthy: Any, tmp_path: Path) -> None:
    """No MongoDB admin login: sbops drops the user as the user itself, after which nothing can look at
    MongoDB's users (SecantusDB, like mongod with another user left, offers no localhost exception)."""
    mysql, mongo, rabbit = mariadb_factory(), mongo_factory(), rabbitmq_healthy
    seed_data(mysql, mongo)
    env = full_env(tmp_path / "env", kube, helm_bin, mysql, mongo, rabbit)
    env.set("mongodb.admin_user", "").set("mongodb.admin_password", "")

    code, doc, _ = uninstall(env, "--delete-db", "--no-backup", "--yes", extra_env=helm_env)

    assert code == 3 and doc["outcome"] == "not-finished"
    assert doc["credentials"].startswith(f"kept {env.credentials_path}: MongoDB user stackbill cannot be checked")
    assert env.credentials_path.exists()
    assert "stackbill" not in mongo.users(login=(LAB_ADMIN, MONGO_ADMIN_PASSWORD))  # the drop itself did happen
    assert mysql_state(mysql) == (set(), set()) and "stackbill" not in rabbit.users()


def test_no_at_the_prompt_changes_nothing(kube: lab.KubeLab, core: Any, helm_bin: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """In-process, so the confirmation can be answered (a subprocess's stdin is never a terminal)."""
    from sbops.uninstall.plan import Levels
    from sbops.uninstall.flow import run
    from sbops.cli.uninstall import context

    env = kube_env(tmp_path / "env", kube, helm_bin).write()
    ctx = context(str(env.config_path), str(env.credentials_path), None, None, None, None)
    asked: list[str] = []
    code = run(ctx, "stackbill", Levels(pvc=True), yes=False, dry_run=False,
               confirm=lambda question: asked.append(question) or False)
    assert code == 3 and asked == ["Delete these 5 item(s)? This cannot be undone."]
    assert capsys.readouterr().out.rstrip().endswith("aborted: nothing was changed")
    assert helm_records(core, "stackbill") == [lab.HELM_SECRET]
    assert exists(core.read_namespaced_persistent_volume_claim, "sb-data", NS)
