"""The cloudstack step: `--cloudstack simulator` runs the Apache CloudStack simulator in Podman, waits for it to
answer listZones, creates StackBill's user and its API keys and records them in the credentials file;
`--cloudstack existing` records the URL and keys of a CloudStack that runs elsewhere.

Unlike the current script, the admin login and the new user's password travel in POST bodies (never in a URL,
where access logs keep them), an existing user is reused (a second run changes nothing), keys are generated
only when the user has none, and the secret key never enters the install state file (it comes from
--cloudstack-secret-key-file or $SBOPS_CLOUDSTACK_SECRET_KEY and is written only to the 0600 credentials file).
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import string
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sbops import credentials as creds_mod
from sbops.credentials import CloudStack
from sbops.diff import file_diff
from sbops.install.steps import Resource, Step
from sbops.model import Change, Plan
from sbops.probes import cloudstack as cs
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run

GROUP = "cloudstack"
DEFAULT_ADMIN = ("admin", "password")  # the simulator's published default admin (the script's "admin / password")
SECRET_ENV = "SBOPS_CLOUDSTACK_SECRET_KEY"


def stackbill_username(domain: str) -> str:
    """The user the script creates: sb-admin@DOMAIN."""
    return f"sb-admin@{domain}" if domain else "sb-admin"


def simulator_url(settings: object, server_ip: str) -> str:
    return f"http://{server_ip}:{int(settings['cloudstack.simulator_port'])}/client"  # type: ignore[index]


def run_argv(ctx: "Context") -> list[str]:
    s = ctx.settings
    return cs.podman_argv(ctx, "run", "-d", "--name", str(s["cloudstack.simulator_container"]), "-p",
                          f"{int(s['cloudstack.simulator_port'])}:{int(s['cloudstack.simulator_container_port'])}",
                          str(s["cloudstack.simulator_image"]))


def _admin(run: "Run") -> tuple[str, Secret]:
    section = run.credentials.cloudstack
    user = str(run.settings["cloudstack.admin_user"]) or (section.admin_user if section else "") or DEFAULT_ADMIN[0]
    password = run.settings["cloudstack.admin_password"] or (section.admin_password if section else None) \
        or Secret(DEFAULT_ADMIN[1])
    return user, password


# -- resources ------------------------------------------------------------------------------------------------
def plan_container(run: "Run", ctx: "Context") -> Plan:
    if run.options.cloudstack == cs.EXISTING:
        return Plan(nothing_to_do="an existing CloudStack: no simulator container")
    if run.options.cloudstack != cs.SIMULATOR:
        return Plan(nothing_to_do=_not_asked(run))
    name = str(ctx.settings["cloudstack.simulator_container"])
    podman = cs.podman_argv(ctx)[0]
    if shutil.which(podman) is None and not Path(podman).is_file():
        from sbops.probes.system import apt_install_argv

        install = apt_install_argv(["podman"])

        def install_podman() -> None:
            run.apt_update()()
            result = run.runner.run(install, timeout=900)
            if not result.ok:
                raise RuntimeError(f"installing podman failed: {result.one_line_error()}")

        return Plan(changes=(Change("install podman (Debian/Ubuntu package)", (shlex.join(install),), install_podman),
                             Change(f"run the CloudStack simulator as container {name}",
                                    (shlex.join(run_argv(ctx)),), lambda: _podman(run, run_argv(ctx)))))
    inspect, error = cs.inspect_container(ctx, name)
    if error:
        return Plan(blockers=(f"cannot ask podman about {name}: {error}",))
    if inspect is None:
        argv = run_argv(ctx)
        return Plan(changes=(Change(f"run the CloudStack simulator as container {name} (image "
                                    f"{ctx.settings['cloudstack.simulator_image']})", (shlex.join(argv),),
                                    lambda: _podman(run, argv)),))
    port, inner = int(ctx.settings["cloudstack.simulator_port"]), int(ctx.settings["cloudstack.simulator_container_port"])
    if (str(port), str(inner)) not in cs.published_ports(inspect):
        return Plan(blockers=(f"container {name} exists but does not publish {port}->{inner}: remove it "
                              f"(podman rm -f {name}) or set cloudstack.simulator_port",))
    if not (inspect.get("State") or {}).get("Running"):
        argv = cs.podman_argv(ctx, "start", name)
        return Plan(changes=(Change(f"start container {name}", (shlex.join(argv),), lambda: _podman(run, argv)),))
    return Plan(nothing_to_do=f"container {name} runs and publishes {port}->{inner}")


def _podman(run: "Run", argv: list[str]) -> None:
    result = run.runner.run(argv, timeout=900)  # a first run may pull a large image
    if not result.ok:
        raise RuntimeError(f"{shlex.join(argv)} failed: {result.one_line_error()}")


def plan_api(run: "Run", ctx: "Context") -> Plan:
    """The simulator answers listZones (as its admin): it takes minutes to deploy its zone after it starts."""
    if run.options.cloudstack == cs.EXISTING:
        return Plan(nothing_to_do="an existing CloudStack: its API is tried with the keys given (cloudstack.user)")
    if run.options.cloudstack != cs.SIMULATOR:
        return Plan(nothing_to_do="no --cloudstack given")
    url = simulator_url(ctx.settings, run.credentials.server_ip or "127.0.0.1")
    api = cs.api_url(url)
    user, password = _admin(run)
    if _zones(api, user, password, ctx.net_timeout):
        return Plan(nothing_to_do=f"{api} answers listZones with a zone")
    timeout = float(ctx.settings["cloudstack.wait_timeout"])

    def wait() -> None:
        from sbops.install.run import wait_for

        def probe(c: "Context") -> tuple[bool, str]:
            done = _zones(api, user, password, c.net_timeout)
            return done, "a zone is listed" if done else "no zone yet"

        wait_for(run, f"{api} listZones", timeout, probe, interval=2.0)

    return Plan(changes=(Change(f"wait up to {timeout:g}s for {api} to answer listZones with a zone (through an "
                                "admin session; the login in a POST body)", (), wait),))


def _zones(api: str, user: str, password: Secret, timeout: float) -> bool:
    try:
        session = cs.AdminSession(api, user, password, timeout)
    except cs.AdminError:
        return False
    try:
        return bool(session.run("listZones").get("zone"))
    except cs.AdminError:
        return False
    finally:
        session.close()


def plan_user(run: "Run", ctx: "Context") -> Plan:
    mode = run.options.cloudstack
    if mode == cs.EXISTING:
        return plan_existing(run, ctx)
    if mode != cs.SIMULATOR:
        return Plan(nothing_to_do="no --cloudstack given")
    url = simulator_url(ctx.settings, run.credentials.server_ip or "127.0.0.1")
    api = cs.api_url(url)
    admin_user, admin_password = _admin(run)
    username = str(ctx.settings["cloudstack.username"]) or stackbill_username(run.credentials.domain)
    try:
        session = cs.AdminSession(api, admin_user, admin_password, ctx.net_timeout)
    except cs.AdminError as exc:
        return Plan(blockers=(f"cannot log in to the simulator as {admin_user}: {exc}",))
    try:
        found = [u for u in (session.run("listUsers", username=username, listall="true").get("user") or [])
                 if u.get("username") == username]
        keys = session.run("getUserKeys", id=found[0]["id"]).get("userkeys") or {} if len(found) == 1 else {}
    except cs.AdminError as exc:
        return Plan(blockers=(str(exc),))
    finally:
        session.close()
    if len(found) > 1:
        return Plan(blockers=(f"{len(found)} CloudStack users are named {username}: refusing to guess",))
    section = run.credentials.cloudstack
    have_key = section.api_key.reveal() if section and section.api_key else ""
    have_secret = section.secret_key.reveal() if section and section.secret_key else ""
    if found and keys.get("apikey") and (keys.get("apikey"), keys.get("secretkey")) == (have_key, have_secret) \
            and section is not None and section.url == url and section.simulator:
        return Plan(nothing_to_do=f"{username} exists with keys, and {run.credentials_path} records them")
    password = section.password if section and section.password and found else None

    def apply() -> None:
        session = cs.AdminSession(api, admin_user, admin_password, ctx.net_timeout)
        try:
            user_password = password
            if not found:
                user_password = new_password()
                made = session.run("createUser", account="admin", username=username,
                                   password=user_password.reveal(), email=f"{username.split('@')[0]}@"
                                   f"{run.credentials.domain or 'localhost'}", firstname="StackBill",
                                   lastname="Admin")
                user_id = (made.get("user") or made)["id"]
            else:
                user_id = found[0]["id"]
            current = session.run("getUserKeys", id=user_id).get("userkeys") or {}
            if not current.get("apikey"):
                current = session.run("registerUserKeys", id=user_id).get("userkeys") or {}
        finally:
            session.close()
        record(run, CloudStack(url=url, admin_user=admin_user, admin_password=admin_password, username=username,
                               password=user_password, api_key=Secret(current["apikey"]),
                               secret_key=Secret(current["secretkey"]), simulator=True))

    what = ("create CloudStack user " + username + " in account admin (createUser; its password in the POST body)"
            if not found else f"reuse CloudStack user {username}")
    keys_text = "record its keys" if keys.get("apikey") else "generate its API keys (registerUserKeys)"
    return Plan(changes=(Change(f"{what}; {keys_text}; write URL, user and keys to {run.credentials_path} (0600)",
                                (), apply),))


def plan_existing(run: "Run", ctx: "Context") -> Plan:
    """Record the URL and keys given for an existing CloudStack, after a signed request with them succeeds."""
    url = run.options.cloudstack_url or str(ctx.settings["cloudstack.url"])
    key = run.options.cloudstack_api_key or (ctx.settings["cloudstack.api_key"].reveal()
                                             if ctx.settings["cloudstack.api_key"] else "")
    secret = secret_key(run)
    missing = [n for n, v in (("--cloudstack-url", url), ("--cloudstack-api-key", key),
                              (f"--cloudstack-secret-key-file or ${SECRET_ENV}", secret)) if not v]
    if missing:
        return Plan(blockers=(f"--cloudstack existing needs {', '.join(missing)}",))
    answer = cs.call(cs.api_url(url), "listCapabilities", timeout=ctx.net_timeout, key=Secret(key), secret=secret,
                     lifetime=float(ctx.settings["cloudstack.request_lifetime"]))
    if answer.status != 200:
        why = answer.error or f"HTTP {answer.status}{': ' + answer.errortext if answer.errortext else ''}"
        return Plan(blockers=(f"a request to {cs.api_url(url)} signed with the given keys fails ({why}): nothing "
                              "recorded",))
    section = run.credentials.cloudstack
    if section is not None and not section.simulator and section.url == url and section.api_key == Secret(key) \
            and section.secret_key == secret:
        return Plan(nothing_to_do=f"{run.credentials_path} records {url} and its keys")
    new = CloudStack(url=url, username=section.username if section else "", api_key=Secret(key), secret_key=secret,
                     simulator=False)
    return Plan(changes=(Change(f"record CloudStack {url} and the given keys in {run.credentials_path} (0600)", (),
                                lambda: record(run, new), (_diff(run, new),)),))


def secret_key(run: "Run") -> Secret | None:
    """--cloudstack-secret-key-file (first line), else $SBOPS_CLOUDSTACK_SECRET_KEY, else the setting."""
    path = run.options.cloudstack_secret_key_file
    if path:
        text = creds_mod.read_text_limited(Path(path), 4096, "secret key file").strip().splitlines()
        return Secret(text[0].strip()) if text and text[0].strip() else None
    if run.env.get(SECRET_ENV):
        return Secret(run.env[SECRET_ENV].strip())
    value = run.settings["cloudstack.secret_key"]
    return value if value else None


def new_password() -> Secret:
    alphabet = string.ascii_letters + string.digits
    return Secret("".join(secrets.choice(alphabet) for _ in range(20)))


def _diff(run: "Run", new: CloudStack):
    path = run.credentials_path
    on_disk = creds_mod.load(path) if path.exists() else None
    base = on_disk or run.credentials
    after = creds_mod.render(replace(base, cloudstack=new))
    before = creds_mod.render(on_disk) if on_disk else None
    return file_diff(str(path), before, after, [*base.secrets(), *new.secrets()])


def record(run: "Run", new: CloudStack) -> None:
    """Write the CloudStack section into the credentials file as it is now (atomic, 0600), and make the run's
    desired credentials carry it, so save-credentials keeps it."""
    path = run.credentials_path
    on_disk = creds_mod.load(path) if path.exists() else None
    base = on_disk or run.credentials
    creds_mod.write_atomic(path, creds_mod.render(replace(base, cloudstack=new)), mode=0o600)
    written = creds_mod.load(path)
    if written.cloudstack is None or written.cloudstack.secret_key != new.secret_key:
        raise RuntimeError(f"{path}: written, but reading it back gives other CloudStack keys")
    desired = run.credentials
    merged = replace(written, portal_url=desired.portal_url, server_ip=desired.server_ip, mysql=desired.mysql,
                     mongodb=desired.mongodb, rabbitmq=desired.rabbitmq, nfs_server=desired.nfs_server,
                     nfs_path=desired.nfs_path, path=path)
    run.credentials_plan = replace(run.credentials_plan, desired=merged)


def _not_asked(run: "Run") -> str:
    return "no --cloudstack given: CloudStack is configured later in the portal (as the script's option 1)"


STEPS = {
    "cloudstack": Step("cloudstack", "CloudStack: the simulator in Podman with StackBill's user and keys, or an "
                       "existing CloudStack's URL and keys, in the credentials file", GROUP, (
        Resource("cloudstack.container", plan_container),
        Resource("cloudstack.api", plan_api, needs=("cloudstack.container",)),
        Resource("cloudstack.user", plan_user, needs=("cloudstack.api",)),
    )),
}
