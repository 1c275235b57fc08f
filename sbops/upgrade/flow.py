"""The I/O of `sbops upgrade`, step by step, each journaled (names and outcomes, never a value):
pre-flight doctor -> backup -> helm upgrade --reuse-values -> wait for the rollouts -> doctor again ->
on failure helm rollback to the revision before (with --auto-rollback, or when the user says yes)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sbops.secret import append_masked_line, mask_text
from sbops.upgrade import backup as backup_mod
from sbops.upgrade import plan as P

if TYPE_CHECKING:
    from sbops.context import Context

HELM_TIMEOUT = 900.0
DOCTOR_WINDOW = 45.0  # seconds the post-upgrade doctor is retried while new pods join their Services


class UpgradeError(RuntimeError):
    pass


@dataclass
class Outcome:
    release: str
    chart: str
    result: str = ""  # planned | upgraded | rolled-back | failed | refused
    blockers: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"release": self.release, "chart": self.chart, "result": self.result, "blockers": self.blockers,
                "revisions": self.revisions, "plan": self.plan, "steps": self.steps}


def doctor(ctx: "Context") -> dict[str, str]:
    """{check id: status} of the upgrade's layers (plan.LAYERS), with a fresh Context (nothing cached)."""
    from sbops.context import Context
    from sbops.engine import run_checks
    from sbops.registry import load_all

    registry = load_all()
    fresh = Context(ctx.settings, ctx.credentials, ctx.credentials_path, ctx.runner, ctx.kubeconfig_path)
    try:
        outcomes = run_checks(fresh, registry.select(layers=list(P.LAYERS)))
    finally:
        fresh.close()
    return {o.check.id: o.result.status.value for o in outcomes}


