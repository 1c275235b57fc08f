"""What each setting's value may be, beyond its type: pure rules, one line per problem.

Many settings end up in system files (`pod_network` and `nfs.path` in /etc/exports and the MySQL grants,
paths and unit names in systemd units, names in Kubernetes objects). A value is checked strictly when the
settings load, so `10.42.0.0/16(rw,no_root_squash) *` is refused with one line instead of being written
verbatim into /etc/exports. Each rule returns '' when the value is fine, else what is wrong, phrased to follow
the setting's name ("must be ..."). Settings without a rule of their own get the rule of their type: strings
without control characters, finite positive floats, non-negative integers, and ports (keys ending in `port`)
from 1 to 65535.

Kept apart from settings.py, whose table of defaults other work extends: a new key needs no rule to be safe.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import string
import unicodedata
from typing import Any, Callable

Rule = Callable[[Any], str]

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")


def control_characters(text: str) -> bool:
    """Newlines, tabs, NUL, escapes, and the lone surrogates a non-UTF-8 environment leaves behind."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def plain_text(value: Any) -> str:
    if isinstance(value, str) and control_characters(value):
        return "must be one line of text without control characters"
    return ""


def dns_label(value: str, max_len: int = 63) -> str:
    """A Kubernetes name of one label (RFC 1123): namespaces, Services, Helm releases."""
    if not value or len(value) > max_len or not _LABEL.match(value):
        return (f"must be a DNS label (at most {max_len} lower-case letters, digits and inner hyphens, "
                "e.g. sb-apps)")
    return ""


def dns_subdomain(value: str) -> str:
    """A Kubernetes object name (RFC 1123 subdomain): Secrets, Gateways, StorageClasses."""
    if not value or len(value) > 253 or not all(_LABEL.match(part) for part in value.split(".")):
        return "must be a Kubernetes name (lower-case letters, digits, inner hyphens and dots, e.g. stackbill-gateway)"
    return ""


def hostname(value: str) -> str:
    text = value[:-1] if value.endswith(".") else value
    if not text or len(text) > 253 or not all(_HOST_LABEL.match(part) for part in text.split(".")):
        return "must be a DNS name (labels of letters, digits and inner hyphens, e.g. portal.example.com)"
    return ""


def optional(rule: Rule) -> Rule:
    """The rule, or '' for the empty value (the setting's 'automatic')."""
    return lambda value: "" if value in ("", None) else rule(value)


def domain_name(value: str) -> str:
    problem = hostname(value)
    if problem:
        return problem
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "" if "." in value.rstrip(".") else "must be a DNS name of at least two labels, e.g. portal.example.com"
    return "must be a DNS name, not an IP address"


def ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address such as 192.0.2.10"
    return ""


def ip_network(value: str) -> str:
    """CIDR with the host bits clear, written canonically: what /etc/exports and the MySQL grants can name
    exactly (anything else, such as `10.42.0.0/16(rw) *`, would be written into /etc/exports verbatim)."""
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "must be an IP network in CIDR notation, such as 10.42.0.0/16"
    if "/" not in value or str(network) != value:
        return f"must be an IP network in CIDR notation with the host bits clear, such as {network}"
    return ""


def absolute_path(value: str) -> str:
    """Paths that sbops writes into system files (exports, units, drop-ins) or creates as root."""
    if not value.startswith("/") or any(c.isspace() for c in value) or control_characters(value) or "\\" in value:
        return "must be an absolute path without spaces or control characters (e.g. /data/stackbill)"
    return ""


def file_path(value: str) -> str:
    """Files sbops only reads (a relative path is taken from the working directory)."""
    if control_characters(value):
        return "must be a file path without control characters"
    return ""


def unit_name(value: str) -> str:
    if not _UNIT.match(value) or value.startswith("-"):
        return "must be a systemd unit name (letters, digits, ':', '_', '.', '@', '-'), e.g. mariadb"
    return ""


def command(value: str) -> str:
    """A command line run through the host runner: one line that shlex can split."""
    if control_characters(value):
        return "must be one command line without control characters"
    try:
        words = shlex.split(value)
    except ValueError as exc:
        return f"must be a command line shlex can split ({exc})"
    return "" if words else "must not be empty"


def registry(value: str) -> str:
    host, _, port = value.partition(":")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        return "must be a registry host name with an optional :PORT"
    return hostname(host) and "must be a registry host name, e.g. 730335576030.dkr.ecr.ap-south-1.amazonaws.com"


def region(value: str) -> str:
    return "" if _REGION.match(value) else "must be an AWS region such as ap-south-1"


def listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be HOST:PORT (e.g. 127.0.0.1:29100)"
    if host.startswith("[") and host.endswith("]"):
        return ip_address(host[1:-1]) and "must be HOST:PORT with an IPv6 address in brackets, e.g. [::1]:29100"
    if not host:
        return ""
    if ":" in host:
        return "must be HOST:PORT with an IPv6 address in brackets, e.g. [::1]:29100"
    return "" if not ip_address(host) or not hostname(host) else "must be HOST:PORT (e.g. 127.0.0.1:29100)"


def url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value) or any(c.isspace() for c in value) or control_characters(value):
        return "must be an http:// or https:// URL without spaces"
    return ""


def https_url(value: str) -> str:
    """An agent's URL: the agents serve TLS only (their basic-auth password must never cross in clear)."""
    problem = url(value)
    if problem or value.startswith("https://"):
        return problem
    return "must be an https:// URL (the agent serves TLS only)"


def runbook_url(value: str) -> str:
    """A URL template: `{id}` is the check's id; any other brace must be doubled ({{ or }})."""
    problem = url(value)
    if problem:
        return problem
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        value.format(id="mysql.auth")
    except (ValueError, IndexError, KeyError, AttributeError):
        fields = ["?"]
    if any(name != "id" for name in fields):
        return "must be a URL in which {id} is the only placeholder (write a literal brace as {{ or }})"
    return ""


_NAME_LIST = re.compile(r"^[a-z]+( *, *[a-z]+)*$")


def name_list(value: str) -> str:
    """Lower-case names separated by commas, none twice: exporter.layers (the exporter checks that each is a
    layer, sbops.exporter.server.served_layers: the registry is above this module)."""
    parts = [part.strip() for part in value.split(",")]
    if not _NAME_LIST.match(value) or len(set(parts)) != len(parts):
        return "must be names separated by commas, each once (e.g. host,nfs,netpath)"
    return ""


def path_list(value: str) -> str:
    """Absolute directories separated by ':' (as PATH): netpath.containerd_state."""
    parts = [part for part in value.split(":") if part.strip()]
    if not parts or any(absolute_path(part.strip()) for part in parts):
        return "must be absolute directories separated by ':' (e.g. /run/k3s/containerd:/run/containerd)"
    return ""


_IMAGE = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
                    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")


def image_reference(value: str) -> str:
    """A container image reference (registry/repository[:tag][@sha256:digest]): netpath.probe_image, which
    goes into a pod spec verbatim, so anything the kubelet would refuse is refused here instead."""
    if len(value) > 512 or not _IMAGE.match(value):
        return ("must be an image reference such as "
                "730335576030.dkr.ecr.ap-south-1.amazonaws.com/sb-core:lab or busybox:1.36")
    return ""


def package_patterns(value: str) -> str:
    """dpkg-query package name patterns separated by spaces (uninstall.packages)."""
    words = value.split()
    if not words or any(not re.fullmatch(r"[a-z0-9*][a-z0-9+.*-]*", w) for w in words):
        return "must be package names or patterns (a-z, 0-9, + . - *) separated by spaces"
    return ""


def no_spaces(value: str) -> str:
    if any(c.isspace() for c in value) or control_characters(value):
        return "must not contain spaces or control characters"
    return ""


def number_between(low: float, high: float, *, low_open: bool = True) -> Rule:
    """Finite numbers in (low, high] (or [low, high]): nan and inf are never a timeout."""

    def rule(value: Any) -> str:
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if ok:
            return ""
        bracket = "greater than" if low_open else "at least"
        return f"must be a finite number {bracket} {low:g} and at most {high:g}"

    return rule


def port(value: int) -> str:
    return "" if 0 < value < 65536 else "must be a port number from 1 to 65535"


