"""MongoDB checks: reachable, login, authorization enforced, bind address, version, the StackBill user.

Thin declarations over sbops.probes.mongodb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Result, Severity
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context

LAYER = "mongodb"


@check("mongodb.reachable", layer=LAYER, title="MongoDB answers on its host and port",
       severity=Severity.CRITICAL,
       no_fix="start mongod (systemctl start mongod) or open the firewall; see the runbook")
def reachable(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_reachable(ctx)


@check("mongodb.auth", layer=LAYER, title="The StackBill user logs in to MongoDB",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-user")
def auth(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_auth(ctx)


@check("mongodb.user", layer=LAYER, title="The StackBill user has roles root and readWriteAnyDatabase",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-user")
def user(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_user(ctx)


@check("mongodb.authorization", layer=LAYER, title="MongoDB refuses unauthenticated clients",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-config")
def authorization(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_authorization(ctx)


@check("mongodb.bind", layer=LAYER, title="MongoDB listens on an address pods can reach",
       severity=Severity.CRITICAL, fix="mongodb-config")
def bind(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_bind(ctx)


@check("mongodb.version", layer=LAYER, title="MongoDB is the 7.x StackBill is installed with",
       severity=Severity.WARNING, requires=("mongodb.reachable",),
       no_fix="changing MongoDB's version is an upgrade (backup, packages, featureCompatibilityVersion), not a repair")
def version(ctx: "Context") -> Result:
    from sbops.probes import mongodb

    return mongodb.probe_version(ctx)
