"""sbops's own Kubernetes REST client (sbops.kuberest) against the real lab kube-apiserver: every way a
kubeconfig authenticates (token, token file, client certificate as files and inline, exec plugin), TLS trust
(the CA, tls-server-name) and what a check reports when a credential cannot be obtained. No mocks: the API
server judges each request."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sbops import kube, kuberest
from tests.lab.env import LabEnv


def kubeconfig(lab: Any, folder: Path, user: dict[str, Any], **cluster: Any) -> Path:
    body = {"server": lab.server, "certificate-authority": str(lab.ca_file), **cluster}
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
           "clusters": [{"name": "c", "cluster": body}], "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def api(path: Path) -> kube.KubeApi:
    return kube.KubeApi(kube.new_client(path), (5.0, 5.0))


def admin_token(lab: Any) -> str:
    return yaml.safe_load(lab.kubeconfig.read_text())["users"][0]["user"]["token"]


def client_cert(lab: Any, cn: str, group: str) -> tuple[str, str]:
    """A client certificate from the lab CA (the API server trusts it with --client-ca-file)."""
    from tests.lab.kube import make_client_cert

    pki = lab.ca_file.parent
    return make_client_cert(cn, (lab.ca_file.read_text(), (pki / "ca.key").read_text()), organization=group)

def test_a_token_lists_and_a_wrong_token_is_a_401(kube, tmp_path):
    assert "kube-system" in {n["metadata"]["name"] for n in api(kubeconfig(kube, tmp_path, {"token": admin_token(kube)})).list("/api/v1/namespaces")}
    with pytest.raises(kuberest.ApiException) as err:
        api(kubeconfig(kube, tmp_path, {"token": "not-a-token"})).get("/api/v1/namespaces")
    assert err.value.status == 401 and json.loads(err.value.body)["kind"] == "Status"


def test_a_token_file_is_reread_between_requests(kube, tmp_path):
    token = tmp_path / "token"
    token.write_text(admin_token(kube) + "\n")
    client = api(kubeconfig(kube, tmp_path, {"tokenFile": "token"}))  # relative to the kubeconfig's folder
    assert client.get("/version")["major"] == "1"
    client.get("/api/v1/namespaces/default")
    replacement = tmp_path / "token.new"
    replacement.write_text("rotated-away")
    replacement.replace(token)
    with pytest.raises(kuberest.ApiException) as err:
        client.get("/api/v1/namespaces/default")
    assert err.value.status == 401


@pytest.mark.parametrize("inline", [False, True], ids=["files", "data"])
def test_a_client_certificate_authenticates_as_its_subject(kube, tmp_path, inline):
    cert, key = client_cert(kube, "sbops-cert-admin", "system:masters")
    if inline:
        user = {"client-certificate-data": base64.b64encode(cert.encode()).decode(),
                "client-key-data": base64.b64encode(key.encode()).decode()}
    else:
        (tmp_path / "c.crt").write_text(cert)
        (tmp_path / "c.key").write_text(key)
        user = {"client-certificate": "c.crt", "client-key": "c.key"}
    client = api(kubeconfig(kube, tmp_path, user))
    review = client.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
    assert review["status"]["allowed"] is True
    assert not list(tmp_path.glob("sbops-kube-*")), "the key's private copy must be gone"


def plugin(folder: Path, body: str) -> Path:
    script = folder / "plugin.py"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(0o700)
    return script


def test_an_exec_plugin_token_is_used_and_cached_until_it_expires(kube, tmp_path):
    counter = tmp_path / "runs"
    expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    plugin(tmp_path, f"""import json, os, pathlib
p = pathlib.Path({str(counter)!r}); p.write_text(p.read_text() + "x" if p.exists() else "x")
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["kind"] == "ExecCredential" and os.environ["LAB_HINT"] == "yes"
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": {admin_token(kube)!r}, "expirationTimestamp": {expiry!r}}}}}))""")
    client = api(kubeconfig(kube, tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "./plugin.py",
        "env": [{"name": "LAB_HINT", "value": "yes"}]}}))
    for _ in range(3):
        client.get("/api/v1/namespaces/default")
    assert counter.read_text() == "x", "one plugin run for three requests"


def test_an_exec_plugin_that_fails_is_an_auth_failure_in_the_doctor(kube, tmp_path):
    plugin(tmp_path, "import sys; print('no SSO session: run aws sso login', file=sys.stderr); sys.exit(3)")
    path = kubeconfig(kube, tmp_path, {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                               "command": str(tmp_path / "plugin.py")}})
    result = LabEnv(tmp_path / "env").set("kubeconfig", str(path)).doctor("k8s.api")["k8s.api"]
    assert (result["status"], result["reason"]) == ("fail", "auth_failed"), result
    assert "exited 3" in json.dumps(result) and "aws sso login" in json.dumps(result)


def test_tls_server_name_is_the_name_the_certificate_must_carry(kube, tmp_path):
    user = {"token": admin_token(kube)}
    assert api(kubeconfig(kube, tmp_path, user, **{"tls-server-name": "kubernetes.default.svc"})).get("/version")
    with pytest.raises(Exception) as err:
        api(kubeconfig(kube, tmp_path, user, **{"tls-server-name": "portal.example.com"})).get("/version")
    assert "portal.example.com" in str(err.value) or "certificate" in str(err.value).lower(), err.value


def test_another_ca_is_refused_as_a_tls_error(kube, tmp_path):
    from tests.lab.kube import make_ca

    (tmp_path / "other-ca.crt").write_text(make_ca("someone else")[0])
    from sbops.probes import kubecommon

    with pytest.raises(Exception) as err:
        api(kubeconfig(kube, tmp_path, {"token": admin_token(kube)}, **{"certificate-authority": "other-ca.crt"})).get("/version")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value), err.value
    assert kubecommon.is_api_error(err.value), "a check reports it, never crashes on it"
