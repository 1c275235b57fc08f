"""The command line's contract: usage errors are one line with exit 2, never a traceback; help shows examples."""

import subprocess
import sys

import pytest


def sbops(*args, input=None, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "sbops", *args], capture_output=True, text=True, input=input,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})}, timeout=60)


def test_version():
    from sbops import __version__

    proc = sbops("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"sbops {__version__}"


@pytest.mark.parametrize("command", [["--help"], ["doctor", "--help"], ["fix", "--help"], ["explain", "--help"], ["config", "show", "--help"]])
def test_help_shows_an_example(command):
    proc = sbops(*command)
    assert proc.returncode == 0 and "Example: sbops" in proc.stdout


def test_help_does_not_import_heavy_clients():
    code = "import sys; sys.argv=['sbops','doctor','--list']; import sbops.cli as c\nc._run()\n" \
           "heavy=[m for m in ('pymysql','pymongo','pika','kubernetes','boto3','requests','psutil') if m in sys.modules]\nprint('HEAVY', heavy)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def one_line_usage_error(proc, *expected):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) <= 4, proc.stderr  # click's usage errors add a "Usage:" line and a hint
    for text in expected:
        assert text in proc.stderr, proc.stderr


def test_unknown_layer_and_check(tmp_path):
    one_line_usage_error(sbops("doctor", "--layer", "nope"), "--layer", "nope")
    one_line_usage_error(sbops("doctor", "--check", "nope.*"), "--check", "nope.*")


def test_bad_flag_value():
    one_line_usage_error(sbops("doctor", "--timeout", "soon"), "--timeout")
    one_line_usage_error(sbops("doctor", "--timeout", "-1", "--credentials", "/dev/null"), "--timeout")
    one_line_usage_error(sbops("doctor", "--output", "xml"), "--output")


def test_malformed_credentials_names_file_and_line(tmp_path):
    bad = tmp_path / "creds.txt"
    bad.write_text("MYSQL:\n  Host: 127.0.0.1\n  Port: banana\n")
    one_line_usage_error(sbops("doctor", "--credentials", str(bad)), f"{bad}:3:")


def test_malformed_config_names_file_and_line(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("mysql:\n  port: 1\n  bogus: 2\n")
    one_line_usage_error(sbops("doctor", "--config", str(bad)), f"{bad}:3:", "bogus")
    one_line_usage_error(sbops("config", "show", "--config", str(tmp_path / "missing.yaml")), "missing.yaml")


def test_unknown_fix_and_explain():
    one_line_usage_error(sbops("fix", "no-such-fix"), "no-such-fix")
    one_line_usage_error(sbops("explain", "no.such"), "no.such")


def test_fix_list_shows_risk_tiers():
    proc = sbops("fix", "--list")
    assert proc.returncode == 0
    assert "safe" in proc.stdout and "restarts-service" in proc.stdout


def test_config_show_masks_secrets_and_names_sources(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("namespace: custom\n")
    proc = sbops("config", "show", "--config", str(cfg), "--credentials", "/dev/null",
                 env={"SBOPS_MYSQL_ADMIN_PASSWORD": "Sup3rSecretAdm1n"})
    assert proc.returncode == 0, proc.stderr
    assert "Sup3rSecretAdm1n" not in proc.stdout and "****" in proc.stdout
    assert f"{cfg}:1" in proc.stdout and "env SBOPS_MYSQL_ADMIN_PASSWORD" in proc.stdout


def test_explain_prints_a_runbook():
    from sbops.registry import load_all

    some = sorted(load_all().checks)[0]
    proc = sbops("explain", some)
    assert proc.returncode == 0 and proc.stdout.startswith(f"# {some}")


def test_bad_kubeconfig_names_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    one_line_usage_error(sbops("doctor", "--kubeconfig", str(missing)), str(missing), "--kubeconfig")
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [\n")
    one_line_usage_error(sbops("doctor", "--kubeconfig", str(broken)), f"{broken}:2:")
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    one_line_usage_error(sbops("doctor", "--layer", "host", "--kubeconfig", str(empty)), str(empty), "no clusters")
    one_line_usage_error(sbops("doctor", env={"KUBECONFIG": str(missing)}), str(missing), "KUBECONFIG")


def test_command_modules_share_options_and_import_no_other_command():
    """sbops/cli/__init__.py assembles the commands; each command module imports only sbops.cli.options from
    the package, so no import cycle and no registration order exist between them."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "sbops" / "cli"
    modules = sorted(p for p in package.glob("*.py") if p.name != "__init__.py")
    assert {p.stem for p in modules} >= {"doctor", "fix", "install", "uninstall", "ecr", "exporter", "options"}
    for path in modules:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sbops.cli"):
                imported.add(node.module if node.module != "sbops.cli" else "sbops.cli:" + ",".join(a.name for a in node.names))
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("sbops.cli"))
        allowed = set() if path.stem == "options" else {"sbops.cli.options"}
        assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}"
