"""The installer's pure decisions, from tables: probed state in, exact changes (or reasons) out."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from sbops import credentials as creds_mod
from sbops.credentials import Credentials, Service
from sbops.errors import UsageError
from sbops import versions
from sbops.install import creds, infra, steps as st
from sbops.install.kubernetes import chart_values, not_ready_lines
from sbops.model import Plan, Result, Status, Reason
from sbops.probes import ecr, helm, k8s, mysql, system
from sbops.secret import Secret

from tests.unit.test_credentials import ORIGINAL  # the original installer's file, byte for byte

PORTS = {"mysql": 3306, "mongodb": 27017, "rabbitmq": 5672}



def counter():
    n = iter(range(1, 100))
    return lambda: Secret(f"Generated{next(n):07d}")


# -- credentials ----------------------------------------------------------------------------------
def test_new_password_is_16_of_the_original_alphabet() -> None:
    made = {creds.new_password().reveal() for _ in range(50)}
    assert len(made) == 50
    assert all(len(p) == 16 and set(p) <= set(creds.ALPHABET) for p in made)


def test_no_file_generates_all_three() -> None:
    plan = creds.plan_credentials(None, Path("/root/c.txt"), domain="p.example.com", server_ip="10.0.0.5",
                                  nfs_path="/data/stackbill", ports=PORTS, make=counter())
    assert plan.generated == ("mysql", "mongodb", "rabbitmq")
    d = plan.desired
    assert (d.portal_url, d.server_ip, d.nfs_server, d.mysql.port, d.rabbitmq.port) == (
        "https://p.example.com", "10.0.0.5", "10.0.0.5", 3306, 5672)
    assert [s.reveal() for s in d.secrets()] == ["Generated0000001", "Generated0000002", "Generated0000003"]
    assert creds.with_new_passwords(plan) == d


def test_original_file_keeps_every_password_and_generates_nothing() -> None:
    existing = creds_mod.parse(ORIGINAL, "/root/stackbill-credentials.txt")
    plan = creds.plan_credentials(existing, Path("/root/stackbill-credentials.txt"), domain="",
                                  server_ip="192.0.2.10", nfs_path="/data/stackbill", ports=PORTS, make=counter())
    assert plan.generated == ()
    assert plan.desired.secrets() == existing.secrets()
    assert plan.desired.portal_url == "https://portal.example.com"
    assert creds.file_differences(existing, plan.desired) == []


def test_only_the_missing_password_is_generated_and_written_into_the_file_as_it_was() -> None:
    text = ORIGINAL.replace("  Password: Uv12Wx34Yz56Ab78\n", "")
    existing = creds_mod.parse(text, "c")
    plan = creds.plan_credentials(existing, Path("c"), domain="new.example.com", server_ip="192.0.2.10",
                                  nfs_path="/data/stackbill", ports=PORTS, make=counter())
    assert plan.generated == ("rabbitmq",)
    assert plan.desired.mysql.password.reveal() == "Ab12Cd34Ef56Gh78"
    assert plan.desired.rabbitmq.password.reveal() == "Generated0000001"
    written = creds.with_new_passwords(plan)
    assert written.portal_url == "https://portal.example.com"  # the rest is save-credentials' business
    assert written.rabbitmq.password.reveal() == "Generated0000001"
    assert written.mysql == existing.mysql
    assert creds.file_differences(written, plan.desired) == ["PORTAL URL: https://portal.example.com -> https://new.example.com"]


@pytest.mark.parametrize("change, expected", [
    (lambda c: c, []),
    (lambda c: Credentials(**{**c.__dict__, "server_ip": "192.0.2.99"}),
     ["SERVER IP: 192.0.2.99 -> 192.0.2.10"]),
    (lambda c: Credentials(**{**c.__dict__, "mysql": Service(host="192.0.2.10", port=3306, password=Secret("x"))}),
     ["MYSQL Password: **** -> ****"]),
    (lambda c: Credentials(**{**c.__dict__, "nfs_path": "/srv/nfs"}), ["NFS Path: /srv/nfs -> /data/stackbill"]),
])
def test_file_differences_mask_passwords(change, expected) -> None:
    desired = creds_mod.parse(ORIGINAL, "c")
    assert creds.file_differences(change(desired), desired) == expected


# -- host system ----------------------------------------------------------------------------------
def test_parse_dpkg_query_keeps_installed_only() -> None:
    text = ("mysql-server\tinstall ok installed\t8.0.36-0ubuntu0.22.04.1\n"
            "mariadb-server\tdeinstall ok config-files\t1:10.11.6-0+deb12u1\n"
            "nfs-kernel-server:amd64\tinstall ok installed\t1:2.6.2-4\n")
    assert system.parse_dpkg_query(text) == {"mysql-server": "8.0.36-0ubuntu0.22.04.1", "nfs-kernel-server": "1:2.6.2-4"}


@pytest.mark.parametrize("text, version", [
    ("k3s version v1.29.0+k3s1 (3190a5a7)\ngo version go1.21.5", "v1.29.0+k3s1"),
    ("v3.17.1+g980d8ac", "v3.17.1+g980d8ac"),
    ("1.20.3", "1.20.3"),
    ("command not found", ""),
])
def test_parse_version(text: str, version: str) -> None:
    assert system.parse_version(text) == version


@pytest.mark.parametrize("local, answers, installed, actions", [
    (False, False, {}, []),
    (True, True, {}, []),
    (True, False, {"mysql-server": "8.0"}, ["start"]),
    (True, False, {}, ["install", "start"]),
])
def test_service_actions(local: bool, answers: bool, installed: dict, actions: list[str]) -> None:
    got, why = system.service_actions(system.ServiceFacts("MySQL", "10.0.0.5", 3306, local, answers, installed, "mysql"))
    assert got == actions
    assert bool(why) == (not actions)


def test_parse_os_release() -> None:
    info = system.parse_os_release('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n# c\nVERSION_CODENAME=jammy\n')
    assert (info["ID"], info["VERSION_ID"], info["PRETTY_NAME"]) == ("ubuntu", "22.04", "Ubuntu 22.04.4 LTS")


# -- K3s ------------------------------------------------------------------------------------------
UPSTREAM_UNIT = "[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--write-kubeconfig-mode' '644' '--disable' 'traefik' '--disable=servicelb'\n"


def test_unit_flags_of_the_upstream_script_unit() -> None:
    flags = infra.unit_flags(UPSTREAM_UNIT)
    assert flags["disable"] == ["traefik", "servicelb"] and flags["write-kubeconfig-mode"] == ["644"]


@pytest.mark.parametrize("existing, unit, wanted", [
    (None, None, {"write-kubeconfig-mode": "0600", "disable": ["traefik", "servicelb"]}),
    (None, UPSTREAM_UNIT, None),
    ("disable:\n- traefik\n- servicelb\n", None, None),
    ("token: abc\ndisable: traefik\n", None, {"token": "abc", "disable": ["traefik", "servicelb"]}),
    ("node-name: n1\n", "[Service]\nExecStart=/usr/local/bin/k3s server\n", {"node-name": "n1", "disable": ["traefik", "servicelb"]}),
])
def test_k3s_config(existing, unit, wanted) -> None:
    text, why = infra.k3s_config(existing, unit)
    assert (yaml.safe_load(text) if text else None) == wanted
    assert bool(why) == (wanted is None)


def test_k3s_config_refuses_bad_yaml() -> None:
    with pytest.raises(ValueError, match="config.yaml: invalid YAML"):
        infra.k3s_config("disable: [\n", None)


def test_versions_are_the_pinned_ones() -> None:
    assert (versions.K3S_VERSION, versions.ISTIO_VERSION, versions.MONGODB_SERIES, versions.HELM_MAJOR) == (
        "v1.29.0+k3s1", "1.20.3", "7.0", 3)
    assert versions.k3s_binary("amd64").url == "https://github.com/k3s-io/k3s/releases/download/v1.29.0%2Bk3s1/k3s"
    assert versions.k3s_binary("arm64").name == "k3s-arm64"
    assert versions.helm_archive("amd64").checksum_url.endswith(".tar.gz.sha256sum")
    assert versions.istioctl_archive("amd64").name == "istioctl-1.20.3-linux-amd64.tar.gz"
    assert versions.arch("x86_64") == "amd64" and versions.arch("aarch64") == "arm64"


# -- Helm release -----------------------------------------------------------------------------------
VALUES = {"global": {"domain": "p.example.com", "mysql": {"ip": "10.0.0.5", "username": "stackbill", "password": "pw1"}}}


def record(status: str = "deployed", name: str = "stackbill", version: str = "1.2.0", config: dict | None = None) -> dict:
    return {"version": 3, "info": {"status": status}, "chart": {"metadata": {"name": name, "version": version}},
            "config": VALUES if config is None else config}


@pytest.mark.parametrize("rec, chart, version, action, reasons", [
    (None, "stackbill", "", "install", ["the release does not exist"]),
    (record(), "stackbill", "", "", []),
    (record(), "stackbill", "1.2.0", "", []),
    (record(), "stackbill", "1.3.0", "upgrade", ["chart version 1.2.0 -> 1.3.0"]),
    (record(name="other"), "stackbill", "", "upgrade", ["chart other -> stackbill"]),
    (record(status="failed"), "stackbill", "", "upgrade", ["revision 3 is failed"]),
    (record(config={"global": {"domain": "p.example.com", "mysql": {"ip": "10.0.0.5", "username": "stackbill",
                                                                     "password": "old"}}}),
     "stackbill", "", "upgrade", ["values differ: global.mysql.password"]),
    (record(config={}), "stackbill", "", "upgrade", ["values differ: global"]),
])
def test_release_changes(rec, chart, version, action, reasons) -> None:
    assert helm.release_changes(rec, chart, version, VALUES) == (action, reasons)


def test_pending_release_blocks_and_names_the_rollback() -> None:
    action, reasons = helm.release_changes(record(status="pending-upgrade"), "stackbill", "", VALUES)
    assert action == "blocked" and "sbops fix helm-rollback" in reasons[0]


def test_upgrade_argv_reads_values_from_stdin_never_set() -> None:
    argv = helm.upgrade_argv("/usr/local/bin/helm", "stackbill", "oci://x/stackbill", "sb-apps", "/k", "1.0.0")
    assert argv == ["/usr/local/bin/helm", "upgrade", "--install", "stackbill", "oci://x/stackbill", "-n", "sb-apps",
                    "-f", "-", "--timeout", "10m", "--kubeconfig", "/k", "--version", "1.0.0"]
    assert "--set" not in argv


def test_chart_identity(tmp_path: Path) -> None:
    chart = Path(__file__).resolve().parents[1] / "lab" / "charts" / "sbops-demo"
    assert helm.chart_identity(str(chart)) == ("sbops-demo", "0.1.0")
    tgz = tmp_path / "stackbill-2.0.1.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        data = b"apiVersion: v2\nname: stackbill\nversion: 2.0.1\n"
        info = tarfile.TarInfo("stackbill/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert helm.chart_identity(str(tgz)) == ("stackbill", "2.0.1")
    assert helm.chart_identity("oci://public.ecr.aws/p0g2c5k8/stackbill") == ("stackbill", "")
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="not a readable Helm chart"):
        helm.chart_identity(str(bad))


def test_chart_values_are_the_originals_set_flags() -> None:
    desired = creds_mod.parse(ORIGINAL, "c")
    values = chart_values(desired, "portal.example.com")
    assert values == {"global": {
        "domain": "portal.example.com", "nfs": {"server": "192.0.2.10", "path": "/data/stackbill"},
        "mysql": {"ip": "192.0.2.10", "username": "stackbill", "password": "Ab12Cd34Ef56Gh78"},
        "mongo": {"ip": "192.0.2.10", "username": "stackbill", "password": "Mn12Op34Qr56St78"},
        "rabbitmq": {"ip": "192.0.2.10", "username": "stackbill", "password": "Uv12Wx34Yz56Ab78"}}}


# -- ECR -----------------------------------------------------------------------------------------
def _token(expires: datetime) -> str:
    password = base64.b64encode(json.dumps({"expiration": int(expires.timestamp())}).encode()).decode()
    return password


REGISTRY = "730335576030.dkr.ecr.ap-south-1.amazonaws.com"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("state, code", [
    (ecr.SecretState("awscred", "sb-apps", False), "SB6211"),
    (ecr.SecretState("awscred", "sb-apps", True, "Opaque"), "SB6212"),
    (ecr.SecretState("awscred", "sb-apps", True, ecr.DOCKERCONFIGJSON, ecr.dockerconfig(REGISTRY, _token(NOW + timedelta(hours=1)))), "SB6223"),
    (ecr.SecretState("awscred", "sb-apps", True, ecr.DOCKERCONFIGJSON, ecr.dockerconfig(REGISTRY, _token(NOW - timedelta(hours=1)))), "SB6222"),
    (ecr.SecretState("awscred", "sb-apps", True, ecr.DOCKERCONFIGJSON, ecr.dockerconfig("other.example", _token(NOW + timedelta(hours=9)))), "SB6214"),
    (ecr.SecretState("awscred", "sb-apps", True, ecr.DOCKERCONFIGJSON, ecr.dockerconfig(REGISTRY, _token(NOW + timedelta(hours=9)))), ""),
])
def test_refresh_needed(state, code: str) -> None:
    why = ecr.refresh_needed(state, REGISTRY, NOW, 2.0)
    assert (why.code if why is not None else "") == code


# -- namespace --------------------------------------------------------------------------------------
def test_namespace_changes_with_helm_ownership() -> None:
    labels, notes = k8s.helm_ownership("stackbill", "sb-apps")
    fresh = k8s.namespace_changes("sb-apps", None, labels, notes)
    assert [a for _, _, a in fresh] == [{"create": "sb-apps", "labels": {"istio-injection": "enabled",
                                                                          "app.kubernetes.io/managed-by": "Helm"},
                                          "annotations": notes}]
    seeded = {"metadata": {"labels": {"istio-injection": "enabled"}}}
    assert [a for _, _, a in k8s.namespace_changes("sb-apps", seeded, labels, notes)] == [
        {"label": "sb-apps", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        {"annotate": "sb-apps", "annotations": notes}]
    owned = {"metadata": {"labels": {"istio-injection": "enabled", **labels}, "annotations": notes}}
    assert k8s.namespace_changes("sb-apps", owned, labels, notes) == []


# -- identifying who holds a port -------------------------------------------------------------------
def packet(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


@pytest.mark.parametrize("data, version", [
    (packet(b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00" + b"\x01" * 40), "10.11.6-MariaDB-0+deb12u1"),
    (packet(b"\x0a8.0.36-0ubuntu0.22.04.1\x00" + b"\x01" * 40), "8.0.36-0ubuntu0.22.04.1"),
    (packet(b"\xff\x69\x04Host '10.42.0.7' is blocked"), ""),
    (b"SSH-2.0-OpenSSH_9.2p1\r\n", None),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", None),
    (b"", None),
])
def test_parse_greeting(data: bytes, version: str | None) -> None:
    assert mysql.parse_greeting(data) == version


# -- step selection ---------------------------------------------------------------------------------
def steps_fixture() -> list[st.Step]:
    from sbops.install import catalog

    return catalog.steps()


def test_selection_by_flags() -> None:
    chosen = st.select(steps_fixture(), skip_infra=True, skip_db=True, skip=["wait-pods"])
    assert [n for n, why in chosen.items() if not why] == [
        "credentials", "cloudstack", "namespace", "ecr-secret", "letsencrypt", "tls-secret", "helm-release", "istio-gateway",
        "save-credentials",
        "exporter"]
    assert chosen["k3s"] == "--skip-infra" and chosen["nfs"] == "--skip-db" and chosen["wait-pods"] == "--skip wait-pods"
    only = st.select(steps_fixture(), only=["validate", "mysql", "credentials"])
    assert [n for n, why in only.items() if not why] == ["credentials", "mysql"]


@pytest.mark.parametrize("kwargs, message", [
    ({"only": ["mysqll"]}, "--only: unknown step 'mysqll' (steps: validate, credentials, k3s"),
    ({"skip": ["nope"]}, "--skip: unknown step 'nope'"),
    ({"skip": ["validate"]}, "--skip validate: validation cannot be skipped"),
])
def test_selection_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        st.select(steps_fixture(), **kwargs)


def test_catalog_order_is_the_originals() -> None:
    names = [s.name for s in steps_fixture()]
    assert names == ["credentials", "k3s", "helm", "istio", "mysql", "mongodb", "rabbitmq", "nfs", "cloudstack",
                     "namespace", "ecr-secret", "letsencrypt", "tls-secret", "helm-release", "istio-gateway",
                     "wait-pods", "save-credentials", "exporter"]  # the original's order, with the current script's
    # CloudStack option and Let's Encrypt (at its TLS stage), then what they lacked: the checks served to Prometheus
    groups = {s.name: s.group for s in steps_fixture()}
    assert [n for n, g in groups.items() if g == st.INFRA] == ["k3s", "helm", "istio"]
    assert [n for n, g in groups.items() if g == st.DB] == ["mysql", "mongodb", "rabbitmq", "nfs"]


def test_every_verify_check_exists() -> None:
    from sbops.registry import load_all

    registry = load_all()
    for step in steps_fixture():
        for verify in step.verify:
            assert verify.check in registry.checks, (step.name, verify.check)
        names = [r.name for r in step.resources]
        for resource in step.resources:
            for need in resource.needs:
                assert need in names or need in {s.name for s in steps_fixture()}, (resource.name, need)


# -- pods --------------------------------------------------------------------------------------------
def test_not_ready_lines_name_each_pod_and_why() -> None:
    result = Result(Status.FAIL, Reason.IMAGE_PULL, "2 pod(s) cannot pull", {"pods": 3, "not_ready": [
        {"name": "sb-core-1", "reason": "image_pull", "detail": "ImagePullBackOff: 401"},
        {"name": "sb-ui-2", "reason": "crash_loop", "detail": "CrashLoopBackOff: last exit 1"}]})
    assert not_ready_lines(result) == ("sb-core-1: image_pull (ImagePullBackOff: 401); "
                                       "sb-ui-2: crash_loop (CrashLoopBackOff: last exit 1)")


def test_resource_outcome_pending() -> None:
    assert st.ResourceOutcome("a", Plan(changes=())).pending is False
    assert st.ResourceOutcome("a", deferred="after b").pending is True


def test_helm_release_record_round_trip() -> None:
    raw = base64.b64encode(gzip.compress(json.dumps(record()).encode())).decode()
    assert helm.decode_release(raw)["config"] == VALUES


def test_chart_values_name_a_port_only_when_it_is_not_the_default() -> None:
    """The lab's servers run on private ports: the pods learn them from global.<svc>.port; a server on its
    default port adds no key, so an existing release's values do not change."""
    desired = creds_mod.parse(ORIGINAL.replace("3306", "33061"), "c")
    values = chart_values(desired, "portal.example.com")["global"]
    assert values["mysql"]["port"] == 33061
    assert "port" not in values["mongo"] and "port" not in values["rabbitmq"]
