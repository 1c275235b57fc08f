"""Pure Istio judgements, differs and helpers from tables (kubectl-style dicts, no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sbops.model import Reason, Status
from sbops.probes import istio

DOMAIN = "stackbill.example.com"


def pod(name: str = "p", ready: bool = True, waiting: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"name": "c", "state": {"waiting": {"reason": waiting}}}]
    return {"metadata": {"name": name}, "status": status}


# -- helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern,domain,expected", [
    (DOMAIN, DOMAIN, True),
    ("*", DOMAIN, True),
    ("*.example.com", DOMAIN, True),
    ("*.example.com", "example.com", False),
    ("sb-apps/" + DOMAIN, DOMAIN, True),
    ("STACKBILL.example.com.", DOMAIN, True),
    ("portal.other.com", DOMAIN, False),
    ("*.other.com", DOMAIN, False),
])
def test_host_matches(pattern: str, domain: str, expected: bool) -> None:
    assert istio.host_matches(pattern, domain) is expected


@pytest.mark.parametrize("host,expected", [
    ("sb-core", ("sb-core", "sb-apps")),
    ("sb-core.sb-apps", ("sb-core", "sb-apps")),
    ("sb-core.sb-apps.svc", ("sb-core", "sb-apps")),
    ("sb-core.sb-apps.svc.cluster.local", ("sb-core", "sb-apps")),
    ("sb-core.other.svc.cluster.local", ("sb-core", "other")),
    ("api.example.com", ("api.example.com", "")),
])
def test_service_name(host: str, expected: tuple[str, str]) -> None:
    assert istio.service_name(host, "sb-apps") == expected


@pytest.mark.parametrize("gateways,expected", [
    (["stackbill-gateway"], True), (["sb-apps/stackbill-gateway"], True), (["mesh"], False),
    ([], False), (["other/stackbill-gateway"], False),
])
def test_bound_to(gateways: list[str], expected: bool) -> None:
    assert istio.bound_to(gateways, "stackbill-gateway", "sb-apps") is expected


# -- istio.istiod -----------------------------------------------------------------------------------
@pytest.mark.parametrize("deployments,pods,expected", [
    ([], [], (Status.FAIL, Reason.MISSING, "SB6411")),
    ([{"metadata": {"name": "istiod"}}], [], (Status.FAIL, Reason.NOT_READY, "SB6412")),
    ([{"metadata": {"name": "istiod"}}], [pod(ready=False, waiting="CrashLoopBackOff")], (Status.FAIL, Reason.NOT_READY, "SB6412")),
    ([{"metadata": {"name": "istiod"}}], [pod()], (Status.OK, Reason.NONE, "SB6410")),
    ([{"metadata": {"name": "istiod"}}], [pod("a", False), pod("b")], (Status.OK, Reason.NONE, "SB6410")),
])
def test_judge_istiod(deployments: list, pods: list, expected: tuple) -> None:
    result = istio.judge_istiod(deployments, pods, "istio-system")
    assert (result.status, result.reason, result.code) == expected


# -- istio.ingress ----------------------------------------------------------------------------------
def service(kind: str = "NodePort", http: int | None = 31443, https: int | None = 31882,
            targets: tuple[Any, Any] = (8080, 8443)) -> dict[str, Any]:
    return {"spec": {"type": kind, "selector": {"istio": "ingressgateway"}, "ports": [
        {"name": "status-port", "port": 15021, "targetPort": 15021, "nodePort": 30021},
        {"name": "http2", "port": 80, "targetPort": targets[0], "nodePort": http},
        {"name": "https", "port": 443, "targetPort": targets[1], "nodePort": https}]}}


def gw_pod(ready: bool = True, labels: dict | None = None, ports: tuple = (15021, 8080, 8443)) -> dict[str, Any]:
    """An ingress gateway pod as Istio's demo profile runs it (labels, declared container ports)."""
    body = pod("gw", ready)
    body["metadata"]["labels"] = {"app": "istio-ingressgateway", "istio": "ingressgateway"} if labels is None else labels
    body["spec"] = {"containers": [{"name": "istio-proxy", "ports": [{"containerPort": p} for p in ports]}]}
    return body


CURRENT_SCRIPT = service(http=31080, https=31443)  # the current bash installer's ports


