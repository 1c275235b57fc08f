"""MongoDB fixes' plans without a server: a recording runner, a closed port, a config file in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbops.context import Context
from sbops.credentials import Credentials, Service
from sbops.runner import RecordingRunner
from sbops.secret import Secret
from sbops.settings import Settings
from sbops.probes import mongodb as m
from tests.lab.common import free_port

CONF = "/etc/mongod.conf"
GOOD = "net:\n  port: 27017\n  bindIp: 0.0.0.0\nsecurity:\n  authorization: enabled\n"
LOOPBACK_WITH_AUTH = "net:\n  port: 27017\n  bindIp: 127.0.0.1\nsecurity:\n  authorization: enabled\n"
NO_AUTH = "net:\n  port: 27017\n  bindIp: 0.0.0.0\n"


def make_ctx(files: dict[str, str], *, host: str = "127.0.0.1", password: str | None = "pw",
             **settings: object) -> tuple[Context, RecordingRunner]:
    flags = {"mongodb.config_file": CONF, "server_ip": "10.0.0.5", "timeout": 1.0, **settings}
    runner = RecordingRunner(files=dict(files))
    creds = Credentials(mongodb=Service(host=host, port=free_port(), password=Secret(password) if password else None))
    return Context(Settings.load(env={}, flags=flags), creds, Path("/tmp/creds"), runner), runner


def test_config_missing_file_is_a_blocker(tmp_path: Path) -> None:
    ctx, _ = make_ctx({}, **{"mongodb.config_file": str(tmp_path / "none.conf")})
    plan = m.plan_config(ctx)
    assert plan.blockers and "mongodb.config_file" in plan.blockers[0] and not plan.changes


def test_config_remote_server_is_a_blocker() -> None:
    ctx, _ = make_ctx({CONF: LOOPBACK_WITH_AUTH}, host="192.0.2.10")
    plan = m.plan_config(ctx)
    assert plan.blockers and "not on this host" in plan.blockers[0]


def test_config_invalid_yaml_is_a_blocker() -> None:
    ctx, _ = make_ctx({CONF: "net: [unclosed\n"})
    plan = m.plan_config(ctx)
    assert plan.blockers and "invalid YAML" in plan.blockers[0]


def test_config_nothing_to_do() -> None:
    ctx, _ = make_ctx({CONF: GOOD})
    plan = m.plan_config(ctx)
    assert plan.empty and not plan.blockers and plan.nothing_to_do


@pytest.mark.parametrize("restart", [False, True])
def test_config_bind_edit_and_restart_consent(restart: bool) -> None:
    ctx, runner = make_ctx({CONF: LOOPBACK_WITH_AUTH}, **{"mongodb.restart_command": "/usr/local/bin/restart-mongo now"})
    plan = m.plan_config(ctx, allow_restart=restart)
    assert not plan.blockers
    assert "net.bindIp: 0.0.0.0 (was '127.0.0.1')" in plan.changes[0].description
    if restart:
        assert len(plan.changes) == 2 and plan.changes[1].commands == ("/usr/local/bin/restart-mongo now",)
        assert not plan.notes
    else:
        assert len(plan.changes) == 1 and "restart pending" in plan.notes[0]
    plan.changes[0].apply()
    assert runner.files[CONF] == LOOPBACK_WITH_AUTH.replace("127.0.0.1", "0.0.0.0")
    assert runner.commands == []  # the write alone runs nothing


def test_config_default_restart_is_systemctl() -> None:
    ctx, _ = make_ctx({CONF: LOOPBACK_WITH_AUTH})
    plan = m.plan_config(ctx, allow_restart=True)
    assert plan.changes[-1].commands == ("systemctl restart mongod",)


def test_config_will_not_enable_authorization_without_a_working_login() -> None:
    ctx, runner = make_ctx({CONF: NO_AUTH})  # the server is down: the login cannot be proven
    plan = m.plan_config(ctx, allow_restart=True)
    assert plan.blockers and "mongodb-user" in plan.blockers[0] and not plan.changes
    assert runner.writes == []


def test_user_without_password_is_a_blocker() -> None:
    ctx, _ = make_ctx({}, password=None)
    plan = m.plan_user(ctx)
    assert plan.blockers and "Password" in plan.blockers[0]


def test_user_with_server_down_is_a_blocker() -> None:
    ctx, _ = make_ctx({})
    plan = m.plan_user(ctx)
    assert plan.blockers and "not reachable" in plan.blockers[0] and "refused" in plan.blockers[0]
