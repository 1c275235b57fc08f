"""Guided `sbops install` through a real pseudo-terminal: the real CLI (`python -m sbops install`) runs in a
pty that pexpect drives as a person would type, with a temp config and credentials path (LabEnv).

The runs add `--skip-db` (this machine's own MariaDB, RabbitMQ and NFS are not the test's) and end at the
confirmation, answered "no", or at a Ctrl-C, so nothing is applied: the plan is the real plan of this machine
(K3s and Helm are not installed here: "would change"; the Kubernetes steps: decided at apply time, after K3s).
Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from tests.lab import kube as lab
from tests.lab.env import REPO, LabEnv

DOMAIN = lab.DOMAIN
CERT_PROMPT = "Certificate file (full chain, e.g. fullchain.pem): "
KEY_PROMPT = "Its private key file (e.g. privkey.pem; Enter: another certificate): "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def env(tmp_path: Path) -> LabEnv:
    made = LabEnv(tmp_path / "env").installer()
    made.credentials_file = False  # a new install: no credentials file yet
    return made.write()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("guided-certs")
    ca = lab.make_ca()
    good_cert, good_key, chain = lab.make_cert(DOMAIN, days=200, ca=ca)
    other_cert, other_key, _ = lab.make_cert("other.example.org", ca=ca)
    files = {"fullchain.pem": good_cert + chain, "privkey.pem": good_key, "other.pem": other_cert + chain,
             "other.key": other_key}
    for name, text in files.items():
        (root / name).write_text(text)
    return {name: root / name for name in files}


def spawn(env: LabEnv, *args: str, extra_env: dict[str, str] | None = None) -> pexpect.spawn:
    """`sbops install ARGS` in a pseudo-terminal (stdin and stdout are the terminal), no token in the env."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("AWS_ECR_TOKEN", "SBOPS_CLOUDSTACK_SECRET_KEY")}
    child_env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", **(extra_env or {})})
    argv = ["-m", "sbops", "install", *args, "--config", str(env.config_path), "--credentials", str(env.credentials_path)]
    # preexec_fn: SIGINT's default disposition (a suite run in the background would hand it down ignored, and
    # the terminal's Ctrl-C would then do nothing)
    return pexpect.spawn(sys.executable, argv, env=child_env, cwd=str(REPO), encoding="utf-8", timeout=60,
                         dimensions=(50, 200), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def transcript(child: pexpect.spawn) -> str:
    """Everything the terminal showed (echoed input included), colour codes removed."""
    child.expect(pexpect.EOF)
    child.close()
    return ANSI.sub("", child.logfile_read.getvalue())  # type: ignore[union-attr]


def record(child: pexpect.spawn) -> pexpect.spawn:
    import io

    child.logfile_read = io.StringIO()
    return child


def answer(child: pexpect.spawn, prompt: str, text: str) -> None:
    child.expect_exact(prompt)
    child.sendline(text)


def nothing_written(env: LabEnv) -> None:
    assert not (env.root / "install" / "state.json").exists()
    assert not env.credentials_path.exists()


def test_guided_run_with_certificate_files_shows_the_plan_and_asks_before_applying(env: LabEnv, certs) -> None:
    """Every answer checked as it is given: a bad domain, a wrong option, a missing file, a certificate for
    another name, a key that is not its key (then Enter: back to the certificate's question) and a too-short
    ECR token are each asked again with the reason;
    the token is not echoed; the plan is the install's plan; "no" at the confirmation changes nothing."""
    token = lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
    child = record(spawn(env, "--skip-db"))

    answer(child, "Domain name: ", "not a domain")
    child.expect_exact("not a valid DNS name")
    answer(child, "Domain name: ", DOMAIN)

    answer(child, "Select option [1/2]: ", "5")  # a new install: no "keep the TLS secret" option
    child.expect_exact("5: not an option; enter 1 or 2")
    answer(child, "Select option [1/2]: ", "2")
    missing = certs["fullchain.pem"].parent / "nowhere.pem"
    answer(child, CERT_PROMPT, str(missing))
    child.expect_exact(f"{missing}: cannot read: No such file or directory")
    answer(child, CERT_PROMPT, str(certs["other.pem"]))
    child.expect_exact(f"does not cover {DOMAIN}")
    answer(child, CERT_PROMPT, str(certs["fullchain.pem"]))
    answer(child, KEY_PROMPT, str(certs["fullchain.pem"]))
    child.expect_exact("is not an unencrypted PEM private key")
    answer(child, KEY_PROMPT, str(certs["other.key"]))
    child.expect_exact("the key file is not the private key of the certificate")
    answer(child, KEY_PROMPT, "")  # back to the certificate's question
    answer(child, CERT_PROMPT, str(certs["fullchain.pem"]))
    answer(child, KEY_PROMPT, str(certs["privkey.pem"]))

    answer(child, "Select option [1/2/3]: ", "3")  # CloudStack: none now

    answer(child, "ECR token (hidden): ", "tooshort-0123456789")
    child.expect_exact("too short for an ECR token (19 characters")
    answer(child, "ECR token (hidden): ", token)

    child.expect_exact("Your answers:")
    child.expect_exact(f"Domain:      {DOMAIN}")
    child.expect_exact(f"TLS:         {certs['fullchain.pem']} with the key {certs['privkey.pem']}")
    child.expect_exact("CloudStack:  none now")
    child.expect_exact(f"ECR token:   given ({len(token)} characters)")
    child.expect(r"validate\s+ok: root")
    child.expect(r"k3s\s+would change")
    child.expect(r"tls-secret\s+at apply time")
    answer(child, "Apply these changes (", "n")
    child.expect_exact("aborted: nothing was changed")
    shown = transcript(child)
    assert child.exitstatus == 3, shown
    assert token not in shown and token[:40] not in shown  # hidden input: never echoed, never printed
    assert "Traceback" not in shown
    nothing_written(env)


def test_guided_letsencrypt_and_existing_cloudstack_then_ctrl_c(env: LabEnv) -> None:
    """The Let's Encrypt and existing-CloudStack questions: a bad email and a bad URL are asked again; the
    secret key and the token are hidden; a Ctrl-C at the token's prompt exits 130 with one line, no
    traceback, nothing changed."""
    secret_key = "Gd7sk3-SECRET-KEY-value-0123456789"
    child = record(spawn(env, "--skip-db"))
    answer(child, "Domain name: ", "portal.example.com")
    answer(child, "Select option [1/2]: ", "1")
    answer(child, "Email address for Let's Encrypt's notices: ", "admin@@example")
    child.expect_exact("not an email address")
    answer(child, "Email address for Let's Encrypt's notices: ", "admin@example.com")
    answer(child, "Select option [1/2/3]: ", "1")
    answer(child, "CloudStack URL (e.g. http://cloudstack.example.com:8080/client): ", "ftp://cs.example.com")
    child.expect_exact("not an http:// or https:// URL with a host")
    answer(child, "CloudStack URL (e.g. http://cloudstack.example.com:8080/client): ",
           "http://cs.example.com:8080/client")
    answer(child, "API key: ", "apikey-0123")
    answer(child, "Secret key (hidden): ", secret_key)
    child.expect_exact("ECR token (hidden): ")
    child.sendintr()  # Ctrl-C, as the terminal sends it
    child.expect_exact("sbops: install: interrupted at a question: nothing was changed")
    shown = transcript(child)
    assert child.exitstatus == 130, shown
    assert secret_key not in shown and "Traceback" not in shown
    nothing_written(env)


def test_a_token_from_the_environment_is_not_asked_and_an_installed_server_offers_to_keep_its_secret(
        tmp_path: Path) -> None:
    """On a server with a credentials file: its domain is the default (Enter keeps it), the TLS question
    offers to keep the secret there is; $AWS_ECR_TOKEN is used without asking. Declined at the confirmation."""
    env = LabEnv(tmp_path / "env").installer().write()  # writes a credentials file for stackbill.example.com
    before = env.credentials_path.read_bytes()
    token = lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=5))
    child = record(spawn(env, "--skip-db", extra_env={"AWS_ECR_TOKEN": token}))
    answer(child, f"Domain name [{DOMAIN}]: ", "")
    answer(child, "Select option [1/2/3]: ", "3")
    answer(child, "Select option [1/2/3]: ", "3")  # CloudStack: none now
    child.expect_exact("The ECR token comes from $AWS_ECR_TOKEN: not asked.")
    child.expect_exact("TLS:         keep the TLS secret the cluster has")
    child.expect_exact("ECR token:   from $AWS_ECR_TOKEN")
    answer(child, "Apply these changes (", "n")
    shown = transcript(child)
    assert child.exitstatus == 3, shown
    assert "ECR token (hidden)" not in shown and token not in shown and "Traceback" not in shown
    assert env.credentials_path.read_bytes() == before
    assert not (env.root / "install" / "state.json").exists()