@pytest.mark.parametrize("svc,pods,expected,fix", [
    (None, [], (Status.FAIL, Reason.MISSING, "SB6421"), None),
    (service("ClusterIP", None, None), [gw_pod()], (Status.FAIL, Reason.MISCONFIGURED, "SB6422"), None),
    (CURRENT_SCRIPT, [gw_pod()], (Status.OK, Reason.NONE, "SB6420"), None),  # live ports win over the configured
    (service(http=30555, https=31666), [gw_pod()], (Status.OK, Reason.NONE, "SB6420"), None),
    (service(http=None), [gw_pod()], (Status.FAIL, Reason.MISCONFIGURED, "SB6423"), None),
    (service(http=31443, https=31443), [gw_pod()], (Status.FAIL, Reason.MISCONFIGURED, "SB6424"), None),
    (service(), [], (Status.FAIL, Reason.NOT_READY, "SB6425"), "restart-workload"),
    (service(), [gw_pod(ready=False)], (Status.FAIL, Reason.NOT_READY, "SB6425"), "restart-workload"),
    (service(), [gw_pod()], (Status.OK, Reason.NONE, "SB6420"), None),
    (service("LoadBalancer"), [gw_pod()], (Status.OK, Reason.NONE, "SB6420"), None),
    (service(), [gw_pod(labels={"app": "sb-ui"})], (Status.FAIL, Reason.MISCONFIGURED, "SB6426"), None),
    (service(targets=(8080, 9443)), [gw_pod()], (Status.FAIL, Reason.MISCONFIGURED, "SB6427"), None),
    (service(), [gw_pod(ports=())], (Status.OK, Reason.NONE, "SB6420"), None),  # nothing declared: cannot judge targets
    (service(targets=("http2", 8443)), [gw_pod()], (Status.FAIL, Reason.MISCONFIGURED, "SB6427"), None),
])
def test_judge_ingress(svc: Any, pods: list, expected: tuple, fix: str | None) -> None:
    result = istio.judge_ingress(svc, pods, name="istio-ingressgateway", namespace="istio-system",
                                 http=31443, https=31882)
    assert (result.status, result.reason, result.code) == expected, result.summary
    assert result.fix == fix


def test_other_live_ports_are_reported_not_failed() -> None:
    result = istio.judge_ingress(CURRENT_SCRIPT, [gw_pod()], name="gw", namespace="ns", http=31443, https=31882)
    assert result.details["live"] == {"http2": 31080, "https": 31443}
    assert result.details["configured"] == {"http2": 31443, "https": 31882}
    assert result.details["differs_from_configured"] is True
    assert (result.code, result.args["http"], result.args["https"]) == ("SB6420", 31080, 31443)
    assert result.args["note"]  # the summary says the configured ports differ
    same = istio.judge_ingress(service(), [gw_pod()], name="gw", namespace="ns", http=31443, https=31882)
    assert same.code == "SB6420" and not same.args["note"] and "differs_from_configured" not in same.details


def test_ports_found_by_number_when_unnamed() -> None:
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31443}, {"port": 443, "nodePort": 31882}]}}
    assert istio.nodeport_mismatches(svc, 31443, 31882) == []
    assert istio.live_nodeports(svc) == {"http2": 31443, "https": 31882}
    assert istio.live_nodeports(service("ClusterIP", None, None)) == {"http2": None, "https": None}


@pytest.mark.parametrize("svc,requested,reset,expected", [
    (CURRENT_SCRIPT, (None, None), False, {"http2": 31080, "https": 31443}),  # working ports stay
    (CURRENT_SCRIPT, (31443, 31882), False, {"http2": 31443, "https": 31882}),  # named ports move them
    (CURRENT_SCRIPT, (None, 31999), False, {"http2": 31080, "https": 31999}),
    (service(http=None), (None, None), False, {"http2": 31443, "https": 31882}),  # a missing one gets the default
    (service("ClusterIP", None, None), (None, None), False, {"http2": 31443, "https": 31882}),
    (service("LoadBalancer", 30111, 30222), (None, None), True, {"http2": 31443, "https": 31882}),  # installer
])
def test_target_nodeports(svc: dict, requested: tuple, reset: bool, expected: dict) -> None:
    assert istio.target_nodeports(svc, 31443, 31882, requested, reset) == expected


@pytest.mark.parametrize("svc,target,expected", [
    (service(), {"http2": 31443, "https": 31882},
     {"type": "NodePort", "change_type": False, "moves": [], "disruptive": False}),
    (CURRENT_SCRIPT, {"http2": 31080, "https": 31443},
     {"type": "NodePort", "change_type": False, "moves": [], "disruptive": False}),
    (service("ClusterIP", None, None), {"http2": 31443, "https": 31882},
     {"type": "ClusterIP", "change_type": True, "moves": [("http2", None, 31443), ("https", None, 31882)],
      "disruptive": False}),
    (CURRENT_SCRIPT, {"http2": 31443, "https": 31882},
     {"type": "NodePort", "change_type": False, "moves": [("http2", 31080, 31443), ("https", 31443, 31882)],
      "disruptive": True}),
])
def test_nodeport_plan_facts(svc: dict, target: dict, expected: dict) -> None:
    assert istio.nodeport_plan_facts(svc, target) == expected


