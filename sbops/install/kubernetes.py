"""The Kubernetes steps: namespace, ECR pull secret, TLS secret, Helm release, Istio routing, and the
wait for pods; each one the plan of the matching `sbops fix`, verified by the doctor's checks.

The chart's values (the database passwords among them) go to `helm upgrade --install` on standard input,
never as --set. Pods are waited for by their Ready condition, and a timeout fails the step naming each
pod that is not Ready and why, as the pods.ready check explains it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.diff import file_diff
from sbops.install.run import wait_for
from sbops.install.steps import KUBERNETES, Resource, Step, Verify
from sbops.model import Change, Plan, Reason, Status

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.credentials import Credentials
    from sbops.install.run import Run

API_FAILURES = frozenset({Reason.AUTH_FAILED, Reason.ACCESS_DENIED, Reason.REFUSED, Reason.TIMEOUT, Reason.UNREACHABLE})


def plan_namespace(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import k8s

    return k8s.plan_namespace(ctx, helm_release=str(run.settings["release"]))


# -- ECR -------------------------------------------------------------------------------------------
def plan_pull_secret(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import ecr

    return ecr.plan_ensure(ctx, source=lambda: run.ecr_token(ctx))


def plan_refresher(run: "Run", ctx: "Context") -> Plan:
    """The offer of `sbops ecr install-refresher`: a token lasts 12 hours, so a host that gets it from AWS
    credentials renews it with a systemd timer; a token typed in by hand cannot be renewed unattended."""
    from sbops import shipped

    unit_dir = Path(str(run.settings["install.unit_dir"]))
    timer = unit_dir / f"{shipped.REFRESHER_UNIT}.timer"
    if run.runner.read_file(timer) is not None:
        return Plan(nothing_to_do=f"the ECR refresher {timer} is installed")
    manual = "run `sbops ecr install-refresher` once the host has AWS credentials, or renew the token by hand " \
             "(`sbops fix ecr-refresh`) every 12 hours"
    if run.token_supplied():
        return Plan(nothing_to_do=f"the ECR token was supplied by hand, so nothing can renew it unattended: {manual}")
    if not (run.options.ecr_refresher and run.settings["install.ecr_refresher"]):
        return Plan(nothing_to_do=f"the ECR refresher is not wanted (--no-ecr-refresher / install.ecr_refresher): {manual}")
    config = str(Path(run.options.config).resolve()) if run.options.config else ""
    units = shipped.render_refresher_units(shipped.default_sbops(), config)

    def apply() -> None:
        problems = shipped.install_refresher_units(run.runner, unit_dir, units)
        if problems:
            raise RuntimeError("; ".join(problems))

    return Plan(changes=(Change(f"install {timer.name}: `sbops fix ecr-refresh --yes` every 6 hours, as the token "
                                "lasts 12 (sbops ecr install-refresher)",
                                ("systemctl daemon-reload", f"systemctl enable --now {shipped.REFRESHER_UNIT}.timer"), apply,
                                tuple(file_diff(str(unit_dir / n), run.runner.read_file(unit_dir / n), text)
                                      for n, text in units.items())),))


# -- TLS ------------------------------------------------------------------------------------------
def plan_tls(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import tls

    if run.options.letsencrypt:
        return Plan(nothing_to_do="the certificate comes from Let's Encrypt (--letsencrypt): the letsencrypt step installs it")
    return tls.plan_secret(ctx, cert_file=run.options.ssl_cert or None, key_file=run.options.ssl_key or None)


# -- Let's Encrypt (sbops.probes.acme) ------------------------------------------------------------
NOT_ASKED = "--letsencrypt not given"


def plan_certbot(run: "Run", ctx: "Context") -> Plan:
    """Debian's certbot package, when --letsencrypt is asked and its program is missing."""
    import shutil

    from sbops.probes.system import apt_install_argv
    from sbops.runner import display

    if not run.options.letsencrypt:
        return Plan(nothing_to_do=NOT_ASKED)
    program = str(run.settings["letsencrypt.certbot"])
    found = shutil.which(program)
    if found:
        return Plan(nothing_to_do=f"certbot is installed ({found})")
    argv = apt_install_argv(["certbot"])
    update = run.apt_update()

    def apply() -> None:
        update()
        result = run.runner.run(argv, timeout=900)
        if not result.ok:
            raise RuntimeError(f"apt-get install certbot failed: {result.one_line_error()}")

    return Plan(changes=(Change("install Debian's certbot package (it ships certbot.timer)", (display(argv),), apply),))


