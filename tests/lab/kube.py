"""A private Kubernetes API for sbops's tests: a real kube-apiserver v1.20.2 + etcd, seeded as a StackBill install.

No controller-manager, scheduler or kubelet run: nothing reconciles. The lab creates every object a healthy
install has (pods and their status through the status subresource, Endpoints, Deployment status, the node's
status) and tests break it through the API. Binaries come from scripts/build-kube (cached under
${SBOPS_CACHE:-~/.cache/sbops}/kube/v1.20.2; built on first use, which fails loudly when it cannot).

Layout of a lab directory D:
    D/etcd/            etcd's data dir
    D/pki/             the lab CA and the apiserver's serving cert (certificate-authority-data of kubeconfig)
    D/tokens.csv       static tokens: admin (group system:masters) and the pre-registered narrow users
    D/kubeconfig       admin kubeconfig;  D/kubeconfig-<user> from token_kubeconfig()
    D/lab.json         ports, tokens and pids, so `python -m tests.lab.kube stop D` can stop a detached lab

Script use:  python -m tests.lab.kube start D   (detached; prints the kubeconfig path)  |  stop D
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import gzip
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Sequence

from tests.lab.common import free_port, tail

KUBE_VERSION = "v1.20.2"
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-kube"

DOMAIN = "stackbill.example.com"
NAMESPACE = "sb-apps"
ISTIO_NAMESPACE = "istio-system"
NFS_NAMESPACE = "nfs-provisioner"
NAMESPACES = (NAMESPACE, ISTIO_NAMESPACE, NFS_NAMESPACE)
NODE = "stackbill-node"
NODE_IP = "10.0.0.10"
REGISTRY = "730335576030.dkr.ecr.ap-south-1.amazonaws.com"
ISTIO_VERSION = "1.20.3"
PROXY_IMAGE = f"docker.io/istio/proxyv2:{ISTIO_VERSION}"
CHART_VERSION = "1.0.0"
STORAGE_CLASS = "nfs-client"
PROVISIONER = "cluster.local/nfs-subdir-external-provisioner"
NODEPORT_HTTP = 31443
NODEPORT_HTTPS = 31882
TLS_SECRET = "istio-ingressgateway-certs"
PULL_SECRET = "awscred"
GATEWAY = "stackbill-gateway"
VIRTUALSERVICE = "stackbill-vs"
HELM_SECRET = "sh.helm.release.v1.stackbill.v1"

# ARCHITECTURE.md's table: service -> port.
SERVICES: dict[str, int] = {
    "sb-admin": 80, "sb-ui": 80, "sb-core": 8080, "sb-kong": 8000, "sb-billing": 8080,
    "sb-email-svc": 8080, "sb-help": 80, "sb-logstash": 5044, "sb-ui-gateway": 80, "sb-kong-pg": 5432,
}
ROUTES = (("/admin", "sb-admin", 80), ("/portal", "sb-ui", 80), ("/api", "sb-kong", 8000), ("/core", "sb-core", 8080))

ADMIN_USER = "admin"
# Static tokens are read once at start: these users exist for token_kubeconfig() (narrow RBAC tests).
TOKEN_USERS = ("readonly", "user1", "user2", "user3", "user4", "exporter")

ISTIO_GROUP, ISTIO_VERSION_API = "networking.istio.io", "v1beta1"
CRDS = (("gateways", "Gateway", "gw"), ("virtualservices", "VirtualService", "vs"))
LAB_LABEL = "sbops-lab"


def cache_dir() -> Path:
    base = Path(os.environ.get("SBOPS_CACHE") or Path.home() / ".cache" / "sbops")
    return base / "kube" / KUBE_VERSION


NODE_COMPONENTS = ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler")


def binaries() -> tuple[Path, Path]:
    """(kube-apiserver, etcd), building every cached binary once with scripts/build-kube (fails loudly): the
    living node's kubelet, kube-proxy, controller-manager and scheduler come from the same build."""
    apiserver, etcd = cache_dir() / "kube-apiserver", cache_dir() / "etcd"
    wanted = [apiserver, etcd, *(cache_dir() / name for name in NODE_COMPONENTS)]
    if not all(os.access(path, os.X_OK) for path in wanted):
        print("kube lab: building the Kubernetes binaries (first use, about 15 minutes)", file=sys.stderr, flush=True)
        proc = subprocess.run([str(BUILD_SCRIPT)], stdout=sys.stderr)
        missing = [path.name for path in wanted if not os.access(path, os.X_OK)]
        if proc.returncode != 0 or missing:
            raise RuntimeError(f"{BUILD_SCRIPT} failed (exit {proc.returncode}): missing {', '.join(missing)} "
                               f"in {cache_dir()}")
    return apiserver, etcd


# --- pure helpers: tokens, certificates, Helm records -------------------------------------------------------

