"""The I/O of a rotation, step by step (sbops.rotate.plan decides; this does): every step is journaled (step
names and outcomes, never a password) and every change is undone, newest first, when a later step fails.

The servers are changed through what the doctor's fixes already know: MySQL through `probes.mysql.plan_user`
run with the new password (it ALTERs both stackbill accounts as the admin), MongoDB through `updateUser` over
the admin access `probes.mongodb` finds, RabbitMQ through the management API as stackbill (an administrator),
else rabbitmqctl. Each is given the Context whose password the server holds at that moment, so the same code
sets the new password and puts the old one back.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sbops import credentials as creds_mod
from sbops.rotate import plan as P
from sbops.secret import Secret, append_masked_line, mask_text

if TYPE_CHECKING:
    from sbops.context import Context

VERIFY_WINDOW = 45.0  # seconds verification retries while kube-proxy and the gateway catch up with new pods
HELM_TIMEOUT = 300.0


class RotationError(RuntimeError):
    """A step failed; the message is masked and names the step."""


@dataclass
class Outcome:
    services: tuple[str, ...]
    steps: list[dict[str, str]] = field(default_factory=list)
    result: str = ""  # planned | rotated | rolled-back | failed | refused
    blockers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"services": list(self.services), "result": self.result, "blockers": self.blockers, "steps": self.steps}


def with_creds(ctx: "Context", creds: Any) -> "Context":
    from sbops.context import Context

    return Context(ctx.settings, creds, ctx.credentials_path, ctx.runner, ctx.kubeconfig_path)


# -- the servers -------------------------------------------------------------------------------------------
def set_mysql(current: "Context", target: "Context") -> None:
    """Both stackbill accounts get `target`'s password (plan_user: ALTER USER as the admin)."""
    from sbops.probes import mysql

    plan = mysql.plan_user(target)
    if plan.blockers:
        raise RotationError("MySQL: " + "; ".join(plan.blockers))
    for change in plan.changes:
        assert change.apply is not None
        change.apply()


def set_mongodb(current: "Context", target: "Context") -> None:
    """updateUser with `target`'s password, as whoever can manage users while `current`'s password holds."""
    from sbops.probes.mongodb.access import find_admin_access
    from sbops.probes.mongodb.session import app_login

    host, _ = current.endpoint("mongodb")
    access, why = find_admin_access(current, host, app_login(current))
    if access is None:
        raise RotationError(f"MongoDB: {why}")
    access.client.admin.command("updateUser", current.service("mongodb").username or "stackbill",
                                pwd=target.password("mongodb").reveal())


def set_rabbitmq(current: "Context", target: "Context") -> None:
    """change_password through the management API as stackbill (an administrator), else rabbitmqctl."""
    from sbops.probes.rabbitmq.access import Action, admin_via_api, admin_via_ctl
    from sbops.probes.rabbitmq.users import username

    name = username(current)
    action = Action("change_password", name)
    api, why_api = admin_via_api(current)
    if api is not None:
        state = api.observe(name, None)
        api.applier(action, target.password("rabbitmq"), state.tags)()
        return
    ctl, why_ctl = admin_via_ctl(current)
    if ctl is None:
        raise RotationError(f"RabbitMQ: no way to change the password: {why_api}; {why_ctl}")
    ctl.applier(action, target.password("rabbitmq"))()


SETTERS: dict[str, Callable[["Context", "Context"], None]] = {
    "mysql": set_mysql, "mongodb": set_mongodb, "rabbitmq": set_rabbitmq}


def set_password(ctx: "Context", name: str, current: Any, target: Any) -> None:
    """Move `name`'s server from the password of credentials `current` to that of `target`, with Contexts
    made for it and closed after (their clients logged in with passwords that are about to change)."""
    now, then = with_creds(ctx, current), with_creds(ctx, target)
    try:
        SETTERS[name](now, then)
    finally:
        now.close()
        then.close()


# -- the cluster ---------------------------------------------------------------------------------------------
def helm_binary(ctx: "Context") -> str:
    command = str(ctx.settings["helm.command"])
    found = shutil.which(command)
    if found is None:
        raise RotationError(f"helm binary {command!r} not found (setting helm.command): install Helm 3")
    return found