def plan_acme_certificate(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import acme

    if not run.options.letsencrypt:
        return Plan(nothing_to_do=NOT_ASKED)
    return acme.plan_certificate(ctx, run.options.email)


def plan_acme_secret(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import acme

    return acme.plan_deploy(ctx) if run.options.letsencrypt else Plan(nothing_to_do=NOT_ASKED)


def plan_acme_hook(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import acme

    return acme.plan_hook(ctx) if run.options.letsencrypt else Plan(nothing_to_do=NOT_ASKED)


def plan_acme_timer(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import acme

    return acme.plan_timer(ctx) if run.options.letsencrypt else Plan(nothing_to_do=NOT_ASKED)


# -- the Helm release ------------------------------------------------------------------------------
def chart_values(creds: "Credentials", domain: str) -> dict[str, Any]:
    """The values the original passed with --set (global.domain, nfs, mysql, mongo, rabbitmq), plus a server's
    port when the credentials file names one that is not the default: pods reach a server on another port only
    if the chart is told (a chart that does not know the key ignores it). Default ports add nothing, so the
    values of a release the original installed stay exactly as they were (no upgrade for nothing)."""
    ip = creds.server_ip

    def service(section: Any, default_port: int) -> dict[str, Any]:
        values: dict[str, Any] = {"ip": section.host or ip, "username": section.username,
                                  "password": section.password.reveal() if section.password else ""}
        if section.port and section.port != default_port:
            values["port"] = section.port
        return values

    return {"global": {"domain": domain, "nfs": {"server": creds.nfs_server or ip, "path": creds.nfs_path},
                       "mysql": service(creds.mysql, 3306), "mongo": service(creds.mongodb, 27017),
                       "rabbitmq": service(creds.rabbitmq, 5672)}}


def chart_source(run: "Run") -> tuple[str, str]:
    """(chart, version to ask Helm for): setting install.chart, or with --artifacts-dir the verified
    <name>-<version>.tgz listed in its manifest when the setting is a remote reference."""
    chart = str(run.settings["install.chart"])
    version = str(run.settings["install.chart_version"])
    if Path(chart).exists():
        return chart, ""
    if not run.artifacts.offline:
        return chart, version
    name = chart.rstrip("/").rsplit("/", 1)[-1].split(":")[0]
    found = run.artifacts.find(rf"{re.escape(name)}-{re.escape(version) if version else '.+'}\.tgz")
    if len(found) != 1:
        raise RuntimeError(f"--artifacts-dir: {'no' if not found else 'more than one'} {name}-"
                           f"{version or '<version>'}.tgz in the manifest ({', '.join(found) or 'none'}); "
                           "or set install.chart to the chart file")
    problem = run.artifacts.check(found[0])
    if problem:
        raise RuntimeError(problem)
    assert run.artifacts.directory is not None
    return str(run.artifacts.directory / found[0]), ""


def plan_release(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import helm, kubecommon

    try:
        chart, version = chart_source(run)
    except RuntimeError as exc:
        return Plan(blockers=(str(exc),))
    return helm.plan_release(ctx, run.helm(), chart, version, chart_values(run.credentials, kubecommon.domain(ctx)))


# -- Istio routing ---------------------------------------------------------------------------------
def plan_gateway(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import istio

    return istio.plan_gateway(ctx)


def plan_nodeports(run: "Run", ctx: "Context") -> Plan:
    """On a gateway Service that is not NodePort yet (Istio's demo profile makes it LoadBalancer on random
    ports) the installer sets the configured nodePorts, naming each move; a NodePort Service that an
    installer (sbops, or either bash script: 31443/31882 or 31080/31443) already set up keeps its ports."""
    from sbops.probes import istio

    return istio.plan_nodeports(ctx, allow_restart=True, installer=True)


# -- waiting for pods ------------------------------------------------------------------------------
def ready_counts(result: Any) -> tuple[int, int]:
    total = int(result.details.get("pods", 0) or 0)
    return total - len(result.details.get("not_ready") or []), total


def not_ready_lines(result: Any, limit: int = 10) -> str:
    """Each not-Ready pod and why, as pods.ready diagnoses it."""
    pods = result.details.get("not_ready") or []
    text = "; ".join(f"{p['name']}: {p['reason']} ({p.get('detail', '')})" for p in pods[:limit])
    more = f"; and {len(pods) - limit} more" if len(pods) > limit else ""
    return (text + more) or result.summary


def pods_ready(ctx: "Context") -> tuple[bool, str]:
    from sbops.probes import pods

    result = pods.probe_ready(ctx)
    if result.status is Status.OK:
        return True, result.summary
    ready, total = ready_counts(result)
    return False, f"{ready}/{total} pods Ready" if total else result.summary


def plan_wait(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import pods

    result = pods.probe_ready(ctx)
    if result.status is Status.OK:
        return Plan(nothing_to_do=result.summary)
    if result.reason in API_FAILURES:
        return Plan(blockers=(result.summary,))
    timeout = float(run.settings["install.pod_timeout"])

    def apply() -> None:
        try:
            wait_for(run, "pods", timeout, pods_ready)
        except RuntimeError:
            fresh = run.context()
            try:
                last = pods.probe_ready(fresh)
            finally:
                fresh.close()
            if last.status is Status.OK:
                return
            raise RuntimeError(f"not every pod is Ready after {timeout:g}s: {not_ready_lines(last)}") from None

    return Plan(changes=(Change(f"wait up to {timeout:g}s for every pod in {ctx.settings['namespace']} to be Ready "
                                f"(now: {result.summary})", (), apply),))


STEPS = {
    "namespace": Step("namespace", "the namespace, with Istio sidecar injection and Helm's ownership", KUBERNETES, (
        Resource("namespace", plan_namespace, needs=("k3s",)),
    ), verify=(Verify("k8s.namespace"),)),
    "ecr-secret": Step("ecr-secret", "the ECR image pull secret (and its refresher)", KUBERNETES, (
        Resource("ecr.secret", plan_pull_secret, needs=("namespace",)),
        Resource("ecr.refresher", plan_refresher),
    ), verify=(Verify("ecr.secret"), Verify("ecr.expiry"))),
    "letsencrypt": Step("letsencrypt", "Let's Encrypt: certbot's certificate in the TLS secret, its deploy hook and "
                                       "renewal timer (--letsencrypt)", KUBERNETES, (
        Resource("letsencrypt.certbot", plan_certbot),
        Resource("letsencrypt.certificate", plan_acme_certificate, needs=("letsencrypt.certbot",)),
        Resource("letsencrypt.secret", plan_acme_secret, needs=("letsencrypt.certificate", "istio")),
        Resource("letsencrypt.hook", plan_acme_hook),
        Resource("letsencrypt.timer", plan_acme_timer, needs=("letsencrypt.certbot",)),
    ), verify=(Verify("tls.renewal"),)),
    "tls-secret": Step("tls-secret", "the TLS secret of the ingress gateway", KUBERNETES, (
        Resource("tls.secret", plan_tls, needs=("istio",)),
    ), verify=(Verify("tls.secret"), Verify("tls.certificate"))),
    "helm-release": Step("helm-release", "the StackBill Helm release", KUBERNETES, (
        Resource("helm.release", plan_release, needs=("namespace", "helm")),
    ), verify=(Verify("helm.release"),)),
    "istio-gateway": Step("istio-gateway", "the Gateway, the VirtualService and the ingress NodePorts", KUBERNETES, (
        Resource("istio.gateway", plan_gateway, needs=("istio", "namespace")),
        Resource("istio.nodeports", plan_nodeports, needs=("istio",)),
    ), verify=(Verify("istio.gateway"), Verify("istio.ingress"))),
    "wait-pods": Step("wait-pods", "every pod Ready", KUBERNETES, (
        Resource("pods.ready", plan_wait, needs=("helm-release",)),
    ), verify=(Verify("pods.ready"), Verify("istio.virtualservice"))),
}
