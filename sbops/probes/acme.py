"""Let's Encrypt through certbot: the lineage, the deploy hook, the renewal timer, and the Gateway's TLS secret.

What the current bash installer does (`certbot certonly --standalone`, a deploy hook that re-creates the secret
with kubectl, `certbot.timer`), done so that nothing needs kubectl, no key is on a command line, and the doctor
can tell whether a renewal reached the cluster:
- `sbops install --letsencrypt --email E` obtains the certificate (plan_certificate), puts the live lineage into
  the secret (plan_deploy, which writes through sbops.probes.tls.write_change, the one secret writer), installs
  the deploy hook (plan_hook: a script in <config_dir>/renewal-hooks/deploy/ that runs `sbops tls deploy-hook`)
  and enables the timer (plan_timer).
- `sbops tls deploy-hook` (certbot runs it after each renewal, RENEWED_LINEAGE set) is deploy_renewed().
- tls.renewal is observe() + judge_renewal(); the tls-deploy-lineage fix is plan_repair().

Which certificate is "ACME-issued": one certbot keeps in the lineage of the domain (live/<domain>/cert.pem,
or any archive/<domain>/cert*.pem, which are its earlier ones). A secret holding a certificate from anywhere
else is not certbot's business (skip, not_applicable), whatever lineage lies around.

The lineage is named after the domain (`--cert-name DOMAIN`), as the bash installer's `-d DOMAIN` names it.
"""

from __future__ import annotations

import re
import shlex
import stat
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from sbops.messages import tls as msg
from sbops.model import Change, Plan, Result, Status

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.runner import CommandResult, HostRunner

HOOK_NAME = "sbops-tls-secret"  # no extension: certbot runs every executable file in the directory
ENABLED = frozenset({"enabled", "enabled-runtime"})
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


# -- pure -----------------------------------------------------------------------------------------------
def email_problem(email: str) -> str:
    """'' when `email` is an address Let's Encrypt would take for its account (local@domain.tld)."""
    if not email:
        return "is empty"
    if len(email) > 254 or not EMAIL.fullmatch(email):
        return f"{email!r} is not an e-mail address (local@domain.tld)"
    return ""


def hook_path(config_dir: str) -> Path:
    return Path(config_dir) / "renewal-hooks" / "deploy" / HOOK_NAME


def live_dir(config_dir: str, domain: str) -> Path:
    return Path(config_dir) / "live" / domain


def certbot_dirs(settings: Any) -> list[str]:
    return ["--config-dir", str(settings["letsencrypt.config_dir"]), "--work-dir", str(settings["letsencrypt.work_dir"]),
            "--logs-dir", str(settings["letsencrypt.logs_dir"])]


def certonly_argv(settings: Any, domain: str, email: str) -> list[str]:
    """certbot certonly, HTTP-01 standalone as the bash installer runs it, the lineage named after the domain."""
    argv = [str(settings["letsencrypt.certbot"]), "certonly", "--standalone", "--preferred-challenges", "http",
            "--non-interactive", "--agree-tos", "-m", email, "-d", domain, "--cert-name", domain,
            "--http-01-port", str(int(settings["letsencrypt.http01_port"])), *certbot_dirs(settings)]
    if settings["letsencrypt.server"]:
        argv += ["--server", str(settings["letsencrypt.server"])]
    return argv


def hook_script(sbops_argv: Sequence[str], config: str = "", credentials: str = "") -> str:
    """The deploy hook's text: a shell line that execs `sbops tls deploy-hook` (RENEWED_LINEAGE is read by
    sbops from the environment; nothing secret is in the script or on its command line)."""
    argv = [*sbops_argv, "tls", "deploy-hook"]
    if config:
        argv += ["--config", config]
    if credentials:
        argv += ["--credentials", credentials]
    return ("#!/bin/sh\n"
            "# Installed by sbops (sbops install --letsencrypt, sbops fix tls-deploy-lineage). certbot runs it after\n"
            "# each renewal with RENEWED_LINEAGE set; sbops puts the renewed certificate into the ingress gateway's\n"
            "# TLS secret through the Kubernetes API (no kubectl, no key on a command line) and logs what it did.\n"
            f"exec {shlex.join(argv)}\n")


