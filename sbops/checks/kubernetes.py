"""Kubernetes cluster checks: API server, nodes, the StackBill namespace, storage. Thin over sbops.probes.k8s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "kubernetes"


@check("k8s.api", layer=LAYER, title="The Kubernetes API server answers and accepts the kubeconfig",
       severity=Severity.CRITICAL,
       no_fix="a stopped K3s is started with systemctl; wrong credentials need a fresh kubeconfig (see the runbook)")
def api(ctx: "Context") -> Result:
    from sbops.probes import k8s

    return k8s.probe_api(ctx)


@check("k8s.nodes", layer=LAYER, title="Every node is Ready, without memory/disk/PID pressure",
       severity=Severity.CRITICAL, requires=("k8s.api",),
       no_fix="a NotReady node or resource pressure is fixed on the host (kubelet, disk, memory; see the runbook)")
def nodes(ctx: "Context") -> Result:
    from sbops.probes import k8s

    return k8s.probe_nodes(ctx)


@check("k8s.namespace", layer=LAYER, title="The StackBill namespace exists with istio-injection=enabled",
       severity=Severity.CRITICAL, requires=("k8s.api",), fix="k8s-namespace")
def namespace(ctx: "Context") -> Result:
    from sbops.probes import k8s

    return k8s.probe_namespace(ctx)


@check("k8s.storage", layer=LAYER, title="StorageClass, provisioner pod and Bound PVCs",
       severity=Severity.CRITICAL, requires=("k8s.api",),
       no_fix="the NFS provisioner is reinstalled with Helm and depends on the NFS export (see the runbook)")
def storage(ctx: "Context") -> Result:
    from sbops.probes import k8s

    return k8s.probe_storage(ctx)


@check("k8s.kubeconfig-mode", layer=LAYER, title="K3s's kubeconfig is root's, mode 0600, and K3s keeps it so at restart",
       severity=Severity.WARNING, fix="kubeconfig-mode")
def kubeconfig_mode(ctx: "Context") -> Result:
    from sbops.probes import k3s

    return k3s.probe_kubeconfig_mode(ctx)
