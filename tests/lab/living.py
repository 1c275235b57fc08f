"""The living cluster: kube-apiserver + etcd, a real node (tests/lab/node.py), the ECR stand-in, and StackBill
installed by real Helm from the lab's charts, its pods pulled, started and probed by the kubelet.

What sbops meets here is what it meets on a server: pods whose status the kubelet writes (containerIDs
`containerd://...`, Ready conditions from readiness probes, `ErrImagePull`/`ImagePullBackOff` from a registry that
answered 401, `CrashLoopBackOff` from a container that exited), ReplicaSets the controller-manager makes, Services
kube-proxy programs, and a NodePort that answers on the node's address.

Addresses (tests/lab/node.py's Link): the host end of the node's link, HOST_IP, is where the host's services are
reached from pods (the chart's `global.*.ip`), where the API server and the registry listen; the node's address,
NODE_IP, is where NodePorts answer (sbops's `server_ip`).

The data servers (MariaDB, MongoDB-wire, RabbitMQ) are passed in as `Services`, so the test session and
`scripts/lab` can each bring their own.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.lab import kube as kubelab
from tests.lab.node import NODE_NAME, LivingNode, NodeError

if TYPE_CHECKING:
    from tests.lab.env import LabEnv

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "tests" / "lab" / "charts"
STACKBILL_CHART = CHARTS / "stackbill"
GATEWAY_CHART = CHARTS / "istio-gateway"
APPS = ("sb-core", "sb-ui", "sb-admin", "sb-kong")
IMAGE_TAG = "lab"
# Images the node gets without a registry (Istio's come from docker.io on a real server, with no pull secret).
LOCAL_IMAGES = ("pause", "istio-ingressgateway")
COMPONENTS = kubelab.NODE_COMPONENTS
LAB_NAMESPACES = (kubelab.NAMESPACE, kubelab.ISTIO_NAMESPACE, kubelab.NFS_NAMESPACE)


@dataclass
class Endpoint:
    """One data server as the pods are configured to reach it."""

    port: int
    password: str
    username: str = "stackbill"


@dataclass
class Services:
    mysql: Endpoint
    mongodb: Endpoint
    rabbitmq: Endpoint


@dataclass
class LivingCluster:
    root: Path
    node: LivingNode = field(init=False)
    kube: kubelab.KubeLab = field(init=False)
    registry: Any = field(init=False)
    nfs: Any = field(init=False)
    token: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    servers: dict[str, Any] = field(default_factory=dict)  # the data servers the pods use (start_servers)

    # -- addresses --------------------------------------------------------------------------------------
    @property
    def host_ip(self) -> str:
        return self.node.link.host_ip

    @property
    def node_ip(self) -> str:
        return self.node.link.node_ip

    @property
    def kubeconfig(self) -> Path:
        return self.kube.kubeconfig

    # -- start ------------------------------------------------------------------------------------------
    def start(self, services: Services, timeout: float = 300.0) -> "LivingCluster":
        """Everything, in order; returns when every StackBill pod is Ready (or raises, naming what is not)."""
        from tests.lab.images import build_images
        from tests.lab.registry import LabRegistry

        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        binaries = {name: kubelab.cache_dir() / name for name in COMPONENTS}
        kubelab.binaries()  # builds all of them when missing (scripts/build-kube), fails loudly
        for name, path in binaries.items():
            if not os.access(path, os.X_OK):
                raise NodeError(f"{path} missing: run scripts/build-kube")
        self.node = LivingNode(self.root / "node", binaries)
        self.node.start_network()
        self._start_nfs()
        self._mark("network", t0)

        self.kube = kubelab.KubeLab(self.root / "kube", bind=self.host_ip).start()
        self._mark("apiserver", t0)

        images = build_images()
        self._mark("images", t0)
        self.registry = LabRegistry(self.root / "registry", host=self.host_ip)
        self.registry.start()
        self.token = kubelab.ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))
        self.registry.set_token(self.token)
        for app in APPS:
            self.registry.push(images[app], app, IMAGE_TAG)
        self._mark("registry", t0)

        self.node.registry_mirror = (kubelab.REGISTRY, f"https://{self.registry.address}", self.registry.ca_file)
        self.node.start_runtime([images[name] for name in LOCAL_IMAGES])
        self.node.start_kubernetes(self.kube.server, self.kube.kubeconfig, self.kube.root / "pki")
        self._mark("node Ready", t0)

        self.install(services)
        self.wait_ready(timeout=timeout)
        self.wait_pods_settled()
        self.snapshot()
        self._mark("pods Ready", t0)
        return self

    def _start_nfs(self) -> None:
        """The lab's NFS (the real exportfs on a private table, a listener standing in for nfsd) on port 2049
        of HOST_IP, exported to the node's address as the installer exports it to the server's."""
        from tests.lab.nfs import NfsLab

        self.nfs = NfsLab(self.root / "nfs", port=2049, bind=self.host_ip).start()
        self.nfs.seed_stackbill(self.node_ip)

    def _mark(self, what: str, t0: float) -> None:
        self.timings[what] = round(time.monotonic() - t0, 1)
        print(f"living lab: {what} at {self.timings[what]:.1f}s", file=sys.stderr, flush=True)

    # -- the install ------------------------------------------------------------------------------------
    def values(self, services: Services) -> dict[str, Any]:
        """The chart values sbops's installer would pass, pointing the pods at HOST_IP and the lab's ports."""
        def service(ep: Endpoint) -> dict[str, Any]:
            return {"ip": self.host_ip, "port": ep.port, "username": ep.username, "password": ep.password}

        return {"global": {"domain": kubelab.DOMAIN,
                           "nfs": {"server": self.host_ip, "path": str(self.nfs.export_dir)},
                           "mysql": service(services.mysql), "mongo": service(services.mongodb),
                           "rabbitmq": service(services.rabbitmq)},
                "image": {"registry": kubelab.REGISTRY, "tag": IMAGE_TAG}}

    def install(self, services: Services) -> None:
        """What the installer's steps leave: namespaces, the pull secret, the ingress TLS secret, Istio's CRDs,
        the gateway (istioctl's part) and the StackBill release (Helm's)."""
        from kubernetes import client

        core = client.CoreV1Api(self.kube.api())
        for ns, labels in ((kubelab.NAMESPACE, {"istio-injection": "enabled"}), (kubelab.ISTIO_NAMESPACE, {})):
            if not kubelab._exists(core.read_namespace, ns):
                core.create_namespace({"metadata": {"name": ns, "labels": labels}})
        self.write_pull_secret(self.token)
        from kubernetes import client as k8s

        k8s.StorageV1Api(self.kube.api()).create_storage_class({
            "metadata": {"name": kubelab.STORAGE_CLASS}, "provisioner": kubelab.PROVISIONER,
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate", "parameters": {"archiveOnDelete": "true"}})
        ca = kubelab.make_ca("sbops lab ingress CA")
        cert, key, ca_pem = kubelab.make_cert(kubelab.DOMAIN, days=90, ca=ca)
        core.create_namespaced_secret(kubelab.ISTIO_NAMESPACE, {
            "metadata": {"name": kubelab.TLS_SECRET}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": kubelab._b64(cert + ca_pem), "tls.key": kubelab._b64(key)}})
        self._nfs_provisioner()
        self.helm("istio-gateway", GATEWAY_CHART, kubelab.ISTIO_NAMESPACE, {})
        self.helm("stackbill", STACKBILL_CHART, kubelab.NAMESPACE, self.values(services))

    def _nfs_provisioner(self) -> None:
        """The NFS provisioner's Deployment, under its real image name (the lab's busybox image, tagged so:
        nothing provisions volumes, but its pod is Ready only while the NFS port answers from the pod network)."""
        from kubernetes import client

        from tests.lab.images import image_ref

        image = "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2"
        self.node.ctr("images", "tag", "--force", image_ref("istio-ingressgateway"), image)
        core, apps = client.CoreV1Api(self.kube.api()), client.AppsV1Api(self.kube.api())
        ns, name = kubelab.NFS_NAMESPACE, "nfs-subdir-external-provisioner"
        if not kubelab._exists(core.read_namespace, ns):
            core.create_namespace({"metadata": {"name": ns}})
        labels = {"app": name}
        apps.create_namespaced_deployment(ns, {"metadata": {"name": name, "labels": labels}, "spec": {
            "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                                "command": ["/bin/sleep", "2147483647"],
                                "env": [{"name": "NFS_SERVER", "value": self.host_ip},
                                        {"name": "NFS_PATH", "value": str(self.nfs.export_dir)},
                                        {"name": "PROVISIONER_NAME", "value": kubelab.PROVISIONER}],
                                "readinessProbe": {"exec": {"command": [
                                    "/bin/sh", "-c", f"nc -w 2 {self.host_ip} 2049 </dev/null"]},
                                    "periodSeconds": 5}}]}}}})

    def write_pull_secret(self, token: str) -> None:
        """awscred as the installer writes it (`kubectl create secret docker-registry`), replacing any."""
        from kubernetes import client

        core = client.CoreV1Api(self.kube.api())
        body = {"metadata": {"name": kubelab.PULL_SECRET}, "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": kubelab._b64(kubelab.dockerconfigjson(token))}}
        if kubelab._exists(core.read_namespaced_secret, kubelab.PULL_SECRET, kubelab.NAMESPACE):
            core.replace_namespaced_secret(kubelab.PULL_SECRET, kubelab.NAMESPACE, body)
        else:
            core.create_namespaced_secret(kubelab.NAMESPACE, body)

    def helm(self, release: str, chart: Path, namespace: str, values: dict[str, Any], timeout: float = 120) -> None:
        """`helm upgrade --install` with the values in a 0600 file (never --set: they hold passwords)."""
        from tests.lab.stack import helm_binary

        home = self.root / "helm"
        for sub in ("cache", "config", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=self.root, delete=False) as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(values, handle)
        try:
            env = {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig), "HELM_CACHE_HOME": str(home / "cache"),
                   "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
            proc = subprocess.run([helm_binary(), "upgrade", "--install", release, str(chart), "-n", namespace,
                                   "--values", handle.name], capture_output=True, text=True, env=env, timeout=timeout)
        finally:
            os.unlink(handle.name)
        if proc.returncode != 0:
            raise NodeError(f"helm upgrade --install {release} failed: {proc.stderr.strip()[-600:]}")

    # -- waiting ----------------------------------------------------------------------------------------
    def pods(self, namespace: str = kubelab.NAMESPACE) -> list[dict[str, Any]]:
        from kubernetes import client

        core = client.CoreV1Api(self.kube.api())
        return kubelab._raw(core.list_namespaced_pod, namespace)["items"]

    def wait_ready(self, namespaces: tuple[str, ...] = LAB_NAMESPACES,
                   timeout: float = 180.0) -> None:
        """Every Deployment in `namespaces` has all its replicas updated and Ready (the kubelet's verdict)."""
        from kubernetes import client

        apps = client.AppsV1Api(self.kube.api())
        end = time.monotonic() + timeout
        waiting: list[str] = []
        while time.monotonic() < end:
            waiting = []
            for ns in namespaces:
                for deploy in kubelab._raw(apps.list_namespaced_deployment, ns)["items"]:
                    want = deploy["spec"].get("replicas", 1)
                    status = deploy.get("status", {})
                    if (status.get("readyReplicas", 0) < want or status.get("updatedReplicas", 0) < want
                            or status.get("replicas", 0) > want
                            or status.get("observedGeneration", 0) < deploy["metadata"]["generation"]):
                        waiting.append(f"{ns}/{deploy['metadata']['name']}")
            if not waiting:
                return
            time.sleep(0.5)
        raise NodeError(f"not Ready after {timeout:g}s: {', '.join(waiting)}; pods: {self.describe_pods()}")

    def wait_pods_settled(self, timeout: float = 120.0) -> None:
        """Only the Deployments' current pods are left (old ones of a rollout terminated and gone)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pods = [p for ns in LAB_NAMESPACES for p in self.pods(ns)]
            if all(p["metadata"].get("deletionTimestamp") is None for p in pods) and all(
                    any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in p.get("status", {}).get("conditions", [])) for p in pods):
                return
            time.sleep(0.5)
        raise NodeError(f"pods did not settle after {timeout:g}s: {self.describe_pods()}")

    def describe_pods(self) -> str:
        """One line per pod: phase and each container's state, for failure messages."""
        lines = []
        for ns in LAB_NAMESPACES:
            for pod in self.pods(ns):
                states = []
                for cs in pod.get("status", {}).get("containerStatuses", []) or []:
                    state = cs.get("state", {})
                    kind = next(iter(state), "?")
                    states.append(f"{cs['name']}={kind}:{state.get(kind, {}).get('reason', '')}")
                lines.append(f"{ns}/{pod['metadata']['name']} {pod.get('status', {}).get('phase')} {' '.join(states)}")
        return "; ".join(lines) or "no pods"

    # -- the healthy state, and going back to it ----------------------------------------------------------
    def snapshot(self) -> None:
        """Remember the healthy install (Deployments' specs, the secrets the installer wrote) for restore()."""
        from kubernetes import client

        api = self.kube.api()
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        self._deployments = {(ns, d["metadata"]["name"]): d["spec"] for ns in LAB_NAMESPACES
                             for d in kubelab._raw(apps.list_namespaced_deployment, ns)["items"]}
        self._secrets = {(ns, name): kubelab._raw(core.read_namespaced_secret, name, ns)
                         for ns, name in ((kubelab.NAMESPACE, kubelab.PULL_SECRET),
                                          (kubelab.ISTIO_NAMESPACE, kubelab.TLS_SECRET))}

    def restore(self, timeout: float = 180.0) -> list[str]:
        """Undo what a test broke, touching only what differs from snapshot(), then wait until every pod is
        Ready again. Returns what it put back (empty when the test left the cluster healthy)."""
        from kubernetes import client

        api = self.kube.api()
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        done: list[str] = []
        if self.registry.token != self.token:
            self.registry.set_token(self.token)
            done.append("registry token")
        for (ns, name), saved in self._secrets.items():
            try:
                live = kubelab._raw(core.read_namespaced_secret, name, ns)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) != 404:
                    raise
                live = None
            if live is None or live.get("data") != saved.get("data") or live.get("type") != saved.get("type"):
                body = {"metadata": {"name": name}, "type": saved["type"], "data": saved["data"]}
                if live is None:
                    core.create_namespaced_secret(ns, body)
                else:
                    core.replace_namespaced_secret(name, ns, body)
                done.append(f"secret {ns}/{name}")
        for ns in LAB_NAMESPACES:
            live = {d["metadata"]["name"]: d for d in kubelab._raw(apps.list_namespaced_deployment, ns)["items"]}
            for name, deploy in live.items():
                if (ns, name) not in self._deployments:
                    apps.delete_namespaced_deployment(name, ns, propagation_policy="Foreground")
                    done.append(f"deleted deployment {ns}/{name}")
            for (dns, name), spec in self._deployments.items():
                if dns != ns:
                    continue
                if name not in live:
                    apps.create_namespaced_deployment(ns, {"metadata": {"name": name, "labels": spec["template"][
                        "metadata"].get("labels", {})}, "spec": spec})
                    done.append(f"recreated deployment {ns}/{name}")
                elif live[name]["spec"] != spec:
                    body = live[name]
                    body["spec"] = spec
                    apps.replace_namespaced_deployment(name, ns, body)
                    done.append(f"deployment {ns}/{name}")
            for pod in kubelab._raw(core.list_namespaced_pod, ns)["items"]:
                if not pod["metadata"].get("ownerReferences"):  # a bare pod a test made
                    kubelab._ignore(404, core.delete_namespaced_pod, pod["metadata"]["name"], ns,
                                    grace_period_seconds=0)
                    done.append(f"deleted pod {ns}/{pod['metadata']['name']}")
        self.wait_ready(timeout=timeout)
        if done:
            self.wait_pods_settled()
        return done

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Node first (its pods), then registry and API server; each part stops even when another fails."""
        errors = []
        for part in ("node", "registry", "kube", "nfs"):
            obj = getattr(self, part, None)
            if obj is None:
                continue
            try:
                obj.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                errors.append(f"{part}: {exc}")
        if errors:
            raise NodeError("stopping the living lab: " + "; ".join(errors))


# -- detached (scripts/lab): the cluster outlives the process that started it --------------------------------
def save(cluster: LivingCluster) -> None:
    """What load() needs to find and stop a running cluster from another process."""
    nfs_pid = cluster.nfs.listener.pid if cluster.nfs.listener else 0
    (cluster.root / "cluster.json").write_text(json.dumps({
        "token": cluster.token, "nfs_pid": nfs_pid, "timings": cluster.timings}, indent=1))
    (cluster.root / "cluster.json").chmod(0o600)


def load(root: Path) -> LivingCluster:
    """The cluster a detached start left in `root` (processes tracked by pid)."""
    from tests.lab.nfs import NfsLab
    from tests.lab.registry import LabRegistry

    state = json.loads((root / "cluster.json").read_text())
    cluster = LivingCluster(root, token=state["token"], timings=state.get("timings", {}))
    binaries = {name: kubelab.cache_dir() / name for name in COMPONENTS}
    cluster.node = LivingNode.load(root / "node", binaries)
    cluster.kube = kubelab.KubeLab.load(root / "kube")
    cluster.registry = LabRegistry.load(root / "registry")
    cluster.nfs = NfsLab(root / "nfs", port=2049, bind=cluster.host_ip)
    cluster.nfs_pid = state.get("nfs_pid", 0)  # type: ignore[attr-defined]
    return cluster


def running(root: Path) -> bool:
    """Whether a detached cluster in `root` is up: every process it started is alive."""
    if not (root / "cluster.json").exists():
        return False
    try:
        cluster = load(root)
    except (OSError, ValueError, KeyError):
        return False
    return cluster.kube.running and cluster.registry.running and bool(cluster.node.pids) and all(
        kubelab._alive(pid) for pid in cluster.node.pids.values())


def start_detached(root: Path, services: Services) -> LivingCluster:
    """Start the cluster and leave it running (stop_detached stops it); reuse it when it is already up."""
    if running(root):
        return load(root)
    stop_detached(root)
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    cluster = LivingCluster(root)
    try:
        cluster.start(services)
    except BaseException:
        cluster.stop()  # a start that failed half-way leaves no namespace, process or mount behind
        raise
    save(cluster)
    for part in (cluster.node, cluster.kube):
        part._procs.clear()  # leave them running, tracked by pid
    if cluster.nfs.listener is not None:
        cluster.nfs.listener = None  # the listener process stays; its pid is in cluster.json
    cluster.registry._proc = None  # hand over: tracked by pid (as tests.lab.registry.start_detached does)
    return cluster


def stop_detached(root: Path) -> None:
    """Stop a detached cluster; nothing of it is left running (namespaces, mounts, processes)."""
    if not (root / "cluster.json").exists():
        return
    cluster = load(root)
    nfs_pid = getattr(cluster, "nfs_pid", 0)
    if nfs_pid and kubelab._alive(nfs_pid):
        kubelab._terminate(nfs_pid, None, timeout=5)
    cluster.nfs = None
    cluster.stop()
    (root / "cluster.json").unlink(missing_ok=True)


def eventually(what: str, probe: Any, ok: Any, timeout: float = 120.0) -> Any:
    """Poll `probe` until `ok(result)`; fail with the last result. Tests on the living cluster wait for the
    kubelet and the controllers, which work at their own pace (back-offs, probe periods, grace periods)."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = probe()
        if ok(last):
            return last
        time.sleep(1.0)
    raise AssertionError(f"{what}: not reached in {timeout:g}s; last: {last}")


