"""Ctrl-C for real: SIGINT sent to a running `sbops` process (issue 9, "Ctrl-C during fix --yes").

The fix is nfs-export on the NFS lab (the real exportfs on a private table): step 1 rewrites the exports file,
step 2 runs `exportfs -ra`, which here goes through a wrapper that records its environment and then blocks.
While it blocks the test sends SIGINT. sbops must say what was applied and what was not, write the journal
line for the applied step, emit the JSON document, exit 130, and leave no child behind. The wrapper's
environment also shows that the admin passwords and the ECR token sbops was given never reach a child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.env import REPO, LabEnv
from tests.lab.nfs import NfsLab

ADMIN_PASSWORD = "AdminPw-not-for-children-77"
ECR_TOKEN = "ecr-token-not-for-children-88"

BLOCKING = """#!/bin/sh
# exportfs that blocks on the re-export ({block}); everything else goes to the lab's real exportfs
case " $* " in
  *" {block} "*) env > {envfile}; echo $$ > {pidfile}; exec sleep 120 ;;
esac
exec {real} "$@"
"""


def blocking_exportfs(lab: NfsLab, root: Path, block: str) -> tuple[Path, Path, Path]:
    script, envfile, pidfile = root / "exportfs-blocking", root / "child.env", root / "child.pid"
    script.write_text(BLOCKING.format(block=block, envfile=envfile, pidfile=pidfile, real=lab.exportfs_command))
    script.chmod(0o755)
    return script, envfile, pidfile


def start(env: LabEnv, *args: str, new_session: bool = False) -> subprocess.Popen:
    env.write()
    argv = [sys.executable, "-m", "sbops", *args, "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    extra = {"NO_COLOR": "1", "SBOPS_MYSQL_ADMIN_PASSWORD": ADMIN_PASSWORD,
             "SBOPS_MONGODB_ADMIN_PASSWORD": ADMIN_PASSWORD, "AWS_ECR_TOKEN": ECR_TOKEN}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, **extra}, start_new_session=new_session, preexec_fn=default_sigint)


def default_sigint() -> None:
    """sbops gets SIGINT's default disposition, as from a terminal: a test run started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"sbops ended before the step blocked: {proc.returncode}\n{proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def lab_env(tmp_path: Path, lab: NfsLab) -> LabEnv:
    env = LabEnv(tmp_path / "env")
    lab.configure(env)
    lab.seed_stackbill("*")  # exported to everyone, as the installer does: nfs-export narrows it in two steps
    return env


def journal(env: LabEnv) -> list[dict]:
    path = Path(env.settings["journal"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ctrl_c_during_fix_yes_json(nfs_lab: NfsLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, nfs_lab)
    script, envfile, pidfile = blocking_exportfs(nfs_lab, tmp_path, "-ra")
    env.set("nfs.exportfs_command", str(script))
    before = nfs_lab.exports_file.read_text()

    proc = start(env, "fix", "nfs-export", "--yes", "--output", "json")
    wait_for(pidfile, proc)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    document = json.loads(out)
    assert document["outcome"] == "interrupted"
    assert [(s["number"], s["state"]) for s in document["steps"]] == [(1, "applied"), (2, "interrupted")]
    assert "interrupted during step 2: 1 of 2 change(s) applied" in err
    assert "Traceback" not in err
    [line] = journal(env)
    assert line["fix"] == "nfs-export" and line["outcome"] == "interrupted during step 2"
    assert len(line["applied"]) == 1 and "rewrite the entry" in line["applied"][0]
    assert len(line["not_applied"]) == 1 and "re-export" in line["not_applied"][0]
    assert nfs_lab.exports_file.read_text() != before  # step 1 really happened
    assert gone(child), "the interrupted step's child process was left running"

    child_env = envfile.read_text()
    assert "PATH=" in child_env
    for secret in (ADMIN_PASSWORD, ECR_TOKEN):
        assert secret not in child_env, "a secret was inherited by a child process"
    assert "SBOPS_MYSQL_ADMIN_PASSWORD" not in child_env and "AWS_ECR_TOKEN" not in child_env


def test_ctrl_c_during_fix_yes_text(nfs_lab: NfsLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, nfs_lab)
    script, _, pidfile = blocking_exportfs(nfs_lab, tmp_path, "-ra")
    env.set("nfs.exportfs_command", str(script))

    proc = start(env, "fix", "nfs-export", "--yes", new_session=True)
    wait_for(pidfile, proc)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole foreground group, children included
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, out + err
    assert "  applied 1/2: rewrite the entry" in out
    assert "interrupted during step 2: 1 of 2 change(s) applied" in out
    assert "  applied: 1. rewrite the entry" in out
    assert "  interrupted (may be partly applied): 2. re-export" in out
    assert "Traceback" not in err
    assert [line["outcome"] for line in journal(env)] == ["interrupted during step 2"]


def test_ctrl_c_during_doctor_says_so(nfs_lab: NfsLab, tmp_path: Path) -> None:
    """The KeyboardInterrupt branch of the CLI used to be dead code: typer turned the interrupt into a silent
    exit 130. A command that does not handle Ctrl-C itself now ends with one line saying so."""
    env = LabEnv(tmp_path / "env")
    nfs_lab.configure(env)
    script, _, pidfile = blocking_exportfs(nfs_lab, tmp_path, "-v")
    env.set("nfs.exportfs_command", str(script)).set("timeout", 60)

    proc = start(env, "doctor", "--layer", "nfs", new_session=True)
    wait_for(pidfile, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1] == "sbops: interrupted"
    assert "Traceback" not in err


def test_dry_run_leaves_no_journal_line(nfs_lab: NfsLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, nfs_lab)
    proc = env.sbops("fix", "nfs-export", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env.set("nfs.exportfs_command", str(tmp_path / "no-such-exportfs"))  # blocked: still no line in a dry run
    proc = env.sbops("fix", "nfs-export", "--dry-run")
    assert proc.returncode == 3 and "cannot run" in proc.stdout, proc.stdout + proc.stderr
    assert journal(env) == []
