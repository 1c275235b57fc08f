"""Ingress TLS checks: thin declarations over sbops.probes.tls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "tls"


@check("tls.secret", layer=LAYER,
       title="the Gateway's credentialName secret exists in the ingress gateway's namespace with tls.crt and tls.key",
       severity=Severity.CRITICAL, fix="tls-secret")
def secret(ctx: "Context") -> Result:
    from sbops.probes import tls

    return tls.probe_secret(ctx)


@check("tls.certificate", layer=LAYER,
       title="the certificate is valid (not expiring in 14 days), covers the domain, matches its key, chain in order",
       severity=Severity.CRITICAL, requires=("tls.secret",), fix="tls-secret")
def certificate(ctx: "Context") -> Result:
    from sbops.probes import tls

    return tls.probe_certificate(ctx)


@check("tls.renewal", layer=LAYER,
       title="a Let's Encrypt certificate: the secret holds certbot's live one, the deploy hook is executable, "
             "certbot.timer is enabled",
       severity=Severity.WARNING, requires=("tls.secret",), fix="tls-deploy-lineage")
def renewal(ctx: "Context") -> Result:
    from sbops.probes import acme

    return acme.probe_renewal(ctx)
