"""sbops.upgrade.plan: what an upgrade changes, from tables (and never a Secret's value)."""

from __future__ import annotations

import pytest
import yaml

from sbops.secret import Secret
from sbops.upgrade import plan as P


def manifest(*objs: dict) -> str:
    return "".join("---\n" + yaml.safe_dump(o) for o in objs)


def deploy(name: str, image: str, policy: str = "Always") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {"template": {"spec": {
        "containers": [{"name": name, "image": image, "imagePullPolicy": policy}]}}}}


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"mysql-password": "c2VjcmV0"}}


def test_images_of_every_kind_of_pod_holder() -> None:
    cron = {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "j", "image": "job:1"}]}}}}}}
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i", "image": "init:1"}],
                                                              "containers": [{"name": "m", "image": "main:1"}]}}
    assert P.images([deploy("a", "a:1"), cron, pod, SECRET]) == {
        "Deployment/a a": "a:1", "CronJob/c j": "job:1", "Pod/p i": "init:1", "Pod/p m": "main:1"}


@pytest.mark.parametrize("before, after, expected", [
    ({"D/a a": "a:1"}, {"D/a a": "a:1"}, []),
    ({"D/a a": "a:1"}, {"D/a a": "a:2"}, ["D/a a: a:1 -> a:2"]),
    ({}, {"D/b b": "b:1"}, ["D/b b: (none) -> b:1"]),
    ({"D/b b": "b:1"}, {}, ["D/b b: b:1 -> (removed)"]),
])
def test_image_changes(before: dict, after: dict, expected: list[str]) -> None:
    assert P.image_changes(before, after) == expected


def test_manifest_diff_masks_secrets_and_shows_the_change() -> None:
    old = manifest(SECRET, deploy("a", "a:1"))
    new = manifest({**SECRET, "data": {"mysql-password": "b3RoZXI="}}, deploy("a", "a:1", "IfNotPresent"))
    diff = "\n".join(P.manifest_diff(old, new, [Secret("a:1-not-secret-here")]))
    assert "-        imagePullPolicy: Always" in diff and "+        imagePullPolicy: IfNotPresent" in diff
    assert "c2VjcmV0" not in diff and "b3RoZXI=" not in diff
    assert P.manifest_diff(old, old) == []


def test_manifest_diff_masks_a_known_password_outside_secrets() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"url": "mysql://u:hunter22@h"}}
    diff = "\n".join(P.manifest_diff("", manifest(cm), [Secret("hunter22")]))
    assert "hunter22" not in diff and "****" in diff


@pytest.mark.parametrize("before, after, expected", [
    ({"a": {"b": 1}}, {"a": {"b": 1}}, []),
    ({"a": {"b": 1}}, {"a": {"b": 2}}, ["a.b: 1 -> 2"]),
    ({}, {"image": {"pullPolicy": "IfNotPresent"}}, ["image.pullPolicy: '(unset)' -> 'IfNotPresent'"]),
    ({"global": {"mysql": {"password": "x"}}}, {"global": {"mysql": {"password": "y"}}},
     ["global.mysql.password: '****' -> '****'"]),
    ({"note": "old hunter22"}, {"note": "new"}, ["note: 'old ****' -> 'new'"]),
])
def test_value_changes(before: dict, after: dict, expected: list[str]) -> None:
    assert P.value_changes(before, after, [Secret("hunter22")]) == expected


def test_changes_for_the_plan() -> None:
    deployed = {"manifest": manifest(deploy("a", "a:1")), "config": {"image": {"tag": "lab"}},
                "chart": {"metadata": {"name": "stackbill", "version": "1.0.0", "appVersion": "lab"},
                          "values": {"image": {"pullPolicy": "Always"}}}}
    upgraded = {"manifest": manifest(deploy("a", "a:2", "IfNotPresent")), "config": {"image": {"tag": "lab"}},
                "chart": {"metadata": {"name": "stackbill", "version": "2.0.0", "appVersion": "lab-2"},
                          "values": {"image": {"pullPolicy": "IfNotPresent"}}}}
    out = P.changes(deployed, upgraded)
    assert out["chart"] == {"from": "stackbill-1.0.0 (app lab)", "to": "stackbill-2.0.0 (app lab-2)"}
    assert out["images"] == ["Deployment/a a: a:1 -> a:2"]
    assert out["default_values"] == ["image.pullPolicy: 'Always' -> 'IfNotPresent'"]
    assert out["user_values"] == [] and out["manifest_diff"]


@pytest.mark.parametrize("statuses, expected", [
    ({"a": "ok", "b": "warn", "c": "skip"}, []),
    ({"a": "fail", "b": "error", "c": "ok"}, ["a", "b"]),
])
def test_failed(statuses: dict, expected: list[str]) -> None:
    assert P.failed(statuses) == expected


def test_argv() -> None:
    argv = P.upgrade_argv("helm", "stackbill", "/c", "sb-apps", "/k", "2.0.0")
    assert argv[:7] == ["helm", "upgrade", "stackbill", "/c", "-n", "sb-apps", "--reset-then-reuse-values"]
    assert "--version" in argv and "--set" not in argv and "-f" not in argv
    assert P.upgrade_argv("helm", "s", "/c", "n", "", dry_run=True)[-3:] == ["--dry-run", "-o", "json"]
    assert P.rollback_argv("helm", "s", 4, "n", "")[:4] == ["helm", "rollback", "s", "4"]


@pytest.mark.parametrize("found, wanted, bad", [("2.0.0", "", False), ("2.0.0", "2.0.0", False),
                                                ("2.0.0", "3.0.0", True), ("", "3.0.0", False)])
def test_local_version_mismatch(found: str, wanted: str, bad: bool) -> None:
    assert bool(P.local_version_mismatch(found, wanted)) is bad


def test_deployments() -> None:
    assert P.deployments(manifest(SECRET, deploy("b", "x"), deploy("a", "y"))) == ["a", "b"]
