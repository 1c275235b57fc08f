"""Istio: istiod, the ingress gateway Service and its nodePorts, the Gateway and the VirtualService.

Observers read the API (sbops.kuberest, imported inside functions, via sbops.probes.kubecommon) and
return plain kubectl-style dicts (camelCase keys); judgements are pure functions of those dicts (unit
tested from tables); the desired Gateway/VirtualService are built from settings as ORIGINAL-INSTALLER.md
and ARCHITECTURE.md define them, and a pure differ turns desired vs observed into Changes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sbops.messages import istio as msg
from sbops.model import Change, Plan, Result
from sbops.probes import kubecommon

if TYPE_CHECKING:
    from sbops.context import Context

GROUP, VERSION = "networking.istio.io", "v1beta1"
GATEWAYS, VIRTUALSERVICES = "gateways", "virtualservices"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
ISTIOD_LABEL = "app=istiod"
CLUSTER_SUFFIX = "svc.cluster.local"

# The VirtualService routes ORIGINAL-INSTALLER.md and ARCHITECTURE.md give: (prefix, service, port).
ROUTES: tuple[tuple[str, str, int], ...] = (
    ("/admin", "sb-admin", 80),
    ("/portal", "sb-ui", 80),
    ("/api", "sb-kong", 8000),
    ("/core", "sb-core", 8080),
)


# ======================================================================================================
# Small pure helpers
# ======================================================================================================
def pod_ready(pod: dict[str, Any]) -> bool:
    """A pod is ready when its Ready condition is True (what Endpoints and kubectl use)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_brief(pod: dict[str, Any]) -> dict[str, Any]:
    """Evidence for one pod: name, phase, readiness and any waiting/terminated container reasons."""
    status = pod.get("status") or {}
    waiting = []
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for kind in ("waiting", "terminated"):
            if state.get(kind) and state[kind].get("reason"):
                waiting.append(f"{cs.get('name')}: {state[kind]['reason']}")
    return {"name": (pod.get("metadata") or {}).get("name", "?"), "phase": status.get("phase", "?"),
            "ready": pod_ready(pod), "containers": waiting}


def host_matches(pattern: str, domain: str) -> bool:
    """Istio host matching: exact, "*", or "*.suffix"; an optional "namespace/" prefix is ignored."""
    pattern = pattern.split("/", 1)[1] if "/" in pattern else pattern
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern == "*" or pattern == domain:
        return True
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:]) and domain != pattern[2:]
    return False


def hosts_cover(hosts: Iterable[str], domain: str) -> bool:
    return any(host_matches(h, domain) for h in hosts or ())


def label_selector(selector: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))


# ======================================================================================================
# istio.istiod
# ======================================================================================================
def judge_istiod(deployments: list[dict[str, Any]], pods: list[dict[str, Any]], namespace: str) -> Result:
    """missing: no Deployment and no pod labelled app=istiod; not_ready: none of its pods is Ready."""
    names = [(d.get("metadata") or {}).get("name", "?") for d in deployments]
    if not deployments and not pods:
        return msg.ISTIOD_MISSING.result(label=ISTIOD_LABEL, namespace=namespace, details={"namespace": namespace})
    ready = [p for p in pods if pod_ready(p)]
    details = {"namespace": namespace, "deployments": names, "pods": [pod_brief(p) for p in pods]}
    if not ready:
        what = f"{len(pods)} pod(s), none Ready" if pods else "no pods"
        return msg.ISTIOD_NOT_READY.result(namespace=namespace, what=what, details=details)
    return msg.ISTIOD_READY.result(namespace=namespace, ready=len(ready), count=len(pods), details=details)


# ======================================================================================================
# istio.ingress
# ======================================================================================================
def find_port(ports: list[dict[str, Any]], name: str, number: int) -> dict[str, Any] | None:
    """The Service port by name (http2 / https), else by port number (80 / 443)."""
    for port in ports:
        if port.get("name") == name:
            return port
    for port in ports:
        if port.get("port") == number:
            return port
    return None


PORTS = (("http2", 80), ("https", 443))  # the ingress Service's HTTP and HTTPS ports: (name, port)


def live_nodeports(service: dict[str, Any] | None) -> dict[str, int | None]:
    """{"http2": nodePort, "https": nodePort} as the Service has them (None where a port or nodePort is
    absent, or the Service is not exposed on the nodes)."""
    spec = (service or {}).get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return {name: None for name, _ in PORTS}
    ports = spec.get("ports") or []
    return {name: (find_port(ports, name, number) or {}).get("nodePort") for name, number in PORTS}


