"""A living Kubernetes node for the lab: containerd + runc + CNI, kubelet and kube-proxy, in a network namespace.

The node runs in a network namespace of its own, joined to the host by a veth pair on lab-owned addresses
(10.99.N.0/30: the host end is HOST_IP, the node's end NODE_IP). Inside it: containerd (private root, state and
socket), the kubelet, kube-proxy in iptables mode, the CNI bridge `cni0` with pods on the node's pod CIDR (10.42.0.0/24
for the first node, 10.42.1.0/24 for tests/lab/twonode.py's second; 10.42.0.0/16 cluster-wide, as K3s), Services on
10.43.0.0/16. kube-controller-manager and kube-scheduler run on the host and
talk to the lab's kube-apiserver, which listens on HOST_IP so the node can reach it.

Why a namespace rather than the host's own network: kube-proxy rewrites iptables and the CNI bridge owns routes;
in a namespace both stay private to the lab, two labs (a developer's run and a fresh clone's) can run at once, and
nothing of the machine's own network changes. Pods reach the host's services at HOST_IP, the way pods on K3s
reach the server's address: through the bridge, masqueraded to NODE_IP, into the host's INPUT chain, where a
server bound to 127.0.0.1 refuses and a firewall rule drops.

The recipe and its traps are in ../shared/TESTENV.md ("A living node", "A second node"): containerd's CRI plugin
needs `restrict_oom_score_adj = true` here; processes enter the namespace with `nsenter --net=...` (never
`ip netns exec`, which remounts /sys and hides the cgroup mounts from the kubelet).

Layout of a node directory D:
    D/containerd/      config.toml, root/, state/ (task bundles: /run/containerd's equivalent); its socket is
                       /run/sbops-lab/<suffix>/containerd.sock (a unix socket path must stay under 104 bytes)
    D/cni/             the CNI network config (conf_dir); D/cni-ipam/ host-local's leases
    /var/lib/sbops-lab/<suffix>/kubelet/   the kubelet's --root-dir (short: it holds unix sockets);
    D/kubelet-pki/     the kubelet's self-signed serving cert; D/kubelet.yaml its config
    D/log/pods/        what containerd and the kubelet see as /var/log/pods (their mount namespace's own)
    D/*.log            each process's log;  D/node.json  names, addresses and pids, for stop() from elsewhere
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tests.lab.common import free_port, tail

KUBELET_HEALTHZ_PORT = 10248  # the kubelet's default, in the node's own network namespace

POD_CIDR = "10.42.0.0/16"
NODE_POD_CIDR = "10.42.0.0/24"
SERVICE_CIDR = "10.43.0.0/16"
LINK_PREFIX = "10.99"
CNI_BIN = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
NODE_NAME = "stackbill-node"
LOG_DIRS = ("/var/log/pods", "/var/log/containers")
NODE_VIEW = Path("/run/sbops-lab/node")  # node-neutral paths, each node's own in its mount namespace (node_view)
PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"  # the kubelet's default for v1.20; tests/lab/images.py builds it
NEEDS = {  # program -> the Debian package scripts/setup installs it from
    "containerd": "containerd", "containerd-shim-runc-v2": "containerd", "ctr": "containerd", "runc": "runc",
    "iptables": "iptables", "nsenter": "util-linux", "ip": "iproute2", "conntrack": "conntrack",
}


class NodeError(RuntimeError):
    """The node could not be set up or did not become Ready; the message says which part and shows its log."""


@dataclass(frozen=True)
class Link:
    """The lab-owned point-to-point network between the host and the node's namespace."""

    suffix: str    # names: netns sbn-<suffix>, host veth sbh-<suffix>
    subnet: int    # N in 10.99.N.0/30

    @property
    def netns(self) -> str:
        return f"sbn-{self.suffix}"

    @property
    def host_if(self) -> str:
        return f"sbh-{self.suffix}"

    @property
    def host_ip(self) -> str:
        return f"{LINK_PREFIX}.{self.subnet}.1"

    @property
    def node_ip(self) -> str:
        return f"{LINK_PREFIX}.{self.subnet}.2"

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"


