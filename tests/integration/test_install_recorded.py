"""The steps that cannot run on a test machine, driven through runner.RecordingRunner: installing K3s, Helm,
istioctl and Istio, the distribution's packages and the vendor's MongoDB repository, systemd units.
Each test asserts the exact commands in order, and that no secret reaches any argv.

What is real: the artifacts directory and its SHA256SUMS (real files, real hashing), the lab's
kube-apiserver that the K3s and Istio steps wait for and verify against (Istio's install is simulated by
creating istiod's Deployment and pod through the API when the recorded `istioctl install` runs), and a
listener process that stands for a service systemd started. What is recorded, not run: every host
command (apt-get, dpkg-query, systemctl, install, ln, istioctl) and every file write under /etc.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sbops import versions as v
from sbops.install import catalog, databases, flow, steps as st
from sbops.install.command import build_run, load_settings
from sbops.install.kubernetes import plan_refresher
from sbops.install.run import Options, Reporter, Run
from sbops.runner import CommandResult, RecordingRunner, succeeds
from tests.lab import kube as lab
from tests.lab.common import free_port, private_home  # noqa: F401 - a fixture
from tests.lab.env import LabEnv
from tests.lab.listener import ListenerProc

# The recording runner and the installer never see the machine's real home or ~/.kube/config.
pytestmark = pytest.mark.usefixtures("private_home")

UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nVERSION_CODENAME=jammy\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\nVERSION_CODENAME=bookworm\n'
SECRETS = ("RecordedMysqlPw1", "RecordedMongoPw1", "RecordedRabbit01")
APT = ["env", "DEBIAN_FRONTEND=noninteractive"]
CPU = v.arch()


class Fetcher:
    """The installer's download seam (sbops.install.artifacts.Fetcher), serving fixed bytes."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def get(self, url: str) -> bytes:
        return self.files[url]

    def download(self, url: str, dest: Path) -> None:
        dest.write_bytes(self.files[url])


def tarball(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items()))
    return root