def update_release(ctx: "Context", record: dict[str, Any], passwords: dict[str, Secret]) -> str:
    """helm upgrade --reuse-values of the deployed chart (rebuilt from the release record in a private temporary
    directory) with only the passwords changed; returns the argv as shown."""
    from sbops import kube
    from sbops.probes import kubecommon as kc
    from sbops.runner import display

    files = P.chart_files(record.get("chart") or {})
    with tempfile.TemporaryDirectory(prefix="sbops-chart-") as tmp:
        root = Path(tmp) / str((record["chart"]["metadata"])["name"])
        for name, data in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        argv = P.helm_argv(helm_binary(ctx), str(ctx.settings["release"]), str(root), kc.namespace(ctx),
                           kube.kubeconfig_file(ctx.kubeconfig_path))
        result = ctx.runner.run(argv, input=P.values_document(passwords), timeout=HELM_TIMEOUT)
    if not result.ok:
        raise RotationError("helm upgrade failed: " + mask_text(result.one_line_error(), [*passwords.values(),
                                                                                          *ctx.secrets()]))
    return display(argv)


def restart(ctx: "Context", workloads: Sequence[str], timeout: float) -> list[str]:
    """Rollout-restart the Deployments and wait until every one has only new, Ready pods; returns the ones
    still rolling at the timeout, with what is left (the verification then judges what that means)."""
    from sbops.probes import kubecommon as kc
    from sbops.probes.pods import restart_patch, wait_rollout

    ns = kc.namespace(ctx)
    for name in workloads:
        kc.api(ctx).patch(kc.path(group="apps", namespace=ns, plural="deployments", name=name),
                          restart_patch(datetime.now(timezone.utc)))
    end = time.monotonic() + timeout
    late = []
    for name in workloads:
        done, left = wait_rollout(ctx, ns, name, max(1.0, end - time.monotonic()))
        if not done:
            late.append(f"{name} ({left})")
    return late


def verify(ctx: "Context", services: Sequence[str], window: float) -> list[str]:
    """The verification checks, retried for `window` seconds until they pass; what still fails ([] = passed)."""
    from sbops.engine import run_checks
    from sbops.registry import load_all

    registry = load_all()
    wanted = P.verify_checks(services)
    end = time.monotonic() + window
    while True:
        fresh = with_creds(ctx, ctx.credentials)
        try:
            outcomes = run_checks(fresh, [registry.checks[c] for c in wanted])
        finally:
            fresh.close()
        failing = P.judge_verification({o.check.id: o.result.status.value for o in outcomes}, wanted)
        if not failing or time.monotonic() >= end:
            return [f + " — " + evidence(outcomes, f) for f in failing]
        time.sleep(2.0)


def evidence(outcomes: Sequence[Any], failing: str) -> str:
    """A failed check's summary and the start of what the server answered (the portal's own error text)."""
    for o in outcomes:
        if failing.startswith(o.check.id + ":"):
            body = str((o.result.details or {}).get("body_start") or "").strip().replace("\n", " ")
            return o.result.summary + (f" (it said: {body[:160]})" if body else "")
    return ""


