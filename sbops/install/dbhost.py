"""`sbops install --role database-host`: the sbops agent on a database host of its own.

The agent is `sbops exporter` serving only the database layers (dbhost.layers) on dbhost.listen, over TLS with
the exporter's web-config basic auth, as the systemd service deploy/systemd/sbops-agent.service. `sbops doctor`
on the StackBill server asks it for the checks that need this host's own files (sbops.probes.agents).

What it writes, under dbhost.dir (0700):
    agent.crt, agent.key   the serving certificate: a copy of --agent-cert/--agent-key, else a self-signed one
                           (10 years, for this host's name and addresses), kept on later runs
    password               a random basic-auth password (0600), kept on later runs
    web.yml                tls_server_config (the two files above) and basic_auth_users: dbhost.username with the
                           password's bcrypt hash (rewritten only when it no longer verifies the password)
and the unit in install.unit_dir (or <dbhost.systemd_root>/etc/systemd/system), enabled (and started) with
systemctl (`--root` with dbhost.systemd_root: offline, for tests and images). Every decision is a pure function
of what was observed, so a second run changes nothing and says why; `--dry-run` shows the plan and the diffs.
"""

from __future__ import annotations

import json
import secrets as secrets_mod
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from sbops.diff import file_diff, unified
from sbops.errors import UsageError
from sbops.model import Change, Plan

if TYPE_CHECKING:
    from sbops.context import Context

UNIT = "sbops-agent.service"
HASH_SHOWN = "<bcrypt hash of the password file's password>"
CERT_DAYS = 3650


@dataclass(frozen=True)
class Layout:
    dir: Path
    unit_dir: Path
    systemd_root: str

    @property
    def cert(self) -> Path:
        return self.dir / "agent.crt"

    @property
    def key(self) -> Path:
        return self.dir / "agent.key"

    @property
    def password(self) -> Path:
        return self.dir / "password"

    @property
    def web_config(self) -> Path:
        return self.dir / "web.yml"

    @property
    def unit(self) -> Path:
        return self.unit_dir / UNIT


def layout(settings: Any) -> Layout:
    root = str(settings["dbhost.systemd_root"] or "")
    unit_dir = Path(root) / "etc/systemd/system" if root else Path(str(settings["install.unit_dir"]))
    return Layout(Path(str(settings["dbhost.dir"])), unit_dir, root)


# -- pure -------------------------------------------------------------------------------------------------
def render_unit(shipped: str, sbops_argv: list[str], listen: str, layers: str, web_config: str, config: str = "",
                credentials: str = "") -> str:
    """The shipped unit with ExecStart running the exporter as the agent (flags win over the config file)."""
    argv = [*sbops_argv, "exporter", "--listen", listen, "--layers", layers, "--web-config", web_config,
            *(["--config", config] if config else []), *(["--credentials", credentials] if credentials else [])]
    lines = [f"ExecStart={shlex.join(argv)}" if line.startswith("ExecStart=") else line for line in shipped.splitlines()]
    return "\n".join(lines) + "\n"


def render_web_config(cert: str, key: str, user: str, password_hash: str) -> str:
    """The exporter-toolkit web-config: TLS with the agent's certificate, basic auth for one user."""
    return ("# Written by sbops install --role database-host: the sbops agent's TLS and basic auth.\n"
            "tls_server_config:\n"
            f"  cert_file: {json.dumps(cert)}\n"
            f"  key_file: {json.dumps(key)}\n"
            "  min_version: TLS12\n"
            "basic_auth_users:\n"
            f"  {json.dumps(user)}: {json.dumps(password_hash)}\n")


def listen_host(listen: str) -> str:
    host = listen.rpartition(":")[0].strip("[]")
    return host