def parse_is_enabled(returncode: int, stdout: str, stderr: str) -> str:
    """`systemctl is-enabled UNIT` as one word (enabled, disabled, masked, not-found...), or 'unknown: why'."""
    if returncode == 127:
        return "unknown: systemctl is not installed"
    word = (stdout.strip().splitlines() or [""])[0].strip()
    if word:
        return word
    text = stderr.strip()
    if "No such file" in text or "not found" in text.lower():
        return "not-found"
    return f"unknown: {(text.splitlines() or ['exit code ' + str(returncode)])[-1][:160]}"


def _leaf_der(pem: bytes) -> bytes:
    """The DER of the first certificate of a PEM chain, b'' when there is none readable."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return x509.load_pem_x509_certificates(pem)[0].public_bytes(Encoding.DER)
    except (ValueError, IndexError):
        return b""


def _expires(pem: bytes) -> str:
    from cryptography import x509

    from sbops.probes.tls import not_after

    try:
        return f"{not_after(x509.load_pem_x509_certificates(pem)[0]):%Y-%m-%d %H:%M}"
    except (ValueError, IndexError):
        return "unknown"


@dataclass(frozen=True)
class Lineage:
    """certbot's lineage of the domain: the live certificate and every earlier one (archive/<name>/cert*.pem)."""

    name: str
    live: str  # <config_dir>/live/<name>
    cert: bytes  # live cert.pem
    archive: tuple[bytes, ...] = ()  # archive/<name>/cert*.pem, oldest first
    renewal_conf: bool = False


@dataclass(frozen=True)
class RenewalState:
    where: str  # "istio-system/istio-ingressgateway-certs"
    secret_crt: bytes  # the secret's tls.crt (a public certificate chain)
    config_dir: str
    lineage: Lineage | None
    lineage_problem: str = ""  # why certbot's files could not be read
    hook: str = ""
    hook_exists: bool = False
    hook_executable: bool = False
    timer: str = "certbot.timer"
    timer_state: str = "unknown: not looked at"
    other_hooks: tuple[str, ...] = field(default_factory=tuple)  # the bash installer's reload-istio.sh, ...


def judge_renewal(state: RenewalState) -> Result:
    """tls.renewal, most urgent first: a renewal that never reached the cluster, a missing or non-executable
    hook, the timer. A certificate certbot did not issue here is skipped (not_applicable)."""
    details: dict[str, Any] = {"secret": state.where, "config_dir": state.config_dir, "hook": state.hook,
                               "timer": state.timer, "timer_state": state.timer_state,
                               "other_hooks": list(state.other_hooks)}
    if state.lineage_problem:
        return msg.RENEWAL_UNREADABLE.result(config_dir=state.config_dir, problem=state.lineage_problem, details=details)
    lineage = state.lineage
    if lineage is None:
        return msg.RENEWAL_NOT_ACME.result(where=state.where, details=details,
                                           why=f"no certbot lineage under {state.config_dir}/live")
    details.update(lineage=lineage.live, renewal_conf=lineage.renewal_conf)
    secret_leaf, live_leaf = _leaf_der(state.secret_crt), _leaf_der(lineage.cert)
    earlier = [d for d in (_leaf_der(c) for c in lineage.archive) if d]
    if not secret_leaf or (secret_leaf != live_leaf and secret_leaf not in earlier):
        return msg.RENEWAL_NOT_ACME.result(where=state.where, details=details,
                                           why=f"its certificate is none of the lineage {lineage.live}'s")
    if secret_leaf != live_leaf:
        return msg.RENEWAL_NOT_DEPLOYED.result(where=state.where, lineage=lineage.live,
                                               secret_expires=_expires(state.secret_crt),
                                               live_expires=_expires(lineage.cert), details=details)
    if not state.hook_exists:
        return msg.HOOK_MISSING.result(hook=state.hook, where=state.where, details=details)
    if not state.hook_executable:
        return msg.HOOK_NOT_EXECUTABLE.result(hook=state.hook, where=state.where, details=details)
    if state.timer_state.startswith("unknown"):
        return msg.TIMER_UNKNOWN.result(timer=state.timer, problem=state.timer_state, details=details)
    if state.timer_state not in ENABLED:
        return msg.TIMER_DISABLED.result(timer=state.timer, state=state.timer_state, details=details)
    return msg.RENEWAL_OK.result(where=state.where, lineage=lineage.live, expires=_expires(lineage.cert),
                                 timer=state.timer, details=details)