def nodeport_mismatches(service: dict[str, Any], http: int, https: int) -> list[dict[str, Any]]:
    """[{port name, port, actual nodePort, expected}] for the HTTP/HTTPS ports whose nodePort differs."""
    ports = (service.get("spec") or {}).get("ports") or []
    out = []
    for name, number, want in (("http2", 80, http), ("https", 443, https)):
        port = find_port(ports, name, number)
        actual = port.get("nodePort") if port else None
        if actual != want:
            out.append({"name": name, "port": number, "actual": actual, "expected": want,
                        "present": port is not None})
    return out


def is_gateway_pod(pod: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in INGRESS_SELECTOR.items())


def unreached_targets(service: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """HTTP/HTTPS ports whose targetPort no container of the pods declares (only judged when the pods
    declare ports at all: a container may listen without declaring)."""
    numbers: set[Any] = set()
    for pod in pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            for declared in container.get("ports") or []:
                numbers.add(declared.get("containerPort"))
                if declared.get("name"):
                    numbers.add(declared["name"])
    if not numbers:
        return []
    out = []
    ports = (service.get("spec") or {}).get("ports") or []
    for name, number in PORTS:
        port = find_port(ports, name, number)
        if port is None:
            continue
        target = port.get("targetPort", port.get("port"))
        if target not in numbers:
            out.append({"name": name, "nodePort": port.get("nodePort"), "targetPort": target})
    return out


def judge_ingress(service: dict[str, Any] | None, pods: list[dict[str, Any]], *, name: str, namespace: str,
                  http: int, https: int) -> Result:
    """What the server runs wins: the live nodePorts pass when they are distinct and reach ready gateway
    pods, whatever their numbers; ports other than the configured http/https are named in the summary.
    missing / misconfigured (not exposed, a port without nodePort, both on one, not reaching the gateway) /
    not_ready (no ready pod behind it)."""
    if service is None:
        return msg.INGRESS_SERVICE_MISSING.result(namespace=namespace, service=name,
                                                  details={"namespace": namespace, "service": name})
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    ports = [{"name": p.get("name"), "port": p.get("port"), "nodePort": p.get("nodePort")} for p in spec.get("ports") or []]
    live = live_nodeports(service)
    details: dict[str, Any] = {"namespace": namespace, "service": name, "type": kind, "ports": ports,
                               "live": live, "configured": {"http2": http, "https": https}}
    if kind not in ("NodePort", "LoadBalancer"):
        return msg.INGRESS_NOT_NODEPORT.result(service=name, kind=kind, details=details)
    if kind == "LoadBalancer":
        details["note"] = "type LoadBalancer also allocates the nodePorts, which is what is checked"
    absent = [p for p, port in live.items() if port is None]
    if absent:
        return msg.INGRESS_NODEPORT_ABSENT.result(
            service=name, ports=" and ".join(absent),
            protocols=" and ".join("HTTP" if p == "http2" else "HTTPS" for p in absent),
            details={**details, "absent": absent})
    if live["http2"] == live["https"]:
        return msg.INGRESS_NODEPORT_SHARED.result(service=name, port=live["https"], details=details)
    details["pods"] = [pod_brief(p) for p in pods]
    ready = [p for p in pods if pod_ready(p)]
    if not ready:
        what = f"{len(pods)} pod(s), none Ready" if pods else f"no pod matches {label_selector(spec.get('selector'))}"
        return msg.INGRESS_PODS_NOT_READY.result(service=name, what=what, details=details, fix="restart-workload")
    strangers = [p for p in ready if not is_gateway_pod(p)]
    if len(strangers) == len(ready):
        return msg.INGRESS_SELECTS_STRANGERS.result(service=name, selector=label_selector(spec.get("selector")),
                                                    gateway_selector=label_selector(INGRESS_SELECTOR), details=details)
    unreached = unreached_targets(service, [p for p in ready if is_gateway_pod(p)])
    if unreached:
        details["unreached"] = unreached
        which = ", ".join(f"{u['name']} {u['nodePort']} -> targetPort {u['targetPort']}" for u in unreached)
        return msg.INGRESS_UNREACHED.result(ports=which, details=details)
    note = ""
    if (live["http2"], live["https"]) != (http, https):
        details["differs_from_configured"] = True
        note = f" (not the configured {http}/{https}: sbops uses the live ports)"
    return msg.INGRESS_SERVED.result(kind=kind, service=name, http=live["http2"], https=live["https"],
                                     ready=len(ready), note=note, details=details)


# ======================================================================================================
# istio.gateway
# ======================================================================================================
def https_server(gateway: dict[str, Any]) -> dict[str, Any] | None:
    for server in (gateway.get("spec") or {}).get("servers") or []:
        if str(((server.get("port") or {}).get("protocol") or "")).upper() == "HTTPS":
            return server
    return None


def judge_gateway(gateway: dict[str, Any] | None, *, name: str, namespace: str, domain: str,
                  secret_exists: Callable[[str], bool], istio_namespace: str, tls_secret: str) -> Result:
    """missing / misconfigured: selector, hosts, HTTPS server, tls.mode, credentialName that resolves."""
    if gateway is None:
        return msg.GATEWAY_MISSING.result(namespace=namespace, gateway=name,
                                          details={"namespace": namespace, "gateway": name})
    spec = gateway.get("spec") or {}
    selector = spec.get("selector") or {}
    servers = spec.get("servers") or []
    hosts = sorted({h for s in servers for h in s.get("hosts") or []})
    details: dict[str, Any] = {"namespace": namespace, "gateway": name, "selector": selector, "hosts": hosts,
                               "domain": domain}
    problems: list[str] = []
    if any(selector.get(k) != v for k, v in INGRESS_SELECTOR.items()):
        problems.append(f"selector {label_selector(selector) or '(empty)'} does not select the ingress gateway "
                        f"({label_selector(INGRESS_SELECTOR)})")
    if domain and not hosts_cover(hosts, domain):
        problems.append(f"hosts {hosts} do not include {domain}")
    server = https_server(gateway)
    credential = ""
    if server is None:
        problems.append("no HTTPS server")
    else:
        tls = server.get("tls") or {}
        credential = tls.get("credentialName") or ""
        details.update(tls_mode=tls.get("mode"), credential_name=credential)
        if domain and not hosts_cover(server.get("hosts") or [], domain):
            problems.append(f"the HTTPS server's hosts do not include {domain}")
        if tls.get("mode") != "SIMPLE":
            problems.append(f"HTTPS server tls.mode is {tls.get('mode')}, not SIMPLE")
        if not credential:
            problems.append("HTTPS server has no credentialName")
    if problems:
        return msg.GATEWAY_MISCONFIGURED.result(gateway=name, problems="; ".join(problems),
                                                details={**details, "problems": problems})
    if not secret_exists(credential):
        details["credential_namespace"] = istio_namespace
        # The configured credential is right but its secret is absent: recreate the secret. Another name:
        # point the Gateway back at the configured credential.
        return msg.GATEWAY_CREDENTIAL_UNRESOLVED.result(
            gateway=name, credential=credential, namespace=istio_namespace, details=details,
            fix="tls-secret" if credential == tls_secret else "istio-gateway")
    return msg.GATEWAY_SERVES.result(gateway=name, hosts=domain or ", ".join(hosts),
                                     credential=f"{istio_namespace}/{credential}", details=details)


# ======================================================================================================
# istio.virtualservice
# ======================================================================================================
def service_name(host: str, namespace: str) -> tuple[str, str]:
    """(service, namespace) of a destination host: short name, <svc>.<ns>, <svc>.<ns>.svc[.cluster.local]."""
    host = host.lower().rstrip(".")
    for suffix in ("." + CLUSTER_SUFFIX, ".svc"):
        if host.endswith(suffix):
            host = host[: -len(suffix)]
            break
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) == 2:
        return parts[0], parts[1]
    return host, ""  # an external name: not a Service of the cluster