def cert_names(listen: str, hostname: str, addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses the self-signed certificate is for: the listen address when it is one
    (else every non-loopback address of this host), the host's name, and localhost for a local check."""
    host = listen_host(listen)
    ips = [host] if host and host not in ("0.0.0.0", "::") else [a for a in addresses if not a.startswith("127.")
                                                                 and a != "::1" and "%" not in a]
    ips = list(dict.fromkeys([*ips, "127.0.0.1"]))
    names = list(dict.fromkeys([n for n in (hostname, "localhost") if n]))
    return names, ips


def hash_verifies(web_text: str | None, user: str, password: str) -> bool:
    """Whether an existing web.yml's hash for `user` still verifies `password` (then it is kept)."""
    import bcrypt
    import yaml

    if not web_text:
        return False
    try:
        doc = yaml.safe_load(web_text)
        hashed = str(((doc or {}).get("basic_auth_users") or {}).get(user) or "")
        return bool(hashed) and bcrypt.checkpw(password.encode(), hashed.encode())
    except Exception:  # noqa: BLE001 - an unreadable file is rewritten
        return False


def desired_web(layout_: Layout, user: str, password_hash: str) -> str:
    return render_web_config(str(layout_.cert), str(layout_.key), user, password_hash)


def make_self_signed(names: list[str], ips: list[str], days: int = CERT_DAYS) -> tuple[str, str]:
    """A self-signed serving certificate (EC P-256) for `names` and `ips`: (cert PEM, key PEM)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sbops agent {names[0] if names else ips[0]}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def enabled_offline(root: str) -> bool:
    """With dbhost.systemd_root: whether `systemctl --root` enabled the unit (its wants symlink exists)."""
    link = Path(root) / "etc/systemd/system/multi-user.target.wants" / UNIT
    return link.is_symlink() or link.exists()  # the link is absolute inside that root: never followed here


# -- the plan ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    config: str = ""
    credentials: str = ""
    agent_cert: str = ""
    agent_key: str = ""


def plan(ctx: "Context", options: Options) -> Plan:
    """What installing the agent would change; the writes live only in the changes' apply closures."""
    from sbops import shipped
    from sbops.probes import system

    settings = ctx.settings
    where = layout(settings)
    runner = ctx.runner
    user = str(settings["dbhost.username"])
    listen = str(settings["dbhost.listen"])
    layers = str(settings["dbhost.layers"])
    changes: list[Change] = []
    notes: list[str] = []
    if (options.agent_cert == "") != (options.agent_key == ""):
        raise UsageError("--agent-cert and --agent-key go together (the agent's certificate and its key)")

    if not where.dir.is_dir():
        changes.append(Change(f"create {where.dir} (0700): the agent's certificate, key, password and web-config",
                              (f"mkdir -m 0700 -p {where.dir}",),
                              lambda: where.dir.mkdir(mode=0o700, parents=True, exist_ok=True)))
    # the certificate and its key
    current_cert = runner.read_file(where.cert)
    if options.agent_cert:
        try:
            cert_text, key_text = Path(options.agent_cert).read_text(), Path(options.agent_key).read_text()
        except OSError as exc:
            raise UsageError(f"--agent-cert/--agent-key: cannot read {exc.filename}: {exc.strerror}") from None
        if "BEGIN CERTIFICATE" not in cert_text:
            raise UsageError(f"--agent-cert {options.agent_cert}: not a PEM certificate")
        if "PRIVATE KEY" not in key_text:
            raise UsageError(f"--agent-key {options.agent_key}: not a PEM private key")
        if current_cert != cert_text or runner.read_file(where.key) != key_text:
            changes.append(_write_pair(runner, where, cert_text, key_text, f"copy {options.agent_cert} and its key"))
    elif current_cert is None or runner.read_file(where.key) is None:
        names, ips = cert_names(listen, socket.gethostname(), _addresses())
        cert_text, key_text = make_self_signed(names, ips)
        changes.append(_write_pair(runner, where, cert_text, key_text,
                                   f"generate a self-signed certificate for {', '.join([*names, *ips])} "
                                   f"({CERT_DAYS // 365} years)"))
    # the password
    password = (runner.read_file(where.password) or "").strip()
    if not password:
        password = secrets_mod.token_urlsafe(24)
        new_password = password + "\n"
        changes.append(Change(f"write {where.password} (0600): a random password for basic-auth user {user}", (),
                              lambda: runner.write_file(where.password, new_password, 0o600),
                              (file_diff(str(where.password), None, "(a random password, not shown)\n"),)))
    # the web-config
    current_web = runner.read_file(where.web_config)
    keep = hash_verifies(current_web, user, password) and current_web == desired_web(
        where, user, _hash_of(current_web, user))
    if not keep:
        import bcrypt

        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(12)).decode()
        web_text = desired_web(where, user, hashed)
        shown = desired_web(where, user, HASH_SHOWN)
        changes.append(Change(f"write {where.web_config} (0600): TLS with {where.cert.name}, basic auth for {user}",
                              (), lambda: runner.write_file(where.web_config, web_text, 0o600),
                              (file_diff(str(where.web_config), _shown_web(current_web, user), shown, [password]),)))
    # the unit
    config = str(Path(options.config).resolve()) if options.config else ""
    creds = str(Path(options.credentials).resolve()) if options.credentials else ""
    unit_text = render_unit(shipped.agent_unit_file().read_text(), shipped.default_sbops(), listen, layers,
                            str(where.web_config), config, creds)
    current_unit = runner.read_file(where.unit)
    root_args = [f"--root={where.systemd_root}"] if where.systemd_root else []
    if current_unit != unit_text:
        def write_unit() -> None:
            where.unit_dir.mkdir(parents=True, exist_ok=True)
            runner.write_file(where.unit, unit_text, 0o644)
            if not where.systemd_root:
                _systemctl(runner, "daemon-reload")

        changes.append(Change(f"write {where.unit} (`sbops exporter` on {listen}, layers {layers}, TLS and basic auth)",
                              () if where.systemd_root else ("systemctl daemon-reload",), write_unit,
                              (file_diff(str(where.unit), current_unit, unit_text),)))
    if where.systemd_root:
        if not enabled_offline(where.systemd_root) or current_unit != unit_text:
            argv = ["systemctl", *root_args, "enable", UNIT]
            changes.append(Change(f"enable {UNIT} in {where.systemd_root} (offline: it starts at that system's boot)",
                                  (shlex.join(argv),), lambda: _systemctl(runner, *argv[1:])))
        notes.append(f"dbhost.systemd_root is set: {UNIT} is enabled in {where.systemd_root}, not started here")
    else:
        state = system.unit_state(runner, UNIT)
        running = state.active == "active"
        if state.enabled != "enabled" or not running:
            changes.append(Change(f"enable and start {UNIT} (now {state.enabled}, {state.active})",
                                  (f"systemctl enable --now {UNIT}",), lambda: _systemctl(runner, "enable", "--now", UNIT)))
        elif changes:
            changes.append(Change(f"restart {UNIT} so it serves the new files", (f"systemctl restart {UNIT}",),
                                  lambda: _systemctl(runner, "restart", UNIT)))
    host = listen_host(listen)
    shown_host = host if host not in ("", "0.0.0.0", "::") else "THIS-HOST"
    notes.append(f"on the StackBill server: agents.<service> = https://{shown_host}:{listen.rpartition(':')[2]}, "
                 f"agents.username = {user}, agents.ca_file = a copy of {where.cert}, agents.password_file = a copy "
                 f"of {where.password} (mode 0600)")
    if not changes:
        return Plan(nothing_to_do=f"the agent is installed as wanted ({where.unit}, {where.web_config})",
                    notes=tuple(notes))
    return Plan(changes=tuple(changes), notes=tuple(notes))


