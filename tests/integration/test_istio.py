"""Istio layer: break the objects, check, fix.

Every check id appears here: "istio.istiod", "istio.ingress", "istio.gateway", "istio.virtualservice";
every fix: "istio-gateway", "istio-nodeports". Objects are broken on the API-only lab (tests/lab/kube.py), where
nothing reconciles: what the checks read after a fix is exactly what the fix wrote. Pods that are not Ready
are the kubelet's verdict on the living cluster (tests/lab/living.py): a readiness probe that fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lab.env import LabEnv, fix_json, finding
from tests.lab.kube import (DOMAIN, GATEWAY, ISTIO_NAMESPACE, NAMESPACE, NODEPORT_HTTP, NODEPORT_HTTPS, TLS_SECRET,
                            VIRTUALSERVICE, KubeLab)
from tests.lab.living import LivingCluster, eventually

ALL = ("istio.istiod", "istio.ingress", "istio.gateway", "istio.virtualservice")
PASSED = {"istio.istiod": "SB6410", "istio.ingress": "SB6420", "istio.gateway": "SB6430", "istio.virtualservice": "SB6440"}
GROUP, VERSION = "networking.istio.io", "v1beta1"
INGRESS = "istio-ingressgateway"


def lab_env(root: Path, kube: KubeLab) -> LabEnv:
    return LabEnv(root).set("kubeconfig", str(kube.kubeconfig))


def core(kube: KubeLab) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube.api())


def custom(kube: KubeLab) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube.api())


def get_obj(kube: KubeLab, plural: str, name: str) -> dict:
    return custom(kube).get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)


def put_spec(kube: KubeLab, plural: str, name: str, edit: Any) -> None:
    """Edit a custom object's spec in place (edit(spec) mutates it) and replace it."""
    body = get_obj(kube, plural, name)
    edit(body["spec"])
    custom(kube).replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name, body)


def set_nodeports(kube: KubeLab, http: int | None, https: int | None, service_type: str = "NodePort") -> None:
    api = core(kube)
    svc = api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    svc.spec.type = service_type
    for port in svc.spec.ports:
        if port.name == "http2":
            port.node_port = http
        elif port.name == "https":
            port.node_port = https
        elif service_type == "ClusterIP":
            port.node_port = None
    api.replace_namespaced_service(INGRESS, ISTIO_NAMESPACE, svc)


def nodeports(kube: KubeLab) -> tuple[str, dict[str, int]]:
    svc = core(kube).read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    return svc.spec.type, {p.name: p.node_port for p in svc.spec.ports if p.name in ("http2", "https")}


def break_readiness(living: LivingCluster, name: str) -> None:
    """A bad upgrade of Deployment `name` in istio-system: its readiness probe now asks a path the stand-in
    answers 404, and Recreate replaces the Ready pod, so the kubelet reports the new one not Ready."""
    from kubernetes import client

    apps = client.AppsV1Api(living.kube.api())
    container = apps.read_namespaced_deployment(name, ISTIO_NAMESPACE).spec.template.spec.containers[0].name
    apps.patch_namespaced_deployment(name, ISTIO_NAMESPACE, {"spec": {
        "strategy": {"type": "Recreate", "rollingUpdate": None},
        "template": {"spec": {"containers": [{"name": container, "readinessProbe": {
            "httpGet": {"path": "/not-ready"}, "periodSeconds": 1, "failureThreshold": 1}}]}}}})




def assert_fixed(env: LabEnv, name: str, check_id: str, *extra: str) -> None:
    code, out = fix_json(env, name, *extra)
    assert code == 0, out
    assert finding(env.check(check_id)) == (PASSED[check_id], "ok", "none")


