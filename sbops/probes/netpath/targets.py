"""What the pods are configured to reach: the Helm release's values, else the credentials file; and the
in-cluster Services the VirtualService routes to, at their ClusterIP (no cluster DNS from the host).

The values are the release record's chart defaults overlaid with the values it was installed with (Helm's
own merge: a map merges key by key, anything else replaces). The keys are the ones the installer passes
(sbops.install.kubernetes.chart_values): `global.mysql.ip`, `global.mongo.ip`, `global.rabbitmq.ip`,
`global.nfs.server`, with an optional `port` beside each `ip`; without one the service's standard port
(what the chart's templates use). Without a release, or without the key in it, the credentials file's
Host/Port (and NFS server) stand in, and the target says so: the pods are configured from the values, so a
difference between the two sources matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sbops.context import Context

# service -> (key under `global` in the values, the key of its address, its standard port)
VALUE_KEYS: dict[str, tuple[str, str, int]] = {
    "mysql": ("mysql", "ip", 3306),
    "mongodb": ("mongo", "ip", 27017),
    "rabbitmq": ("rabbitmq", "ip", 5672),
    "nfs": ("nfs", "server", 2049),
}
VALUES = "helm values"
CREDENTIALS = "credentials file"


@dataclass(frozen=True)
class Target:
    """One address to connect to, and where it came from (VALUES or CREDENTIALS)."""

    host: str
    port: int
    source: str
    key: str = ""  # the values key it came from (global.mysql.ip), or the credentials file's field

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def brief(self) -> dict[str, Any]:
        return {"address": self.address, "source": self.source, "key": self.key}


# ======================================================================================================
# Pure
# ======================================================================================================
def merge_values(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of user values over chart defaults: maps merge recursively; a user value replaces."""
    if isinstance(defaults, dict) and isinstance(overrides, dict):
        merged = dict(defaults)
        for key, value in overrides.items():
            merged[key] = merge_values(defaults.get(key), value) if key in defaults else value
        return merged
    return overrides if overrides is not None else defaults


def release_values(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The effective values of a decoded release record (chart.values overlaid with config); None without one."""
    if not record:
        return None
    defaults = (record.get("chart") or {}).get("values") or {}
    config = record.get("config") or {}
    merged = merge_values(defaults if isinstance(defaults, dict) else {}, config if isinstance(config, dict) else {})
    return merged if isinstance(merged, dict) else {}


def port_of(value: Any, default: int) -> int:
    """A values port (an int or a digit string, as --set writes it), else the default."""
    text = str(value).strip() if value is not None else ""
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    return default


def from_values(values: dict[str, Any] | None, service: str) -> Target | None:
    """The service's target in the release's values, None when the values do not name its address (pure)."""
    if not values:
        return None
    section, address_key, default_port = VALUE_KEYS[service]
    block = ((values.get("global") or {}) if isinstance(values.get("global"), dict) else {}).get(section)
    if not isinstance(block, dict):
        return None
    host = str(block.get(address_key) or "").strip()
    if not host:
        return None
    return Target(host, port_of(block.get("port"), default_port), VALUES, f"global.{section}.{address_key}")


def choose_target(values: dict[str, Any] | None, service: str, fallback: tuple[str, int] | None) -> Target | None:
    """The values' address, else the credentials file's (`fallback`: host, port), else None (pure)."""
    found = from_values(values, service)
    if found is not None:
        return found
    if fallback and fallback[0]:
        return Target(fallback[0], fallback[1], CREDENTIALS, "NFS Server" if service == "nfs" else "Host/Port")
    return None


@dataclass(frozen=True)
class Route:
    """One VirtualService destination and the Service it names."""

    route: str
    service: str
    port: int | None


def routed_services(vs: dict[str, Any] | None, namespace: str) -> list[Route]:
    """The VirtualService's destinations that are Services of `namespace`, each once (pure)."""
    from sbops.probes.istio import route_label, service_name

    out: list[Route] = []
    seen: set[tuple[str, int | None]] = set()
    for index, http in enumerate(((vs or {}).get("spec") or {}).get("http") or []):
        label = route_label(index, http)
        for route in http.get("route") or []:
            dest = route.get("destination") or {}
            name, svc_ns = service_name(str(dest.get("host") or ""), namespace)
            number = (dest.get("port") or {}).get("number")
            port = int(number) if isinstance(number, int) else None
            if svc_ns != namespace or not name or (name, port) in seen:
                continue
            seen.add((name, port))
            out.append(Route(label, name, port))
    return out


def service_targets(routes: list[Route], services: dict[str, dict[str, Any]]) -> tuple[list[Target], list[str]]:
    """ClusterIP:port of each routed Service, and why any route has no address to test (pure)."""
    targets: list[Target] = []
    untestable: list[str] = []
    for route in routes:
        service = services.get(route.service)
        if service is None:
            untestable.append(f"{route.service}: no such Service")
            continue
        spec = service.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if not ip or ip == "None":
            untestable.append(f"{route.service}: no ClusterIP (headless)")
            continue
        ports = [p.get("port") for p in spec.get("ports") or [] if isinstance(p.get("port"), int)]
        port = route.port if route.port is not None else (ports[0] if len(ports) == 1 else None)
        if port is None or port not in ports:
            untestable.append(f"{route.service}: no port {route.port if route.port is not None else '(unnamed)'}")
            continue
        targets.append(Target(ip, port, f"route {route.route}", route.service))
    return targets, untestable


# ======================================================================================================
# Observers
# ======================================================================================================
def values(ctx: "Context") -> dict[str, Any] | None:
    """The release's effective values, once per run (None when the release has no record)."""
    from sbops.probes import helm
    from sbops.probes import kubecommon as kc

    def read() -> dict[str, Any] | None:
        record = helm.latest_record(ctx, kc.namespace(ctx), str(ctx.settings["release"]))
        return release_values(record)

    return ctx.shared("netpath.values", read)


def fallback(ctx: "Context", service: str) -> tuple[str, int] | None:
    """The credentials file's address of a service (NFS: setting nfs.server, which the file fills)."""
    if service == "nfs":
        host = str(ctx.settings["nfs.server"] or "") or (ctx.server_ip if ctx.credentials is not None else "")
        return (host, int(ctx.settings["nfs.port"])) if host else None
    if ctx.credentials is None:
        return None
    return ctx.endpoint(service)  # its Host (else SERVER IP, as the installer fills the values) and Port


def target(ctx: "Context", service: str) -> Target | None:
    return choose_target(values(ctx), service, fallback(ctx, service))


def services(ctx: "Context") -> tuple[list[Route], list[Target], list[str]]:
    """The routes of the VirtualService (setting istio.virtualservice) and their Services' ClusterIPs."""
    from sbops.probes import istio
    from sbops.probes import kubecommon as kc

    namespace = kc.namespace(ctx)
    vs = istio.get_custom(ctx, istio.VIRTUALSERVICES, namespace, str(ctx.settings["istio.virtualservice"]))
    routes = routed_services(vs, namespace)
    if not routes:
        return [], [], []
    found = {s["metadata"]["name"]: s for s in kc.api(ctx).list(kc.path(namespace=namespace, plural="services"))}
    found_targets, untestable = service_targets(routes, found)
    return routes, found_targets, untestable
