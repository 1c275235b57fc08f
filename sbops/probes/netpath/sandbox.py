"""Which pod to test from: containerd's own bookkeeping of its running pod sandboxes, checked against the API.

No CRI client library and no socket: containerd's v2 runtime keeps every running task's OCI bundle at
`<state>/io.containerd.runtime.v2.task/<namespace>/<id>/`, with the OCI `config.json` (the CRI plugin writes
the pod's identity into its annotations) and `init.pid` (the task's first process on the host). The CRI
plugin runs Kubernetes' tasks in containerd namespace `k8s.io`. K3s keeps its state under
/run/k3s/containerd, plain containerd under /run/containerd: setting `netpath.containerd_state` lists the
directories to try (the first that exists wins), so a lab can point it at a private containerd.

A sandbox found on disk is only a candidate. The API must confirm that the pod exists, is Running and has
the sandbox's uid (a sandbox of a deleted pod can outlive it briefly), and the process must still have its
network namespace, one that is not the host's (a hostNetwork pod tests nothing). The choice prefers a Ready
pod of the StackBill namespace: its network path is the one the portal's pods take.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from sbops.context import Context

TASKS = "io.containerd.runtime.v2.task"
CRI_NAMESPACE = "k8s.io"
TYPE_KEY = "io.kubernetes.cri.container-type"
NAME_KEY = "io.kubernetes.cri.sandbox-name"
NAMESPACE_KEY = "io.kubernetes.cri.sandbox-namespace"
UID_KEY = "io.kubernetes.cri.sandbox-uid"
MAX_CONFIG = 4 * 1024 * 1024  # an OCI config.json is a few kilobytes; refuse to read a stray huge file


@dataclass(frozen=True)
class Sandbox:
    """One running pod sandbox as containerd's bundle describes it."""

    id: str
    name: str
    namespace: str
    uid: str
    pid: int
    host_network: bool  # the OCI spec joins no network namespace of its own

    @property
    def netns(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def brief(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid, "pid": self.pid,
                "sandbox": self.id[:12]}


# ======================================================================================================
# Pure parsers
# ======================================================================================================
def parse_bundle(bundle_id: str, config_text: str, pid_text: str) -> Sandbox | None:
    """A pod sandbox from its bundle's config.json and init.pid; None for a bundle that is not a sandbox (an
    app container) or lacks the pod's identity. Raises ValueError for text that is not what containerd writes."""
    try:
        config = json.loads(config_text)
    except ValueError as exc:
        raise ValueError(f"config.json is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError("config.json is not a JSON object")
    annotations = config.get("annotations") or {}
    if not isinstance(annotations, dict) or annotations.get(TYPE_KEY) != "sandbox":
        return None
    name, namespace, uid = (str(annotations.get(k) or "") for k in (NAME_KEY, NAMESPACE_KEY, UID_KEY))
    if not (name and namespace and uid):
        return None
    text = pid_text.strip()
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"init.pid is not a process id: {text[:20]!r}")
    linux = config.get("linux") or {}
    namespaces = linux.get("namespaces") if isinstance(linux, dict) else None
    own_network = any(isinstance(n, dict) and n.get("type") == "network" for n in namespaces or [])
    return Sandbox(bundle_id, name, namespace, uid, int(text), host_network=not own_network)


def split_dirs(setting: str) -> list[str]:
    """Setting netpath.containerd_state: directories separated by ':' (as PATH), blanks dropped."""
    return [part.strip() for part in setting.split(":") if part.strip()]


def pod_running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def pod_ready(pod: dict[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


@dataclass(frozen=True)
class Candidate:
    """A sandbox with what was learnt about it: its pod in the API and its network namespace."""

    sandbox: Sandbox
    pod: dict[str, Any] | None  # the API's pod of that namespace/name, None when it does not exist
    netns_inode: int | None  # None: /proc/<pid>/ns/net is gone (the process exited)


def judge_candidate(candidate: Candidate, host_inode: int | None) -> str:
    """'' when the sandbox can be tested from, else why not (pure)."""
    sandbox, pod = candidate.sandbox, candidate.pod
    if sandbox.host_network:
        return "host network"
    if pod is None:
        return "no such pod in the API"
    if ((pod.get("metadata") or {}).get("uid") or "") != sandbox.uid:
        return "the API's pod of that name has another uid (a newer pod)"
    if not pod_running(pod):
        return f"pod is {(pod.get('status') or {}).get('phase') or 'of unknown phase'}"
    if candidate.netns_inode is None:
        return f"process {sandbox.pid} has no network namespace (gone)"
    if host_inode is not None and candidate.netns_inode == host_inode:
        return "shares the host's network namespace"
    return ""


def choose(candidates: Iterable[Candidate], namespace: str, host_inode: int | None) -> tuple[Candidate | None,
                                                                                             list[dict[str, Any]]]:
    """The sandbox to test from and the evidence for every one considered (pure).

    Among usable sandboxes: a Ready pod of the StackBill namespace, else a Running one of it, else a Ready pod
    of another namespace, else any Running one; ties by pod name, so the same node gives the same choice."""
    usable: list[Candidate] = []
    evidence: list[dict[str, Any]] = []
    for candidate in candidates:
        why = judge_candidate(candidate, host_inode)
        evidence.append({**candidate.sandbox.brief(), "usable": not why, **({"why_not": why} if why else {})})
        if not why:
            usable.append(candidate)

    def rank(candidate: Candidate) -> tuple[int, int, str, str]:
        pod = candidate.pod or {}
        return (0 if candidate.sandbox.namespace == namespace else 1, 0 if pod_ready(pod) else 1,
                candidate.sandbox.namespace, candidate.sandbox.name)

    usable.sort(key=rank)
    return (usable[0] if usable else None), evidence


# ======================================================================================================
# Observers
# ======================================================================================================
def state_dir(dirs: list[str]) -> Path | None:
    """The first configured containerd state directory that exists."""
    for item in dirs:
        if Path(item).is_dir():
            return Path(item)
    return None


def read_sandboxes(state: Path) -> tuple[list[Sandbox], list[str]]:
    """Every pod sandbox bundle under `state`, and one line per bundle that could not be read."""
    base = state / TASKS / CRI_NAMESPACE
    found: list[Sandbox] = []
    problems: list[str] = []
    try:
        bundles = sorted(p for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return [], []
    for bundle in bundles:
        try:
            config = bundle / "config.json"
            if config.stat().st_size > MAX_CONFIG:
                raise ValueError("config.json is larger than an OCI spec")
            sandbox = parse_bundle(bundle.name, config.read_text(), (bundle / "init.pid").read_text())
        except FileNotFoundError:
            continue  # a task that is being created or torn down
        except (OSError, ValueError) as exc:
            problems.append(f"{bundle.name[:12]}: {exc}")
            continue
        if sandbox is not None:
            found.append(sandbox)
    return found, problems


def netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


@dataclass(frozen=True)
class Located:
    """What the finder concluded: the chosen sandbox (None when none is usable) and how it got there."""

    state_dir: str  # "" when no configured directory exists
    sandbox: Sandbox | None
    pod: dict[str, Any] | None
    considered: list[dict[str, Any]]
    problems: list[str]
    netns_inode: int | None = None  # the chosen sandbox's namespace as the finder saw it

    @property
    def pod_name(self) -> str:
        return f"{self.sandbox.namespace}/{self.sandbox.name}" if self.sandbox else ""

    def why_none(self) -> str:
        """Why no sandbox was chosen, for the skip's summary."""
        if not self.considered:
            return f"no pod sandbox under {self.state_dir}/{TASKS}/{CRI_NAMESPACE}"
        reasons = sorted({str(c.get("why_not")) for c in self.considered if c.get("why_not")})
        return f"{len(self.considered)} sandbox(es): {'; '.join(reasons)}"

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"containerd_state": self.state_dir, "sandboxes": self.considered}
        if self.problems:
            out["unreadable_bundles"] = self.problems
        return out


def pods_by_key(ctx: "Context", namespaces: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The API's pods of the sandboxes' namespaces, by (namespace, name): one list call per namespace."""
    from sbops.probes import kubecommon as kc

    table: dict[tuple[str, str], dict[str, Any]] = {}
    for namespace in sorted(namespaces):
        for pod in kc.api(ctx).list(kc.path(namespace=namespace, plural="pods")):
            meta = pod.get("metadata") or {}
            table[(meta.get("namespace") or namespace, meta.get("name") or "")] = pod
    return table


def locate(ctx: "Context", dirs: list[str] | None = None) -> Located:
    """The sandbox this run tests from (API errors propagate: the caller reports them)."""
    from sbops.probes import kubecommon as kc

    dirs = split_dirs(str(ctx.settings["netpath.containerd_state"])) if dirs is None else dirs
    state = state_dir(dirs)
    if state is None:
        return Located("", None, None, [], [])
    sandboxes, problems = read_sandboxes(state)
    if not sandboxes:
        return Located(str(state), None, None, [], problems)
    pods = pods_by_key(ctx, {s.namespace for s in sandboxes if not s.host_network})
    candidates = [Candidate(s, pods.get((s.namespace, s.name)), netns_inode(s.netns)) for s in sandboxes]
    chosen, considered = choose(candidates, kc.namespace(ctx), netns_inode("/proc/self/ns/net"))
    if chosen is None:
        return Located(str(state), None, None, considered, problems)
    return Located(str(state), chosen.sandbox, chosen.pod, considered, problems, chosen.netns_inode)
