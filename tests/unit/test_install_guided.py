"""Guided install's pure parts, from tables: which kind of run, each answer's check (the install's own
validation reused), and the flags the answers become (never a secret). The certificate checks read PEM
text from a dict instead of files (the `read` argument); the pty test reads real files."""

from __future__ import annotations

import datetime as dt
import errno

import pytest

from sbops.install import guided
from sbops.install.guided import Answers
from sbops.install.validation import judge_email
from sbops.secret import Secret
from tests.lab import kube as lab

NOW = dt.datetime.now(dt.timezone.utc)
DOMAIN = lab.DOMAIN


@pytest.mark.parametrize("given, kw, expected", [
    ({}, {"tty": True}, "guided"),
    ({"config": "/c", "credentials": "/f", "kubeconfig": "/k", "skip_db": True, "exporter": False}, {"tty": True}, "guided"),
    ({}, {"tty": True, "plan": True}, "guided"),
    ({}, {"tty": False}, "refuse"),
    ({"config": "/c"}, {"tty": False}, "refuse"),
    ({}, {"tty": False, "plan": True}, "flags"),
    ({"domain": "p.example.com"}, {"tty": True}, "flags"),
    ({"ssl_cert": "/a"}, {"tty": True}, "flags"),
    ({"ecr_token_file": "-"}, {"tty": True}, "flags"),
    ({"letsencrypt": True}, {"tty": True}, "flags"),
    ({"cloudstack": "simulator"}, {"tty": False}, "flags"),
    ({"only": ("credentials",)}, {"tty": True}, "flags"),
    ({"skip": ("k3s",)}, {"tty": True}, "flags"),
    ({}, {"tty": True, "yes": True}, "flags"),
    ({}, {"tty": False, "yes": True}, "flags"),
    ({}, {"tty": True, "resume": True}, "flags"),
    ({}, {"tty": True, "json_output": True}, "flags"),
])
def test_mode(given, kw, expected) -> None:
    args = {"plan": False, "yes": False, "resume": False, "json_output": False, **kw}
    assert guided.mode(given, **args) == expected


def test_the_refusal_is_one_line_naming_every_answer_flag() -> None:
    line = guided.refusal()
    assert "\n" not in line
    for flag in ("--domain", "--ssl-cert", "--ssl-key", "--letsencrypt", "--email", "--cloudstack ",
                 "--cloudstack-url", "--cloudstack-api-key", "SBOPS_CLOUDSTACK_SECRET_KEY", "AWS_ECR_TOKEN",
                 "--ecr-token-file", "--yes", "--plan"):
        assert flag in line, flag


@pytest.mark.parametrize("text, default, value, reason", [
    ("portal.example.com", "", "portal.example.com", ""),
    ("  Portal.Example.COM. ", "", "portal.example.com", ""),
    ("", "kept.example.com", "kept.example.com", ""),
    ("", "", "", "the domain is needed"),
    ("localhost", "", "", "not a valid DNS name"),
    ("not a domain", "", "", "not a valid DNS name"),
    ("10.0.0.1", "", "", "an IP address"),
    ("https://portal.example.com/", "", "", "without scheme or path"),
    ("-bad.example.com", "", "", "not a valid DNS name"),
])
def test_check_domain(text, default, value, reason) -> None:
    got, why = guided.check_domain(text, default)
    assert got == value and reason in why and bool(why) == bool(reason)
    assert not why.startswith("--domain")  # it answers a question, not a flag


@pytest.mark.parametrize("text, value, reason", [
    ("1", "letsencrypt", ""), (" 2 ", "files", ""), ("3", "keep", ""),
    ("4", "", "4: not an option; enter 1, 2 or 3"), ("", "", "nothing: not an option"), ("one", "", "one: not an option"),
])
def test_check_choice(text, value, reason) -> None:
    got, why = guided.check_choice(text, guided.TLS_CHOICES)
    assert got == value and reason in why and bool(why) == bool(reason)


def test_check_choice_of_two_says_or() -> None:
    assert guided.check_choice("9", {"1": "a", "2": "b"}) == ("", "9: not an option; enter 1 or 2")


