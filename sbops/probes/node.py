"""A Kubernetes node's own services, as the node agent sees them: the kubelet's health endpoint, containerd's
socket, and the NFS client (the mount helper the kubelet runs, the server's NFS port from this node).

Each is an observation (I/O, returning plain data) and a pure judgement, table-tested in
tests/unit/test_node_probes.py.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

from sbops.messages import host as hmsg
from sbops.messages import nfs as nmsg
from sbops.model import Reason, Result

if TYPE_CHECKING:
    from sbops.context import Context

# -- the kubelet ---------------------------------------------------------------------------------------------


def observe_kubelet(url: str, timeout: float) -> dict[str, Any]:
    """GET the kubelet's healthz (plain HTTP on loopback, no authentication): status and body, or the error."""
    import http.client
    from urllib.parse import urlsplit

    from sbops.probes.net import one_line, socket_reason

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 10248, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/healthz")
        answer = conn.getresponse()
        return {"status": answer.status, "body": answer.read(2048).decode("utf-8", "replace").strip()}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": one_line(exc), "reason": socket_reason(exc).value}
    finally:
        conn.close()


def judge_kubelet(url: str, seen: dict[str, Any]) -> Result:
    if "error" in seen:
        reason = Reason(seen["reason"])
        if reason is Reason.REFUSED:
            return hmsg.KUBELET_DOWN.result(url=url, details=seen)
        return hmsg.KUBELET_NO_ANSWER.result(reason=reason, url=url, error=seen["error"], details=seen)
    if seen["status"] == 200 and seen["body"] == "ok":
        return hmsg.KUBELET_HEALTHY.result(url=url)
    return hmsg.KUBELET_UNHEALTHY.result(url=url, status=seen["status"], body=seen["body"][:200], details=seen)


def probe_kubelet(ctx: "Context") -> Result:
    url = str(ctx.settings["host.kubelet_healthz"])
    return judge_kubelet(url, observe_kubelet(url, ctx.timeout))


# -- containerd ----------------------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame
FRAME_SETTINGS = 4


def first_socket(candidates: str) -> str | None:
    """The first of the ':'-separated socket paths that exists (K3s's, then plain containerd's)."""
    return next((path for path in candidates.split(":") if path and os.path.exists(path)), None)


def observe_grpc(path: str, timeout: float) -> dict[str, Any]:
    """Whether an HTTP/2 (gRPC) server answers on the unix socket: the client preface and an empty SETTINGS
    frame, then the server's first frame must be SETTINGS (RFC 9113 3.4). Nothing else is sent."""
    from sbops.probes.net import one_line, socket_reason

    began = time.monotonic()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(H2_PREFACE + H2_SETTINGS)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError as exc:
        return {"error": one_line(exc), "reason": socket_reason(exc).value}
    return {"frame_type": head[3] if len(head) == 9 else None, "seconds": round(time.monotonic() - began, 3)}