# -- observers ------------------------------------------------------------------------------------------
def systemctl_argv(settings: Any, *args: str) -> list[str]:
    root = str(settings["letsencrypt.systemd_root"])
    return ["systemctl", *(["--root", root] if root else []), *args]


def timer_state(ctx: "Context", runner: "HostRunner | None" = None) -> str:
    unit = str(ctx.settings["letsencrypt.timer"])
    result = (runner or ctx.runner).run(systemctl_argv(ctx.settings, "is-enabled", unit), timeout=30)
    return parse_is_enabled(result.returncode, result.stdout, result.stderr)


def read_lineage(config_dir: str, name: str) -> Lineage | None:
    """The lineage `name`, None when certbot has none of that name. OSError (permission) propagates."""
    live = live_dir(config_dir, name)
    try:
        cert = (live / "cert.pem").read_bytes()
    except FileNotFoundError:
        return None
    archive_dir = Path(config_dir) / "archive" / name

    def number(path: Path) -> int:
        digits = path.stem.removeprefix("cert")
        return int(digits) if digits.isdigit() else 0

    archive = tuple(p.read_bytes() for p in sorted(archive_dir.glob("cert*.pem"), key=number)) \
        if archive_dir.is_dir() else ()
    return Lineage(name, str(live), cert, archive, (Path(config_dir) / "renewal" / f"{name}.conf").exists())


def observe(ctx: "Context", secret_crt: bytes, where: str) -> RenewalState:
    from sbops.probes import kubecommon

    config_dir = str(ctx.settings["letsencrypt.config_dir"])
    domain = kubecommon.domain(ctx)
    hook = hook_path(config_dir)
    base = dict(where=where, secret_crt=secret_crt, config_dir=config_dir, hook=str(hook),
                timer=str(ctx.settings["letsencrypt.timer"]))
    if not domain:
        return RenewalState(**base, lineage=None, lineage_problem="the domain is unknown (set `domain`)")
    try:
        lineage = read_lineage(config_dir, domain)
    except OSError as exc:
        return RenewalState(**base, lineage=None, lineage_problem=f"{exc.filename}: {exc.strerror or exc}")
    try:
        info = hook.stat()
        exists, executable = True, stat.S_ISREG(info.st_mode) and bool(info.st_mode & stat.S_IXUSR)
    except FileNotFoundError:
        exists, executable = False, False
    except OSError as exc:
        return RenewalState(**base, lineage=lineage, lineage_problem=f"{hook}: {exc.strerror or exc}")
    others = tuple(sorted(str(p) for p in hook.parent.glob("*") if p.name != HOOK_NAME)) if hook.parent.is_dir() else ()
    timer = timer_state(ctx) if lineage is not None else "unknown: not looked at"
    return RenewalState(**base, lineage=lineage, hook_exists=exists, hook_executable=executable, timer_state=timer,
                        other_hooks=others)