def _write_pair(runner: Any, where: Layout, cert_text: str, key_text: str, what: str) -> Change:
    def write() -> None:
        runner.write_file(where.key, key_text, 0o600)
        runner.write_file(where.cert, cert_text, 0o644)

    return Change(f"{what}: {where.cert} (0644) and {where.key} (0600)", (), write,
                  (file_diff(str(where.cert), runner.read_file(where.cert), cert_text),
                   file_diff(str(where.key), None, "(private key, not shown)\n")))


def _hash_of(web_text: str | None, user: str) -> str:
    import yaml

    try:
        return str(((yaml.safe_load(web_text or "") or {}).get("basic_auth_users") or {}).get(user) or "")
    except Exception:  # noqa: BLE001
        return ""


def _shown_web(web_text: str | None, user: str) -> str | None:
    """The current web.yml for a diff, its hash replaced by the placeholder (a hash is never shown)."""
    if web_text is None:
        return None
    hashed = _hash_of(web_text, user)
    return web_text.replace(hashed, HASH_SHOWN) if hashed else web_text


def _addresses() -> list[str]:
    try:
        import psutil

        return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                if a.family in (socket.AF_INET, socket.AF_INET6)]
    except Exception:  # noqa: BLE001
        return []


def _systemctl(runner: Any, *args: str) -> None:
    result = runner.run(["systemctl", *args], timeout=60)
    if not result.ok:
        raise RuntimeError(f"systemctl {' '.join(args)}: {result.one_line_error()}")


