"""CloudStack: the API StackBill provisions through, the key pair it signs its requests with, and (in simulator
mode) the Podman container that runs the simulator.

Observations are plain data: `call()` sends one API request (signed by the `cs` library when a key pair is
given: HMAC-SHA1, signatureVersion 3 with `expires`) and returns an `Answer` with the HTTP status, the parsed
body and the server's `Date`; `AdminSession` logs an admin in (password in the POST body, never in a URL)
to look users up and manage their keys; `inspect_container()` asks podman. Judgements (`judge_*`) are pure
and tested from tables.

CloudStack answers every authentication failure alike: HTTP 401, "unable to verify user credentials and/or
request signature". To tell a wrong secret key from an unknown API key, a disabled user and clock skew,
sbops compares the server's Date with its own clock (a request signed with `expires` is refused once the
server's clock passes it) and, with an admin login, looks the API key up (`getUser userapikey=`).
"""

from __future__ import annotations

import json
import math
import shlex
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.messages import cloudstack as msg
from sbops.model import Change, Plan, Reason, Result
from sbops.probes.net import one_line, socket_reason
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context

SIMULATOR, EXISTING, NONE, AUTO = "simulator", "existing", "none", "auto"
UNAUTHORIZED = 401


# -- what is configured (pure) ------------------------------------------------------------------------------
def effective_mode(setting: str, has_section: bool, simulator_section: bool, url: str) -> str:
    """simulator / existing / none. `auto`: the credentials file's section says which; else a configured URL
    means an existing CloudStack; else none."""
    if setting != AUTO:
        return setting
    if has_section:
        return SIMULATOR if simulator_section else EXISTING
    return EXISTING if url else NONE


def api_url(url: str) -> str:
    """The API endpoint of a UI URL: `http://HOST:8080/client` -> `http://HOST:8080/client/api`."""
    base = url.strip().rstrip("/")
    return base if base.endswith("/api") else f"{base}/api"


def mode_of(ctx: "Context") -> str:
    section = ctx.credentials.cloudstack if ctx.credentials else None
    return effective_mode(str(ctx.settings["cloudstack.mode"]), section is not None,
                          bool(section and section.simulator), str(ctx.settings["cloudstack.url"]))


# -- observing the API --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One API request's outcome. `error` is set (with `reason`) when no HTTP answer came."""

    status: int = 0
    body: Any = None  # the parsed JSON document, or None
    content_type: str = ""
    date: float | None = None  # the server's Date header (epoch seconds)
    sent_at: float = 0.0  # this host's clock when the request was sent
    error: str = ""
    reason: Reason = Reason.NONE

    @property
    def cloudstack(self) -> bool:
        """CloudStack's JSON: one top-level key `<command>response`."""
        return isinstance(self.body, dict) and len(self.body) == 1 and next(iter(self.body)).endswith("response")

    @property
    def value(self) -> Any:
        return next(iter(self.body.values())) if self.cloudstack else None

    @property
    def errortext(self) -> str:
        value = self.value
        return str(value.get("errortext", "")) if isinstance(value, dict) else ""

    @property
    def skew(self) -> float | None:
        """Seconds the server's clock is ahead of this host's (negative: behind); None without a Date."""
        return None if self.date is None else self.date - self.sent_at


def _answer(response: Any, sent_at: float) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = None
    date = None
    if response.headers.get("Date"):
        try:
            date = parsedate_to_datetime(response.headers["Date"]).timestamp()
        except (TypeError, ValueError):
            date = None
    return Answer(response.status_code, body, response.headers.get("Content-Type", ""), date, sent_at)


