"""Ingress TLS fix: thin declaration over sbops.probes.tls.

The fix system has no per-fix flags yet: the files come from `opts.cert`/`opts.key` when the core adds
them, else settings tls.cert_file / tls.key_file (env SBOPS_TLS_CERT_FILE / SBOPS_TLS_KEY_FILE). Without
files, a valid copy of the secret in another namespace (the classic mistake) is copied to the right one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import FixOptions, Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("tls-secret", title="create the TLS secret in the ingress gateway's namespace from cert/key files (or a valid misplaced copy)",
     repairs=("tls.secret", "tls.certificate"), risk=Risk.SAFE, options=("cert", "key"))
def secret(ctx: "Context", opts: FixOptions) -> Plan:
    from sbops.probes import tls

    return tls.plan_secret(ctx, opts)