def test_desired_ports_keeps_other_ports() -> None:
    ports = istio.desired_ports(service(http=31080, https=31443), 31443, 31882)
    assert {p["name"]: p["nodePort"] for p in ports} == {"status-port": 30021, "http2": 31443, "https": 31882}


# -- istio.gateway ----------------------------------------------------------------------------------
def gateway() -> dict[str, Any]:
    return istio.desired_gateway("stackbill-gateway", "sb-apps", DOMAIN, "istio-ingressgateway-certs")


def broken(edit: Any) -> dict[str, Any]:
    gw = gateway()
    edit(gw["spec"])
    return gw


SECRETS = {"istio-ingressgateway-certs"}


@pytest.mark.parametrize("gw,expected,fix", [
    (None, (Status.FAIL, Reason.MISSING, "SB6431"), None),
    (gateway(), (Status.OK, Reason.NONE, "SB6430"), None),
    (broken(lambda s: s.update(selector={"istio": "egressgateway"})), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: s.update(selector={})), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: [srv.update(hosts=["other.com"]) for srv in s["servers"]]), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: [srv.update(hosts=["*"]) for srv in s["servers"]]), (Status.OK, Reason.NONE, "SB6430"), None),
    (broken(lambda s: s.update(servers=s["servers"][1:])), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: s["servers"][0]["tls"].update(mode="PASSTHROUGH")), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: s["servers"][0]["tls"].pop("credentialName")), (Status.FAIL, Reason.MISCONFIGURED, "SB6432"), None),
    (broken(lambda s: s["servers"][0]["tls"].update(credentialName="stackbill-tls-secret")),
     (Status.FAIL, Reason.MISCONFIGURED, "SB6433"), "istio-gateway"),
])
def test_judge_gateway(gw: Any, expected: tuple, fix: str | None) -> None:
    result = istio.judge_gateway(gw, name="stackbill-gateway", namespace="sb-apps", domain=DOMAIN,
                                 secret_exists=SECRETS.__contains__, istio_namespace="istio-system",
                                 tls_secret="istio-ingressgateway-certs")
    assert (result.status, result.reason, result.code) == expected
    assert result.fix == fix


def test_gateway_whose_configured_secret_is_absent_points_at_tls_secret() -> None:
    result = istio.judge_gateway(gateway(), name="g", namespace="sb-apps", domain=DOMAIN, secret_exists=lambda n: False,
                                 istio_namespace="istio-system", tls_secret="istio-ingressgateway-certs")
    assert (result.code, result.reason, result.fix) == ("SB6433", Reason.MISCONFIGURED, "tls-secret")
    assert result.args["credential"] == "istio-ingressgateway-certs"


# -- istio.virtualservice ---------------------------------------------------------------------------
def vs() -> dict[str, Any]:
    return istio.desired_virtualservice("stackbill-vs", "sb-apps", DOMAIN, "stackbill-gateway")


def services() -> dict[str, Any]:
    return {name: {"spec": {"ports": [{"name": "http", "port": port}]}}
            for name, port in {"sb-admin": 80, "sb-ui": 80, "sb-kong": 8000, "sb-core": 8080}.items()}


def endpoints(empty: str = "") -> dict[str, Any]:
    return {name: {"subsets": [] if name == empty else [{"addresses": [{"ip": "10.42.0.9"}]}]} for name in services()}


def vs_edit(edit: Any) -> dict[str, Any]:
    obj = vs()
    edit(obj["spec"])
    return obj


def dest(spec: dict, index: int) -> dict:
    return spec["http"][index]["route"][0]["destination"]


