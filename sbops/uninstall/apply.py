"""`sbops uninstall`'s appliers: perform one planned Step through the probes' clients, and wait for what
Kubernetes deletes asynchronously (claims, the namespace) until it is really gone or a deadline passes.

Claims and pvc-protection: a PVC keeps the kubernetes.io/pvc-protection finalizer until no pod mounts it;
the controller-manager then removes it. sbops waits while pods (the release's, being deleted) still mount
the claim; once none does and the finalizer is still there (no controller running, or not yet), it removes
that finalizer itself under the controller's own rule. A claim still mounted at the deadline is reported
with the pods that hold it, and the run fails without touching them.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sbops import kube
from sbops.model import Change
from sbops.probes import helm, istio, k8s, mysql
from sbops.probes import kubecommon as kc
from sbops.uninstall import mongodb_data, mysql_data, rabbitmq_data, system_data
from sbops.uninstall.plan import Step

if TYPE_CHECKING:
    from sbops.context import Context

POLL = 0.5
PLURALS = {"gateway": "gateways", "virtualservice": "virtualservices"}


class StepFailed(Exception):
    """A step ran but did not reach its goal (one line for the report)."""


def bind(ctx: "Context", step: Step, wait: float) -> Change:
    """The step's Change with its `apply`; `wait` bounds how long a deletion may take to finish."""
    appliers: dict[str, Callable[[], None]] = {
        "refresher": lambda: remove_units(ctx, step.target, ".timer"),
        "exporter": lambda: remove_units(ctx, step.target, ".service"),
        "helm-uninstall": lambda: helm_uninstall(ctx, step.target[0]),
        "delete-object": lambda: delete_object(ctx, *step.target),
        "delete-pvc": lambda: delete_claim(ctx, step.target[0], step.target[1], wait),
        "delete-namespace": lambda: delete_namespace(ctx, step.target[0], wait),
        "drop-mongodb-database": lambda: mongo_client(ctx).drop_database(step.target[0]),
        "drop-mysql-database": lambda: mysql_execute(ctx, mysql_data.drop_database_sql(step.target[0])),
        "drop-mysql-user": lambda: mysql_execute(ctx, *mysql_data.drop_user_statement(*step.target)[:2]),
        "drop-mongodb-user": lambda: mongodb_data.drop_user(mongo_client(ctx), step.target[0]),
        "delete-rabbitmq-user": lambda: delete_rabbitmq_user(ctx, step.target[0]),
        "remove-credentials": lambda: remove_files(step.target),
        "purge-packages": lambda: system_data.purge(ctx, step.target),
        "delete-data-dir": lambda: system_data.delete_dir(ctx, step.target[0]),
    }
    return replace(step.change, apply=appliers[step.kind])


# -- host ------------------------------------------------------------------------------------------------
def remove_units(ctx: "Context", units: tuple[str, ...], started: str) -> None:
    """Stop the unit that is enabled (the refresher's .timer, the exporter's .service; a missing or already
    stopped one is fine), delete the unit files, reload systemd."""
    for unit in units:
        if unit.endswith(started):
            ctx.runner.run(["systemctl", "disable", "--now", Path(unit).name], timeout=60)
    remove_files(units)
    result = ctx.runner.run(["systemctl", "daemon-reload"], timeout=60)
    if not result.ok:
        raise StepFailed(f"systemctl daemon-reload: {result.one_line_error()}")