def make_run(tmp_path: Path, runner: RecordingRunner, *, fetcher: Any = None, artifacts: Path | None = None,
             settings: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Run:
    lab_env = LabEnv(tmp_path / "env").installer()
    lab_env.set("install.bin_dir", str(tmp_path / "bin")).set("install.api_timeout", 20)
    for name, secret in zip(("mysql", "mongodb", "rabbitmq"), SECRETS):
        lab_env.service(name, port=free_port(), password=secret)
    for key, value in (settings or {}).items():
        lab_env.set(key, value)
    lab_env.write()
    options = Options(config=str(lab_env.config_path), credentials=str(lab_env.credentials_path),
                      artifacts_dir=str(artifacts or ""))
    return build_run(options, load_settings(options), runner=runner, fetcher=fetcher, reporter=Reporter(),
                     env=env or {}, ask=None)


def assert_no_secret_in_argv(runner: RecordingRunner, *extra: str) -> None:
    for argv in runner.commands:
        for secret in (*SECRETS, *extra):
            assert secret not in " ".join(argv), argv


def step(name: str) -> st.Step:
    return next(s for s in catalog.steps() if s.name == name)


def run_one(run: Run, item: st.Step) -> st.StepOutcome:
    [outcome] = flow.run_install(run, [item], {item.name: ""}, plan_only=False)
    return outcome


# -- K3s -------------------------------------------------------------------------------------------------
def systemctl(states: dict[str, tuple[str, str]]):
    def answer(argv: tuple[str, ...]) -> CommandResult:
        if argv[1] in ("is-active", "is-enabled"):
            active, enabled = states.get(argv[2], ("inactive", "not-found"))
            value = active if argv[1] == "is-active" else enabled
            return CommandResult(argv, 0 if value in ("active", "enabled") else 3, value + "\n", "")
        return CommandResult(argv, 0, "", "")

    return answer


def test_k3s_from_artifacts_on_a_fresh_machine_then_nothing_to_do(kube: lab.KubeLab, tmp_path: Path) -> None:
    files = {v.k3s_binary(CPU).name: b"\x7fELF k3s", v.k3s_images(CPU).name: b"images", "images/istio-1.20.3.tar": b"istio"}
    art = bundle(tmp_path / "artifacts", files)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    units: dict[str, tuple[str, str]] = {}
    runner = RecordingRunner(responses={str(bin_dir / "k3s"): CommandResult((), 127, "", "not found"),
                                        "systemctl": systemctl(units), **succeeds("install", "ln")})
    run = make_run(tmp_path, runner, artifacts=art, settings={"kubeconfig": str(kube.kubeconfig),
                                                               "install.unit_dir": str(tmp_path / "units")})
    outcome = run_one(run, step("k3s"))
    assert outcome.status == st.CHANGED, outcome.error
    images = Path("/var/lib/rancher/k3s/agent/images")
    assert [list(c) for c in runner.commands] == [
        [str(bin_dir / "k3s"), "--version"],
        ["install", "-D", "-m", "0755", str(art / "k3s"), str(bin_dir / "k3s")],
        ["ln", "-s", "k3s", str(bin_dir / "kubectl")], ["ln", "-s", "k3s", str(bin_dir / "crictl")],
        ["ln", "-s", "k3s", str(bin_dir / "ctr")],
        ["install", "-D", "-m", "0644", str(art / v.k3s_images(CPU).name), str(images / v.k3s_images(CPU).name)],
        ["install", "-D", "-m", "0644", str(art / "images/istio-1.20.3.tar"), str(images / "istio-1.20.3.tar")],
        ["systemctl", "is-active", "k3s"], ["systemctl", "is-enabled", "k3s"],
        ["systemctl", "is-active", "k3s"], ["systemctl", "is-enabled", "k3s"],
        ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "k3s"],
        ["install", "-D", "-m", "0600", "/etc/rancher/k3s/k3s.yaml", str(Path.home() / ".kube" / "config")],
    ]
    assert runner.writes == [("/etc/rancher/k3s/config.yaml", 0o600), (str(tmp_path / "units" / "k3s.service"), 0o644)]
    assert runner.files["/etc/rancher/k3s/config.yaml"] == "write-kubeconfig-mode: '0600'\ndisable:\n- traefik\n- servicelb\n"
    assert f"ExecStart={bin_dir / 'k3s'} server\n" in runner.files[str(tmp_path / "units" / "k3s.service")]
    assert [(c.id, c.status) for c in outcome.checks] == [("k8s.api", "ok"), ("k8s.nodes", "ok")]
    assert_no_secret_in_argv(runner)

    # the same machine once K3s runs: every resource has nothing to do, and only probes run
    runner.commands.clear()
    runner.responses[str(bin_dir / "k3s")] = CommandResult((), 0, "k3s version v1.29.0+k3s1 (3190a5a7)\n", "")
    units["k3s"] = ("active", "enabled")
    runner.files[str(Path.home() / ".kube" / "config")] = "copied"
    again = run_one(run, step("k3s"))
    assert again.status == st.UNCHANGED, again.error
    assert [r.plan.nothing_to_do for r in again.resources] == [
        f"K3s v1.29.0+k3s1 is installed at {bin_dir / 'k3s'}", "traefik and servicelb are disabled (config.yaml)",
        "k3s.service is enabled and active", f"{Path.home() / '.kube' / 'config'} exists (left as it is)"]
    assert all(c[0] in (str(bin_dir / "k3s"), "systemctl") and c[1] in ("--version", "is-active", "is-enabled")
               for c in runner.commands), runner.commands


