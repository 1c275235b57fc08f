"""Credentials files of both installer versions, as the real CLI reads them, against the NFS lab.

The current bash installer's file (UPSTREAM-CURRENT.md: NFS:, CLOUDSTACK SIMULATOR: with a four-space
StackBill User block) used to make every command exit 2 ("indented line outside a section"). Here the
exact texts are written as the credentials file, the NFS path comes from the file's NFS section (the config
file does not set it), and the lab's real exportfs table and directory are what the checks look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sbops import credentials as creds_mod
from tests.lab.env import LabEnv, status
from tests.lab.nfs import NfsLab
from tests.unit.test_credentials import ORIGINAL
from tests.unit.test_credentials_versions import CURRENT, UNKNOWN, WITH_KEYS

SECRETS = ("My12Sq34Lp56Ab78", "Cs12Ad34Mi56Nn78", "Ak12Ak34Ak56Ak78Ak90", "Sk12Sk34Sk56Sk78Sk90")


def lab_text(text: str, nfs_lab: NfsLab) -> str:
    """The text with this lab's addresses and export directory (the layout is untouched)."""
    for address in ("192.0.2.10", "192.0.2.20"):
        text = text.replace(address, "127.0.0.1")
    return text.replace("Path: /data/stackbill", f"Path: {nfs_lab.export_dir}")


@pytest.fixture
def env(nfs_lab: NfsLab, tmp_path: Path) -> LabEnv:  # noqa: F811
    lab_env = LabEnv(tmp_path / "env")
    for key, value in nfs_lab.settings().items():
        if key != "nfs.path":  # the path comes from the credentials file's NFS section
            lab_env.set(key, value)
    lab_env.credentials_file = False
    return lab_env


@pytest.mark.parametrize("text", [ORIGINAL, CURRENT, WITH_KEYS], ids=["original", "current", "with-keys"])
def test_every_version_runs_the_checks_and_its_nfs_section_is_used(env: LabEnv, nfs_lab: NfsLab, text: str) -> None:  # noqa: F811
    written = lab_text(text, nfs_lab)
    env.credentials_path.write_text(written)
    proc = env.sbops("doctor", "--check", "nfs.*", "--output", "json")
    assert proc.returncode in (0, 3, 4), proc.stderr  # not 2: the file is read
    assert "warning" not in proc.stderr
    found = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    assert (found["nfs.directory"]["code"], *status(found["nfs.directory"])) == ("SB5020", "ok", "none")  # the
    # directory named by the file's Path line
    assert (found["nfs.export"]["code"], *status(found["nfs.export"])) == ("SB5001", "ok", "none")
    assert env.credentials_path.read_text() == written
    shown = env.sbops("config", "show", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    settings = json.loads(shown.stdout)["settings"]
    assert settings["nfs.path"]["value"] == str(nfs_lab.export_dir)
    assert settings["nfs.path"]["source"].startswith(f"{env.credentials_path}:")
    for secret in SECRETS:
        assert secret not in shown.stdout and secret not in proc.stdout and secret not in proc.stderr


def test_cloudstack_section_becomes_masked_settings(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    env.credentials_path.write_text(lab_text(WITH_KEYS, nfs_lab))
    proc = env.sbops("config", "show", "--output", "json")
    settings = json.loads(proc.stdout)["settings"]
    assert settings["cloudstack.url"]["value"] == "http://127.0.0.1:8080/client"
    assert settings["cloudstack.username"]["value"] == "sb-admin@portal.example.com"
    for key in ("cloudstack.password", "cloudstack.api_key", "cloudstack.secret_key"):
        assert settings[key]["value"] == "****" and settings[key]["source"].startswith(str(env.credentials_path))
    for secret in SECRETS:
        assert secret not in proc.stdout


def test_unknown_sections_warn_and_the_file_is_kept_byte_identical(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    written = lab_text(UNKNOWN, nfs_lab)
    env.credentials_path.write_text(written)
    nfs_lab.seed_stackbill("*")  # break the export, then repair it with this credentials file in use
    proc = env.sbops("doctor", "--check", "nfs.export", "--output", "json")
    assert proc.returncode in (0, 3, 4), proc.stderr
    assert "section KAFKA is not one sbops reads" in proc.stderr and "NotReadBySbops1" not in proc.stderr
    export = json.loads(proc.stdout)["checks"][0]
    assert (export["code"], *status(export)) == ("SB5008", "warn", "insecure")
    fixed = env.fix("nfs-export")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert status(env.check("nfs.export")) == ("ok", "none")
    assert env.credentials_path.read_text() == written
    # what the installer's save-credentials writes for it changes only the values that differ
    creds = creds_mod.parse(written, env.credentials_path)
    assert creds_mod.render(creds) == written


def test_a_needed_section_that_cannot_be_read_is_a_usage_error(env: LabEnv, nfs_lab: NfsLab) -> None:  # noqa: F811
    env.credentials_path.write_text(lab_text(CURRENT, nfs_lab).replace("  Port: 3306", "  Port: three"))
    proc = env.sbops("doctor", "--check", "nfs.*")
    assert proc.returncode == 2 and proc.stderr.strip().startswith(f"sbops: error: {env.credentials_path}:12:")
    assert "Traceback" not in proc.stderr