# -- healthy -------------------------------------------------------------------------------------------
def test_seeded_cluster_passes_and_fixes_have_nothing_to_do(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    results = env.doctor("istio.*")
    assert {cid: finding(results[cid]) for cid in ALL} == {cid: (PASSED[cid], "ok", "none") for cid in ALL}
    for name in ("istio-gateway", "istio-nodeports"):
        code, out = fix_json(env, name)
        assert code == 0 and out["plan"]["changes"] == [] and out["plan"]["nothing_to_do"], (name, out)


# -- istio.istiod --------------------------------------------------------------------------------------
def test_istiod_not_ready_on_the_living_cluster(living: LivingCluster, living_env: LabEnv) -> None:
    assert finding(living_env.check("istio.istiod")) == ("SB6410", "ok", "none")
    break_readiness(living, "istiod")
    eventually("istio.istiod reports not_ready", lambda: finding(living_env.check("istio.istiod")),
               lambda found: found == ("SB6412", "fail", "not_ready"))


def test_istiod_missing(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    from kubernetes import client

    client.AppsV1Api(kube.api()).delete_namespaced_deployment("istiod", ISTIO_NAMESPACE)
    core(kube).delete_collection_namespaced_pod(ISTIO_NAMESPACE, label_selector="app=istiod", grace_period_seconds=0)
    assert finding(env.check("istio.istiod")) == ("SB6411", "fail", "missing")


# -- istio.ingress -------------------------------------------------------------------------------------
def test_clusterip_ingress_is_misconfigured_and_istio_nodeports_repairs_it(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    set_nodeports(kube, None, None, "ClusterIP")
    result = env.check("istio.ingress")
    assert finding(result) == ("SB6422", "fail", "misconfigured") and result["fix"] == "istio-nodeports"
    # Nothing listens on nodePorts yet, so no open connection moves: no --restart consent needed.
    assert_fixed(env, "istio-nodeports", "istio.ingress")
    assert nodeports(kube) == ("NodePort", {"http2": NODEPORT_HTTP, "https": NODEPORT_HTTPS})


def test_current_installers_nodeports_pass_and_the_fix_leaves_them_alone(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    set_nodeports(kube, 31080, 31443)  # the current bash installer's ports (UPSTREAM-CURRENT.md)
    result = env.check("istio.ingress")
    assert finding(result) == ("SB6420", "ok", "none")  # what the server runs wins
    assert result["details"]["live"] == {"http2": 31080, "https": 31443}
    assert result["details"]["configured"] == {"http2": NODEPORT_HTTP, "https": NODEPORT_HTTPS}
    assert result["details"]["differs_from_configured"] is True  # named in the summary, not failed
    # the fix changes nothing, with or without --restart
    for extra in ((), ("--restart",)):
        code, out = fix_json(env, "istio-nodeports", *extra)
        assert code == 0 and out["plan"]["changes"] == [] and out["plan"]["nothing_to_do"], out
        assert nodeports(kube) == ("NodePort", {"http2": 31080, "https": 31443})


def test_named_ports_move_working_ones_only_with_consent(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    set_nodeports(kube, 31080, 31443)
    wanted = ("--http-port", str(NODEPORT_HTTP), "--https-port", str(NODEPORT_HTTPS))
    # --dry-run changes nothing
    assert env.sbops("fix", "istio-nodeports", "--dry-run", "--restart", *wanted).returncode == 0
    assert nodeports(kube)[1] == {"http2": 31080, "https": 31443}
    # moving open nodePorts cuts connections: blocked without --restart, nothing changed
    code, out = fix_json(env, "istio-nodeports", *wanted)
    assert code == 3 and out["plan"]["blockers"], out
    assert nodeports(kube)[1] == {"http2": 31080, "https": 31443}
    assert_fixed(env, "istio-nodeports", "istio.ingress", "--restart", *wanted)
    assert nodeports(kube) == ("NodePort", {"http2": NODEPORT_HTTP, "https": NODEPORT_HTTPS})
    # bad flags are usage errors naming the flag
    bad = env.sbops("fix", "istio-nodeports", "--http-port", "8080")
    assert bad.returncode == 2 and "--http-port" in bad.stderr
    other = env.sbops("fix", "nfs-export", "--http-port", "31080")
    assert other.returncode == 2 and "does not apply" in other.stderr


def test_a_missing_https_port_fails_and_the_fix_adds_it_keeping_http(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    set_nodeports(kube, 31080, 31443)
    api = core(kube)
    svc = api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    svc.spec.ports = [p for p in svc.spec.ports if p.name != "https"]
    api.replace_namespaced_service(INGRESS, ISTIO_NAMESPACE, svc)
    result = env.check("istio.ingress")
    assert finding(result) == ("SB6423", "fail", "misconfigured") and result["details"]["absent"] == ["https"]
    assert_fixed(env, "istio-nodeports", "istio.ingress")  # no --restart: no open port moves
    assert nodeports(kube) == ("NodePort", {"http2": 31080, "https": NODEPORT_HTTPS})


def test_a_nodeport_that_leads_nowhere_fails_and_the_fix_retargets_it(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    api = core(kube)
    svc = api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    for port in svc.spec.ports:
        if port.name == "https":
            port.target_port = 9443  # no gateway container listens there
    api.replace_namespaced_service(INGRESS, ISTIO_NAMESPACE, svc)
    result = env.check("istio.ingress")
    assert finding(result) == ("SB6427", "fail", "misconfigured") and result["details"]["unreached"][0]["targetPort"] == 9443
    assert_fixed(env, "istio-nodeports", "istio.ingress")
    svc = api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    assert {p.name: (p.node_port, p.target_port) for p in svc.spec.ports if p.name in ("http2", "https")} == {
        "http2": (NODEPORT_HTTP, 8080), "https": (NODEPORT_HTTPS, 8443)}


def test_a_selector_that_misses_the_gateway_is_misconfigured_and_repaired(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    api = core(kube)
    svc = api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE)
    svc.spec.selector = {"app": "istiod"}  # routes to istiod's pod, not the gateway
    api.replace_namespaced_service(INGRESS, ISTIO_NAMESPACE, svc)
    assert finding(env.check("istio.ingress")) == ("SB6426", "fail", "misconfigured")
    assert_fixed(env, "istio-nodeports", "istio.ingress")
    assert api.read_namespaced_service(INGRESS, ISTIO_NAMESPACE).spec.selector == {"istio": "ingressgateway"}
    assert nodeports(kube) == ("NodePort", {"http2": NODEPORT_HTTP, "https": NODEPORT_HTTPS})


def test_ingress_without_ready_pod_on_the_living_cluster(living: LivingCluster, living_env: LabEnv) -> None:
    assert finding(living_env.check("istio.ingress")) == ("SB6420", "ok", "none")
    break_readiness(living, INGRESS)
    eventually("istio.ingress reports not_ready", lambda: finding(living_env.check("istio.ingress")),
               lambda found: found == ("SB6425", "fail", "not_ready"))


def test_ingress_service_missing_blocks_the_nodeports_fix(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    core(kube).delete_namespaced_service(INGRESS, ISTIO_NAMESPACE, _preload_content=False)
    assert finding(env.check("istio.ingress")) == ("SB6421", "fail", "missing")
    code, out = fix_json(env, "istio-nodeports")
    assert code == 3 and out["plan"]["blockers"]


# -- istio.gateway -------------------------------------------------------------------------------------
def test_deleted_gateway_is_missing_and_istio_gateway_recreates_it(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    custom(kube).delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "gateways", GATEWAY)
    assert finding(env.check("istio.gateway")) == ("SB6431", "fail", "missing")
    proc = env.sbops("fix", "istio-gateway", "--dry-run")
    assert proc.returncode == 0 and "create Gateway" in proc.stdout
    assert finding(env.check("istio.gateway")) == ("SB6431", "fail", "missing")
    assert_fixed(env, "istio-gateway", "istio.gateway")
    spec = get_obj(kube, "gateways", GATEWAY)["spec"]
    assert spec["servers"][0]["tls"] == {"mode": "SIMPLE", "credentialName": TLS_SECRET}
    assert spec["servers"][1]["tls"] == {"httpsRedirect": True}


@pytest.mark.parametrize("breakage", ["selector", "host", "credential"])
def test_misconfigured_gateway_is_repaired(kube: KubeLab, tmp_path: Path, breakage: str) -> None:
    env = lab_env(tmp_path, kube)

    def edit(spec: dict) -> None:
        if breakage == "selector":
            spec["selector"] = {"istio": "egressgateway"}
        elif breakage == "host":
            for server in spec["servers"]:
                server["hosts"] = ["portal.other-domain.com"]
        else:
            spec["servers"][0]["tls"]["credentialName"] = "stackbill-tls-secret"  # not in istio-system

    put_spec(kube, "gateways", GATEWAY, edit)
    result = env.check("istio.gateway")
    code = "SB6433" if breakage == "credential" else "SB6432"  # a credential that does not resolve / a wrong spec
    assert finding(result) == (code, "fail", "misconfigured")
    assert result["fix"] == "istio-gateway"
    proc = env.sbops("fix", "istio-gateway", "--dry-run")
    assert proc.returncode == 0 and "replace the spec of Gateway" in proc.stdout
    assert_fixed(env, "istio-gateway", "istio.gateway")


def test_missing_credential_secret_points_at_tls_secret(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    core(kube).delete_namespaced_secret(TLS_SECRET, ISTIO_NAMESPACE)
    result = env.check("istio.gateway")
    assert finding(result) == ("SB6433", "fail", "misconfigured")
    assert result["fix"] == "tls-secret"


# -- istio.virtualservice ------------------------------------------------------------------------------
def _route(spec: dict, prefix: str) -> dict:
    return next(h for h in spec["http"] if h["match"][0]["uri"]["prefix"] == prefix)


@pytest.mark.parametrize("breakage", ["port", "unbound", "hosts", "deleted"])
def test_broken_virtualservice_is_repaired(kube: KubeLab, tmp_path: Path, breakage: str) -> None:
    env = lab_env(tmp_path, kube)
    if breakage == "deleted":
        custom(kube).delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "virtualservices", VIRTUALSERVICE)
        expected = ("SB6441", "fail", "missing")
    else:
        def edit(spec: dict) -> None:
            if breakage == "port":
                _route(spec, "/core")["route"][0]["destination"]["port"]["number"] = 8000  # sb-core has 8080
            elif breakage == "unbound":
                spec["gateways"] = ["mesh"]
            else:
                spec["hosts"] = ["portal.other-domain.com"]

        put_spec(kube, "virtualservices", VIRTUALSERVICE, edit)
        expected = ("SB6442", "fail", "misconfigured")
    result = env.check("istio.virtualservice")
    assert finding(result) == expected
    if breakage == "port":
        assert any("sb-core" in p and "8000" in p and "8080" in p for p in result["details"]["problems"])
    assert_fixed(env, "istio-gateway", "istio.virtualservice")
    assert get_obj(kube, "virtualservices", VIRTUALSERVICE)["spec"]["hosts"] == [DOMAIN]


def test_fqdn_destination_is_accepted_and_empty_endpoints_are_not_ready(kube: KubeLab, tmp_path: Path) -> None:
    env = lab_env(tmp_path, kube)
    put_spec(kube, "virtualservices", VIRTUALSERVICE, lambda spec: _route(spec, "/admin")["route"][0]["destination"]
             .update(host=f"sb-admin.{NAMESPACE}.svc.cluster.local"))
    assert finding(env.check("istio.virtualservice")) == ("SB6440", "ok", "none")
    core(kube).replace_namespaced_endpoints("sb-ui", NAMESPACE, {"metadata": {"name": "sb-ui"}, "subsets": []})
    result = env.check("istio.virtualservice")
    assert finding(result) == ("SB6444", "fail", "not_ready")
    assert result["details"]["not_ready"] == ["sb-ui"]
