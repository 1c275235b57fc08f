"""`sbops bundle` against a lab: canaries planted everywhere a secret can surface never leave in any form,
verification catches a disabled redaction rule, a stopped service and a hanging collector do not stop the bundle,
no secret reaches a command line, `--check` finds a planted leak, and index.html renders in headless Chromium.

The lab: the test API server (tests/lab/kube.py, seeded as a StackBill install) and one MariaDB, started,
seeded and then **stopped** (the "one service stopped"). Pod logs come from the **test API server**, not the
living cluster (whose kubelet is a long build this test does not wait for): the API server proxies
`pods/NAME/log` to the node's kubelet endpoint, and the node here points at `FakeKubelet`, a small HTTPS server
answering `/containerLogs/...` with log lines. That server is the one mock in this test: no kubelet runs
without the living cluster, and the API server's own proxying, the bundle's requests and the log bytes are real.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, quote_plus, urlparse

import pytest

from sbops import kube as kube_mod
from sbops.bundle import build as bundle
from sbops.context import Context
from sbops.probes import ecr
from tests.lab.argv_watch import ArgvWatcher
from tests.lab.env import LabEnv
from tests.lab.kube import NAMESPACE, NODE, PULL_SECRET, helm_release_secret, make_cert
from tests.lab.mariadb import MariaDB

CRED_MYSQL = "Cnry-MySQL-7Qf2xP9w"        # credentials file (MariaDB is seeded with it)
CRED_RABBIT = "Cnry/Rabbit+4Hk8=W1z"      # credentials file; planted URL-encoded and inside a Basic header
ADMIN = 'Cnry"Admin\\Pw-5521x'            # settings' mysql.admin_password; planted JSON-escaped
SECRET_DATA = "Cnry-SecretData-9Lm3Vb6n"  # a Secret's data; planted as base64 (3 alignments, wrapped) in a ConfigMap
HELM_PW = "Cnry-HelmValue-2Tx8Qe4r"        # a Helm release's values; printed by a pod
POD_PW = "Cnry-PodLog-6Yu1Io3p"            # a Secret's data; printed by a pod (plain, and in a connection string)
BEARER = "Cnry-Bearer-8Gh5Jk2l"            # known to no source: only the Authorization-header pattern removes it
K3S_DS = "Cnry-K3sDatastore-3Zx7"          # known to no source: a connection string in K3s's config.yaml
CANARIES = [CRED_MYSQL, CRED_RABBIT, ADMIN, SECRET_DATA, HELM_PW, POD_PW, BEARER, K3S_DS]
CONFIGMAP, SECRET = "sb-canary-config", "sb-canary"


# -- an independent leak detector (decodes, rather than re-using the bundle's own search) --------------------

def leaks(data: bytes, canaries: list[str]) -> set[str]:
    """Which canaries `data` holds in any form: plain, URL-encoded, JSON-escaped, or inside any base64 run
    (decoded at every offset, after removing newlines and JSON `\\n` escapes). Returns canary prefixes only."""
    found: set[str] = set()
    flat = data.replace(b"\\n", b"").replace(b"\r", b"").replace(b"\n", b"")
    for canary in canaries:
        url = quote(canary, safe="").encode()
        variants = {canary.encode(), url, re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), url),
                    quote_plus(canary, safe="").encode(), json.dumps(canary)[1:-1].encode()}
        if any(v in data or v in flat for v in variants):
            found.add(canary[:12])
    for run in re.findall(rb"[A-Za-z0-9+/_-]{16,}", flat):
        for offset in range(4):
            chunk = run[offset:]
            chunk = chunk[: len(chunk) // 4 * 4]
            try:
                decoded = base64.b64decode(chunk.replace(b"-", b"+").replace(b"_", b"/"))
            except ValueError:
                continue
            found |= {c[:12] for c in canaries if c.encode() in decoded}
    return found


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}


# -- the stand-in kubelet ----------------------------------------------------------------------------------------

class FakeKubelet:
    """Answers the kubelet's `/containerLogs/NS/POD/CONTAINER` over HTTPS (the API server does not verify a
    kubelet's certificate unless --kubelet-certificate-authority is given; the lab's does not)."""

    def __init__(self, root: Path, lines: dict[str, list[str]]) -> None:
        cert, key, _ = make_cert("127.0.0.1", sans=["127.0.0.1"])
        (root / "kubelet.crt").write_text(cert)
        (root / "kubelet.key").write_text(key)
        (root / "kubelet.key").chmod(0o600)
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                outer.requests.append(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                container = parts[3]
                body = [f"2026-12-02T01:00:0{i}.000000000Z {container} started, ready" for i in range(3)]
                body += lines.get(container + (".previous" if "previous=true" in url.query else ""), [])
                data = ("\n".join(body) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(root / "kubelet.crt", root / "kubelet.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the planted lab ---------------------------------------------------------------------------------------------

class Planted:
    def __init__(self, root: Path, env: LabEnv, ecr_password: str, kubelet: FakeKubelet, mysql: MariaDB,
                 config_paths: dict, log_paths: dict) -> None:
        self.root, self.env, self.ecr_password, self.kubelet, self.mysql = root, env, ecr_password, kubelet, mysql
        self.config_paths, self.log_paths = config_paths, log_paths

    @property
    def canaries(self) -> list[str]:
        return CANARIES + [self.ecr_password]

    def context(self) -> Context:
        return Context.load(str(self.env.config_path), str(self.env.credentials_path), flags={"timeout": 3})

    def options(self, output: Path, **extra: Any) -> bundle.Options:
        return bundle.Options(output=output, deadline=extra.pop("deadline", 40.0), config_paths=self.config_paths,
                              log_paths=self.log_paths, **extra)


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@pytest.fixture(scope="module")
def planted(kube_lab, mariadb_template, tmp_path_factory) -> Iterator[Planted]:
    root = tmp_path_factory.mktemp("bundle")
    kube_lab.reset()
    api = kube_mod.KubeApi(kube_mod.new_client(kube_lab.kubeconfig), (5.0, 10.0))

    # Secrets: a Secret's data, a Helm release's values; the seeded pull secret's ECR password.
    api.create(kube_mod.path(namespace=NAMESPACE, plural="secrets"), {
        "metadata": {"name": SECRET}, "type": "Opaque",
        "data": {"api-token": _b64(SECRET_DATA), "db-password": _b64(POD_PW)}})
    helm = helm_release_secret("stackbill", NAMESPACE, 2, "deployed", config={"mysql": {"password": HELM_PW}})
    api.create(kube_mod.path(namespace=NAMESPACE, plural="secrets"), {
        "metadata": {"name": helm.metadata.name, "labels": helm.metadata.labels}, "type": helm.type, "data": helm.data})
    pull = api.get(kube_mod.path(namespace=NAMESPACE, plural="secrets", name=PULL_SECRET))
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    ecr_password = ecr.split_token(next(iter(auths.values()))["password"])

    # A ConfigMap holding the Secret's value as base64 at each alignment, and wrapped at 76 columns.
    api.create(kube_mod.path(namespace=NAMESPACE, plural="configmaps"), {"metadata": {"name": CONFIGMAP}, "data": {
        **{f"blob{k}": _b64(b"{" * k + f'"token":"{SECRET_DATA}"}}'.encode()) for k in range(3)},
        "bundle.pem": base64.encodebytes(b"\x00" * 50 + SECRET_DATA.encode() + b"\x01" * 90).decode()}})

    # Pod logs: sb-core prints a password and a connection string; its previous instance the Helm value and
    # the ECR password.
    kubelet = FakeKubelet(root, {
        "sb-core": [f"2026-12-02T01:00:05Z connecting to jdbc:mysql://stackbill:{POD_PW}@mysql:3306/stackbill",
                    f"2026-12-02T01:00:06Z DEBUG datasource password is {POD_PW}"],
        "sb-core.previous": [f"2026-12-02T00:59:01Z values: mysql.password={HELM_PW}",
                             f"2026-12-02T00:59:02Z docker login -u AWS -p {ecr_password} registry"]})
    api.patch(kube_mod.path(plural="nodes", name=NODE, sub="status"), {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}}, content_type=kube_mod.MERGE_PATCH)
    core_pod = next(p for p in api.list(kube_mod.path(namespace=NAMESPACE, plural="pods"))
                    if p["metadata"]["labels"].get("app") == "sb-core")
    statuses = core_pod["status"]["containerStatuses"]
    for status in statuses:
        status["restartCount"] = 1 if status["name"] == "sb-core" else 0
    api.patch(kube_mod.path(namespace=NAMESPACE, plural="pods", name=core_pod["metadata"]["name"], sub="status"),
              {"status": {"containerStatuses": statuses}}, content_type=kube_mod.MERGE_PATCH)

    # One service stopped: MariaDB, seeded with the credentials file's password, then stopped.
    mysql = MariaDB(root / "mariadb").start()
    mysql.seed_stackbill(CRED_MYSQL)
    mysql.stop()

    # Files: K3s's config with a connection string, RabbitMQ's with its password, an application log with
    # HTTP headers, a JSON line, a URL and a MIME-wrapped blob.
    k3s = root / "k3s-config.yaml"
    k3s.write_text(f'write-kubeconfig-mode: "0600"\ndatastore-endpoint: "postgres://k3s:{K3S_DS}@127.0.0.1:5432/kine"\n')
    rabbit = root / "rabbitmq.conf"
    rabbit.write_text(f"listeners.tcp.default = 5672\ndefault_user = stackbill\ndefault_pass = {CRED_RABBIT}\n")
    app_log = root / "app.log"
    app_log.write_text("\n".join([
        "2026-12-02T01:00:00Z GET /api/health 200",
        f"2026-12-02T01:00:01Z > Authorization: Bearer {BEARER}",
        f"2026-12-02T01:00:02Z > Authorization: Basic {_b64('stackbill:' + CRED_RABBIT)}",
        "2026-12-02T01:00:03Z " + json.dumps({"event": "admin-login", "used": ADMIN}),
        f"2026-12-02T01:00:04Z GET /login?user=stackbill&pw={quote(CRED_RABBIT, safe='')} 302",
        "2026-12-02T01:00:05Z attachment follows",
        base64.encodebytes(b"MIME-Version: 1.0\r\n" * 3 + CRED_MYSQL.encode() + b"\r\n" * 30).decode(),
    ]) + "\n")

    env = LabEnv(root / "env")
    env.service("mysql", port=mysql.port, password=CRED_MYSQL)
    env.service("rabbitmq", port=1, password=CRED_RABBIT)
    env.set("mysql.admin_socket", str(mysql.socket)).set("mysql.admin_user", "root").set("mysql.admin_password", ADMIN)
    env.set("kubeconfig", str(kube_lab.kubeconfig)).set("timeout", 3)
    env.write()
    lab = Planted(root, env, ecr_password, kubelet, mysql,
                  config_paths={"mysql": [mysql.root / "my.cnf"], "k3s": [k3s], "rabbitmq": [rabbit], "mongodb": []},
                  log_paths={"mysql": (str(mysql.log),), "app": (str(app_log),), "sbops": (str(root / "none.log"),)})
    try:
        yield lab
    finally:
        kubelet.stop()
        mysql.destroy()
        for plural, name in (("configmaps", CONFIGMAP), ("secrets", SECRET), ("secrets", helm.metadata.name)):
            api.delete(kube_mod.path(namespace=NAMESPACE, plural=plural, name=name), ignore_missing=True)
        kube_lab.reset()


@pytest.fixture(scope="module")
def built(planted: Planted) -> dict[str, Any]:
    """One bundle of the planted lab, with a collector that hangs; built in-process (the CLI test is below)."""
    stop = threading.Event()

    def stuck(ctx: Context, put: Any) -> None:
        put("stuck/partial.txt", b"written before hanging\n")
        stop.wait(600)

    out = planted.root / "out" / "bundle.tar.gz"
    out.parent.mkdir()
    ctx = planted.context()
    began = time.monotonic()
    try:
        result = bundle.build(ctx, planted.options(out, deadline=25.0, extra_collectors={"stuck": stuck}))
    finally:
        seconds = time.monotonic() - began
        stop.set()
        ctx.close()
    return {"result": result, "seconds": seconds, "path": out, "files": members(out)}


def test_canaries_never_leave_in_any_form(planted: Planted, built: dict[str, Any]) -> None:
    files = built["files"]
    assert {"doctor.json", "summary.txt", "index.html", "manifest.json", "cluster/secrets.json",
            "cluster/helm-history.json", "cluster/configmaps.json", "config/k3s/k3s-config.yaml",
            "config/stackbill-credentials.txt", "logs/app/app.log", "logs/mysql/mysqld.log"} <= set(files)
    pod_logs = {n: v for n, v in files.items() if n.startswith(f"logs/pods/{NAMESPACE}/sb-core")}
    assert any(n.endswith("/sb-core.log") for n in pod_logs) and any(n.endswith("sb-core.previous.log") for n in pod_logs)
    assert any(b"connecting to jdbc:mysql://stackbill:" in v for v in pod_logs.values()), \
        "the pod log must really have come through the API server from the kubelet"
    assert any("previous=true" in r for r in planted.kubelet.requests)
    # the planted values are really in the sources (else "not found" proves nothing)
    assert leaks((planted.root / "app.log").read_bytes(), [BEARER, CRED_RABBIT, ADMIN, CRED_MYSQL]) == {
        c[:12] for c in (BEARER, CRED_RABBIT, ADMIN, CRED_MYSQL)}
    for name, data in files.items():
        assert leaks(data, planted.canaries) == set(), f"{name} holds a canary"
        assert not leaks(name.encode(), planted.canaries)
    report = built["result"].manifest["redaction"]
    kinds = report["by_kind"]
    for kind in ("plain", "base64", "url", "json", "wrapped", "authorization-header", "url-password"):
        assert kinds.get(kind, 0) >= 1, f"no {kind} redaction recorded: {kinds}"
    by_file = report["by_file"]
    assert by_file["cluster/configmaps.json"].get("base64", 0) >= 3 and by_file["cluster/configmaps.json"].get("wrapped")
    assert by_file["config/k3s/k3s-config.yaml"] == {"url-password": 1}
    assert report["known_secrets"] >= 8
    assert (built["path"].stat().st_mode & 0o777) == 0o600
    secrets_meta = json.loads(files["cluster/secrets.json"])
    canary = next(s for s in secrets_meta if s["name"] == SECRET)
    assert canary["keys"] == ["api-token", "db-password"] and "data" not in canary
    history = json.loads(files["cluster/helm-history.json"])
    assert [h["revision"] for h in history if h.get("name") == "stackbill"] == [1, 2]


def test_a_stopped_service_and_a_hanging_collector_do_not_stop_the_bundle(built: dict[str, Any]) -> None:
    doc = built["result"].manifest
    assert built["seconds"] < 25.0 + 10.0, f"the bundle took {built['seconds']:.1f}s with a 25 s deadline"
    records = {c["name"]: c for c in doc["collectors"]}
    assert records["stuck"]["status"] == "timeout"
    assert any(line.startswith("stuck: did not finish within the 25s deadline") for line in doc["not_collected"])
    assert records["doctor"]["status"] == "ok" and records["cluster"]["status"] == "ok"
    assert any("mongodb: no configuration file found" in m for m in doc["not_collected"])
    doctor = json.loads(built["files"]["doctor.json"])
    failed = {c["id"] for c in doctor["checks"] if c["status"] in ("fail", "error")}
    assert "mysql.reachable" in failed, sorted(failed)
    assert "stuck/partial.txt" in built["files"], "what a hanging collector wrote before the deadline is kept"


def test_verification_catches_a_disabled_rule_and_deletes_the_archive(planted: Planted) -> None:
    out = planted.root / "out-disabled" / "bundle.tar.gz"
    out.parent.mkdir()
    ctx = planted.context()
    try:
        with pytest.raises(bundle.LeakFound) as caught:
            bundle.build(ctx, planted.options(out, disabled_rules=("base64",), no_logs=True))
    finally:
        ctx.close()
    message = str(caught.value)
    assert "cluster/configmaps.json" in message and {f.kind for f in caught.value.findings} >= {"base64"}
    assert not leaks(message.encode(), planted.canaries)
    assert not out.exists() and list(out.parent.iterdir()) == [], "the archive and its temp file are deleted"


def test_cli_bundle_keeps_secrets_off_argv_and_check_finds_a_planted_leak(planted: Planted) -> None:
    out = planted.root / "cli" / "bundle.tar.gz"
    out.parent.mkdir()
    with ArgvWatcher(planted.canaries) as watch:
        proc = planted.env.sbops("bundle", "--output-file", str(out), "--deadline", "40", "--lines", "200",
                                 "--output", "json")
    assert proc.returncode == 0, proc.stderr[-500:]
    assert watch.samples > 10 and watch.hits == []
    doc = json.loads(proc.stdout)
    assert doc["archive"] == str(out) and doc["size"] == out.stat().st_size
    assert not leaks((proc.stdout + proc.stderr).encode(), planted.canaries)

    ok = planted.env.sbops("bundle", "--check", str(out))
    assert ok.returncode == 0 and "no known secret found" in ok.stdout, ok.stdout + ok.stderr

    # an archive a user edited by hand: a log line with a Secret's value, base64-encoded
    tampered = planted.root / "cli" / "tampered.tar.gz"
    with tarfile.open(out, "r:gz") as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = f"note: {_b64('x' + POD_PW + 'y')}\n".encode()
        info = tarfile.TarInfo("bundle/logs/notes.txt")
        info.size = len(data)
        dst.addfile(info, __import__("io").BytesIO(data))
    bad = planted.env.sbops("bundle", "--check", str(tampered))
    assert bad.returncode == 3, bad.stdout + bad.stderr
    assert "bundle/logs/notes.txt" in bad.stdout and "base64" in bad.stdout
    assert not leaks((bad.stdout + bad.stderr).encode(), planted.canaries)

    usage = planted.env.sbops("bundle", "--max-size", "lots")
    assert usage.returncode == 2 and usage.stderr.strip().count("\n") == 0 and "--max-size" in usage.stderr


def test_max_size_truncates_logs_first(planted: Planted, built: dict[str, Any]) -> None:
    sizes = {f["path"]: f["size"] for f in built["result"].manifest["files"]}
    logs = sum(v for k, v in sizes.items() if k.startswith("logs/"))
    rest = sum(v for k, v in sizes.items() if not k.startswith(("logs/", "stuck/")) and k != "index.html")
    limit = rest + logs // 3 + 8192 + 200 * len(sizes)  # room for a third of the logs (plus the index's reserve)
    out = planted.root / "small" / "bundle.tar.gz"
    out.parent.mkdir()
    ctx = planted.context()
    try:
        result = bundle.build(ctx, planted.options(out, max_size=limit))
    finally:
        ctx.close()
    doc = result.manifest
    assert doc["truncated"] and all(n.startswith("logs/") for n in doc["truncated"]), doc["truncated"]
    kept = {f["path"]: f["size"] for f in doc["files"] if f["path"] != "index.html"}
    assert sum(kept.values()) <= limit
    files = members(out)
    for name in doc["truncated"]:
        assert files[name].startswith(b"[... truncated by sbops bundle --max-size")
    assert (out.stat().st_mode & 0o777) == 0o600


def test_index_renders_in_headless_chromium(built: dict[str, Any], tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/setup installs it"
    with tarfile.open(built["path"], "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    index = next(tmp_path.glob("*/index.html"))
    doctor = json.loads(built["files"]["doctor.json"])
    failed = [c["id"] for c in doctor["checks"] if c["status"] in ("fail", "error")]
    assert failed
    profile = tempfile.mkdtemp(prefix="chromium-")
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
              "--disable-dev-shm-usage"]
    try:
        dom = subprocess.run([*common, "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
        shot = tmp_path / "index.png"
        subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,1800", index.as_uri()],
                       capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dom.returncode == 0, dom.stderr[-500:]
    for check_id in failed:
        assert check_id in dom.stdout, f"{check_id} is not on the rendered page"
    assert "failed-check" in dom.stdout and "Not collected" in dom.stdout
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = os.environ.get("SBOPS_BUNDLE_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_progress_shows_on_a_terminal(planted: Planted) -> None:
    """Through a real pseudo-terminal (pexpect): the collectors' progress appears on stderr, then the summary."""
    import sys

    import pexpect

    out = planted.root / "tty" / "bundle.tar.gz"
    out.parent.mkdir()
    planted.env.write()
    child = pexpect.spawn(sys.executable, ["-m", "sbops", "bundle", "--output-file", str(out), "--no-logs",
                                           "--config", str(planted.env.config_path),
                                           "--credentials", str(planted.env.credentials_path)],
                          env={**os.environ, "NO_COLOR": "1"}, encoding="utf-8", timeout=90)
    try:
        child.expect(r"collecting: \d+/\d+ done; waiting for ")
        child.expect(r"wrote .*bundle\.tar\.gz \(\d+ bytes")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and out.exists()
