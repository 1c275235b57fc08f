"""The lab's ECR stand-in itself (tests/lab/registry.py): Debian's docker-registry over TLS with the lab CA and
basic auth for user AWS, accepting exactly one ECR-format token at a time.

Real here: docker-registry 2.8, skopeo, bcrypt, TLS verified against the lab CA. The image is a docker-archive
built in the test (one layer with one file, a config, manifest.json), as the lab builds its images.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.lab import registry as lr
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.common import port_open, tail
from tests.lab.kube import REPO, ecr_password

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def tiny_archive(path: Path, text: str = "hello from the lab\n") -> Path:
    """A docker-archive tarball: layer.tar holding /hello.txt, its config JSON, and manifest.json."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]},
        "history": [{"created_by": "sbops lab test"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["lab/tiny:1"], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, blob in (("layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def registry(lab_registry: lr.LabRegistry) -> Iterator[lr.LabRegistry]:
    """The session's registry, accepting a fresh lab token."""
    lab_registry.set_token(lr.lab_token())
    yield lab_registry


def manifest_status(registry: lr.LabRegistry, repo: str, tag: str, password: str | None) -> int:
    auth = ("AWS", password) if password is not None else None
    response = requests.get(f"{registry.url}/v2/{repo}/manifests/{tag}", auth=auth, verify=str(registry.ca_file),
                            headers={"Accept": MANIFEST_V2}, timeout=10)
    return response.status_code


def test_push_then_pull_with_the_token_only(registry: lr.LabRegistry, tmp_path: Path) -> None:
    token = registry.token
    archive = tiny_archive(tmp_path / "tiny.tar")
    secrets = [token, ecr_password(token), ecr_password(token)[:lr.BCRYPT_MAX]]
    with ArgvWatcher(secrets) as watch:
        ref = registry.push(archive, "sb-core", "1")
    assert watch.hits == [] and any(line.startswith("skopeo ") for line in watch.seen)  # it did watch skopeo
    assert ref == f"{registry.address}/sb-core:1"
    assert "sb-core" in registry.catalog() and registry.tags("sb-core") == ["1"]

    assert manifest_status(registry, "sb-core", "1", ecr_password(token)) == 200
    assert manifest_status(registry, "sb-core", "1", None) == 401
    assert manifest_status(registry, "sb-core", "1", "not-the-token") == 401

    # what a client outside the lab sees: skopeo with the token in an authfile and only the lab CA trusted
    inspect = subprocess.run(["skopeo", "inspect", "--authfile", str(registry.authfile), "--cert-dir",
                              str(registry.cert_dir), f"docker://{ref}"], capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Layers"][0].startswith("sha256:")


def test_a_new_token_makes_the_old_one_stale(registry: lr.LabRegistry, tmp_path: Path) -> None:
    registry.push(tiny_archive(tmp_path / "tiny.tar"), "sb-ui", "1")
    old = registry.token
    new = lr.lab_token()
    assert ecr_password(old)[:lr.BCRYPT_MAX] != ecr_password(new)[:lr.BCRYPT_MAX]  # random payload first
    with ArgvWatcher([new, ecr_password(new)]) as watch:
        registry.set_token(new)
    assert watch.hits == []
    assert manifest_status(registry, "sb-ui", "1", ecr_password(new)) == 200
    assert manifest_status(registry, "sb-ui", "1", ecr_password(old)) == 401
    assert registry.token == new  # skopeo's authfile follows
    registry.push(tiny_archive(tmp_path / "tiny2.tar", "second\n"), "sb-ui", "2")
    assert sorted(registry.tags("sb-ui")) == ["1", "2"]


def test_a_token_the_registry_could_not_tell_apart_is_refused(registry: lr.LabRegistry) -> None:
    """Same first 72 bytes of password, different tail: bcrypt would accept both, so set_token says no."""
    import base64

    password = ecr_password(registry.token)
    twin = base64.b64encode(f"AWS:{password[:72]}different-tail".encode()).decode()
    with pytest.raises(ValueError, match="72 bytes"):
        registry.set_token(twin)
    assert registry.get("/v2/").status_code == 200  # the current token still works


def test_moto_token_is_accepted(registry: lr.LabRegistry) -> None:
    """What `sbops fix ecr-refresh` writes after asking moto: password "<account>-auth-token"."""
    registry.set_token(lr.moto_token())
    assert requests.get(f"{registry.url}/v2/", auth=("AWS", "123456789012-auth-token"),
                        verify=str(registry.ca_file), timeout=10).status_code == 200
    assert requests.get(f"{registry.url}/v2/", auth=("AWS", "999999999999-auth-token"),
                        verify=str(registry.ca_file), timeout=10).status_code == 401


def test_moto_token_matches_moto() -> None:
    """moto_token() is what moto's ECR API really answers (in-process mock)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        answer = boto3.client("ecr", region_name="ap-south-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing").get_authorization_token()
    assert answer["authorizationData"][0]["authorizationToken"] == lr.moto_token()


def test_tls_is_the_lab_ca_for_the_host_address(registry: lr.LabRegistry) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registry.url}/v2/", timeout=10)  # the system's CAs do not know the lab
    assert requests.get(f"{registry.url}/v2/", verify=str(registry.ca_file), timeout=10).status_code == 401
    snippet = registry.containerd_cri_config()
    assert f'endpoint = ["https://{registry.address}"]' in snippet and str(registry.ca_file) in snippet


def test_files_holding_secrets_are_private(registry: lr.LabRegistry) -> None:
    for path in (registry.htpasswd, registry.authfile, registry.root / "config.yml", registry.root / "pki" / "ca.key",
                 registry.root / "pki" / "registry.key"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert ecr_password(registry.token) not in registry.htpasswd.read_text()
    assert ecr_password(registry.token) not in tail(registry.log, 1000)


def test_detached_start_binds_only_the_host_and_stops(tmp_path: Path) -> None:
    """The CLI scripts/lab uses: start detached, reuse, token from stdin, stop leaves nothing running.

    127.0.0.2 stands for the node's lab address (10.99.x.1): the certificate names it, and nothing listens on
    the port at any other address."""
    root = tmp_path / "reg"
    cli = [sys.executable, "-m", "tests.lab.registry"]
    start = subprocess.run([*cli, "start", str(root), "--host", "127.0.0.2"], capture_output=True, text=True,
                           timeout=60, cwd=REPO)
    assert start.returncode == 0, start.stderr
    registry = lr.LabRegistry.load(root)
    try:
        assert start.stdout.strip() == registry.address and registry.running
        listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
        ours = [line for line in listening.splitlines() if f"pid={registry.pid}," in line]
        assert ours and all(line.split()[3] == registry.address for line in ours), ours
        assert registry.address.startswith("127.0.0.2:") and not port_open("127.0.0.1", registry.port)
        assert requests.get(f"{registry.url}/v2/", verify=str(registry.ca_file), timeout=10).status_code == 401
        again = subprocess.run([*cli, "start", str(root), "--host", "127.0.0.2"], capture_output=True, text=True,
                               timeout=60, cwd=REPO)
        assert again.stdout.strip() == registry.address and lr.LabRegistry.load(root).pid == registry.pid

        new = lr.lab_token()
        with ArgvWatcher([new, ecr_password(new)]) as watch:
            subprocess.run([*cli, "token", str(root)], input=new, text=True, check=True, timeout=60, cwd=REPO)
        assert watch.hits == []
        assert registry.get("/v2/", token=new).status_code == 200
    finally:
        subprocess.run([*cli, "stop", str(root)], check=True, timeout=60, cwd=REPO)
    assert not registry.running
    assert not lr.LabRegistry.load(root).running


def test_restart_keeps_port_storage_and_token(tmp_path: Path) -> None:
    registry = lr.LabRegistry(tmp_path / "reg").start()
    try:
        registry.push(tiny_archive(tmp_path / "tiny.tar"), "sb-kong", "1")
        token, port = registry.token, registry.port
        registry.stop()
        assert not registry.running
        registry.start()
        assert registry.port == port and registry.token == token
        assert registry.tags("sb-kong") == ["1"]
    finally:
        registry.stop()
