"""A crowded cluster for the kube lab: many Node objects and pods with the status a kubelet would report (most
Running and Ready, 2 % CrashLoopBackOff, 1 % ImagePullBackOff, 1 % Pending), created fast over the API with
concurrent keep-alive sessions. Objects only: nothing runs them. bench/scale.py grows the lab with it; tests use
it to compare judgements on a realistic population."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import requests

from tests.lab import kube as lab

NAMESPACES = 40
PODS_PER_NODE = 25  # 200 nodes at 5,000 pods


def namespace_of(i: int, home: str = lab.NAMESPACE) -> str:
    """A fifth of the pods in `home` (the StackBill namespace), the rest spread over 39 other namespaces."""
    return home if i % 5 == 0 else f"tenant-{i % (NAMESPACES - 1) + 1:02d}"


def node_body(k: int) -> tuple[dict, dict]:
    name = f"worker-{k:03d}"
    status = lab.node_status()
    status["addresses"] = [{"type": "InternalIP", "address": f"10.1.{k // 250}.{k % 250 + 1}"},
                           {"type": "Hostname", "address": name}]
    meta = {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                     "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/worker": "true"}}
    return {"metadata": meta}, {"status": status}


def pod_body(i: int, nodes: int, home: str = lab.NAMESPACE, spread: bool = True) -> tuple[str, dict, dict]:
    """(namespace, the pod, its status) for pod number i: kind of trouble by i % 100. spread=False puts
    every pod in `home`."""
    ns = namespace_of(i, home) if spread else home
    app = f"app-{i % 23:02d}"
    name = f"{app}-{i:05d}-{lab.pod_name(str(i))[-5:]}"
    image = f"{lab.REGISTRY}/{app}:1.{i % 7}.0"
    containers = [(app, image)] + ([("istio-proxy", lab.PROXY_IMAGE)] if ns == home else [])
    node = f"worker-{i % nodes:03d}"
    ip = f"10.{42 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
    kind = i % 100
    spec: dict[str, Any] = {"containers": [{"name": c, "image": im, "resources": {"requests": {"cpu": "50m"}}}
                                           for c, im in containers]}
    if kind != 3:
        spec["nodeName"] = node
    body = {"metadata": {"name": name, "labels": {"app": app, "pod-template-hash": f"{i % 97:05x}"},
                         "annotations": {"sidecar.istio.io/status": "injected"} if ns == home else {}},
            "spec": spec}
    status = lab.ready_pod_status(name, containers, ip)
    status["hostIP"] = f"10.1.{(i % nodes) // 250}.{(i % nodes) % 250 + 1}"
    for cs in status["containerStatuses"]:
        cs["restartCount"] = i % 3  # a few restarts here and there, under the threshold
    first = status["containerStatuses"][0]
    if kind in (0, 1):  # CrashLoopBackOff
        first.update(ready=False, started=False, restartCount=5 + i % 40,
                     state={"waiting": {"reason": "CrashLoopBackOff",
                                        "message": f"back-off 5m0s restarting failed container={app} pod={name}"}},
                     lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": lab._now(),
                                               "finishedAt": lab._now(), "containerID": first["containerID"]}})
        _not_ready(status, "ContainersNotReady", f"containers with unready status: [{app}]")
    elif kind == 2:  # ImagePullBackOff
        first.update(ready=False, started=False, restartCount=0, imageID="",
                     state={"waiting": {"reason": "ImagePullBackOff",
                                        "message": f'Back-off pulling image "{image}"'}})
        first.pop("containerID", None)
        _not_ready(status, "ContainersNotReady", f"containers with unready status: [{app}]")
    elif kind == 3:  # Pending: no node fits
        status = {"phase": "Pending", "qosClass": "Burstable", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": lab._now(),
            "message": f"0/{nodes} nodes are available: {nodes} Insufficient cpu."}]}
    return ns, body, {"status": status}


def _not_ready(status: dict, reason: str, message: str) -> None:
    for cond in status["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond.update(status="False", reason=reason, message=message)


class Seeder:
    """Creates objects over the API with a pool of keep-alive sessions (the admin token)."""

    def __init__(self, kube: lab.KubeLab, workers: int = 12) -> None:
        self.base = kube.server
        self.headers = {"Authorization": f"Bearer {kube.tokens[lab.ADMIN_USER]}"}
        self.ca = str(kube.ca_file)
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
            self.local.s.headers.update(self.headers)
            self.local.s.verify = self.ca
        return self.local.s

    def call(self, method: str, path: str, body: dict, ok: tuple[int, ...] = (200, 201)) -> None:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        response = self.session().request(method, self.base + path, json=body, headers=headers, timeout=60,
                                          verify=self.ca)
        if response.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")

    def run(self, jobs: list[Callable[[], None]]) -> None:
        for future in [self.pool.submit(job) for job in jobs]:
            future.result()

    def namespaces(self) -> None:
        names = [f"tenant-{n:02d}" for n in range(1, NAMESPACES)]
        self.run([lambda n=n: self.call("POST", "/api/v1/namespaces", {"metadata": {"name": n}}, (201, 409))
                  for n in names])

    def nodes(self, start: int, stop: int) -> None:
        def one(k: int) -> None:
            node, status = node_body(k)
            self.call("POST", "/api/v1/nodes", node)
            self.call("PATCH", f"/api/v1/nodes/{node['metadata']['name']}/status", status)

        self.run([lambda k=k: one(k) for k in range(start, stop)])

    def pods(self, start: int, stop: int, nodes: int, only: str = "") -> None:
        """Pods number start..stop-1 on `nodes` nodes, spread over the namespaces, or all in `only`."""
        def one(i: int) -> None:
            ns, pod, status = pod_body(i, nodes, only or lab.NAMESPACE, spread=not only)
            self.call("POST", f"/api/v1/namespaces/{ns}/pods", pod)
            self.call("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status", status)

        self.run([lambda i=i: one(i) for i in range(start, stop)])

    def close(self) -> None:
        self.pool.shutdown()
