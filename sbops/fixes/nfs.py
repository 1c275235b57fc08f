"""NFS fixes: rewrite and re-export the export line; create the exported directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.probes import nfs as probe
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("nfs-export", title="Export nfs.path read-write to the node addresses (never the pod network), then exportfs -ra",
     repairs=("nfs.export", "nfs.server"), risk=Risk.SAFE)
def export(ctx: "Context") -> Plan:
    return probe.plan_export(ctx)


@fix("nfs-directory", title="Create the exported directory (mode 0777, as the installer does)",
     repairs=("nfs.directory",), risk=Risk.SAFE)
def directory(ctx: "Context") -> Plan:
    return probe.plan_directory(ctx)
