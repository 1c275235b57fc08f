"""The lab's images, for real: built from busybox-static, imported into a private containerd and run with runc.

Each container runs with the host's network (`ctr run --net-host`) on a free port the test passes as the
stand-in's argument, so the test reaches it without a CNI network. sb-core is judged against a real MariaDB
(a login, a wrong password, a closed port, a silent server, a host MariaDB has blocked); the gateway terminates TLS with a lab certificate and
routes to stand-ins running beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab.common import free_port, wait_port
from tests.lab.images import IMAGES, build_images, image_ref
from tests.lab.kube import make_ca, make_cert
from tests.lab.mariadb import LAB_PASSWORD



@pytest.fixture(autouse=True, scope="module")
def needs_root() -> None:
    """containerd and runc need root. Without it these tests fail, saying so: a lab that cannot run is never a
    skip."""
    if os.geteuid() != 0:
        pytest.fail("tests/integration/test_lab_images.py runs containerd and runc, which need root: run the tests "
                    "as root (scripts/test)")

DOMAIN = "stackbill.example.com"


class Containerd:
    """A private containerd: its own root, state, sockets and opt dir under `root`; CRI disabled (ctr only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "containerd.sock"
        self.proc: subprocess.Popen | None = None
        self.containers: list[str] = []

    def start(self) -> "Containerd":
        config = self.root / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root}/root"\nstate = "{self.root}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.root}/opt"\n')
        log = open(self.root / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log,
                                     start_new_session=True)
        end = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"containerd did not start: {(self.root / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        return self

    def ctr(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def run(self, image: str, name: str, *argv: str, env: dict[str, str] | None = None,
            mounts: dict[Path, str] | None = None) -> Path:
        """Start a detached container on the host network; returns its log file (stdout and stderr)."""
        log = self.root / f"{name}.log"
        env_file = self.root / f"{name}.env"  # a file, so that no password is on a command line
        env_file.touch(0o600)
        env_file.write_text("".join(f"{key}={value}\n" for key, value in (env or {}).items()))
        args = ["run", "-d", "--net-host", "--log-uri", f"file://{log}", "--env-file", str(env_file)]
        for source, target in (mounts or {}).items():
            args += ["--mount", f"type=bind,src={source},dst={target},options=rbind:ro"]
        self.ctr(*args, image, name, *argv)
        self.containers.append(name)
        return log

    def remove(self, name: str) -> None:
        self.ctr("task", "kill", "-s", "SIGKILL", name, check=False)
        end = time.monotonic() + 10
        while "RUNNING" in self.ctr("task", "ls", check=False).stdout.split(name, 1)[-1].split("\n", 1)[0]:
            if time.monotonic() > end:
                break
            time.sleep(0.05)
        self.ctr("task", "rm", "-f", name, check=False)
        self.ctr("container", "rm", name, check=False)
        if name in self.containers:
            self.containers.remove(name)

    def stop(self) -> None:
        for name in list(self.containers):
            self.remove(name)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for mount in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            target = mount.split()[1]
            if target.startswith(str(self.root)):
                subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_images()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, images: dict[str, Path]) -> Iterator[Containerd]:
    if not (shutil.which("containerd") and shutil.which("ctr") and shutil.which("runc")):
        pytest.fail("containerd, ctr and runc are needed (Debian packages containerd, runc; scripts/setup)")
    # A short path: containerd's shim socket paths are limited in length.
    root = Path(tmp_path_factory.mktemp("ctd"))
    daemon = Containerd(root).start()
    try:
        for path in images.values():
            daemon.ctr("images", "import", str(path))
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def http(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 20,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
            return None

    handlers: list = [NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode()



def wait_log(log: Path, text: str, count: int = 1, timeout: float = 10) -> list[str]:
    """The log's lines once `text` appears `count` times (a handler logs after it answered)."""
    end = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if sum(text in line for line in lines) >= count or time.monotonic() > end:
            return lines
        time.sleep(0.05)


# --- the build ---------------------------------------------------------------------------------------------

def test_build_is_cached_reproducible_and_safe_in_parallel(tmp_path: Path) -> None:
    """Two processes building at once get the same complete directory; a rebuild is byte-identical."""
    cache = tmp_path / "cache"
    code = f"from tests.lab.images import build_images; print(build_images(__import__('pathlib').Path('{cache}'))['sb-core'])"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs[0] == outs[1]
    built = Path(outs[0])
    assert sorted(p.name for p in built.parent.iterdir()) == sorted([f"{n}.tar" for n in IMAGES] + ["images.json"])
    first = built.read_bytes()
    shutil.rmtree(built.parent)
    assert build_images(cache)["sb-core"].read_bytes() == first


def test_archive_layout(images: dict[str, Path]) -> None:
    """docker-archive as skopeo and ctr read it: manifest.json -> config -> one layer with busybox and the stand-ins."""
    with tarfile.open(images["istio-ingressgateway"]) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == [image_ref("istio-ingressgateway")]
        config = json.load(archive.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert config["config"]["Entrypoint"] == ["/usr/local/bin/gateway"]
        layer = tarfile.open(fileobj=archive.extractfile(manifest[0]["Layers"][0]))
        names = set(layer.getnames())
    assert {"bin/busybox", "bin/sh", "usr/bin/nc", "etc/passwd", "tmp", "usr/bin/socat",
            "lib64/ld-linux-x86-64.so.2", "usr/local/bin/gw-handler"} <= names


def test_skopeo_reads_every_archive(images: dict[str, Path], tmp_path: Path) -> None:
    """skopeo (the lab registry's loader) accepts each tarball and sees its config."""
    for name, path in images.items():
        proc = subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{path}", f"oci:{tmp_path / name}:lab"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    inspect = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{images['sb-core']}"],
                             capture_output=True, text=True, timeout=60)
    assert json.loads(inspect.stdout)["config"]["Cmd"] == ["sb-core", "8080"]


def test_every_image_imports(containerd: Containerd) -> None:
    listed = containerd.ctr("images", "ls", "-q").stdout.split()
    assert sorted(image_ref(name) for name in IMAGES) == sorted(set(listed) & {image_ref(n) for n in IMAGES})


def test_pause_runs_and_stops_on_term(containerd: Containerd) -> None:
    containerd.run(image_ref("pause"), "pause-t")
    try:
        assert "RUNNING" in containerd.ctr("task", "ls").stdout
        started = time.monotonic()
        containerd.ctr("task", "kill", "pause-t")
        while "RUNNING" in containerd.ctr("task", "ls").stdout.split("pause-t", 1)[1].split("\n", 1)[0]:
            assert time.monotonic() - started < 5, "pause ignored TERM"
            time.sleep(0.05)
    finally:
        containerd.remove("pause-t")


# --- sb-core and MySQL -------------------------------------------------------------------------------------

CLOUDCONFIG = "/apidocs/api/cloudconfiguration/general"


def run_core(containerd: Containerd, name: str, mysql_port: int, password: str = LAB_PASSWORD,
             check: str = "login") -> tuple[int, Path]:
    """sb-core on a free port, configured as the chart configures it (user stackbill)."""
    port = free_port()
    log = containerd.run(image_ref("sb-core"), name, "/usr/local/bin/sb-serve", "sb-core", str(port),
                         env={"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(mysql_port), "MYSQL_USER": "stackbill",
                              "MYSQL_PASSWORD": password, "DOMAIN": DOMAIN, "SB_MYSQL_CHECK": check})
    wait_port("127.0.0.1", port, 20)
    return port, log


def test_sb_core_answers_json_while_it_can_log_in(containerd: Containerd, mariadb_factory) -> None:  # noqa: ANN001
    db = mariadb_factory().seed_stackbill(LAB_PASSWORD)
    port, log = run_core(containerd, "core-up", db.port)
    try:
        status, headers, body = http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")
        assert status == 200 and headers["content-type"] == "application/json"
        doc = json.loads(body)
        assert doc["data"]["mysql"] == f"127.0.0.1:{db.port}" and "MariaDB" in doc["data"]["serverVersion"]
        assert http(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert json.loads(http(f"http://127.0.0.1:{port}/core/")[2])["service"] == "sb-core"

        db.stop()
        status, headers, body = http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")
        assert status == 503 and headers["content-type"] == "text/plain"
        assert f"cannot reach MySQL at 127.0.0.1:{db.port}" in body and "refused" in body
        assert http(f"http://127.0.0.1:{port}/healthz")[0] == 200  # liveness stays up: only readiness fails

        db.start()
        query = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Aborted_connects', 'Aborted_clients')"
        before = dict(db.sql(query))
        assert http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")[0] == 200
        assert dict(db.sql(query)) == before  # it logs in and quits cleanly: no host block ever builds up
        lines = wait_log(log, f'"GET {CLOUDCONFIG} HTTP/1.1" 200', 2)
        assert sum(f'"GET {CLOUDCONFIG} HTTP/1.1" 503' in line for line in lines) == 1, lines
        assert not [line for line in lines if "sb-core" not in line], lines  # nothing but its own lines
    finally:
        containerd.remove("core-up")


def test_sb_core_reports_a_wrong_password(containerd: Containerd, mariadb_seeded) -> None:  # noqa: ANN001
    port, _ = run_core(containerd, "core-badpw", mariadb_seeded.port, password="not-the-password")
    try:
        status, _, body = http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")
        assert status == 503
        assert (f"sb-core: MySQL at 127.0.0.1:{mariadb_seeded.port} rejected the connection: error 1045: "
                "Access denied for user 'stackbill'@") in body and "(using password: YES)" in body
        assert "not-the-password" not in body
        # The chart's sbCore.mysqlCheck=greeting: reachability only, the password is not tried.
        greeting, _ = run_core(containerd, "core-greeting", mariadb_seeded.port, password="not-the-password",
                               check="greeting")
        assert http(f"http://127.0.0.1:{greeting}{CLOUDCONFIG}")[0] == 200
    finally:
        containerd.remove("core-badpw")
        containerd.remove("core-greeting")


def test_sb_core_reports_a_closed_port_and_a_silent_server(containerd: Containerd) -> None:
    closed = free_port()
    port, _ = run_core(containerd, "core-closed", closed)
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    silent_port, _ = run_core(containerd, "core-silent", silent.getsockname()[1])
    try:
        status, _, body = http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")
        assert status == 503 and f"cannot reach MySQL at 127.0.0.1:{closed}" in body
        started = time.monotonic()
        status, _, body = http(f"http://127.0.0.1:{silent_port}{CLOUDCONFIG}")
        assert status == 503 and "no MySQL greeting" in body
        assert time.monotonic() - started < 6  # its readiness probe's timeoutSeconds is 5
    finally:
        containerd.remove("core-closed")
        containerd.remove("core-silent")
        silent.close()
        for conn in accepted:
            conn.close()


def test_sb_core_names_a_host_mysql_blocked(containerd: Containerd, mariadb_factory) -> None:  # noqa: ANN001
    """MySQL error 1129 arrives in place of the greeting: sb-core's 503 quotes the server."""
    db = mariadb_factory(stackbill_cnf=False).seed_stackbill(LAB_PASSWORD)  # users for every host, then block one
    db.block_host("127.0.0.2")
    relay_port = free_port()
    relay = subprocess.Popen(["socat", f"TCP-LISTEN:{relay_port},bind=127.0.0.1,fork,reuseaddr",
                              f"TCP:127.0.0.1:{db.port},bind=127.0.0.2"], start_new_session=True)
    try:
        wait_port("127.0.0.1", relay_port, 10)
        port, _ = run_core(containerd, "core-blocked", relay_port)
        status, _, body = http(f"http://127.0.0.1:{port}{CLOUDCONFIG}")
        assert status == 503
        assert f"MySQL at 127.0.0.1:{relay_port} rejected the connection: error 1129" in body, body
        assert "is blocked" in body
    finally:
        containerd.remove("core-blocked")
        os.killpg(relay.pid, signal.SIGTERM)
        relay.wait(10)


# --- the other stand-ins and the ingress gateway -----------------------------------------------------------

@pytest.fixture(scope="module")
def stand_ins(containerd: Containerd) -> Iterator[dict[str, int]]:
    """sb-ui, sb-admin and sb-kong on free ports: {name: port}."""
    ports = {}
    for name in ("sb-ui", "sb-admin", "sb-kong"):
        ports[name] = free_port()
        containerd.run(image_ref(name), f"{name}-gw", "/usr/local/bin/sb-serve", name, str(ports[name]))
        wait_port("127.0.0.1", ports[name], 20)
    yield ports
    for name in ports:
        containerd.remove(f"{name}-gw")


def test_ui_admin_kong_routes(stand_ins: dict[str, int]) -> None:
    ui, admin, kong = (f"http://127.0.0.1:{stand_ins[n]}" for n in ("sb-ui", "sb-admin", "sb-kong"))
    for url in (f"{ui}/", f"{ui}/portal/", f"{admin}/admin/"):
        status, headers, body = http(url)
        assert status == 200 and headers["content-type"].startswith("text/html") and "<html>" in body
    status, headers, body = http(f"{kong}/api/v1/users")
    assert status == 200 and json.loads(body) == {"service": "sb-kong", "path": "/api/v1/users"}
    assert http(f"{admin}/portal/")[0] == 404
    assert http(f"{kong}/other")[0] == 404


@pytest.fixture(scope="module")
def gateway(containerd: Containerd, stand_ins: dict[str, int], tmp_path_factory: pytest.TempPathFactory,
            mariadb_seeded) -> Iterator[dict]:  # noqa: ANN001
    """The gateway with a lab certificate, routing to the stand-ins; /slow goes to a listener that never answers,
    /down to a closed port."""
    root = Path(tmp_path_factory.mktemp("gw"))
    certs, routes = root / "certs", root / "routes"
    certs.mkdir()
    routes.mkdir()
    ca = make_ca("images test CA")
    cert, key, ca_pem = make_cert(DOMAIN, ca=ca)
    (certs / "tls.crt").write_text(cert + ca_pem)
    (certs / "tls.key").write_text(key)
    core_port = free_port()
    containerd.run(image_ref("sb-core"), "core-gw", "/usr/local/bin/sb-serve", "sb-core", str(core_port),
                   env={"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(mariadb_seeded.port), "MYSQL_USER": "stackbill",
                        "MYSQL_PASSWORD": LAB_PASSWORD})
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                held.append(silent.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    table = [("/admin", stand_ins["sb-admin"], "sb-admin"), ("/portal", stand_ins["sb-ui"], "sb-ui"),
             ("/api", stand_ins["sb-kong"], "sb-kong"), ("/core", core_port, "sb-core"),
             ("/apidocs", core_port, "sb-core"), ("/", stand_ins["sb-ui"], "sb-ui"),
             ("/slow", silent.getsockname()[1], "silent"), ("/down", free_port(), "down")]
    (routes / "routes").write_text("".join(f"{p} 127.0.0.1 {port} {n}\n" for p, port, n in table))
    ports = {"http": free_port(), "https": free_port(), "status": free_port()}
    log = containerd.run(image_ref("istio-ingressgateway"), "gateway-t", env={
        "GW_HTTP_PORT": str(ports["http"]), "GW_HTTPS_PORT": str(ports["https"]),
        "GW_STATUS_PORT": str(ports["status"]), "GW_UPSTREAM_TIMEOUT": "2"},
        mounts={certs: "/etc/istio/ingressgateway-certs", routes: "/etc/istio/routes"})
    for port in (*ports.values(), core_port):
        wait_port("127.0.0.1", port, 20)
    context = ssl.create_default_context(cadata=ca_pem)
    yield {"ports": ports, "context": context, "log": log, "certs": certs, "ca": ca}
    containerd.remove("gateway-t")
    containerd.remove("core-gw")
    silent.close()
    for conn in held:
        conn.close()


def https_get(gw: dict, path: str, timeout: float = 20) -> tuple[int, dict[str, str], str]:
    """GET https://DOMAIN<path> through the gateway (DOMAIN resolved to 127.0.0.1 by connecting there)."""
    port = gw["ports"]["https"]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with gw["context"].wrap_socket(raw, server_hostname=DOMAIN) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_gateway_terminates_tls_with_the_secret(gateway: dict) -> None:
    port = gateway["ports"]["https"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with gateway["context"].wrap_socket(raw, server_hostname=DOMAIN) as tls:
            names = [v for field in tls.getpeercert()["subjectAltName"] for v in field[1:]]
    assert DOMAIN in names


def test_gateway_routes_longest_prefix_first(gateway: dict) -> None:
    status, headers, body = https_get(gateway, CLOUDCONFIG)
    assert status == 200 and headers["content-type"] == "application/json", body
    assert json.loads(body)["status"] == "success"
    assert "(sb-admin)" in https_get(gateway, "/admin/")[2]
    assert json.loads(https_get(gateway, "/api/x")[2])["service"] == "sb-kong"
    assert json.loads(https_get(gateway, "/core/status")[2])["service"] == "sb-core"
    assert "(sb-ui)" in https_get(gateway, "/portal/login")[2]
    assert "(sb-ui)" in https_get(gateway, "/anything/else")[2]
    lines = wait_log(gateway["log"], "GET /anything/else")
    assert [line for line in lines if f'"GET {CLOUDCONFIG} HTTP/1.1" 200' in line and "-> sb-core(127.0.0.1:" in line]


def test_gateway_upstream_down_or_silent_gives_503_not_a_hang(gateway: dict) -> None:
    status, _, body = https_get(gateway, "/down/x")
    assert status == 503 and "connection failure" in body
    started = time.monotonic()
    status, _, body = https_get(gateway, "/slow/x")
    assert status == 503 and "timeout" in body
    assert time.monotonic() - started < 6  # GW_UPSTREAM_TIMEOUT=2 in this test


def test_gateway_http_redirects_to_https_and_reports_ready(gateway: dict) -> None:
    status, headers, _ = http(f"http://127.0.0.1:{gateway['ports']['http']}/portal/x?a=1",
                              headers={"Host": f"{DOMAIN}:31443"})
    assert status == 301 and headers["location"] == f"https://{DOMAIN}/portal/x?a=1"
    assert http(f"http://127.0.0.1:{gateway['ports']['status']}/healthz/ready")[0] == 200


def test_gateway_serves_a_renewed_certificate(gateway: dict) -> None:
    """A new pair in the secret's files (as the kubelet updates a secret volume) is served within seconds."""
    cert, key, ca_pem = make_cert(DOMAIN, days=30, ca=gateway["ca"])
    for name, text in (("tls.key", key), ("tls.crt", cert + ca_pem)):
        tmp = gateway["certs"] / f".{name}.tmp"
        tmp.write_text(text)
        tmp.rename(gateway["certs"] / name)
    wanted = ssl.PEM_cert_to_DER_cert(cert)
    end = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", gateway["ports"]["https"]), timeout=5) as raw:
                with gateway["context"].wrap_socket(raw, server_hostname=DOMAIN) as tls:
                    if tls.getpeercert(binary_form=True) == wanted:
                        break
        except OSError:
            pass  # the listener restarting
        assert time.monotonic() < end, "the gateway still serves the old certificate"
        time.sleep(0.5)