def probe_renewal(ctx: "Context") -> Result:
    from sbops.probes import tls

    state = tls.observe_secret(ctx)
    if isinstance(state, Result):
        return state
    if not state.exists or not state.data.get("tls.crt"):
        return tls.judge_secret(state)
    return judge_renewal(observe(ctx, state.data["tls.crt"], f"{state.namespace}/{state.name}"))


# -- plans ----------------------------------------------------------------------------------------------
def _certificate_usable(pem: bytes, domain: str, now: datetime) -> str:
    """'' when the live certificate covers `domain` and is valid now, else why not."""
    from cryptography import x509

    from sbops.probes.tls import covers, not_after, san_names

    try:
        leaf = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        return "its cert.pem is not a certificate"
    if not_after(leaf) <= now:
        return f"its certificate expired on {not_after(leaf):%Y-%m-%d}"
    if not covers(san_names(leaf), domain):
        return f"its certificate does not cover {domain}"
    return ""


def plan_certificate(ctx: "Context", email: str, *, runner: "HostRunner | None" = None) -> Plan:
    """certbot certonly when the lineage of the domain is absent or its certificate unusable."""
    from sbops.probes import kubecommon
    from sbops.runner import display

    domain = kubecommon.domain(ctx)
    if not domain:
        return Plan(blockers=("the domain is unknown: give --domain",))
    config_dir = str(ctx.settings["letsencrypt.config_dir"])
    try:
        lineage = read_lineage(config_dir, domain)
    except OSError as exc:
        return Plan(blockers=(f"{exc.filename}: cannot read: {exc.strerror or exc}",))
    why = "certbot has no lineage for it yet"
    if lineage is not None:
        why = _certificate_usable(lineage.cert, domain, datetime.now(timezone.utc))
        if not why:
            return Plan(nothing_to_do=f"certbot's lineage {lineage.live} holds a valid certificate for {domain} "
                                      f"(until {_expires(lineage.cert)}; certbot renews it)")
    argv = certonly_argv(ctx.settings, domain, email)
    run_on = runner or ctx.runner
    server = str(ctx.settings["letsencrypt.server"]) or "Let's Encrypt"

    def apply() -> None:
        result = run_on.run(argv, timeout=600)
        if not result.ok:
            raise RuntimeError(f"certbot could not obtain a certificate for {domain}: {_certbot_error(result)}")

    return Plan(changes=(Change(f"obtain a certificate for {domain} from {server} with certbot (HTTP-01, standalone on "
                                f"port {ctx.settings['letsencrypt.http01_port']}): {why}", (display(argv),), apply),))


def _certbot_error(result: "CommandResult") -> str:
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Saving debug log", "Ask for help", "See the logfile"))]
    return "; ".join(useful[-3:])[:600] or f"exit code {result.returncode}"


def lineage_files(live: Path) -> tuple[bytes, bytes]:
    """(fullchain.pem, privkey.pem) of a live lineage directory. OSError when unreadable."""
    return (live / "fullchain.pem").read_bytes(), (live / "privkey.pem").read_bytes()


def plan_deploy(ctx: "Context", live: Path | None = None) -> Plan:
    """The Gateway's TLS secret from the live lineage (the domain's, or `live` given by certbot's hook)."""
    from sbops.probes import kubecommon, tls

    domain = kubecommon.domain(ctx)
    if live is None:
        if not domain:
            return Plan(blockers=("the domain is unknown: give --domain (or set `domain`)",))
        live = live_dir(str(ctx.settings["letsencrypt.config_dir"]), domain)
    state = tls.observe_secret(ctx)
    if isinstance(state, Result):
        return Plan(blockers=(state.summary,))
    try:
        cert_pem, key_pem = lineage_files(live)
    except OSError as exc:
        return Plan(blockers=(f"{exc.filename}: cannot read certbot's lineage: {exc.strerror or exc}",))
    problems = tls.validate_pair(cert_pem, key_pem, domain, datetime.now(timezone.utc), str(live))
    if problems:
        return Plan(blockers=tuple(problems))
    where = f"{state.namespace}/{state.name}"
    if state.exists and state.type == tls.TLS_TYPE and state.data.get("tls.crt") == cert_pem \
            and state.data.get("tls.key") == key_pem:
        return Plan(nothing_to_do=f"{where} already holds the live certificate of {live} (until {_expires(cert_pem)})")
    return Plan(changes=(tls.write_change(ctx, state, cert_pem, key_pem,
                                          f"from certbot's live lineage {live} (until {_expires(cert_pem)})"),),
                notes=(f"secret name from {state.source}",))


