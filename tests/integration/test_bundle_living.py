"""`sbops bundle` against the living cluster (tests/lab/living.py): real pod logs, written by the kubelet and read
through the API server, carry a password a request put there, and the bundle leaves it in no form.

Nothing is mocked: the request goes through the node's NodePort, the gateway and kube-proxy to sb-core, whose
access log prints the request line (with the credentials file's MySQL password in its query, plain and
URL-encoded); the bundle reads that log like any other pod's. Its index.html shows the cluster's real state.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import tarfile
import time
from pathlib import Path
from urllib.parse import quote

from tests.integration.test_bundle import leaks, members
from tests.integration.test_living_workloads import core_api
from tests.lab import kube as lab
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.living import LivingCluster
from sbops.probes import ecr

QUERY_KEY = "probe"  # not a word the generic patterns know: only the known-secret search can remove the value


def get(living: LivingCluster, path: str) -> bytes:
    """One HTTPS GET through the ingress NodePort, with SNI and Host = the portal's domain (TLS not verified:
    the lab's CA is not what this test is about). Python's socket, not curl: the path holds a password, and a
    password never goes on a command line."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((living.node_ip, lab.NODEPORT_HTTPS), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=lab.DOMAIN) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {lab.DOMAIN}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                data = tls.recv(65536)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)


def test_a_password_in_a_living_pods_log_never_leaves(living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    passwords = living.servers["passwords"]
    mysql_pw = passwords["mysql"]
    # the kubelet has the line in sb-core's log (as `kubectl logs` would show it). The request is sent again
    # until it is there: a gateway answering 503 while sb-core's endpoint settles never reaches sb-core, and
    # every sb-core pod not being deleted is read (a previous test's rollout can leave two for a moment).
    core = core_api(living)
    deadline = time.monotonic() + 60
    pod = None
    while pod is None:
        answer = get(living, f"/apidocs/api/cloudconfiguration/general?{QUERY_KEY}={mysql_pw}&again={quote(mysql_pw, safe='')}x")
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]  # sb-core logs the request line whatever it answers
        for _ in range(6):
            current = [p for p in core.list_namespaced_pod(lab.NAMESPACE).items
                       if p.metadata.labels.get("app") == "sb-core" and p.status.phase == "Running"
                       and p.metadata.deletion_timestamp is None]
            pod = next((p for p in current if mysql_pw in core.read_namespaced_pod_log(
                p.metadata.name, lab.NAMESPACE, container="sb-core", tail_lines=50)), None)
            if pod is not None:
                break
            assert time.monotonic() < deadline, f"sb-core's access log never showed the request (last answer {answer[:60]!r})"
            time.sleep(0.5)

    pull = core.read_namespaced_secret(lab.PULL_SECRET, lab.NAMESPACE)
    auths = json.loads(base64.b64decode(pull.data[".dockerconfigjson"]))["auths"]
    ecr_password = ecr.split_token(next(iter(auths.values()))["password"])
    canaries = [p for p in passwords.values() if isinstance(p, str)] + [ecr_password]

    out = tmp_path / "living.tar.gz"
    with ArgvWatcher(canaries) as watch:
        proc = living_env.sbops("bundle", "--output-file", str(out), "--since", "10m", "--output", "json")
    assert proc.returncode == 0, proc.stderr[-500:]
    assert watch.hits == []
    files = members(out)
    core_logs = {n: v for n, v in files.items() if n.startswith(f"logs/pods/{lab.NAMESPACE}/{pod.metadata.name}/sb-core")}
    line = next(l for v in core_logs.values() for l in v.splitlines() if f"{QUERY_KEY}=".encode() in l)
    assert line.count(b"[REDACTED:plain]") == 2, line  # the lab's passwords are [A-Za-z0-9]: URL-encoding keeps them plain
    for name, data in files.items():
        assert leaks(data, canaries) == set(), f"{name} holds a password"
    manifest = json.loads(files["manifest.json"])
    assert {c["name"]: c["status"] for c in manifest["collectors"]}["logs.pods"] == "ok"
    assert manifest["redaction"]["by_kind"].get("plain", 0) >= 1

    # index.html shows the cluster's state: the doctor's counts and every failed check
    doctor = json.loads(files["doctor.json"])
    page = files["index.html"].decode()
    for key, value in doctor["counts"].items():
        assert f"{key}: {value}" in page
    for check in doctor["checks"]:
        if check["status"] in ("fail", "error"):
            assert check["id"] in page
    with tarfile.open(out) as tar:
        assert all(m.name.startswith("living/") for m in tar)
