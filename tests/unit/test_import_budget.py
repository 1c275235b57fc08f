"""The modules a command imports, pinned (issue 16): start-up is most of a short command's time, and a heavy
import creeps back unnoticed (the kubernetes package's pydantic models cost ~0.2 s; typer 0.29 pulled pydantic
in again). Each command runs in a fresh interpreter; the third-party packages it imported must be exactly the
expected ones, and the total stays under a ceiling with a little headroom.

`doctor --layer mysql` runs for real, against a credentials file whose MySQL is a closed port on loopback
(refused at once): never the machine's own server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.env import LabEnv

REPO = Path(__file__).resolve().parents[2]
CLI = ("__editable___sbops_0_1_0_finder", "_distutils_hack", "annotated_doc", "shellingham", "typer")
HEAVY = {"kubernetes", "pydantic", "pydantic_core", "pymongo", "pika", "boto3", "botocore", "requests", "rich"}


def imported(args: list[str]) -> tuple[set[str], int]:
    code = ("import sys, json\nsys.argv = ['sbops'] + json.loads(sys.argv[1])\nfrom sbops.cli import _run\n_run()\n"
            "print('\\nMODULES' + json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": "/nonexistent"})
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES"))
    modules = json.loads(line.removeprefix("MODULES"))
    third = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"sbops", "__main__"}
    third -= {m for m in third if m.startswith(("_sysconfigdata", "_cython_", "cython_runtime"))}  # C-extension glue
    return third - {m for m in CLI if m.startswith("__editable")}, len(modules)


@pytest.mark.parametrize("command, expected, ceiling", [
    (["--help"], set(CLI), 190),
    (["doctor", "--layer", "mysql"],
     {*CLI, "yaml", "pymysql", "cryptography", "_cffi_backend", "_openssl", "bcrypt"}, 380),
])
def test_what_a_command_imports(tmp_path, command, expected, ceiling):
    env = LabEnv(tmp_path).set("server_ip", "127.0.0.1")  # every service at 127.0.0.1:1: refused
    env.write()
    args = command if command == ["--help"] else [*command, "--config", str(env.config_path),
                                                   "--credentials", str(env.credentials_path)]
    found, count = imported(args)
    expected = {m for m in expected if not m.startswith("__editable")}
    assert not found & HEAVY, f"heavy imports crept in: {sorted(found & HEAVY)}"
    assert found == expected, f"third-party imports changed: +{sorted(found - expected)} -{sorted(expected - found)}"
    assert count <= ceiling, f"{count} modules imported (ceiling {ceiling})"
