"""RabbitMQ layer against a real private RabbitMQ 3.10 node (tests/lab/rabbitmq.py): break it as a user would,
check, fix. One node per module (about 6 s to start); each test starts from the seeded state (node.reset()).

Every check id appears here: "rabbitmq.reachable", "rabbitmq.auth", "rabbitmq.management",
"rabbitmq.permissions", "rabbitmq.guest", "rabbitmq.alarms".
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.lab.argv_watch import ArgvWatcher
from tests.lab.common import Blackhole, free_port
from tests.lab.env import LabEnv, status, fix_json
from tests.lab.rabbitmq import LAB_PASSWORD, RabbitMQ


ALL = ("rabbitmq.reachable", "rabbitmq.auth", "rabbitmq.management", "rabbitmq.permissions", "rabbitmq.guest",
       "rabbitmq.alarms")


def lab_env(root: Path, node: RabbitMQ, *, password: str = LAB_PASSWORD, port: int | None = None,
            timeout: float = 5) -> LabEnv:
    """A LabEnv aimed at the lab node; sbops's rabbitmqctl/rabbitmq-plugins are the node's wrappers."""
    env = LabEnv(root).service("rabbitmq", port=port or node.port, password=password,
                               management=f"http://127.0.0.1:{node.management_port}")
    env.set("timeout", timeout)
    env.set("rabbitmq.ctl_command", node.ctl_command)
    env.set("rabbitmq.plugins_command", node.plugins_command)
    return env


def assert_dry_run_changes_nothing(env: LabEnv, name: str, check_id: str, expected: tuple[str, str]) -> dict:
    code, out = fix_json(env, name, "--dry-run")
    assert code == 0 and out["outcome"] == "dry-run"
    assert out["plan"]["changes"], out["plan"]
    assert status(env.check(check_id)) == expected
    return out


@pytest.fixture
def node(rabbitmq_healthy: RabbitMQ) -> RabbitMQ:
    return rabbitmq_healthy


# -- healthy -------------------------------------------------------------------------------------------
def test_seeded_node_passes_every_check_and_fixes_have_nothing_to_do(node, tmp_path):
    env = lab_env(tmp_path, node)
    results = env.doctor("rabbitmq.*")
    assert {cid: status(r) for cid, r in results.items()} == {cid: ("ok", "none") for cid in ALL}
    assert {cid: r["code"] for cid, r in results.items()} == {
        "rabbitmq.reachable": "SB4000", "rabbitmq.auth": "SB4010", "rabbitmq.management": "SB4020",
        "rabbitmq.permissions": "SB4030", "rabbitmq.guest": "SB4040", "rabbitmq.alarms": "SB4050"}
    assert results["rabbitmq.reachable"]["details"]["product"] == "RabbitMQ"
    for name in ("rabbitmq-user", "rabbitmq-management", "rabbitmq-guest"):
        code, out = fix_json(env, name, "--dry-run")
        assert code == 0 and not out["plan"]["changes"] and out["plan"]["nothing_to_do"], (name, out["plan"])


# -- rabbitmq.reachable --------------------------------------------------------------------------------
def test_nothing_listening_is_refused(node, tmp_path):
    env = lab_env(tmp_path, node, port=free_port())
    result = env.check("rabbitmq.reachable")
    assert status(result) == ("fail", "refused") and result["code"] == "SB4005"


def test_blackholed_port_times_out(node, tmp_path):
    hole = Blackhole()
    try:
        env = lab_env(tmp_path, node, port=hole.port, timeout=2)
        began = time.monotonic()
        result = env.check("rabbitmq.reachable")
        assert status(result) == ("fail", "timeout")
        assert time.monotonic() - began < 15
    finally:
        hole.close()


class Talker:
    """A loopback server that greets every client with a non-AMQP banner (like an SSH or SMTP server)."""

    def __init__(self, banner: bytes = b"SSH-2.0-OpenSSH_9.2\r\n") -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.banner = banner
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.banner)

    def close(self) -> None:
        self.listener.close()


def test_a_port_that_is_not_amqp_is_misconfigured(node, tmp_path):
    talker = Talker()
    try:
        env = lab_env(tmp_path, node, port=talker.port)
        assert status(env.check("rabbitmq.reachable")) == ("fail", "misconfigured")
    finally:
        talker.close()


def test_a_silent_port_times_out(node, tmp_path):
    env = lab_env(tmp_path, node, port=node.management_port, timeout=2)  # HTTP waits for a request line
    assert status(env.check("rabbitmq.reachable")) == ("fail", "timeout")


# -- rabbitmq.auth + rabbitmq-user ---------------------------------------------------------------------
def test_wrong_password_in_credentials_file_then_fix_sets_it(node, tmp_path):
    new_password = "NewRabbitPass987"
    env = lab_env(tmp_path, node, password=new_password)
    results = env.doctor("rabbitmq.*")
    assert status(results["rabbitmq.auth"]) == ("fail", "auth_failed")
    assert results["rabbitmq.auth"]["fix"] == "rabbitmq-user"
    assert status(results["rabbitmq.management"]) == ("fail", "auth_failed")
    assert results["rabbitmq.management"]["fix"] == "rabbitmq-user"
    out = assert_dry_run_changes_nothing(env, "rabbitmq-user", "rabbitmq.auth", ("fail", "auth_failed"))
    assert [c["description"] for c in out["plan"]["changes"]] == [
        "set stackbill's password to the credentials file's (it does not match)"]
    assert new_password not in json.dumps(out)
    with ArgvWatcher([new_password]) as watcher:
        code, out = fix_json(env, "rabbitmq-user")
    assert watcher.samples > 0 and not watcher.hits, "the password appeared on a command line"
    assert code == 0 and out["outcome"] == "fixed", out
    assert new_password not in json.dumps(out)
    assert status(env.check("rabbitmq.auth")) == ("ok", "none")
    assert status(lab_env(tmp_path / "old", node).check("rabbitmq.auth")) == ("fail", "auth_failed")


def test_deleted_user_is_recreated(node, tmp_path):
    node.ctl("delete_user", "stackbill")
    env = lab_env(tmp_path, node)
    assert status(env.check("rabbitmq.auth")) == ("fail", "auth_failed")
    assert_dry_run_changes_nothing(env, "rabbitmq-user", "rabbitmq.auth", ("fail", "auth_failed"))
    code, out = fix_json(env, "rabbitmq-user")
    assert code == 0, out
    assert [c["description"].split(" ")[0] for c in out["plan"]["changes"]] == ["create", "set", "grant"]
    results = env.doctor("rabbitmq.*")
    assert {cid: status(r) for cid, r in results.items()} == {cid: ("ok", "none") for cid in ALL}


def test_no_permission_on_vhost_is_access_denied(node, tmp_path):
    node.ctl("clear_permissions", "-p", "/", "stackbill")
    env = lab_env(tmp_path, node)
    assert status(env.check("rabbitmq.auth")) == ("fail", "access_denied")
    assert status(env.check("rabbitmq.permissions")) == ("fail", "misconfigured")
    code, out = fix_json(env, "rabbitmq-user")
    assert code == 0, out
    assert status(env.check("rabbitmq.auth")) == ("ok", "none")


# -- rabbitmq.permissions ------------------------------------------------------------------------------
def test_narrowed_permissions_are_misconfigured_and_fixed(node, tmp_path):
    node.ctl("set_permissions", "-p", "/", "stackbill", "", ".*", "^amq\\.")
    env = lab_env(tmp_path, node)
    result = env.check("rabbitmq.permissions")
    assert status(result) == ("fail", "misconfigured")
    assert result["details"]["permissions"] == {"configure": "", "write": ".*", "read": "^amq\\."}
    assert status(env.check("rabbitmq.auth")) == ("ok", "none")
    assert_dry_run_changes_nothing(env, "rabbitmq-user", "rabbitmq.permissions", ("fail", "misconfigured"))
    code, out = fix_json(env, "rabbitmq-user")
    assert code == 0, out
    assert [c["description"].split(" ")[0] for c in out["plan"]["changes"]] == ["grant"]
    assert status(env.check("rabbitmq.permissions")) == ("ok", "none")


def test_tag_changed_to_management_is_misconfigured_and_fixed(node, tmp_path):
    node.ctl("set_user_tags", "stackbill", "management")
    env = lab_env(tmp_path, node)
    result = env.check("rabbitmq.permissions")
    assert status(result) == ("fail", "misconfigured")
    assert result["details"]["tags"] == ["management"]
    code, out = fix_json(env, "rabbitmq-user")
    assert code == 0, out
    assert node.users()["stackbill"] == ["administrator", "management"]
    assert status(env.check("rabbitmq.permissions")) == ("ok", "none")


def test_tags_removed_locks_stackbill_out_of_the_api_and_fix_restores(node, tmp_path):
    node.ctl("set_user_tags", "stackbill")
    env = lab_env(tmp_path, node)
    results = env.doctor("rabbitmq.*")
    assert status(results["rabbitmq.management"]) == ("fail", "access_denied")
    assert results["rabbitmq.management"]["fix"] == "rabbitmq-user"
    assert status(results["rabbitmq.permissions"]) == ("skip", "blocked")
    assert status(env.check("rabbitmq.permissions")) == ("fail", "misconfigured")
    code, out = fix_json(env, "rabbitmq-user")  # the API refuses stackbill: rabbitmqctl does it
    assert code == 0, out
    assert "using rabbitmqctl" in out["plan"]["notes"]
    assert status(env.check("rabbitmq.permissions")) == ("ok", "none")


def wrong_cookie_ctl(tmp_path: Path, node: RabbitMQ) -> str:
    """rabbitmqctl run with another HOME, hence another Erlang cookie: like running it as a non-root user."""
    home = tmp_path / "other-home"
    home.mkdir()
    script = tmp_path / "rabbitmqctl-other-user"
    script.write_text(f"#!/bin/sh\nexport HOME='{home}'\nexec /usr/lib/rabbitmq/bin/rabbitmqctl -n {node.node} \"$@\"\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("ctl, why", [("missing", "not installed"), ("wrong-cookie", "Erlang cookie")])
def test_user_fix_is_blocked_when_rabbitmqctl_cannot_work_and_the_api_refuses(node, tmp_path, ctl, why):
    node.ctl("delete_user", "stackbill")
    command = str(tmp_path / "no-such-rabbitmqctl") if ctl == "missing" else wrong_cookie_ctl(tmp_path, node)
    env = lab_env(tmp_path, node).set("rabbitmq.ctl_command", command)
    code, out = fix_json(env, "rabbitmq-user")
    assert code == 3 and out["outcome"] == "blocked"
    assert why in out["plan"]["blockers"][0]
    assert "stackbill" not in node.users()


# -- rabbitmq.management + rabbitmq-management -------------------------------------------------------
def test_disabled_management_plugin_is_refused_user_fix_still_works_and_fix_enables_it(node, tmp_path):
    node.plugins("disable", "rabbitmq_management")
    node.ctl("set_permissions", "-p", "/", "stackbill", "", "", "")
    env = lab_env(tmp_path, node)
    results = env.doctor("rabbitmq.*")
    assert status(results["rabbitmq.management"]) == ("fail", "refused")
    assert results["rabbitmq.management"]["fix"] == "rabbitmq-management"
    for cid in ("rabbitmq.permissions", "rabbitmq.guest", "rabbitmq.alarms"):
        assert status(results[cid]) == ("skip", "blocked")
    assert status(results["rabbitmq.auth"]) == ("ok", "none")  # '' '' '' still opens the vhost

    # rabbitmq-user works without the plugin (rabbitmqctl), but cannot be confirmed until the API is back
    code, out = fix_json(env, "rabbitmq-user")
    assert "using rabbitmqctl" in out["plan"]["notes"]
    assert [c["description"].split(" ")[0] for c in out["plan"]["changes"]] == ["grant"]
    perms = json.loads(node.ctl("-q", "list_permissions", "-p", "/", "--formatter", "json").stdout)
    assert {"user": "stackbill", "configure": ".*", "write": ".*", "read": ".*"} in perms
    assert code == 3 and out["outcome"] == "not fixed"

    assert_dry_run_changes_nothing(env, "rabbitmq-management", "rabbitmq.management", ("fail", "refused"))
    code, out = fix_json(env, "rabbitmq-management")
    assert code == 0 and out["outcome"] == "fixed", out
    results = env.doctor("rabbitmq.*")
    assert {cid: status(r) for cid, r in results.items()} == {cid: ("ok", "none") for cid in ALL}


# -- rabbitmq.guest + rabbitmq-guest ------------------------------------------------------------------
def test_guest_present_warns_and_fix_deletes_it(node, tmp_path):
    node.add_guest()
    env = lab_env(tmp_path, node)
    assert status(env.check("rabbitmq.guest")) == ("warn", "insecure")
    assert_dry_run_changes_nothing(env, "rabbitmq-guest", "rabbitmq.guest", ("warn", "insecure"))
    code, out = fix_json(env, "rabbitmq-guest")
    assert code == 0 and out["outcome"] == "fixed", out
    assert "guest" not in node.users()
    assert status(env.check("rabbitmq.guest")) == ("ok", "none")


def test_guest_is_kept_while_stackbill_is_not_a_working_administrator(node, tmp_path):
    node.add_guest()
    node.ctl("set_user_tags", "stackbill", "management")
    env = lab_env(tmp_path, node)
    code, out = fix_json(env, "rabbitmq-guest")
    assert code == 3 and out["outcome"] == "blocked"
    assert "rabbitmq-user" in out["plan"]["blockers"][0]
    assert "guest" in node.users()
    env.fix("rabbitmq-user")
    code, out = fix_json(env, "rabbitmq-guest")
    assert code == 0, out
    assert "guest" not in node.users()


# -- rabbitmq.alarms -----------------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.3)


def test_memory_alarm_is_degraded(node, tmp_path):
    env = lab_env(tmp_path, node)
    node.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        wait_for(lambda: any(a["resource"] == "memory" for a in node.alarms()))
        result = env.check("rabbitmq.alarms")
        assert status(result) == ("fail", "degraded")
        assert "memory alarm" in result["details"]["alarms"][0]
        assert result["fix"] is None
    finally:
        node.ctl("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: not node.alarms())
    wait_for(lambda: status(env.check("rabbitmq.alarms")) == ("ok", "none"))


def test_disk_alarm_is_degraded(node, tmp_path):
    env = lab_env(tmp_path, node)
    node.ctl("set_disk_free_limit", "1000000GB")
    try:
        wait_for(lambda: any(a["resource"].startswith("disk") for a in node.alarms()))  # "disk space"
        result = env.check("rabbitmq.alarms")
        assert status(result) == ("fail", "degraded")
        assert "disk alarm" in result["details"]["alarms"][0]
    finally:
        node.ctl("set_disk_free_limit", "50MB")
    wait_for(lambda: not node.alarms())


# -- node stopped (last: it stops the module's node; node.reset() would start it again) ------------------
def test_stopped_node_is_refused_and_fixes_are_blocked(node, tmp_path):
    node.stop()
    env = lab_env(tmp_path, node)
    results = env.doctor("rabbitmq.*")
    assert status(results["rabbitmq.reachable"]) == ("fail", "refused")
    assert all(status(results[cid]) == ("skip", "blocked") for cid in ALL[1:])
    for name in ("rabbitmq-user", "rabbitmq-management"):
        code, out = fix_json(env, name)
        assert code == 3 and out["outcome"] == "blocked", (name, out)
        assert "not running" in " ".join(out["plan"]["blockers"]), (name, out["plan"])


# -- which node rabbitmqctl reaches (two nodes at once) ---------------------------------------------------------
def test_rabbitmqctl_of_another_node_is_refused(node, tmp_path, tmp_path_factory):
    """rabbitmqctl (a wrapper, or RABBITMQ_NODENAME) manages a second node on this machine: the user fix refuses
    it and changes neither node; with the credentials file's node it repairs that one."""
    other = RabbitMQ(tmp_path_factory.mktemp("rabbitmq-other")).start()
    try:
        node.ctl("delete_user", "stackbill")  # the API cannot help any more: rabbitmqctl is the only way
        env = lab_env(tmp_path, node)
        env.set("rabbitmq.ctl_command", other.ctl_command)
        code, out = fix_json(env, "rabbitmq-user")
        assert code == 3 and out["outcome"] == "blocked" and out["plan"]["changes"] == []
        assert "refusing rabbitmqctl" in out["plan"]["blockers"][0] and other.name in out["plan"]["blockers"][0]
        assert "stackbill" not in other.users() and "stackbill" not in node.users()

        env.set("rabbitmq.ctl_command", node.ctl_command)
        code, out = fix_json(env, "rabbitmq-user")
        assert code == 0 and out["outcome"] == "fixed", out
        assert "stackbill" in node.users() and "stackbill" not in other.users()
    finally:
        other.destroy()