# -- the whole rotation --------------------------------------------------------------------------------------
class Rotation:
    def __init__(self, ctx: "Context", services: Sequence[str], *, wait_timeout: float,
                 make: Callable[[], Secret] | None = None, verify_window: float = VERIFY_WINDOW) -> None:
        from sbops.install.creds import new_password

        self.ctx = ctx
        self.services = tuple(services)
        self.wait_timeout = wait_timeout
        self.verify_window = verify_window
        self.make = make or new_password
        self.outcome = Outcome(self.services)
        self.new: dict[str, Secret] = {}
        self.old: dict[str, Secret] = {}
        self.touched: list[str] = []  # services whose server may hold the new password

    # journal ------------------------------------------------------------------------------------------
    def secrets(self) -> list[Secret]:
        return [*self.ctx.secrets(), *self.new.values(), *self.old.values()]

    def record(self, step: str, outcome: str, detail: str = "") -> None:
        entry = {"step": step, "outcome": outcome, "detail": mask_text(detail, self.secrets())}
        self.outcome.steps.append(entry)
        append_masked_line(self.ctx.settings["journal"], {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "rotate-credentials",
            "services": list(self.services), **entry}, self.secrets(), "the journal ")

    # preparation ---------------------------------------------------------------------------------------
    def prepare(self) -> tuple[dict[str, Any] | None, list[str], list[tuple[str, str]]]:
        """The release record, the Deployments to restart and the described plan; blockers go to outcome."""
        from sbops import kube
        from sbops.errors import NeedsCredentials
        from sbops.probes import helm as helm_probe
        from sbops.probes import kubecommon as kc
        from sbops.runner import display

        blockers = self.outcome.blockers
        try:
            creds = self.ctx.require_credentials()
            for name in self.services:
                self.old[name] = self.ctx.password(name)
        except NeedsCredentials as exc:
            blockers.append(str(exc))
            creds = None
        if self.ctx.credentials_path is None:
            blockers.append("no credentials file to record the new password in (use --credentials FILE)")
        ns, release = kc.namespace(self.ctx), str(self.ctx.settings["release"])
        record = None
        workloads: list[str] = []
        try:
            record = helm_probe.latest_record(self.ctx, ns, release)
        except Exception as exc:  # noqa: BLE001 - any API failure is a blocker, named
            blockers.append(kc.api_failure_summary(f"read Helm release secrets in {ns}", exc))
        if record is not None:
            status = (record.get("info") or {}).get("status")
            if status != "deployed":
                blockers.append(f"release {release} revision {record.get('version')} is {status}, not deployed: "
                                "repair it first (sbops doctor --layer helm)")
            config = record.get("config") or {}
            for name in self.services:
                held = P.release_password(config, name)
                if creds is not None and held is not None and held != self.old[name].reveal():
                    blockers.append(f"release {release} holds another {name.upper()} password than "
                                    f"{self.ctx.credentials_path}: make them agree first (sbops doctor)")
            try:
                workloads = P.workloads_to_restart(P.manifest_objects(record.get("manifest") or ""))
            except ValueError as exc:
                blockers.append(str(exc))
        elif not blockers:
            blockers.append(f"no Helm release {release} in namespace {ns}")
        try:
            helm = helm_binary(self.ctx)
        except RotationError as exc:
            blockers.append(str(exc))
            helm = str(self.ctx.settings["helm.command"])
        argv = display(P.helm_argv(helm, release, "<the deployed chart>", ns,
                                   kube.kubeconfig_file(self.ctx.kubeconfig_path)))
        described = P.describe(self.services, release=release, namespace=ns, workloads=workloads,
                               credentials_path=str(self.ctx.credentials_path), helm_argv=argv)
        return record, workloads, described

    def current_works(self) -> list[str]:
        """The services whose current password does not log in now (a rotation would start from a broken state)."""
        from sbops.engine import run_checks
        from sbops.registry import load_all

        registry = load_all()
        fresh = with_creds(self.ctx, self.ctx.credentials)
        try:
            outcomes = run_checks(fresh, [registry.checks[P.AUTH_CHECK[s]] for s in self.services])
        finally:
            fresh.close()
        return [f"{o.check.id}: {o.result.summary}" for o in outcomes if not o.result.status.passed]

    # running -------------------------------------------------------------------------------------------
    def run(self, dry_run: bool = False) -> Outcome:
        record, workloads, described = self.prepare()
        if dry_run or self.outcome.blockers:
            for step, text in described:
                self.outcome.steps.append({"step": step, "outcome": "planned", "detail": text})
            self.outcome.result = "refused" if self.outcome.blockers else "planned"
            return self.outcome
        broken = self.current_works()
        if broken:
            self.outcome.blockers.append("the current password does not work, so nothing is rotated: "
                                         + "; ".join(broken))
            self.outcome.result = "refused"
            return self.outcome
        assert record is not None
        creds = self.ctx.require_credentials()
        self.new = {s: self.make() for s in self.services}
        new_creds = P.with_passwords(creds, self.new)
        new_ctx = with_creds(self.ctx, new_creds)
        self.record("generate", "done", f"new password(s) for {', '.join(self.services)}")
        done: list[str] = []
        try:
            done.append("set-on-server")
            for name in self.services:
                if name == "mysql":  # two accounts, two statements: a failure between them leaves one changed
                    self.touched.append(name)
                self._step("set-on-server", lambda n=name: set_password(self.ctx, n, creds, new_creds),
                           f"{name}: set on the server")
                if name not in self.touched:
                    self.touched.append(name)
            done.append("update-release")  # a failed helm upgrade may still have changed the release: undo it too
            self._step("update-release", lambda: update_release(self.ctx, record, self.new),
                       "helm upgrade --reuse-values with the new password(s) on standard input")
            late = self._step("restart-workloads", lambda: restart(self.ctx, workloads, self.wait_timeout), "",
                              record=False)
            done.append("restart-workloads")
            if late:
                self.record("restart-workloads", "not Ready", f"after {self.wait_timeout:g}s: " + "; ".join(late))
            else:
                self.record("restart-workloads", "done", "restarted and Ready: " + ", ".join(workloads))
            # pods that did not become Ready with the new password fail the verification whatever the checks say:
            # the old pods still serving (Kubernetes keeps them until the new ones are Ready) hold the old one
            failing = [f"restarted pods not Ready: {item}" for item in late]
            failing += verify(new_ctx, self.services, 0.0 if late else self.verify_window)
            if failing:
                self.record("verify", "failed", "; ".join(failing))
                raise RotationError("verification failed: " + "; ".join(failing))
            self.record("verify", "done", ", ".join(P.verify_checks(self.services)) + " pass")
            self._step("write-credentials", lambda: creds_mod.write_atomic(
                self.ctx.credentials_path, creds_mod.render(new_creds), mode=0o600),  # type: ignore[arg-type]
                f"{self.ctx.credentials_path} written (0600), previous kept as .bak")
            self.outcome.result = "rotated"
        except Exception as exc:  # noqa: BLE001 - every failure is undone, then reported
            self.outcome.blockers.append(mask_text(str(exc), self.secrets()))
            self.undo(done, creds, new_ctx, record, workloads)
        finally:
            new_ctx.close()
        return self.outcome

    def _step(self, step: str, action: Callable[[], Any], detail: str, record: bool = True) -> Any:
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - recorded, masked, re-raised as one kind
            self.record(step, "failed", f"{detail}: {type(exc).__name__}: {exc}".lstrip(": "))
            raise RotationError(f"{step}: {mask_text(str(exc), self.secrets())}") from None
        if record:
            self.record(step, "done", detail)
        return result

    def undo(self, done: list[str], creds: Any, new_ctx: "Context", record: dict[str, Any],
             workloads: list[str]) -> None:
        """Put the old passwords back where the new ones went, then prove the old state works again."""
        ok = True
        for step in P.undo_steps(done):
            try:
                if step == "set-on-server":
                    for name in self.touched:
                        set_password(self.ctx, name, P.with_passwords(creds, self.new), creds)
                elif step == "update-release":
                    update_release(self.ctx, record, self.old)
                else:
                    late = restart(self.ctx, workloads, self.wait_timeout)
                    if late:
                        raise RotationError(f"not Ready after {self.wait_timeout:g}s: " + "; ".join(late))
                self.record(f"undo {step}", "done", "the old password is back" if step != "restart-workloads"
                            else "restarted with the old password and Ready: " + ", ".join(workloads))
            except Exception as exc:  # noqa: BLE001 - go on undoing the rest
                ok = False
                self.record(f"undo {step}", "failed", f"{type(exc).__name__}: {exc}")
        if ok:
            failing = verify(self.ctx, self.services, self.verify_window)
            if failing:
                ok = False
                self.record("verify the old password", "failed", "; ".join(failing))
            else:
                self.record("verify the old password", "done", ", ".join(P.verify_checks(self.services)) + " pass")
        self.outcome.result = "rolled-back" if ok else "failed"
