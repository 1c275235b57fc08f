"""One Context per run: settings, credentials, the host runner and lazily created shared clients."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from sbops import credentials as creds_mod
from sbops.credentials import Credentials, Service
from sbops.errors import NeedsCredentials
from sbops.runner import HostRunner, SubprocessRunner
from sbops.secret import Secret
from sbops.settings import SECRET_KEYS, Settings

if TYPE_CHECKING:
    from sbops.kube import KubeSource

T = TypeVar("T")

SERVICES = ("mysql", "mongodb", "rabbitmq")


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Context:
    """What every probe gets. Clients are shared per run (one MySQL login, not one per check)."""

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None = None,
        credentials_path: Path | None = None,
        runner: HostRunner | None = None,
        kubeconfig_path: "KubeSource | None" = None,
    ) -> None:
        self.settings = with_credentials(settings, credentials)
        self.kubeconfig_path = kubeconfig_path
        self.credentials = credentials
        self.credentials_path = credentials_path
        self.runner: HostRunner = runner or SubprocessRunner()
        self._shared: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def load(
        cls, config: str | None = None, credentials: str | None = None, flags: dict[str, Any] | None = None,
        runner: HostRunner | None = None,
    ) -> "Context":
        """Build from --config/--credentials/flags; bad files raise UsageError naming file and line."""
        from sbops import kube

        settings = Settings.load(config, flags=flags)
        path = creds_mod.find(credentials)
        loaded = creds_mod.load(path) if path else None
        for warning in loaded.warnings if loaded else ():
            sys.stderr.write(f"warning: {warning}\n")  # never a password: the warnings name keys and lines
        return cls(settings, loaded, path, runner, kube.find(settings["kubeconfig"]))

    # -- timeouts ---------------------------------------------------------------------------------
    @property
    def timeout(self) -> float:
        return float(self.settings["timeout"])

    @property
    def net_timeout(self) -> float:
        """Connect/read timeout for clients: a little under the check's timeout so the probe reports it."""
        return max(0.2, min(self.timeout * 0.8, self.timeout - 0.3))

    # -- credentials ------------------------------------------------------------------------------
    def require_credentials(self) -> Credentials:
        if self.credentials is None:
            looked = ", ".join(dict.fromkeys(str(p) for p in creds_mod.DEFAULT_PATHS))
            raise NeedsCredentials(f"no credentials file (looked in {looked}; use --credentials FILE)")
        return self.credentials

    def service(self, name: str) -> Service:
        """The MYSQL/MONGODB/RABBITMQ section, or an empty one when there is no credentials file."""
        if self.credentials is None:
            return Service()
        return getattr(self.credentials, name)

    def password(self, name: str) -> Secret:
        secret = self.service(name).password
        if not secret:
            self.require_credentials()
            raise NeedsCredentials(f"{self.credentials_path}: no Password line in the {name.upper()} section")
        return secret

    @property
    def server_ip(self) -> str:
        """Settings' server_ip, else the credentials file's SERVER IP, else this host's primary address."""
        if self.settings["server_ip"]:
            return self.settings["server_ip"]
        if self.credentials and self.credentials.server_ip:
            return self.credentials.server_ip
        return primary_ip()

    def endpoint(self, name: str) -> tuple[str, int]:
        """Host and port of a service: the credentials file's Host/Port, else the server IP and setting."""
        service = self.service(name)
        return service.host or self.server_ip, service.port or int(self.settings[f"{name}.port"])

    def is_local(self, host: str) -> bool:
        """Whether `host` is this machine (host-level checks such as listeners only apply then)."""
        if host in ("localhost", "::1") or host.startswith("127."):
            return True
        return host in local_addresses()

    def secrets(self) -> list[Secret]:
        found = list(self.credentials.secrets()) if self.credentials else []
        for key in sorted(SECRET_KEYS):
            value = self.settings[key]
            if value and value not in found and value.reveal() not in creds_mod.PUBLISHED_DEFAULTS:
                found.append(self.settings[key])
        return found

    # -- shared clients ---------------------------------------------------------------------------
    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """Create once per run and share; a factory's exception is remembered and re-raised."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._shared:
                try:
                    self._shared[key] = factory()
                except Exception as exc:  # noqa: BLE001 - remembered, re-raised to every caller
                    self._shared[key] = _Failed(exc)
            value = self._shared[key]
        if isinstance(value, _Failed):
            raise value.exc
        return value

    def forget(self, key: str) -> None:
        """Drop a shared client (after a fix changed what it observed), closing it."""
        with self._guard:
            value = self._shared.pop(key, None)
        _close(value)

    def close(self) -> None:
        with self._guard:
            values = list(self._shared.values())
            self._shared.clear()
        for value in values:
            _close(value)


def _close(value: Any) -> None:
    closer = getattr(value, "close", None)
    if callable(closer) and not isinstance(value, _Failed):
        try:
            closer()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def default_route_interfaces(route_table: str) -> list[str]:
    """The interfaces of the IPv4 default routes in `/proc/net/route`'s text, lowest metric first.

    Pure parser: columns are Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask, ...; a default
    route has destination and mask 00000000 and the RTF_UP flag (0x1).
    """
    routes: list[tuple[int, str]] = []
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, _gateway, flags, _refcnt, _use, metric, mask = fields[:8]
        try:
            up = int(flags, 16) & 0x1
            metric_value = int(metric)
        except ValueError:
            continue
        if destination == "00000000" and mask == "00000000" and up:
            routes.append((metric_value, iface))
    return [iface for _, iface in sorted(routes)]


def choose_primary_ip(route_interfaces: list[str], addresses: dict[str, list[str]]) -> str:
    """The first IPv4 address of the default route's interface; without a default route, the first
    non-loopback address of an interface that is not a bridge or overlay of the container network
    (a K3s host's `cni0`, `flannel.1`, `veth*`); finally loopback. Pure: tested from tables."""
    for iface in route_interfaces:
        usable = [a for a in addresses.get(iface, []) if not a.startswith("127.")]
        if usable:
            return usable[0]
    container_nets = ("cni", "flannel", "veth", "docker", "kube-", "cali", "vxlan", "tunl", "podman")
    for iface, addrs in addresses.items():
        if iface == "lo" or iface.startswith(container_nets):
            continue
        for addr in addrs:
            if not addr.startswith("127."):
                return addr
    return "127.0.0.1"


def with_credentials(settings: Settings, credentials: Credentials | None) -> Settings:
    """Settings the credentials file provides (NFS server and path, the CloudStack simulator's URL, user and
    keys) fill the keys nothing else set: defaults < credentials file < config file < env < flags. Each
    keeps its file and line as its source, so `sbops config show` can say where it came from."""
    if credentials is None:
        return settings
    for key, (value, line) in creds_mod.settings_values(credentials).items():
        source = settings.source(key)
        # a value from an earlier read of the same file is replaced (a fix rewrote the file: the re-check reads it)
        if source == "default" or (credentials.path is not None and source.split(":")[0] == str(credentials.path)):
            where = f"{credentials.path}:{line}" if line else str(credentials.path)
            settings = settings.overridden({key: value}, where)
    return settings


def primary_ip() -> str:
    """The address of the default route's interface, read from the kernel's routing table (as
    `ip route get` would pick it), not the first address psutil happens to list: on a K3s host that can be
    `cni0` or `flannel.1`. Close to the installer's `hostname -I | awk '{print $1}'` on a plain host."""
    try:
        with open("/proc/net/route") as handle:
            interfaces = default_route_interfaces(handle.read())
    except OSError:
        interfaces = []
    try:
        import psutil

        addresses = {
            name: [a.address for a in addrs if a.family == socket.AF_INET]
            for name, addrs in psutil.net_if_addrs().items()
        }
    except Exception:  # noqa: BLE001 - fall back to loopback
        addresses = {}
    return choose_primary_ip(interfaces, addresses)


def local_addresses() -> set[str]:
    import psutil

    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
