"""Settings precedence (defaults < file < env < flags) and errors that name the file and line."""

import pytest

from sbops.errors import UsageError
from sbops.secret import Secret
from sbops.settings import Settings


def test_defaults_come_from_the_architecture_document():
    s = Settings.load(env={})
    assert s["namespace"] == "sb-apps"
    assert (s["nodeport_http"], s["nodeport_https"]) == (31443, 31882)
    assert s["pod_network"] == "10.42.0.0/16"
    assert s["ecr.region"] == "ap-south-1" and s["nfs.path"] == "/data/stackbill"
    assert s.source("namespace") == "default"


def test_precedence_and_sources(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("namespace: from-file\nmysql:\n  port: 3307\ntimeout: 7\n")
    s = Settings.load(cfg, env={"SBOPS_MYSQL_PORT": "3308"}, flags={"timeout": 2.5})
    assert s["namespace"] == "from-file" and s.source("namespace") == f"{cfg}:1"
    assert s["mysql.port"] == 3308 and s.source("mysql.port") == "env SBOPS_MYSQL_PORT"
    assert s["timeout"] == 2.5 and s.source("timeout") == "flag --timeout"


def test_config_from_env_variable(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("release: other\n")
    assert Settings.load(env={"SBOPS_CONFIG": str(cfg)})["release"] == "other"


def test_secret_settings_are_masked():
    s = Settings.load(env={"SBOPS_MYSQL_ADMIN_PASSWORD": "hunter2x"})
    assert isinstance(s["mysql.admin_password"], Secret) and str(s["mysql.admin_password"]) == "****"


@pytest.mark.parametrize(
    "text, message",
    [
        ("namespace: a\nmysql:\n  prot: 1\n", ":3: unknown setting 'mysql.prot'"),
        ("timeout: soon\n", ":1: timeout must be a float"),
        ("mysql:\n  port: [1, 2]\n", ":2: mysql.port must be a"),
        ("a: [\n", ":2: invalid YAML"),
        ("- just\n- a list\n", ":1: config must be a mapping"),
    ],
)
def test_bad_config_names_file_and_line(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as err:
        Settings.load(cfg, env={})
    assert str(err.value).startswith(str(cfg)) and message in str(err.value), str(err.value)


def test_bad_env_value_names_the_variable():
    with pytest.raises(UsageError, match="env SBOPS_MYSQL_PORT: mysql.port must be an int"):
        Settings.load(env={"SBOPS_MYSQL_PORT": "x"})


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        Settings.load(tmp_path / "none.yaml", env={})
