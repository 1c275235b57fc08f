"""Pure parts of sbops.probes.acme: the tls.renewal judgement, `systemctl is-enabled` parsing, certbot's argv,
the hook's text, the e-mail rule; and `sbops install`'s flag rules for --letsencrypt/--email."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sbops.probes import acme
from tests.lab import kube as lab

CERT1, _, CA = lab.make_cert(lab.DOMAIN, days=90)
CERT2, _, _ = lab.make_cert(lab.DOMAIN, days=90)
OTHER, _, _ = lab.make_cert(lab.DOMAIN, days=90)
LINEAGE = acme.Lineage(lab.DOMAIN, f"/le/live/{lab.DOMAIN}", CERT2.encode(), (CERT1.encode(), CERT2.encode()), True)


def state(secret: str = CERT2 + CA, lineage: acme.Lineage | None = LINEAGE, problem: str = "", exists: bool = True,
          executable: bool = True, timer: str = "enabled") -> acme.RenewalState:
    return acme.RenewalState(where="istio-system/certs", secret_crt=secret.encode(), config_dir="/le", lineage=lineage,
                             lineage_problem=problem, hook="/le/renewal-hooks/deploy/sbops-tls-secret",
                             hook_exists=exists, hook_executable=executable, timer="certbot.timer", timer_state=timer)


@pytest.mark.parametrize("given, code, status, reason", [
    (state(), "SB6330", "ok", "none"),
    (state(timer="enabled-runtime"), "SB6330", "ok", "none"),
    (state(lineage=None), "SB6331", "skip", "not_applicable"),
    (state(secret=OTHER + CA), "SB6331", "skip", "not_applicable"),  # from files: not certbot's
    (state(secret="not a certificate"), "SB6331", "skip", "not_applicable"),
    (state(problem="/le/live: Permission denied"), "SB6332", "skip", "no_access"),
    (state(secret=CERT1 + CA), "SB6333", "fail", "failed"),  # an earlier one of the lineage
    (state(secret=CERT1 + CA, exists=False, timer="disabled"), "SB6333", "fail", "failed"),  # most urgent first
    (state(exists=False, executable=False), "SB6334", "fail", "missing"),
    (state(executable=False), "SB6335", "fail", "misconfigured"),
    (state(timer="disabled"), "SB6336", "fail", "not_running"),
    (state(timer="masked"), "SB6336", "fail", "not_running"),
    (state(timer="not-found"), "SB6336", "fail", "not_running"),
    (state(timer="unknown: systemctl is not installed"), "SB6337", "skip", "no_access"),
])
def test_judge_renewal(given: acme.RenewalState, code: str, status: str, reason: str) -> None:
    result = acme.judge_renewal(given)
    assert (result.code, result.status.value, result.reason.value) == (code, status, reason)
    assert "PRIVATE" not in repr(result.details)


@pytest.mark.parametrize("returncode, stdout, stderr, expected", [
    (0, "enabled\n", "", "enabled"),
    (1, "disabled\n", "", "disabled"),
    (1, "masked\n", "", "masked"),
    (1, "", "Failed to get unit file state for certbot.timer: No such file or directory\n", "not-found"),
    (127, "", "systemctl: command not found", "unknown: systemctl is not installed"),
    (1, "", "Failed to connect to bus\n", "unknown: Failed to connect to bus"),
])
def test_parse_is_enabled(returncode: int, stdout: str, stderr: str, expected: str) -> None:
    assert acme.parse_is_enabled(returncode, stdout, stderr) == expected


def test_certonly_argv_is_the_scripts_http01_standalone_with_overridable_server_port_and_dirs() -> None:
    settings = {"letsencrypt.certbot": "certbot", "letsencrypt.http01_port": 5002, "letsencrypt.server": "https://127.0.0.1:14000/dir",
                "letsencrypt.config_dir": "/c", "letsencrypt.work_dir": "/w", "letsencrypt.logs_dir": "/l"}
    argv = acme.certonly_argv(settings, "portal.test", "a@b.test")
    assert argv[:4] == ["certbot", "certonly", "--standalone", "--preferred-challenges"]
    joined = " ".join(argv)
    for part in ("-d portal.test", "--cert-name portal.test", "-m a@b.test", "--http-01-port 5002", "--config-dir /c",
                 "--work-dir /w", "--logs-dir /l", "--server https://127.0.0.1:14000/dir", "--non-interactive"):
        assert part in joined
    assert "--server" not in acme.certonly_argv({**settings, "letsencrypt.server": ""}, "portal.test", "a@b.test")


def test_hook_script_execs_sbops_with_the_run_files_and_no_secret() -> None:
    text = acme.hook_script(["/usr/bin/python3", "-m", "sbops"], "/etc/sbops/config.yaml", "/root/creds file.txt")
    assert text.startswith("#!/bin/sh\n")
    assert text.rstrip().splitlines()[-1] == ("exec /usr/bin/python3 -m sbops tls deploy-hook --config "
                                              "/etc/sbops/config.yaml --credentials '/root/creds file.txt'")
    assert "kubectl" not in text.splitlines()[-1] and "RENEWED_LINEAGE" in text


@pytest.mark.parametrize("email, ok", [
    ("ops@example.com", True), ("a.b+c@sub.example.co", True), ("", False), ("ops", False), ("ops@localhost", False),
    ("ops@@example.com", False), ("ops @example.com", False), ("ops@example.com\n", False), ("a@-x.com", False),
])
def test_email_problem(email: str, ok: bool) -> None:
    assert (acme.email_problem(email) == "") is ok


@pytest.mark.parametrize("args, flag", [
    (["--letsencrypt"], "--letsencrypt"),
    (["--email", "a@b.co"], "--email"),
    (["--letsencrypt", "--email", "nope"], "--email"),
    (["--letsencrypt", "--email", "a@b.co", "--ssl-cert", "x.pem"], "--letsencrypt"),
    (["--letsencrypt", "--email", "a@b.co", "--ssl-key", "x.pem"], "--letsencrypt"),
])
def test_install_letsencrypt_flag_errors_are_one_line_naming_the_flag(args: list[str], flag: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sbops", "install", *args, "--plan"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sbops: error: {flag}"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_install_help_shows_the_options() -> None:
    proc = subprocess.run([sys.executable, "-m", "sbops", "install", "--help"], capture_output=True, text=True, timeout=60)
    assert "--letsencrypt" in proc.stdout and "--email" in proc.stdout


@pytest.mark.parametrize("root, running, expected", [
    ("", True, [["systemctl", "enable", "certbot.timer"], ["systemctl", "start", "certbot.timer"]]),
    ("", False, [["systemctl", "enable", "certbot.timer"]]),  # no systemd as PID 1 (a container): enable only
    ("/srv/root", True, [["systemctl", "--root", "/srv/root", "enable", "certbot.timer"]]),  # an offline tree
])
def test_timer_argvs(root: str, running: bool, expected: list[list[str]]) -> None:
    settings = {"letsencrypt.timer": "certbot.timer", "letsencrypt.systemd_root": root}
    assert acme.timer_argvs(settings, running) == expected