def call(api: str, command: str, *, timeout: float, key: Secret | None = None, secret: Secret | None = None,
         lifetime: float = 600.0, **params: Any) -> Answer:
    """Send `command` to `api` (GET; signed with the key pair when both are given) and return what came back."""
    import requests
    from cs import CloudStack, CloudStackException

    seen: list[Any] = []

    class Recording(requests.Session):
        """Keeps the response: cs returns only the body, and the judgement needs the status and Date."""

        def send(self, request: Any, **kwargs: Any) -> Any:
            response = super().send(request, **kwargs)
            seen.append(response)
            return response

    session = Recording()
    signed = bool(key and secret)
    client = CloudStack(endpoint=api, key=key.reveal() if signed else None, secret=secret.reveal() if signed else None,
                        timeout=max(1, math.ceil(timeout)), expiration=int(lifetime), session=session)
    client.timeout = timeout  # cs keeps whole seconds; requests takes the probe's fractional timeout as is
    sent_at = time.time()
    try:
        client._request(command, **params)  # the public form is client.<command>(); the name is data here
    except CloudStackException:
        pass  # an HTTP answer that is not a success: judged from the response below
    except requests.RequestException as exc:
        return Answer(sent_at=sent_at, error=one_line(exc), reason=socket_reason(exc))
    finally:
        session.close()
    if not seen:
        return Answer(sent_at=sent_at, error="no response", reason=Reason.UNREACHABLE)
    return _answer(seen[-1], sent_at)


class AdminError(Exception):
    """The admin login or an admin command failed; the message says how (never a password)."""


