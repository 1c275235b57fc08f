"""sbops in a pod: the in-cluster configuration against the real lab kube-apiserver (tests/lab/kube.py).

A real ServiceAccount gets the RBAC of deploy/rbac/sbops-doctor.yaml (the file's own objects, applied as
`kubectl apply -f` would) and a real bound token from the TokenRequest API. The token and the API server's CA
are written where the kubelet would mount them (a temporary directory: SBOPS_SERVICE_ACCOUNT_DIR), and
KUBERNETES_SERVICE_HOST/PORT name the lab API server, as in a pod. No kubeconfig exists anywhere sbops looks.
Only the pod is imitated (the mount and the two variables); the API server, its token signing, its
ServiceAccount authentication and RBAC are real.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from sbops import kube as sbkube
from tests.lab.env import REPO, LabEnv
from tests.lab.exporter import ExporterProc, by_check, parse

RBAC_FILE = REPO / "deploy" / "rbac" / "sbops-doctor.yaml"
SA_NAMESPACE, SA_NAME = "sbops", "sbops-doctor"
IDENTITY = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"


def _resource(obj: dict[str, Any]) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    namespace = obj["metadata"].get("namespace", "")
    return sbkube.path(group=group, version=version, namespace=namespace, plural=obj["kind"].lower() + "s")


def _create(api: sbkube.KubeApi, obj: dict[str, Any]) -> None:
    from sbops.kuberest import ApiException

    try:
        api.create(_resource(obj), obj)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _token(api: sbkube.KubeApi) -> str:
    """A bound token of the ServiceAccount from the TokenRequest API (what the kubelet mounts, valid 1 h)."""
    answer = api.create(sbkube.path(namespace=SA_NAMESPACE, plural="serviceaccounts", name=SA_NAME, sub="token"),
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]


def _write_token(directory: Path, token: str, generation: int) -> None:
    """As the kubelet updates a projected volume: a new ..<timestamp> directory, ..data swapped by rename."""
    data = directory / f"..{generation}"
    data.mkdir(mode=0o755)
    (data / "token").write_text(token)
    (data / "token").chmod(0o600)
    link = directory / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, directory / "..data")
    if not (directory / "token").is_symlink():
        (directory / "token").symlink_to("..data/token")


@pytest.fixture
def pod(kube: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The ServiceAccount with deploy/rbac/sbops-doctor.yaml applied, its token mounted, the pod's variables."""
    api = sbkube.KubeApi(sbkube.new_client(kube.kubeconfig), (20.0, 20.0))
    objects = [doc for doc in yaml.safe_load_all(RBAC_FILE.read_text()) if doc]
    for obj in objects:
        _create(api, obj)
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    _write_token(directory, _token(api), 1)
    (directory / "ca.crt").write_text(kube.ca_file.read_text())
    (directory / "namespace").write_text(SA_NAMESPACE)
    home = tmp_path / "home"
    home.mkdir()
    env = {"KUBERNETES_SERVICE_HOST": kube.bind, "KUBERNETES_SERVICE_PORT": str(kube.port),
           sbkube.SERVICE_ACCOUNT_DIR_ENV: str(directory), "KUBECONFIG": "", "HOME": str(home)}
    try:
        yield {"api": api, "env": env, "dir": directory, "objects": objects}
    finally:
        for obj in reversed(objects):
            if obj["kind"] != "Namespace":  # no namespace controller in the lab: a deleted one would never go
                api.delete(f"{_resource(obj)}/{obj['metadata']['name']}", ignore_missing=True)


