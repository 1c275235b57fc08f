"""Guided mode of `sbops install`: on a terminal, with no answer given as a flag, ask what the current
upstream script asks (the domain, the TLS option, the CloudStack option, the ECR token), check each answer
as it is given (a wrong one is asked again with a one-line reason), then run the install with those
answers: validation, the plan, the confirmation, the apply, all of sbops.install.command.

Pure (tested from tables): `mode`, the `check_*` functions (the text typed -> the value, or a one-line
reason), `Answers.flags`. The checks reuse sbops.install.validation and sbops.probes.tls/ecr,
so a guided answer is judged exactly as the same flag would be.
I/O: `Terminal` (questions on stdout, answers from stdin, hidden ones with the terminal's echo off),
`ask_all` (the question flow) and `run`.

Secrets never enter the flags (they are saved in the install state file) nor a command line:
- the ECR token is handed to command.execute in its `env` mapping as AWS_ECR_TOKEN, which is where the
  install already reads a token from ($AWS_ECR_TOKEN); this process's own environment is not changed;
- the CloudStack secret key is set in this process's environment as SBOPS_CLOUDSTACK_SECRET_KEY, the env
  override of the setting cloudstack.secret_key (a secret setting: masked in logs, JSON and plans), which
  runner.child_env removes from every program sbops runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO, TypeVar
from urllib.parse import urlsplit

from sbops.secret import Secret

# The flags that answer a question: when one is given, the run is a flag run (with the older prompt for
# a missing domain), not a guided one. letsencrypt/email/cloudstack* are the flags of the Let's Encrypt and
# CloudStack parts of the install.
ANSWER_KEYS = ("domain", "ssl_cert", "ssl_key", "ecr_token_file", "letsencrypt", "email", "cloudstack",
               "cloudstack_url", "cloudstack_api_key")
FLAG_NAMES = {"domain": "--domain", "ssl_cert": "--ssl-cert", "ssl_key": "--ssl-key", "letsencrypt": "--letsencrypt",
              "email": "--email", "cloudstack": "--cloudstack", "cloudstack_url": "--cloudstack-url",
              "cloudstack_api_key": "--cloudstack-api-key"}
TOKEN_ENV = "AWS_ECR_TOKEN"
SECRET_KEY_ENV = "SBOPS_CLOUDSTACK_SECRET_KEY"  # settings.env_name("cloudstack.secret_key")
MIN_TOKEN_CHARS = 100  # the upstream script's sanity check: "ECR tokens are usually 1000+ characters"
TOKEN_COMMAND = "aws ecr get-login-password --region ap-south-1"
EXIT_INTERRUPTED = 130

TLS_CHOICES = {"1": "letsencrypt", "2": "files", "3": "keep"}
CLOUDSTACK_CHOICES = {"1": "existing", "2": "simulator", "3": "none"}

T = TypeVar("T")


# -- pure: which kind of run -------------------------------------------------------------------------
def mode(given: Mapping[str, Any], *, plan: bool, yes: bool, resume: bool, json_output: bool, tty: bool) -> str:
    """'guided', 'refuse' (no answers and no terminal to ask them on) or 'flags'. `given` holds the flags
    that were set. Step selection (--only/--skip), --yes, --resume and --output json are flag runs;
    --plan, --skip-infra/--skip-db and the file and environment flags (--config, --credentials, ...) are not
    answers, so they go with a guided run."""
    if yes or resume or json_output or given.get("only") or given.get("skip"):
        return "flags"
    if any(given.get(key) for key in ANSWER_KEYS):
        return "flags"
    if tty:
        return "guided"
    return "flags" if plan else "refuse"


def refusal() -> str:
    """The one line of a run with no answers and no terminal: the flags that carry them."""
    return ("install: no terminal to ask on: pass the answers as flags: --domain NAME, --ssl-cert FILE --ssl-key FILE "
            "(or --letsencrypt --email ADDRESS), --cloudstack simulator|existing (existing: --cloudstack-url URL "
            f"--cloudstack-api-key KEY, the secret key in ${SECRET_KEY_ENV}), the ECR token in ${TOKEN_ENV} or "
            "--ecr-token-file FILE, and --yes (or --plan to see the plan only)")


# -- pure: one answer each -----------------------------------------------------------------------------
def check_domain(text: str, default: str = "") -> tuple[str, str]:
    """(domain, '') or ('', reason). An empty answer takes `default` (the domain the server has)."""
    from sbops.install.validation import judge_domain

    value = text.strip() or default
    if not value:
        return "", "the domain is needed (the portal's DNS name, e.g. portal.example.com)"
    problem = judge_domain(value)
    return ("", _unflag(problem, "--domain", value)) if problem else (value.rstrip(".").lower(), "")


def check_choice(text: str, choices: Mapping[str, str]) -> tuple[str, str]:
    value = text.strip()
    if value in choices:
        return choices[value], ""
    return "", f"{value or 'nothing'}: not an option; enter {_options(choices)}"


def check_email(text: str) -> tuple[str, str]:
    from sbops.install.validation import judge_email

    value = text.strip()
    problem = judge_email(value)
    return ("", _unflag(problem, "--email", value)) if problem else (value, "")


def check_cert_file(text: str, read: Callable[[str], bytes], domain: str, now: datetime) -> tuple[str, str]:
    """(absolute path, '') when the file is a PEM certificate chain that can serve `domain` now (not expired,
    not yet valid, for another name, out of order): the certificate's share of validation.judge_pair."""
    from sbops.messages import tls as msg
    from sbops.model import Status
    from sbops.probes import tls

    path = _path(text)
    if not path:
        return "", "a path is needed: the certificate file (full chain, server certificate first)"
    try:
        pem = read(path)
    except OSError as exc:
        return "", f"{path}: cannot read: {exc.strerror or exc}"
    findings = [r for r in tls.certificate_findings(pem, b"", domain, now, 0.0)
                if r.status is Status.FAIL and r.code != msg.KEY_UNREADABLE.code]
    # without the key, the first certificate is taken for the server's: when the chain is out of order,
    # that is the one problem to name (the others are about a CA certificate)
    order = [r for r in findings if r.code == msg.CHAIN_OUT_OF_ORDER.code]
    problems = [r.summary for r in order or findings]
    return ("", f"{path}: {'; '.join(problems)}") if problems else (path, "")


