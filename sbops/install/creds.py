"""The credentials and save-credentials steps: the original installer's credentials file, reused.

The file is the source of truth for the three passwords: an existing one is always kept (servers
installed by the bash script keep theirs, and the database steps make the servers match the file); only
a missing password is generated, with `secrets`, and the plan says so. The generated passwords are
written at once (before any server is given them), so a run that fails later cannot lose them.
`save-credentials` brings the rest of the file (portal URL, server IP, hosts) up to date at the end.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sbops import credentials as creds_mod
from sbops.credentials import Credentials, Service
from sbops.diff import file_diff
from sbops.install.steps import ALWAYS, FINAL, Resource, Step
from sbops.model import Change, Plan
from sbops.secret import MASK, Secret

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run

ALPHABET = string.ascii_letters + string.digits  # the original's [A-Za-z0-9]
PASSWORD_LENGTH = 16
SERVICES = ("mysql", "mongodb", "rabbitmq")
FILE_MODE = 0o600


def new_password() -> Secret:
    """16 characters from [A-Za-z0-9], as the original installer made them, from the OS's CSPRNG."""
    return Secret("".join(secrets.choice(ALPHABET) for _ in range(PASSWORD_LENGTH)))


def default_path(explicit: str | None) -> Path:
    """Where the file is read and written: --credentials, $SBOPS_CREDENTIALS, an existing default file,
    else root's ~/stackbill-credentials.txt, where the original installer wrote it."""
    found = creds_mod.find(explicit)
    if found is not None:
        return found
    return creds_mod.DEFAULT_PATHS[0] if os.geteuid() == 0 else creds_mod.DEFAULT_PATHS[1]


@dataclass(frozen=True)
class CredentialsPlan:
    path: Path
    existing: Credentials | None  # the file as read at the start of the run
    desired: Credentials  # what the installation uses (and save-credentials writes)
    generated: tuple[str, ...]  # services whose password is new


def plan_credentials(existing: Credentials | None, path: Path, *, domain: str, server_ip: str, nfs_path: str,
                     ports: dict[str, int], management_port: int = 15672,
                     make: Callable[[], Secret] = new_password) -> CredentialsPlan:
    """Pure (given `make`): keep every password the file has, generate the missing ones, and describe the
    installation (portal URL, server IP, hosts and ports) as the file should record it."""
    base = existing or Credentials()
    generated = []
    services = {}
    for name in SERVICES:
        service: Service = getattr(base, name)
        password = service.password
        if not password:
            password = make()
            generated.append(name)
        services[name] = replace(service, password=password, port=service.port or ports[name])
    rabbit = services["rabbitmq"]
    if not rabbit.management:
        services["rabbitmq"] = replace(rabbit, management=f"http://{rabbit.host or server_ip}:{management_port}")
    # replace(), not a new Credentials: a file's other sections (CLOUDSTACK SIMULATOR, unknown ones) and its
    # layout are kept, and save-credentials rewrites only the values that changed
    desired = replace(
        base, portal_url=f"https://{domain}" if domain else base.portal_url,
        server_ip=server_ip, mysql=services["mysql"], mongodb=services["mongodb"],
        rabbitmq=services["rabbitmq"], nfs_server=base.nfs_server or server_ip, nfs_path=nfs_path, path=path)
    return CredentialsPlan(path, existing, desired, tuple(generated))


def with_new_passwords(plan: CredentialsPlan) -> Credentials:
    """What the credentials step writes: the file as it was plus the generated passwords (the rest of the
    file is save-credentials' business), or the whole installation when there was no file."""
    if plan.existing is None:
        return plan.desired
    updated = plan.existing
    for name in plan.generated:
        updated = replace(updated, **{name: replace(getattr(updated, name), password=getattr(plan.desired, name).password)})
    return updated


def _fields(creds: Credentials) -> dict[str, str]:
    out = {"PORTAL URL": creds.portal_url, "SERVER IP": creds.server_ip, "NFS Server": creds.nfs_server or creds.server_ip,
           "NFS Path": creds.nfs_path}
    for name in SERVICES:
        service: Service = getattr(creds, name)
        section = name.upper()
        out[f"{section} Host"] = service.host or creds.server_ip
        out[f"{section} Port"] = str(service.port or "")
        out[f"{section} Username"] = service.username
        out[f"{section} Password"] = service.password.reveal() if service.password else ""
    return out


