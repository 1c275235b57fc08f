"""Effective settings: defaults from ARCHITECTURE.md < config file < environment < flags.

Every value remembers where it came from, so `sbops config show` can say so.
Keys are dotted (`mysql.port`); the YAML file may nest them (`mysql: {port: 3306}`).
The environment variable for `mysql.admin_socket` is `SBOPS_MYSQL_ADMIN_SOCKET`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from sbops.errors import UsageError
from sbops.secret import Secret

DEFAULT_CONFIG = Path("/etc/sbops/config.yaml")

# key: (default, help). The default's type is the setting's type. Secrets default to "" and are listed in SECRET_KEYS.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "namespace": ("sb-apps", "Kubernetes namespace of the StackBill workloads"),
    "release": ("stackbill", "Helm release name"),
    "domain": ("", "the portal's domain (PORTAL URL of the credentials file when empty)"),
    "server_ip": ("", "this server's address pods use to reach the databases (SERVER IP of the credentials file, else auto)"),
    "pod_network": ("10.42.0.0/16", "K3s pod network; database grants target it (never the NFS export: the kubelet mounts from node addresses)"),
    "nodeport_http": (31443, "ingress gateway HTTP NodePort for new installs (a live Service's own ports win)"),
    "nodeport_https": (31882, "ingress gateway HTTPS NodePort for new installs (a live Service's own ports win)"),
    "ecr.registry": ("730335576030.dkr.ecr.ap-south-1.amazonaws.com", "ECR registry of the StackBill images"),
    "ecr.region": ("ap-south-1", "AWS region of the ECR registry"),
    "ecr.secret": ("awscred", "image pull secret in the namespace"),
    "tls.secret": ("istio-ingressgateway-certs", "the Gateway's credentialName"),
    "tls.namespace": ("istio-system", "namespace of the ingress gateway (where credentialName is looked up)"),
    "timeout": (5.0, "seconds each check may take"),
    "deadline": (30.0, "seconds the whole doctor run may take"),
    "journal": ("/var/lib/sbops/journal.log", "where applied fixes are recorded"),
    "runbook_url": ("https://github.com/sbops/sbops/blob/main/runbooks/{id}.md", "link to a check's runbook"),
    "kubeconfig": ("", "kubeconfig (else $KUBECONFIG, the pod's ServiceAccount in a pod, ~/.kube/config, /etc/rancher/k3s/k3s.yaml)"),
    # kubernetes and workloads
    "k3s.kubeconfig": ("/etc/rancher/k3s/k3s.yaml", "the kubeconfig K3s writes (cluster-admin): k8s.kubeconfig-mode checks it is root's, 0600"),
    "k3s.config_file": ("/etc/rancher/k3s/config.yaml", "K3s's configuration file (its config.yaml.d drop-ins beside it): write-kubeconfig-mode, disable"),
    "k3s.unit_file": ("", "K3s's systemd unit, read for its ExecStart flags (empty: <install.unit_dir>/k3s.service; its .env file beside it)"),
    "k8s.storage_class": ("nfs-client", "StorageClass the chart's PVCs use"),
    "k8s.provisioner_label": ("app=nfs-subdir-external-provisioner", "label selector of the NFS provisioner pod (any namespace)"),
    "pods.restart_threshold": (5, "pods.restarts warns above this many restarts of a container"),
    "pods.rollout_timeout": (180.0, "seconds restart-workload waits for its rollout (new pods Ready, old pods gone) "
                                    "before re-checking, as `kubectl rollout status` would"),
    # istio
    "istio.namespace": ("istio-system", "namespace of istiod and the ingress gateway"),
    "istio.ingress_service": ("istio-ingressgateway", "the ingress gateway Service"),
    "istio.gateway": ("stackbill-gateway", "the Gateway in the namespace"),
    "istio.virtualservice": ("stackbill-vs", "the VirtualService in the namespace"),
    # ecr
    "ecr.profile": ("", "AWS profile for ecr-refresh (empty: boto3's default chain)"),
    "ecr.endpoint_url": ("", "ECR API endpoint override (tests, VPC endpoints)"),
    "ecr.warn_hours": (2.0, "ecr.expiry warns with fewer hours left"),
    "ecr.token_file": ("", "ecr-refresh reads the token (or get-login-password output) from this file, '-' = stdin; empty: $AWS_ECR_TOKEN, else the AWS API"),
    # tls
    "tls.warn_days": (14.0, "tls.certificate warns with fewer days left"),
    "tls.cert_file": ("", "tls-secret: PEM certificate (full chain, leaf first) to install"),
    "tls.key_file": ("", "tls-secret: PEM private key of tls.cert_file"),
    # letsencrypt (sbops install --letsencrypt, the tls.renewal check, the tls-deploy-lineage fix)
    "letsencrypt.certbot": ("certbot", "the certbot program (Debian's certbot package)"),
    "letsencrypt.server": ("", "ACME directory URL certbot uses (empty: certbot's default, Let's Encrypt production)"),
    "letsencrypt.http01_port": (80, "port certbot --standalone listens on for the HTTP-01 challenge"),
    "letsencrypt.config_dir": ("/etc/letsencrypt", "certbot's --config-dir: live/<domain>/, renewal/, renewal-hooks/deploy/"),
    "letsencrypt.work_dir": ("/var/lib/letsencrypt", "certbot's --work-dir"),
    "letsencrypt.logs_dir": ("/var/log/letsencrypt", "certbot's --logs-dir"),
    "letsencrypt.timer": ("certbot.timer", "the systemd timer that runs `certbot renew` (Debian's certbot package ships it)"),
    "letsencrypt.systemd_root": ("", "empty: the running system; a directory: `systemctl --root DIR` reads and enables "
                                     "the timer there, offline (tests, images)"),
    "letsencrypt.hook_log": ("/var/log/sbops/letsencrypt-deploy.log", "where the deploy hook logs what it did (no secrets)"),
    # app
    "app.url": ("", "base URL of the portal (default https://<server_ip>:<the live HTTPS nodePort>)"),
    "app.verify_tls": (False, "verify the portal's certificate in app.* checks"),
    # helm
    "helm.command": ("helm", "helm binary used by helm-rollback"),
    # host
    "host.min_cpus": (8, "POC minimum vCPUs"),
    "host.min_memory_gb": (16, "POC minimum memory, GB"),
    "host.min_disk_gb": (100, "POC minimum free disk, GB"),
    "host.disk_path": ("/", "filesystem whose free space host.resources measures"),
    "host.kubelet_healthz": ("http://127.0.0.1:10248/healthz", "the kubelet's health endpoint host.kubelet asks (its --healthz-bind-address and --healthz-port)"),
    "host.containerd_socket": ("/run/k3s/containerd/containerd.sock:/run/containerd/containerd.sock", "containerd sockets host.containerd looks for, ':'-separated; the first that exists is used (K3s's, then plain containerd's)"),
    "host.ctr_command": ("ctr", "ctr, which host.containerd asks for containerd's version (K3s: `k3s ctr`); missing: the version is shown as unknown"),
    # mysql
    "mysql.port": (3306, "MySQL port when the credentials file gives none"),
    "mysql.admin_user": ("root", "administrative MySQL user used by checks that need it and by fixes"),
    "mysql.admin_password": ("", "its password (env SBOPS_MYSQL_ADMIN_PASSWORD); empty: socket authentication"),
    "mysql.admin_socket": ("/run/mysqld/mysqld.sock", "unix socket for the admin login"),
    "mysql.config_dir": ("", "where the stackbill.cnf drop-in goes (auto: MySQL or MariaDB layout)"),
    "mysql.defaults_file": ("", "the server's first option file (auto: its --defaults-file, else /etc/my.cnf, /etc/mysql/my.cnf)"),
    "mysql.service": ("", "systemd unit (auto: mysql or mariadb)"),
    "mysql.restart_command": ("", "command that restarts the server (default: systemctl restart <service>)"),
    "mysql.source_address": ("", "local address sbops's own TCP logins come from (empty: the kernel's choice)"),
    # mongodb
    "mongodb.port": (27017, "MongoDB port when the credentials file gives none"),
    "mongodb.admin_user": ("", "MongoDB admin user for fixes (empty: the localhost exception)"),
    "mongodb.admin_password": ("", "its password (env SBOPS_MONGODB_ADMIN_PASSWORD)"),
    "mongodb.config_file": ("/etc/mongod.conf", "mongod configuration file"),
    "mongodb.service": ("mongod", "systemd unit"),
    "mongodb.restart_command": ("", "command that restarts mongod (default: systemctl restart <service>)"),
    # rabbitmq
    "rabbitmq.port": (5672, "AMQP port when the credentials file gives none"),
    "rabbitmq.management_port": (15672, "management HTTP API port"),
    "rabbitmq.service": ("rabbitmq-server", "systemd unit"),
    "rabbitmq.ctl_command": ("rabbitmqctl", "rabbitmqctl (a wrapper may set the node's environment)"),
    "rabbitmq.plugins_command": ("rabbitmq-plugins", "rabbitmq-plugins"),
    # nfs
    "nfs.path": ("/data/stackbill", "exported directory"),
    "nfs.exports_file": ("/etc/exports", "exports table"),
    "nfs.port": (2049, "NFS server port"),
    "nfs.exportfs_command": ("exportfs", "exportfs"),
    "nfs.mount_helper": ("/sbin/mount.nfs", "the NFS mount helper mount(8) runs for the kubelet; nfs.client checks it on each node"),
    "nfs.min_free_gb": (10, "free space below which nfs.directory warns, GB"),
    # netpath (checks made from inside a pod's network namespace)
    "netpath.containerd_state": ("/run/k3s/containerd:/run/containerd", "containerd state directories to look for pod sandboxes in, ':'-separated; the first that exists is used (K3s's, then plain containerd's)"),
    "netpath.attempt_timeout": (2.0, "seconds each connection attempt from inside a pod may take (capped by the check's timeout)"),
    "netpath.probe_image": ("", "image of a short-lived probe pod (busybox sh, nc, wget) the netpath checks start when sbops cannot enter a pod's network namespace (not root, or not on the node); empty: off, they skip"),
    # exporter
    "exporter.listen": ("127.0.0.1:29100", "HOST:PORT `sbops exporter` listens on (README: why 29100)"),
    "exporter.web_config": ("", "exporter-toolkit web-config file: TLS and basic auth (empty: plain HTTP, no auth)"),
    "exporter.timeout": (10.0, "seconds a scrape may take at most (Prometheus's scrape timeout header lowers it)"),
    "exporter.timeout_offset": (0.5, "seconds kept free of Prometheus's scrape timeout for sending the answer"),
    "exporter.layers": ("", "layers the exporter serves, comma-separated (/metrics runs them, /probe accepts only them; empty: all). The chart's node agent serves host,nfs,netpath and its cluster Deployment the rest"),
    # sbops doctor --cluster: the chart's node agents, asked through the API server's pod proxy
    "cluster.namespace": ("sbops", "namespace of the sbops agent pods (the chart's release namespace)"),
    "cluster.agent_selector": ("app.kubernetes.io/name=sbops,app.kubernetes.io/component=agent", "label selector of the agent pods"),
    "cluster.agent_port": (29110, "port the agents serve on (the chart's agent.port)"),
    "cluster.agent_scheme": ("http", "http, or https when the agents have a web-config with TLS"),
    "cluster.agent_timeout": (15.0, "seconds each agent may take to answer (agents are asked at once)"),
    "cluster.node_layers": ("host,nfs,netpath", "layers whose checks are the nodes' (asked of each agent, one row per node); the other layers run here"),
    # database hosts of their own: the sbops agent on each (sbops install --role database-host)
    "agents.mysql": ("", "URL of the sbops agent on MySQL's host, https://HOST:29120 (asked when the credentials file's MySQL Host is not this machine)"),
    "agents.mongodb": ("", "URL of the sbops agent on MongoDB's host, https://HOST:29120"),
    "agents.username": ("sbops", "basic-auth user of the agents (the database host's dbhost.username)"),
    "agents.password_file": ("/etc/sbops/agent-password", "file (0600) holding the agents' basic-auth password (a copy of the database host's <dbhost.dir>/password)"),
    "agents.ca_file": ("", "CA file that verifies the agents' certificates (a copy of the database host's <dbhost.dir>/agent.crt); empty: the system's CAs"),
    "agents.timeout": (10.0, "seconds an agent may take to answer (capped by the check's timeout)"),
    "dbhost.listen": ("0.0.0.0:29120", "HOST:PORT the database host's agent serves on, over TLS"),
    "dbhost.layers": ("mysql,mongodb,rabbitmq", "layers the database host's agent serves"),
    "dbhost.dir": ("/etc/sbops/agent", "the agent's certificate, key, password file and web-config"),
    "dbhost.username": ("sbops", "the agent's basic-auth user"),
    "dbhost.systemd_root": ("", "empty: the running system; a directory: the agent's unit is written and enabled with `systemctl --root DIR`, offline (tests, images)"),
    # install
    "install.state_file": ("/var/lib/sbops/install-state.json", "where `sbops install` records its progress, for --resume"),
    "install.log_dir": ("/var/log/sbops", "where `sbops install` writes one log per run (--log-file overrides)"),
    "install.download_dir": ("/var/lib/sbops/downloads", "downloaded artifacts (sha256-verified), reused by later runs"),
    "install.bin_dir": ("/usr/local/bin", "where the installer puts k3s, helm and istioctl"),
    "install.unit_dir": ("/etc/systemd/system", "where the installer writes systemd units (k3s, the ECR refresher)"),
    "install.chart": ("oci://public.ecr.aws/p0g2c5k8/stackbill", "the StackBill Helm chart: an OCI or repository reference, a chart directory or a .tgz"),
    "install.chart_version": ("", "chart version to install (empty: the newest the reference gives)"),
    "install.pod_timeout": (600.0, "seconds the wait-pods step waits for every pod to be Ready"),
    "install.api_timeout": (300.0, "seconds to wait for the K3s API, its node and istiod after installing them"),
    "install.mysql_flavour": ("auto", "packages when MySQL must be installed: mysql, mariadb, or auto (mysql on Ubuntu, mariadb on Debian)"),
    "install.ecr_refresher": (True, "install the ECR refresher timer when the token comes from AWS credentials (not a supplied token)"),
    "install.exporter": (True, "install and start `sbops exporter` as a systemd service (exporter.listen, 127.0.0.1:29100 by default)"),
    # uninstall --purge-packages / --delete-data-dirs
    "uninstall.packages": ("mariadb-server* mysql-server* mongodb-org* rabbitmq-server nfs-kernel-server", "dpkg-query patterns of the packages --purge-packages purges (only the installed names they match are purged)"),
    "uninstall.data_dirs": ("/var/lib/mysql:/etc/mysql:/var/lib/mongodb:/var/lib/rabbitmq:/etc/rabbitmq", "':'-separated directories --delete-data-dirs deletes, with nfs.path (each must be below uninstall.allowed_roots, reached without a symlink, and used by no running process)"),
    "uninstall.allowed_roots": ("/var/lib:/etc:/data", "':'-separated directories the data directories must be strictly below"),
    "uninstall.apt_command": ("apt-get", "the package manager --purge-packages runs as `<it> purge -y NAMES` (with DEBIAN_FRONTEND=noninteractive)"),
    "uninstall.dpkg_query_command": ("dpkg-query", "dpkg-query, which measures the installed packages"),
    # read from the credentials file when not set elsewhere (NFS: and CLOUDSTACK SIMULATOR: sections)
    "nfs.server": ("", "the NFS server's address (NFS Server of the credentials file, else server_ip)"),
    "cloudstack.url": ("", "the CloudStack UI's URL, http://HOST:8080/client; the API is <url>/api (CLOUDSTACK SIMULATOR URL of the credentials file)"),
    "cloudstack.username": ("", "StackBill's CloudStack user (StackBill User of the credentials file)"),
    "cloudstack.password": ("", "its password (env SBOPS_CLOUDSTACK_PASSWORD)"),
    "cloudstack.api_key": ("", "its API key (env SBOPS_CLOUDSTACK_API_KEY)"),
    "cloudstack.secret_key": ("", "its secret key (env SBOPS_CLOUDSTACK_SECRET_KEY)"),
    "cloudstack.admin_user": ("", "a CloudStack admin that can look users up and manage their keys (Default Admin of the credentials file)"),
    "cloudstack.admin_password": ("", "its password (env SBOPS_CLOUDSTACK_ADMIN_PASSWORD)"),
    # cloudstack
    "cloudstack.mode": ("auto", "simulator (the Podman container), existing (a CloudStack elsewhere), none, or auto: simulator when the credentials file has the CLOUDSTACK SIMULATOR section, existing when cloudstack.url is set, else none"),
    "cloudstack.simulator_image": ("docker.io/apache/cloudstack-simulator", "the simulator image `install --cloudstack simulator` runs"),
    "cloudstack.simulator_container": ("cloudstack-simulator", "the simulator's Podman container"),
    "cloudstack.simulator_port": (8080, "host port the simulator is published on"),
    "cloudstack.simulator_container_port": (5050, "the port the simulator serves inside its container (the script publishes 8080:5050)"),
    "cloudstack.podman_command": ("podman", "podman"),
    "cloudstack.request_lifetime": (600.0, "seconds a signed request is valid (signatureVersion 3 `expires`); a server clock ahead by more rejects every request"),
    "cloudstack.wait_timeout": (300.0, "seconds `install --cloudstack simulator` waits for the simulator to answer listZones"),
}

SECRET_KEYS = frozenset({"mysql.admin_password", "mongodb.admin_password",
                         "cloudstack.password", "cloudstack.api_key", "cloudstack.secret_key",
                         "cloudstack.admin_password"})

# Flags whose name is not the setting's (errors and `config show` name the flag the user typed).
FLAG_NAMES = {"exporter.listen": "--listen", "exporter.layers": "--layers", "exporter.web_config": "--web-config", "exporter.timeout": "--scrape-timeout"}


def env_name(key: str) -> str:
    return "SBOPS_" + key.upper().replace(".", "_").replace("-", "_")


@dataclass(frozen=True)
class Value:
    value: Any
    source: str  # "default", "<file>:<line>", "env SBOPS_X", "flag --x"


def _describe(key: str, raw: Any) -> str:
    """The offending value for an error line: never a secret's, and short."""
    if key in SECRET_KEYS:
        return "(value not shown: a secret)"
    text = repr(raw)
    return f"got {text[:80]}{'...' if len(text) > 80 else ''}"