def test_no_terminal_and_no_flags_refuses_naming_the_flags(env: LabEnv) -> None:
    proc = env.install()  # stdin is a pipe: no terminal
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sbops: error: install: no terminal to ask on"), proc.stderr
    for flag in ("--domain", "--ssl-cert", "--ssl-key", "--letsencrypt", "--email", "--cloudstack", "AWS_ECR_TOKEN",
                 "--ecr-token-file", "--yes", "--plan"):
        assert flag in lines[0], flag
    nothing_written(env)


def test_ctrl_c_at_a_visible_question(env: LabEnv) -> None:
    """Ctrl-C typed at the first question (the terminal sends SIGINT): exit 130, one line, no traceback."""
    child = record(spawn(env))
    child.expect_exact("Domain name: ")
    child.sendintr()
    shown = transcript(child)
    assert child.exitstatus == 130, shown
    assert "sbops: install: interrupted at a question: nothing was changed" in shown and "Traceback" not in shown
    nothing_written(env)


def test_guided_plan_asks_then_plans_without_a_confirmation(env: LabEnv, certs) -> None:
    """`sbops install --plan` on a terminal: the questions, then the plan; nothing to confirm, nothing changed.
    The token is longer than a terminal's line (4095 characters, the rest cut silently in line mode) and
    typed with a mistake erased by backspaces: it arrives whole."""
    token = lab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
    token = token + "A" * (5000 - len(token))  # not base64 of "AWS:..." any more: taken as the password itself
    child = record(spawn(env, "--plan", "--skip-db"))
    answer(child, "Domain name: ", DOMAIN)
    answer(child, "Select option [1/2]: ", "2")
    answer(child, CERT_PROMPT, str(certs["fullchain.pem"]))
    answer(child, KEY_PROMPT, str(certs["privkey.pem"]))
    answer(child, "Select option [1/2/3]: ", "3")
    child.expect_exact("ECR token (hidden): ")
    child.send("typo" + "\x7f" * 4 + token + "\r")
    child.expect_exact("ECR token:   given (5000 characters)")
    child.expect_exact("Plan only: nothing was changed")
    shown = transcript(child)
    assert child.exitstatus == 0, shown
    assert "Apply these changes" not in shown and "Traceback" not in shown
    nothing_written(env)