def route_label(index: int, http: dict[str, Any]) -> str:
    """How a route is named in messages: its name, else its first uri match, else its index."""
    if http.get("name"):
        return str(http["name"])
    for match in http.get("match") or []:
        uri = match.get("uri") or {}
        for kind in ("prefix", "exact", "regex"):
            if uri.get(kind):
                return f"{uri[kind]}"
    return f"http[{index}]"


def endpoints_ready(endpoints: dict[str, Any] | None) -> int:
    """How many ready addresses the Endpoints object has (0 when absent)."""
    if not endpoints:
        return 0
    return sum(len(s.get("addresses") or []) for s in endpoints.get("subsets") or [])


def bound_to(gateways: list[str], gateway: str, namespace: str) -> bool:
    return any(g == gateway or g == f"{namespace}/{gateway}" for g in gateways or [])


def judge_virtualservice(vs: dict[str, Any] | None, *, name: str, namespace: str, gateway: str, domain: str,
                         services: dict[str, dict[str, Any]], endpoints: dict[str, dict[str, Any]]) -> Result:
    """missing / misconfigured (gateway binding, hosts, destination Service or port) / not_ready (no endpoints).

    `services` and `endpoints`: the namespace's objects by name.
    """
    if vs is None:
        return msg.VS_MISSING.result(namespace=namespace, virtualservice=name,
                                     details={"namespace": namespace, "virtualservice": name})
    spec = vs.get("spec") or {}
    details: dict[str, Any] = {"namespace": namespace, "virtualservice": name, "gateways": spec.get("gateways") or [],
                               "hosts": spec.get("hosts") or [], "domain": domain}
    problems: list[str] = []
    if not bound_to(spec.get("gateways") or [], gateway, namespace):
        problems.append(f"not bound to Gateway {gateway} (gateways: {spec.get('gateways') or []})")
    if domain and not hosts_cover(spec.get("hosts") or [], domain):
        problems.append(f"hosts {spec.get('hosts') or []} do not match {domain}")
    routes, not_ready = [], []
    for index, http in enumerate(spec.get("http") or []):
        label = route_label(index, http)
        for route in http.get("route") or []:
            dest = route.get("destination") or {}
            svc, svc_ns = service_name(str(dest.get("host", "")), namespace)
            number = (dest.get("port") or {}).get("number")
            entry = {"route": label, "host": dest.get("host"), "port": number}
            routes.append(entry)
            if svc_ns != namespace:
                problems.append(f"route {label}: destination {dest.get('host')} is not a Service in {namespace}")
                continue
            service = services.get(svc)
            if service is None:
                problems.append(f"route {label}: Service {svc} does not exist in {namespace}")
                continue
            real = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
            entry["service_ports"] = real
            if number is None and len(real) != 1:
                problems.append(f"route {label}: no port given and Service {svc} has ports {real}")
                continue
            if number is not None and number not in real:
                problems.append(f"route {label}: Service {svc} has no port {number} (its ports: {real})")
                continue
            ready = endpoints_ready(endpoints.get(svc))
            entry["ready_endpoints"] = ready
            if not ready:
                not_ready.append(svc)
    details["routes"] = routes
    if problems:
        return msg.VS_MISCONFIGURED.result(virtualservice=name, problems="; ".join(problems),
                                           details={**details, "problems": problems})
    if not routes:
        return msg.VS_NO_ROUTES.result(virtualservice=name, details=details)
    if not_ready:
        names = sorted(set(not_ready))
        return msg.VS_NO_ENDPOINTS.result(virtualservice=name, services=", ".join(names),
                                          details={**details, "not_ready": names}, fix="restart-workload")
    return msg.VS_ROUTES_READY.result(virtualservice=name, gateway=gateway, routes=len(routes), details=details)


