"""k8s.kubeconfig-mode and the kubeconfig-mode fix, through the real `sbops` CLI, on real files.

Real here: the kubeconfig, K3s's config.yaml, a config.yaml.d drop-in, the unit file and its .env file, all in
a temp dir the settings k3s.kubeconfig, k3s.config_file and k3s.unit_file point at; real chmod and chown (the
suite runs as root, as sbops does).

Not real, and why: K3s itself. Its binary cannot be downloaded here (no GitHub releases, no image registry),
so K3s's own rewrite of the kubeconfig at its start is not run; the tests check instead that after the fix
every setting K3s reads says 0600, which is what K3s applies at its next start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lab.env import LabEnv, finding, status

UPSTREAM_UNIT = ("[Unit]\nDescription=Lightweight Kubernetes\n\n[Service]\nType=notify\n"
                 "EnvironmentFile=-/etc/systemd/system/k3s.service.env\n"
                 "ExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--write-kubeconfig-mode' '644' \\\n"
                 "\t'--disable' 'traefik' \\\n")
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n"  # its content is never read


@pytest.fixture
def k3s_files(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "rancher" / "k3s"
    root.mkdir(parents=True)
    units = tmp_path / "units"
    units.mkdir()
    files = {"kubeconfig": root / "k3s.yaml", "config": root / "config.yaml", "unit": units / "k3s.service"}
    files["kubeconfig"].write_text(KUBECONFIG)
    files["kubeconfig"].chmod(0o600)
    files["unit"].write_text("[Service]\nExecStart=/usr/local/bin/k3s server\n")
    return files


@pytest.fixture
def env(tmp_path: Path, k3s_files: dict[str, Path]) -> LabEnv:
    lab = LabEnv(tmp_path / "env")
    lab.set("k3s.kubeconfig", str(k3s_files["kubeconfig"])).set("k3s.config_file", str(k3s_files["config"]))
    lab.set("k3s.unit_file", str(k3s_files["unit"]))
    return lab


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_world_readable_kubeconfig_fails_and_the_fix_makes_it_stick(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    config, kubeconfig = k3s_files["config"], k3s_files["kubeconfig"]
    # as the upstream script leaves it, with the mode in config.yaml (a user's own comment is kept by the fix)
    config.write_text("# written by hand\nwrite-kubeconfig-mode: 644\ndisable:\n- traefik\n")
    kubeconfig.chmod(0o644)
    result = env.check("k8s.kubeconfig-mode")
    assert finding(result) == ("SB6051", "fail", "insecure")
    assert result["fix"] == "kubeconfig-mode"

    dry = env.fix("kubeconfig-mode", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"chmod 600 {kubeconfig}" in dry.stdout and '+write-kubeconfig-mode: "0600"' in dry.stdout
    assert mode(kubeconfig) == 0o644 and "644" in config.read_text()  # a dry run changes nothing

    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mode(kubeconfig) == 0o600 and kubeconfig.stat().st_uid == 0
    assert config.read_text() == '# written by hand\nwrite-kubeconfig-mode: "0600"\ndisable:\n- traefik\n'
    assert mode(config) == 0o600 and (config.parent / "config.yaml.bak").exists()
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6050", "ok", "none")
    # sbops (root) still reads the file it protected
    assert kubeconfig.read_text() == KUBECONFIG
    # a second run has nothing to do
    again = env.fix("kubeconfig-mode")
    assert again.returncode == 0 and "nothing to do" in again.stdout.lower(), again.stdout


def test_private_file_with_config_644_is_not_persistent(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    """Someone ran chmod 600 by hand: fine until K3s restarts, which config.yaml's 644 would undo."""
    config = k3s_files["config"]
    config.write_text("write-kubeconfig-mode: '0644'\n")
    result = env.check("k8s.kubeconfig-mode")
    assert finding(result) == ("SB6053", "fail", "misconfigured")
    assert result["details"]["sources"] == [{"where": str(config), "kind": "config", "value": "0644"}]
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config.read_text() == 'write-kubeconfig-mode: "0600"\n'
    assert status(env.check("k8s.kubeconfig-mode")) == ("ok", "none")


def test_no_config_file_gets_one_saying_600(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    k3s_files["kubeconfig"].chmod(0o640)
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6051", "fail", "insecure")
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert k3s_files["config"].read_text() == 'write-kubeconfig-mode: "0600"\n'
    assert status(env.check("k8s.kubeconfig-mode")) == ("ok", "none")


def test_kubeconfig_owned_by_a_user_goes_back_to_root(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    kubeconfig = k3s_files["kubeconfig"]
    os.chown(kubeconfig, 65534, 65534)  # nobody
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6052", "fail", "insecure")
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (kubeconfig.stat().st_uid, kubeconfig.stat().st_gid, mode(kubeconfig)) == (0, 0, 0o600)
    assert status(env.check("k8s.kubeconfig-mode")) == ("ok", "none")


def test_mode_on_the_unit_command_line_is_refused_and_nothing_changes(env: LabEnv,
                                                                      k3s_files: dict[str, Path]) -> None:
    """The upstream installer's unit: the flag overrides config.yaml, and sbops does not edit K3s's unit."""
    kubeconfig, unit, config = k3s_files["kubeconfig"], k3s_files["unit"], k3s_files["config"]
    unit.write_text(UPSTREAM_UNIT)
    kubeconfig.chmod(0o644)
    result = env.check("k8s.kubeconfig-mode")
    assert finding(result) == ("SB6051", "fail", "insecure")
    assert [s["kind"] for s in result["details"]["sources"]] == ["unit"]
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "ExecStart" in proc.stdout and "daemon-reload" in proc.stdout
    assert mode(kubeconfig) == 0o644 and not config.exists() and unit.read_text() == UPSTREAM_UNIT
    # the user removes the flag as told; the fix then goes through
    unit.write_text(UPSTREAM_UNIT.replace("\t'--write-kubeconfig-mode' '644' \\\n", ""))
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6050", "ok", "none")


def test_mode_in_the_unit_env_file_or_a_dropin_is_refused(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    kubeconfig, unit = k3s_files["kubeconfig"], k3s_files["unit"]
    dropins = k3s_files["config"].with_name("config.yaml.d")
    dropins.mkdir()
    (dropins / "50-mode.yaml").write_text("write-kubeconfig-mode: '0644'\n")
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6053", "fail", "misconfigured")
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 3 and "50-mode.yaml" in proc.stdout, proc.stdout
    (dropins / "50-mode.yaml").unlink()
    unit.with_name("k3s.service.env").write_text("K3S_KUBECONFIG_MODE=644\n")
    result = env.check("k8s.kubeconfig-mode")
    assert finding(result) == ("SB6053", "fail", "misconfigured")
    assert result["details"]["sources"][0]["kind"] == "env"
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 3 and "K3S_KUBECONFIG_MODE" in proc.stdout, proc.stdout
    assert mode(kubeconfig) == 0o600


def test_no_k3s_here_is_a_skip(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    k3s_files["kubeconfig"].unlink()
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6054", "skip", "not_applicable")


def test_broken_config_yaml_fails_and_the_fix_refuses(env: LabEnv, k3s_files: dict[str, Path]) -> None:
    k3s_files["config"].write_text("disable: [traefik\n")
    assert finding(env.check("k8s.kubeconfig-mode")) == ("SB6056", "fail", "misconfigured")
    proc = env.fix("kubeconfig-mode")
    assert proc.returncode == 3, proc.stdout
    assert k3s_files["config"].read_text() == "disable: [traefik\n"