def test_k3s_installed_by_the_original_script_is_left_alone(kube: lab.KubeLab, tmp_path: Path) -> None:
    upstream = ("[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--write-kubeconfig-mode' '644' "
                "'--disable' 'traefik' '--disable' 'servicelb' \\\n")
    runner = RecordingRunner(responses={"systemctl": systemctl({"k3s": ("active", "enabled")})},
                             files={str(tmp_path / "units" / "k3s.service"): upstream, str(Path.home() / ".kube" / "config"): "x"})
    bin_dir = tmp_path / "bin"
    runner.responses[str(bin_dir / "k3s")] = CommandResult((), 0, "k3s version v1.28.5+k3s1 (5b2d1271)\n", "")
    run = make_run(tmp_path, runner, settings={"kubeconfig": str(kube.kubeconfig), "install.unit_dir": str(tmp_path / "units")})
    outcome = run_one(run, step("k3s"))
    assert outcome.status == st.UNCHANGED, outcome.error
    assert outcome.resources[0].plan.notes == ("sbops pins v1.29.0+k3s1 for new installs and does not upgrade an existing K3s",)
    assert outcome.resources[1].plan.nothing_to_do == "traefik and servicelb are disabled (the unit flags)"
    assert runner.writes == []


# -- Helm and Istio ----------------------------------------------------------------------------------------
def after(runner: RecordingRunner, marker: list[str], answer: CommandResult, before: CommandResult):
    """A program's answer that changes once `marker` was run (an install puts the binary in place)."""
    return lambda argv: answer if tuple(marker) in runner.commands else before


def test_helm_from_the_published_archive(tmp_path: Path) -> None:
    archive = v.helm_archive(CPU)
    data = tarball(v.helm_member(CPU), b"#!/bin/sh\necho v3.17.1\n")
    fetcher = Fetcher({archive.url: data, archive.checksum_url: f"{hashlib.sha256(data).hexdigest()}  {archive.name}\n".encode()})
    runner = RecordingRunner(responses=succeeds("install"))
    target = str(tmp_path / "bin" / "helm")
    run = make_run(tmp_path, runner, fetcher=fetcher, settings={"helm.command": target})
    missing = CommandResult((), 127, "", "not found")
    runner.responses[target] = lambda argv: (CommandResult(argv, 0, "v3.17.1+g980d8ac\n", "")
                                             if any(c[:4] == ("install", "-D", "-m", "0755") for c in runner.commands) else missing)
    outcome = run_one(run, step("helm"))
    assert outcome.status == st.CHANGED, outcome.error
    installed = runner.commands[1]
    assert [list(c) for c in runner.commands] == [[target, "version", "--short"],
                                                  ["install", "-D", "-m", "0755", installed[4], target],
                                                  [target, "version", "--short"]]
    assert Path(installed[4]).parent == tmp_path / "env" / "install" / "download_dir"
    assert not Path(installed[4]).exists()  # the extracted copy is removed after `install`
    assert outcome.resources[0].applied == [f"install Helm {v.HELM_VERSION} at {target} from {archive.url} "
                                            f"(sha256 checked against {archive.name}.sha256sum)"]


def test_helm_4_is_refused(tmp_path: Path) -> None:
    helm = str(tmp_path / "bin" / "helm")
    runner = RecordingRunner(responses={helm: CommandResult((), 0, "v4.0.0+g1\n", "")})
    run = make_run(tmp_path, runner, settings={"helm.command": helm})
    outcome = run_one(run, step("helm"))
    assert outcome.status == st.FAILED and "is Helm v4.0.0+g1: the installer needs Helm 3" in outcome.error