@pytest.mark.parametrize("obj,eps,expected", [
    (None, endpoints(), (Status.FAIL, Reason.MISSING, "SB6441")),
    (vs(), endpoints(), (Status.OK, Reason.NONE, "SB6440")),
    (vs_edit(lambda s: s.update(gateways=["mesh"])), endpoints(), (Status.FAIL, Reason.MISCONFIGURED, "SB6442")),
    (vs_edit(lambda s: s.update(gateways=["sb-apps/stackbill-gateway"])), endpoints(), (Status.OK, Reason.NONE, "SB6440")),
    (vs_edit(lambda s: s.update(hosts=["other.com"])), endpoints(), (Status.FAIL, Reason.MISCONFIGURED, "SB6442")),
    (vs_edit(lambda s: dest(s, 3)["port"].update(number=8000)), endpoints(), (Status.FAIL, Reason.MISCONFIGURED, "SB6442")),
    (vs_edit(lambda s: dest(s, 3).update(host="sb-nothing")), endpoints(), (Status.FAIL, Reason.MISCONFIGURED, "SB6442")),
    (vs_edit(lambda s: dest(s, 3).update(host="sb-core.other.svc.cluster.local")), endpoints(),
     (Status.FAIL, Reason.MISCONFIGURED, "SB6442")),
    (vs_edit(lambda s: dest(s, 3).update(host="sb-core.sb-apps.svc.cluster.local")), endpoints(), (Status.OK, Reason.NONE, "SB6440")),
    (vs_edit(lambda s: dest(s, 3).pop("port")), endpoints(), (Status.OK, Reason.NONE, "SB6440")),
    (vs_edit(lambda s: s.update(http=[])), endpoints(), (Status.FAIL, Reason.MISCONFIGURED, "SB6443")),
    (vs(), endpoints(empty="sb-ui"), (Status.FAIL, Reason.NOT_READY, "SB6444")),
    (vs(), {}, (Status.FAIL, Reason.NOT_READY, "SB6444")),
])
def test_judge_virtualservice(obj: Any, eps: dict, expected: tuple) -> None:
    result = istio.judge_virtualservice(obj, name="stackbill-vs", namespace="sb-apps", gateway="stackbill-gateway",
                                        domain=DOMAIN, services=services(), endpoints=eps)
    assert (result.status, result.reason, result.code) == expected


def test_wrong_port_names_route_service_and_real_ports() -> None:
    obj = vs_edit(lambda s: dest(s, 3)["port"].update(number=8000))
    result = istio.judge_virtualservice(obj, name="vs", namespace="sb-apps", gateway="stackbill-gateway",
                                        domain=DOMAIN, services=services(), endpoints=endpoints())
    assert result.details["problems"] == ["route /core: Service sb-core has no port 8000 (its ports: [8080])"]


# -- desired state and differ -----------------------------------------------------------------------
def test_desired_virtualservice_has_the_four_routes() -> None:
    spec = vs()["spec"]
    assert [(h["match"][0]["uri"]["prefix"], h["route"][0]["destination"]["host"],
             h["route"][0]["destination"]["port"]["number"]) for h in spec["http"]] == list(istio.ROUTES)
    assert spec["gateways"] == ["stackbill-gateway"] and spec["hosts"] == [DOMAIN]


def test_desired_gateway_redirects_http() -> None:
    http = [s for s in gateway()["spec"]["servers"] if s["port"]["protocol"] == "HTTP"][0]
    assert http["tls"] == {"httpsRedirect": True}


@pytest.mark.parametrize("observed,action", [
    (None, "create"),
    ({"spec": {"selector": {"istio": "egressgateway"}}}, "replace"),
])
def test_object_change(observed: Any, action: str) -> None:
    change = istio.object_change(gateway(), observed)
    assert change is not None and change.action == action
    assert any(line.startswith("+") for line in change.diff)


def test_object_change_none_when_equal_and_diff_shows_the_difference() -> None:
    observed = {"metadata": {"resourceVersion": "7"}, "spec": copy.deepcopy(gateway()["spec"])}
    assert istio.object_change(gateway(), observed) is None
    observed["spec"]["servers"][0]["tls"]["credentialName"] = "stackbill-tls-secret"
    diff = istio.object_change(gateway(), observed).diff
    assert "-    credentialName: stackbill-tls-secret" in diff
    assert "+    credentialName: istio-ingressgateway-certs" in diff


def test_retargets_to_where_the_gateway_listens() -> None:
    unreached = istio.unreached_targets(service(targets=(8080, 9443)), [gw_pod()])
    assert unreached == [{"name": "https", "nodePort": 31882, "targetPort": 9443}]
    assert istio.retargets(unreached, [gw_pod()]) == ({"https": 8443}, [])
    fixed, unknown = istio.retargets(unreached, [gw_pod(ports=(15021, 8080))])
    assert fixed == {} and "9443" in unknown[0]
    ports = istio.desired_ports(service(targets=(8080, 9443)), 31443, 31882, {"https": 8443})
    assert {p["name"]: p["targetPort"] for p in ports} == {"status-port": 15021, "http2": 8080, "https": 8443}


def test_selector_patch_deletes_foreign_keys() -> None:
    assert istio.selector_patch({"app": "istiod"}) == {"app": None, "istio": "ingressgateway"}
    assert istio.selector_patch({"istio": "other"}) == {"istio": "ingressgateway"}
    assert istio.selector_patch(None) == {"istio": "ingressgateway"}
