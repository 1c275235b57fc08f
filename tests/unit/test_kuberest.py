"""sbops.kuberest's pure parts: ExecCredential parsing, which credential a request sends, where an exec
plugin's command is found, and what sbops.kube.connection_from takes from a kubeconfig. The requests
themselves are tested against the real API server in tests/integration/test_kuberest.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from sbops import kube, kuberest


@pytest.mark.parametrize("status, found, expires", [
    ({"token": "t1"}, {"token": "t1"}, None),
    ({"token": "t1", "expirationTimestamp": "2030-01-02T03:04:05Z"}, {"token": "t1"},
     dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
    ({"clientCertificateData": "C", "clientKeyData": "K"}, {"cert": "C", "key": "K"}, None),
])
def test_exec_credentials_parse(status, found, expires):
    assert kuberest.parse_exec_credential(json.dumps({"kind": "ExecCredential", "status": status})) == (found, expires)


@pytest.mark.parametrize("stdout, problem", [
    ("not json", "not JSON"),
    (json.dumps({"status": {}}), "neither a token nor a client certificate"),
    (json.dumps({"status": {"clientCertificateData": "C"}}), "neither a token"),
    (json.dumps({"status": {"token": "t", "expirationTimestamp": "soon"}}), "is not a time"),
    (json.dumps({"status": "x"}), "has no status"),
])
def test_bad_exec_credentials_are_one_line_errors(stdout, problem):
    with pytest.raises(kuberest.CredentialError, match=problem):
        kuberest.parse_exec_credential(stdout)


def test_the_plugin_runs_again_only_after_expiry():
    outputs = [{"token": "a", "expirationTimestamp": "2000-01-01T00:00:00Z"}, {"token": "b"}, {"token": "c"}]

    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 0, json.dumps({"status": outputs.pop(0)}), "")

    creds = kuberest.ExecCredentials(kuberest.ExecPlugin("p"), run=run)
    assert creds.get()["token"] == "a"  # already expired: the next request asks again
    assert creds.get()["token"] == "b" and creds.get()["token"] == "b" and creds.runs == 2


def test_a_failing_plugin_names_its_exit_and_last_line():
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, "", "line one\nplease log in\n")

    with pytest.raises(kuberest.CredentialError, match="exec plugin p exited 1: please log in"):
        kuberest.ExecCredentials(kuberest.ExecPlugin("p"), run=run).get()


@pytest.mark.parametrize("command, expected", [
    ("aws", "aws"), ("/usr/bin/aws", "/usr/bin/aws"), ("./bin/get-token", "/etc/kube/bin/get-token"),
])
def test_relative_commands_with_a_slash_start_at_the_kubeconfig(command, expected):
    assert kuberest.ExecPlugin(command, base=Path("/etc/kube")).argv()[0] == expected


@pytest.mark.parametrize("credentials, header", [
    (kuberest.Credentials(token="t"), "Bearer t"),
    (kuberest.Credentials(basic=("u", "p")), "Basic " + base64.b64encode(b"u:p").decode()),
    (kuberest.Credentials(token="t", basic=("u", "p")), "Bearer t"),
    (kuberest.Credentials(), None),
])
def test_which_credential_a_request_sends(credentials, header):
    assert credentials.headers().get("Authorization") == header


def config(cluster: dict, user: dict) -> dict:
    return {"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", **cluster}}],
            "users": [{"name": "u", "user": user}]}


def test_connection_from_takes_inline_data_and_files_beside_the_kubeconfig(tmp_path):
    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "k.key").write_bytes(b"KEY")
    data = config({"certificate-authority": "ca.crt", "tls-server-name": "kubernetes", "proxy-url": "http://p:3128"},
                  {"client-certificate-data": base64.b64encode(b"CERT").decode(), "client-key": "k.key"})
    conn = kube.connection_from(data, tmp_path)
    assert (conn.host, conn.server.ca_pem, conn.server.ca_file) == ("https://10.0.0.1:6443", b"CA", str(tmp_path / "ca.crt"))
    assert (conn.server.server_name, conn.server.proxy_url, conn.server.insecure) == ("kubernetes", "http://p:3128", False)
    assert (conn.credentials.cert_pem, conn.credentials.key_pem) == (b"CERT", b"KEY")


def test_connection_from_exec_and_insecure(tmp_path):
    data = config({"insecure-skip-tls-verify": True}, {"exec": {
        "command": "aws", "args": ["eks", "get-token"], "env": [{"name": "AWS_PROFILE", "value": "p"}]}})
    conn = kube.connection_from(data, tmp_path)
    plugin = conn.credentials.exec_plugin.plugin
    assert conn.server.insecure and plugin.argv() == ["aws", "eks", "get-token"] and plugin.env == (("AWS_PROFILE", "p"),)


def test_the_kubeconfig_ca_alone_is_trusted_not_the_system_store():
    """As client-go: a cluster with certificate-authority trusts that CA only (and loads no system store)."""
    from tests.lab.kube import make_ca

    server = kuberest.Server("https://10.0.0.1:6443", ca_pem=make_ca("only this")[0].encode())
    context = kuberest.tls_context(server, kuberest.Credentials())
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "only this"),),)]