# ======================================================================================================
# Desired state and differ (fix istio-gateway)
# ======================================================================================================
def desired_gateway(name: str, namespace: str, domain: str, credential: str) -> dict[str, Any]:
    """The Gateway as ORIGINAL-INSTALLER.md defines it (HTTPS SIMPLE with the credential, HTTP redirecting)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": dict(INGRESS_SELECTOR),
            "servers": [
                {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                 "tls": {"mode": "SIMPLE", "credentialName": credential},
                 "hosts": [domain]},
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                 "tls": {"httpsRedirect": True},
                 "hosts": [domain]},
            ],
        },
    }


def desired_virtualservice(name: str, namespace: str, domain: str, gateway: str) -> dict[str, Any]:
    """The VirtualService with the four routes of ARCHITECTURE.md."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [domain],
            "gateways": [gateway],
            "http": [{"match": [{"uri": {"prefix": prefix}}],
                      "route": [{"destination": {"host": svc, "port": {"number": port}}}]}
                     for prefix, svc, port in ROUTES],
        },
    }


def spec_diff(desired: dict[str, Any], observed: dict[str, Any] | None, label: str) -> list[str]:
    """Unified diff of the observed vs desired spec as YAML lines ([] when equal)."""
    import yaml

    want = yaml.safe_dump(desired, sort_keys=True, default_flow_style=False).splitlines()
    have = [] if observed is None else yaml.safe_dump(observed, sort_keys=True, default_flow_style=False).splitlines()
    if observed is not None and want == have:
        return []
    return list(difflib.unified_diff(have, want, fromfile=f"{label} (observed)", tofile=f"{label} (desired)",
                                     lineterm="", n=2))


@dataclass(frozen=True)
class ObjectChange:
    """What applying one custom object does: create, or replace its spec."""

    kind: str
    name: str
    namespace: str
    action: str  # "create" | "replace"
    diff: tuple[str, ...]