def check_key_file(text: str, cert: str, read: Callable[[str], bytes], domain: str, now: datetime) -> tuple[str, str]:
    """(absolute path, '') when the file is an unencrypted PEM private key and `cert`'s key: the installer's
    own validation.judge_pair on the two files."""
    from sbops.install.validation import judge_pair
    from sbops.probes import tls

    path = _path(text)
    if not path:
        return "", "a path is needed: the certificate's private key file (unencrypted PEM)"
    try:
        tls.load_key(read(path))
    except OSError as exc:
        return "", f"{path}: cannot read: {exc.strerror or exc}"
    except tls.PemError as exc:
        return "", f"{path}: {exc}"
    problems = judge_pair(cert, path, read, domain, now)
    prefix = f"--ssl-cert {cert} / --ssl-key {path}: "
    return ("", "; ".join(p.removeprefix(prefix) for p in problems)) if problems else (path, "")


def check_cloudstack_url(text: str) -> tuple[str, str]:
    """The URL of the CloudStack UI (http[s]://HOST[:PORT]/client; its API answers at <URL>/api), without
    credentials or a query in it."""
    value = text.strip().rstrip("/")
    example = "e.g. http://cloudstack.example.com:8080/client"
    if not value:
        return "", f"the URL is needed ({example})"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "", f"{value}: not a URL ({example})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "", f"{value}: not an http:// or https:// URL with a host ({example})"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "", f"{value}: give the URL alone, without a user, password or query ({example})"
    if value.endswith("/api"):
        value = value[: -len("/api")] or value
    return value, ""


def check_api_key(text: str) -> tuple[str, str]:
    value = text.strip()
    if not value:
        return "", "the API key is needed (CloudStack UI: Accounts > the user > Generate keys)"
    if any(ch.isspace() for ch in value):
        return "", "an API key is one word without spaces"
    return value, ""