def observe_version(command: str, path: str, timeout: float) -> dict[str, Any]:
    """`<ctr> --address SOCKET version`'s server version, within `timeout` (its absence is not a failure)."""
    argv = [*shlex.split(command), "--address", path, "version"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return {"version_error": f"{argv[0]} not found"}
    except subprocess.TimeoutExpired:
        return {"version_error": f"{command} version: no answer within {timeout:g}s"}
    return {"server_version": parse_ctr_version(done.stdout)} if done.returncode == 0 else \
        {"version_error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]}


def parse_ctr_version(text: str) -> str:
    """The Server: section's Version of `ctr version` ("" when absent)."""
    in_server = False
    for line in text.splitlines():
        if line.strip() == "Server:":
            in_server = True
        elif in_server and line.strip().startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return ""


def judge_containerd(candidates: str, path: str | None, seen: dict[str, Any]) -> Result:
    if path is None:
        return hmsg.CONTAINERD_NO_SOCKET.result(candidates=candidates.replace(":", ", "))
    if "error" in seen:
        return hmsg.CONTAINERD_NO_ANSWER.result(reason=Reason(seen["reason"]), socket=path, error=seen["error"],
                                                details=seen)
    if seen.get("frame_type") != FRAME_SETTINGS:
        return hmsg.CONTAINERD_NOT_GRPC.result(socket=path, details=seen)
    version = seen.get("server_version") or "unknown (" + str(seen.get("version_error") or "not asked") + ")"
    return hmsg.CONTAINERD_ANSWERS.result(socket=path, version=version, details=seen)


def probe_containerd(ctx: "Context") -> Result:
    candidates = str(ctx.settings["host.containerd_socket"])
    path = first_socket(candidates)
    if path is None:
        return judge_containerd(candidates, None, {})
    seen = observe_grpc(path, ctx.timeout)
    if "error" not in seen and seen.get("frame_type") == FRAME_SETTINGS:
        seen.update(observe_version(str(ctx.settings["host.ctr_command"]), path, ctx.timeout))
    return judge_containerd(candidates, path, seen)


# -- the NFS client ------------------------------------------------------------------------------------------


def observe_helper(path: str) -> dict[str, Any]:
    """The mount helper the kernel's mount(8) runs for type nfs: present, a regular file, executable."""
    if not os.path.lexists(path):
        return {"helper": path, "present": False}
    resolved = os.path.realpath(path)
    return {"helper": path, "present": os.path.isfile(resolved), "executable": os.access(resolved, os.X_OK),
            "resolved": resolved}


def observe_nfs_port(server: str, port: int, timeout: float) -> dict[str, Any]:
    """A TCP connection to the NFS server's port from this node, and the node's address it came from (the
    address the server's exports must allow)."""
    from sbops.probes.net import one_line, socket_reason

    try:
        with socket.create_connection((server, port), timeout=timeout) as sock:
            return {"source_address": sock.getsockname()[0]}
    except OSError as exc:
        return {"error": one_line(exc), "reason": socket_reason(exc).value}


def exported_to(clients: list[str], address: str) -> bool | None:
    """Whether one of the export's clients (exports(5) host specs) names `address`; None when no IP client
    does and some are host names, netgroups or wildcards this cannot resolve the way the server would."""
    import ipaddress

    from sbops.probes.nfs import client_network

    wanted = ipaddress.ip_address(address)
    unresolved = False
    for host in clients:
        net = client_network(host)
        if net is None:
            unresolved = True
        elif net.version == wanted.version and wanted in net:
            return True
    return None if unresolved else False


def judge_nfs_client(helper: dict[str, Any], server: str, port: int, reach: dict[str, Any],
                     exports: dict[str, Any] | None = None) -> Result:
    """`exports`: on the NFS server's own node, {"file", "path", "clients"} of the export's entries (its
    clients' host specs); None elsewhere (nfs.export on the server judges every node's address)."""
    details = {**helper, "server": server, "port": port, **reach, **({"exports": exports} if exports else {})}
    if not helper.get("present"):
        return nmsg.CLIENT_NO_HELPER.result(helper=helper["helper"], details=details)
    if not helper.get("executable"):
        return nmsg.CLIENT_HELPER_NOT_EXECUTABLE.result(helper=helper["helper"], details=details)
    if not server:
        return nmsg.CLIENT_NO_SERVER.result(details=details)
    if "error" in reach:
        return nmsg.CLIENT_SERVER_UNREACHABLE.result(reason=Reason(reach["reason"]), server=server, port=port,
                                                     error=reach["error"], details=details)
    if exports is not None and exported_to(exports["clients"], reach["source_address"]) is False:
        return nmsg.CLIENT_NOT_EXPORTED.result(path=exports["path"], source=reach["source_address"],
                                               exports_file=exports["file"], details=details, fix="nfs-export")
    return nmsg.CLIENT_READY.result(helper=helper["helper"], server=server, port=port,
                                    source=reach["source_address"], details=details)


def probe_nfs_client(ctx: "Context") -> Result:
    helper = observe_helper(str(ctx.settings["nfs.mount_helper"]))
    server = str(ctx.settings["nfs.server"]) or ctx.server_ip
    port = int(ctx.settings["nfs.port"])
    reach = observe_nfs_port(server, port, ctx.timeout) if helper.get("executable") and server else {}
    exports = observe_local_export(ctx, server) if "source_address" in reach else None
    return judge_nfs_client(helper, server, port, reach, exports)


def observe_local_export(ctx: "Context", server: str) -> dict[str, Any] | None:
    """On the NFS server's own node: the clients of nfs.path's entries in the exports file; None elsewhere,
    or when the file cannot be read (nfs.export reports that). "Own node" takes both addresses being this
    machine's: the NFS server's, and the node's (server_ip). A machine that serves NFS to a node it is not
    (the lab's host, whose node runs in a network namespace) connects from the server's address, which says
    nothing of the address the kubelet mounts from: nfs.export judges the nodes' addresses there."""
    from sbops.probes import nfs

    if not ctx.is_local(server) or (ctx.server_ip and not ctx.is_local(ctx.server_ip)):
        return None
    try:
        text, path = nfs.read_exports(ctx)
    except OSError:
        return None
    if text is None:
        return None
    wanted = str(ctx.settings["nfs.path"])
    clients = [c.host for e in nfs.entries_for(nfs.parse_exports(text), wanted) if not e.error for c in e.clients]
    return {"file": path, "path": wanted, "clients": clients}
