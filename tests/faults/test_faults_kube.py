"""Fault injection: the kubeconfig loader and validator (sbops.kube), fuzzed and with each known defect as a
regression.

Property: `kube.validate` either raises UsageError (one line naming the file) or accepts the file, and then the
client is built from it (`kube.new_client`) without raising. Anything else fails: the
validator let through a kubeconfig that would crash every Kubernetes check.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sbops import kube
from sbops.errors import UsageError
from tests.faults.yaml_mutator import Mutator

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 1500
SEED = 9009


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    """A folder with a kubeconfig's companions: CA, client certificate and key, token file."""
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "client.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "client.key").write_text("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
    (tmp_path / "token").write_text("abc.def\n")
    return tmp_path


def valid_docs() -> list[dict]:
    data = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    return [
        {"apiVersion": "v1", "kind": "Config", "current-context": "default",
         "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": data}}],
         "users": [{"name": "default", "user": {"client-certificate-data": data, "client-key-data": data}}],
         "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}]},
        {"apiVersion": "v1", "kind": "Config", "current-context": "lab",
         "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}},
                      {"name": "other", "cluster": {"server": "http://127.0.0.1:8080"}}],
         "users": [{"name": "admin", "user": {"tokenFile": "token"}},
                   {"name": "certs", "user": {"client-certificate": "client.crt", "client-key": "client.key"}}],
         "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}},
                      {"name": "c2", "context": {"cluster": "other", "user": "certs"}}]},
        {"apiVersion": "v1", "kind": "Config", "current-context": "t",
         "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1", "insecure-skip-tls-verify": True}}],
         "users": [{"name": "u", "user": {"token": "abc"}}],
         "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u", "namespace": "sb-apps"}}]},
    ]


def check(path: Path) -> str:
    """'usage' or 'ok' (then the client was built); anything else raises."""
    try:
        kube.validate(path)
    except UsageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return "usage"
    client = kube.new_client(path)
    assert client.host.startswith(("https://", "http://"))
    return "ok"


def test_the_valid_corpus_is_accepted_and_loads(files):
    for index, doc in enumerate(valid_docs()):
        path = files / f"k{index}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert check(path) == "ok"


def run_fuzzer(files: Path, mutate, seed: int, capsys, label: str) -> None:
    docs = valid_docs()
    counts = {"usage": 0, "ok": 0}
    path = files / "fuzzed.yaml"
    for round_no in range(ROUNDS):
        data = mutate(docs[round_no % len(docs)])
        path.write_bytes(data)
        try:
            counts[check(path)] += 1
        except Exception as exc:  # noqa: BLE001 - the property under test
            pytest.fail(f"{label} round {round_no} (seed {seed}): {type(exc).__name__}: {exc}\ninput: {data!r}")
    with capsys.disabled():
        print(f"\nkubeconfig {label} fuzzer: {ROUNDS}/{ROUNDS} rounds survived "
              f"({counts['usage']} usage errors, {counts['ok']} accepted and loaded)")


def test_fuzz_kubeconfig_text(files, capsys):
    mutator = Mutator(SEED)
    run_fuzzer(files, lambda doc: mutator.text(yaml.safe_dump(doc)), SEED, capsys, "text")


def test_fuzz_kubeconfig_structure(files, capsys):
    mutator = Mutator(SEED + 1)
    run_fuzzer(files, lambda doc: mutator.dump(mutator.data(doc)), SEED + 1, capsys, "structure")


# -- regressions -------------------------------------------------------------------------------------------
def write(files: Path, doc: dict | bytes, name: str = "kubeconfig") -> Path:
    path = files / name
    path.write_bytes(doc if isinstance(doc, bytes) else yaml.safe_dump(doc).encode())
    return path


def edited(index: int, edit) -> dict:
    doc = valid_docs()[index]
    edit(doc)
    return doc


