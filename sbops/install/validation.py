"""Validation before anything changes: every problem is one line, and any problem stops the run (exit 2).

Errors: not root; a distribution K3s does not support here (unless --force-os); a port StackBill needs
that another program holds; a bad domain; a certificate or key that does not parse, does not match, does
not cover the domain or has expired; unusable artifacts; options that contradict each other.
Warnings: resources below the POC's 8 vCPU / 16 GB / 100 GB; --plan without root; a forced distribution.
The judgements are pure functions of observed facts (tested from tables); `validate` gathers the facts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from sbops import versions as v

if TYPE_CHECKING:
    from sbops.install.run import Run
    from sbops.install.steps import Step
    from sbops.probes.host import Listener

K3S_PROCESSES = ("k3s", "k3s-server", "k3s-agent")
NFSD_PROCESSES = ("nfsd", "rpc.nfsd", "ganesha.nfsd")
NEEDS_DOMAIN = ("letsencrypt", "tls-secret", "helm-release", "istio-gateway")
KUBE_STEPS = ("namespace", "ecr-secret", "letsencrypt", "tls-secret", "helm-release", "istio-gateway", "wait-pods")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)  # what was checked and is fine, for the summary line


# -- pure judgements ---------------------------------------------------------------------------------
def judge_root(euid: int, plan_only: bool) -> tuple[str, str]:
    """(error, warning)."""
    if euid == 0:
        return "", ""
    if plan_only:
        return "", "not running as root: some probes cannot look (the MySQL socket, /etc/exports); the plan may be incomplete"
    return "must run as root (it installs packages, writes /etc and starts services): use sudo", ""


def judge_os(info: dict[str, str], force: bool) -> tuple[str, str, str]:
    """(error, warning, description) for /etc/os-release's ID and VERSION_ID."""
    name = info.get("PRETTY_NAME") or f"{info.get('ID', 'unknown')} {info.get('VERSION_ID', '')}".strip()
    if (info.get("ID", ""), info.get("VERSION_ID", "")) in v.SUPPORTED_OS:
        return "", "", name
    supported = "Ubuntu 22.04/24.04 and Debian 12"
    if force:
        return "", f"{name} is not a supported distribution ({supported}); going on because of --force-os", name
    return (f"{name} is not supported: sbops installs on {supported}, the distributions K3s supports here "
            "(--force-os to try anyway)"), "", name


def judge_domain(domain: str) -> str:
    """'' when `domain` is a DNS name the certificate and the Gateway can use."""
    if not domain:
        return "no domain: give --domain (the portal's DNS name, e.g. portal.example.com)"
    text = domain.rstrip(".").lower()
    try:
        ipaddress.ip_address(text)
        return f"--domain {domain}: an IP address; give the portal's DNS name (its certificate and the Gateway need one)"
    except ValueError:
        pass
    labels = text.split(".")
    if "://" in domain or "/" in domain:
        return f"--domain {domain}: give the name only, without scheme or path (e.g. portal.example.com)"
    if len(text) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return (f"--domain {domain}: not a valid DNS name (labels of letters, digits and inner hyphens, at least "
                "two of them, e.g. portal.example.com)")
    return ""


_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def judge_email(email: str) -> str:
    """'' when `email` is an address Let's Encrypt can register (the upstream script's pattern, with
    no empty or hyphen-edged domain labels: ACME servers refuse those)."""
    if not email:
        return "no email: Let's Encrypt needs an address for its expiry notices (--email)"
    domain = email.rpartition("@")[2]
    if not _EMAIL.match(email) or any(label.startswith("-") or label.endswith("-") for label in domain.split(".")):
        return f"--email {email}: not an email address (e.g. admin@example.com)"
    return ""


def describe_owner(items: list["Listener"]) -> str:
    procs = sorted({f"{i.process or 'unknown'} (pid {i.pid})" if i.pid else "a kernel socket" for i in items})
    return ", ".join(procs)


def judge_port(what: str, port: int, owners: list["Listener"], speaks: bool | None, *,
               allowed: tuple[str, ...] = (), kernel_ok: bool = False, allowed_pids: frozenset[int] = frozenset()) -> str:
    """'' when the port is free or held by the right service (it speaks the protocol, or its process is one
    of `allowed`, a kernel socket when `kernel_ok`, or one of `allowed_pids`); else the one-line problem."""
    if not owners or speaks:
        return ""
    if all((i.pid is None and kernel_ok) or (i.process in allowed) or (i.pid in allowed_pids) for i in owners):
        return ""
    return (f"port {port} ({what}) is in use by {describe_owner(owners)}, which is not {what}: stop it, or move "
            f"{what} to another port")


