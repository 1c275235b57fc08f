"""Database hosts of their own: the checks and fixes that need a database host's own files or sockets, asked of
(or refused for) the sbops agent installed on that host with `sbops install --role database-host`.

When the credentials file points MySQL or MongoDB at another host, `mysql.config` (the option files the server
reads, its pid file and command line) and `mongodb.bind` (mongod.conf, the listening sockets) cannot be
answered from this machine: reading this machine's files would describe another server, or none. Such a check
is routed to the agent configured for that service (`agents.mysql`, `agents.mongodb`): `GET /results?layer=L&
check=ID` (the exporter's doctor JSON) over HTTPS, verified with `agents.ca_file`, with basic auth (user
`agents.username`, password read from `agents.password_file`, which must be 0600), within `agents.timeout`.
The agent's result is reported as it is, its summary ending "(via agent URL)" and `details.via_agent` set.
Without an agent the check is a skip that says which setting to configure (SB0030), never a pass; only
mongodb.bind, whose first source is the server's own getCmdLineOpts over the network, still runs here then
(for a remote server it never consults this machine's config file or sockets).

Fixes that write a database host's files or run its local tools (mysql-config, mongodb-config,
rabbitmq-management) are refused for a remote host: they run there (`sbops fix NAME` on that host).

The routing decisions and the judgement of an agent's answer are pure (`decide_route`, `remote_fix_blocker`,
`judge_reply`, `password_problem`) and table-tested (tests/unit/test_agents_routing.py); the HTTPS request and
the password file are the I/O at the edges. Never imports the engine, registry or CLI.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from sbops.messages import agents as M
from sbops.model import Reason, Result, result_from_json
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context

# checks that read the database host's own files or sockets -> the service whose host they describe
HOST_FILE_CHECKS: dict[str, str] = {"mysql.config": "mysql", "mongodb.bind": "mongodb"}
# of those, the checks that also have an answer over the network (mongodb.bind: getCmdLineOpts): without an agent
# they run here, where they never read this machine's files for a remote server, instead of skipping
NETWORK_ANSWER = frozenset({"mongodb.bind"})
# fixes that write the database host's files or run its local tools -> the service whose host they change
HOST_FIXES: dict[str, str] = {"mysql-config": "mysql", "mongodb-config": "mongodb",
                              "rabbitmq-management": "rabbitmq"}
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"  # the agent fits its own run inside it
MAX_REPLY = 4 << 20  # a doctor document for one check is a few kB


@dataclass(frozen=True)
class Route:
    """Where a host-file check is answered: `local` (this machine), `agent` (its url), `network` (here, over the
    network only: no agent, and the check has a network answer), or `unconfigured` (a skip)."""

    kind: str
    service: str
    host: str
    url: str = ""

    @property
    def setting(self) -> str:
        return f"agents.{self.service}"


# -- pure -------------------------------------------------------------------------------------------------
def decide_route(check_id: str, host: str, host_is_local: bool, agent_url: str) -> Route | None:
    """None for a check that does not read a database host's files; else where it is answered. A server on
    this machine is always answered here, even with an agent configured (the agent would be this machine).
    With an agent, a check is asked of it even when it has a network answer: only the agent sees the files."""
    service = HOST_FILE_CHECKS.get(check_id)
    if service is None:
        return None
    if host_is_local:
        return Route("local", service, host)
    if not agent_url:
        return Route("network" if check_id in NETWORK_ANSWER else "unconfigured", service, host)
    return Route("agent", service, host, agent_url.rstrip("/"))


def remote_fix_blocker(fix_name: str, host: str, host_is_local: bool) -> str:
    """Pure: why the fix cannot run from this machine ('' when it can): it changes a database host's own files
    or runs its local tools, and that host is another machine."""
    service = HOST_FIXES.get(fix_name)
    if service is None or host_is_local:
        return ""
    return (f"{service} runs on {host}, not on this machine: this fix changes that host's own files; run "
            f"`sbops fix {fix_name}` on {host}")


def password_problem(mode: int | None, owner_is_me: bool = True) -> str:
    """Pure: why a password file with this st_mode cannot be used ('' when it can). None: it does not exist."""
    if mode is None:
        return "does not exist (copy the database host's <dbhost.dir>/password here, mode 0600)"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if stat.S_IMODE(mode) & 0o077:
        return f"is mode {stat.S_IMODE(mode):04o}: a password file must be readable by its owner only (chmod 0600)"
    if not owner_is_me:
        return "belongs to another user: a password file must be sbops's own"
    return ""


def judge_reply(route: Route, check_id: str, status: int, body: bytes, user: str, password_file: str) -> Result:
    """Pure: the agent's HTTP answer as the check's result (the agent's own, marked as coming through it), or
    an error saying why there is none."""
    url = route.url
    if status in (401, 403):
        return M.AUTH_REFUSED.result(url=url, user=user, status=status, password_file=password_file,
                                     details={"via_agent": url})
    text = " ".join(body.decode("utf-8", "replace").split())[:200]
    if status != 200:
        reason = Reason.MISCONFIGURED if status in (400, 404) else Reason.INTERNAL
        why = f"HTTP {status}: {text}" + (" (the agent's dbhost.layers lacks this layer?)" if status == 400 else "")
        return M.BAD_REPLY.result(reason=reason, url=url, check=check_id, why=why, details={"via_agent": url})
    try:
        document = json.loads(body)
    except ValueError:
        return M.BAD_REPLY.result(reason=Reason.INTERNAL, url=url, check=check_id,
                                  why=f"HTTP 200 but not JSON: {text[:80]!r}", details={"via_agent": url})
    checks = document.get("checks") if isinstance(document, dict) else None
    if not isinstance(checks, list):
        return M.BAD_REPLY.result(reason=Reason.INTERNAL, url=url, check=check_id,
                                  why="HTTP 200 but not a doctor document (no checks)", details={"via_agent": url})
    entry = next((e for e in checks if isinstance(e, dict) and e.get("id") == check_id
                  and not e.get("added_as_related")), None)
    if entry is None:
        return M.BAD_REPLY.result(reason=Reason.MISSING, url=url, check=check_id,
                                  why="the agent did not report this check", details={"via_agent": url})
    try:
        result = result_from_json(entry)
    except (KeyError, ValueError, TypeError) as exc:
        return M.BAD_REPLY.result(reason=Reason.INTERNAL, url=url, check=check_id,
                                  why=f"unreadable result: {type(exc).__name__}", details={"via_agent": url})
    node = document.get("node") if isinstance(document, dict) else None
    details = {**result.details, "via_agent": url, **({"agent_node": node} if node else {})}
    return replace(result, summary=f"{result.summary} (via agent {url})", details=details)


def transport_result(route: Route, check_id: str, exc: BaseException) -> Result:
    """Pure: the error a failed request gives (certificate refused, nothing listening, timeout, no route)."""
    url = route.url
    details = {"via_agent": url}
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", "") or str(exc)
        return M.CERT_REFUSED.result(url=url, why=why, details=details)
    if isinstance(exc, ssl.SSLError):
        why = f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}"
        return M.CERT_REFUSED.result(url=url, why=why, details=details)
    if isinstance(exc, ConnectionRefusedError):
        reason, why = Reason.REFUSED, "connection refused (is sbops-agent.service running there?)"
    elif isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        reason, why = Reason.TIMEOUT, "no answer in time"
    elif isinstance(exc, OSError):
        reason, why = Reason.UNREACHABLE, exc.strerror or str(exc) or type(exc).__name__
    else:
        reason, why = Reason.UNREACHABLE, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return M.UNREACHABLE.result(reason=reason, url=url, service=route.service, host=route.host, why=why,
                                details=details)


# -- I/O ----------------------------------------------------------------------------------------------------
def route_for(ctx: "Context", check_id: str) -> Route | None:
    """Where `check_id` is answered for this run's credentials file and settings (None: not a host-file check)."""
    service = HOST_FILE_CHECKS.get(check_id)
    if service is None:
        return None
    host, _ = ctx.endpoint(service)
    return decide_route(check_id, host, ctx.is_local(host), str(ctx.settings[f"agents.{service}"] or ""))


def fix_blocker(ctx: "Context", fix_name: str) -> str:
    """'' when the fix may run from this machine, else the one-line refusal (see remote_fix_blocker)."""
    service = HOST_FIXES.get(fix_name)
    if service is None:
        return ""
    host, _ = ctx.endpoint(service)
    return remote_fix_blocker(fix_name, host, ctx.is_local(host))


def read_password(path: str) -> tuple[Secret | None, str]:
    """The agents' password from its file (first line), or why it cannot be used."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, password_problem(None)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    problem = password_problem(info.st_mode, info.st_uid == os.geteuid())
    if problem:
        return None, problem
    try:
        text = Path(path).read_text()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    line = text.splitlines()[0].strip() if text.strip() else ""
    if not line:
        return None, "is empty"
    return Secret(line), ""


def tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def request(url: str, layer: str, check_id: str, user: str, password: Secret, ca_file: str,
            timeout: float) -> tuple[int, bytes]:
    """GET <url>/results?layer=L&check=ID over HTTPS with basic auth; raises OSError/ssl errors."""
    import base64
    import http.client

    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, timeout=timeout,
                                       context=tls_context(ca_file))
    token = base64.b64encode(f"{user}:{password.reveal()}".encode()).decode()
    path = f"{parts.path.rstrip('/')}/results?{urlencode([('layer', layer), ('check', check_id)])}"
    try:
        conn.request("GET", path, headers={"Authorization": f"Basic {token}", TIMEOUT_HEADER: f"{timeout:g}",
                                           "Accept": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.read(MAX_REPLY)
    finally:
        conn.close()


def probe_via_agent(ctx: "Context", check_id: str, layer: str, route: Route) -> Result:
    """The check's result from the database host's agent, or the SB003x error saying why there is none."""
    if route.kind == "unconfigured":
        return M.NOT_CONFIGURED.result(service=route.service, host=route.host, setting=route.setting,
                                       details={"host": route.host, "setting": route.setting})
    path = str(ctx.settings["agents.password_file"])
    password, why = read_password(path)
    if password is None:
        return M.PASSWORD_FILE.result(path=path, why=why, details={"via_agent": route.url})
    user = str(ctx.settings["agents.username"])
    timeout = max(0.2, min(float(ctx.settings["agents.timeout"]), ctx.net_timeout))
    try:
        status, body = request(route.url, layer, check_id, user, password, str(ctx.settings["agents.ca_file"] or ""),
                               timeout)
    except Exception as exc:  # noqa: BLE001 - every transport failure is judged (certificate, refused, timeout)
        return transport_result(route, check_id, exc)
    return judge_reply(route, check_id, status, body, user, path)
