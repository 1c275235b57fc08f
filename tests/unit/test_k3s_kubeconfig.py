"""k8s.kubeconfig-mode's pure parts: K3s's mode settings, the judgement, the config.yaml edit (tables)."""

from __future__ import annotations

import pytest
import yaml

from sbops.install import infra
from sbops.probes import k3s

UPSTREAM_UNIT = ("[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--write-kubeconfig-mode' '644' "
                 "'--disable' 'traefik' '--disable=servicelb'\n")


@pytest.mark.parametrize("text, mode", [
    ("644", 0o644), ("0644", 0o644), ("600", 0o600), ("'0600'", 0o600), ("0640", 0o640), ("0o644", None),
    ("rw-r--r--", None), ("", None), (None, None), ("8", None), ("12345", None),
])
def test_parse_mode(text, mode) -> None:
    assert k3s.parse_mode(text) == mode


@pytest.mark.parametrize("text, wide", [
    ("600", False), ("0600", False), ("0400", False), ("0640", True), ("644", True), ("0602", True), ("junk", True),
])
def test_too_open(text, wide) -> None:
    assert k3s.too_open(text) is wide


@pytest.mark.parametrize("text, value", [
    (None, None), ("", None), ("disable: traefik\n", None),
    ("write-kubeconfig-mode: 644\n", "644"),
    ("write-kubeconfig-mode: 0644\n", "0644"),  # the text as K3s reads it, not YAML 1.1's octal 420
    ('write-kubeconfig-mode: "0600"\n', "0600"),
    ("# comment\nwrite-kubeconfig-mode: '0640'\ndisable: [traefik]\n", "0640"),
])
def test_config_mode(text, value) -> None:
    assert k3s.config_mode(text) == value


@pytest.mark.parametrize("text", ["disable: [\n", "- a\n- b\n", "write-kubeconfig-mode: [644]\n"])
def test_config_mode_refuses_what_k3s_cannot_read(text) -> None:
    with pytest.raises(ValueError, match="config.yaml"):
        k3s.config_mode(text)


def test_sources_in_k3s_order() -> None:
    found = k3s.sources("write-kubeconfig-mode: '0600'\n", "/c/config.yaml",
                        [("/c/config.yaml.d/10.yaml", "write-kubeconfig-mode: 640\n")],
                        "K3S_TOKEN=x\nK3S_KUBECONFIG_MODE='644'\n", "/u/k3s.service.env", UPSTREAM_UNIT, "/u/k3s.service")
    assert [(s["kind"], s["value"]) for s in found] == [("config", "0600"), ("dropin", "640"), ("env", "644"),
                                                         ("unit", "644")]


def facts(**over):
    base = {"path": "/etc/rancher/k3s/k3s.yaml", "exists": True, "mode": 0o600, "uid": 0, "gid": 0, "owner": "root",
            "group": "root", "regular": True, "symlink": False, "sources": []}
    return {**base, **over}


CONFIG_644 = {"where": "/etc/rancher/k3s/config.yaml", "kind": "config", "value": "644"}
CONFIG_600 = {"where": "/etc/rancher/k3s/config.yaml", "kind": "config", "value": "0600"}
UNIT_644 = {"where": "/etc/systemd/system/k3s.service (ExecStart --write-kubeconfig-mode)", "kind": "unit",
            "value": "644"}


@pytest.mark.parametrize("given, code, status, reason", [
    (facts(), "SB6050", "ok", "none"),
    (facts(sources=[CONFIG_600]), "SB6050", "ok", "none"),
    (facts(mode=0o400), "SB6050", "ok", "none"),
    (facts(mode=0o644, sources=[UNIT_644]), "SB6051", "fail", "insecure"),
    (facts(mode=0o640), "SB6051", "fail", "insecure"),
    (facts(mode=0o604), "SB6051", "fail", "insecure"),
    (facts(uid=1000, owner="alice"), "SB6052", "fail", "insecure"),
    (facts(sources=[CONFIG_644]), "SB6053", "fail", "misconfigured"),
    (facts(sources=[CONFIG_600, UNIT_644]), "SB6053", "fail", "misconfigured"),
    (facts(exists=False), "SB6054", "skip", "not_applicable"),
    (facts(exists=False, error="Permission denied"), "SB6055", "skip", "no_access"),
    (facts(config_error="/etc/rancher/k3s/config.yaml: invalid YAML: x"), "SB6056", "fail", "misconfigured"),
])
def test_judge_kubeconfig_mode(given, code, status, reason) -> None:
    result = k3s.judge_kubeconfig_mode(given)
    assert (result.code, result.status.value, result.reason.value) == (code, status, reason)


def test_judge_names_the_setting_that_would_widen_it() -> None:
    result = k3s.judge_kubeconfig_mode(facts(sources=[CONFIG_600, UNIT_644]))
    assert result.args["where"] == UNIT_644["where"] and result.args["value"] == "644"


@pytest.mark.parametrize("old, new", [
    (None, 'write-kubeconfig-mode: "0600"\n'),
    ("", 'write-kubeconfig-mode: "0600"\n'),
    ("write-kubeconfig-mode: 644\ndisable:\n- traefik\n",
     'write-kubeconfig-mode: "0600"\ndisable:\n- traefik\n'),
    ("# managed by hand\ntoken: abc\nwrite-kubeconfig-mode: '0644'  # for the dashboard\n",
     '# managed by hand\ntoken: abc\nwrite-kubeconfig-mode: "0600"\n'),
    ("node-name: n1", 'node-name: n1\nwrite-kubeconfig-mode: "0600"\n'),
])
def test_with_kubeconfig_mode_edits_one_line(old, new) -> None:
    assert k3s.with_kubeconfig_mode(old) == new
    assert k3s.config_mode(new) == "0600"


@pytest.mark.parametrize("old", [
    "{write-kubeconfig-mode: 644}\n",
    "write-kubeconfig-mode: 644\nwrite-kubeconfig-mode: 640\n",
    "write-kubeconfig-mode:\n  644\n",
    "- not a mapping\n",
])
def test_with_kubeconfig_mode_refuses_what_it_cannot_edit_safely(old) -> None:
    with pytest.raises(ValueError):
        k3s.with_kubeconfig_mode(old)


@pytest.mark.parametrize("existing, unit, wanted", [
    ("write-kubeconfig-mode: 644\ndisable:\n- traefik\n- servicelb\n", None,
     {"write-kubeconfig-mode": "0600", "disable": ["traefik", "servicelb"]}),
    ("write-kubeconfig-mode: '0600'\ndisable:\n- traefik\n- servicelb\n", None, None),
    ("write-kubeconfig-mode: 0644\n", UPSTREAM_UNIT, {"write-kubeconfig-mode": "0600"}),
])
def test_the_installer_writes_600(existing, unit, wanted) -> None:
    text, why = infra.k3s_config(existing, unit)
    assert (yaml.safe_load(text) if text else None) == wanted
    assert bool(why) == (wanted is None)
