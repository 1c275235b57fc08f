"""Kubernetes fixes: create or label the StackBill namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import k8s as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("k8s-namespace", title="Create the namespace or label it istio-injection=enabled",
     repairs=("k8s.namespace",), risk=Risk.SAFE)
def namespace(ctx: "Context") -> Plan:
    return probe.plan_namespace(ctx)
