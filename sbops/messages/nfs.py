"""The NFS layer's findings (SB50xx): nfs.export SB5001-SB5019, nfs.directory SB5020-SB5029, nfs.server
SB5030-SB5039, nfs.client SB5040-SB5049. Documented in each check's runbook under "## Findings".

The export's findings end with `{note}`: empty when the node list was read, else why only this server's
address could be judged (the judgement holds either way; the note says how much it saw)."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

EXPORT = "runbooks/nfs.export.md"
DIRECTORY = "runbooks/nfs.directory.md"
SERVER = "runbooks/nfs.server.md"

# nfs.export
EXPORTED = define("SB5001", "NfsExportedToNodes", Status.OK,
                  "{path} is exported read-write to {addresses} (the addresses the kubelet mounts from){note}", EXPORT,
                  Reason.NONE)
NO_EXPORTS_FILE = define("SB5002", "NfsExportsFileMissing", Status.FAIL,
                         "{exports_file} does not exist: {path} is not exported{note}", EXPORT, Reason.MISSING)
NO_ENTRY = define("SB5003", "NfsExportMissing", Status.FAIL, "{exports_file} has no entry for {path}{note}", EXPORT,
                  Reason.MISSING)
SYNTAX_ERROR = define("SB5004", "NfsExportSyntaxError", Status.FAIL,
                      "{exports_file}:{line}: syntax error: {error}; exportfs ignores the entry for {path}{note}",
                      EXPORT, Reason.MISCONFIGURED)
MISSES_NODES = define("SB5005", "NfsExportMissesNodes", Status.FAIL,
                      "{path} is exported to {clients}{pods_only}, which misses {missing}: the kubelet mounts NFS "
                      "volumes from the node's address, never a pod's, so volumes cannot be mounted from there{note}",
                      EXPORT, Reason.MISCONFIGURED)
MAY_MISS_NODES = define("SB5006", "NfsExportMayMissNodes", Status.WARN,
                        "{path} is exported to {clients}, which misses {missing}: the kubelet mounts NFS volumes from "
                        "the node's address, never a pod's, so volumes cannot be mounted from there, unless the host "
                        "name(s) {names} resolve to them (sbops cannot tell){note}", EXPORT, Reason.MISCONFIGURED)
NOT_RW_SYNC = define("SB5007", "NfsExportNotReadWriteSync", Status.FAIL,
                     "the export of {path} to {client} lacks {gaps}: volumes on {addresses} cannot be written "
                     "reliably{note}", EXPORT, Reason.MISCONFIGURED)
TO_EVERYONE = define("SB5008", "NfsExportedToEveryone", Status.WARN,
                     "{path} is exported to everyone{root}; export it to the node addresses {addresses} only{note}",
                     EXPORT, Reason.INSECURE)
EXPORTS_UNREADABLE = define("SB5009", "NfsExportsFileUnreadable", Status.FAIL, "cannot read {exports_file}: {error}",
                            EXPORT, Reason.NO_ACCESS)
EXPORT_REMOTE = define("SB5010", "NfsExportOnOtherHost", Status.SKIP, "the NFS server is {host}, not this host",
                       EXPORT, Reason.NOT_APPLICABLE)

# nfs.directory
DIRECTORY_OK = define("SB5020", "NfsDirectoryWritable", Status.OK,
                      "{path} is a writable directory with {free_gb:g} GB free", DIRECTORY, Reason.NONE)
DIRECTORY_MISSING = define("SB5021", "NfsDirectoryMissing", Status.FAIL,
                           "{path} does not exist: volumes cannot be provisioned", DIRECTORY, Reason.MISSING)
NOT_A_DIRECTORY = define("SB5022", "NfsPathNotADirectory", Status.FAIL, "{path} exists but is not a directory",
                         DIRECTORY, Reason.MISCONFIGURED)
DIRECTORY_NEEDS_ROOT = define("SB5023", "NfsDirectoryNeedsRoot", Status.FAIL,
                              "{path} is not writable for this user: run sbops as root to check it as the NFS server "
                              "sees it", DIRECTORY, Reason.NO_ACCESS)
DIRECTORY_READ_ONLY = define("SB5024", "NfsDirectoryNotWritable", Status.FAIL,
                             "{path} is not writable ({error}): read-only mount or immutable attribute?", DIRECTORY,
                             Reason.ACCESS_DENIED)
DIRECTORY_LOW_SPACE = define("SB5025", "NfsDirectoryLowOnSpace", Status.WARN,
                             "only {free_gb:g} GB free under {path} (minimum {min_free_gb:g} GB)", DIRECTORY,
                             Reason.DEGRADED)
DIRECTORY_REMOTE = define("SB5026", "NfsDirectoryOnOtherHost", Status.SKIP, "the NFS server is {host}, not this host",
                          DIRECTORY, Reason.NOT_APPLICABLE)

# nfs.server
SERVING = define("SB5030", "NfsServerExporting", Status.OK, "NFS listens on {port} and exports {path} to {clients}",
                 SERVER, Reason.NONE)
NOT_LISTENING = define("SB5031", "NfsServerNotListening", Status.FAIL,
                       "nothing listens on NFS port {port}: start nfs-server", SERVER, Reason.NOT_RUNNING)
EXPORTFS_UNUSABLE = define("SB5032", "NfsExportfsUnusable", Status.FAIL, "cannot list active exports: {error}",
                           SERVER)  # missing (no exportfs) or no_access
NOT_ACTIVE = define("SB5033", "NfsExportNotActive", Status.FAIL,
                    "{path} is not an active export (exportfs -v does not list it)", SERVER, Reason.MISCONFIGURED)
STALE = define("SB5034", "NfsActiveExportStale", Status.FAIL,
               "the active export of {path} ({clients}) differs from the exports file: it was edited but not "
               "re-exported", SERVER, Reason.MISCONFIGURED)
SERVER_REMOTE = define("SB5035", "NfsServerOnOtherHost", Status.SKIP, "the NFS server is {host}, not this host",
                       SERVER, Reason.NOT_APPLICABLE)

CLIENT = "runbooks/nfs.client.md"

# nfs.client (SB5040-SB5049): the NFS client on this node
CLIENT_READY = define("SB5040", "NfsClientReady", Status.OK,
                      "{helper} is present and {server}:{port} answers from this node's address {source}", CLIENT,
                      Reason.NONE)
CLIENT_NO_HELPER = define("SB5041", "NfsMountHelperMissing", Status.FAIL,
                          "no NFS mount helper at {helper}: the kubelet cannot mount NFS volumes on this node "
                          "(install nfs-common)", CLIENT, Reason.MISSING)
CLIENT_HELPER_NOT_EXECUTABLE = define("SB5042", "NfsMountHelperNotExecutable", Status.FAIL,
                                      "{helper} exists but is not an executable file", CLIENT, Reason.MISCONFIGURED)
CLIENT_SERVER_UNREACHABLE = define("SB5043", "NfsServerUnreachableFromNode", Status.FAIL,
                                   "the NFS server {server}:{port} cannot be reached from this node: {error}", CLIENT)
CLIENT_NO_SERVER = define("SB5044", "NfsServerUnknown", Status.SKIP,
                          "no NFS server address (nfs.server, the credentials file's NFS Server, server_ip)", CLIENT,
                          Reason.NO_ACCESS)
CLIENT_NOT_EXPORTED = define("SB5045", "NfsExportDeniesNode", Status.FAIL,
                             "{path} is not exported to this node's address {source} ({exports_file}): the kubelet's "
                             "mounts are refused", CLIENT, Reason.MISCONFIGURED)