def _typed(key: str, raw: Any) -> Any:
    """`raw` as the setting's type; ValueError/TypeError/OverflowError when it is not one."""
    default = DEFAULTS[key][0]
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(default, int):
        if isinstance(raw, bool) or raw is None:
            raise ValueError(raw)
        if isinstance(raw, float):
            if not raw.is_integer():  # int(.inf) raises OverflowError, int(2.5) would silently be 2
                raise ValueError(raw)
            return int(raw)
        return int(str(raw).strip()) if isinstance(raw, str) else int(raw)
    if isinstance(default, float):
        if isinstance(raw, bool) or raw is None:
            raise ValueError(raw)
        return float(raw)  # nan, inf and <= 0 are refused by the setting's rule, with its range
    if raw is None:
        return ""
    if not isinstance(raw, (str, int, float)):
        raise TypeError(raw)
    return str(raw)


def _convert(key: str, raw: Any, where: str) -> Any:
    """The setting's value from a file, the environment or a flag, checked against its type and its rule
    (settings_rules): UsageError naming `where` and the key, never showing a secret."""
    from sbops import settings_rules

    default = DEFAULTS[key][0]
    try:
        value = _typed(key, raw)
    except (TypeError, ValueError, OverflowError):
        if isinstance(raw, (dict, list, tuple, set, bytes)) and isinstance(default, str):
            raise UsageError(f"{where}: {key} must be a single value") from None
        kind = {"str": "string"}.get(type(default).__name__, type(default).__name__)
        raise UsageError(f"{where}: {key} must be a{'n' if kind == 'int' else ''} {kind}, {_describe(key, raw)}") from None
    problem = settings_rules.problem(key, value)
    if problem:
        raise UsageError(f"{where}: {key} {problem}, {_describe(key, value)}")
    return value