def doctor(tmp_path: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    lab = LabEnv(tmp_path / "doctor").set("kubeconfig", "")
    proc = lab.sbops("doctor", "--layer", "kubernetes", "--output", "json", env=env)
    assert proc.returncode in (0, 3, 4), proc.stderr
    assert "Traceback" not in proc.stderr
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_in_a_pod_authenticates_as_its_service_account(pod, tmp_path):
    checks = doctor(tmp_path, pod["env"])
    api_check = checks["k8s.api"]
    assert api_check["status"] == "ok", api_check
    assert api_check["details"]["kubeconfig"] == f"in-cluster ServiceAccount ({pod['dir']})"
    assert api_check["details"]["server"] == f"https://{pod['env']['KUBERNETES_SERVICE_HOST']}:{pod['env']['KUBERNETES_SERVICE_PORT']}"
    denied = {cid: c for cid, c in checks.items() if c["reason"] in ("access_denied", "auth_failed")}
    assert not denied, f"the documented role should allow every kubernetes check: {denied}"
    assert checks["k8s.nodes"]["status"] == "ok", checks["k8s.nodes"]

    # The RBAC is what lets it in: without the binding the same token is refused, by name.
    pod["api"].delete(sbkube.path(group="rbac.authorization.k8s.io", plural="clusterrolebindings", name=SA_NAME))
    checks = doctor(tmp_path, pod["env"])
    nodes = checks["k8s.nodes"]
    assert nodes["status"] == "fail" and nodes["reason"] == "access_denied", nodes
    assert f'User "{IDENTITY}" cannot list resource "nodes"' in nodes["details"]["error"], nodes
    assert checks["k8s.api"]["status"] == "ok", "authenticated still: /version needs no RBAC"


def test_the_flag_and_kubeconfig_variable_win_over_the_pod(pod, tmp_path, kube):
    """An explicit --kubeconfig (a static token user the lab's RBAC does not bind) beats the ServiceAccount."""
    other = kube.write_kubeconfig(tmp_path / "other.yaml", kube.tokens["user4"], user="user4")
    lab = LabEnv(tmp_path / "flag").set("kubeconfig", "")
    for extra, env in ((["--kubeconfig", str(other)], pod["env"]), ([], {**pod["env"], "KUBECONFIG": str(other)})):
        proc = lab.sbops("doctor", "--check", "k8s.api", "--check", "k8s.nodes", "--output", "json", *extra, env=env)
        assert proc.returncode in (3, 4), proc.stderr
        checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["k8s.api"]["details"]["kubeconfig"] == str(other)
        assert 'User "user4" cannot list' in checks["k8s.nodes"]["details"]["error"], checks["k8s.nodes"]


def test_a_broken_mount_is_one_line_naming_the_file(pod, tmp_path):
    (pod["dir"] / "ca.crt").unlink()
    proc = LabEnv(tmp_path / "broken").set("kubeconfig", "").sbops("doctor", "--layer", "kubernetes", env=pod["env"])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and f"{pod['dir'] / 'ca.crt'}: cannot read the ServiceAccount CA" in proc.stderr


def test_the_exporter_follows_the_rotated_token(pod, tmp_path, monkeypatch):
    """The exporter runs for days; bound tokens live about an hour. The ServiceAccount is deleted and made
    again (its old tokens are then refused: they are bound to the old UID) and a new token is mounted the
    kubelet's way: the running exporter must use it without a restart."""
    for key, value in pod["env"].items():
        monkeypatch.setenv(key, value)
    lab = LabEnv(tmp_path / "exporter").set("kubeconfig", "")
    sa_path = sbkube.path(namespace=SA_NAMESPACE, plural="serviceaccounts", name=SA_NAME)
    with ExporterProc(lab, "--layers", "kubernetes") as exporter:
        def api_success() -> float:
            return by_check(parse(exporter.scrape("/metrics")), "sbops_check_success")["k8s.api"]

        assert api_success() == 1
        pod["api"].delete(sa_path)
        [sa] = [o for o in pod["objects"] if o["kind"] == "ServiceAccount"]
        _create(pod["api"], sa)
        deadline = time.monotonic() + 15  # the API server's ServiceAccount cache learns of the new UID shortly
        while api_success() != 0:
            assert time.monotonic() < deadline, "the old token still works: the rotation below would prove nothing"
            time.sleep(0.5)
        _write_token(pod["dir"], _token(pod["api"]), 2)
        assert api_success() == 1
