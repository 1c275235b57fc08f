"""The probe pod's pure parts: its busybox script, its manifest, how its state reads, and its log's lines.

When sbops cannot enter a pod sandbox (it is not root, or it does not run on the node), setting
`netpath.probe_image` names an image to start one short-lived pod from; its connections take the same path
as the portal's pods (the CNI bridge, the host firewall, kube-proxy's rules, the servers' bind address).
Only busybox's `sh`, `nc`, `wget` and `timeout` are needed in the image.

Everything in the pod spec is readable by anyone who may read pods, so the script holds addresses and
ports only: never a user or a password. It makes TCP connections (`nc -w`) and plain HTTP GETs
(`wget`, bounded by busybox `timeout`: busybox 1.35's `wget -T` crashes) side by side and prints one line
per attempt:

    SBOPS-NETPATH <id> <outcome> <ms> <busybox's own message, one line>

`outcome` is ok / refused / timeout / unreachable / error, classified by busybox's messages ("Connection
refused", "timed out", "Network is unreachable", "No route to host", "bad address"), the only signal a shell
gets. An HTTP answer with an error status is an answer (`wget: server returned error: HTTP/1.1 404`), so
`ok`. A last line `SBOPS-NETPATH-DONE <n>` says the script ran to its end.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

from sbops.model import Reason

PREFIX = "SBOPS-NETPATH"
DONE = f"{PREFIX}-DONE"
CONTAINER = "probe"
MANAGED_BY = {"app.kubernetes.io/managed-by": "sbops", "app.kubernetes.io/component": "netpath-probe"}
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
DEADLINE_MARGIN = 30  # activeDeadlineSeconds beyond the run's budget: the kubelet stops a pod sbops left behind
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                           "RegistryUnavailable"})
START_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                            "StartError", "ContainerCannotRun"})
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_LINE = re.compile(rf"^{PREFIX} (\S+) (ok|refused|timeout|unreachable|error) (\d+) ?(.*)$")
_HTTP_STATUS = re.compile(r"HTTP/\d(?:\.\d)? (\d{3})")

# The script's fixed part. $T is the attempt timeout in whole seconds. `ms` reads /proc/uptime (hundredths of a
# second) because busybox's date has no sub-second clock. `get` keeps only wget's status and error lines (the
# response's headers may carry a session cookie). `line` classifies one attempt by its exit status and
# busybox's message; `echo` writes each line with one write, so the concurrent attempts' lines never interleave.
PRELUDE = r"""ms() { read u _ </proc/uptime; u=${u%.*}${u#*.}; echo $((u * 10)); }
line() {
  m=$(echo "$4" | tr '\n\r\t' '   ' | cut -c1-200)
  case "$2:$m" in
    0:*) o=ok ;;
    *"server returned error: HTTP"*) o=ok ;;
    143:*|124:*|*"timed out"*|*"Timed out"*) o=timeout ;;
    *refused*) o=refused ;;
    *unreachable*|*"No route"*|*"bad address"*|*"resolve"*) o=unreachable ;;
    *) o=error ;;
  esac
  echo "SBOPS-NETPATH $1 $o $(($(ms) - $3)) $m"
}
tcp() { s=$(ms); e=$(timeout $((T + 2)) nc -w "$T" "$2" "$3" </dev/null 2>&1 >/dev/null); line "$1" $? "$s" "$e"; }
get() {
  s=$(ms)
  e=$( (timeout "$T" wget -S -O /dev/null "$2" 2>&1; echo "rc=$?") | grep -E '^ *HTTP/|wget:|^rc=')
  line "$1" "${e##*rc=}" "$s" "${e%rc=*}"
}
"""


@dataclass(frozen=True)
class Probe:
    """One attempt the pod makes: `kind` tcp (connect and close) or http (GET / over plain HTTP)."""

    id: str
    kind: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# ======================================================================================================
# The script
# ======================================================================================================
def safe_host(host: str) -> bool:
    """An IP address or a DNS name: nothing a shell, nc or a URL could read as anything else."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.startswith("-")


def whole_seconds(timeout: float) -> int:
    """busybox's nc -w and timeout take whole seconds: the attempt timeout rounded, at least 1."""
    return max(1, int(round(timeout)))


def build_script(probes: list[Probe], timeout: float) -> str:
    """The `sh -c` script that makes every attempt side by side and prints one line each. ValueError for an
    id, kind, host or port that is not what sbops itself produces (the hosts come from the Helm values)."""
    lines = [f"T={whole_seconds(timeout)}", PRELUDE.rstrip("\n")]
    seen: set[str] = set()
    for probe in probes:
        if not _ID.match(probe.id) or probe.id in seen:
            raise ValueError(f"probe id {probe.id!r} is not a unique short token")
        if not safe_host(probe.host):
            raise ValueError(f"{probe.host!r} is neither an IP address nor a DNS name")
        if not 0 < probe.port < 65536:
            raise ValueError(f"port {probe.port} is not a TCP port")
        seen.add(probe.id)
        if probe.kind == "tcp":
            lines.append(f"tcp {probe.id} {shlex.quote(probe.host)} {probe.port} &")
        elif probe.kind == "http":
            host = f"[{probe.host}]" if ":" in probe.host else probe.host
            lines.append(f"get {probe.id} {shlex.quote(f'http://{host}:{probe.port}/')} &")
        else:
            raise ValueError(f"probe kind {probe.kind!r} is neither tcp nor http")
    lines += ["wait", f"echo {DONE} {len(probes)}"]
    return "\n".join(lines) + "\n"