class Upgrade:
    def __init__(self, ctx: "Context", chart: str, version: str = "", *, force: bool = False,
                 auto_rollback: bool = False, backup_to: Path | None = None, no_backup: bool = False,
                 wait_timeout: float = 180.0, confirm: Callable[[str], bool] | None = None,
                 doctor_window: float = DOCTOR_WINDOW) -> None:
        from sbops.probes import kubecommon as kc

        self.ctx = ctx
        self.chart, self.version = chart, version
        self.force, self.auto_rollback = force, auto_rollback
        self.backup_to, self.no_backup = backup_to, no_backup
        self.wait_timeout, self.doctor_window = wait_timeout, doctor_window
        self.confirm = confirm
        self.ns, self.release = kc.namespace(ctx), str(ctx.settings["release"])
        self.outcome = Outcome(self.release, f"{chart}{' ' + version if version else ''}")

    # -- journal ----------------------------------------------------------------------------------------
    def record(self, step: str, outcome: str, detail: str = "", **extra: Any) -> None:
        entry = {"step": step, "outcome": outcome, "detail": mask_text(detail, self.ctx.secrets()), **extra}
        self.outcome.steps.append(entry)
        append_masked_line(self.ctx.settings["journal"], {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "upgrade",
            "release": self.release, **entry}, self.ctx.secrets(), "the journal ")

    # -- helm -------------------------------------------------------------------------------------------
    def helm(self) -> str:
        command = str(self.ctx.settings["helm.command"])
        found = shutil.which(command)
        if found is None:
            raise UpgradeError(f"helm binary {command!r} not found (setting helm.command): install Helm 3")
        return found

    def kubeconfig(self) -> str:
        from sbops import kube

        return kube.kubeconfig_file(self.ctx.kubeconfig_path)

    def run_helm(self, argv: list[str], what: str) -> str:
        result = self.ctx.runner.run(argv, timeout=HELM_TIMEOUT)
        if not result.ok:
            raise UpgradeError(f"{what} failed: {mask_text(result.one_line_error(), self.ctx.secrets())}")
        return result.stdout

    def deployed(self) -> dict[str, Any]:
        from sbops.probes import helm as helm_probe

        record = helm_probe.latest_record(self.ctx, self.ns, self.release)
        if record is None:
            raise UpgradeError(f"no Helm release {self.release} in namespace {self.ns}: install first (sbops install)")
        status = (record.get("info") or {}).get("status")
        if status != "deployed":
            raise UpgradeError(f"release {self.release} revision {record.get('version')} is {status}, not deployed: "
                               "repair it first (sbops doctor --layer helm; sbops fix helm-rollback)")
        return record

    def check_chart(self) -> None:
        from sbops.probes.helm import chart_identity

        if Path(self.chart).exists():
            try:
                _, found = chart_identity(self.chart)
            except ValueError as exc:
                raise UpgradeError(str(exc)) from None
            why = P.local_version_mismatch(found, self.version)
            if why:
                raise UpgradeError(f"--chart-version {self.version}: {why} ({self.chart})")

    def render(self) -> dict[str, Any]:
        """The release as the upgrade would make it (helm upgrade --dry-run -o json): manifest, chart, values."""
        argv = P.upgrade_argv(self.helm(), self.release, self.chart, self.ns, self.kubeconfig(), self.version,
                              dry_run=True)
        out = self.run_helm(argv, "helm upgrade --dry-run")
        try:
            return json.loads(out[out.index("{"):])
        except ValueError:
            raise UpgradeError("helm upgrade --dry-run -o json printed no release document") from None

    # -- waiting ----------------------------------------------------------------------------------------
    def wait(self, names: list[str]) -> list[str]:
        """Wait until every Deployment's rollout is done; the ones still rolling at the timeout, with why."""
        from sbops.probes.pods import wait_rollout

        end = time.monotonic() + self.wait_timeout
        late = []
        for name in names:
            done, left = wait_rollout(self.ctx, self.ns, name, max(1.0, end - time.monotonic()))
            if not done:
                late.append(f"{name}: {left}")
        return late

    def doctor_until_clean(self) -> list[str]:
        end = time.monotonic() + self.doctor_window
        while True:
            failing = P.failed(doctor(self.ctx))
            if not failing or time.monotonic() >= end:
                return failing
            time.sleep(3.0)

    # -- the run ----------------------------------------------------------------------------------------
    def plan(self) -> Outcome:
        try:
            self.check_chart()
            deployed = self.deployed()
            upgraded = self.render()
        except UpgradeError as exc:
            self.outcome.blockers.append(str(exc))
            self.outcome.result = "refused"
            return self.outcome
        self.outcome.plan = P.changes(deployed, upgraded, self.ctx.secrets())
        self.outcome.revisions = {"deployed": int(deployed.get("version") or 0)}
        self.outcome.result = "planned"
        return self.outcome

    def run(self) -> Outcome:
        try:
            self.check_chart()
            if not self.no_backup:
                why = backup_mod.available()
                if why:
                    raise UpgradeError(why)
            before = self.deployed()
        except UpgradeError as exc:
            self.outcome.blockers.append(str(exc))
            self.outcome.result = "refused"
            return self.outcome
        revision = int(before.get("version") or 0)
        self.outcome.revisions = {"before": revision}

        failing = P.failed(doctor(self.ctx))
        if failing and not self.force:
            self.record("pre-flight doctor", "failed", ", ".join(failing))
            self.outcome.blockers.append("the doctor finds failures before the upgrade (--force to upgrade anyway): "
                                         + ", ".join(failing))
            self.outcome.result = "refused"
            return self.outcome
        self.record("pre-flight doctor", "done" if not failing else "forced",
                    "no failure" if not failing else "failing, upgrading anyway (--force): " + ", ".join(failing))
        if self.no_backup:
            self.record("backup", "skipped", "--no-backup")
        else:
            target = self.backup_to or Path(self.ctx.settings["journal"]).parent / (
                f"sbops-backup-before-upgrade-{datetime.now():%Y%m%d-%H%M%S}.tar")
            try:
                written, size = backup_mod.take(self.ctx, target)
            except Exception as exc:  # noqa: BLE001 - no backup, no upgrade
                self.record("backup", "failed", f"{type(exc).__name__}: {exc}")
                self.outcome.blockers.append(f"the backup failed, so nothing was upgraded: {exc}")
                self.outcome.result = "refused"
                return self.outcome
            self.record("backup", "done", f"{written} ({size} bytes, 0600)")

        argv = P.upgrade_argv(self.helm(), self.release, self.chart, self.ns, self.kubeconfig(), self.version)
        try:
            self.run_helm(argv, "helm upgrade")
        except UpgradeError as exc:
            self.record("helm upgrade", "failed", str(exc))
            self.outcome.blockers.append(str(exc))
            return self.after_failure(revision, before)
        after = self.deployed_any()
        self.outcome.revisions["after"] = int(after.get("version") or 0)
        self.record("helm upgrade", "done", f"{P.chart_name(before)} -> {P.chart_name(after)}, revision "
                                            f"{revision} -> {after.get('version')}")
        late = self.wait(P.deployments(after.get("manifest") or ""))
        if late:
            self.record("wait for Ready", "failed", f"after {self.wait_timeout:g}s: " + "; ".join(late))
            self.outcome.blockers.append("the new pods did not become Ready: " + "; ".join(late))
            return self.after_failure(revision, before)
        self.record("wait for Ready", "done", "every rollout finished")
        failing = self.doctor_until_clean()
        if failing:
            self.record("doctor after the upgrade", "failed", ", ".join(failing))
            self.outcome.blockers.append("the doctor finds failures after the upgrade: " + ", ".join(failing))
            return self.after_failure(revision, before)
        self.record("doctor after the upgrade", "done", "no failure")
        self.outcome.result = "upgraded"
        return self.outcome

    def deployed_any(self) -> dict[str, Any]:
        from sbops.probes import helm as helm_probe

        return helm_probe.latest_record(self.ctx, self.ns, self.release) or {}

    def after_failure(self, revision: int, before: dict[str, Any]) -> Outcome:
        argv = P.rollback_argv(self.helm(), self.release, revision, self.ns, self.kubeconfig())
        from sbops.runner import display

        shown = display(argv)
        wanted = self.auto_rollback or (self.confirm is not None and self.confirm(
            f"Roll release {self.release} back to revision {revision}?"))
        if not wanted:
            self.record("rollback", "offered", f"not done; to return to revision {revision}: $ {shown}")
            self.outcome.result = "failed"
            return self.outcome
        try:
            self.run_helm(argv, "helm rollback")
        except UpgradeError as exc:
            self.record("rollback", "failed", str(exc))
            self.outcome.result = "failed"
            return self.outcome
        now = self.deployed_any()
        self.outcome.revisions["rollback"] = int(now.get("version") or 0)
        self.record("rollback", "done", f"$ {shown} (new revision {now.get('version')}, chart {P.chart_name(now)})")
        late = self.wait(P.deployments(before.get("manifest") or ""))
        failing = [] if late else self.doctor_until_clean()
        if late or failing:
            self.record("doctor after the rollback", "failed", "; ".join(late + failing))
            self.outcome.result = "failed"
        else:
            self.record("doctor after the rollback", "done", "no failure: the previous revision works")
            self.outcome.result = "rolled-back"
        return self.outcome