def judge_pair(cert: str, key: str, read: Callable[[str], bytes], domain: str, now: datetime) -> list[str]:
    """--ssl-cert/--ssl-key: both or neither; readable; parse, match, cover the domain, not expired."""
    from sbops.probes import tls

    if not cert and not key:
        return []
    if not (cert and key):
        return ["--ssl-cert and --ssl-key go together: give both files, or neither (to keep the TLS secret there is)"]
    pems = []
    errors = []
    for flag, path in (("--ssl-cert", cert), ("--ssl-key", key)):
        try:
            pems.append(read(path))
        except OSError as exc:
            errors.append(f"{flag} {path}: cannot read: {exc.strerror or exc}")
    if errors:
        return errors
    return [f"--ssl-cert {cert} / --ssl-key {key}: {p}" for p in tls.pair_problems(pems[0], pems[1], domain, now)]


# -- facts and the whole validation --------------------------------------------------------------------
@dataclass(frozen=True)
class PortNeed:
    what: str
    port: int
    speaks: Callable[[int], bool] | None = None  # identifies the right service on 127.0.0.1:port
    allowed: tuple[str, ...] = ()
    kernel_ok: bool = False
    same_as: int = 0  # the port of the same service (RabbitMQ's management port: its AMQP port's process)


def lineage_exists(run: "Run") -> bool:
    """certbot has the domain's lineage already (the letsencrypt step will not listen on the HTTP-01 port)."""
    from sbops.probes.acme import live_dir

    domain = run.credentials.domain
    return bool(domain) and (live_dir(str(run.settings["letsencrypt.config_dir"]), domain) / "cert.pem").exists()


def port_needs(run: "Run", selected: Iterable[str]) -> list[PortNeed]:
    """The ports the selected steps will use on this machine, and how to recognise their rightful owner."""
    from sbops.probes import k8s, mongodb, mysql

    ctx = run.context()
    timeout = min(2.0, ctx.net_timeout)
    chosen = set(selected)
    needs = []
    try:
        if "k3s" in chosen:
            needs += [PortNeed("the K3s API", 6443, lambda p: k8s.answers_kube_api("127.0.0.1", p, timeout)),
                      PortNeed("the K3s kubelet", 10250, allowed=K3S_PROCESSES)]
        for name, what, speaks in (
                ("mysql", "MySQL", lambda p: mysql.greeting("127.0.0.1", p, timeout) is not None),
                ("mongodb", "MongoDB", lambda p: mongodb.answers_hello("127.0.0.1", p, timeout)),
                ("rabbitmq", "RabbitMQ", lambda p: speaks_amqp(p, timeout))):
            host, port = ctx.endpoint(name)
            if name in chosen and ctx.is_local(host):
                needs.append(PortNeed(what, port, speaks))
                if name == "rabbitmq":
                    needs.append(PortNeed("RabbitMQ management", int(run.settings["rabbitmq.management_port"]),
                                          same_as=port))
        nfs_host = run.credentials.nfs_server or ctx.server_ip
        if "nfs" in chosen and ctx.is_local(nfs_host):
            needs.append(PortNeed("the NFS server", int(run.settings["nfs.port"]), allowed=NFSD_PROCESSES, kernel_ok=True))
        if "cloudstack" in chosen and run.options.cloudstack == "simulator":
            from sbops.probes import cloudstack

            needs.append(PortNeed("the CloudStack simulator", int(run.settings["cloudstack.simulator_port"]),
                                  lambda p: cloudstack.call(f"http://127.0.0.1:{p}/client/api", "listCapabilities",
                                                            timeout=timeout).cloudstack))
        if "letsencrypt" in chosen and run.options.letsencrypt and not lineage_exists(run):
            needs.append(PortNeed("certbot's HTTP-01 listener (letsencrypt.http01_port)",
                                  int(run.settings["letsencrypt.http01_port"])))
        if "istio-gateway" in chosen:
            for key in ("nodeport_http", "nodeport_https"):
                needs.append(PortNeed(f"the ingress NodePort ({key})", int(run.settings[key]), allowed=K3S_PROCESSES,
                                      kernel_ok=True))
    finally:
        ctx.close()
    return needs


def speaks_amqp(port: int, timeout: float) -> bool:
    from sbops.probes import rabbitmq

    try:
        return rabbitmq.amqp_handshake("127.0.0.1", port, timeout).kind == "start"
    except OSError:
        return False


def check_ports(needs: list[PortNeed], listeners: list["Listener"]) -> list[str]:
    by_port: dict[int, list["Listener"]] = {}
    for item in listeners:
        by_port.setdefault(item.port, []).append(item)
    problems = []
    for need in needs:
        owners = by_port.get(need.port, [])
        pids = frozenset(i.pid for i in by_port.get(need.same_as, []) if i.pid) if need.same_as else frozenset()
        speaks = need.speaks(need.port) if owners and need.speaks else None
        problem = judge_port(need.what, need.port, owners, speaks, allowed=need.allowed, kernel_ok=need.kernel_ok,
                             allowed_pids=pids)
        if problem:
            problems.append(problem)
    return problems