# -- running it ---------------------------------------------------------------------------------------------
def render(plan_: Plan) -> str:
    lines = ["install --role database-host: the sbops agent (sbops exporter with the database layers, TLS, basic auth)"]
    if plan_.empty:
        lines.append(f"  nothing to do: {plan_.nothing_to_do}")
    for number, change in enumerate(plan_.changes, start=1):
        lines.append(f"  {number}. {change.description}")
        lines.extend(f"       $ {command}" for command in change.commands)
        for diff in change.files:
            lines.extend(f"       {line}" for line in unified(diff))
    lines.extend(f"  note: {note}" for note in plan_.notes)
    return "\n".join(lines) + "\n"


def execute(ctx: "Context", options: Options, *, dry_run: bool, yes: bool, json_output: bool) -> int:
    """Plan, then (unless a dry run) apply: 0 done or nothing to do, 1 a change failed; usage errors raise."""
    from sbops.diff import as_json

    plan_ = plan(ctx, options)
    document: dict[str, Any] = {
        "role": "database-host", "dry_run": dry_run, "nothing_to_do": plan_.nothing_to_do, "notes": list(plan_.notes),
        "changes": [{"description": c.description, "commands": list(c.commands),
                     "files": [as_json(d) for d in c.files]} for c in plan_.changes]}
    out = (lambda text: None) if json_output else sys.stdout.write
    out(render(plan_))
    if dry_run or plan_.empty:
        out("dry run: nothing was changed\n" if dry_run and not plan_.empty else "")
        document["outcome"] = "dry-run" if dry_run else "nothing-to-do"
        if json_output:
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("install --role database-host: standard input is not a terminal; pass --yes to apply, "
                             "or --dry-run")
        import typer

        if not typer.confirm(f"Apply {len(plan_.changes)} change(s)?", default=False):
            out("aborted: nothing was changed\n")
            return 3
    applied = 0
    for number, change in enumerate(plan_.changes, start=1):
        try:
            if change.apply is not None:
                change.apply()
            applied += 1
        except Exception as exc:  # noqa: BLE001 - reported, and the rest is not applied
            out(f"  step {number} failed: {' '.join(str(exc).split())[:300]}\n")
            document.update(outcome="failed", applied=applied, error=str(exc)[:300])
            if json_output:
                sys.stdout.write(json.dumps(document, indent=2) + "\n")
            return 1
    out(f"installed: {applied} change(s) applied\n")
    document.update(outcome="installed", applied=applied)
    if json_output:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return 0