def ecr_token(expires_at: dt.datetime) -> str:
    """An ECR authorization token as `aws ecr get-authorization-token` returns it: base64("AWS:" + password).

    The password (what `get-login-password` prints) is base64 of a JSON document whose `expiration` is
    the expiry in Unix seconds, which is how sbops reads a token's expiry without calling AWS.
    """
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=dt.timezone.utc)
    doc = {
        "payload": base64.b64encode(os.urandom(96)).decode(),
        "datakey": base64.b64encode(os.urandom(48)).decode(),
        "version": "2",
        "type": "DATA_KEY",
        "expiration": int(expires_at.timestamp()),
    }
    password = base64.b64encode(json.dumps(doc).encode()).decode()
    return base64.b64encode(f"AWS:{password}".encode()).decode()


def ecr_password(token: str) -> str:
    """The password part of an ECR authorization token (what `aws ecr get-login-password` prints)."""
    return base64.b64decode(token).decode().split(":", 1)[1]


def dockerconfigjson(token: str, registry: str = REGISTRY) -> str:
    """The .dockerconfigjson of `kubectl create secret docker-registry` for an ECR token."""
    password = ecr_password(token)
    return json.dumps({"auths": {registry: {"username": "AWS", "password": password, "auth": token}}})


def make_ca(name: str = "sbops lab CA", days: int = 3650) -> tuple[str, str]:
    """A self-signed CA: (ca_cert_pem, ca_key_pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def make_cert(domain: str, days: int = 90, not_before: dt.datetime | None = None,
              sans: Sequence[str] | None = None, ca: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """A server certificate for `domain` signed by a CA: (cert_pem, key_pem, ca_pem).

    cert_pem is the leaf alone (a kubernetes.io/tls secret's tls.crt is usually cert_pem + ca_pem).
    `ca` is (ca_cert_pem, ca_key_pem) from make_ca(); a new CA is made when omitted. Valid from `not_before`
    (default: an hour ago) for `days` days: not_before=now-100d, days=90 gives a certificate that expired.
    `sans`: DNS names or IP addresses (default [domain]).
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert_pem, ca_key_pem = ca or make_ca()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    names: list[x509.GeneralName] = []
    for san in sans or [domain]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key), ca_cert_pem


def make_client_cert(name: str, ca: tuple[str, str], organization: str = "") -> tuple[str, str]:
    """A TLS client certificate (extended key usage clientAuth, which OpenSSL requires of one) signed by `ca`
    (cert_pem, key_pem): CN=`name`, and O=`organization` when given (Kubernetes reads O as the user's group)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca[0].encode())
    ca_key = serialization.load_pem_private_key(ca[1].encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if organization:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    cert = (x509.CertificateBuilder().subject_name(x509.Name(names))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _pem_cert(cert), _pem_key(key)


def _pem_cert(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem_key(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def helm_release_record(name: str, namespace: str, revision: int, status: str, chart_version: str,
                        *, chart: str = "stackbill", config: dict | None = None) -> dict:
    """The release JSON Helm 3 stores (the fields sbops reads, plus the usual rest)."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    return {
        "name": name,
        "info": {"first_deployed": now, "last_deployed": now, "deleted": "",
                 "description": "Install complete" if revision == 1 else "Upgrade complete",
                 "status": status, "notes": ""},
        "chart": {"metadata": {"name": chart, "version": chart_version, "appVersion": chart_version,
                               "apiVersion": "v2", "type": "application",
                               "description": "StackBill cloud management portal"},
                  "lock": None, "templates": [], "values": {}, "schema": None, "files": []},
        "config": config if config is not None else {"global": {"domain": DOMAIN}},
        "manifest": "",
        "version": revision,
        "namespace": namespace,
    }


def helm_encode(release: dict) -> str:
    """Helm 3's own encoding of a release: base64 of gzip of its JSON."""
    return base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()


def helm_decode(value: str) -> dict:
    """Inverse of helm_encode (value: Helm's string, i.e. the Secret's data already base64-decoded once)."""
    raw = base64.b64decode(value)
    if raw[:3] == b"\x1f\x8b\x08":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def helm_release_secret(name: str, namespace: str, revision: int = 1, status: str = "deployed",
                        chart_version: str = CHART_VERSION, *, config: dict | None = None) -> Any:
    """A V1Secret as Helm 3 stores a release: data["release"] = base64(Secret) of base64(Helm) of gzip(JSON)."""
    from kubernetes import client

    record = helm_release_record(name, namespace, revision, status, chart_version, config=config)
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=f"sh.helm.release.v1.{name}.v{revision}", namespace=namespace,
            labels={"owner": "helm", "name": name, "status": status, "version": str(revision)}),
        type="helm.sh/release.v1",
        data={"release": base64.b64encode(helm_encode(record).encode()).decode()},
    )