MAX_DEPTH = 16  # settings nest two levels; deeper YAML is refused before it is composed


def yaml_tree(path: Path, text: str) -> Any:
    """The YAML node tree of `text`; errors (syntax, nesting, aliases) as one line naming file and line."""
    import yaml

    def fail(exc: Exception) -> UsageError:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        return UsageError(f"{path}{line}: invalid YAML: {problem}")

    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UsageError(f"{path}:{event.start_mark.line + 1}: invalid YAML: nested more than "
                                     f"{MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise fail(exc) from None
    except RecursionError:
        raise UsageError(f"{path}: invalid YAML: nested too deeply") from None


# Tags a plain YAML scalar resolves to: a string setting takes the text as written (`password: 0123` is
# "0123", not the octal 83; `admin_user: yes` is "yes"). Other tags (!!binary, !!set, !custom) are refused.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "timestamp"))
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(key: str, node: Any, where: str) -> Any:
    """A value node as Python data for `key`: a string setting's text as written, other types through
    PyYAML's safe constructor. Collections, aliases to them and unknown tags are usage errors."""
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise UsageError(f"{where}: {key} must be a single value, not a YAML "
                         f"{'mapping' if isinstance(node, yaml.MappingNode) else 'list'}")
    implicit = _STR_TAG if node.style else yaml.SafeLoader("").resolve(yaml.ScalarNode, node.value, (True, False))
    if isinstance(DEFAULTS[key][0], str):
        if node.tag not in (implicit, _STR_TAG):  # `!!binary ...`, `!!int abc`, `!custom`: not a plain string
            raise UsageError(f"{where}: {key} must be a plain string (YAML tag {node.tag} is not allowed)")
        return None if node.tag == _NULL_TAG else node.value
    if node.tag == _NULL_TAG:
        return None
    if node.tag not in _PLAIN_TAGS:
        raise UsageError(f"{where}: {key}: YAML tag {node.tag} is not allowed")
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except Exception:  # noqa: BLE001 - PyYAML's constructors raise IndexError, ValueError... on odd scalars
        raise UsageError(f"{where}: {key} must be a{'n' if type(DEFAULTS[key][0]) is int else ''} "
                         f"{type(DEFAULTS[key][0]).__name__}, {_describe(key, node.value)}") from None


def _read_config_file(path: Path) -> dict[str, tuple[Any, int]]:
    """Parse the YAML config into {dotted key: (value, line)}; errors name the file and line."""
    import yaml

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    root = yaml_tree(path, text)
    out: dict[str, tuple[Any, int]] = {}
    if root is None:
        return out
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:{root.start_mark.line + 1}: config must be a mapping of settings")
    prefixes = {k.rsplit(".", i)[0] + "." for k in DEFAULTS for i in range(1, k.count(".") + 1)}

    def walk(node: Any, prefix: str) -> None:
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _PLAIN_TAGS:
                raise UsageError(f"{path}:{line}: a setting's name must be a plain word")
            key = f"{prefix}{key_node.value}"
            if key not in DEFAULTS and isinstance(value_node, yaml.MappingNode) and key + "." in prefixes:
                walk(value_node, key + ".")
                continue
            if key not in DEFAULTS:
                raise UsageError(f"{path}:{line}: unknown setting '{key}'")
            out[key] = (_scalar(key, value_node, f"{path}:{line}"), line)

    walk(root, "")
    return out


class Settings:
    """Read-only view of the effective settings with their sources."""

    def __init__(self, values: dict[str, Value], config_path: Path | None) -> None:
        self._values = values
        self.config_path = config_path

    def __getitem__(self, key: str) -> Any:
        value = self._values[key].value
        return Secret(value) if key in SECRET_KEYS else value

    def source(self, key: str) -> str:
        return self._values[key].source

    def items(self) -> list[tuple[str, Any, str]]:
        return [(k, self[k], v.source) for k, v in self._values.items()]

    def overridden(self, values: Mapping[str, Any], source: str) -> "Settings":
        """A copy with some values replaced by code (the exporter's per-scrape timeout); `source` says who."""
        changed = dict(self._values)
        for key, value in values.items():
            changed[key] = Value(_convert(key, value, source), source)
        return Settings(changed, self.config_path)

    @classmethod
    def load(
        cls,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> "Settings":
        env = os.environ if env is None else env
        values = {k: Value(d, "default") for k, (d, _) in DEFAULTS.items()}
        path: Path | None = None
        if config:
            path = Path(config)
            where = "--config"
        elif env.get("SBOPS_CONFIG"):
            path = Path(env["SBOPS_CONFIG"])
            where = "SBOPS_CONFIG"
        elif DEFAULT_CONFIG.exists():
            path = DEFAULT_CONFIG
            where = ""
        if path is not None:
            if not path.exists():
                raise UsageError(f"{path}: config file not found (from {where})")
            for key, (raw, line) in _read_config_file(path).items():
                values[key] = Value(_convert(key, raw, f"{path}:{line}"), f"{path}:{line}")
        for key in DEFAULTS:
            name = env_name(key)
            if name in env:
                values[key] = Value(_convert(key, env[name], f"env {name}"), f"env {name}")
        for key, raw in (flags or {}).items():
            if raw is None:
                continue
            flag = FLAG_NAMES.get(key) or "--" + key.replace(".", "-").replace("_", "-")
            values[key] = Value(_convert(key, raw, flag), f"flag {flag}")
        return cls(values, path)