def remove_files(paths: tuple[str, ...]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


# -- Kubernetes ------------------------------------------------------------------------------------------
def helm_uninstall(ctx: "Context", release: str) -> None:
    """`helm uninstall`; a release that went in the meantime ("release: not found") is what was wanted."""
    found = shutil.which(str(ctx.settings["helm.command"]))
    if not found:
        raise StepFailed(f"helm binary {ctx.settings['helm.command']!r} not found")
    argv = helm.uninstall_argv(found, release, kc.namespace(ctx), kube.kubeconfig_file(ctx.kubeconfig_path))
    result = ctx.runner.run(argv, timeout=helm.UNINSTALL_TIMEOUT + 30)
    if not result.ok and "release: not found" not in (result.stderr + result.stdout):
        raise StepFailed(f"helm uninstall: {result.one_line_error()}")


def object_path(kind: str, namespace: str, name: str) -> str:
    if kind in PLURALS:
        return istio.custom_path(namespace, PLURALS[kind], name)
    return kc.path(namespace=namespace, plural=f"{kind}s", name=name)


def delete_object(ctx: "Context", kind: str, namespace: str, name: str) -> None:
    kc.api(ctx).delete(object_path(kind, namespace, name), ignore_missing=True)


def delete_claim(ctx: "Context", namespace: str, name: str, wait: float) -> None:
    api = kc.api(ctx)
    api.delete(k8s.claim_path(namespace, name), ignore_missing=True)
    deadline = time.monotonic() + wait
    attempts = 0
    while True:
        obj = api.get_or_none(k8s.claim_path(namespace, name))
        if obj is None:
            return
        claim = k8s.claim_facts(obj)
        users = k8s.claim_users(api.list(kc.path(namespace=namespace, plural="pods")), name)
        if not users and k8s.PVC_PROTECTION in claim["finalizers"] and attempts < 5:
            attempts += 1
            try:
                k8s.release_claim(ctx, namespace, claim)
            except Exception as exc:  # noqa: BLE001 - 409: the controller got there first; 404: gone
                if kc.api_status(exc) not in (404, 409):
                    raise
            continue
        if time.monotonic() >= deadline:
            held = f"pod(s) {', '.join(users)} still mount it" if users else \
                f"finalizer(s) {', '.join(claim['finalizers'])} remain"
            raise StepFailed(f"PVC {namespace}/{name} is still Terminating after {wait:g}s: {held}")
        time.sleep(POLL)


def delete_namespace(ctx: "Context", name: str, wait: float) -> None:
    api = kc.api(ctx)
    resource = kc.path(plural="namespaces", name=name)
    try:
        api.delete(resource, ignore_missing=True)
    except Exception as exc:  # noqa: BLE001 - 409: already being deleted, which is what we want
        if kc.api_status(exc) != 409:
            raise
    deadline = time.monotonic() + wait
    while True:
        ns = api.get_or_none(resource)
        if ns is None:
            return
        if time.monotonic() >= deadline:
            why = "; ".join(k8s.namespace_conditions(ns)) or \
                "the namespace controller has not finished (is the controller-manager of K3s running?)"
            raise StepFailed(f"namespace {name} is still Terminating after {wait:g}s: {why}")
        time.sleep(POLL)


# -- databases -------------------------------------------------------------------------------------------
def mysql_session(ctx: "Context") -> mysql.Session:
    access = mysql.any_session(ctx, prefer_admin=True)
    if access.session is None:
        raise StepFailed(f"no MySQL login works ({access.why})")
    return access.session


def mysql_execute(ctx: "Context", sql: str, args: tuple[str, ...] | None = None) -> None:
    session = mysql_session(ctx)
    try:
        session.execute(sql, args)
    except Exception as exc:  # noqa: BLE001 - the server's error number and text, in one line
        raise StepFailed(f"{session.label}: {mysql.describe_error(exc)}") from exc


def mongo_client(ctx: "Context"):  # -> pymongo.MongoClient
    presence = mongodb_data.observe_user_presence(ctx)
    if presence.access is None:
        raise StepFailed(f"no MongoDB access: {presence.how}")
    return presence.access.client


def delete_rabbitmq_user(ctx: "Context", user: str) -> None:
    backend, why = rabbitmq_data.removal_backend(ctx)
    if backend is None:
        raise StepFailed(f"no way to delete RabbitMQ users: {why}")
    change = rabbitmq_data.delete_user_change(backend, user)
    assert change.apply is not None
    change.apply()
