"""The infrastructure steps (skipped by --skip-infra): K3s, Helm, Istio.

K3s is installed from its release binary rather than by piping get.k3s.io into a shell: the binary is
sha256-verified, the flags live in /etc/rancher/k3s/config.yaml (traefik and servicelb disabled,
kubeconfig readable by root only), and the systemd unit is the one the upstream script writes. None of
this can run on a test machine: tests drive it through a RecordingRunner.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sbops import versions as v
from sbops.diff import file_diff
from sbops.install.run import wait_for
from sbops.install.steps import INFRA, Resource, Step, Verify
from sbops import kube
from sbops.kube import K3S_KUBECONFIG
from sbops.model import Change, Plan, Reason, Status
from sbops.probes import k3s
from sbops.probes.system import binary_version, enable_now_argv, major, unit_state
from sbops.runner import display

if TYPE_CHECKING:
    from sbops.context import Context
    from sbops.install.run import Run

K3S_CONFIG = Path("/etc/rancher/k3s/config.yaml")
K3S_IMAGES = Path("/var/lib/rancher/k3s/agent/images")
K3S_LINKS = ("kubectl", "crictl", "ctr")
DISABLED = ("traefik", "servicelb")

# The unit get.k3s.io writes for a server (k3s.service), with the flags moved to config.yaml.
K3S_UNIT = """[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/k3s.service.env
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart={binary} server
"""


def install_argv(source: Path | str, dest: Path | str, mode: str = "0755") -> list[str]:
    return ["install", "-D", "-m", mode, str(source), str(dest)]


def run_all(run: "Run", argvs: list[list[str]], timeout: float = 300) -> None:
    for argv in argvs:
        result = run.runner.run(argv, timeout=timeout)
        if not result.ok:
            raise RuntimeError(f"{display(argv)} failed: {result.one_line_error()}")


def extract(archive: Path, member: str, directory: Path) -> Path:
    """One file out of a .tar.gz, into a private temp file (the caller installs it with `install`)."""
    with tarfile.open(archive) as tar:
        try:
            handle = tar.extractfile(member)
        except KeyError:
            handle = None
        if handle is None:
            raise RuntimeError(f"{archive.name} has no {member}")
        fd, name = tempfile.mkstemp(prefix=f".{Path(member).name}.", dir=directory)
        with os.fdopen(fd, "wb") as out:
            out.write(handle.read())
    return Path(name)


# -- K3s ---------------------------------------------------------------------------------------------
unit_flags = k3s.unit_flags  # the unit's ExecStart flags (moved to sbops.probes.k3s, which the doctor shares)


def k3s_config(existing: str | None, unit: str | None) -> tuple[str | None, str]:
    """Pure: (config.yaml text to write, or None; why nothing). Traefik and servicelb must be disabled
    (Istio's ingress gateway takes the traffic); the kubeconfig is readable by root only: a new install's
    config.yaml says 0600, and an existing one that names a wider mode is set to 0600."""
    import yaml

    try:
        doc = yaml.safe_load(existing) if existing else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{K3S_CONFIG}: invalid YAML: {str(exc).splitlines()[0]}") from None
    doc = doc if isinstance(doc, dict) else {}
    listed = doc.get("disable") or []
    listed = [s.strip() for s in (listed.split(",") if isinstance(listed, str) else listed)]
    from_unit = [d for value in unit_flags(unit).get("disable", []) for d in value.split(",")]
    missing = [d for d in DISABLED if d not in listed and d not in from_unit]
    mode = k3s.config_mode(existing, str(K3S_CONFIG))
    mode_open = mode is not None and k3s.too_open(mode)
    if not missing and not mode_open:
        return None, f"traefik and servicelb are disabled ({'config.yaml' if listed else 'the unit flags'})"
    if existing is None and unit is None:
        return yaml.safe_dump({k3s.KEY: k3s.SECURE, "disable": list(DISABLED)}, sort_keys=False), ""
    if missing:
        doc["disable"] = [*listed, *missing]
    if mode_open:  # the kubeconfig holds cluster-admin credentials: root's only (the original wrote 644)
        doc[k3s.KEY] = k3s.SECURE
    return yaml.safe_dump(doc, sort_keys=False), ""


def k3s_ready(ctx: "Context") -> tuple[bool, str]:
    """The API answers with the kubeconfig and the node is Ready (the doctor's k8s.api and k8s.nodes)."""
    from sbops.probes import k8s

    if ctx.kubeconfig_path is None:
        return False, f"no kubeconfig yet ({K3S_KUBECONFIG})"
    for check in (k8s.probe_api, k8s.probe_nodes):
        result = check(ctx)
        if result.status is not Status.OK:
            return False, result.summary
    return True, "the API answers and the node is Ready"


def plan_k3s_binary(run: "Run", ctx: "Context") -> Plan:
    path = run.bin_path("k3s")
    version = binary_version(run.runner, [path, "--version"])
    if version == v.K3S_VERSION:
        return Plan(nothing_to_do=f"K3s {version} is installed at {path}")
    if version:
        return Plan(nothing_to_do=f"K3s {version} is installed at {path}",
                    notes=(f"sbops pins {v.K3S_VERSION} for new installs and does not upgrade an existing K3s",))
    cpu = v.arch()
    binary = v.k3s_binary(cpu)
    links = [run.bin_path(n) for n in K3S_LINKS if not os.path.lexists(run.bin_path(n))]
    link_argvs = [["ln", "-s", "k3s", link] for link in links]

    def install_binary() -> None:
        source = run.artifacts.get(binary)
        run_all(run, [install_argv(source, path), *link_argvs])

    changes = [Change(f"install K3s {v.K3S_VERSION} at {path} from {run.artifacts.source(binary)}"
                      + (f", with {', '.join(Path(n).name for n in links)} linked to it" if links else ""),
                      (display(install_argv(binary.name, path)), *(display(a) for a in link_argvs)), install_binary)]
    if run.artifacts.offline:
        images = v.k3s_images(cpu)
        extra = run.artifacts.extra_images()

        def install_images() -> None:
            sources = [run.artifacts.get(images), *extra]
            run_all(run, [install_argv(s, K3S_IMAGES / s.name, "0644") for s in sources])

        changes.append(Change(f"put the K3s images{f' and {len(extra)} more image archive(s)' if extra else ''} in "
                              f"{K3S_IMAGES} (K3s imports them at start: no registry needed)",
                              tuple(display(install_argv(n, K3S_IMAGES / Path(n).name, "0644"))
                                    for n in [images.name, *(str(p.name) for p in extra)]), install_images))
    return Plan(changes=tuple(changes))


def plan_k3s_config(run: "Run", ctx: "Context") -> Plan:
    unit_path = Path(str(run.settings["install.unit_dir"])) / "k3s.service"
    try:
        text, why = k3s_config(run.runner.read_file(K3S_CONFIG), run.runner.read_file(unit_path))
    except ValueError as exc:
        return Plan(blockers=(str(exc),))
    notes = tuple(f"{value!r} from the unit's --{k3s.KEY} overrides config.yaml: K3s's kubeconfig stays readable by "
                  "others; `sbops fix kubeconfig-mode` says what to change" for value in
                  k3s.unit_flags(run.runner.read_file(unit_path)).get(k3s.KEY, []) if k3s.too_open(value))
    if text is None:
        return Plan(nothing_to_do=why, notes=notes)
    mode = (f", {k3s.KEY} {k3s.SECURE} (the kubeconfig holds cluster-admin credentials)"
            if k3s.config_mode(text) == k3s.SECURE else "")
    changes = [Change(f"write {K3S_CONFIG} (0600): {' and '.join(DISABLED)} disabled (Istio's gateway serves the "
                      "ingress)" + mode,
                      (), lambda: run.runner.write_file(K3S_CONFIG, text, 0o600),
                      (file_diff(str(K3S_CONFIG), run.runner.read_file(K3S_CONFIG), text),))]
    if unit_state(run.runner, "k3s").active == "active":
        timeout = float(run.settings["install.api_timeout"])

        def restart() -> None:
            run_all(run, [["systemctl", "restart", "k3s"]])
            wait_for(run, "K3s", timeout, k3s_ready)

        changes.append(Change("restart K3s to apply it (pods keep running; the API is away for a few seconds)",
                              ("systemctl restart k3s",), restart))
    return Plan(changes=tuple(changes), notes=notes)


def plan_k3s_service(run: "Run", ctx: "Context") -> Plan:
    unit_path = Path(str(run.settings["install.unit_dir"])) / "k3s.service"
    unit = K3S_UNIT.format(binary=run.bin_path("k3s"))
    state = unit_state(run.runner, "k3s")
    changes = []
    if run.runner.read_file(unit_path) is None:
        def write_unit() -> None:
            run.runner.write_file(unit_path, unit, 0o644)
            run_all(run, [["systemctl", "daemon-reload"]])

        changes.append(Change(f"write the systemd unit {unit_path}", ("systemctl daemon-reload",),
                              write_unit, (file_diff(str(unit_path), None, unit),)))
    if state.active != "active" or state.enabled != "enabled":
        timeout = float(run.settings["install.api_timeout"])

        def start() -> None:
            run_all(run, [enable_now_argv("k3s")], timeout=600)
            wait_for(run, "K3s", timeout, k3s_ready)

        changes.append(Change(f"enable and start K3s (now {state.active}, {state.enabled}), then wait up to "
                              f"{timeout:g}s for its API and node", (display(enable_now_argv("k3s")),), start))
    if not changes:
        return Plan(nothing_to_do="k3s.service is enabled and active")
    return Plan(changes=tuple(changes))


def plan_kubeconfig_copy(run: "Run", ctx: "Context") -> Plan:
    """As the original: root's ~/.kube/config is K3s's kubeconfig (helm and kubectl by hand find it)."""
    target = Path.home() / ".kube" / "config"
    if run.runner.read_file(target) is not None:
        return Plan(nothing_to_do=f"{target} exists (left as it is)")
    argv = install_argv(K3S_KUBECONFIG, target, "0600")
    return Plan(changes=(Change(f"copy {K3S_KUBECONFIG} to {target} (0600)", (display(argv),),
                                lambda: run_all(run, [argv])),))


# -- Helm --------------------------------------------------------------------------------------------
def plan_helm(run: "Run", ctx: "Context") -> Plan:
    helm = run.helm()
    version = binary_version(run.runner, [helm, "version", "--short"])
    if version and major(version) == v.HELM_MAJOR:
        return Plan(nothing_to_do=f"Helm {version} is installed at {helm}")
    if version:
        return Plan(blockers=(f"{helm} is Helm {version}: the installer needs Helm {v.HELM_MAJOR} (set helm.command "
                              f"to a Helm {v.HELM_MAJOR} binary)",))
    cpu = v.arch()
    archive = v.helm_archive(cpu)
    target = run.bin_path("helm")

    def apply() -> None:
        source = run.artifacts.get(archive)
        binary = extract(source, v.helm_member(cpu), source.parent)
        try:
            run_all(run, [install_argv(binary, target)])
        finally:
            binary.unlink(missing_ok=True)
        got = binary_version(run.runner, [target, "version", "--short"])
        if got is not None and major(got) != v.HELM_MAJOR:
            raise RuntimeError(f"{target} reports {got}, not Helm {v.HELM_MAJOR}")

    return Plan(changes=(Change(f"install Helm {v.HELM_VERSION} at {target} from {run.artifacts.source(archive)}",
                                (display(install_argv(v.helm_member(cpu), target)),), apply),))


# -- Istio -------------------------------------------------------------------------------------------
def istioctl_argv(istioctl: str, kubeconfig: str) -> list[str]:
    return [istioctl, "install", "--set", f"profile={v.ISTIO_PROFILE}", "-y", *(["--kubeconfig", kubeconfig] if kubeconfig else [])]


def istiod_ready(ctx: "Context") -> tuple[bool, str]:
    from sbops.probes import istio

    result = istio.probe_istiod(ctx)
    return result.status is Status.OK, result.summary


def plan_istio(run: "Run", ctx: "Context") -> Plan:
    from sbops.probes import istio

    result = istio.probe_istiod(ctx)
    if result.status is Status.OK:
        return Plan(nothing_to_do=result.summary)
    timeout = float(run.settings["install.api_timeout"])
    wait = Change(f"wait up to {timeout:g}s for istiod to be Ready", (), lambda: wait_for(run, "istiod", timeout, istiod_ready))
    if result.reason is Reason.NOT_READY:
        return Plan(changes=(wait,), notes=(result.summary,))
    if result.reason is not Reason.MISSING:
        return Plan(blockers=(result.summary,))
    if ctx.kubeconfig_path is None:
        return Plan(blockers=("no kubeconfig for istioctl (use --kubeconfig FILE)",))
    changes = []
    istioctl = run.bin_path("istioctl")
    have = binary_version(run.runner, [istioctl, "version", "--remote=false", "--short"])
    if have != v.ISTIO_VERSION:
        cpu = v.arch()
        archive = v.istioctl_archive(cpu)

        def install_istioctl() -> None:
            source = run.artifacts.get(archive)
            binary = extract(source, v.ISTIOCTL_MEMBER, source.parent)
            try:
                run_all(run, [install_argv(binary, istioctl)])
            finally:
                binary.unlink(missing_ok=True)

        was = f" (replacing {have})" if have else ""
        changes.append(Change(f"install istioctl {v.ISTIO_VERSION} at {istioctl}{was} from {run.artifacts.source(archive)}",
                              (display(install_argv(v.ISTIOCTL_MEMBER, istioctl)),), install_istioctl))
    argv = istioctl_argv(istioctl, kube.kubeconfig_file(ctx.kubeconfig_path))
    changes.append(Change(f"install Istio {v.ISTIO_VERSION} with the {v.ISTIO_PROFILE} profile (istiod and the ingress "
                          "gateway)", (display(argv),), lambda: run_all(run, [argv], timeout=900)))
    changes.append(wait)
    return Plan(changes=tuple(changes))


STEPS = {
    "k3s": Step("k3s", f"K3s {v.K3S_VERSION} with traefik and servicelb disabled", INFRA, (
        Resource("k3s.binary", plan_k3s_binary),
        Resource("k3s.config", plan_k3s_config),
        Resource("k3s.service", plan_k3s_service, needs=("k3s.binary", "k3s.config")),
        Resource("k3s.kubeconfig", plan_kubeconfig_copy, needs=("k3s.service",)),
    ), verify=(Verify("k8s.api"), Verify("k8s.nodes"))),
    "helm": Step("helm", f"Helm {v.HELM_MAJOR}", INFRA, (Resource("helm.binary", plan_helm),)),
    "istio": Step("istio", f"Istio {v.ISTIO_VERSION} ({v.ISTIO_PROFILE} profile)", INFRA, (
        Resource("istio.control-plane", plan_istio, needs=("k3s",)),
    ), verify=(Verify("istio.istiod"),)),
}