def object_change(desired: dict[str, Any], observed: dict[str, Any] | None) -> ObjectChange | None:
    """Pure: None when the observed spec already equals the desired one."""
    meta = desired["metadata"]
    label = f"{desired['kind']} {meta['namespace']}/{meta['name']}"
    diff = spec_diff(desired["spec"], None if observed is None else observed.get("spec") or {}, label + " spec")
    if not diff:
        return None
    return ObjectChange(desired["kind"], meta["name"], meta["namespace"],
                        "create" if observed is None else "replace", tuple(diff))


# ======================================================================================================
# Desired nodePorts (fix istio-nodeports)
# ======================================================================================================
GATEWAY_TARGETS = {"http2": 8080, "https": 8443}  # where Istio's ingress gateway container listens


def desired_ports(service: dict[str, Any], http: int, https: int,
                  targets: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The Service's ports with http2/80 and https/443 on the given nodePorts (and `targets`' targetPorts);
    other ports untouched."""
    ports = [dict(p) for p in (service.get("spec") or {}).get("ports") or []]
    for name, number, want in (("http2", 80, http), ("https", 443, https)):
        port = find_port(ports, name, number)
        if port is None:
            ports.append({"name": name, "port": number, "protocol": "TCP", "targetPort": GATEWAY_TARGETS[name],
                          "nodePort": want})
        else:
            port["nodePort"] = want
            if targets and name in targets:
                port["targetPort"] = targets[name]
    return ports


def retargets(unreached: list[dict[str, Any]], pods: list[dict[str, Any]]) -> tuple[dict[str, int], list[str]]:
    """Pure: for ports whose targetPort no gateway container declares, Istio's own port when the gateway
    declares it ({name: port}), else why not (the fix cannot guess where the gateway listens)."""
    declared = {p.get("containerPort") for pod in pods for c in (pod.get("spec") or {}).get("containers") or []
                for p in c.get("ports") or []}
    fixed, unknown = {}, []
    for item in unreached:
        if GATEWAY_TARGETS[item["name"]] in declared:
            fixed[item["name"]] = GATEWAY_TARGETS[item["name"]]
        else:
            unknown.append(f"{item['name']} targetPort {item['targetPort']}: the gateway declares neither it nor "
                           f"{GATEWAY_TARGETS[item['name']]}")
    return fixed, unknown


def target_nodeports(service: dict[str, Any], http: int, https: int, requested: tuple[int | None, int | None] = (None, None),
                     reset: bool = False) -> dict[str, int]:
    """Pure: the nodePorts istio-nodeports aims at. Named ports (flags) first; then, unless `reset`, the live
    ones (what the server runs wins); then the configured ones for a port that has none."""
    live = {} if reset else live_nodeports(service)
    configured = {"http2": http, "https": https}
    asked = {"http2": requested[0], "https": requested[1]}
    return {name: asked[name] or live.get(name) or configured[name] for name, _ in PORTS}


def nodeport_plan_facts(service: dict[str, Any], target: dict[str, int]) -> dict[str, Any]:
    """Pure: what istio-nodeports would change: type, [(name, old, new)], whether open ports move."""
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    moves = [(m["name"], m["actual"], m["expected"])
             for m in nodeport_mismatches(service, target["http2"], target["https"])]
    exposed = kind in ("NodePort", "LoadBalancer")
    return {"type": kind, "change_type": not exposed, "moves": moves,
            "disruptive": exposed and any(old is not None for _, old, _ in moves)}


# ======================================================================================================
# Observers (I/O)
# ======================================================================================================
def _settings(ctx: "Context") -> dict[str, Any]:
    s = ctx.settings
    return {"istio_ns": str(s["istio.namespace"]), "service": str(s["istio.ingress_service"]),
            "gateway": str(s["istio.gateway"]), "vs": str(s["istio.virtualservice"]),
            "ns": str(s["namespace"]), "http": int(s["nodeport_http"]), "https": int(s["nodeport_https"]),
            "tls_secret": str(s["tls.secret"])}


def get_custom(ctx: "Context", plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return kubecommon.api(ctx).get_or_none(custom_path(namespace, plural, name))


def custom_path(namespace: str, plural: str, name: str = "") -> str:
    return kubecommon.path(group=GROUP, version=VERSION, namespace=namespace, plural=plural, name=name)


def list_pods(ctx: "Context", namespace: str, selector: str) -> list[dict[str, Any]]:
    return kubecommon.api(ctx).list(kubecommon.path(namespace=namespace, plural="pods"), label_selector=selector)


def read_service(ctx: "Context", namespace: str, name: str) -> dict[str, Any] | None:
    return kubecommon.api(ctx).get_or_none(kubecommon.path(namespace=namespace, plural="services", name=name))


def secret_exists(ctx: "Context", namespace: str, name: str) -> bool:
    return kubecommon.api(ctx).get_or_none(kubecommon.path(namespace=namespace, plural="secrets", name=name)) is not None


# ======================================================================================================
# Probes
# ======================================================================================================
def probe_istiod(ctx: "Context") -> Result:
    ns = _settings(ctx)["istio_ns"]
    try:
        deps = kubecommon.api(ctx).list(kubecommon.path(group="apps", namespace=ns, plural="deployments"),
                                        label_selector=ISTIOD_LABEL)
        pods = list_pods(ctx, ns, ISTIOD_LABEL)
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure(f"list istiod in {ns}", exc)
    return judge_istiod(deps, pods, ns)


def probe_ingress(ctx: "Context") -> Result:
    cfg = _settings(ctx)
    try:
        service = read_service(ctx, cfg["istio_ns"], cfg["service"])
        selector = label_selector(((service or {}).get("spec") or {}).get("selector"))
        pods = list_pods(ctx, cfg["istio_ns"], selector) if service and selector else []
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure(f"read Service {cfg['istio_ns']}/{cfg['service']}", exc)
    return judge_ingress(service, pods, name=cfg["service"], namespace=cfg["istio_ns"], http=cfg["http"],
                         https=cfg["https"])


def probe_gateway(ctx: "Context") -> Result:
    cfg = _settings(ctx)
    try:
        gateway = get_custom(ctx, GATEWAYS, cfg["ns"], cfg["gateway"])
        cache: dict[str, bool] = {}

        def exists(name: str) -> bool:
            if name not in cache:
                cache[name] = secret_exists(ctx, cfg["istio_ns"], name)
            return cache[name]

        return judge_gateway(gateway, name=cfg["gateway"], namespace=cfg["ns"], domain=kubecommon.domain(ctx),
                             secret_exists=exists, istio_namespace=cfg["istio_ns"], tls_secret=cfg["tls_secret"])
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure(f"read Gateway {cfg['ns']}/{cfg['gateway']}", exc)


def probe_virtualservice(ctx: "Context") -> Result:
    cfg = _settings(ctx)
    try:
        vs = get_custom(ctx, VIRTUALSERVICES, cfg["ns"], cfg["vs"])
        services: dict[str, Any] = {}
        endpoints: dict[str, Any] = {}
        if vs is not None:
            api = kubecommon.api(ctx)
            for item in api.list(kubecommon.path(namespace=cfg["ns"], plural="services")):
                services[item["metadata"]["name"]] = item
            for item in api.list(kubecommon.path(namespace=cfg["ns"], plural="endpoints")):
                endpoints[item["metadata"]["name"]] = item
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure(f"read VirtualService {cfg['ns']}/{cfg['vs']}", exc)
    return judge_virtualservice(vs, name=cfg["vs"], namespace=cfg["ns"], gateway=cfg["gateway"],
                                domain=kubecommon.domain(ctx), services=services, endpoints=endpoints)


# ======================================================================================================
# Fix plans and appliers
# ======================================================================================================
def apply_custom(ctx: "Context", plural: str, desired: dict[str, Any]) -> None:
    """Create, or replace keeping the live object's metadata (resourceVersion, labels, annotations)."""
    api = kubecommon.api(ctx)
    meta = desired["metadata"]
    live = get_custom(ctx, plural, meta["namespace"], meta["name"])
    if live is None:
        api.create(custom_path(meta["namespace"], plural), desired)
        return
    body = dict(live)
    body["spec"] = desired["spec"]
    api.replace(custom_path(meta["namespace"], plural, meta["name"]), body)


