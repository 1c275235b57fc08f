"""The lab itself: every start is idempotent while running and after a crash (kill -9 of the lab's servers, the
living cluster's kubelet, containerd, API server and registry among them); `down` stops everything and
`down --purge` removes the lab. Before issue 9, the second `scripts/lab up` failed with a pymongo traceback
(`User "stackbill@admin" already exists`).

Runs `python -m tests.lab.stack` in its own lab directory (SBOPS_LAB_DIR), as `scripts/lab` does, and after
each start runs `sbops doctor` against it: every check passes or warns (the lab has 2 known warnings).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.env import REPO, lab_lacks

PID_FILES = ("mariadb/mysqld.pid", "mongodb/mongod.pid", "rabbitmq/rabbit.pid")
# The living cluster's state files, each with the pids of what it started.
PID_STATES = ("living/kube/lab.json", "living/node/node.json")


def stack(lab: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.lab.stack", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**os.environ, "SBOPS_LAB_DIR": str(lab)})


def up_and_doctor(lab: Path, when: str) -> None:
    proc = stack(lab, "up")
    assert proc.returncode == 0, f"lab up {when}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    doctor = subprocess.run([sys.executable, "-m", "sbops", "doctor", "--output", "json", "--config",
                             str(lab / "config.yaml"), "--credentials", str(lab / "stackbill-credentials.txt")],
                            capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "KUBECONFIG": ""})
    assert doctor.returncode in (0, 4), f"doctor {when}: exit {doctor.returncode}: {doctor.stderr[-2000:]}"
    checks = json.loads(doctor.stdout)["checks"]
    bad = {c["id"]: (c["status"], c["reason"]) for c in checks
           if c["status"] not in ("ok", "warn") and not lab_lacks(c["id"], c["status"], c["reason"])}
    assert not bad, f"doctor {when}: {bad}"


def lab_pids(lab: Path) -> list[int]:
    pids = []
    for name in PID_FILES:
        text = (lab / name).read_text().strip() if (lab / name).exists() else ""
        if text.isdigit():
            pids.append(int(text))
    for name in PID_STATES:
        if (lab / name).exists():
            pids += [int(p) for p in json.loads((lab / name).read_text()).get("pids", {}).values()]
    if (lab / "living" / "registry" / "registry.json").exists():
        pids.append(int(json.loads((lab / "living" / "registry" / "registry.json").read_text()).get("pid") or 0))
    return [pid for pid in pids if pid]


def crash(lab: Path) -> None:
    """kill -9 every lab server, as an OOM killer or a power cut would."""
    pids = lab_pids(lab)
    assert len(pids) >= 6, pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def test_every_lab_start_is_idempotent(tmp_path):
    lab = tmp_path / "lab"
    try:
        up_and_doctor(lab, "the first time")
        up_and_doctor(lab, "while running")
        crash(lab)
        up_and_doctor(lab, "after kill -9 of the lab's servers (the node's kubelet and containerd included)")
        pids = lab_pids(lab)
        assert stack(lab, "down").returncode == 0
        time.sleep(0.5)
        assert not [pid for pid in pids if _state(pid) not in "ZX"], "down left lab servers running"
        assert stack(lab, "down", "--purge").returncode == 0
        assert not lab.exists()
    finally:
        stack(lab, "down", "--purge")
