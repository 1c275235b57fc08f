"""Fault injection: the settings YAML parser, environment and flags, fuzzed and with each known defect as a
regression. Any exception other than UsageError is a failure; a UsageError is one line and never shows a secret.

Round counts are fixed (ROUNDS) and the mutator is seeded, so a run is reproducible: a failure names its round.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sbops.errors import UsageError
from sbops.settings import DEFAULTS, Settings, env_name
from tests.faults.yaml_mutator import TOKENS, Mutator

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3000
ENV_ROUNDS = 1500
SEED = 20261130
SECRET = "Zq8SecretPw17"

CORPUS = [
    f"""# a full config
namespace: sb-apps
release: stackbill
domain: portal.example.com
server_ip: 10.0.0.5
pod_network: 10.42.0.0/16
nodeport_http: 31443
timeout: 5
deadline: 30.0
runbook_url: https://example.com/runbooks/{{id}}.md
mysql:
  port: 3306
  admin_user: root
  admin_password: {SECRET}
  admin_socket: /run/mysqld/mysqld.sock
mongodb:
  admin_password: "{SECRET}"
nfs:
  path: /data/stackbill
  port: 2049
exporter:
  listen: 127.0.0.1:29100
  timeout: 10
app:
  verify_tls: false
install:
  mysql_flavour: auto