def test_istio_with_istioctl_from_artifacts(kube: lab.KubeLab, core: Any, apps: Any, tmp_path: Path) -> None:
    for kind, delete in (("deployment", apps.delete_namespaced_deployment), ("endpoints", core.delete_namespaced_endpoints)):
        delete("istiod", lab.ISTIO_NAMESPACE)
    core.delete_namespaced_pod(lab.pod_name("istiod"), lab.ISTIO_NAMESPACE, grace_period_seconds=0)
    archive = v.istioctl_archive(CPU)
    art = bundle(tmp_path / "artifacts", {archive.name: tarball(v.ISTIOCTL_MEMBER, b"istioctl")})
    istioctl = str(tmp_path / "bin" / "istioctl")

    def install_istio(argv: tuple[str, ...]) -> CommandResult:
        # what `istioctl install` leaves behind, as far as sbops looks: istiod's Deployment and its Ready pod
        kube._workload(core, apps, lab.ISTIO_NAMESPACE, "istiod", {"app": "istiod", "istio": "pilot"},
                       [("discovery", f"docker.io/istio/pilot:{lab.ISTIO_VERSION}")],
                       ports=[("grpc-xds", 15010, 15010, None)], ip="10.42.0.240")
        return CommandResult(argv, 0, "✔ Installation complete", "")

    runner = RecordingRunner(responses=succeeds("install"))
    runner.responses[istioctl] = lambda argv: install_istio(argv) if argv[1] == "install" else CommandResult(argv, 127, "", "")
    run = make_run(tmp_path, runner, artifacts=art, settings={"kubeconfig": str(kube.kubeconfig)})
    outcome = run_one(run, step("istio"))
    assert outcome.status == st.CHANGED, outcome.error
    assert [list(c) for c in runner.commands] == [
        [istioctl, "version", "--remote=false", "--short"],
        ["install", "-D", "-m", "0755", runner.commands[1][4], istioctl],
        [istioctl, "install", "--set", "profile=demo", "-y", "--kubeconfig", str(kube.kubeconfig)]]
    assert [(c.id, c.status) for c in outcome.checks] == [("istio.istiod", "ok")]


# -- packages, the MongoDB repository, services ----------------------------------------------------------------
def server_only(name: str) -> st.Step:
    """The step's first resource alone (installing and starting the server): the rest needs a real server."""
    return st.Step(name, name, st.DB, (step(name).resources[0],))


def started(runner: RecordingRunner, port: int, procs: list[ListenerProc]):
    """systemctl enable --now: a listener stands for the service that systemd would start."""
    def answer(argv: tuple[str, ...]) -> CommandResult:
        if argv[1] == "enable":
            procs.append(ListenerProc("127.0.0.1", port).start())
        return CommandResult(argv, 0, "", "")

    return answer


@pytest.mark.parametrize("os_release, service, key, expected", [
    (UBUNTU, "mysql", "mysql", [APT + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mysql-server"],
                                ["systemctl", "enable", "--now", "mysql"]]),
    (DEBIAN, "mysql", "mysql", [APT + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mariadb-server"],
                                ["systemctl", "enable", "--now", "mariadb"]]),
    (DEBIAN, "rabbitmq", "rabbitmq", [APT + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "rabbitmq-server"],
                                      ["systemctl", "enable", "--now", "rabbitmq-server"]]),
    (UBUNTU, "mongodb", "mongodb", [APT + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mongodb-org"],
                                    ["systemctl", "enable", "--now", "mongod"]]),
])
def test_server_packages_on_a_fresh_machine(tmp_path: Path, os_release: str, service: str, key: str,
                                            expected: list[list[str]]) -> None:
    runner = RecordingRunner(files={"/etc/os-release": os_release},
                             responses={"dpkg-query": CommandResult((), 1, "", "no packages found"), **succeeds("env")})
    armored = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n-----END PGP PUBLIC KEY BLOCK-----\n"
    run = make_run(tmp_path, runner, fetcher=Fetcher({v.MONGODB_KEY_URL: armored}))
    port = run.credentials_plan.desired.__getattribute__(key).port
    procs: list[ListenerProc] = []
    runner.responses["systemctl"] = started(runner, port, procs)
    try:
        outcome = run_one(run, server_only(service))
    finally:
        for proc in procs:
            proc.stop()
    assert outcome.status == st.CHANGED, outcome.error
    commands = [list(c) for c in runner.commands]
    assert commands[0][:3] == ["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Version}\n"]
    assert commands[1:] == [APT + ["apt-get", "update", "-q"], *expected]
    if service == "mongodb":
        assert runner.writes == [("/usr/share/keyrings/mongodb-server-7.0.asc", 0o644),
                                 ("/etc/apt/sources.list.d/mongodb-org-7.0.list", 0o644)]
        assert runner.files["/etc/apt/sources.list.d/mongodb-org-7.0.list"] == (
            "deb [ signed-by=/usr/share/keyrings/mongodb-server-7.0.asc ] https://repo.mongodb.org/apt/ubuntu "
            "jammy/mongodb-org/7.0 multiverse\n")
    assert_no_secret_in_argv(runner)


