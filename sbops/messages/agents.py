"""What doctor reports when a check of a database host's own files or sockets is asked of that host's sbops
agent (sbops.probes.agents) and the agent cannot answer it (SB003x, the engine's area: these are about sbops's
own reach, not about the database). Documented in runbooks/guides/database-host.md."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

DOC = "runbooks/guides/database-host.md"

NOT_CONFIGURED = define(
    "SB0030", "AgentNotConfigured", Status.SKIP,
    "{service} runs on {host}, not on this machine: this check reads that host's files or sockets; install the "
    "agent there (sbops install --role database-host) and configure {setting}", DOC, Reason.NO_ACCESS)
UNREACHABLE = define(
    "SB0031", "AgentUnreachable", Status.ERROR,
    "the sbops agent at {url} ({service} on {host}) does not answer: {why}", DOC)
AUTH_REFUSED = define(
    "SB0032", "AgentAuthRefused", Status.ERROR,
    "the sbops agent at {url} refuses user {user} (HTTP {status}): the password in {password_file} is not the "
    "one of the database host's agent", DOC, Reason.AUTH_FAILED)
CERT_REFUSED = define(
    "SB0033", "AgentCertificateRefused", Status.ERROR,
    "the sbops agent's certificate at {url} is not trusted ({why}): set agents.ca_file to a copy of the database "
    "host's agent certificate", DOC, Reason.MISCONFIGURED)
BAD_REPLY = define(
    "SB0034", "AgentBadReply", Status.ERROR,
    "the sbops agent at {url} gave no usable answer for {check}: {why}", DOC)
PASSWORD_FILE = define(
    "SB0035", "AgentPasswordFileUnusable", Status.ERROR,
    "agents.password_file {path}: {why}", DOC, Reason.NO_ACCESS)
