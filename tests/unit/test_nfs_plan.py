"""The nfs-export and nfs-directory plans over a RecordingRunner: what they would change, and when they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbops.context import Context
from sbops.probes.nfs import plan_directory, plan_export
from sbops.runner import CommandResult, RecordingRunner, succeeds
from sbops.settings import Settings

POD = "10.42.0.0/16"


def make(tmp_path: Path, exports: str | None, active: str = "", exportfs: str = "/bin/true"):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    exports_file = tmp_path / "exports"
    runner = RecordingRunner(responses={exportfs: lambda argv: CommandResult(argv, 0, active if "-v" in argv else "", ""),
                                        **succeeds("mkdir", "chmod")})
    if exports is not None:
        runner.files[str(exports_file)] = exports.format(d=data)
    settings = Settings.load(env={}, flags={"nfs.path": str(data), "nfs.exports_file": str(exports_file),
                                            "nfs.exportfs_command": exportfs, "server_ip": "127.0.0.1"})
    return Context(settings, runner=runner), runner, exports_file, data


# No kubeconfig here: the node list cannot be read, so the export must cover the server's address.
GOOD = "{d} 127.0.0.1(rw,sync,no_subtree_check,no_root_squash)\n"


def test_nothing_to_do_when_file_right_and_export_active(tmp_path):
    ctx, runner, _, data = make(tmp_path, "# hdr\n" + GOOD, active=f"{tmp_path}/data\n\t\t127.0.0.1(rw,sync)\n")
    plan = plan_export(ctx)
    assert plan.empty and not plan.blockers and "active" in plan.nothing_to_do


def test_reexport_only_when_inactive(tmp_path):
    ctx, runner, _, _ = make(tmp_path, GOOD, active="")
    plan = plan_export(ctx)
    assert [c.commands for c in plan.changes] == [("/bin/true -ra",)]
    plan.changes[0].apply()
    assert runner.commands[-1] == ("/bin/true", "-ra") and runner.writes == []


@pytest.mark.parametrize("exports", [None, "", "{d} *(rw,sync,no_root_squash)\n", "{d} 10.42.0.0/16(ro)\n",
                                     "{d} 10.42.0.0/16(rw,sync,no_subtree_check,no_root_squash)\n"])
def test_rewrite_then_reexport(tmp_path, exports):
    ctx, runner, exports_file, data = make(tmp_path, exports)
    plan = plan_export(ctx)
    assert len(plan.changes) == 2 and not plan.blockers
    for change in plan.changes:
        change.apply()
    assert runner.files[str(exports_file)].endswith(f"{data} 127.0.0.1(rw,sync,no_subtree_check,no_root_squash)\n")
    assert POD not in runner.files[str(exports_file)]
    assert any("node list cannot be read" in n for n in plan.notes)
    assert runner.writes == [(str(exports_file), 0o644)]
    assert runner.commands[-1] == ("/bin/true", "-ra")


def test_blocked_without_exportfs(tmp_path):
    ctx, runner, _, _ = make(tmp_path, "", exportfs="/nonexistent/exportfs")
    plan = plan_export(ctx)
    assert plan.empty and any("nfs-kernel-server" in b for b in plan.blockers)


def test_blocked_when_directory_missing(tmp_path):
    ctx, runner, _, data = make(tmp_path, "")
    data.rmdir()
    plan = plan_export(ctx)
    assert plan.empty and any("nfs-directory" in b for b in plan.blockers)


def test_directory_plan(tmp_path):
    ctx, runner, _, data = make(tmp_path, "")
    assert plan_directory(ctx).nothing_to_do
    data.rmdir()
    plan = plan_directory(ctx)
    assert plan.changes[0].commands == (f"mkdir -p {data}", f"chmod 0777 {data}")
    plan.changes[0].apply()
    assert runner.commands == [("mkdir", "-p", str(data)), ("chmod", "0777", str(data))]
    data.write_text("x")
    assert plan_directory(ctx).blockers
