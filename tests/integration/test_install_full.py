"""`sbops install --skip-infra` end to end against every lab server at once, as a user runs it:

- a plan touches nothing; the install creates what is missing (fresh MariaDB, fresh SecantusDB without
  authorization, RabbitMQ without the stackbill user, an NFS export to the world, a cluster without the
  release, the pull secret or the Istio routing), with passwords generated into a credentials file in
  the original format; no password reaches an argv, the output, the log or the state file;
- a second run changes nothing and says why for every step;
- a run interrupted in the middle of a step (Ctrl-C in-process, SIGKILL of the CLI) is --resume'd and
  converges; the original script's credentials file is read and kept byte for byte.

Not real: K3s, Helm and Istio installs (--skip-infra; see test_install_recorded.py), systemd.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sbops import credentials as creds_mod
from sbops.install import catalog, command, flow, steps as st
from sbops.install.run import Reporter
from sbops.install.state import State
from sbops.runner import SubprocessRunner
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import REPO, LabEnv
from tests.lab.helm import DEMO_CHART
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import MongoLab
from tests.lab.nfs import NfsLab

RELEASE = "sbops-install"


@pytest.fixture
def stack(mariadb_factory, rabbitmq_healthy, nfs_lab: NfsLab, kube: lab.KubeLab, core: Any, helm_bin: str,
          helm_env: dict, tmp_path: Path):
    """Every lab server, broken or empty as described in the module docstring; no credentials file yet."""
    mysql = mariadb_factory()
    mongo = MongoLab(tmp_path / "mongo").start()
    rabbit = rabbitmq_healthy
    rabbit.ctl("delete_user", "stackbill")
    nfs_lab.seed_stackbill("*")
    core.delete_namespaced_secret(lab.PULL_SECRET, lab.NAMESPACE)
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=120)
    (tmp_path / "fullchain.pem").write_text(cert + ca)
    (tmp_path / "privkey.pem").write_text(key)

    env = LabEnv(tmp_path / "env").installer()
    env.credentials_file = False
    env.set("mysql.port", mysql.port).set("mysql.admin_socket", str(mysql.socket))
    env.set("mysql.config_dir", str(mysql.conf_d)).set("mysql.restart_command", str(mysql.restart_script))
    env.set("mongodb.port", mongo.port).set("mongodb.config_file", str(mongo.conf_path))
    env.set("mongodb.restart_command", mongo.restart_command())
    env.set("rabbitmq.port", rabbit.port).set("rabbitmq.management_port", rabbit.management_port)
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    nfs_lab.configure(env)
    env.set("kubeconfig", str(kube.kubeconfig)).set("helm.command", helm_bin).set("install.chart", str(DEMO_CHART))
    env.set("release", RELEASE).set("install.pod_timeout", 5)
    token = lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
    extra = {**helm_env, "AWS_ECR_TOKEN": token}
    args = ["--skip-infra", "--domain", lab.DOMAIN, "--ssl-cert", str(tmp_path / "fullchain.pem"),
            "--ssl-key", str(tmp_path / "privkey.pem")]
    yield env, args, extra, {"mysql": mysql, "mongo": mongo, "rabbit": rabbit, "nfs": nfs_lab}
    mongo.stop(wait=False)


def test_plan_then_install_then_nothing_to_do(stack, core: Any) -> None:
    env, args, extra, servers = stack
    plan = env.install("--plan", *args, env=extra)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Plan only: nothing was changed" in plan.stdout
    assert "+ generate MYSQL, MONGODB, RABBITMQ password(s) (16 characters from [A-Za-z0-9])" in plan.stdout
    assert "create user stackbill with the credentials file's password" in plan.stdout  # RabbitMQ, planned for real
    assert not env.credentials_path.exists() and not (env.root / "install" / "state.json").exists()
    assert not (env.root / "install" / "log_dir").exists()
    assert servers["mysql"].sql("SELECT COUNT(*) FROM mysql.user WHERE User='stackbill'") == [(0,)]

    with ArgvWatcher([]) as watch:
        proc = env.install("--yes", *args, env=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Install finished" in proc.stdout and "Next:        sbops doctor" in proc.stdout

    # the credentials file: the original format, mode 0600, three new passwords, and nowhere else
    text = env.credentials_path.read_text()
    assert oct(env.credentials_path.stat().st_mode & 0o777) == "0o600"
    written = creds_mod.parse(text, env.credentials_path)
    assert written.portal_url == f"https://{lab.DOMAIN}" and written.mysql.port == servers["mysql"].port
    passwords = [s.reveal() for s in written.secrets()]
    assert len(set(passwords)) == 3 and all(len(p) == 16 and p.isalnum() for p in passwords)
    state = (env.root / "install" / "state.json").read_text()
    log = next((env.root / "install" / "log_dir").iterdir()).read_text()
    assert watch.samples > 20
    for password in passwords:
        assert not [argv for argv in watch.seen if password in argv]
        for where in (proc.stdout, proc.stderr, state, log):
            assert password not in where
    assert lab.ecr_password(extra["AWS_ECR_TOKEN"]) not in log
    assert "step mysql: changed" in log and "check mysql.user: ok" in log

    checks = env.doctor("mysql.*", "mongodb.*", "rabbitmq.*", "nfs.*", "k8s.namespace", "ecr.*", "tls.*", "helm.release",
                        "istio.*", "pods.ready")
    bad = {cid: (c["status"], c["summary"]) for cid, c in checks.items()
           if (c["status"] not in ("ok", "warn") or (c["status"] == "warn" and cid not in ("mongodb.version", "nfs.directory")))
           and (cid, c["status"], c["reason"]) != ("tls.renewal", "skip", "not_applicable")}  # a certificate from files
    assert bad == {}
    pull = core.read_namespaced_secret(lab.PULL_SECRET, lab.NAMESPACE)
    assert pull.type == "kubernetes.io/dockerconfigjson"

    again = env.install("--yes", *args, env=extra)
    assert again.returncode == 0, again.stdout + again.stderr
    heads = [line for line in again.stdout.splitlines() if line.startswith("  ✔ ") and "validate" not in line]
    assert len(heads) == 15 and all("nothing to do" in line for line in heads), heads  # 18 steps, 3 --skip-infra
    assert again.stdout.count("      = ") >= 25  # a reason for every resource
    assert env.credentials_path.read_text() == text


def test_the_original_scripts_credentials_file_is_read_and_kept(mariadb_seeded, tmp_path: Path) -> None:
    """A file exactly as install-stackbill-poc.sh writes it: its passwords are kept, the server already
    matches, so nothing changes and the file stays byte for byte; a new domain only rewrites PORTAL URL."""
    server = mariadb_seeded
    original = (f"{'=' * 60}\nSTACKBILL POC CREDENTIALS\nGenerated: Mon Mar  4 10:12:01 UTC 2024\n{'=' * 60}\n\n"
                f"PORTAL URL: https://{lab.DOMAIN}\n\nSERVER IP: 127.0.0.1\n\n"
                f"MYSQL:\n  Host: 127.0.0.1\n  Port: {server.port}\n  Database: stackbill\n  Username: stackbill\n"
                f"  Password: {MYSQL_PASSWORD}\n\n"
                "MONGODB:\n  Host: 127.0.0.1\n  Port: 27017\n  Database: admin\n  Username: stackbill\n  Password: MongoFromBash001\n\n"
                "RABBITMQ:\n  Host: 127.0.0.1\n  Port: 5672\n  Username: stackbill\n  Password: RabbitFromBash01\n"
                "  Management: http://127.0.0.1:15672\n\n"
                "NFS:\n  Server: 127.0.0.1\n  Path: /data/stackbill\n\n" + "=" * 60 + "\n")
    env = LabEnv(tmp_path / "env").installer()
    env.credentials_file = False
    env.credentials_path.write_text(original)
    env.credentials_path.chmod(0o600)
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    steps = ["--only", "credentials", "--only", "mysql", "--only", "save-credentials"]
    proc = env.install("--yes", *steps)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("nothing to do") == 3
    assert env.credentials_path.read_text() == original

    proc = env.install("--yes", *steps, "--domain", "new.example.com")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PORTAL URL: https://stackbill.example.com -> https://new.example.com" in proc.stdout
    rewritten = creds_mod.load(env.credentials_path)
    assert rewritten.portal_url == "https://new.example.com"
    assert [s.reveal() for s in rewritten.secrets()] == [MYSQL_PASSWORD, "MongoFromBash001", "RabbitFromBash01"]
    assert (env.credentials_path.parent / "stackbill-credentials.txt.bak").read_text() == original


def test_a_missing_password_is_generated_and_the_others_kept(mariadb_seeded, tmp_path: Path) -> None:
    env = LabEnv(tmp_path / "env").installer().service("mysql", port=mariadb_seeded.port, password=MYSQL_PASSWORD)
    env.write()
    env.credentials_file = False
    text = env.credentials_path.read_text().replace("  Password: unused-rabbit\n", "")
    env.credentials_path.write_text(text)
    proc = env.install("--yes", "--only", "credentials")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "+ generate RABBITMQ password(s)" in proc.stdout
    assert "note: kept from the file: MYSQL, MONGODB" in proc.stdout
    after = creds_mod.load(env.credentials_path)
    assert (after.mysql.password.reveal(), after.mongodb.password.reveal()) == (MYSQL_PASSWORD, "unused-mongo")
    assert len(after.rabbitmq.password.reveal()) == 16
    proc = env.install("--yes", "--only", "credentials")
    assert "nothing to do" in proc.stdout and creds_mod.load(env.credentials_path).secrets() == after.secrets()


class Interrupt:
    """A resource whose probe gets Ctrl-C (KeyboardInterrupt), as a user pressing it mid-step would."""

    def __call__(self, run: Any, ctx: Any) -> Any:
        raise KeyboardInterrupt


def test_interrupted_in_the_middle_of_a_step_then_resumed(mariadb_factory, tmp_path: Path) -> None:
    server = mariadb_factory()
    env = LabEnv(tmp_path / "env").installer().service("mysql", port=server.port, password=MYSQL_PASSWORD)
    env.set("mysql.admin_socket", str(server.socket)).set("mysql.config_dir", str(server.conf_d))
    env.write()
    given = {"config": str(env.config_path), "credentials": str(env.credentials_path), "only": ("credentials", "mysql")}
    options, settings, state = command.resolve_options(given, resume=False)
    run = command.build_run(options, settings, runner=SubprocessRunner(), fetcher=None, reporter=Reporter(), env={},
                            ask=None)
    steps = catalog.steps()
    mysql = next(s for s in steps if s.name == "mysql")
    broken = replace(mysql, resources=tuple(r if r.name != "mysql.user" else replace(r, plan=Interrupt())
                                            for r in mysql.resources))
    selection = st.select(steps, only=options.only)
    state.begin(options.as_state(), "")
    with pytest.raises(KeyboardInterrupt):
        flow.run_install(run, [s if s.name != "mysql" else broken for s in steps], selection, plan_only=False,
                         state=state)
    saved = State.load(state.path)
    assert saved.resume_point() == "mysql" and saved.steps["mysql"]["status"] == "interrupted"
    assert server.sql("SHOW DATABASES LIKE 'configuration'") == [("configuration",)]  # applied before Ctrl-C
    assert server.sql("SELECT COUNT(*) FROM mysql.user WHERE User='stackbill'") == [(0,)]  # never got there

    out, err = io.StringIO(), io.StringIO()
    code = command.execute({"config": str(env.config_path), "credentials": str(env.credentials_path)}, plan_only=False,
                           yes=True, resume=True, json_output=True, out=out, err=err)
    assert code == 0, err.getvalue()
    doc = json.loads(out.getvalue())
    mysql_step = next(s for s in doc["steps"] if s["name"] == "mysql")
    assert mysql_step["status"] == "changed"
    user = next(r for r in mysql_step["resources"] if r["name"] == "mysql.user")
    assert user["applied"][0].startswith("create 'stackbill'@'%'")
    schema = next(r for r in mysql_step["resources"] if r["name"] == "mysql.schema")
    assert schema["nothing_to_do"] == "databases present: stackbill, configuration"
    assert State.load(state.path).finished
    assert env.check("mysql.auth")["status"] == "ok"


def test_a_killed_run_is_resumed(living: Any, living_env: LabEnv) -> None:
    """SIGKILL while wait-pods waits for a pod the kubelet holds NotReady (sb-admin's readiness probe asks for a
    page it does not serve): the state says the step was running; once the probe is put right and the kubelet
    marks the new pod Ready, --resume (with no other flag: the killed run's options) converges."""
    from kubernetes import client

    from tests.lab.living import eventually

    apps = client.AppsV1Api(living.kube.api())
    good = apps.read_namespaced_deployment("sb-admin", lab.NAMESPACE).spec.template.spec.containers[0]
    path = good.readiness_probe.http_get.path

    def probe_path(to: str) -> None:
        apps.patch_namespaced_deployment("sb-admin", lab.NAMESPACE, {"spec": {"template": {"spec": {"containers": [
            {"name": good.name, "readinessProbe": {"httpGet": {"path": to}}}]}}}})

    probe_path("/not-a-page-sb-admin-serves")
    eventually("sb-admin's new pod is NotReady", lambda: living_env.check("pods.ready")["reason"],
               lambda reason: reason == "not_ready")
    env = living_env.installer().set("install.pod_timeout", 120)
    env.write()
    argv = [sys.executable, "-m", "sbops", "install", "--yes", "--only", "wait-pods", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NO_COLOR": "1"})
    state_file = env.root / "install" / "state.json"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if state_file.exists() and json.loads(state_file.read_text())["steps"].get("wait-pods", {}).get("status") == "running":
            break
        time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert json.loads(state_file.read_text())["steps"]["wait-pods"]["status"] == "running"

    probe_path(path)
    resumed = env.install("--resume", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the install of" in resumed.stdout and "at step wait-pods" in resumed.stdout
    assert json.loads(state_file.read_text())["finished"] is True