def check_secret_key(text: str) -> tuple[Secret | None, str]:
    value = text.strip()
    if not value:
        return None, "the secret key is needed (it is shown next to the API key)"
    if any(ch.isspace() for ch in value):
        return None, "a secret key is one word without spaces"
    return Secret(value), ""


def check_ecr_token(text: str, now: datetime) -> tuple[Secret | None, str]:
    """The upstream script's sanity check on the length (it asks whether to go on; a token that short cannot
    be one, so sbops asks again), then the install's own reading of a token: one line, not expired."""
    from sbops.probes import ecr

    value = text.strip()
    if not value:
        return None, f"the token is needed: paste what `{TOKEN_COMMAND}` prints"
    if len(value) < MIN_TOKEN_CHARS:
        return None, (f"too short for an ECR token ({len(value)} characters; they are usually over 1000): "
                      "paste all of it")
    try:
        token = ecr.token_from_text(value, "the token")
    except ecr.TokenError as exc:
        return None, str(exc)
    if token.expires_at is not None and token.expires_at <= now:
        return None, (f"the token expired at {token.expires_at:%Y-%m-%d %H:%M} UTC (they last 12 hours): "
                      f"get a new one with `{TOKEN_COMMAND}`")
    return Secret(value), ""


def _path(text: str) -> str:
    value = text.strip()
    return os.path.abspath(os.path.expanduser(value)) if value else ""


def _unflag(problem: str, flag: str, value: str) -> str:
    """A validation line without the flag it names ("--domain x: not ..." -> "not ..."): here it answers a question."""
    return problem.removeprefix(f"{flag} {value}: ")


def _options(choices: Mapping[str, str]) -> str:
    keys = list(choices)
    return " or ".join(keys) if len(keys) < 3 else ", ".join(keys[:-1]) + " or " + keys[-1]


# -- the answers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Known:
    """What the server already tells before the questions."""

    domain: str = ""  # the configured domain, else the credentials file's
    installed: bool = False  # a credentials file exists: keeping the TLS secret there is makes sense
    token_source: str = ""  # where a token comes from without asking ("$AWS_ECR_TOKEN", "setting ecr.token_file")


@dataclass
class Answers:
    domain: str = ""
    tls: str = ""  # letsencrypt | files | keep
    email: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    cloudstack: str = ""  # existing | simulator | none
    cloudstack_url: str = ""
    cloudstack_api_key: str = ""
    cloudstack_secret_key: Secret | None = None
    ecr_token: Secret | None = None

    def flags(self) -> dict[str, Any]:
        """The answers as the flags `sbops install` would have been given; never a secret."""
        flags: dict[str, Any] = {"domain": self.domain}
        if self.tls == "letsencrypt":
            flags.update(letsencrypt=True, email=self.email)
        elif self.tls == "files":
            flags.update(ssl_cert=self.ssl_cert, ssl_key=self.ssl_key)
        if self.cloudstack in ("existing", "simulator"):
            flags["cloudstack"] = self.cloudstack
        if self.cloudstack == "existing":
            flags.update(cloudstack_url=self.cloudstack_url, cloudstack_api_key=self.cloudstack_api_key)
        return flags

    def secret_env(self) -> dict[str, str]:
        """The secrets, as the environment variables the install reads them from: the ECR token as
        $AWS_ECR_TOKEN (command.execute's `env`), the CloudStack secret key as the setting
        cloudstack.secret_key's override (this process's environment; runner.child_env keeps both from children)."""
        found = {}
        if self.ecr_token is not None:
            found[TOKEN_ENV] = self.ecr_token.reveal()
        if self.cloudstack_secret_key is not None:
            found[SECRET_KEY_ENV] = self.cloudstack_secret_key.reveal()
        return found

    def recap(self, token_source: str = "") -> list[str]:
        tls = {"letsencrypt": f"Let's Encrypt, notices to {self.email}",
               "files": f"{self.ssl_cert} with the key {self.ssl_key}",
               "keep": "keep the TLS secret the cluster has"}.get(self.tls, "")
        cloudstack = {"existing": f"existing, {self.cloudstack_url} (API key and secret key given)",
                      "simulator": "the CloudStack simulator in Podman",
                      "none": "none now (configure it later in the portal)"}.get(self.cloudstack, "")
        token = (f"given ({len(self.ecr_token.reveal())} characters)" if self.ecr_token is not None
                 else f"from {token_source}" if token_source else "")
        return [f"  Domain:      {self.domain}", f"  TLS:         {tls}", f"  CloudStack:  {cloudstack}",
                f"  ECR token:   {token}"]