def _change_for(ctx: "Context", plural: str, desired: dict[str, Any], observed: dict[str, Any] | None) -> Change | None:
    change = object_change(desired, observed)
    if change is None:
        return None
    import yaml

    from sbops.diff import file_diff

    verb = "create" if change.action == "create" else "replace the spec of"
    label = f"{change.kind} {change.namespace}/{change.name} spec"
    before = None if observed is None else yaml.safe_dump(observed.get("spec") or {}, sort_keys=True, default_flow_style=False)
    after = yaml.safe_dump(desired["spec"], sort_keys=True, default_flow_style=False)
    return Change(f"via the Kubernetes API: {verb} {change.kind} {change.namespace}/{change.name}", (),
                  apply=lambda: apply_custom(ctx, plural, desired), files=(file_diff(label, before, after),))


def plan_gateway(ctx: "Context") -> Plan:
    cfg = _settings(ctx)
    domain = kubecommon.domain(ctx)
    if not domain:
        return Plan(blockers=("no domain known: set `domain` in the config or PORTAL URL in the credentials file",))
    gw = desired_gateway(cfg["gateway"], cfg["ns"], domain, cfg["tls_secret"])
    vs = desired_virtualservice(cfg["vs"], cfg["ns"], domain, cfg["gateway"])
    try:
        observed_gw = get_custom(ctx, GATEWAYS, cfg["ns"], cfg["gateway"])
        observed_vs = get_custom(ctx, VIRTUALSERVICES, cfg["ns"], cfg["vs"])
        has_secret = secret_exists(ctx, cfg["istio_ns"], cfg["tls_secret"])
    except Exception as exc:  # noqa: BLE001
        from sbops.kube import NoKubeconfig

        if isinstance(exc, NoKubeconfig):
            raise
        return Plan(blockers=(kubecommon.api_failure_summary("read the Gateway and VirtualService", exc),))
    changes = [c for c in (_change_for(ctx, GATEWAYS, gw, observed_gw), _change_for(ctx, VIRTUALSERVICES, vs, observed_vs))
               if c is not None]
    notes = []
    if not has_secret:
        notes.append(f"the credential secret {cfg['istio_ns']}/{cfg['tls_secret']} does not exist: "
                     "run `sbops fix tls-secret --cert FILE --key FILE` too")
    return Plan(tuple(changes), notes=tuple(notes),
                nothing_to_do="" if changes else "the Gateway and VirtualService already match the desired definition")