@pytest.mark.parametrize("doc, message", [
    (b"apiVersion: v1\nkind: Conf\xffig\n", ":2: invalid kubeconfig: not UTF-8"),
    (b"clusters: &a [*a]\n", "invalid kubeconfig"),
    (b"clusters: " + b"[" * 5000 + b"]" * 5000 + b"\n", "invalid kubeconfig: not YAML"),
    (edited(2, lambda d: d["clusters"][0].update(name=["c"])), "clusters[0] has no name"),
    (edited(2, lambda d: d.update({"current-context": ["t"]})), "no current-context"),
    (edited(2, lambda d: d.update({"current-context": {"a": 1}})), "no current-context"),
    (edited(2, lambda d: d["contexts"][0]["context"].update(cluster=["c"])), "names cluster"),
    (edited(2, lambda d: d["contexts"][0]["context"].update(user={"u": 1})), "names user"),
    (edited(2, lambda d: d["contexts"][0]["context"].update(cluster="gone")), "names cluster 'gone'"),
    (edited(2, lambda d: d["contexts"][0]["context"].update(user="gone")), "names user 'gone'"),
    (edited(1, lambda d: d["clusters"][0]["cluster"].update({"certificate-authority": "missing-ca.crt"})),
     "certificate-authority"),
    (edited(1, lambda d: d["users"][0]["user"].update(tokenFile="missing-token")), "tokenFile"),
    (edited(1, lambda d: d.update({"current-context": "c2"}) or d["users"][1]["user"].update({"client-key": "nokey"})),
     "client-key"),
    (edited(0, lambda d: d["clusters"][0]["cluster"].update({"certificate-authority-data": "%%%"})), "is not base64"),
    (edited(2, lambda d: d["clusters"][0]["cluster"].update(server="127.0.0.1:6443")), "server must be an https:// URL"),
    (edited(2, lambda d: d["clusters"][0]["cluster"].update(server="https://h:99999")), "server must be"),
    (edited(2, lambda d: d["clusters"].append(d["clusters"][0])), "two clusters are named 'c'"),
    (edited(2, lambda d: d["users"][0]["user"].update({"auth-provider": {"name": "oidc"}})), "auth-provider"),
])
def test_defects_are_one_line_usage_errors(files, doc, message):
    path = write(files, doc)
    with pytest.raises(UsageError) as err:
        kube.validate(path)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_non_utf8_token_file(files):
    (files / "token").write_bytes(b"abc\xff\n")
    path = write(files, valid_docs()[1])
    with pytest.raises(UsageError, match="tokenFile .*: not UTF-8 text"):
        kube.validate(path)


def test_relative_files_are_found_beside_the_kubeconfig(files, tmp_path, monkeypatch):
    path = write(files, valid_docs()[1])
    monkeypatch.chdir("/")
    kube.validate(path)
    assert kube.new_client(path).server.ca_file == str(files / "ca.crt")


def test_the_client_never_retries(files):
    """urllib3's default Retry(3) made every call against a hung API server take four times --timeout: retries
    must be 0 in the pool the ApiClient built, not only on its Configuration afterwards."""
    path = write(files, valid_docs()[2])
    client = kube.new_client(path)
    retries = client._manager().connection_pool_kw.get("retries")
    assert retries is not None and retries.total == 0, retries


@pytest.mark.parametrize("command", [["doctor", "--layer", "kubernetes"], ["fix", "k8s-namespace", "--dry-run"],
                                     ["uninstall", "--dry-run"], ["config", "show"]])
def test_the_cli_refuses_a_broken_kubeconfig_with_one_line(files, command):
    doc = edited(1, lambda d: d["clusters"][0]["cluster"].update({"certificate-authority": "missing-ca.crt"}))
    path = write(files, doc)
    cfg = files / "config.yaml"
    cfg.write_text("journal: /tmp/sbops-faults-journal.log\n")
    proc = subprocess.run([sys.executable, "-m", "sbops", *command, "--kubeconfig", str(path), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing-ca.crt" in lines[0] and lines[0].startswith(f"sbops: error: {path}:"), proc.stderr


def test_a_non_utf8_ecr_token_file_is_a_blocker_not_a_crash(kube, tmp_path):
    """Against the real API server (the plan reads the pull secret before the token)."""
    from tests.lab.env import LabEnv

    token = tmp_path / "token"
    token.write_bytes(b"eyJwYXlsb2FkIjoi\xff\xfe")
    env = LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig))
    proc = env.sbops("fix", "ecr-refresh", "--dry-run", "--output", "json", "--token-file", str(token))
    assert proc.returncode == 3, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "not UTF-8" in proc.stdout, proc.stdout