# -- I/O -----------------------------------------------------------------------------------------------
class Terminal:
    """Questions to `out`, answers from `inp` (both the terminal). Hidden answers are read with the
    terminal's echo off and out of its line mode: a terminal's line holds at most 4095 characters and cuts
    the rest without a word, which a long token would hit; the settings come back also on Ctrl-C."""

    def __init__(self, inp: TextIO | None = None, out: TextIO | None = None) -> None:
        self.inp = inp or sys.stdin
        self.out = out or sys.stdout

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def ask(self, question: str, default: str = "") -> str:
        self.out.write(f"{question}{f' [{default}]' if default else ''}: ")
        self.out.flush()
        line = self.inp.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def ask_hidden(self, question: str) -> str:
        import codecs
        import termios

        self.out.write(f"{question} (hidden): ")
        self.out.flush()
        fd = self.inp.fileno()
        saved = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        raw[3] &= ~(termios.ECHO | termios.ICANON)  # lflag; ISIG stays: Ctrl-C still interrupts
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, raw)  # not TCSAFLUSH: an answer typed ahead is kept
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        typed: list[str] = []
        try:
            while True:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise EOFError
                for char in decoder.decode(chunk):
                    if char in "\r\n":
                        return "".join(typed)
                    if char == "\x04" and not typed:  # Ctrl-D on an empty answer: end of input
                        raise EOFError
                    if char in "\x7f\b":
                        del typed[-1:]
                    elif char == "\x15":  # Ctrl-U: start again
                        typed.clear()
                    elif char.isprintable():
                        typed.append(char)
        finally:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
            self.out.write("\n")
            self.out.flush()


def ask_until(term: Terminal, question: str, check: Callable[[str], tuple[T, str]], *, hidden: bool = False,
              default: str = "") -> T:
    """Ask until `check` accepts the answer; each refusal is one line saying why."""
    while True:
        text = term.ask_hidden(question) if hidden else term.ask(question, default)
        value, reason = check(text)
        if not reason:
            return value
        term.say(f"  {reason}")