def file_differences(on_disk: Credentials, desired: Credentials) -> list[str]:
    """Pure: the fields of the file that differ from the installation, passwords masked."""
    have, want = _fields(on_disk), _fields(desired)
    out = []
    for key, value in want.items():
        if have.get(key) != value:
            shown = (MASK, MASK) if key.endswith("Password") else (have.get(key) or "(none)", value)
            out.append(f"{key}: {shown[0]} -> {shown[1]}")
    return out


# -- the resources ---------------------------------------------------------------------------------------
def plan_passwords(run: "Run", ctx: "Context") -> Plan:
    cp = run.credentials_plan
    if not cp.generated:
        return Plan(nothing_to_do=f"{cp.path} has the MYSQL, MONGODB and RABBITMQ passwords: kept (the database "
                                  "steps make the servers match them)")
    names = ", ".join(n.upper() for n in cp.generated)
    kept = [n.upper() for n in SERVICES if n not in cp.generated and cp.existing is not None]
    where = f"write them to {cp.path} (mode 0600" + (", previous file kept as .bak)" if cp.existing else ")")
    text = f"generate {names} password(s) ({PASSWORD_LENGTH} characters from [A-Za-z0-9]) and {where}"
    notes = (f"kept from the file: {', '.join(kept)}",) if kept else ()
    if cp.existing is not None:
        notes += (f"{cp.path} has no password for {names}: the new one replaces whatever the server has",)

    new_creds = with_new_passwords(cp)
    before = creds_mod.render(cp.existing) if cp.existing is not None else None
    shown = file_diff(str(cp.path), before, creds_mod.render(new_creds),
                      [*new_creds.secrets(), *(cp.existing.secrets() if cp.existing else [])])

    def apply() -> None:
        creds_mod.write_atomic(cp.path, creds_mod.render(new_creds), mode=FILE_MODE)

    return Plan(changes=(Change(text, (), apply, (shown,)),), notes=notes)


def plan_file(run: "Run", ctx: "Context") -> Plan:
    """The credentials file records this installation (read now: the credentials step may have written it)."""
    path = run.credentials_plan.path
    desired = run.credentials
    try:
        on_disk = creds_mod.load(path) if path.exists() else None
    except Exception as exc:  # noqa: BLE001 - UsageError from a file edited during the run
        return Plan(blockers=(str(exc),))
    changes = []
    differs = ["the file does not exist"] if on_disk is None else file_differences(on_disk, desired)
    if differs:
        text = creds_mod.render(replace(desired, generated=datetime.now().strftime("%a %b %d %H:%M:%S %Y")))

        def write() -> None:
            creds_mod.write_atomic(path, text, mode=FILE_MODE)
            if creds_mod.load(path).secrets() != desired.secrets():
                raise RuntimeError(f"{path}: written, but reading it back gives other passwords")

        before = path.read_text() if on_disk is not None else None
        secrets = [*desired.secrets(), *(on_disk.secrets() if on_disk is not None else [])]
        changes.append(Change(f"write {path} (0600): " + "; ".join(differs), (), write,
                              (file_diff(str(path), before, text, secrets),)))
    elif stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
        mode = oct(stat.S_IMODE(path.stat().st_mode))
        changes.append(Change(f"chmod 0600 {path} (it is {mode}: the passwords must be readable by root only)",
                              (), lambda: os.chmod(path, FILE_MODE)))
    if not changes:
        return Plan(nothing_to_do=f"{path} records this installation (mode 0600)")
    return Plan(changes=tuple(changes))


STEPS = {
    "credentials": Step("credentials", "passwords: reuse the credentials file, generate only what is missing", ALWAYS,
                        (Resource("credentials.passwords", plan_passwords),)),
    "save-credentials": Step("save-credentials", "the credentials file records this installation", FINAL,
                             (Resource("credentials.file", plan_file),)),
}