def selector_patch(live: dict[str, str] | None) -> dict[str, str | None]:
    """Pure: the strategic-merge selector that makes a Service select the ingress gateway (null deletes
    the live keys that are not the gateway's)."""
    return {**{k: None for k in live or {} if k not in INGRESS_SELECTOR}, **INGRESS_SELECTOR}


def patch_nodeports(ctx: "Context", namespace: str, name: str, http: int, https: int,
                    targets: dict[str, int] | None = None, reselect: bool = False) -> None:
    """Set type NodePort and the two nodePorts (full port list, strategic merge by port); with `reselect`,
    the selector too."""

    from sbops.kube import STRATEGIC_PATCH

    api = kubecommon.api(ctx)
    resource = kubecommon.path(namespace=namespace, plural="services", name=name)
    live = api.get(resource)
    spec: dict[str, Any] = {"type": "NodePort", "ports": desired_ports(live, http, https, targets)}
    if reselect:
        spec["selector"] = selector_patch((live.get("spec") or {}).get("selector"))
    api.patch(resource, {"spec": spec}, STRATEGIC_PATCH)


def nodeport_owners(ctx: "Context", ports: Iterable[int], namespace: str, name: str) -> dict[int, str]:
    """Which other Service already holds each wanted nodePort (the API server would refuse the patch)."""
    wanted = set(ports)
    owners: dict[int, str] = {}
    try:
        items = kubecommon.api(ctx).list(kubecommon.path(plural="services"))
    except Exception as exc:  # noqa: BLE001 - a namespaced role cannot list every Service: the API server
        if kubecommon.api_status(exc) == 403:  # still refuses a taken port when the patch is applied
            return {}
        raise
    for svc in items:
        meta = svc.get("metadata") or {}
        if meta.get("namespace") == namespace and meta.get("name") == name:
            continue
        for port in (svc.get("spec") or {}).get("ports") or []:
            if port.get("nodePort") in wanted:
                owners[port["nodePort"]] = f"{meta.get('namespace')}/{meta.get('name')}"
    return owners


def live_ports(ctx: "Context") -> tuple[int, int, str]:
    """(http, https, source) of the portal's nodePorts: the ingress Service's live ones, else (Service
    unreadable or not exposed) the nodeport_http/nodeport_https settings. app.*, the installer's recap and
    whoever builds a portal URL use this: what the server runs wins over the configured defaults."""
    return ctx.shared("istio.live_ports", lambda: _live_ports(ctx))


def _live_ports(ctx: "Context") -> tuple[int, int, str]:
    from sbops import kube

    cfg = _settings(ctx)
    # A short budget: the caller (app.*) still has its own HTTP request to make within the check's timeout.
    quick = min(1.5, ctx.net_timeout / 3)
    try:
        api = kube.KubeApi(kubecommon.api(ctx).client, (quick, quick))
        service = api.get_or_none(kubecommon.path(namespace=cfg["istio_ns"], plural="services", name=cfg["service"]))
        live = live_nodeports(service)
    except Exception:  # noqa: BLE001 - no kubeconfig or API down: istio.ingress reports that; use settings
        live = {}
    if live.get("http2") and live.get("https") and live["http2"] != live["https"]:
        return int(live["http2"]), int(live["https"]), f"Service {cfg['istio_ns']}/{cfg['service']}"
    return cfg["http"], cfg["https"], "settings nodeport_http/nodeport_https"


