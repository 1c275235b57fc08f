"""The sbops image scripts/build-image writes (a docker-archive): its layers unpacked in order into a root file
system, and sbops run from it for real, chrooted, in a private mount and PID namespace, as the image's user.

Builds the image when it is not cached (${SBOPS_CACHE:-~/.cache/sbops}/image): about 4 minutes cold
(debootstrap), about 1.5 minutes after a change to sbops (the top layer only), instant when cached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.lab.env import REPO

BUILD = REPO / "scripts" / "build-image"


@pytest.fixture(scope="module")
def image(tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert proc.returncode == 0, f"scripts/build-image failed (the image test must not skip):\n{proc.stderr[-3000:]}"
    archive = Path(proc.stdout.strip().splitlines()[-1])
    root = tmp_path_factory.mktemp("image")
    rootfs = root / "rootfs"
    rootfs.mkdir()
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        [entry] = manifest
        config = json.load(tar.extractfile(entry["Config"]))
        for layer in entry["Layers"]:  # in order: the top layer lands on the base
            tar.extract(layer, root / "layers", filter="fully_trusted")
            subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-xpf", str(root / "layers" / layer)],
                           check=True)
    try:
        yield {"archive": archive, "rootfs": rootfs, "manifest": entry, "config": config}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_in(rootfs: Path, user: str, *argv: str) -> subprocess.CompletedProcess:
    """argv chrooted into rootfs as `user` (uid:gid), with /proc of a new PID namespace and /dev bound, the
    mounts private to a mount namespace that ends with the command."""
    script = ('set -e; mount -t proc proc "$1/proc"; mount --bind /dev "$1/dev"; r=$1; u=$2; shift 2; '
              'exec chroot --userspec="$u" "$r" env -i PATH=/opt/sbops/bin:/usr/bin:/bin LANG=C.UTF-8 NO_COLOR=1 "$@"')
    return subprocess.run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", script, "sh", str(rootfs), user, *argv],
                          capture_output=True, text=True, timeout=120)


def test_the_image_is_named_and_configured(image):
    assert image["manifest"]["RepoTags"] == ["sbops:0.1.0"]
    config = image["config"]["config"]
    assert config["Entrypoint"] == ["/opt/sbops/bin/sbops"] and config["User"] == "10001:10001"
    assert len(image["manifest"]["Layers"]) == 2, "the debootstrap base and the sbops layer"
    proc = subprocess.run(["skopeo", "inspect", f"docker-archive:{image['archive']}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Layers"], proc.stdout


def test_python3_and_a_working_sbops_as_the_image_user(image):
    rootfs = image["rootfs"]
    assert os.access(rootfs / "usr" / "bin" / "python3", os.X_OK, follow_symlinks=False) or \
        (rootfs / "usr" / "bin" / "python3").is_symlink()
    assert (rootfs / "usr" / "bin" / "python3").resolve(strict=False).name.startswith("python3")
    user = image["config"]["config"]["User"]
    proc = run_in(rootfs, user, "/opt/sbops/bin/sbops", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "doctor" in proc.stdout and "exporter" in proc.stdout
    proc = run_in(rootfs, user, "/opt/sbops/bin/sbops", "exporter", "--help")
    assert proc.returncode == 0 and "--layers" in proc.stdout, proc.stderr
    # A real run from the image: the host checks, read from the /proc the namespace mounted.
    proc = run_in(rootfs, user, "/opt/sbops/bin/sbops", "doctor", "--check", "host.resources", "--output", "json")
    assert proc.returncode in (0, 3, 4), proc.stderr
    [check] = json.loads(proc.stdout)["checks"]
    assert check["id"] == "host.resources" and check["status"] in ("ok", "warn", "fail"), check


def test_the_image_is_trimmed(image):
    rootfs = image["rootfs"]
    site = rootfs / "opt" / "sbops" / "lib" / "python3.11" / "site-packages"
    assert not any((rootfs / "var" / "lib" / "apt" / "lists").iterdir())
    assert not (site / "pip").exists() and not (site / "kubernetes").exists() and not (site / "pydantic").exists()
    assert sorted(p.name for p in (site / "botocore" / "data").iterdir() if p.is_dir()) == ["ecr", "sts"]
    docs = [p for p in (rootfs / "usr" / "share" / "doc").rglob("*") if p.is_file()]
    assert docs and all(p.name == "copyright" for p in docs)
