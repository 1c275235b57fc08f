"""Ingress TLS fix: thin declaration over sbops.probes.tls.

The files come from `--cert`/`--key` (cert_file, key_file), else settings tls.cert_file / tls.key_file (env
SBOPS_TLS_CERT_FILE / SBOPS_TLS_KEY_FILE). Without files, a valid copy of the secret in another namespace (the
classic mistake) is copied to the right one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Plan
from sbops.registry import Risk, fix

if TYPE_CHECKING:
    from sbops.context import Context


@fix("tls-secret", title="create the TLS secret in the ingress gateway's namespace from cert/key files (or a valid misplaced copy)",
     repairs=("tls.secret", "tls.certificate"), risk=Risk.SAFE)
def secret(ctx: "Context", *, cert_file: str | None = None, key_file: str | None = None) -> Plan:
    from sbops.probes import tls

    return tls.plan_secret(ctx, cert_file=cert_file, key_file=key_file)


@fix("tls-deploy-lineage", title="put certbot's live certificate into the TLS secret, reinstall the deploy hook, "
                                 "enable certbot.timer",
     repairs=("tls.renewal",), risk=Risk.SAFE)
def deploy_lineage(ctx: "Context") -> Plan:
    from sbops.probes import acme

    return acme.plan_repair(ctx)