def validate(run: "Run", steps: list["Step"], selection: dict[str, str], *, plan_only: bool,
             now: datetime | None = None, euid: int | None = None) -> Findings:
    """Gather the facts and judge them; nothing is changed."""
    from sbops import kube
    from sbops.errors import UsageError
    from sbops.probes import host
    from sbops.probes.system import os_release

    now = now or datetime.now(timezone.utc)
    found = Findings()
    opts = run.options
    # the letsencrypt step does nothing (needs no domain, no cluster) without --letsencrypt
    selected = [s.name for s in steps if not selection.get(s.name) and (s.name != "letsencrypt" or opts.letsencrypt)]

    error, warning = judge_root(os.geteuid() if euid is None else euid, plan_only)
    found.errors += [error] if error else []
    found.warnings += [warning] if warning else []
    if not error and not warning:
        found.passed.append("root")

    error, warning, name = judge_os(os_release(run.runner), opts.force_os)
    found.errors += [error] if error else []
    found.warnings += [warning] if warning else []
    if not error:
        found.passed.append(name)

    domain = run.credentials.domain
    if set(selected) & set(NEEDS_DOMAIN) or opts.domain:
        problem = judge_domain(domain)
        found.errors += [problem] if problem else []
        if not problem:
            found.passed.append(f"domain {domain}")
    if "tls-secret" in selected and not opts.letsencrypt:
        pair = judge_pair(opts.ssl_cert, opts.ssl_key, lambda p: Path(p).read_bytes(), domain, now)
        found.errors += pair
        if opts.ssl_cert and not pair:
            found.passed.append("certificate and key")

    if str(run.settings["install.mysql_flavour"]) not in ("auto", *v.MYSQL_PACKAGES):
        found.errors.append(f"install.mysql_flavour is {run.settings['install.mysql_flavour']!r}: use auto, mysql or mariadb")
    if run.credentials_plan.generated and "credentials" not in selected:
        names = ", ".join(n.upper() for n in run.credentials_plan.generated)
        found.errors.append(f"{run.credentials_path} has no {names} password and the credentials step is not selected: "
                            "include it, or the new password would not be saved")
    if opts.ecr_token_file and opts.ecr_token_file != "-" and "ecr-secret" in selected:
        if not os.access(opts.ecr_token_file, os.R_OK):
            found.errors.append(f"--ecr-token-file {opts.ecr_token_file}: cannot read it")
    kube_selected = [s for s in selected if s in KUBE_STEPS]
    if kube_selected and "k3s" not in selected and kube.find(str(run.settings["kubeconfig"])) is None:
        found.errors.append(f"no Kubernetes cluster for {', '.join(kube_selected)}: no kubeconfig ($KUBECONFIG, "
                            f"~/.kube/config, {kube.K3S_KUBECONFIG}) and the k3s step does not run; give --kubeconfig")

    if run.artifacts.offline:
        try:
            found.errors += run.artifacts.verify_all()
            found.errors += missing_artifacts(run, selected)
        except UsageError as exc:
            found.errors.append(str(exc))
        if not found.errors:
            found.passed.append(f"{len(run.artifacts.manifest())} artifact(s) match SHA256SUMS")

    problems = check_ports(port_needs(run, selected), host.observe_listeners())
    found.errors += problems
    if not problems:
        found.passed.append("ports free or held by the right services")

    observed = host.observe_resources(str(run.settings["host.disk_path"]))
    verdict = host.judge_resources(observed, int(run.settings["host.min_cpus"]), float(run.settings["host.min_memory_gb"]),
                                   float(run.settings["host.min_disk_gb"]))
    if verdict.status.value == "warn":
        found.warnings.append(verdict.summary)
    return found


def missing_artifacts(run: "Run", selected: list[str]) -> list[str]:
    """The artifacts the selected infra steps will need (their binary is not there yet) but the manifest lacks."""
    import shutil

    from sbops.install.kubernetes import chart_source
    from sbops.probes.system import binary_version

    cpu = v.arch()
    wanted = []
    if "k3s" in selected and binary_version(run.runner, [run.bin_path("k3s"), "--version"]) is None:
        wanted += [v.k3s_binary(cpu), v.k3s_images(cpu)]
    if "helm" in selected and shutil.which(run.helm()) is None:
        wanted.append(v.helm_archive(cpu))
    if "istio" in selected and not os.path.exists(run.bin_path("istioctl")):
        wanted.append(v.istioctl_archive(cpu))
    manifest = run.artifacts.manifest()
    problems = [f"--artifacts-dir: {a.name} ({a.what}) is needed but not listed in SHA256SUMS" for a in wanted
                if a.name not in manifest]
    if "helm-release" in selected:
        try:
            chart_source(run)
        except RuntimeError as exc:
            problems.append(str(exc))
    return problems
