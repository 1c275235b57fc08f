"""The installer's steps in the original script's order (ARCHITECTURE.md, "Installation Script Flow")."""

from __future__ import annotations

from sbops.install.steps import Step

ORDER = ("credentials", "k3s", "helm", "istio", "mysql", "mongodb", "rabbitmq", "nfs", "cloudstack", "namespace",
         "ecr-secret", "letsencrypt", "tls-secret", "helm-release", "istio-gateway", "wait-pods", "save-credentials",
         "exporter")


def steps() -> list[Step]:
    from sbops.install import cloudstack, creds, databases, infra, kubernetes, monitoring

    found = {**creds.STEPS, **infra.STEPS, **databases.STEPS, **cloudstack.STEPS, **kubernetes.STEPS,
             **monitoring.STEPS}
    assert set(found) == set(ORDER), sorted(set(found) ^ set(ORDER))
    return [found[name] for name in ORDER]