def pod_name(app: str) -> str:
    """A Deployment-style pod name, stable across resets: <app>-<10 hex>-<5 chars>."""
    digest = hashlib.sha256(app.encode()).hexdigest()
    return f"{app}-{digest[:10]}-{digest[10:15]}"


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_pod_status(pod: str, containers: Sequence[tuple[str, str]], ip: str) -> dict:
    """The status a kubelet reports for a Running pod whose containers are all ready."""
    now = _now()
    return {
        "phase": "Running",
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                       for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
        "hostIP": NODE_IP, "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now, "qosClass": "BestEffort",
        "containerStatuses": [
            {"name": name, "image": image, "imageID": f"{image.split(':')[0]}@sha256:" + hashlib.sha256(
                (pod + name).encode()).hexdigest(), "containerID": "containerd://" + hashlib.sha256(
                (name + pod).encode()).hexdigest(),
             "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": now}}}
            for name, image in containers
        ],
    }


def deployment_status(replicas: int = 1) -> dict:
    now = _now()
    return {
        "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now},
        ],
    }


def node_status() -> dict:
    now = _now()
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    resources = {"cpu": "4", "memory": "16386156Ki", "pods": "110", "ephemeral-storage": "101445540Ki"}
    return {
        "conditions": [{"type": t, "status": s, "reason": r, "message": r, "lastHeartbeatTime": now,
                        "lastTransitionTime": now} for t, s, r in conditions],
        "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": NODE}],
        "capacity": resources, "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "0" * 32, "systemUUID": "00000000-0000-0000-0000-000000000000",
                     "bootID": "00000000-0000-0000-0000-000000000001", "kernelVersion": "6.1.0-18-amd64",
                     "osImage": "Ubuntu 22.04.4 LTS", "containerRuntimeVersion": "containerd://1.4.3-k3s1",
                     "kubeletVersion": "v1.20.2+k3s1", "kubeProxyVersion": "v1.20.2+k3s1",
                     "operatingSystem": "linux", "architecture": "amd64"},
    }


# --- the lab ----------------------------------------------------------------------------------------------