class AdminSession:
    """A CloudStack admin's session: `login` by POST (the password travels in the body, never in a URL), then
    commands by POST with the session key. Used to look users up and to manage their keys."""

    def __init__(self, api: str, username: str, password: Secret, timeout: float) -> None:
        import requests

        self.api, self.timeout = api, timeout
        self.http = requests.Session()
        self.key = ""
        answer = self._post({"command": "login", "username": username, "password": password.reveal(), "domain": "/"})
        if answer.get("sessionkey") is None:
            raise AdminError(f"admin login of {username} failed: {answer.get('errortext') or 'no session key'}")
        self.key = str(answer["sessionkey"])

    def _post(self, form: dict[str, str]) -> dict:
        import requests

        try:
            response = self.http.post(self.api, data={**form, "response": "json"}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AdminError(one_line(exc)) from None
        try:
            body = response.json()
        except ValueError:
            raise AdminError(f"HTTP {response.status_code}: not CloudStack's JSON") from None
        value = next(iter(body.values())) if isinstance(body, dict) and len(body) == 1 else None
        if not isinstance(value, dict):
            raise AdminError(f"HTTP {response.status_code}: not CloudStack's JSON")
        if response.status_code != 200 and form.get("command") != "login":
            raise AdminError(f"{form.get('command')}: error {value.get('errorcode', response.status_code)}: "
                             f"{value.get('errortext', '')}")
        return value

    def run(self, command: str, **params: str) -> dict:
        return self._post({"command": command, "sessionkey": self.key, **params})

    def close(self) -> None:
        self.http.close()


def admin_session(ctx: "Context", api: str) -> AdminSession:
    """The admin login the settings give (cloudstack.admin_user/admin_password, else the credentials file's
    Default Admin); AdminError when there is none or it fails."""
    user, password = str(ctx.settings["cloudstack.admin_user"]), ctx.settings["cloudstack.admin_password"]
    if not user or not password:
        raise AdminError("no admin login: set cloudstack.admin_user and cloudstack.admin_password")
    return AdminSession(api, user, password, ctx.net_timeout)


@dataclass(frozen=True)
class Lookup:
    """What an admin sees of an API key: the user that has it (None: nobody), or why it could not look."""

    available: bool
    why_not: str = ""
    user: dict | None = None


def lookup_key(ctx: "Context", api: str, key: Secret) -> Lookup:
    try:
        session = admin_session(ctx, api)
    except AdminError as exc:
        return Lookup(False, str(exc))
    try:
        try:
            found = session.run("getUser", userapikey=key.reveal())
        except AdminError:
            return Lookup(True, user=None)  # CloudStack: "Unable to find user with the specified api key"
        return Lookup(True, user=found.get("user") or None)
    finally:
        session.close()


# -- judgements (pure) --------------------------------------------------------------------------------------
def judge_reachable(mode: str, url: str, answer: Answer | None) -> Result:
    if mode == NONE:
        return msg.NOT_CONFIGURED.result(mode=mode)
    if not url or answer is None:
        return msg.NO_URL.result(mode=mode)
    api = api_url(url)
    if answer.error:
        result = msg.NO_ANSWER.result(reason=answer.reason, api=api, error=answer.error)
        # in simulator mode the likeliest cause is the container (stopped, gone); the engine's post-pass says so
        return replace(result, causes=(("cloudstack.simulator", "the simulator container"),)) \
            if mode == SIMULATOR else result
    if not answer.cloudstack:
        return msg.NOT_CLOUDSTACK.result(api=api, status=answer.status, content_type=answer.content_type or "none",
                                         details={"status": answer.status})
    value = answer.value if isinstance(answer.value, dict) else {}
    version = (value.get("capability") or {}).get("cloudstackversion", "")
    return msg.ANSWERS.result(api=api, version=f" (CloudStack {version})" if version else
                              f" (HTTP {answer.status}: it wants a signed request)",
                              details={"status": answer.status, "version": version})


def judge_keys(mode: str, url: str, has_key: bool, has_secret: bool, answer: Answer | None,
               lookup: Lookup | None, lifetime: float, username: str = "") -> Result:
    """The signed request's outcome, and why CloudStack refused it when it did."""
    if mode == NONE:
        return msg.KEYS_NOT_APPLICABLE.result(mode=mode)
    if not has_key or not has_secret:
        missing = " and ".join(n for n, have in (("API key", has_key), ("secret key", has_secret)) if not have)
        return msg.KEYS_MISSING.result(missing=missing)
    if not url or answer is None:
        return msg.NO_URL.result(mode=mode)
    api = api_url(url)
    if answer.error:
        return msg.KEYS_NO_ANSWER.result(reason=answer.reason, api=api, error=answer.error)
    if not answer.cloudstack:
        return msg.NOT_CLOUDSTACK.result(api=api, status=answer.status, content_type=answer.content_type or "none")
    details: dict[str, Any] = {"status": answer.status}
    if answer.skew is not None:
        details["clock_skew_seconds"] = round(answer.skew, 1)
    if answer.status == 200:
        return msg.KEYS_WORK.result(api=api, details=details)
    if answer.status != UNAUTHORIZED:
        value = answer.value if isinstance(answer.value, dict) else {}
        return msg.KEYS_ERROR.result(code=value.get("errorcode", answer.status), text=answer.errortext,
                                     details=details)
    if answer.skew is not None and answer.skew >= lifetime:
        return msg.CLOCK_SKEW.result(skew=answer.skew, lifetime=lifetime, details=details)
    if lookup is None or not lookup.available:
        return msg.REJECTED_UNEXPLAINED.result(why=lookup.why_not if lookup else "not tried", details=details)
    user = lookup.user
    if user is None:
        note = f"; user {username} exists and needs its keys recorded" if username else ""
        return msg.KEY_UNKNOWN.result(user_note=note, details=details)
    details.update(username=user.get("username", ""), account=user.get("account", ""), state=user.get("state", ""))
    if str(user.get("state", "")).lower() != "enabled" or str(user.get("accountstate", "enabled")).lower() != "enabled":
        state = user.get("state", "") if str(user.get("state", "")).lower() != "enabled" else \
            f"in a {user.get('accountstate')} account"
        return msg.USER_DISABLED.result(username=user.get("username", "?"), account=user.get("account", "?"),
                                        state=state, details=details)
    return msg.SIGNATURE_REJECTED.result(username=user.get("username", "?"), account=user.get("account", "?"),
                                         details=details)


def published_ports(inspect: dict) -> list[tuple[str, str]]:
    """(host port, container port) pairs of a `podman container inspect` document, as configured (a stopped
    container's too)."""
    bindings = (inspect.get("HostConfig") or {}).get("PortBindings") or {}
    if not bindings:
        bindings = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    for inner, hosts in sorted(bindings.items()):
        for host in hosts or []:
            out.append((str(host.get("HostPort", "")), inner.split("/")[0]))
    return out


def judge_container(mode: str, name: str, inspect: dict | None, podman_error: str, port: int,
                    container_port: int) -> Result:
    if mode != SIMULATOR:
        return msg.NOT_SIMULATOR.result(mode=mode)
    if podman_error:
        return msg.PODMAN_UNUSABLE.result(error=podman_error)
    if inspect is None:
        return msg.CONTAINER_MISSING.result(name=name)
    ports = published_ports(inspect)
    shown = ", ".join(f"{h}->{c}" for h, c in ports) or "no port"
    state = inspect.get("State") or {}
    details = {"state": state.get("Status", ""), "published": shown, "image": inspect.get("ImageName", "")}
    if not state.get("Running"):
        code = state.get("ExitCode")
        return msg.CONTAINER_STOPPED.result(name=name, state=state.get("Status", "not running"),
                                            exit=f" (exit code {code})" if code not in (None, 0) else "",
                                            details=details)
    if (str(port), str(container_port)) not in ports:
        return msg.PORT_NOT_PUBLISHED.result(name=name, published=shown, port=port, container_port=container_port,
                                             details=details)
    return msg.CONTAINER_RUNNING.result(name=name, published=shown, details=details)


# -- podman -------------------------------------------------------------------------------------------------
def podman_argv(ctx: "Context", *args: str) -> list[str]:
    return [*shlex.split(str(ctx.settings["cloudstack.podman_command"])), *args]


def inspect_container(ctx: "Context", name: str) -> tuple[dict | None, str]:
    """(the container's inspect document or None when there is none, podman's error when it cannot tell)."""
    result = ctx.runner.run(podman_argv(ctx, "container", "inspect", name), timeout=max(ctx.timeout, 10))
    if result.ok:
        try:
            found = json.loads(result.stdout)
        except ValueError:
            return None, "podman container inspect: not JSON"
        return (found[0] if found else None), ""
    text = f"{result.stderr}\n{result.stdout}".lower()
    if "no such container" in text or "no such object" in text:
        return None, ""
    return None, result.one_line_error()


# -- probes ---------------------------------------------------------------------------------------------------
def _url(ctx: "Context") -> str:
    return str(ctx.settings["cloudstack.url"])


def probe_reachable(ctx: "Context") -> Result:
    mode, url = mode_of(ctx), _url(ctx)
    answer = call(api_url(url), "listCapabilities", timeout=ctx.net_timeout) if mode != NONE and url else None
    return judge_reachable(mode, url, answer)


def signed_answer(ctx: "Context", url: str) -> Answer:
    return call(api_url(url), "listCapabilities", timeout=ctx.net_timeout, key=ctx.settings["cloudstack.api_key"],
                secret=ctx.settings["cloudstack.secret_key"], lifetime=float(ctx.settings["cloudstack.request_lifetime"]))


def probe_keys(ctx: "Context") -> Result:
    mode, url = mode_of(ctx), _url(ctx)
    key, secret = ctx.settings["cloudstack.api_key"], ctx.settings["cloudstack.secret_key"]
    lifetime = float(ctx.settings["cloudstack.request_lifetime"])
    answer = lookup = None
    if mode != NONE and url and key and secret:
        answer = signed_answer(ctx, url)
        if answer.status == UNAUTHORIZED and not (answer.skew is not None and answer.skew >= lifetime):
            lookup = lookup_key(ctx, api_url(url), key)
    return judge_keys(mode, url, bool(key), bool(secret), answer, lookup, lifetime,
                      str(ctx.settings["cloudstack.username"]))


def probe_simulator(ctx: "Context") -> Result:
    mode, name = mode_of(ctx), str(ctx.settings["cloudstack.simulator_container"])
    inspect, error = (None, "")
    if mode == SIMULATOR:
        inspect, error = inspect_container(ctx, name)
    return judge_container(mode, name, inspect, error, int(ctx.settings["cloudstack.simulator_port"]),
                           int(ctx.settings["cloudstack.simulator_container_port"]))


# -- fixes ------------------------------------------------------------------------------------------------------
def wait_api(api: str, seconds: float, timeout: float) -> bool:
    """Whether `api` answers CloudStack's JSON within `seconds` (after the container starts)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if call(api, "listCapabilities", timeout=timeout).cloudstack:
            return True
        time.sleep(0.5)
    return False


def plan_start(ctx: "Context") -> Plan:
    """`podman start` the stopped simulator container, after proving it is the one the settings name: it
    exists under that name and publishes the configured host port to the simulator's port."""
    mode, name = mode_of(ctx), str(ctx.settings["cloudstack.simulator_container"])
    if mode != SIMULATOR:
        return Plan(blockers=(f"cloudstack.mode is {mode}: there is no simulator container to start",))
    inspect, error = inspect_container(ctx, name)
    if error:
        return Plan(blockers=(f"cannot ask podman: {error}",))
    if inspect is None:
        return Plan(blockers=(f"there is no container {name}: `sbops install --cloudstack simulator` creates it "
                              "(with a new StackBill user and keys)",))
    port, inner = int(ctx.settings["cloudstack.simulator_port"]), int(ctx.settings["cloudstack.simulator_container_port"])
    if (str(port), str(inner)) not in published_ports(inspect):
        shown = ", ".join(f"{h}->{c}" for h, c in published_ports(inspect)) or "no port"
        return Plan(blockers=(f"container {name} publishes {shown}, not {port}->{inner}: not the simulator sbops "
                              "expects; refusing to start it (see the runbook)",))
    if (inspect.get("State") or {}).get("Running"):
        return Plan(nothing_to_do=f"container {name} is running")
    argv = podman_argv(ctx, "start", name)
    url = _url(ctx)

    def apply() -> None:
        result = ctx.runner.run(argv, timeout=120)
        if not result.ok:
            raise RuntimeError(f"podman start {name} failed: {result.one_line_error()}")
        if url:
            wait_api(api_url(url), 60.0, ctx.net_timeout)  # the re-check then sees the API too

    return Plan(changes=(Change(f"start container {name} (it publishes {port}->{inner})", (shlex.join(argv),),
                                apply),))


def plan_keys(ctx: "Context") -> Plan:
    """Make the StackBill user's keys work and the credentials file record them: enable the user if it is
    disabled, record its current keys when the file's differ (no regeneration: the portal may use them), and
    generate keys only when it has none. Refuses unless it can prove the user is StackBill's: found by the
    username the file names, exactly once, and owning the file's API key when CloudStack knows that key."""
    from sbops import credentials as creds_mod

    mode, url = mode_of(ctx), _url(ctx)
    if mode == NONE or not url:
        return Plan(blockers=("no CloudStack is configured",))
    creds = ctx.credentials
    section = creds.cloudstack if creds else None
    for key in ("cloudstack.api_key", "cloudstack.secret_key"):
        source = ctx.settings.source(key)
        if source != "default" and not (ctx.credentials_path and source.startswith(str(ctx.credentials_path))):
            return Plan(blockers=(f"{key} comes from {source}: sbops writes keys only to the credentials file; "
                                  "put the keys the runbook shows there",))
    if section is None or ctx.credentials_path is None:
        return Plan(blockers=("the credentials file has no CloudStack section to record the keys in",))
    username = str(ctx.settings["cloudstack.username"])
    if not username:
        return Plan(blockers=("no StackBill user is named (Username in the credentials file's StackBill User)",))
    api = api_url(url)
    lifetime = float(ctx.settings["cloudstack.request_lifetime"])
    key, secret = ctx.settings["cloudstack.api_key"], ctx.settings["cloudstack.secret_key"]
    if key and secret:
        answer = signed_answer(ctx, url)
        if answer.error:
            return Plan(blockers=(f"{api} does not answer: {answer.error}",))
        if answer.skew is not None and answer.skew >= lifetime:
            return Plan(blockers=(f"CloudStack's clock is {answer.skew:.0f}s ahead of this host's: the keys are not "
                                  "at fault; set the clocks right (see the runbook)",))
        if answer.status == 200:
            return Plan(nothing_to_do=f"signed requests with the recorded keys succeed at {api}")
    try:
        session = admin_session(ctx, api)
    except AdminError as exc:
        return Plan(blockers=(f"cannot log in as a CloudStack admin: {exc}",))
    try:
        found = [u for u in (session.run("listUsers", username=username, listall="true").get("user") or [])
                 if u.get("username") == username]
        if len(found) != 1:
            return Plan(blockers=(f"{'no' if not found else len(found)} CloudStack user(s) named {username}: "
                                  "refusing to guess",))
        user = found[0]
        if key:
            try:
                owner = session.run("getUser", userapikey=key.reveal()).get("user") or {}
            except AdminError:
                owner = {}
            if owner and owner.get("id") != user.get("id"):
                return Plan(blockers=(f"the recorded API key belongs to {owner.get('username')}, not {username}: "
                                      "refusing to change either",))
        keys = session.run("getUserKeys", id=user["id"]).get("userkeys") or {}
    except AdminError as exc:
        return Plan(blockers=(str(exc),))
    finally:
        session.close()
    changes = []
    if str(user.get("state", "")).lower() != "enabled":
        def enable() -> None:
            with_session(ctx, api, lambda s: s.run("enableUser", id=user["id"]))

        changes.append(Change(f"enable CloudStack user {username} (enableUser, through the admin API)", (), enable))
    path = Path(ctx.credentials_path)
    have = (keys.get("apikey") or "", keys.get("secretkey") or "")
    if not have[0]:
        def generate() -> None:
            made = with_session(ctx, api, lambda s: s.run("registerUserKeys", id=user["id"]))
            made = made.get("userkeys") or made
            record_keys(path, Secret(made["apikey"]), Secret(made["secretkey"]))

        changes.append(Change(f"generate API keys for {username} (registerUserKeys: it has none) and record them in "
                              f"{path} (0600)", (), generate))
    elif not (key and secret and key.reveal() == have[0] and secret.reveal() == have[1]):
        new = replace(section, api_key=Secret(have[0]), secret_key=Secret(have[1]))
        from sbops.diff import file_diff

        before = creds_mod.render(creds)
        after = creds_mod.render(replace(creds, cloudstack=new))
        shown = file_diff(str(path), before, after, [*creds.secrets(), *new.secrets()])
        changes.append(Change(f"record {username}'s current API key and secret key in {path} (0600; the keys in "
                              "CloudStack are kept, so whatever uses them keeps working)", (),
                              lambda: record_keys(path, Secret(have[0]), Secret(have[1])), (shown,)))
    if not changes:
        return Plan(nothing_to_do=f"{username} is enabled and the file records its keys")
    return Plan(changes=tuple(changes))


def with_session(ctx: "Context", api: str, action: Any) -> Any:
    session = admin_session(ctx, api)
    try:
        return action(session)
    finally:
        session.close()


def record_keys(path: Path, api_key: Secret, secret_key: Secret) -> None:
    """The credentials file, read now, with the CloudStack section's keys replaced (atomic, 0600, .bak kept)."""
    from sbops import credentials as creds_mod

    current = creds_mod.load(path)
    if current.cloudstack is None:
        raise RuntimeError(f"{path}: the CloudStack section is gone")
    updated = replace(current, cloudstack=replace(current.cloudstack, api_key=api_key, secret_key=secret_key))
    creds_mod.write_atomic(path, creds_mod.render(updated), mode=0o600)
