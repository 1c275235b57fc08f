"""Children of sbops never inherit its secrets through the environment (issue 9).

The admin passwords (SBOPS_MYSQL_ADMIN_PASSWORD, SBOPS_MONGODB_ADMIN_PASSWORD) and the ECR token
(AWS_ECR_TOKEN) are read from sbops's environment; every program it ran (systemctl, helm, exportfs,
rabbitmqctl, a restart command) used to inherit them. The real runner runs the real `env` here.
"""

from __future__ import annotations

import pytest

from sbops.runner import SECRET_ENV, SubprocessRunner, child_env
from sbops.settings import SECRET_KEYS, env_name

SECRETS = {
    "SBOPS_MYSQL_ADMIN_PASSWORD": "mysql-admin-pw-1", "SBOPS_MONGODB_ADMIN_PASSWORD": "mongo-admin-pw-2",
    "AWS_ECR_TOKEN": "ecr-token-3", "MYSQL_PWD": "mysql-pwd-4", "AWS_SECRET_ACCESS_KEY": "aws-secret-5",
    "AWS_SESSION_TOKEN": "aws-session-6", "SOME_TOOL_PASSWORD": "other-pw-7", "GITHUB_TOKEN": "gh-8",
}


def test_every_secret_setting_has_its_variable_withheld():
    assert {env_name(key) for key in SECRET_KEYS} <= SECRET_ENV


def test_a_child_gets_the_environment_without_the_secrets(monkeypatch: pytest.MonkeyPatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KUBECONFIG", "/tmp/kubeconfig-kept")
    monkeypatch.setenv("RABBITMQ_NODENAME", "lab@localhost")
    result = SubprocessRunner().run(["env"])
    assert result.ok, result.stderr
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert [name for name in SECRETS if name in seen] == []
    assert [value for value in SECRETS.values() if value in result.stdout] == []
    assert seen["KUBECONFIG"] == "/tmp/kubeconfig-kept" and seen["RABBITMQ_NODENAME"] == "lab@localhost"
    assert "PATH" in seen and "HOME" in seen


def test_child_env_is_pure_over_a_given_mapping():
    given = {"PATH": "/bin", "LANG": "C.UTF-8", **SECRETS}
    assert child_env(given) == {"PATH": "/bin", "LANG": "C.UTF-8"}
    assert given["AWS_ECR_TOKEN"] == "ecr-token-3"  # the caller's mapping is left alone