class KubeLab:
    """etcd + kube-apiserver on free loopback ports, data in `root`; admin kubeconfig at root/kubeconfig."""

    def __init__(self, root: Path | str, bind: str = "127.0.0.1") -> None:
        self.root = Path(root)
        self.bind = bind  # the living cluster binds a lab-owned address its node's namespace can reach
        self.etcd_port = 0
        self.port = 0
        self.tokens: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._api: Any = None
        self.tls: tuple[str, str, str] | None = None  # (cert_pem, key_pem, ca_pem) of the seeded ingress cert
        self._ingress_ca: tuple[str, str] | None = None

    # -- paths and identity ---------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.bind}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def running(self) -> bool:
        return bool(self.pids) and all(_alive(pid) for pid in self.pids.values())

    @classmethod
    def load(cls, root: Path | str) -> "KubeLab":
        """The lab described by root/lab.json (started by another process, e.g. `python -m tests.lab.kube start`)."""
        lab = cls(root)
        state = json.loads(lab.state_file.read_text())
        lab.etcd_port, lab.port = state["etcd_port"], state["port"]
        lab.bind = state.get("bind", "127.0.0.1")
        lab.tokens, lab.pids = state["tokens"], state.get("pids", {})
        return lab

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "KubeLab":
        apiserver, etcd = binaries()
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        pki = self.root / "pki"
        pki.mkdir(exist_ok=True)
        self._write_pki(pki)
        self._write_tokens()
        self.etcd_port, peer, self.port = free_port(), free_port(), free_port(self.bind)
        etcd_url, peer_url = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{peer}"
        self._spawn("etcd", [
            str(etcd), "--name", "lab", "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"lab={peer_url}", "--log-level", "warn",
        ])
        self._spawn("apiserver", [
            str(apiserver), f"--etcd-servers={etcd_url}", f"--bind-address={self.bind}",
            *([f"--advertise-address={self.bind}", "--kubelet-preferred-address-types=InternalIP"]
              if self.bind != "127.0.0.1" else []),
            f"--secure-port={self.port}", f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={self.root / 'tokens.csv'}", f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.43.0.0/16", "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])
        self._save()
        atexit.register(self._stop_if_owned)  # a crashed test run must not leave servers behind
        self._wait_ready(timeout)
        self.write_kubeconfig(self.kubeconfig, self.tokens[ADMIN_USER])
        self.apply_crds()
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop apiserver then etcd (by pid, so a detached lab can be stopped from another process)."""
        self._api = None
        for name in ("apiserver", "etcd"):
            pid = self.pids.get(name)
            proc = self._procs.pop(name, None)
            if not pid:
                continue
            _terminate(pid, proc)
        self.pids = {}
        if self.state_file.exists():
            self._save()

    def _stop_if_owned(self) -> None:
        """At exit: stop the servers this process started, unless handed over (start_detached)."""
        if self._procs:
            self.stop()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        self._procs[name] = proc
        self.pids[name] = proc.pid

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"etcd_port": self.etcd_port, "port": self.port, "bind": self.bind,
                                               "tokens": self.tokens, "pids": self.pids}, indent=1))

    def _write_pki(self, pki: Path) -> None:
        """The lab CA, the apiserver's serving cert (127.0.0.1, localhost, kubernetes.default.svc, 10.43.0.1)
        and the service-account signing key. Serving cert made here (not by --cert-dir's self-signing) so
        the kubeconfig carries a real certificate-authority-data."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if not (pki / "ca.crt").exists():
            ca = make_ca("sbops lab kubernetes CA")
            cert, key, _ = make_cert("kube-apiserver", days=3650, ca=ca, sans=[
                *dict.fromkeys(("127.0.0.1", self.bind)), "localhost", "10.43.0.1", "kubernetes", "kubernetes.default",
                "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"])
            (pki / "ca.crt").write_text(ca[0])
            (pki / "ca.key").write_text(ca[1])
            (pki / "apiserver.crt").write_text(cert)
            (pki / "apiserver.key").write_text(key)
            sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            (pki / "sa.key").write_text(_pem_key(sa))
            (pki / "sa.pub").write_bytes(sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
            for path in pki.glob("*.key"):
                path.chmod(0o600)

    def _write_tokens(self) -> None:
        path = self.root / "tokens.csv"
        if not self.tokens:
            self.tokens = {user: _b64(os.urandom(24)).rstrip("=").replace("+", "a").replace("/", "b")
                           for user in (ADMIN_USER, *TOKEN_USERS)}
        lines = [f'{self.tokens[ADMIN_USER]},{ADMIN_USER},uid-{ADMIN_USER},"system:masters"']
        lines += [f"{self.tokens[user]},{user},uid-{user}" for user in TOKEN_USERS]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {tail(self.root / f'{name}.log', 30)}")
            try:
                request = urllib.request.Request(f"{self.server}/readyz",
                                                 headers={"Authorization": f"Bearer {self.tokens[ADMIN_USER]}"})
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = str(exc)
            time.sleep(0.1)
        raise TimeoutError(f"kube-apiserver not ready after {timeout:g}s ({last}): "
                           f"{tail(self.root / 'apiserver.log', 30)}")

    def write_kubeconfig(self, path: Path, token: str, user: str = ADMIN_USER) -> Path:
        import yaml

        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "lab",
            "clusters": [{"name": "lab", "cluster": {
                "server": self.server, "certificate-authority-data": _b64(self.ca_file.read_text())}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path

    # -- API access -------------------------------------------------------------------------------------
    def api(self) -> Any:
        """A kubernetes ApiClient as the admin (a fresh one each call: tests may close theirs)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def _client(self) -> Any:
        if self._api is None:
            self._api = self.api()
        return self._api

    def token_kubeconfig(self, name: str, rules: Sequence[dict]) -> Path:
        """A kubeconfig for static-token user `name` (one of TOKEN_USERS) allowed only `rules`
        (PolicyRule dicts: {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]})."""
        from kubernetes import client

        if name not in self.tokens or name == ADMIN_USER:
            raise KeyError(f"{name!r} is not a pre-registered lab token user (have: {', '.join(TOKEN_USERS)})")
        rbac = client.RbacAuthorizationV1Api(self._client())
        role_name = f"sbops-lab-{name}"
        labels = {LAB_LABEL: "token"}
        role = {"metadata": {"name": role_name, "labels": labels}, "rules": list(rules)}
        binding = {"metadata": {"name": role_name, "labels": labels},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                   "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}]}
        _ignore(404, rbac.delete_cluster_role_binding, role_name, _preload_content=False)
        _ignore(404, rbac.delete_cluster_role, role_name, _preload_content=False)
        rbac.create_cluster_role(role)
        rbac.create_cluster_role_binding(binding)
        return self.write_kubeconfig(self.root / f"kubeconfig-{name}", self.tokens[name], user=name)

    # -- CRDs -------------------------------------------------------------------------------------------
    def apply_crds(self, timeout: float = 30.0) -> None:
        """Istio's Gateway and VirtualService (networking.istio.io/v1beta1, schema-less), until Established."""
        from kubernetes import client

        ext = client.ApiextensionsV1Api(self._client())
        for plural, kind, short in CRDS:
            body = {
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{ISTIO_GROUP}"},
                "spec": {"group": ISTIO_GROUP, "scope": "Namespaced",
                         "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                                   "listKind": f"{kind}List", "shortNames": [short], "categories": ["istio-io"]},
                         "versions": [{"name": v, "served": True, "storage": v == ISTIO_VERSION_API,
                                       "schema": {"openAPIV3Schema": {
                                           "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
                                      for v in ("v1alpha3", "v1beta1")]},
            }
            _ignore(409, ext.create_custom_resource_definition, body)
        end = time.monotonic() + timeout
        for plural, _, _ in CRDS:
            while True:
                crd = _raw(ext.read_custom_resource_definition, f"{plural}.{ISTIO_GROUP}")
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                if time.monotonic() > end:
                    raise TimeoutError(f"CRD {plural}.{ISTIO_GROUP} not Established after {timeout:g}s")
                time.sleep(0.05)

    # -- the StackBill install ----------------------------------------------------------------------------
    def seed_stackbill(self) -> None:
        """Create everything a healthy StackBill install has (see the module constants)."""
        from kubernetes import client

        api = self._client()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        storage, custom = client.StorageV1Api(api), client.CustomObjectsApi(api)
        self._ensure_namespaces(core)
        if not _exists(core.read_node, NODE):
            core.create_node({"metadata": {"name": NODE, "labels": {
                "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/master": "true", "node-role.kubernetes.io/control-plane": "true",
                "node.kubernetes.io/instance-type": "k3s"}}})
        core.patch_node_status(NODE, {"status": node_status()})
        if not _exists(storage.read_storage_class, STORAGE_CLASS):
            storage.create_storage_class({"metadata": {"name": STORAGE_CLASS}, "provisioner": PROVISIONER,
                                          "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
                                          "parameters": {"archiveOnDelete": "true"}})

        # Secrets: registry credentials, ingress TLS, the Helm release record.
        token = ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
        core.create_namespaced_secret(NAMESPACE, {
            "metadata": {"name": PULL_SECRET}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": _b64(dockerconfigjson(token))}})
        if self.tls is None:
            self._ingress_ca = make_ca("sbops lab ingress CA")
            self.tls = make_cert(DOMAIN, days=90, ca=self._ingress_ca)
        cert, key, ca = self.tls
        core.create_namespaced_secret(ISTIO_NAMESPACE, {
            "metadata": {"name": TLS_SECRET}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64(cert + ca), "tls.key": _b64(key)}})
        core.create_namespaced_secret(NAMESPACE, helm_release_secret("stackbill", NAMESPACE, 1, "deployed",
                                                                     CHART_VERSION))

        ip = iter(range(10, 250))
        for name, port in SERVICES.items():
            self._workload(core, apps, NAMESPACE, name, {"app": name}, [
                (name, f"{REGISTRY}/{name}:latest"), ("istio-proxy", PROXY_IMAGE)],
                ports=[("http" if port in (80, 8000, 8080) else "tcp", port, port, None)],
                ip=f"10.42.0.{next(ip)}", pull_secret=True, annotations={"sidecar.istio.io/status": "injected"})
        self._workload(core, apps, ISTIO_NAMESPACE, "istiod", {"app": "istiod", "istio": "pilot"}, [
            ("discovery", f"docker.io/istio/pilot:{ISTIO_VERSION}")],
            ports=[("grpc-xds", 15010, 15010, None), ("https-dns", 15012, 15012, None),
                   ("https-webhook", 443, 15017, None), ("http-monitoring", 15014, 15014, None)],
            ip=f"10.42.0.{next(ip)}")
        self._workload(core, apps, ISTIO_NAMESPACE, "istio-ingressgateway",
                       {"app": "istio-ingressgateway", "istio": "ingressgateway"}, [("istio-proxy", PROXY_IMAGE)],
                       ports=[("status-port", 15021, 15021, None), ("http2", 80, 8080, NODEPORT_HTTP),
                              ("https", 443, 8443, NODEPORT_HTTPS)],
                       ip=f"10.42.0.{next(ip)}", selector={"istio": "ingressgateway"}, service_type="NodePort")
        self._workload(core, apps, NFS_NAMESPACE, "nfs-subdir-external-provisioner",
                       {"app": "nfs-subdir-external-provisioner"}, [
                           ("nfs-subdir-external-provisioner",
                            "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2")],
                       ports=None, ip=f"10.42.0.{next(ip)}")

        # Storage: a PV provisioned for the PVC, both Bound.
        pv_name = "pvc-" + str(_uuid("sb-data"))
        if not _exists(core.read_persistent_volume, pv_name):
            core.create_persistent_volume({
                "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": STORAGE_CLASS,
                         "nfs": {"server": NODE_IP, "path": f"/data/stackbill/{NAMESPACE}-sb-data-{pv_name}"},
                         "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                      "namespace": NAMESPACE, "name": "sb-data"}}})
        core.patch_persistent_volume_status(pv_name, {"status": {"phase": "Bound"}})
        core.create_namespaced_persistent_volume_claim(NAMESPACE, {
            "metadata": {"name": "sb-data", "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER}},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": STORAGE_CLASS,
                     "resources": {"requests": {"storage": "10Gi"}}, "volumeName": pv_name}})
        core.patch_namespaced_persistent_volume_claim_status("sb-data", NAMESPACE, {"status": {
            "phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "10Gi"}}})

        # Istio routing.
        self._create_custom(custom, "gateways", {
            "apiVersion": f"{ISTIO_GROUP}/{ISTIO_VERSION_API}", "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": [DOMAIN],
                 "tls": {"mode": "SIMPLE", "credentialName": TLS_SECRET}},
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [DOMAIN],
                 "tls": {"httpsRedirect": True}},
            ]}})
        self._create_custom(custom, "virtualservices", {
            "apiVersion": f"{ISTIO_GROUP}/{ISTIO_VERSION_API}", "kind": "VirtualService",
            "metadata": {"name": VIRTUALSERVICE, "namespace": NAMESPACE},
            "spec": {"hosts": [DOMAIN], "gateways": [GATEWAY], "http": [
                {"match": [{"uri": {"prefix": prefix}}],
                 "route": [{"destination": {"host": host, "port": {"number": port}}}]}
                for prefix, host, port in ROUTES]}})

    def _ensure_namespaces(self, core: Any) -> None:
        labels = {NAMESPACE: {"istio-injection": "enabled"}, ISTIO_NAMESPACE: {}, NFS_NAMESPACE: {}}
        for ns, wanted in labels.items():
            try:
                current = core.read_namespace(ns)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) != 404:
                    raise
                core.create_namespace({"metadata": {"name": ns, "labels": wanted}})
                continue
            have = current.metadata.labels or {}
            if have != wanted:
                patch = {"metadata": {"labels": {**{k: None for k in have}, **wanted}}}
                core.patch_namespace(ns, patch)

    def _workload(self, core: Any, apps: Any, ns: str, name: str, labels: dict, containers: list[tuple[str, str]],
                  *, ports: list[tuple[str, int, int, int | None]] | None, ip: str, pull_secret: bool = False,
                  annotations: dict | None = None, selector: dict | None = None,
                  service_type: str = "ClusterIP") -> None:
        """Deployment (with status) + ready Pod + Service + Endpoints for one app."""
        pod = pod_name(name)
        container_specs = [{"name": c, "image": image, "imagePullPolicy": "Always" if pull_secret and c == name
                            else "IfNotPresent",
                            "ports": [{"containerPort": p[2]} for p in ports or []] if c == containers[0][0] else []}
                           for c, image in containers]
        pod_spec: dict[str, Any] = {"containers": container_specs}
        if pull_secret:
            pod_spec["imagePullSecrets"] = [{"name": PULL_SECRET}]
        apps.create_namespaced_deployment(ns, {
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector or {"app": name}},
                     "template": {"metadata": {"labels": labels, "annotations": annotations or {}},
                                  "spec": {**pod_spec, "containers": [c for c in container_specs
                                                                      if c["name"] != "istio-proxy" or ns != NAMESPACE]}}}})
        apps.patch_namespaced_deployment_status(name, ns, {"status": deployment_status()})
        core.create_namespaced_pod(ns, {
            "metadata": {"name": pod, "labels": {**labels, "pod-template-hash": pod.split("-")[-2]},
                         "annotations": annotations or {}},
            "spec": {**pod_spec, "nodeName": NODE}})
        core.patch_namespaced_pod_status(pod, ns, {"status": ready_pod_status(pod, containers, ip)})
        if ports is None:
            return
        svc_ports = [{"name": pname, "port": port, "targetPort": target, "protocol": "TCP",
                      **({"nodePort": node_port} if node_port else {})} for pname, port, target, node_port in ports]
        # reset() keeps the ingress Service when it is still as seeded (see _ingress_as_seeded); the API
        # server checks nodePorts before existence, so look first rather than expect a 409.
        if not _exists(core.read_namespaced_service, name, ns):
            body = {"metadata": {"name": name, "labels": labels},
                    "spec": {"type": service_type, "selector": selector or {"app": name}, "ports": svc_ports}}
            # A new API server's nodePort repair pass can hold a free port as "already allocated" for a
            # moment (seen on a fresh run: the session's first seed refused 31443); it clears by itself.
            deadline = time.monotonic() + 30
            while True:
                try:
                    core.create_namespaced_service(ns, body)
                    break
                except Exception as exc:  # noqa: BLE001 - only that refusal is waited out
                    if getattr(exc, "status", None) != 422 or "already allocated" not in str(getattr(exc, "body", "")) \
                            or time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
        core.create_namespaced_endpoints(ns, {
            "metadata": {"name": name, "labels": labels},
            "subsets": [{"addresses": [{"ip": ip, "nodeName": NODE, "targetRef": {
                "kind": "Pod", "name": pod, "namespace": ns}}],
                "ports": [{"name": pname, "port": target, "protocol": "TCP"} for pname, _, target, _ in ports]}]})

    def _create_custom(self, custom: Any, plural: str, body: dict, timeout: float = 10.0) -> None:
        """Create a custom object; retries while the freshly Established CRD is not yet served (404)."""
        end = time.monotonic() + timeout
        while True:
            try:
                custom.create_namespaced_custom_object(ISTIO_GROUP, ISTIO_VERSION_API, body["metadata"]["namespace"],
                                                       plural, body)
                return
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) != 404 or time.monotonic() > end:
                    raise
                time.sleep(0.1)

    # -- reset ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the freshly seeded state: delete every namespaced object of the lab's namespaces (and the
        cluster objects tests may have touched), then seed again. Objects, not namespaces, are deleted:
        without a controller-manager a namespace deletion never finishes."""
        from concurrent.futures import ThreadPoolExecutor

        from kubernetes import client

        api = self._client()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
        storage, rbac = client.StorageV1Api(api), client.RbacAuthorizationV1Api(api)
        self._revive_namespaces(core)
        zero = {"grace_period_seconds": 0}
        jobs: list[tuple] = []
        for ns in NAMESPACES:
            jobs += [
                (core.delete_collection_namespaced_pod, ns, zero),
                (core.delete_collection_namespaced_secret, ns, {}),
                (core.delete_collection_namespaced_config_map, ns, {}),
                (core.delete_collection_namespaced_endpoints, ns, {}),
                (core.delete_collection_namespaced_service_account, ns, {}),
                (core.delete_collection_namespaced_resource_quota, ns, {}),
                (core.delete_collection_namespaced_limit_range, ns, {}),
                (core.delete_collection_namespaced_event, ns, {}),
                (apps.delete_collection_namespaced_deployment, ns, {}),
                (apps.delete_collection_namespaced_replica_set, ns, {}),
                (apps.delete_collection_namespaced_stateful_set, ns, {}),
                (apps.delete_collection_namespaced_daemon_set, ns, {}),
                (batch.delete_collection_namespaced_job, ns, {"propagation_policy": "Background"}),
                (self._delete_services, ns, {}),
                (self._delete_pvcs, ns, {}),
            ]
        # Istio objects in every namespace, not only the lab's: a Gateway a test left in a namespace of its own
        # would still name the TLS secret and change what other tests see (sbops reads gateways cluster-wide)
        for other in {item["metadata"]["namespace"] for plural, _, _ in CRDS for item in custom.list_cluster_custom_object(
                ISTIO_GROUP, ISTIO_VERSION_API, plural)["items"]} | set(NAMESPACES):
            for plural, _, _ in CRDS:
                jobs.append((custom.delete_collection_namespaced_custom_object, other, {
                    "group": ISTIO_GROUP, "version": ISTIO_VERSION_API, "plural": plural}))
        jobs += [
            (self._delete_cluster, None, {"lister": core.list_persistent_volume, "deleter": core.delete_persistent_volume,
                                          "patcher": core.patch_persistent_volume}),
            (self._delete_cluster, None, {"lister": core.list_node, "deleter": core.delete_node,
                                          "patcher": core.patch_node}),
            (self._delete_cluster, None, {"lister": storage.list_storage_class,
                                          "deleter": storage.delete_storage_class,
                                          "patcher": storage.patch_storage_class}),
            (rbac.delete_collection_cluster_role_binding, None, {"label_selector": f"{LAB_LABEL}=token"}),
            (rbac.delete_collection_cluster_role, None, {"label_selector": f"{LAB_LABEL}=token"}),
        ]

        def run(job: tuple) -> None:
            fn, ns, kwargs = job
            kwargs = {**kwargs, "_preload_content": False}
            if "group" in kwargs:
                fn(kwargs.pop("group"), kwargs.pop("version"), ns, kwargs.pop("plural"), **kwargs)
            elif ns is None:
                fn(**kwargs)
            else:
                fn(ns, **kwargs)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(run, jobs))
        self._wait_gone(core)
        self.seed_stackbill()

    def _revive_namespaces(self, core: Any) -> None:
        """A lab namespace a test deleted is stuck Terminating (no namespace controller): finalize it by hand
        so it goes away and seeding recreates it."""
        for ns in NAMESPACES:
            try:
                current = core.read_namespace(ns)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) == 404:
                    continue
                raise
            if current.metadata.deletion_timestamp is None:
                continue
            current.spec.finalizers = []
            core.replace_namespace_finalize(ns, current)
            end = time.monotonic() + 10
            while _exists(core.read_namespace, ns) and time.monotonic() < end:
                time.sleep(0.05)

    def _delete_services(self, ns: str, **_: Any) -> None:
        """Services have no deletecollection in v1.20."""
        from kubernetes import client

        core = client.CoreV1Api(self._client())
        for svc in core.list_namespaced_service(ns).items:
            if ns == ISTIO_NAMESPACE and _ingress_as_seeded(svc):
                continue
            _ignore(404, core.delete_namespaced_service, svc.metadata.name, ns, _preload_content=False)

    def _delete_pvcs(self, ns: str, **_: Any) -> None:
        """PVCs carry kubernetes.io/pvc-protection, which only a controller removes: strip it, then delete."""
        from kubernetes import client

        core = client.CoreV1Api(self._client())
        for pvc in core.list_namespaced_persistent_volume_claim(ns).items:
            if pvc.metadata.finalizers:
                _ignore(404, core.patch_namespaced_persistent_volume_claim, pvc.metadata.name, ns,
                        {"metadata": {"finalizers": None}})
            _ignore(404, core.delete_namespaced_persistent_volume_claim, pvc.metadata.name, ns,
                    _preload_content=False)

    def _delete_cluster(self, lister: Any, deleter: Any, patcher: Any, **_: Any) -> None:
        for item in lister().items:
            if item.metadata.finalizers:
                _ignore(404, patcher, item.metadata.name, {"metadata": {"finalizers": None}})
            _ignore(404, deleter, item.metadata.name, grace_period_seconds=0, _preload_content=False)

    def _wait_gone(self, core: Any, timeout: float = 10.0) -> None:
        """Deletions are immediate here (grace 0, finalizers stripped), but make sure before re-creating."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            left = [(ns, p.metadata.name) for ns in NAMESPACES for p in core.list_namespaced_pod(ns).items]
            left += [("", pv.metadata.name) for pv in core.list_persistent_volume().items]
            if not left:
                return
            for ns, name in left:
                if ns:
                    _ignore(404, core.delete_namespaced_pod, name, ns, grace_period_seconds=0, _preload_content=False)
            time.sleep(0.05)
        raise TimeoutError(f"objects still present after reset: {left}")


# --- small helpers ------------------------------------------------------------------------------------------

def _uuid(seed: str) -> Any:
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"sbops-lab/{seed}")


def _ingress_as_seeded(svc: Any) -> bool:
    """The ingress gateway Service still exactly as seeded (type, selector, ports, nodePorts).

    reset() keeps it rather than deleting and re-creating it: a re-create races with the API server's
    periodic nodePort repair, which can leave 31443 marked allocated for minutes ("provided port is
    already allocated"). Only tests that changed it pay for a re-create.
    """
    if svc.metadata.name != "istio-ingressgateway" or svc.spec.type != "NodePort":
        return False
    if (svc.spec.selector or {}) != {"istio": "ingressgateway"}:
        return False
    ports = {(p.name, p.port, p.node_port if p.name != "status-port" else None) for p in svc.spec.ports or []}
    return ports == {("status-port", 15021, None), ("http2", 80, NODEPORT_HTTP), ("https", 443, NODEPORT_HTTPS)}


def _ignore(status: int, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) != status:
            raise
        return None


def _exists(read: Any, *args: Any) -> bool:
    try:
        read(*args)
        return True
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "status", None) == 404:
            return False
        raise


def _raw(fn: Any, *args: Any) -> dict:
    response = fn(*args, _preload_content=False)
    return json.loads(response.data)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pid: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=5)


# --- pytest fixtures ----------------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="session")
    def kube_lab(tmp_path_factory: Any) -> Iterator[KubeLab]:
        """One kube-apiserver + etcd for the session, started and seeded."""
        lab = KubeLab(tmp_path_factory.mktemp("kube"))
        try:
            lab.start()
            lab.seed_stackbill()
            yield lab
        finally:
            lab.stop()

    @pytest.fixture
    def kube(kube_lab: KubeLab) -> KubeLab:
        """The session's cluster, reset to the seeded healthy state."""
        kube_lab.reset()
        return kube_lab

    @pytest.fixture
    def core(kube: KubeLab) -> Any:
        """CoreV1Api on the reset cluster, for a test's own setup and breaking."""
        from kubernetes import client

        return client.CoreV1Api(kube.api())

    @pytest.fixture
    def apps(kube: KubeLab) -> Any:
        """AppsV1Api on the reset cluster."""
        from kubernetes import client

        return client.AppsV1Api(kube.api())

    @pytest.fixture
    def custom(kube: KubeLab) -> Any:
        """CustomObjectsApi on the reset cluster (Istio's Gateway and VirtualService)."""
        from kubernetes import client

        return client.CustomObjectsApi(kube.api())


# --- script entry -------------------------------------------------------------------------------------------

def start_detached(root: Path) -> KubeLab:
    """Start (or reuse) the lab in `root`; the servers outlive this process (stop with stop_detached)."""
    root = Path(root)
    if (root / "lab.json").exists():
        lab = KubeLab.load(root)
        if lab.running and lab.kubeconfig.exists():
            return lab
        lab.stop()
    lab = KubeLab(root)
    if (root / "etcd").exists():  # stale data from a previous lab: start clean
        import shutil

        shutil.rmtree(root / "etcd")
    lab.start()
    lab.seed_stackbill()
    lab._procs.clear()  # leave them running, tracked by pid
    return lab


def stop_detached(root: Path) -> None:
    root = Path(root)
    if (root / "lab.json").exists():
        KubeLab.load(root).stop()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop", "reset"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    if argv[0] == "start":
        print(start_detached(root).kubeconfig)
    elif argv[0] == "reset":
        KubeLab.load(root).reset()
    else:
        stop_detached(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