def pull_secret_token(cluster: LivingCluster) -> str:
    """The token awscred holds now (to check what a fix wrote)."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.kube.api())
    secret = core.read_namespaced_secret(kubelab.PULL_SECRET, kubelab.NAMESPACE)
    doc = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))
    return doc["auths"][kubelab.REGISTRY]["auth"]


def lab_env(cluster: LivingCluster, root: Path, servers: dict[str, Any]) -> "LabEnv":
    """A LabEnv pointing sbops at the living cluster the way a StackBill host's files would: the kubeconfig,
    server_ip = the node's address (where NodePorts answer), the data servers at HOST_IP (where the pods reach
    them, which the chart values name), and the node's containerd state for the netpath checks."""
    from tests.lab.env import LabEnv

    mysql, mongo, rabbit = servers["mysql"], servers["mongodb"], servers["rabbitmq"]
    passwords = servers["passwords"]
    env = LabEnv(root)
    env.set("kubeconfig", str(cluster.kubeconfig)).set("server_ip", cluster.node_ip)
    env.service("mysql", host=cluster.host_ip, port=mysql.port, password=passwords["mysql"])
    env.set("mysql.admin_socket", str(mysql.socket)).set("mysql.config_dir", str(mysql.conf_d))
    env.set("mysql.restart_command", str(mysql.restart_script))
    env.service("mongodb", host=cluster.host_ip, port=mongo.port, password=passwords["mongodb"])
    env.set("mongodb.config_file", str(mongo.conf_path)).set("mongodb.restart_command", mongo.restart_command())
    env.service("rabbitmq", host=cluster.host_ip, port=rabbit.port, password=passwords["rabbitmq"],
                management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("rabbitmq.management_port", rabbit.management_port)
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    env.set("netpath.containerd_state", str(cluster.node.containerd_state))
    cluster.nfs.configure(env)
    env.nfs_server = cluster.host_ip  # the credentials file's NFS Server, as the installer writes it
    return env


def start_servers(root: Path, mongo_template: Any = None) -> dict[str, Any]:
    """Private MariaDB, MongoDB-wire and RabbitMQ for the living cluster, listening on all addresses as a
    StackBill host's do (so pods reach them at HOST_IP)."""
    from tests.lab.mariadb import LAB_PASSWORD, MariaDB
    from tests.lab.mongodb import MONGO_ADMIN_PASSWORD, MONGO_PASSWORD, MongoLab
    from tests.lab.rabbitmq import RabbitMQ

    mysql = MariaDB(root / "mariadb").start().seed_stackbill(LAB_PASSWORD)
    if mongo_template is not None:
        mongo = mongo_template.clone_to(root / "mongodb").start()
    else:
        mongo = MongoLab(root / "mongodb")
        mongo.seed_stackbill(MONGO_PASSWORD, admin_password=MONGO_ADMIN_PASSWORD)
    rabbit = RabbitMQ(root / "rabbitmq", bind="0.0.0.0").start().seed_stackbill(LAB_PASSWORD)
    return {"mysql": mysql, "mongodb": mongo, "rabbitmq": rabbit,
            "passwords": {"mysql": LAB_PASSWORD, "mongodb": MONGO_PASSWORD, "rabbitmq": LAB_PASSWORD}}


def mysql_config(mysql: Any) -> dict[Path, str]:
    """MariaDB's configuration files (my.cnf and its drop-ins), to put back what a test or a fix changed."""
    files = [mysql.root / "my.cnf", *sorted(mysql.conf_d.glob("*"))]
    return {path: path.read_text() for path in files if path.is_file()}


def restore_servers(cluster: LivingCluster) -> None:
    """The data servers as the session started them: MariaDB's configuration (restarted when a test changed
    it) and running; the NFS port answering."""
    mysql = cluster.servers["mysql"]
    saved = cluster.servers.setdefault("mysql_config", mysql_config(mysql))
    if mysql_config(mysql) != saved:
        for path in mysql.conf_d.glob("*"):
            if path not in saved:
                path.unlink()
        for path, text in saved.items():
            path.write_text(text)
        if mysql.running:
            mysql.stop()
    if not mysql.running:
        mysql.start()
    if cluster.nfs.listener is None:
        cluster.nfs.start_server()


def services_of(servers: dict[str, Any]) -> Services:
    passwords = servers["passwords"]
    return Services(mysql=Endpoint(servers["mysql"].port, passwords["mysql"]),
                    mongodb=Endpoint(servers["mongodb"].port, passwords["mongodb"]),
                    rabbitmq=Endpoint(servers["rabbitmq"].port, passwords["rabbitmq"]))


def stop_servers(servers: dict[str, Any]) -> None:
    for name in ("mysql", "rabbitmq"):
        try:
            servers[name].destroy()
        except Exception:  # noqa: BLE001 - teardown goes on
            pass
    try:
        servers["mongodb"].stop()
    except Exception:  # noqa: BLE001
        pass


try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="session")
    def living_cluster(tmp_path_factory: Any, mongo_template: Any) -> Any:
        """The session's living cluster and its data servers (about a minute to start once binaries and
        images are cached). A failure to start is a test failure naming the part, never a skip."""
        root = tmp_path_factory.mktemp("living")
        servers = start_servers(root / "servers", mongo_template)
        cluster = LivingCluster(root / "cluster")
        cluster.servers = servers
        servers["mysql_config"] = mysql_config(servers["mysql"])
        try:
            cluster.start(services_of(servers))
            yield cluster
        finally:
            try:
                cluster.stop()
            finally:
                stop_servers(servers)

    @pytest.fixture
    def living(living_cluster: LivingCluster) -> LivingCluster:
        """The living cluster, put back to its healthy install before the test (restore() touches only what
        an earlier test changed); its MariaDB restarted if a test stopped it."""
        restore_servers(living_cluster)
        living_cluster.restore()
        return living_cluster

    @pytest.fixture
    def living_env(living: LivingCluster, tmp_path: Path) -> Any:
        """A LabEnv for sbops against the living cluster (see lab_env)."""
        return lab_env(living, tmp_path / "env", living.servers)


__all__ = ["LivingCluster", "Services", "Endpoint", "NODE_NAME", "pull_secret_token", "lab_env", "start_servers",
           "eventually"]