@pytest.mark.parametrize("email, ok", [
    ("admin@example.com", True), ("first.last+tag@mail.example.co.uk", True), ("a_b%c-d@ex-ample.io", True),
    ("", False), ("admin", False), ("admin@example", False), ("admin@@example.com", False), ("@example.com", False),
    ("admin@example.c", False), ("admin@-example.com", False), ("admin@example-.com", False),
    ("admin@exa mple.com", False), ("admin@example..com", False), ("admin@example.com.", False),
])
def test_judge_email(email, ok) -> None:
    assert (judge_email(email) == "") is ok
    value, why = guided.check_email(f" {email} ")
    assert (value == email and why == "") if ok else (value == "" and why and not why.startswith("--email"))


@pytest.fixture(scope="module")
def pems() -> dict[str, bytes]:
    ca = lab.make_ca()
    good, good_key, chain = lab.make_cert(DOMAIN, days=200, ca=ca)
    other, other_key, _ = lab.make_cert("other.example.org", ca=ca)
    expired, expired_key, _ = lab.make_cert(DOMAIN, days=10, not_before=NOW - dt.timedelta(days=40), ca=ca)
    files = {"/t/good.pem": good + chain, "/t/good.key": good_key, "/t/other.pem": other + chain,
             "/t/other.key": other_key, "/t/expired.pem": expired + chain, "/t/wrong-order.pem": chain + good,
             "/t/text.pem": "not a certificate\n", "/t/encrypted.key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n"}
    return {path: text.encode() for path, text in files.items()}


def reader(pems: dict[str, bytes]):
    def read(path: str) -> bytes:
        if path not in pems:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return pems[path]
    return read


@pytest.mark.parametrize("path, reason", [
    ("/t/good.pem", ""),
    ("", "a path is needed"),
    ("/t/missing.pem", "/t/missing.pem: cannot read: No such file or directory"),
    ("/t/text.pem", "holds no PEM certificate"),
    ("/t/other.pem", f"does not cover {DOMAIN}"),
    ("/t/expired.pem", "expired on"),
    ("/t/wrong-order.pem", "the chain of the certificate is out of order"),
])
def test_check_cert_file(pems, path, reason) -> None:
    value, why = guided.check_cert_file(path, reader(pems), DOMAIN, NOW)
    assert reason in why and bool(why) == bool(reason), why
    assert value == ("" if reason else path)


@pytest.mark.parametrize("path, reason", [
    ("/t/good.key", ""),
    ("", "a path is needed"),
    ("/t/missing.key", "/t/missing.key: cannot read"),
    ("/t/good.pem", "is not an unencrypted PEM private key"),
    ("/t/encrypted.key", "is not an unencrypted PEM private key"),
    ("/t/other.key", "the key file is not the private key of the certificate"),
])
def test_check_key_file(pems, path, reason) -> None:
    value, why = guided.check_key_file(path, "/t/good.pem", reader(pems), DOMAIN, NOW)
    assert reason in why and bool(why) == bool(reason), why
    assert value == ("" if reason else path)
    assert "--ssl-cert" not in why


def test_a_relative_or_home_path_is_made_absolute(pems) -> None:
    import os

    for typed in ("good.pem", "~/good.pem"):
        path = os.path.abspath(os.path.expanduser(typed))
        assert guided.check_cert_file(typed, reader({path: pems["/t/good.pem"]}), DOMAIN, NOW) == (path, "")


@pytest.mark.parametrize("text, value, reason", [
    ("http://cs.example.com:8080/client", "http://cs.example.com:8080/client", ""),
    ("https://cs.example.com/client/ ", "https://cs.example.com/client", ""),
    ("http://10.0.0.5:8080/client/api", "http://10.0.0.5:8080/client", ""),
    ("", "", "the URL is needed"),
    ("cs.example.com:8080", "", "not an http:// or https:// URL"),
    ("ftp://cs.example.com", "", "not an http:// or https:// URL"),
    ("http://", "", "not an http:// or https:// URL"),
    ("http://cs.example.com:99999/client", "", "not a URL"),
    ("http://admin:pw@cs.example.com/client", "", "without a user, password or query"),
    ("http://cs.example.com/client/api?command=listZones", "", "without a user, password or query"),
])
def test_check_cloudstack_url(text, value, reason) -> None:
    got, why = guided.check_cloudstack_url(text)
    assert got == value and reason in why and bool(why) == bool(reason)


