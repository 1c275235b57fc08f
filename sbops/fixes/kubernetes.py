"""Kubernetes fixes: create or label the StackBill namespace; make K3s's kubeconfig root's only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import k3s
from sbops.probes import k8s as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("k8s-namespace", title="Create the namespace or label it istio-injection=enabled",
     repairs=("k8s.namespace",), risk=Risk.SAFE)
def namespace(ctx: "Context") -> Plan:
    return probe.plan_namespace(ctx)


@fix("kubeconfig-mode", title="Make K3s's kubeconfig root's, mode 0600, and set write-kubeconfig-mode 0600 in config.yaml",
     repairs=("k8s.kubeconfig-mode",), risk=Risk.SAFE)
def kubeconfig_mode(ctx: "Context") -> Plan:
    return k3s.plan_kubeconfig_mode(ctx)
