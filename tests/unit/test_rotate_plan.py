"""sbops.rotate.plan: the pure decisions of a credential rotation, from tables."""

from __future__ import annotations

import base64

import pytest
import yaml

from sbops.credentials import Credentials, Service
from sbops.rotate import plan as P
from sbops.secret import Secret


@pytest.mark.parametrize("asked, expected", [
    ([], ("mysql", "mongodb", "rabbitmq")),
    (["rabbitmq", "mysql"], ("mysql", "rabbitmq")),
    (["mongodb"], ("mongodb",)),
    (["mysql", "mysql"], ("mysql",)),
])
def test_choose_services(asked: list[str], expected: tuple[str, ...]) -> None:
    assert P.choose_services(asked) == expected


def test_choose_services_names_the_unknown_one() -> None:
    with pytest.raises(ValueError, match="unknown service 'postgres'"):
        P.choose_services(["mysql", "postgres"])


def test_values_patch_changes_only_the_rotated_passwords() -> None:
    patch = P.values_patch({"mysql": Secret("m1"), "mongodb": Secret("g1")})
    assert patch == {"global": {"mysql": {"password": "m1"}, "mongo": {"password": "g1"}}}
    document = P.values_document({"rabbitmq": Secret("r1")})
    assert str(document) == "****" and yaml.safe_load(document.reveal()) == {"global": {"rabbitmq": {"password": "r1"}}}


@pytest.mark.parametrize("config, service, expected", [
    ({"global": {"mysql": {"password": "x"}}}, "mysql", "x"),
    ({"global": {"mongo": {"password": 123}}}, "mongodb", "123"),
    ({"global": {"mysql": {"ip": "1.2.3.4"}}}, "mysql", None),
    ({}, "rabbitmq", None),
    ({"global": {"rabbitmq": "odd"}}, "rabbitmq", None),
])
def test_release_password(config: dict, service: str, expected: str | None) -> None:
    assert P.release_password(config, service) == expected


def deployment(name: str, env: list | None = None, env_from: list | None = None, volumes: list | None = None) -> dict:
    container = {"name": name, "image": "i", "env": env or [], "envFrom": env_from or []}
    return {"kind": "Deployment", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [container], "volumes": volumes or []}}}}


SECRET = {"kind": "Secret", "metadata": {"name": "creds"}}
REF = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "mysql-password"}}}]


@pytest.mark.parametrize("objects, expected", [
    # pods that read the release's Secret: env, envFrom, a volume; others are left alone
    ([SECRET, deployment("a", env=REF), deployment("b")], ["a"]),
    ([SECRET, deployment("a", env_from=[{"secretRef": {"name": "creds"}}]), deployment("b")], ["a"]),
    ([SECRET, deployment("a", volumes=[{"name": "v", "secret": {"secretName": "creds"}}]), deployment("b")], ["a"]),
    # a Secret the release does not own (awscred) does not count
    ([deployment("a", env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "awscred"}}}]), deployment("b")],
     ["a", "b"]),
    # passwords straight in the template: every Deployment of the release
    ([deployment("b"), deployment("a", env=[{"name": "P", "value": "x"}])], ["a", "b"]),
    ([], []),
])
def test_workloads_to_restart(objects: list, expected: list[str]) -> None:
    assert P.workloads_to_restart(objects) == expected


def test_manifest_objects_skips_empty_documents_and_refuses_bad_yaml() -> None:
    assert [o["kind"] for o in P.manifest_objects("---\n# c\n---\nkind: Secret\n---\n")] == ["Secret"]
    with pytest.raises(ValueError, match="not YAML"):
        P.manifest_objects("kind: [")


@pytest.mark.parametrize("statuses, expected", [
    ({"mysql.auth": "ok", "app.cloudconfiguration": "ok"}, []),
    ({"mysql.auth": "warn", "app.cloudconfiguration": "ok"}, []),
    ({"mysql.auth": "fail", "app.cloudconfiguration": "ok"}, ["mysql.auth: fail"]),
    ({"mysql.auth": "ok"}, ["app.cloudconfiguration: did not run"]),
    ({"mysql.auth": "skip", "app.cloudconfiguration": "error"}, ["mysql.auth: skip", "app.cloudconfiguration: error"]),
])
def test_judge_verification(statuses: dict, expected: list[str]) -> None:
    assert P.judge_verification(statuses, P.verify_checks(["mysql"])) == expected


def test_verify_checks_are_the_logins_and_the_portal() -> None:
    assert P.verify_checks(["mysql", "rabbitmq"]) == ("mysql.auth", "rabbitmq.auth", "app.cloudconfiguration")


def test_with_passwords_keeps_everything_else() -> None:
    creds = Credentials(server_ip="10.0.0.5", mysql=Service(host="h", port=3306, password=Secret("old")),
                        rabbitmq=Service(port=5672, password=Secret("rab")))
    out = P.with_passwords(creds, {"mysql": Secret("new")})
    assert out.mysql.password == Secret("new") and out.mysql.host == "h" and out.mysql.port == 3306
    assert out.rabbitmq.password == Secret("rab") and out.server_ip == "10.0.0.5"


@pytest.mark.parametrize("done, expected", [
    ([], []),
    (["set-on-server"], ["set-on-server"]),
    (["set-on-server", "update-release"], ["set-on-server", "update-release", "restart-workloads"]),
    (["set-on-server", "update-release", "restart-workloads"],
     ["set-on-server", "update-release", "restart-workloads"]),
])
def test_undo_steps(done: list[str], expected: list[str]) -> None:
    assert P.undo_steps(done) == expected


def test_describe_names_every_step_in_order_and_no_password() -> None:
    steps = P.describe(["mysql", "mongodb"], release="stackbill", namespace="sb-apps", workloads=["sb-core"],
                       credentials_path="/root/c.txt", helm_argv="helm upgrade stackbill ... -f -")
    assert [s for s, _ in steps] == list(P.STEPS)
    text = dict(steps)
    assert "global.mysql.password, global.mongo.password" in text["update-release"]
    assert "standard input" in text["update-release"] and "sb-core" in text["restart-workloads"]
    assert "/root/c.txt.bak" in text["write-credentials"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_chart_files_rebuild_the_deployed_chart() -> None:
    chart = {"metadata": {"name": "stackbill", "version": "1.0.0", "apiVersion": "v2"},
             "values": {"a": 1}, "templates": [{"name": "templates/x.yaml", "data": b64("kind: X\n")}],
             "files": [{"name": "README.md", "data": b64("hi")}]}
    files = P.chart_files(chart)
    assert yaml.safe_load(files["Chart.yaml"])["version"] == "1.0.0"
    assert yaml.safe_load(files["values.yaml"]) == {"a": 1}
    assert files["templates/x.yaml"] == b"kind: X\n" and files["README.md"] == b"hi"


@pytest.mark.parametrize("chart, error", [
    ({"metadata": {"name": "x"}}, "no chart metadata"),
    ({"metadata": {"name": "x", "version": "1"}, "templates": [{"name": "../../etc/passwd", "data": ""}]}, "unsafe"),
    ({"metadata": {"name": "x", "version": "1"}, "files": [{"name": "/abs", "data": ""}]}, "unsafe"),
])
def test_chart_files_refuses(chart: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        P.chart_files(chart)


def test_helm_argv_reads_values_from_stdin_never_set() -> None:
    argv = P.helm_argv("/usr/local/bin/helm", "stackbill", "/tmp/c/stackbill", "sb-apps", "/k")
    assert argv[-4:] == ["-f", "-", "--kubeconfig", "/k"] and "--reuse-values" in argv and "--set" not in argv