@pytest.mark.parametrize("text, ok", [("Ab3-_xyz", True), ("", False), ("two words", False)])
def test_check_keys(text, ok) -> None:
    assert (guided.check_api_key(text)[1] == "") is ok
    secret, why = guided.check_secret_key(text)
    assert (why == "") is ok
    assert (isinstance(secret, Secret) and secret.reveal() == text) if ok else secret is None


@pytest.mark.parametrize("make, reason", [
    (lambda: lab.ecr_token(NOW + dt.timedelta(hours=11)), ""),
    (lambda: "A" * 100, ""),  # the script's floor: 100 characters
    (lambda: "", "the token is needed"),
    (lambda: "   ", "the token is needed"),
    (lambda: "A" * 99, "too short for an ECR token (99 characters"),
    (lambda: "eyJ0b2tlbiI6", "too short for an ECR token (12 characters"),
    (lambda: "A" * 60 + " " + "B" * 60, "one line without spaces"),
    (lambda: lab.ecr_token(NOW - dt.timedelta(minutes=5)), "the token expired at"),
])
def test_check_ecr_token(make, reason) -> None:
    text = make()
    secret, why = guided.check_ecr_token(text, NOW)
    assert reason in why and bool(why) == bool(reason), why
    assert (isinstance(secret, Secret) and secret.reveal() == text.strip()) if not reason else secret is None
    if text.strip():
        assert text.strip() not in why


@pytest.mark.parametrize("answers, flags", [
    (Answers(domain="p.example.com", tls="files", ssl_cert="/c.pem", ssl_key="/k.pem", cloudstack="none"),
     {"domain": "p.example.com", "ssl_cert": "/c.pem", "ssl_key": "/k.pem"}),
    (Answers(domain="p.example.com", tls="letsencrypt", email="a@example.com", cloudstack="simulator"),
     {"domain": "p.example.com", "letsencrypt": True, "email": "a@example.com", "cloudstack": "simulator"}),
    (Answers(domain="p.example.com", tls="keep", cloudstack="existing", cloudstack_url="http://cs:8080/client",
             cloudstack_api_key="api", cloudstack_secret_key=Secret("SECRETKEY"), ecr_token=Secret("T" * 200)),
     {"domain": "p.example.com", "cloudstack": "existing", "cloudstack_url": "http://cs:8080/client",
      "cloudstack_api_key": "api"}),
])
def test_answers_become_flags_without_secrets(answers, flags) -> None:
    assert answers.flags() == flags
    shown = repr(answers.flags()) + "\n".join(answers.recap())
    assert "SECRETKEY" not in shown and "T" * 200 not in shown and "api)" not in shown


def test_every_answer_is_an_install_option() -> None:
    """Guided mode hands its answers to the same Options a flag run fills: each answer key must be one."""
    from dataclasses import fields

    from sbops.install.run import Options

    assert set(guided.ANSWER_KEYS) <= {f.name for f in fields(Options)}
    assert set(guided.FLAG_NAMES) <= set(guided.ANSWER_KEYS)


def test_the_secrets_go_where_the_install_reads_them_and_no_child_inherits_them() -> None:
    from sbops.runner import child_env
    from sbops.settings import Settings

    answers = Answers(domain="p.example.com", cloudstack="existing", cloudstack_secret_key=Secret("SK-123"),
                      ecr_token=Secret("T" * 150))
    env = answers.secret_env()
    assert env == {"AWS_ECR_TOKEN": "T" * 150, "SBOPS_CLOUDSTACK_SECRET_KEY": "SK-123"}
    settings = Settings.load(None, env={**env, "SBOPS_CONFIG": ""})
    value = settings["cloudstack.secret_key"]
    assert isinstance(value, Secret) and value.reveal() == "SK-123" and "SK-123" not in str(value)
    assert not set(env) & set(child_env({**env, "PATH": "/bin"}))
    assert Answers(domain="p.example.com").secret_env() == {}