def test_end_of_input_at_a_question_is_one_line(env: LabEnv) -> None:
    """Ctrl-D (end of input) instead of an answer: exit 2, one line, nothing changed."""
    child = record(spawn(env))
    answer(child, "Domain name: ", DOMAIN)
    child.expect_exact("Select option [1/2]: ")
    child.sendeof()  # at a visible question (line mode)
    shown = transcript(child)
    assert child.exitstatus == 2, shown
    assert "sbops: error: install: the terminal closed before every question was answered: nothing was changed" in shown
    assert "Traceback" not in shown
    nothing_written(env)


def test_end_of_input_at_a_hidden_question_restores_the_terminal(env: LabEnv) -> None:
    """Ctrl-D at the token's (hidden) question: exit 2, one line; the terminal echoes again afterwards."""
    child = record(spawn(env, "--skip-db"))
    answer(child, "Domain name: ", DOMAIN)
    answer(child, "Select option [1/2]: ", "1")
    answer(child, "Email address for Let's Encrypt's notices: ", "admin@example.com")
    answer(child, "Select option [1/2/3]: ", "3")
    child.expect_exact("ECR token (hidden): ")
    child.sendcontrol("d")
    child.expect_exact("the terminal closed before every question was answered")
    child.expect(pexpect.EOF)
    import termios

    lflag = termios.tcgetattr(child.child_fd)[3]
    assert lflag & termios.ECHO and lflag & termios.ICANON
    child.close()
    assert child.exitstatus == 2
