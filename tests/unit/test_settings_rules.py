"""The value rules of settings (sbops/settings_rules.py), from tables: what each kind of setting accepts and
refuses, and that Settings.load applies them with one line naming the source and the key."""

import pytest

from sbops.errors import UsageError
from sbops.settings import DEFAULTS, Settings
from sbops.settings_rules import RULES, problem

ACCEPTED = [
    ("pod_network", "10.42.0.0/16"), ("pod_network", "fd00:42::/64"), ("pod_network", "192.168.1.0/24"),
    ("server_ip", ""), ("server_ip", "192.0.2.10"), ("server_ip", "::1"), ("domain", ""),
    ("domain", "portal.example.com"), ("domain", "Portal.Example.COM."), ("namespace", "sb-apps"),
    ("release", "stackbill"), ("tls.secret", "istio-ingressgateway-certs"), ("k8s.storage_class", "nfs-client"),
    ("ecr.registry", "730335576030.dkr.ecr.ap-south-1.amazonaws.com"), ("ecr.registry", "127.0.0.1:5000"),
    ("ecr.region", "ap-south-1"), ("ecr.region", "us-gov-west-1"), ("nfs.path", "/data/stackbill"),
    ("mysql.config_dir", ""), ("mysql.config_dir", "/etc/mysql/conf.d"), ("mysql.service", ""),
    ("mysql.service", "mariadb"), ("mongodb.service", "mongod@instance1.service"),
    ("mysql.restart_command", "/usr/bin/systemctl restart 'mariadb'"), ("exporter.listen", "127.0.0.1:29100"),
    ("exporter.listen", ":29100"), ("exporter.listen", "[::1]:29100"), ("exporter.listen", "localhost:9"),
    ("runbook_url", "https://example.com/{id}.md"), ("runbook_url", "https://example.com/{{x}}/{id}"),
    ("runbook_url", "https://example.com/all.md"), ("app.url", ""), ("app.url", "https://10.0.0.5:31882"),
    ("timeout", 0.5), ("timeout", 3600.0), ("deadline", 30.0), ("mysql.port", 1), ("mysql.port", 65535),
    ("nodeport_https", 31882), ("pods.restart_threshold", 0),
    ("kubeconfig", "relative/kube config"), ("mysql.admin_user", "root"), ("install.chart", "./chart.tgz"),
]
REFUSED = [
    ("pod_network", "10.42.0.0/16(rw,no_root_squash) *"), ("pod_network", "10.42.0.1/16"), ("pod_network", "10.42.0.0"),
    ("pod_network", "10.42.0.0/33"), ("pod_network", "*"), ("pod_network", "10.42.0.0/16 *(rw)"),
    ("server_ip", "10.0.0.5; rm -rf /"), ("server_ip", "host.example.com"), ("domain", "192.0.2.1"),
    ("domain", "https://portal.example.com"), ("domain", "portal"), ("domain", "a_b.example.com"),
    ("namespace", "SB-Apps"), ("namespace", "sb_apps"), ("namespace", "-x"), ("namespace", "a" * 64),
    ("release", "a" * 54), ("tls.secret", "certs/../x"), ("istio.ingress_service", "a.b"),
    ("ecr.registry", "evil registry"), ("ecr.registry", "host:99999"), ("ecr.region", "Mumbai"),
    ("nfs.path", "data/stackbill"), ("nfs.path", "/data/stack bill"), ("nfs.path", "/data/x\n/ *(rw)"),
    ("nfs.exports_file", "exports"), ("journal", "journal.log"), ("install.unit_dir", "/etc/systemd/system\t"),
    ("mysql.service", "maria db"), ("mysql.service", "-mariadb"), ("mongodb.service", ""),
    ("mysql.restart_command", "systemctl restart 'mariadb"), ("rabbitmq.ctl_command", ""),
    ("rabbitmq.ctl_command", "rabbitmqctl\nreboot"), ("exporter.listen", "29100"), ("exporter.listen", "::1:29100"),
    ("exporter.listen", "127.0.0.1:0"), ("exporter.listen", "127.0.0.1:http"), ("runbook_url", "https://x/{id}/{"),
    ("runbook_url", "https://x/{0}"), ("runbook_url", "https://x/{idx}"), ("runbook_url", "runbooks/{id}.md"),
    ("runbook_url", "https://x/{id}\nhttps://y"), ("app.url", "portal.example.com"), ("app.url", "https://a b"),
    ("timeout", 0.0), ("timeout", -1.0), ("timeout", float("nan")), ("timeout", float("inf")), ("timeout", 3601.0),
    ("deadline", float("inf")), ("exporter.timeout", float("nan")), ("mysql.port", 0), ("mysql.port", 65536),
    ("nfs.port", -1), ("pods.restart_threshold", -1),
    ("mysql.admin_user", "root\x00"), ("kubeconfig", "/etc/k3s.yaml\n"), ("mysql.admin_password", "pw\ncontinued"),
    ("install.chart", "oci://x y"),
]


@pytest.mark.parametrize("key, value", ACCEPTED)
def test_accepted(key, value):
    assert problem(key, value) == ""


@pytest.mark.parametrize("key, value", REFUSED)
def test_refused(key, value):
    assert problem(key, value).startswith("must "), problem(key, value)


def test_every_rule_names_a_known_setting():
    assert set(RULES) <= set(DEFAULTS)


def test_every_default_passes_its_own_rule():
    for key, (default, _) in DEFAULTS.items():
        assert problem(key, default) == "", (key, default)


def test_a_setting_without_a_rule_gets_the_rule_of_its_type():
    assert problem("something.port", 0).startswith("must be a port")
    assert problem("something.count", -5).startswith("must be a whole number")
    assert problem("something.seconds", float("nan")).startswith("must be a finite number")
    assert problem("something.name", "a\x1bb").startswith("must be one line")


@pytest.mark.parametrize("text, message", [
    ("pod_network: '10.42.0.0/16(rw,no_root_squash) *'\n", ":1: pod_network must be an IP network"),
    ("nfs:\n  path: data\n", ":2: nfs.path must be an absolute path"),
    ("mysql:\n  port: 70000\n", ":2: mysql.port must be a port number from 1 to 65535, got 70000"),
    ("namespace: SB\n", ":1: namespace must be a DNS label"),
])
def test_load_names_file_line_and_key(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as err:
        Settings.load(cfg, env={})
    assert str(err.value).startswith(f"{cfg}{message}"), str(err.value)


def test_a_secret_that_breaks_a_rule_is_not_shown():
    with pytest.raises(UsageError) as err:
        Settings.load(env={"SBOPS_MYSQL_ADMIN_PASSWORD": "Hunter2\nsecret"})
    assert "Hunter2" not in str(err.value) and "value not shown" in str(err.value)
