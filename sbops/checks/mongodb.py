"""MongoDB checks: reachable, login, authorization enforced, bind address, version, the StackBill user.

Thin declarations over sbops.probes.mongodb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Reason, Result, Severity, skip
from sbops.probes import mongodb as probe
from sbops.registry import check

if TYPE_CHECKING:
    from sbops.context import Context


@check("mongodb.reachable", layer="mongodb", title="MongoDB answers on its host and port",
       severity=Severity.CRITICAL,
       no_fix="start mongod (systemctl start mongod) or open the firewall; see the runbook")
def reachable(ctx: "Context") -> Result:
    from pymongo.errors import PyMongoError

    host, port = ctx.endpoint("mongodb")
    tcp = probe.tcp_probe(host, port, ctx.net_timeout)
    hello, error = None, ""
    if tcp[0] is Reason.NONE:
        try:
            hello = probe.observe_hello(ctx)
        except PyMongoError as exc:
            error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return probe.judge_reachable(f"{host}:{port}", tcp, hello, error)


@check("mongodb.auth", layer="mongodb", title="The StackBill user logs in to MongoDB",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-user")
def auth(ctx: "Context") -> Result:
    return probe.guarded(lambda: probe.judge_auth(probe.address(ctx), probe.app_login(ctx)), ctx)


@check("mongodb.user", layer="mongodb", title="The StackBill user has roles root and readWriteAnyDatabase",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-user")
def user(ctx: "Context") -> Result:
    return probe.guarded(lambda: probe.check_user(ctx), ctx)


@check("mongodb.authorization", layer="mongodb", title="MongoDB refuses unauthenticated clients",
       severity=Severity.CRITICAL, requires=("mongodb.reachable",), fix="mongodb-config")
def authorization(ctx: "Context") -> Result:
    def run() -> Result:
        allowed, code, error = probe.observe_anonymous_listdatabases(ctx)
        return probe.judge_authorization(probe.address(ctx), allowed, code, error)

    return probe.guarded(run, ctx)


@check("mongodb.bind", layer="mongodb", title="MongoDB listens on an address pods can reach",
       severity=Severity.CRITICAL, fix="mongodb-config")
def bind(ctx: "Context") -> Result:
    return probe.check_bind(ctx)


@check("mongodb.version", layer="mongodb", title="MongoDB is the 7.x StackBill is installed with",
       severity=Severity.WARNING, requires=("mongodb.reachable",),
       no_fix="changing MongoDB's version is an upgrade (backup, packages, featureCompatibilityVersion), not a repair")
def version(ctx: "Context") -> Result:
    def run() -> Result:
        try:
            build = probe.observe_build_info(ctx)
        except RuntimeError as exc:
            return skip(Reason.NO_ACCESS, str(exc))
        return probe.judge_version(build)

    return probe.guarded(run, ctx)