RULES: dict[str, Rule] = {
    "namespace": dns_label,
    "release": lambda v: dns_label(v, 53),
    "domain": optional(domain_name),
    "server_ip": optional(ip_address),
    "pod_network": ip_network,
    "ecr.registry": registry,
    "ecr.region": region,
    "ecr.secret": dns_subdomain,
    "tls.secret": dns_subdomain,
    "tls.namespace": dns_label,
    "timeout": number_between(0, 3600),
    "deadline": number_between(0, 86400),
    "journal": absolute_path,
    "runbook_url": runbook_url,
    "kubeconfig": file_path,
    "k3s.kubeconfig": absolute_path,
    "k3s.config_file": absolute_path,
    "k3s.unit_file": optional(absolute_path),
    "k8s.storage_class": dns_subdomain,
    "istio.namespace": dns_label,
    "istio.ingress_service": dns_label,
    "istio.gateway": dns_subdomain,
    "istio.virtualservice": dns_subdomain,
    "ecr.profile": no_spaces,
    "ecr.endpoint_url": optional(url),
    "ecr.warn_hours": number_between(0, 24 * 366),
    "ecr.token_file": file_path,
    "tls.warn_days": number_between(0, 3660),
    "tls.cert_file": file_path,
    "tls.key_file": file_path,
    "letsencrypt.certbot": command,
    "letsencrypt.server": optional(url),
    "letsencrypt.config_dir": absolute_path,
    "letsencrypt.work_dir": absolute_path,
    "letsencrypt.logs_dir": absolute_path,
    "letsencrypt.timer": unit_name,
    "letsencrypt.systemd_root": optional(absolute_path),
    "letsencrypt.hook_log": absolute_path,
    "app.url": optional(url),
    "helm.command": command,
    "host.disk_path": absolute_path,
    "host.kubelet_healthz": url,
    "host.containerd_socket": path_list,
    "host.ctr_command": command,
    "nfs.mount_helper": absolute_path,
    "mysql.admin_socket": absolute_path,
    "mysql.config_dir": optional(absolute_path),
    "mysql.service": optional(unit_name),
    "mysql.restart_command": optional(command),
    "mysql.source_address": optional(ip_address),
    "mongodb.config_file": absolute_path,
    "mongodb.service": unit_name,
    "mongodb.restart_command": optional(command),
    "rabbitmq.service": unit_name,
    "rabbitmq.ctl_command": command,
    "rabbitmq.plugins_command": command,
    "nfs.path": absolute_path,
    "nfs.exports_file": absolute_path,
    "nfs.exportfs_command": command,
    "netpath.containerd_state": path_list,
    "netpath.attempt_timeout": number_between(0, 600),
    "pods.rollout_timeout": number_between(0, 3600),
    "netpath.probe_image": optional(image_reference),
    "exporter.listen": listen,
    "exporter.web_config": file_path,
    "exporter.timeout": number_between(0, 3600),
    "exporter.timeout_offset": number_between(0, 60),
    "exporter.layers": optional(name_list),
    "agents.mysql": optional(https_url),
    "agents.mongodb": optional(https_url),
    "agents.username": no_spaces,
    "agents.password_file": absolute_path,
    "agents.ca_file": optional(absolute_path),
    "agents.timeout": number_between(0, 3600),
    "dbhost.listen": listen,
    "dbhost.layers": name_list,
    "dbhost.dir": absolute_path,
    "dbhost.username": no_spaces,
    "dbhost.systemd_root": optional(absolute_path),
    "cluster.namespace": dns_label,
    "cluster.agent_selector": no_spaces,
    "cluster.agent_port": port,
    "cluster.agent_scheme": lambda v: "" if v in ("http", "https") else "must be http or https",
    "cluster.agent_timeout": number_between(0, 3600),
    "cluster.node_layers": name_list,
    "install.state_file": absolute_path,
    "install.log_dir": absolute_path,
    "install.download_dir": absolute_path,
    "install.bin_dir": absolute_path,
    "install.unit_dir": absolute_path,
    "install.chart": no_spaces,
    "uninstall.packages": package_patterns,
    "uninstall.data_dirs": path_list,
    "uninstall.allowed_roots": path_list,
    "uninstall.apt_command": command,
    "uninstall.dpkg_query_command": command,
    "install.chart_version": no_spaces,
    "install.pod_timeout": number_between(0, 86400),
    "install.api_timeout": number_between(0, 86400),
    "cloudstack.url": optional(url),
    "cloudstack.mode": lambda v: "" if v in ("auto", "simulator", "existing", "none") else
    "must be auto, simulator, existing or none",
    "cloudstack.simulator_image": image_reference,
    "cloudstack.simulator_container": no_spaces,
    "cloudstack.podman_command": command,
    "cloudstack.request_lifetime": number_between(0, 86400),
    "cloudstack.wait_timeout": number_between(0, 86400),
    # install.mysql_flavour: `sbops install`'s validation names a wrong one (in its JSON document too)
}


def by_type(key: str, value: Any) -> str:
    """The rule of a setting that has none of its own."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        if key.rsplit(".", 1)[-1].endswith("port"):
            return port(value)
        return "" if 0 <= value <= 10**9 else "must be a whole number from 0 to 1000000000"
    if isinstance(value, float):
        return number_between(0, 10**9)(value)
    return plain_text(value)


def problem(key: str, value: Any) -> str:
    """'' when `value` (already of the setting's type) is acceptable for `key`, else what is wrong."""
    if key not in RULES or isinstance(value, str):
        found = by_type(key, value)
        if found or key not in RULES:
            return found
    return RULES[key](value)
