"""Helm 3 for tests: the static binary scripts/get-helm caches (fails loudly: the Helm tests must not skip),
and a private HELM_*_HOME per test so no test reads or writes the machine's Helm configuration."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_CHART = REPO / "tests" / "lab" / "charts" / "sbops-demo"


@pytest.fixture(scope="session")
def helm_bin() -> str:
    proc = subprocess.run([str(REPO / "scripts" / "get-helm")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"scripts/get-helm failed (the helm tests must not skip):\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def helm_env(tmp_path: Path) -> dict[str, str]:
    homes = {k: str(tmp_path / "helm" / k.lower()) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    return {**os.environ, **homes}
