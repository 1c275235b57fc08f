"""The exporter step's pure decisions: the unit it writes and what systemd must do about it."""

from __future__ import annotations

import pytest

from sbops.install.monitoring import UnitActions, render_unit, unit_actions
from sbops.probes.system import UnitState

SHIPPED = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/usr/local/bin/sbops exporter\nRestart=on-failure\n"


def test_render_points_execstart_at_this_sbops_and_config() -> None:
    text = render_unit(SHIPPED, ["/opt/sbops/bin/sbops"], "/etc/sbops/my config.yaml")
    assert "ExecStart=/opt/sbops/bin/sbops exporter --config '/etc/sbops/my config.yaml'\n" in text
    assert text.count("ExecStart=") == 1 and "Restart=on-failure" in text


def test_render_without_config_keeps_the_shipped_rest() -> None:
    text = render_unit(SHIPPED, ["/usr/bin/python3", "-m", "sbops"])
    assert text == SHIPPED.replace("ExecStart=/usr/local/bin/sbops exporter", "ExecStart=/usr/bin/python3 -m sbops exporter")


@pytest.mark.parametrize("current, active, enabled, expected", [
    (None, "unknown", "not-found", UnitActions(write=True, enable=True, restart=False)),       # fresh server
    ("old", "active", "enabled", UnitActions(write=True, enable=False, restart=True)),        # upgraded sbops
    ("new", "active", "enabled", UnitActions(write=False, enable=False, restart=False)),      # a re-run
    ("new", "inactive", "enabled", UnitActions(write=False, enable=True, restart=False)),     # stopped by hand
    ("new", "active", "disabled", UnitActions(write=False, enable=True, restart=False)),      # would not come back
    ("old", "failed", "enabled", UnitActions(write=True, enable=True, restart=False)),        # enable --now starts it
])
def test_unit_actions(current: str | None, active: str, enabled: str, expected: UnitActions) -> None:
    assert unit_actions(current, "new", UnitState(active, enabled)) == expected
    assert expected.none is (expected == UnitActions(False, False, False))