def ask_all(term: Terminal, known: Known, *, read: Callable[[str], bytes] = lambda p: Path(p).read_bytes(),
            now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> Answers:
    """The questions of the upstream script, in its order, each answer checked as it is given."""
    answers = Answers()
    heading(term, "1/4", "Domain")
    term.say("The portal's DNS name (it must resolve to this server), e.g. stackbill.example.com.")
    answers.domain = ask_until(term, "Domain name", lambda t: check_domain(t, known.domain), default=known.domain)

    heading(term, "2/4", "TLS certificate")
    tls_choices = dict(TLS_CHOICES) if known.installed else {k: v for k, v in TLS_CHOICES.items() if v != "keep"}
    term.say("  1) Let's Encrypt: a free certificate, renewed automatically (the domain's DNS must point here, port 80 free)")
    term.say("  2) Certificate files: your full chain and its private key (PEM)")
    if "3" in tls_choices:
        term.say("  3) Keep the TLS secret the cluster has")
    answers.tls = ask_until(term, f"Select option [{'/'.join(tls_choices)}]", lambda t: check_choice(t, tls_choices))
    if answers.tls == "letsencrypt":
        answers.email = ask_until(term, "Email address for Let's Encrypt's notices", check_email)
    elif answers.tls == "files":
        while not answers.ssl_key:  # Enter at the key's question goes back to the certificate's
            answers.ssl_cert = ask_until(term, "Certificate file (full chain, e.g. fullchain.pem)",
                                         lambda t: check_cert_file(t, read, answers.domain, now()))
            answers.ssl_key = ask_until(
                term, "Its private key file (e.g. privkey.pem; Enter: another certificate)",
                lambda t: check_key_file(t, answers.ssl_cert, read, answers.domain, now()) if t.strip() else ("", ""))

    heading(term, "3/4", "CloudStack")
    term.say("  1) An existing CloudStack: its URL, and the API key and secret key of StackBill's user")
    term.say("  2) The CloudStack simulator in Podman (POC and testing)")
    term.say("  3) None now: configure CloudStack later in the portal")
    answers.cloudstack = ask_until(term, "Select option [1/2/3]", lambda t: check_choice(t, CLOUDSTACK_CHOICES))
    if answers.cloudstack == "existing":
        answers.cloudstack_url = ask_until(term, "CloudStack URL (e.g. http://cloudstack.example.com:8080/client)",
                                           check_cloudstack_url)
        answers.cloudstack_api_key = ask_until(term, "API key", check_api_key)
        answers.cloudstack_secret_key = ask_until(term, "Secret key", check_secret_key, hidden=True)

    heading(term, "4/4", "AWS ECR token")
    if known.token_source:
        term.say(f"The ECR token comes from {known.token_source}: not asked.")
    else:
        term.say(f"Paste the output of `{TOKEN_COMMAND}` (run where the AWS CLI is set up); it lasts 12 hours.")
        answers.ecr_token = ask_until(term, "ECR token", lambda t: check_ecr_token(t, now()), hidden=True)
    return answers


def heading(term: Terminal, number: str, title: str) -> None:
    term.say()
    term.say(f"== {number} {title}")


def known_facts(given: Mapping[str, Any], env: Mapping[str, str]) -> Known:
    """The configured (or recorded) domain, whether a credentials file exists, and a token given otherwise."""
    from sbops import credentials as creds_mod
    from sbops.install import creds
    from sbops.settings import Settings

    settings = Settings.load(given.get("config") or None)
    path = creds.default_path(given.get("credentials") or None)
    installed = path.exists()
    domain = str(settings["domain"])
    if not domain and installed:
        try:
            domain = creds_mod.load(path).domain
        except (OSError, ValueError):
            domain = ""  # the install itself names what is wrong with the file
    source = ""
    if settings["ecr.token_file"]:
        source = f"the file {settings['ecr.token_file']} (setting ecr.token_file)"
    elif env.get(TOKEN_ENV):
        source = f"${TOKEN_ENV}"
    return Known(domain=domain, installed=installed, token_source=source)


def run(given: Mapping[str, Any], *, plan_only: bool, log_file: str = "", colour: bool = False,
        term: Terminal | None = None) -> int:
    """Ask, then hand the answers to the install (validation, plan, confirmation, apply)."""
    from sbops.errors import UsageError
    from sbops.install import command

    term = term or Terminal()
    known = known_facts(given, os.environ)
    term.say("sbops install, guided: four questions, then the plan"
             f"{' (--plan: nothing changes)' if plan_only else '; nothing changes before you confirm it'}.")
    term.say("(Ctrl-C stops at any question. `sbops install --help` shows the same answers as flags.)")
    try:
        answers = ask_all(term, known)
    except KeyboardInterrupt:
        term.out.write("\n")
        sys.stderr.write("sbops: install: interrupted at a question: nothing was changed\n")
        return EXIT_INTERRUPTED
    except EOFError:
        raise UsageError("install: the terminal closed before every question was answered: nothing was changed") from None
    flags = {**given, **answers.flags()}
    term.say()
    term.say("Your answers:")
    for line in answers.recap(known.token_source):
        term.say(line)
    term.say()
    secrets = answers.secret_env()
    if SECRET_KEY_ENV in secrets:  # read by Settings.load, which looks at this process's environment
        os.environ[SECRET_KEY_ENV] = secrets[SECRET_KEY_ENV]
    env = {**os.environ, **secrets}
    # every question is answered: the flag run's prompt for a missing domain or certificate must not ask again
    return command.execute(flags, plan_only=plan_only, yes=False, resume=False, log_file=log_file, json_output=False,
                           colour=colour, env=env, interactive=True, ask=lambda question: "")
