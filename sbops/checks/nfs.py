"""NFS checks: the export, its directory, the running server. Thin declarations over sbops.probes.nfs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "nfs"


@check("nfs.export", layer=LAYER, title="nfs.path is exported read-write to every node's address and the server's (the kubelet mounts from them)",
       severity=Severity.CRITICAL, fix="nfs-export")
def export(ctx: "Context") -> Result:
    from sbops.probes import nfs

    return nfs.probe_export(ctx)


@check("nfs.directory", layer=LAYER, title="The exported directory exists, is writable and has free space",
       severity=Severity.CRITICAL, fix="nfs-directory")
def directory(ctx: "Context") -> Result:
    from sbops.probes import nfs

    return nfs.probe_directory(ctx)


@check("nfs.server", layer=LAYER, title="The NFS server listens and the export is active",
       severity=Severity.CRITICAL,
       no_fix="a stopped server is started with systemctl (see the runbook); an inactive export names nfs-export")
def server(ctx: "Context") -> Result:
    from sbops.probes import nfs

    return nfs.probe_server(ctx)


@check("nfs.client", layer=LAYER, title="This node can mount NFS: the mount helper is present and the server's NFS port answers",
       severity=Severity.CRITICAL,
       no_fix="install the node's NFS client package (nfs-common; nfs-utils on RHEL) or open the path to the server; "
              "the agent's file system is read-only and sbops installs no node packages")
def client(ctx: "Context") -> Result:
    from sbops.probes import node

    return node.probe_nfs_client(ctx)
