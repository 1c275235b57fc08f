"""`sbops upgrade` on the living cluster (tests/lab/living.py): the real Helm upgrades the lab's StackBill
release from chart 1.0.0 to 2.0.0, and to a broken 3.0.0 that `--auto-rollback` takes back
(tests/lab/chart_versions.py says what each version changes). The kubelet starts and probes the new pods, so
"Ready" and "not Ready" are its verdicts, and the doctor before and after is sbops's own, run by the command.

The upgrade to 2.0.0 takes a real backup first (sbops.backup.create, merged from branch h17-backup) into the
test's directory; the other upgrades pass --no-backup, and one proves that a backup that cannot be written
stops the upgrade before Helm runs.

Each test leaves the cluster as it found it: the release back on chart 1.0.0 with the session's values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from sbops.probes.helm import decode_secret_field, revision_of
from tests.integration.test_living_workloads import core_api
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.chart_versions import make_version
from tests.lab.env import LabEnv
from tests.lab.living import STACKBILL_CHART, LivingCluster, lab_env, services_of
from tests.lab.stack import helm_binary

NS = lab.NAMESPACE


def env_for(living: LivingCluster, root: Path) -> LabEnv:
    return lab_env(living, root, living.servers).set("helm.command", helm_binary())


def release(living: LivingCluster) -> dict[str, Any]:
    """The newest revision of release stackbill: revision, status, chart version, and the pods' pull policy."""
    secrets = core_api(living).list_namespaced_secret(NS, label_selector="owner=helm,name=stackbill").items
    newest = max(secrets, key=lambda s: revision_of({"metadata": {"name": s.metadata.name,
                                                                  "labels": s.metadata.labels}}))
    record = decode_secret_field(newest.data["release"])
    return {"revision": record["version"], "status": record["info"]["status"],
            "chart": record["chart"]["metadata"]["version"]}


def pull_policies(living: LivingCluster) -> set[str]:
    from kubernetes import client

    apps = client.AppsV1Api(living.kube.api())
    return {c.image_pull_policy for d in apps.list_namespaced_deployment(NS).items
            for c in d.spec.template.spec.containers}


@pytest.fixture
def upgrading(living: LivingCluster) -> Iterator[LivingCluster]:
    try:
        yield living
    finally:
        living.helm("stackbill", STACKBILL_CHART, NS, living.values(services_of(living.servers)))
        living.restore()


