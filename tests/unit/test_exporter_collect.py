"""The exporter's credentials source at run time: a broken file keeps the last good copy, whatever the error."""

from __future__ import annotations

from pathlib import Path

from sbops import credentials as creds_mod
from sbops.exporter.collect import CredentialsSource
from tests.lab.env import LabEnv


def test_a_credentials_file_broken_while_running_keeps_the_last_good_copy(tmp_path: Path, monkeypatch):
    env = LabEnv(tmp_path).write()
    errors: list[str] = []
    source = CredentialsSource(str(env.credentials_path), errors.append)
    good, path = source.current()
    assert good is not None and path == env.credentials_path

    env.credentials_path.write_bytes(b"\xff\xfe not text\n")  # a UsageError from the parser
    assert source.current()[0] is good and len(errors) == 1 and "not text" in errors[0]
    assert source.current()[0] is good and len(errors) == 1, "reported once per change"

    def crashing(_: Path):
        raise RecursionError("a bug of the parser")  # stands in for one not found yet

    monkeypatch.setattr(creds_mod, "load", crashing)
    env.credentials_path.write_text("MYSQL\n")
    assert source.current()[0] is good
    assert len(errors) == 2 and "unexpected RecursionError" in errors[1] and "\n" not in errors[1]
