"""The pure parts the uninstaller adds to the probes (claims, Helm releases, MongoDB's database list, MySQL's
drop statements), the refresher's removal through the recording runner, and the command line's contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sbops.context import Context
from sbops.probes import helm, k8s
from sbops.runner import CommandResult, RecordingRunner, succeeds
from sbops.settings import Settings
from sbops.uninstall import mongodb_data, mysql_data
from sbops.uninstall.apply import remove_units
from tests.lab.kube import helm_release_secret

PVC = {"metadata": {"name": "sb-data", "resourceVersion": "42", "finalizers": ["kubernetes.io/pvc-protection"]},
       "spec": {"storageClassName": "nfs-client", "volumeName": "pvc-1", "resources": {"requests": {"storage": "5Gi"}}},
       "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}}
PV = {"spec": {"persistentVolumeReclaimPolicy": "Delete", "nfs": {"server": "10.0.0.10", "path": "/data/stackbill/x"}}}
NFS_CLASS = {"parameters": {"archiveOnDelete": "false"}}


def test_claim_facts_prefer_the_bound_capacity_and_read_the_volume_and_class():
    facts = k8s.claim_facts(PVC, PV, NFS_CLASS)
    assert facts == {"name": "sb-data", "capacity": "10Gi", "storage_class": "nfs-client", "phase": "Bound",
                     "volume": "pvc-1", "terminating": False, "finalizers": ["kubernetes.io/pvc-protection"],
                     "resource_version": "42", "reclaim_policy": "Delete", "nfs_path": "/data/stackbill/x",
                     "archive_on_delete": False}
    pending = k8s.claim_facts({"metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"},
                               "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {}})
    assert (pending["capacity"], pending["phase"], pending["terminating"], pending["reclaim_policy"]) == \
        ("1Gi", "Pending", True, "")


@pytest.mark.parametrize("pv, cls, fate", [
    (PV, NFS_CLASS, "volume pvc-1 has reclaim policy Delete: its data (/data/stackbill/x) is deleted"),
    (PV, {"parameters": {"archiveOnDelete": "true"}},
     "volume pvc-1 has reclaim policy Delete: the NFS provisioner renames its directory (/data/stackbill/x) to "
     "archived-* (archiveOnDelete)"),
    ({"spec": {"persistentVolumeReclaimPolicy": "Retain"}}, None, "volume pvc-1 has reclaim policy Retain: it and its data stay"),
    (None, None, "volume pvc-1, reclaim policy unknown"),
])
def test_data_fate_says_where_the_data_goes(pv, cls, fate):
    assert k8s.data_fate(k8s.claim_facts(PVC, pv, cls)) == fate


def test_claim_users_ignore_finished_pods_and_other_claims():
    def pod(name, claim, phase="Running"):
        return {"metadata": {"name": name}, "status": {"phase": phase},
                "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}, {"name": "e", "emptyDir": {}}]}}

    pods = [pod("b", "sb-data"), pod("a", "sb-data", "Pending"), pod("done", "sb-data", "Succeeded"), pod("o", "other"),
            {"metadata": {"name": "novol"}, "spec": {}}]
    assert k8s.claim_users(pods, "sb-data") == ["a", "b"]


def test_group_releases_by_name_and_pick_the_latest():
    def as_dict(secret):
        from kubernetes import client

        return client.ApiClient().sanitize_for_serialization(secret)

    secrets = [as_dict(helm_release_secret("stackbill", "sb-apps", 1, "superseded")),
               as_dict(helm_release_secret("stackbill", "sb-apps", 2, "deployed")),
               as_dict(helm_release_secret("other", "sb-apps", 1, "failed")),
               {"metadata": {"name": "not-helm", "labels": {"name": "x"}}}]
    grouped = helm.group_releases(secrets)
    assert sorted(grouped) == ["other", "stackbill"]
    latest = helm.latest(grouped["stackbill"])
    assert (latest["revision"], latest["status"], latest["chart"]) == (2, "deployed", "stackbill")
    assert helm.uninstall_argv("/bin/helm", "stackbill", "sb-apps", "/k") == [
        "/bin/helm", "uninstall", "stackbill", "-n", "sb-apps", "--kubeconfig", "/k", "--timeout", "300s"]


def test_mongodb_database_list_leaves_out_mongodbs_own():
    answer = {"databases": [{"name": "admin", "sizeOnDisk": 40960, "empty": False},
                            {"name": "usage", "sizeOnDisk": 1.5e6, "empty": False},
                            {"name": "local", "sizeOnDisk": 8192}, {"name": "config", "sizeOnDisk": 1},
                            {"name": "metrics", "empty": True}], "ok": 1}
    assert mongodb_data.parse_database_list(answer) == [{"name": "metrics", "bytes": None, "empty": True},
                                                   {"name": "usage", "bytes": 1500000, "empty": False}]


def test_mysql_drop_statements_take_any_account_name_as_parameters():
    assert mysql_data.drop_user_statement("stackbill", "10.42.0.0/255.255.0.0") == (
        "DROP USER IF EXISTS %s@%s", ("stackbill", "10.42.0.0/255.255.0.0"),
        "DROP USER IF EXISTS 'stackbill'@'10.42.0.0/255.255.0.0'")
    assert mysql_data.drop_user_statement("o'brien", "%")[2] == "DROP USER IF EXISTS 'o\\'brien'@'%'"
    assert mysql_data.drop_database_sql("configuration") == "DROP DATABASE IF EXISTS `configuration`"
    assert mysql_data.tablespace_totals([("stackbill/account", 9437184), ("stackbill/usage#P#p0", 65536),
                                    ("stackbillx/t", 1), ("mysql/innodb_table_stats", 2), ("innodb_system", 3)],
                                   ["stackbill", "configuration"]) == {"stackbill": 9502720, "configuration": 0}
    with pytest.raises(ValueError):
        mysql_data.drop_database_sql("x`; DROP DATABASE mysql; --")


def test_refresher_removal_stops_the_timer_then_deletes_the_units(tmp_path: Path):
    """systemd cannot run here: the recording runner takes the commands, the unit files are real files."""
    units = tuple(str(tmp_path / f"sbops-ecr-refresh.{kind}") for kind in ("timer", "service"))
    for unit in units:
        Path(unit).write_text("[Unit]\n")
    runner = RecordingRunner(responses=succeeds("systemctl"))
    ctx = Context(Settings.load(env={}), runner=runner)
    remove_units(ctx, units, ".timer")
    assert runner.commands == [("systemctl", "disable", "--now", "sbops-ecr-refresh.timer"),
                               ("systemctl", "daemon-reload")]
    assert not any(Path(u).exists() for u in units)

    failing = RecordingRunner(responses={**succeeds("systemctl"),
                                         "systemctl daemon-reload": CommandResult(("systemctl",), 1, "", "Failed to reload")})
    with pytest.raises(Exception, match="systemctl daemon-reload: Failed to reload"):
        remove_units(Context(Settings.load(env={}), runner=failing), units, ".timer")


# -- the command line ----------------------------------------------------------------------------------
def sbops(*args: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "sbops", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})


def test_help_shows_an_example_and_the_original_flags():
    proc = sbops("uninstall", "--help")
    assert proc.returncode == 0 and "Example: sbops uninstall" in proc.stdout
    for flag in ("-n, --namespace", "-r, --release", "--delete-pvc", "--delete-namespace", "--delete-db", "--force",
                 "--yes", "--dry-run", "--output", "--config", "--credentials", "--kubeconfig", "--timeout"):
        assert flag in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--namespace", "SB_Apps"], "--namespace: 'SB_Apps' is not a valid namespace name"),
    (["--release", "x" * 60], "--release: "),
    (["--wait", "-1"], "--wait: must be zero or more seconds"),
    (["--timeout", "0"], "--timeout: must be a positive number"),
    (["--delete-namespace", "-n", "kube-system"], "--delete-namespace: refusing to delete namespace kube-system"),
    (["--credentials", "/dev/null", "--config", "/nonexistent.yaml"], "/nonexistent.yaml: config file not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = sbops("uninstall", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_exporter_removal_stops_the_service_then_deletes_its_unit(tmp_path: Path):
    """systemd cannot run here: the recording runner takes the commands, the unit file is a real file."""
    unit = tmp_path / "sbops-exporter.service"
    unit.write_text("[Unit]\n")
    runner = RecordingRunner(responses=succeeds("systemctl"))
    remove_units(Context(Settings.load(env={}), runner=runner), (str(unit),), ".service")
    assert runner.commands == [("systemctl", "disable", "--now", "sbops-exporter.service"), ("systemctl", "daemon-reload")]
    assert not unit.exists()