def upgrade(env: LabEnv, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = env.sbops("upgrade", "--output", "json", *args, timeout=600)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_plan_shows_chart_values_and_manifest_diff_without_secrets(upgrading: LivingCluster, tmp_path: Path) -> None:
    env = env_for(upgrading, tmp_path / "env")
    before = release(upgrading)
    code, doc, stderr = upgrade(env, "--chart", str(make_version(tmp_path, "2.0.0")), "--plan")
    assert code == 0 and doc["result"] == "planned", doc
    plan = doc["plan"]
    assert plan["chart"] == {"from": "stackbill-1.0.0 (app lab)", "to": "stackbill-2.0.0 (app lab-2)"}
    assert plan["default_values"] == ["image.pullPolicy: 'Always' -> 'IfNotPresent'"]
    assert plan["images"] == [] and plan["user_values"] == []
    diff = plan["manifest_diff"]
    assert [line for line in diff if line.startswith("-") and line.endswith("imagePullPolicy: Always")], diff
    assert [line for line in diff if line.startswith("+") and line.endswith("imagePullPolicy: IfNotPresent")], diff
    assert [line for line in diff if line.startswith("+") and "helm.sh/chart: stackbill-2.0.0" in line], diff
    assert not [line for line in diff if line.lstrip("+- ").startswith("mysql-password:")
                and not line.endswith("'****'")], diff
    text = json.dumps(doc) + stderr
    assert not [p for p in upgrading.servers["passwords"].values() if p in text]
    assert release(upgrading) == before  # --plan changes nothing


def test_upgrade_to_version_2(upgrading: LivingCluster, tmp_path: Path) -> None:
    env = env_for(upgrading, tmp_path / "env")
    before = release(upgrading)
    archive = tmp_path / "before-upgrade.tar"
    with ArgvWatcher(list(upgrading.servers["passwords"].values())) as argv:
        code, doc, stderr = upgrade(env, "--chart", str(make_version(tmp_path, "2.0.0")), "--chart-version", "2.0.0",
                                    "--yes", "--backup-to", str(archive))
    assert code == 0 and doc["result"] == "upgraded", json.dumps(doc, indent=1) + stderr
    assert [(s["step"], s["outcome"]) for s in doc["steps"]] == [
        ("pre-flight doctor", "done"), ("backup", "done"), ("helm upgrade", "done"), ("wait for Ready", "done"),
        ("doctor after the upgrade", "done")]
    assert archive.is_file() and (archive.stat().st_mode & 0o777) == 0o600 and archive.stat().st_size > 0
    after = release(upgrading)
    assert after == {"revision": before["revision"] + 1, "status": "deployed", "chart": "2.0.0"}
    assert pull_policies(upgrading) == {"IfNotPresent"}
    assert not argv.hits
    journal = [json.loads(line) for line in Path(env.settings["journal"]).read_text().splitlines()]
    assert [e["step"] for e in journal if e["command"] == "upgrade"][-1] == "doctor after the upgrade"


def test_broken_version_3_is_rolled_back(upgrading: LivingCluster, tmp_path: Path) -> None:
    env = env_for(upgrading, tmp_path / "env")
    before = release(upgrading)
    code, doc, stderr = upgrade(env, "--chart", str(make_version(tmp_path, "3.0.0")), "--yes", "--no-backup",
                                "--force", "--auto-rollback", "--wait-timeout", "40")
    assert code == 3 and doc["result"] == "rolled-back", json.dumps(doc, indent=1) + stderr
    steps = [(s["step"], s["outcome"]) for s in doc["steps"]]
    assert ("wait for Ready", "failed") in steps and ("rollback", "done") in steps, steps
    assert steps[-1] == ("doctor after the rollback", "done"), steps
    assert any("sb-admin" in b for b in doc["blockers"]), doc["blockers"]
    now = release(upgrading)
    assert now == {"revision": before["revision"] + 2, "status": "deployed", "chart": before["chart"]}
    assert doc["revisions"] == {"before": before["revision"], "after": before["revision"] + 1,
                                "rollback": before["revision"] + 2}
    results = env.doctor("pods.ready", "app.portal")
    assert {cid: results[cid]["status"] for cid in ("pods.ready", "app.portal")} == {
        "pods.ready": "ok", "app.portal": "ok"}, results


def test_without_auto_rollback_a_failed_upgrade_says_how_to_roll_back(upgrading: LivingCluster,
                                                                      tmp_path: Path) -> None:
    env = env_for(upgrading, tmp_path / "env")
    before = release(upgrading)
    code, doc, _ = upgrade(env, "--chart", str(make_version(tmp_path, "3.0.0")), "--yes", "--no-backup", "--force",
                           "--wait-timeout", "20")
    assert code == 3 and doc["result"] == "failed", doc
    offered = doc["steps"][-1]
    assert offered["step"] == "rollback" and offered["outcome"] == "offered"
    assert f"rollback stackbill {before['revision']}" in offered["detail"]
    assert release(upgrading)["chart"] == "3.0.0"  # left as it is: the user decides


def test_a_backup_that_cannot_be_written_stops_the_upgrade(upgrading: LivingCluster, tmp_path: Path) -> None:
    env = env_for(upgrading, tmp_path / "env")
    before = release(upgrading)
    taken = tmp_path / "taken.tar"
    taken.write_text("an earlier backup: never overwritten")
    # --force: this test is about the backup; the pre-flight may still see the previous test's pods settling
    code, doc, _ = upgrade(env, "--chart", str(make_version(tmp_path, "2.0.0")), "--yes", "--force",
                           "--backup-to", str(taken))
    assert code == 3 and doc["result"] == "refused", doc
    assert ("backup", "failed") in [(s["step"], s["outcome"]) for s in doc["steps"]], doc["steps"]
    assert "helm upgrade" not in [s["step"] for s in doc["steps"]]
    assert release(upgrading) == before and taken.read_text().startswith("an earlier backup")


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    env = LabEnv(tmp_path / "env")
    for args, word in ((["--wait-timeout", "0"], "--wait-timeout"), (["--backup-to", "x", "--no-backup"], "choose"),
                       (["--chart", str(make_version(tmp_path, "2.0.0")), "--chart-version", "9.9.9", "--plan"],
                        "9.9.9")):
        proc = env.sbops("upgrade", *args)
        assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr, proc.stderr
        assert word in proc.stderr + proc.stdout