def sbops_argv() -> list[str]:
    """The hook runs this interpreter's sbops (`python -m sbops`), whatever `sbops` PATH finds under certbot."""
    return [sys.executable, "-m", "sbops"]


def hook_files(ctx: "Context") -> tuple[str, str]:
    """(config file, credentials file) this run read: the hook runs sbops with the same ones (absolute).
    Settings given only through SBOPS_* variables do not reach certbot's hook: put them in the config file."""
    config = str(Path(ctx.settings.config_path).resolve()) if ctx.settings.config_path else ""
    credentials = str(Path(ctx.credentials_path).resolve()) if ctx.credentials_path else ""
    return config, credentials


def plan_hook(ctx: "Context") -> Plan:
    """The deploy hook file, executable, with exactly the text sbops would write."""
    from sbops.diff import file_diff
    from sbops.credentials import write_atomic

    path = hook_path(str(ctx.settings["letsencrypt.config_dir"]))
    text = hook_script(sbops_argv(), *hook_files(ctx))
    try:
        current = path.read_text() if path.exists() else None
        executable = path.exists() and bool(path.stat().st_mode & stat.S_IXUSR)
    except OSError as exc:
        return Plan(blockers=(f"{path}: cannot read: {exc.strerror or exc}",))
    if current == text and executable:
        return Plan(nothing_to_do=f"the deploy hook {path} is installed and executable")

    def apply() -> None:
        # backup=False: a .bak in renewal-hooks/deploy/ would be run by certbot too
        write_atomic(path, text, mode=0o755, backup=False)

    what = "install" if current is None else ("make executable" if current == text else "rewrite")
    return Plan(changes=(Change(f"{what} certbot's deploy hook {path} (mode 0755): after each renewal it runs "
                                "`sbops tls deploy-hook`, which updates the TLS secret through the Kubernetes API",
                                (), apply, (file_diff(str(path), current, text),)),))


def systemd_running() -> bool:
    """systemd is PID 1 here (sd_booted(3)'s test)."""
    return Path("/run/systemd/system").is_dir()


def timer_argvs(settings: Any, running: bool) -> list[list[str]]:
    """Enabling the timer: `systemctl enable`, plus `start` when systemd runs this system (never with
    letsencrypt.systemd_root: that tree is offline)."""
    unit = str(settings["letsencrypt.timer"])
    live = running and not settings["letsencrypt.systemd_root"]
    return [systemctl_argv(settings, "enable", unit), *([systemctl_argv(settings, "start", unit)] if live else [])]


def plan_timer(ctx: "Context", *, runner: "HostRunner | None" = None, running: bool | None = None) -> Plan:
    """certbot.timer enabled (and started when systemd runs); without systemd, say so."""
    from sbops.runner import display

    run_on = runner or ctx.runner
    unit = str(ctx.settings["letsencrypt.timer"])
    current = timer_state(ctx, run_on)
    running = systemd_running() if running is None else running
    note = () if running and not ctx.settings["letsencrypt.systemd_root"] else (
        "systemd is not running this system (no /run/systemd/system), or letsencrypt.systemd_root names an offline "
        f"tree: {unit} is enabled for the next boot, not started; meanwhile Debian's /etc/cron.d/certbot runs "
        "`certbot renew`",)
    if current in ENABLED:
        return Plan(nothing_to_do=f"{unit} is {current}", notes=note)
    if current.startswith("unknown: systemctl"):
        return Plan(blockers=(f"cannot enable {unit}: {current.removeprefix('unknown: ')}",))
    argvs = timer_argvs(ctx.settings, running)

    def apply() -> None:
        for argv in argvs:
            result = run_on.run(argv, timeout=60)
            if not result.ok:
                raise RuntimeError(f"{display(argv)} failed: {result.one_line_error()}")

    return Plan(changes=(Change(f"enable {unit} (it runs `certbot renew` twice a day; now {current})",
                                tuple(display(a) for a in argvs), apply),), notes=note)


