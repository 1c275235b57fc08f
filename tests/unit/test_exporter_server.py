"""The exporter server's pure parts: the budget of log lines clients can cause, the layers it serves."""

from __future__ import annotations

import pytest

from sbops.exporter.server import LogBudget, served_layers
from sbops.errors import UsageError
from sbops.registry import LAYERS
from sbops.settings_rules import problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("events, expected", [
    # (seconds to advance before the line) -> what take() answers: None = silent, n = log, n held back before
    ([0, 0, 0], [0, 0, 0]),
    ([0, 0, 0, 0, 0], [0, 0, 0, None, None]),
    ([0, 0, 0, 0, 0, 60], [0, 0, 0, None, None, 2]),
    ([0, 0, 0, 0, 59.9, 0.1, 0], [0, 0, 0, None, None, 2, 0]),
    ([0, 30, 30, 0, 0], [0, 0, 0, 0, 0]),
])
def test_log_budget(events, expected):
    clock = Clock()
    budget = LogBudget(lines=3, window=60.0, clock=clock)
    answers = []
    for advance in events:
        clock.now += advance
        answers.append(budget.take())
    assert answers == expected


@pytest.mark.parametrize("setting, served", [
    ("", LAYERS),
    ("host", ("host",)),
    ("netpath, nfs,host", ("host", "nfs", "netpath")),   # LAYERS' order, spaces allowed
])
def test_served_layers(setting, served):
    assert served_layers(setting) == served


@pytest.mark.parametrize("value, ok", [
    ("host,nfs,netpath", True), ("host", True), ("", True), ("host, nfs", True),
    ("host,host", False), ("host,", False), ("host;nfs", False), ("Host", False),
])
def test_the_layers_setting_is_checked_when_it_loads(value, ok):
    assert (problem("exporter.layers", value) == "") is ok


def test_a_name_that_is_not_a_layer_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--layers \(exporter.layers\): hosts is not a layer"):
        served_layers("hosts,nfs")
