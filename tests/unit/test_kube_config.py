"""kube.kubeconfig_problem from a table: what the kubernetes package's loader needs of a kubeconfig, judged
without I/O except for the named files (given relative to `base`)."""

from pathlib import Path

import pytest

from sbops.kube import kubeconfig_problem


def doc(cluster=None, user=None, context=None, **top):
    out = {"current-context": "c",
           "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}],
           "users": [{"name": "u", "user": {"token": "t", **(user or {})}}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", **(context or {})}}]}
    out.update(top)
    return out


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "token").write_text("t")
    (tmp_path / "latin1-token").write_bytes(b"t\xe9")
    (tmp_path / "dir").mkdir()
    return tmp_path


@pytest.mark.parametrize("data", [
    doc(),
    doc(cluster={"certificate-authority": "ca.crt"}),
    doc(cluster={"certificate-authority-data": "Y2E="}),
    doc(cluster={"certificate-authority-data": "Y2E=\n"}),
    doc(cluster={"server": "http://127.0.0.1:8080"}),
    doc(cluster={"insecure-skip-tls-verify": True}),
    doc(user={"token": None, "tokenFile": "token"}),
    doc(user={"exec": {"command": "aws", "args": ["eks"], "env": [{"name": "A", "value": "b"}], "apiVersion": "v1"}}),
    doc(context={"user": None}),
])
def test_accepted(base, data):
    if data["users"][0]["user"].get("token", "") is None:
        del data["users"][0]["user"]["token"]
    if data["contexts"][0]["context"].get("user", "") is None:
        del data["contexts"][0]["context"]["user"]
    assert kubeconfig_problem(data, base) == ""


@pytest.mark.parametrize("data, problem", [
    ([], "not a mapping"),
    (doc(clusters=[]), "no clusters"),
    (doc(users={"u": 1}), "no users"),
    (doc(contexts=[{"name": ["c"], "context": {}}]), "contexts[0] has no name"),
    (doc(contexts=[{"name": "c", "context": None}]), "has no context mapping"),
    (doc(**{"current-context": None}), "no current-context"),
    (doc(**{"current-context": "other"}), "current-context 'other' is not among"),
    (doc(context={"cluster": "gone"}), "names cluster 'gone'"),
    (doc(context={"cluster": {"k": 1}}), "names cluster"),
    (doc(context={"user": "gone"}), "names user 'gone'"),
    (doc(cluster={"server": None}), "server must be an https:// URL"),
    (doc(cluster={"server": "ftp://h"}), "server must be"),
    (doc(cluster={"server": "https://"}), "server must be"),
    (doc(cluster={"server": "https://h:0"}), "server must be"),
    (doc(cluster={"server": "https://h:x"}), "server must be"),
    (doc(cluster={"certificate-authority": "missing.crt"}), "certificate-authority"),
    (doc(cluster={"certificate-authority": "dir"}), "certificate-authority"),
    (doc(cluster={"certificate-authority": 7}), "must be a file name"),
    (doc(cluster={"certificate-authority-data": "not base64!"}), "is not base64"),
    (doc(cluster={"certificate-authority-data": 5}), "must be a string"),
    (doc(cluster={"insecure-skip-tls-verify": "yes"}), "must be a boolean"),
    (doc(user={"token": ["t"]}), "token must be a string"),
    (doc(user={"token": "a\nb"}), "control characters"),
    (doc(user={"token": None, "tokenFile": "latin1-token"}), "not UTF-8"),
    (doc(user={"token": None, "tokenFile": "missing"}), "tokenFile"),
    (doc(user={"client-certificate": "missing.crt"}), "client-certificate"),
    (doc(user={"auth-provider": {"name": "gcp"}}), "auth-provider"),
    (doc(user={"exec": {"command": ["aws"]}}), "exec must name a command"),
    (doc(user={"exec": {"command": "aws", "args": "eks"}}), "exec args"),
    (doc(user={"exec": {"command": "aws", "env": {"A": "b"}}}), "exec env"),
    (doc(user={"username": 1, "password": "p"}), "username must be a string"),
])
def test_refused(base, data, problem):
    if isinstance(data, dict) and data["users"] and isinstance(data["users"], list):
        user = data["users"][0]["user"]
        if user.get("token", "") is None:
            del user["token"]
    assert problem in kubeconfig_problem(data, base)