def plan_nodeports(ctx: "Context", *, allow_restart: bool = False, http_port: int | None = None,
                   https_port: int | None = None, installer: bool = False) -> Plan:
    """Make the ingress Service NodePort with two nodePorts. Working ports stay unless `http_port`/`https_port`
    name others (the fix's --http-port/--https-port). The installer (`installer`) also resets the ports of a
    Service that is not yet NodePort (Istio's demo profile makes it LoadBalancer on random ports) to the
    configured ones; one that is NodePort was set up by an installer and keeps its ports."""

    requested = (http_port, https_port)
    cfg = _settings(ctx)
    ns, name = cfg["istio_ns"], cfg["service"]
    try:
        service = read_service(ctx, ns, name)
    except Exception as exc:  # noqa: BLE001
        from sbops.kube import NoKubeconfig

        if isinstance(exc, NoKubeconfig):
            raise
        return Plan(blockers=(kubecommon.api_failure_summary(f"read Service {ns}/{name}", exc),))
    if service is None:
        return Plan(blockers=(f"the ingress gateway Service {ns}/{name} does not exist: reinstall Istio's ingress "
                              "gateway (istioctl install --set profile=demo), then run this fix",))
    kind = (service.get("spec") or {}).get("type", "ClusterIP")
    target = target_nodeports(service, cfg["http"], cfg["https"], requested, reset=installer and kind != "NodePort")
    http, https = target["http2"], target["https"]
    if http == https:
        return Plan(blockers=(f"HTTP and HTTPS would share nodePort {http}: name two ports with --http-port and "
                              "--https-port",))
    facts = nodeport_plan_facts(service, target)
    reselect = False
    try:
        selector = label_selector((service.get("spec") or {}).get("selector"))
        selected = list_pods(ctx, ns, selector) if selector else []
        pods = [p for p in selected if is_gateway_pod(p)]
        if selected and not pods:  # it routes to other pods: point it back at the gateway when one exists
            pods = list_pods(ctx, ns, label_selector(INGRESS_SELECTOR))
            reselect = bool(pods)
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kubecommon.api_failure_summary(f"list the pods behind {ns}/{name}", exc),))
    targets, unknown = retargets(unreached_targets(service, pods), pods)
    if unknown:
        return Plan(blockers=tuple(unknown))
    if not facts["change_type"] and not facts["moves"] and not targets and not reselect \
            and not (installer and kind != "NodePort"):
        return Plan(nothing_to_do=f"{name} is {facts['type']} with http2 {http} and https {https}"
                    + ("" if (http, https) == (cfg["http"], cfg["https"]) else
                       f" (not the configured {cfg['http']}/{cfg['https']}: working ports are kept; name others "
                       "with --http-port/--https-port to move them)"))
    try:
        new = {new for _, old, new in facts["moves"]} | ({http, https} if facts["change_type"] else set())
        owners = nodeport_owners(ctx, new, ns, name) if new else {}
    except Exception as exc:  # noqa: BLE001
        return Plan(blockers=(kubecommon.api_failure_summary("list Services", exc),))
    if owners:
        taken = ", ".join(f"{port} (held by {who})" for port, who in sorted(owners.items()))
        return Plan(blockers=(f"the nodePorts are taken by other Services: {taken}; free them or name others with "
                              "--http-port/--https-port",))
    if facts["disruptive"] and not allow_restart:
        moved = ", ".join(f"{n} {old} -> {new}" for n, old, new in facts["moves"])
        return Plan(blockers=(f"moving nodePorts ({moved}) cuts the connections open on the old ports and breaks "
                              "every client, firewall rule and forwarder that uses them: rerun with --restart to "
                              "consent",))
    parts = []
    if kind != "NodePort":
        parts.append(f"type {kind} -> NodePort")
    parts += [f"{n} nodePort {old if old is not None else 'none'} -> {new}" for n, old, new in facts["moves"]]
    parts += [f"{n} targetPort -> {port} (where the gateway listens)" for n, port in targets.items()]
    if reselect:
        parts.append(f"selector {selector} -> {label_selector(INGRESS_SELECTOR)} (it picked pods that are not the "
                     "ingress gateway)")
    change = Change(f"via the Kubernetes API: patch Service {ns}/{name}: " + ", ".join(parts), (),
                    apply=lambda: patch_nodeports(ctx, ns, name, http, https, targets, reselect))
    notes = ("clients must use the new ports: https://<server>:%d (HTTP %d redirects); open them in the firewall"
             % (https, http),) if facts["moves"] else ()
    return Plan((change,), notes=notes)