def merge(*plans: Plan) -> Plan:
    """One plan of several: blockers of any block it all."""
    blockers = tuple(b for p in plans for b in p.blockers)
    notes = tuple(n for p in plans for n in p.notes)
    if blockers:
        return Plan(blockers=blockers, notes=notes)
    changes = tuple(c for p in plans for c in p.changes)
    nothing = "; ".join(p.nothing_to_do for p in plans if p.nothing_to_do)
    return Plan(changes=changes, notes=notes, nothing_to_do="" if changes else nothing)


def plan_repair(ctx: "Context") -> Plan:
    """tls-deploy-lineage: the live lineage into the secret, the hook reinstalled, the timer enabled. Refuses
    when the secret holds a certificate certbot did not issue (replacing it would undo someone's choice)."""
    current = probe_renewal(ctx)
    if current.status in (Status.SKIP, Status.ERROR):
        return Plan(blockers=(f"tls.renewal: {current.summary}: nothing here for this fix to repair",))
    return merge(plan_deploy(ctx), plan_hook(ctx), plan_timer(ctx))


# -- the deploy hook ------------------------------------------------------------------------------------
def hook_log(ctx: "Context", entry: dict[str, Any]) -> None:
    """One JSON line in letsencrypt.hook_log (and certbot's own log gets the hook's output): no key, ever."""
    from sbops.secret import append_masked_line

    append_masked_line(str(ctx.settings["letsencrypt.hook_log"]),
                       {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **entry}, ctx.secrets(), "")


def deploy_renewed(ctx: "Context", renewed_lineage: str) -> tuple[bool, str]:
    """What `sbops tls deploy-hook` does: (ok, one line said and logged). A lineage other than the portal's
    (certbot runs deploy hooks for every certificate it renews) is left alone."""
    from sbops.probes import kubecommon

    domain = kubecommon.domain(ctx)
    expected = live_dir(str(ctx.settings["letsencrypt.config_dir"]), domain) if domain else None
    entry: dict[str, Any] = {"renewed_lineage": renewed_lineage, "expected_lineage": str(expected or "")}
    if not renewed_lineage:
        ok, text = False, "RENEWED_LINEAGE is not set: certbot sets it when it runs a deploy hook"
    elif expected is None:
        ok, text = False, "the domain is unknown (set `domain`, or the credentials file's PORTAL URL)"
    elif Path(renewed_lineage).resolve() != expected.resolve():
        ok, text = True, f"{renewed_lineage} is not the portal's lineage ({expected}): nothing to do"
    else:
        plan = plan_deploy(ctx, expected)
        if plan.blockers:
            ok, text = False, "; ".join(plan.blockers)
        elif plan.empty:
            ok, text = True, plan.nothing_to_do
        else:
            try:
                for change in plan.changes:
                    assert change.apply is not None
                    change.apply()
                ok, text = True, "; ".join(c.description for c in plan.changes)
            except Exception as exc:  # noqa: BLE001 - logged and reported: certbot shows the hook's failure
                ok, text = False, f"{plan.changes[0].description}: failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
    hook_log(ctx, {**entry, "outcome": "ok" if ok else "failed", "message": text})
    return ok, text