""",
    f"mysql.admin_password: {SECRET}\ntimeout: 2.5\ntls: {{warn_days: 14, secret: istio-ingressgateway-certs}}\n",
    "ecr:\n  region: ap-south-1\n  registry: 730335576030.dkr.ecr.ap-south-1.amazonaws.com\n  warn_hours: 2\n",
]


def load_text(tmp_path: Path, data: bytes) -> Settings | None:
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(data)
    return Settings.load(cfg, env={})


def assert_usage_error_is_clean(exc: UsageError) -> None:
    text = str(exc)
    assert "\n" not in text and "\r" not in text, f"more than one line: {text!r}"
    assert SECRET not in text or "admin_password" not in text, f"secret shown: {text!r}"
    assert "Traceback" not in text


def test_fuzz_config_file_text(tmp_path, capsys):
    """ROUNDS textual mutations of the corpus: load or one-line UsageError, nothing else."""
    mutator = Mutator(SEED)
    survived = usage_errors = 0
    for round_no in range(ROUNDS):
        data = mutator.text(CORPUS[round_no % len(CORPUS)])
        try:
            settings = load_text(tmp_path, data)
            for key in DEFAULTS:  # every loaded value is usable as its type
                value = settings[key]
                if isinstance(value, float):
                    assert math.isfinite(value), (round_no, key, value)
        except UsageError as exc:
            usage_errors += 1
            assert_usage_error_is_clean(exc)
        except Exception as exc:  # noqa: BLE001 - the property under test
            pytest.fail(f"round {round_no} (seed {SEED}): {type(exc).__name__}: {exc}\ninput: {data!r}")
        survived += 1
    with capsys.disabled():
        print(f"\nsettings text fuzzer: {survived}/{ROUNDS} rounds survived ({usage_errors} usage errors)")
    assert survived == ROUNDS


def test_fuzz_config_file_structure(tmp_path, capsys):
    """ROUNDS structural mutations (values of other shapes, keys dropped or renamed) dumped as YAML."""
    import yaml

    mutator = Mutator(SEED + 1)
    docs = [yaml.safe_load(text) for text in CORPUS]
    survived = 0
    for round_no in range(ROUNDS):
        data = mutator.dump(mutator.data(docs[round_no % len(docs)]))
        try:
            load_text(tmp_path, data)
        except UsageError as exc:
            assert_usage_error_is_clean(exc)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"round {round_no} (seed {SEED + 1}): {type(exc).__name__}: {exc}\ninput: {data!r}")
        survived += 1
    with capsys.disabled():
        print(f"\nsettings structure fuzzer: {survived}/{ROUNDS} rounds survived")


def test_fuzz_environment_and_flags(capsys):
    """Random strings (tokens, special floats, surrogates from a non-UTF-8 environment) in SBOPS_* variables
    and as flags: a value or a UsageError."""
    import random

    rng = random.Random(SEED + 2)
    keys = sorted(DEFAULTS)
    values = TOKENS + ["nan", "NaN", "inf", "-inf", "1e309", "0", "-1", "3.5", "65536", "\udcff", "\udcff\udcfe",
                       "1" * 5000, "true", "2", "10.42.0.0/16", "/abs/path", "rel path", "a\nb", SECRET]
    survived = 0
    for round_no in range(ENV_ROUNDS):
        env = {env_name(rng.choice(keys)): rng.choice(values) for _ in range(rng.randint(1, 3))}
        flags = {rng.choice(keys): rng.choice(values + [float("nan"), float("inf"), -0.0, 1e300, None])}
        for kwargs in ({"env": env}, {"env": {}, "flags": flags}):
            try:
                Settings.load(**kwargs)
            except UsageError as exc:
                assert_usage_error_is_clean(exc)
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"round {round_no} (seed {SEED + 2}): {type(exc).__name__}: {exc}\n{kwargs!r}")
        survived += 1
    with capsys.disabled():
        print(f"\nsettings env/flag fuzzer: {survived}/{ENV_ROUNDS} rounds survived")


# -- each defect of issue 9, as a regression ---------------------------------------------------------------
def test_an_empty_value_is_the_empty_string(tmp_path):
    settings = load_text(tmp_path, b"mysql:\n  admin_password:\n  config_dir: ~\n")
    assert settings["mysql.admin_password"].reveal() == "" and settings["mysql.config_dir"] == ""


@pytest.mark.parametrize("value", ["!!binary WnE4U2VjcmV0UHcxNw==", f"!!int {SECRET}", f"!custom {SECRET}",
                                   f"!!set {{{SECRET}}}", f"[{SECRET}]", f"{{a: {SECRET}}}"])
def test_a_tagged_or_structured_secret_is_refused_without_showing_it(tmp_path, value):
    with pytest.raises(UsageError) as err:
        load_text(tmp_path, f"mysql:\n  admin_password: {value}\n".encode())
    text = str(err.value)
    assert ":2: mysql.admin_password" in text and SECRET not in text and "WnE4" not in text, text


def test_a_secret_is_taken_as_written(tmp_path):
    """YAML 1.1 would read 0123 as 83 and yes as True: a password is the text as written."""
    settings = load_text(tmp_path, b"mysql:\n  admin_password: 0123\nmongodb:\n  admin_password: yes\n")
    assert settings["mysql.admin_password"].reveal() == "0123"
    assert settings["mongodb.admin_password"].reveal() == "yes"


@pytest.mark.parametrize("data, where", [
    (b"namespace: sb-apps\nrelease: st\xffckbill\n", ":2: not UTF-8"),
    (b"\xfe\xff\x00n\x00a", ":1: not UTF-8"),
])
def test_non_utf8_config(tmp_path, data, where):
    with pytest.raises(UsageError, match=where):
        load_text(tmp_path, data)


@pytest.mark.parametrize("text", [
    "namespace: &a [*a]\n",
    "mysql: &m {port: *m}\n",
    "mysql: &m\n  port: 3306\n  admin_user: *m\n",
    "namespace: " + "[" * 5000 + "]" * 5000 + "\n",
    "mysql: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
])
def test_recursive_aliases_and_deep_nesting(tmp_path, text):
    with pytest.raises(UsageError) as err:
        load_text(tmp_path, text.encode())
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["mysql:\n  port: .inf\n", "mysql:\n  port: .nan\n", "mysql:\n  port: 1e400\n",
                                  "mysql:\n  port: 3306.5\n", "timeout: .inf\n", "timeout: .nan\n",
                                  "deadline: .inf\n", "exporter:\n  timeout: -.inf\n"])
def test_infinite_and_nan_numbers(tmp_path, text):
    with pytest.raises(UsageError, match=r"config.yaml:\d: "):
        load_text(tmp_path, text.encode())


@pytest.mark.parametrize("env", [{"SBOPS_TIMEOUT": "nan"}, {"SBOPS_TIMEOUT": "inf"}, {"SBOPS_DEADLINE": "nan"},
                                 {"SBOPS_DEADLINE": "1e309"}, {"SBOPS_TIMEOUT": "0"}, {"SBOPS_TIMEOUT": "-2"},
                                 {"SBOPS_MYSQL_PORT": "inf"}, {"SBOPS_TIMEOUT": "\udcff"}])
def test_timeouts_must_be_finite_and_positive(env):
    with pytest.raises(UsageError, match=f"env {next(iter(env))}: "):
        Settings.load(env=env)


@pytest.mark.parametrize("flag", [float("nan"), float("inf"), -1.0, 0.0, 1e9])
def test_timeout_flag_range(flag):
    with pytest.raises(UsageError, match="--timeout: timeout must be a finite number"):
        Settings.load(env={}, flags={"timeout": flag})


@pytest.mark.parametrize("template", ["https://x/{id}/{", "https://x/{", "https://x/}", "https://x/{0}",
                                      "https://x/{name}", "https://x/{id.upper}", "https://x/{id!z}"])
def test_runbook_url_with_a_stray_brace_is_refused_when_settings_load(tmp_path, template):
    with pytest.raises(UsageError, match=":1: runbook_url must be a URL in which {id} is the only placeholder"):
        load_text(tmp_path, f"runbook_url: '{template}'\n".encode())


def test_runbook_url_with_doubled_braces_is_fine(tmp_path):
    settings = load_text(tmp_path, b"runbook_url: 'https://x/{{lit}}/{id}.md'\n")
    from sbops.report import runbook_link

    assert runbook_link(settings["runbook_url"], "mysql.auth") == "https://x/{lit}/mysql.auth.md"


def test_pod_network_cannot_smuggle_export_options(tmp_path):
    with pytest.raises(UsageError, match="pod_network must be an IP network"):
        load_text(tmp_path, b"pod_network: 10.42.0.0/16(rw,no_root_squash) *\n")


def sbops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sbops", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "NO_COLOR": "1", **(env or {})})


@pytest.mark.parametrize("config", [
    b"mysql:\n  admin_password:\n",  # loads: config show exits 0
    b"mysql:\n  admin_password: !!binary WnE4U2VjcmV0UHcxNw==\n",
    b"namespace: \xff\n",
    b"namespace: &a [*a]\n",
    b"mysql: {port: .inf}\n",
    b"runbook_url: 'https://x/{id}/{'\n",
    b"pod_network: 10.42.0.0/16(rw,no_root_squash) *\n",
    b"timeout: .nan\n",
])
def test_the_cli_answers_bad_config_with_one_line_and_exit_2(tmp_path, config):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(config)
    proc = sbops("config", "show", "--config", str(cfg), "--kubeconfig", "", env={"KUBECONFIG": ""})
    if config == b"mysql:\n  admin_password:\n":
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sbops: error: {cfg}:"), proc.stderr
    assert "WnE4" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "0"]])
@pytest.mark.parametrize("command", [["doctor", "--layer", "host"], ["config", "show"], ["fix", "k8s-namespace", "--dry-run"],
                                     ["uninstall", "--dry-run"], ["install", "--plan"]])
def test_every_command_refuses_a_non_finite_timeout(tmp_path, command, args):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("journal: /tmp/sbops-faults-journal.log\n")
    proc = sbops(*command, *args, "--config", str(cfg))
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("sbops: error: --timeout") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