def test_installed_but_stopped_server_is_only_started(tmp_path: Path) -> None:
    runner = RecordingRunner(files={"/etc/os-release": DEBIAN}, responses={
        "dpkg-query": CommandResult((), 0, "nfs-kernel-server\tinstall ok installed\t1:2.6.2-4\n", "")})
    run = make_run(tmp_path, runner, settings={"nfs.port": free_port()})
    procs: list[ListenerProc] = []
    runner.responses["systemctl"] = started(runner, int(run.settings["nfs.port"]), procs)
    try:
        outcome = run_one(run, server_only("nfs"))
    finally:
        for proc in procs:
            proc.stop()
    assert outcome.status == st.CHANGED, outcome.error
    assert [c[0] for c in runner.commands] == ["dpkg-query", "systemctl"]
    assert outcome.resources[0].applied == [
        f"enable and start nfs-server (nfs-kernel-server 1:2.6.2-4 is installed), then wait for port {run.settings['nfs.port']}"]


def test_mongodb_on_an_unknown_distribution_is_refused(tmp_path: Path) -> None:
    runner = RecordingRunner(files={"/etc/os-release": 'ID=fedora\nVERSION_ID="40"\n'},
                             responses={"dpkg-query": CommandResult((), 1, "", "")})
    run = make_run(tmp_path, runner)
    outcome = run_one(run, server_only("mongodb"))
    assert outcome.status == st.FAILED
    assert outcome.error == ("no MongoDB 7.0 repository is known for this distribution (unknown): install "
                             "mongodb-org 7.0 yourself, then re-run")
    assert [c[0] for c in runner.commands] == ["dpkg-query"]


# -- the ECR refresher ---------------------------------------------------------------------------------------
def test_refresher_is_installed_when_the_token_comes_from_aws_credentials(tmp_path: Path) -> None:
    runner = RecordingRunner(responses=succeeds("systemctl"))
    units = tmp_path / "units"
    run = make_run(tmp_path, runner, settings={"install.unit_dir": str(units)})
    item = st.Step("refresher", "refresher", st.KUBERNETES, (st.Resource("ecr.refresher", plan_refresher),))
    outcome = run_one(run, item)
    assert outcome.status == st.CHANGED, outcome.error
    assert [list(c) for c in runner.commands] == [["systemctl", "daemon-reload"],
                                                  ["systemctl", "enable", "--now", "sbops-ecr-refresh.timer"]]
    assert [w for w, _ in runner.writes] == [str(units / "sbops-ecr-refresh.service"), str(units / "sbops-ecr-refresh.timer")]
    assert "fix ecr-refresh --yes --config" in runner.files[str(units / "sbops-ecr-refresh.service")]
    again = run_one(run, item)
    assert again.status == st.UNCHANGED and "is installed" in again.resources[0].plan.nothing_to_do


def test_no_refresher_for_a_token_given_by_hand_or_when_declined(tmp_path: Path) -> None:
    runner = RecordingRunner()
    run = make_run(tmp_path, runner, env={"AWS_ECR_TOKEN": "x"})
    plan = plan_refresher(run, run.context())
    assert plan.empty and plan.nothing_to_do.startswith("the ECR token was supplied by hand")
    declined = make_run(tmp_path / "b", RecordingRunner(), settings={"install.ecr_refresher": False})
    assert plan_refresher(declined, declined.context()).nothing_to_do.startswith("the ECR refresher is not wanted")
    assert runner.commands == []


def test_databases_module_knows_every_supported_distribution() -> None:
    for codename in v.SUPPORTED_OS.values():
        key, listing, line = databases.mongodb_repo_files(codename)
        assert line.startswith(f"deb [ signed-by={key} ] https://repo.mongodb.org/apt/")