# ======================================================================================================
# The pod
# ======================================================================================================
def manifest(name: str, namespace: str, image: str, pull_secret: str, script: str, budget: float) -> dict[str, Any]:
    """The probe pod: never restarted, stopped by the kubelet after the budget and a margin, no service
    account token and no Service environment (nothing secret to read inside it), a small resource claim (a
    namespace quota may demand one), an unprivileged user without capabilities, and the labels that mark it
    as sbops's."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": int(math.ceil(budget)) + DEADLINE_MARGIN,
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
        "containers": [{
            "name": CONTAINER,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"cpu": "200m", "memory": "64Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
        }],
    }
    if pull_secret:
        spec["imagePullSecrets"] = [{"name": pull_secret}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}, "spec": spec}


@dataclass(frozen=True)
class PodState:
    """What one read of the probe pod says: `done` (it ended), or `failure` (a Reason value) with `why`."""

    done: bool = False
    failure: str = ""
    why: str = ""
    phase: str = ""


def read_state(pod: dict[str, Any]) -> PodState:
    """Whether the probe pod has ended, cannot start (its image does not pull, its container cannot be
    created), or is still on its way (pure)."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "").strip().splitlines()
        why = f"{reason}: {message[0][:300]}" if message else reason
        if reason in PULL_FAILURES:
            return PodState(failure=Reason.IMAGE_PULL.value, why=why, phase=phase)
        if reason in START_FAILURES:
            return PodState(failure=Reason.NOT_RUNNING.value, why=why, phase=phase)
    if phase in ("Succeeded", "Failed"):
        return PodState(done=True, phase=phase, why=str(status.get("reason") or status.get("message") or ""))
    return PodState(phase=phase, why=pending_why(status))


def pending_why(status: dict[str, Any]) -> str:
    """Why a pod that has not ended is where it is: unscheduled, its container waiting, or running (pure)."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('reason') or ''} {condition.get('message') or ''}".strip()
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "waiting" in state:
            return f"container waiting: {(state['waiting'] or {}).get('reason') or 'ContainerCreating'}"
        if "running" in state:
            return "container still running"
    return "not started yet" if status.get("phase", "Pending") == "Pending" else str(status.get("phase"))


def not_started_reason(state: PodState) -> Reason:
    """A probe pod still unfinished at the deadline: pending (never started) or timeout (its script ran on)."""
    return Reason.TIMEOUT if state.phase == "Running" else Reason.PENDING


# ======================================================================================================
# The log
# ======================================================================================================
OUTCOMES = {"ok": Reason.NONE.value, "refused": Reason.REFUSED.value, "timeout": Reason.TIMEOUT.value,
            "unreachable": Reason.UNREACHABLE.value}


def parse_log(text: str, probes: list[Probe]) -> tuple[dict[str, dict[str, Any]], bool]:
    """The attempt records the log's lines give, by probe id, in the sandbox path's shape (address, outcome,
    error, ms; http_status for an HTTP answer), and whether the script ran to its end (pure). Lines that are
    not the script's (a shell's complaint) are ignored; an id the script was not given is ignored."""
    wanted = {p.id: p for p in probes}
    found: dict[str, dict[str, Any]] = {}
    done = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(DONE + " "):
            done = True
            continue
        match = _LINE.match(line)
        if not match or match.group(1) not in wanted or match.group(1) in found:
            continue
        probe_id, word, ms, message = match.groups()
        found[probe_id] = attempt_record(wanted[probe_id], word, int(ms), message.strip())
    return found, done


def attempt_record(probe: Probe, word: str, ms: int, message: str) -> dict[str, Any]:
    """One line's attempt: busybox's word as the sandbox path's outcome (pure). For HTTP, the status that
    wget showed (any status is an answer); a TCP `error` is unreachable with busybox's message, an HTTP one
    is a server that accepted the connection but did not speak HTTP (misconfigured)."""
    record: dict[str, Any] = {"address": probe.address, "ms": ms, "error": "" if word == "ok" else message[:300]}
    if word in OUTCOMES:
        record["outcome"] = OUTCOMES[word]
    elif probe.kind == "http" and ("HTTP" in message or "header" in message):
        record["outcome"] = Reason.MISCONFIGURED.value
    else:
        record["outcome"] = Reason.UNREACHABLE.value
    if probe.kind == "http" and word == "ok":
        statuses = _HTTP_STATUS.findall(message)
        record["http_status"] = int(statuses[-1]) if statuses else None
    return record