def missing_programs() -> list[str]:
    """The programs the node needs that this machine lacks, with the package that has each."""
    return [f"{prog} ({pkg})" for prog, pkg in NEEDS.items() if shutil.which(prog) is None] + [
        f"{CNI_BIN / p} (containernetworking-plugins)" for p in CNI_PLUGINS if not (CNI_BIN / p).exists()]


def _run(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
    return done


def _used_subnets() -> set[int]:
    out = _run("ip", "-4", "-o", "addr", "show", check=False).stdout
    used = set()
    for word in out.split():
        if word.startswith(f"{LINK_PREFIX}."):
            try:
                used.add(int(word.split(".")[2]))
            except (IndexError, ValueError):
                continue
    return used


def pick_link() -> Link:
    """A /30 in 10.99.0.0/16 that no interface of this machine uses, and names no other lab holds."""
    used = _used_subnets()
    existing = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
    for _ in range(200):
        subnet = random.randint(1, 254)
        suffix = f"{random.getrandbits(24):06x}"
        if subnet not in used and f"sbn-{suffix}" not in existing:
            return Link(suffix, subnet)
    raise NodeError("no free 10.99.N.0/30 subnet for the lab node's link")


class LivingNode:
    """containerd + kubelet + kube-proxy in a network namespace, plus the controller-manager and scheduler."""

    def __init__(self, root: Path | str, binaries: dict[str, Path], link: Link | None = None, *,
                 name: str = NODE_NAME, pod_cidr: str = NODE_POD_CIDR, control_plane: bool = True,
                 taints: tuple[str, ...] = ()) -> None:
        """`name`, `pod_cidr` (this node's share of POD_CIDR, which its CNI bridge hands out) and `taints`
        (kubelet --register-with-taints, KEY=VALUE:EFFECT) tell one node from another; `control_plane`: this
        node's start_kubernetes also runs the controller-manager and scheduler on the host (one node of a
        cluster does; tests/lab/twonode.py's second node does not)."""
        self.root = Path(root)
        self.bin = binaries
        self.link = link or pick_link()
        self.name = name
        self.pod_cidr = pod_cidr
        self.control_plane = control_plane
        self.taints = tuple(taints)
        self.pids: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self.registry_mirror: tuple[str, str, Path] | None = None  # (registry host, https endpoint, CA file)

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def containerd_dir(self) -> Path:
        return self.root / "containerd"

    @property
    def sock_dir(self) -> Path:
        """containerd's sockets live under /run/sbops-lab/<suffix>: a unix socket path may not exceed 104
        bytes, which a pytest temp directory easily does."""
        return Path("/run/sbops-lab") / self.link.suffix

    @property
    def kubelet_dir(self) -> Path:
        """The kubelet's --root-dir, under /var/lib/sbops-lab/<suffix> for the same reason: it holds the kubelet's
        own sockets (pod-resources, device-plugins)."""
        return Path("/var/lib/sbops-lab") / self.link.suffix / "kubelet"

    @property
    def kubelet_healthz(self) -> str:
        """The kubelet's health endpoint, reachable from the host (sbops's host.kubelet)."""
        return f"http://{self.link.node_ip}:{KUBELET_HEALTHZ_PORT}/healthz"

    @property
    def containerd_sock(self) -> Path:
        return self.sock_dir / "containerd.sock"

    @property
    def containerd_state(self) -> Path:
        """containerd's state dir: task bundles under io.containerd.runtime.v2.task/k8s.io/<id>/."""
        return self.containerd_dir / "state"

    def node_view(self) -> dict[str, str]:
        """{this node's path: the node-neutral path it is bound to in the node's mount namespace}."""
        return {str(self.containerd_state): str(NODE_VIEW / "containerd-state"),
                str(self.sock_dir): str(NODE_VIEW / "containerd"),
                str(self.kubelet_dir): str(NODE_VIEW / "kubelet")}

    @property
    def state_file(self) -> Path:
        return self.root / "node.json"

    # -- lifecycle --------------------------------------------------------------------------------------
    def start_network(self) -> None:
        """The namespace, the veth pair and the namespace's sysctls (forwarding on, bridged traffic through
        iptables so kube-proxy's rules see pod-to-Service traffic)."""
        missing = missing_programs()
        if missing:
            raise NodeError("the living node needs: " + ", ".join(missing) + " (scripts/setup installs them)")
        link = self.link
        self.root.mkdir(parents=True, exist_ok=True)
        self._save()
        _run("ip", "netns", "add", link.netns)
        peer = f"sbp-{link.suffix}"
        _run("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", link.netns)
        _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        _run("ip", "link", "set", link.host_if, "up")
        inside = ("nsenter", f"--net={link.netns_path}")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "link", "set", peer, "name", "eth0")
        _run(*inside, "ip", "addr", "add", f"{link.node_ip}/30", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "route", "add", "default", "via", link.host_ip)
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1"):
            _run(*inside, "sysctl", "-qw", key)
        # Namespaced since Linux 5.3; harmless where it is already on.
        _run(*inside, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", check=False)

    def start_runtime(self, images: Iterable[Path] = ()) -> None:
        """containerd in the namespace, then import the images the node needs without a registry (pause)."""
        self._write_containerd_config()
        self._write_cni_config()
        # A mount namespace of the node's own, shared by containerd and the kubelet, where /var/log/pods and
        # /var/log/containers are the node's directories: the kubelet (v1.20: a fixed path) garbage-collects
        # every pod log directory it does not know, so two nodes on one machine would delete each other's logs.
        binds = []
        for target in LOG_DIRS:
            Path(target).mkdir(parents=True, exist_ok=True)
            own = self.root / "log" / Path(target).name
            own.mkdir(parents=True, exist_ok=True)
            binds.append(f"mount --bind {own} {target}")
        # The same paths on every node, each showing that node's own (as /run/k3s/containerd is on every K3s
        # node): what a DaemonSet's hostPath mounts name, one pod template for all nodes.
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        for own, target in self.node_view().items():
            Path(own).mkdir(parents=True, exist_ok=True)
            Path(target).mkdir(parents=True, exist_ok=True)  # an empty mount point on the host
            binds.append(f"mount --bind {own} {target}")
        script = " && ".join([*binds, f'exec containerd --config {self.containerd_dir / "config.toml"}'])
        self._spawn("containerd", ["unshare", "--mount", "--propagation", "slave", "/bin/sh", "-c", script],
                    netns=True)
        self._wait(lambda: self.containerd_sock.exists() and self._ctr("version", check=False).returncode == 0,
                   30, "containerd")
        for archive in images:
            self._ctr("images", "import", "--no-unpack", str(archive), timeout=120)

    def start_kubernetes(self, server: str, kubeconfig: Path, pki: Path, timeout: float = 120.0) -> None:
        """kubelet and kube-proxy in the namespace, controller-manager and scheduler on the host; returns when
        the node is Ready."""
        kubelet_port = 10250
        config = self.root / "kubelet.yaml"
        config.write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": self.link.node_ip, "port": kubelet_port, "readOnlyPort": 0,
            # the health endpoint on every address of the node's namespace: 127.0.0.1 there for the node's
            # agent (host network), the node's address for sbops on the host (host.kubelet)
            "healthzPort": KUBELET_HEALTHZ_PORT, "healthzBindAddress": "0.0.0.0",
            "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "failSwapOn": False, "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                                                  "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False},
                               "x509": {}},
            "authorization": {"mode": "AlwaysAllow"},
            "serializeImagePulls": False, "syncFrequency": "10s", "fileCheckFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s", "resolvConf": self._resolv_conf(),
            "staticPodPath": "", "makeIPTablesUtilChains": True,
        }, indent=1))
        self._spawn("kubelet", [
            str(self.bin["kubelet"]), "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{self.containerd_sock}", f"--root-dir={self.kubelet_dir}",
            f"--cert-dir={self.root / 'kubelet-pki'}", f"--hostname-override={self.name}",
            f"--node-ip={self.link.node_ip}", f"--pod-infra-container-image={PAUSE_IMAGE}",
            f"--kubeconfig={kubeconfig}", f"--config={config}", "--v=1",
            *([f"--register-with-taints={','.join(self.taints)}"] if self.taints else []),
        ], netns=True, mount_of="containerd")
        self._spawn("kube-proxy", [
            str(self.bin["kube-proxy"]), f"--kubeconfig={kubeconfig}", "--proxy-mode=iptables",
            f"--cluster-cidr={POD_CIDR}", f"--hostname-override={self.name}", "--masquerade-all",
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            f"--healthz-bind-address=127.0.0.1:{free_port()}", f"--metrics-bind-address=127.0.0.1:{free_port()}",
            "--v=1",
        ], netns=True)
        if self.control_plane:
            self._start_control_plane(kubeconfig, pki)
        self._save()
        atexit.register(self._stop_if_owned)
        self._wait_node_ready(kubeconfig, timeout)

    def _start_control_plane(self, kubeconfig: Path, pki: Path) -> None:
        """kube-controller-manager and kube-scheduler, on the host: one pair per cluster."""
        self._spawn("kube-controller-manager", [
            str(self.bin["kube-controller-manager"]), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--port=0", "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-cidr={POD_CIDR}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-csrsigning,-csrapproving,-bootstrapsigner,-tokencleaner",
            "--node-monitor-grace-period=20s", "--pod-eviction-timeout=30m", "--v=1",
        ])
        self._spawn("kube-scheduler", [
            str(self.bin["kube-scheduler"]), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--port=0", "--leader-elect=false", "--v=1",
        ])

    def _wait_node_ready(self, kubeconfig: Path, timeout: float) -> None:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        end = time.monotonic() + timeout
        last = "not registered"
        while time.monotonic() < end:
            self._check_alive()
            try:
                node = api.read_node(self.name)
                ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
                if ready and ready[0].status == "True":
                    return
                last = f"{ready[0].reason}: {ready[0].message}" if ready else "no Ready condition"
            except Exception as exc:  # noqa: BLE001 - not registered yet
                last = str(exc).splitlines()[0]
            time.sleep(0.5)
        raise NodeError(f"node {self.name} not Ready after {timeout:g}s ({last}): {tail(self.root / 'kubelet.log', 25)}")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise NodeError(f"{name} exited with {proc.returncode}: {tail(self.root / f'{name}.log', 25)}")

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything and leave nothing behind: processes, containers, mounts, namespaces, the link."""
        for name in ("kube-scheduler", "kube-controller-manager", "kube-proxy", "kubelet"):
            self._terminate(name)
        sandboxes = self._sandbox_netns()
        shim_sockets = self._shim_sockets()
        self._kill_containers()
        self._terminate("containerd")
        self._unmount_all()
        shutil.rmtree(self.root / "hidden", ignore_errors=True)  # hide()'s overlays went with the mount namespace
        for path in sandboxes:
            name = os.path.basename(path)
            if path.startswith("/var/run/netns/") or path.startswith("/run/netns/"):
                _run("ip", "netns", "del", name, check=False)
        for sock in shim_sockets:  # a killed shim leaves its socket in the machine-wide /run/containerd/s
            sock.unlink(missing_ok=True)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if not any(line.split()[1].startswith(str(self.kubelet_dir))
                   for line in Path("/proc/self/mounts").read_text().splitlines()):
            shutil.rmtree(self.kubelet_dir.parent, ignore_errors=True)
        if os.path.exists(self.link.netns_path):
            _run("ip", "netns", "del", self.link.netns, check=False)
        _run("ip", "link", "del", self.link.host_if, check=False)
        self.pids = {}
        if self.state_file.exists():
            self._save()

    def _stop_if_owned(self) -> None:
        if self._procs:
            self.stop()

    def _terminate(self, name: str) -> None:
        pid = self.pids.pop(name, None)
        proc = self._procs.pop(name, None)
        if pid:
            _terminate(pid, proc)

    def _task_dirs(self) -> list[Path]:
        base = self.containerd_state / "io.containerd.runtime.v2.task" / "k8s.io"
        return sorted(base.iterdir()) if base.is_dir() else []

    def _sandbox_netns(self) -> list[str]:
        """The network namespace paths of the pod sandboxes (the CNI plugin made them under /var/run/netns)."""
        found = []
        for task in self._task_dirs():
            try:
                spec = json.loads((task / "config.json").read_text())
            except (OSError, ValueError):
                continue
            for ns in spec.get("linux", {}).get("namespaces", []):
                if ns.get("type") == "network" and ns.get("path"):
                    found.append(ns["path"])
        return found

    def _shim_sockets(self) -> list[Path]:
        """The shims' sockets: containerd 1.6 puts each at /run/containerd/s/<sha256 of "address/namespace/id">
        whatever its own state dir says, so they outlive a killed shim in that machine-wide directory."""
        import hashlib

        return [Path("/run/containerd/s") / hashlib.sha256(f"{self.containerd_sock}/k8s.io/{task.name}".encode())
                .hexdigest() for task in self._task_dirs()]

    def _kill_containers(self) -> None:
        """SIGKILL every container's processes and the shims that watch them (found by the shim's -address)."""
        for task in self._task_dirs():
            try:
                pid = int((task / "init.pid").read_text().strip())
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue
        address = str(self.containerd_sock)
        for proc_dir in Path("/proc").iterdir():
            if not proc_dir.name.isdigit():
                continue
            try:
                argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
                try:
                    os.kill(int(proc_dir.name), signal.SIGKILL)
                except OSError:
                    pass

    def _unmount_all(self) -> None:
        """Unmount whatever containerd and the kubelet mounted under the node directory, deepest first."""
        root = str(self.root.resolve())
        for _ in range(3):
            mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
            mine = sorted({m.replace("\\040", " ") for m in mounts if m == root or m.startswith(root + "/")},
                          key=len, reverse=True)
            if not mine:
                return
            for mount in mine:
                _run("umount", "-l", mount, check=False)

    # -- the node's own view of the file system --------------------------------------------------------------
    @property
    def mount_ns(self) -> str:
        """The node's mount namespace: containerd's (start_runtime), which the kubelet joins and every container
        starts from, so a host path a pod mounts (hostPath) is resolved there."""
        return f"/proc/{self.pids['containerd']}/ns/mnt"

    def in_mount_ns(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in the node's mount and network namespaces (what the node's own processes see)."""
        return _run("nsenter", f"--mount={self.mount_ns}", f"--net={self.link.netns_path}", *argv, check=check)

    def _hidden_dir(self, path: str) -> tuple[Path, Path]:
        real = Path(os.path.realpath(path))
        return real, self.root / "hidden" / str(real.parent).strip("/").replace("/", "_")

    def hide(self, path: str) -> None:
        """Make `path` absent on this node only, as on a node without the package that ships it: an overlay of
        its directory whose upper layer holds a whiteout for it, mounted over that directory in the node's mount
        namespace. The host and the other nodes still see the file; unhide() puts it back. Containers see the
        change when they start (a running pod keeps the view it started with)."""
        real, base = self._hidden_dir(path)
        if base.exists():
            raise NodeError(f"{real.parent} is already overlaid on {self.name}")
        (base / "upper").mkdir(parents=True)
        (base / "work").mkdir()
        os.mknod(base / "upper" / real.name, stat.S_IFCHR, os.makedev(0, 0))  # overlayfs's whiteout
        self.in_mount_ns("mount", "-t", "overlay", "overlay", "-o",
                         f"lowerdir={real.parent},upperdir={base / 'upper'},workdir={base / 'work'}", str(real.parent))

    def unhide(self, path: str) -> None:
        """Undo hide(path): unmount the overlay in the node's mount namespace (the host never had it)."""
        real, base = self._hidden_dir(path)
        if not base.exists():
            return
        if self.pids.get("containerd") and os.path.exists(self.mount_ns):
            self.in_mount_ns("umount", str(real.parent))
        shutil.rmtree(base)

    def sees(self, path: str) -> bool:
        """Whether `path` exists as this node's processes see it."""
        return self.in_mount_ns("test", "-e", path, check=False).returncode == 0

    # -- helpers ------------------------------------------------------------------------------------------
    def ctr(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """`ctr` against this node's containerd, namespace k8s.io (where the CRI keeps its images)."""
        return self._ctr(*args, check=check, timeout=timeout)

    def _ctr(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return _run("ctr", "--address", str(self.containerd_sock), "-n", "k8s.io", *args, check=check, timeout=timeout)

    def _spawn(self, name: str, argv: list[str], netns: bool = False, mount_of: str = "") -> None:
        """Start a process (in the node's network namespace when `netns`; in the mount namespace of the process
        `mount_of` when given), logging to D/<name>.log, in a session of its own so stop() kills its group."""
        if netns:
            mount = [f"--mount=/proc/{self.pids[mount_of]}/ns/mnt"] if mount_of else []
            argv = ["nsenter", f"--net={self.link.netns_path}", *mount, *argv]
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.root)
        log.close()
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self._save()

    def _wait(self, ready: Any, timeout: float, name: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._check_alive()
            if ready():
                return
            time.sleep(0.1)
        raise NodeError(f"{name} not up after {timeout:g}s: {tail(self.root / f'{name}.log', 25)}")

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"suffix": self.link.suffix, "subnet": self.link.subnet,
                                               "name": self.name, "pod_cidr": self.pod_cidr,
                                               "control_plane": self.control_plane, "taints": list(self.taints),
                                               "pids": self.pids}, indent=1))

    @classmethod
    def load(cls, root: Path | str, binaries: dict[str, Path]) -> "LivingNode":
        root = Path(root)
        state = json.loads((root / "node.json").read_text())
        node = cls(root, binaries, Link(state["suffix"], state["subnet"]), name=state.get("name", NODE_NAME),
                   pod_cidr=state.get("pod_cidr", NODE_POD_CIDR), control_plane=state.get("control_plane", True),
                   taints=tuple(state.get("taints", ())))
        node.pids = state.get("pids", {})
        return node

    def _resolv_conf(self) -> str:
        path = self.root / "resolv.conf"
        path.write_text("# the lab has no cluster DNS; pods reach Services by ClusterIP\noptions ndots:1\n")
        return str(path)

    def _write_containerd_config(self) -> None:
        d = self.containerd_dir
        (d / "root").mkdir(parents=True, exist_ok=True)
        (d / "state").mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f'root = "{d / "root"}"',
            f'state = "{d / "state"}"',
            "oom_score = 0",
            "[grpc]", f'  address = "{self.containerd_sock}"',
            "[ttrpc]", f'  address = "{self.containerd_sock}.ttrpc"',
            "[debug]", '  address = ""', "[metrics]", '  address = ""',
            f"[{cri}]",
            f'  sandbox_image = "{PAUSE_IMAGE}"',
            "  restrict_oom_score_adj = true",  # this machine refuses to lower oom_score_adj (TESTENV.md)
            "  enable_selinux = false",
            "  disable_apparmor = true",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f'  bin_dir = "{CNI_BIN}"',
            f'  conf_dir = "{self.root / "cni"}"',
        ]
        if self.registry_mirror:
            host, endpoint, ca = self.registry_mirror
            address = endpoint.split("://", 1)[-1]
            lines += [
                f'[{cri}.registry.mirrors."{host}"]', f'  endpoint = ["{endpoint}"]',
                f'[{cri}.registry.configs."{address}".tls]', f'  ca_file = "{ca}"',
            ]
        d.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        (d / "config.toml").write_text("\n".join(lines) + "\n")
        # containerd-shim-runc-v2 creates its sockets under /run/containerd/s whatever the config says.
        Path("/run/containerd/s").mkdir(parents=True, exist_ok=True)

    def _write_cni_config(self) -> None:
        conf = self.root / "cni"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "10-sblab.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "sblab", "plugins": [
                {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_cidr}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.root / "cni-ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ]}, indent=1))


def _terminate(pid: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    from tests.lab.kube import _terminate as terminate

    terminate(pid, proc, timeout)
