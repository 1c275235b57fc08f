"""Which Kubernetes configuration sbops uses (flag, $KUBECONFIG, the pod's ServiceAccount, the usual files) and
the in-cluster client's rotating token. Files are real, in a temporary directory; no API server is needed here
(tests/integration/test_kube_incluster.py authenticates against the real lab API server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sbops import kube
from sbops.errors import UsageError
from sbops.probes import helm
from sbops.install import infra

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: abc}}]
current-context: x
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A home with ~/.kube/config, a file named by the flag, one named by $KUBECONFIG, and a ServiceAccount dir."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(KUBECONFIG)
    monkeypatch.setenv("HOME", str(home))
    flag, envfile = tmp_path / "flag.yaml", tmp_path / "env.yaml"
    flag.write_text(KUBECONFIG)
    envfile.write_text(KUBECONFIG)
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("token-1\n")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    (sa / "namespace").write_text("sbops")
    return {"home": home / ".kube" / "config", "flag": flag, "env": envfile, "sa": sa}


POD = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}


@pytest.mark.parametrize("flag, kubeconfig_env, pod, want", [
    (True, True, True, "flag"),          # the explicit flag wins over everything
    (True, False, True, "flag"),
    (False, True, True, "env"),          # $KUBECONFIG is explicit too: it beats the ServiceAccount
    (False, False, True, "incluster"),   # in a pod: the ServiceAccount before ~/.kube/config
    (False, False, False, "home"),       # not in a pod: the usual files
    (True, False, False, "flag"),
    (False, True, False, "env"),
])
def test_precedence(world: dict[str, Path], flag: bool, kubeconfig_env: bool, pod: bool, want: str) -> None:
    env = {kube.SERVICE_ACCOUNT_DIR_ENV: str(world["sa"])}
    if kubeconfig_env:
        env["KUBECONFIG"] = str(world["env"])
    if pod:
        env.update(POD)
    found = kube.find(str(world["flag"]) if flag else "", env)
    if want == "incluster":
        assert found == kube.InCluster("https://10.43.0.1:443", world["sa"])
    else:
        assert found == world[want]


def test_a_pod_without_a_mounted_token_falls_through_to_the_files(world: dict[str, Path]) -> None:
    (world["sa"] / "token").unlink()  # automountServiceAccountToken: false
    assert kube.find("", {**POD, kube.SERVICE_ACCOUNT_DIR_ENV: str(world["sa"])}) == world["home"]


def test_nothing_anywhere_is_none(world: dict[str, Path]) -> None:
    world["home"].unlink()
    if kube.K3S_KUBECONFIG.exists():
        pytest.fail(f"{kube.K3S_KUBECONFIG} exists on this machine: the test needs it absent")
    assert kube.find("", {kube.SERVICE_ACCOUNT_DIR_ENV: str(world["sa"])}) is None


@pytest.mark.parametrize("host, port, want", [
    ("10.43.0.1", "443", "https://10.43.0.1:443"),
    ("fd00::1", "6443", "https://[fd00::1]:6443"),        # IPv6 in brackets, as net.JoinHostPort
    ("kubernetes.default.svc", "443", "https://kubernetes.default.svc:443"),
    ("", "443", ""), ("10.43.0.1", "", ""),               # not in a pod
])
def test_server_url(host: str, port: str, want: str) -> None:
    assert kube.in_cluster_server({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}) == want


@pytest.mark.parametrize("host, port, named", [
    ("10.43.0.1", "https", "KUBERNETES_SERVICE_PORT"), ("10.43.0.1", "70000", "KUBERNETES_SERVICE_PORT"),
    ("10.43.0.1", "0", "KUBERNETES_SERVICE_PORT"), ("evil.example/x", "443", "KUBERNETES_SERVICE_HOST"),
    ("a b", "443", "KUBERNETES_SERVICE_HOST"),
])
def test_bad_service_variables_are_usage_errors(host: str, port: str, named: str) -> None:
    with pytest.raises(UsageError, match=named):
        kube.in_cluster_server({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})


@pytest.mark.parametrize("broken, message", [
    ("ca-missing", "ca.crt: cannot read the ServiceAccount CA"),
    ("token-empty", "token: the ServiceAccount token is empty"),
    ("ca-empty", "ca.crt: the ServiceAccount CA is empty"),
])
def test_a_broken_mount_names_the_file(world: dict[str, Path], broken: str, message: str) -> None:
    sa = world["sa"]
    if broken == "ca-missing":
        (sa / "ca.crt").unlink()
    elif broken == "token-empty":
        (sa / "token").write_text("\n")
    else:
        (sa / "ca.crt").write_text("")
    with pytest.raises(UsageError, match=message):
        kube.find("", {**POD, kube.SERVICE_ACCOUNT_DIR_ENV: str(sa)})


def _rotate(sa: Path, token: str, generation: int) -> None:
    """As the kubelet updates a projected volume: a new timestamped dir, ..data swapped by rename."""
    data = sa / f"..gen{generation}"
    data.mkdir()
    (data / "token").write_text(token)
    link = sa / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, sa / "..data")


def test_the_token_is_reread_when_the_kubelet_rotates_it(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    _rotate(sa, "first", 1)
    (sa / "token").symlink_to("..data/token")
    (sa / "ca.crt").write_text("ca")
    configuration = kube.in_cluster_configuration(kube.InCluster("https://10.43.0.1:443", sa))
    assert configuration.host == "https://10.43.0.1:443"
    assert configuration.server.ca_file == str(sa / "ca.crt") and not configuration.server.insecure
    assert configuration.server.ca_pem == b"ca"
    header = lambda: configuration.credentials.headers()["Authorization"]  # noqa: E731 - what each request sends
    assert header() == "Bearer first"
    assert header() == "Bearer first"
    _rotate(sa, "second", 2)
    assert header() == "Bearer second"
    (sa / "..data").unlink()  # mid-swap, the file is briefly absent: keep the last good token
    assert header() == "Bearer second"


def test_the_token_file_is_read_only_when_it_changed(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one")
    tokens = kube.TokenFile(token)
    for _ in range(5):
        assert tokens.refresh() == "one"
    assert tokens.reads == 1
    replacement = tmp_path / "token.new"
    replacement.write_text("two")
    os.replace(replacement, token)
    assert tokens.refresh() == "two" and tokens.reads == 2


def test_in_a_pod_helm_and_istioctl_get_no_kubeconfig_flag(tmp_path: Path) -> None:
    """Both read the in-cluster configuration themselves (client-go) when --kubeconfig is absent."""
    pod = kube.InCluster("https://10.43.0.1:443", tmp_path)
    assert kube.kubeconfig_file(pod) == "" and kube.kubeconfig_file(None) == ""
    assert kube.kubeconfig_file(Path("/k.yaml")) == "/k.yaml"
    assert "--kubeconfig" not in helm.rollback_argv("helm", "sb", 2, "ns", "")
    assert "--kubeconfig" not in helm.upgrade_argv("helm", "sb", "chart", "ns", "")
    assert "--kubeconfig" not in helm.uninstall_argv("helm", "sb", "ns", "")
    assert "--kubeconfig" not in infra.istioctl_argv("istioctl", "")
    assert helm.rollback_argv("helm", "sb", 2, "ns", "/k.yaml")[-2:] == ["--kubeconfig", "/k.yaml"]
    assert infra.istioctl_argv("istioctl", "/k.yaml")[-2:] == ["--kubeconfig", "/k.yaml"]
    assert str(pod) == f"in-cluster ServiceAccount ({tmp_path})"
