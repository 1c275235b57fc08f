"""The API-only test cluster itself (tests/lab/kube.py): a real kube-apiserver v1.20.2 + etcd, seeded as the
contract says, reset back to that state, and narrow static-token users that RBAC really restricts.

Its pods' statuses are the seed's, not a kubelet's, so nothing here asserts on them: what pods really report
(containerd containerIDs, Ready conditions from readiness probes) is tested on the living cluster, in
tests/integration/test_living_workloads.py."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.lab import kube as kl


def core(lab: kl.KubeLab):
    from kubernetes import client

    return client.CoreV1Api(lab.api())


def test_seed_matches_the_contract(kube: kl.KubeLab) -> None:
    from kubernetes import client

    api = kube.api()
    v1, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    node = v1.read_node(kl.NODE)
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert v1.read_namespace("sb-apps").metadata.labels == {"istio-injection": "enabled"}
    v1.read_namespace("istio-system")

    for name, port in kl.SERVICES.items():
        deploy = apps.read_namespaced_deployment(name, "sb-apps")
        assert deploy.spec.template.spec.containers[0].image == f"{kl.REGISTRY}/{name}:latest"
        assert [s.name for s in deploy.spec.template.spec.image_pull_secrets] == ["awscred"]
        assert deploy.status.ready_replicas == 1
        svc = v1.read_namespaced_service(name, "sb-apps")
        assert svc.spec.selector == {"app": name} and svc.spec.ports[0].port == port
        assert svc.spec.ports[0].name in ("http", "tcp")
        ep = v1.read_namespaced_endpoints(name, "sb-apps")
        assert ep.subsets[0].addresses[0].ip.startswith("10.42.0.")
        pods = v1.list_namespaced_pod("sb-apps", label_selector=f"app={name}").items
        assert len(pods) == 1
        pod = pods[0]
        assert pod.metadata.name.startswith(name + "-")
        assert [c.name for c in pod.spec.containers] == [name, "istio-proxy"]

    pull = v1.read_namespaced_secret("awscred", "sb-apps")
    assert pull.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull.data[".dockerconfigjson"]))["auths"][kl.REGISTRY]
    assert auths["username"] == "AWS"
    expiry = json.loads(base64.b64decode(auths["password"]))["expiration"]
    left = expiry - time.time()
    assert 10.9 * 3600 < left <= 11 * 3600

    tls = v1.read_namespaced_secret("istio-ingressgateway-certs", "istio-system")
    assert tls.type == "kubernetes.io/tls"
    assert base64.b64decode(tls.data["tls.crt"]).decode().count("BEGIN CERTIFICATE") == 2

    gw = v1.read_namespaced_service("istio-ingressgateway", "istio-system")
    assert gw.spec.type == "NodePort" and gw.spec.selector == {"istio": "ingressgateway"}
    assert {p.name: (p.port, p.node_port) for p in gw.spec.ports if p.name != "status-port"} == {
        "http2": (80, 31443), "https": (443, 31882)}
    for selector in ("istio=ingressgateway", "app=istiod,istio=pilot"):
        pods = v1.list_namespaced_pod("istio-system", label_selector=selector).items
        assert len(pods) == 1

    gateway = custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "gateways",
                                                  "stackbill-gateway")
    https = [s for s in gateway["spec"]["servers"] if s["port"]["protocol"] == "HTTPS"][0]
    assert https["tls"] == {"mode": "SIMPLE", "credentialName": "istio-ingressgateway-certs"}
    assert https["hosts"] == [kl.DOMAIN]
    vs = custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "virtualservices",
                                             "stackbill-vs")
    routes = {r["match"][0]["uri"]["prefix"]: (r["route"][0]["destination"]["host"],
                                               r["route"][0]["destination"]["port"]["number"])
              for r in vs["spec"]["http"]}
    assert routes == {"/admin": ("sb-admin", 80), "/portal": ("sb-ui", 80), "/api": ("sb-kong", 8000),
                      "/core": ("sb-core", 8080)}

    sc = client.StorageV1Api(api).read_storage_class("nfs-client")
    assert sc.provisioner == "cluster.local/nfs-subdir-external-provisioner"
    assert v1.read_namespaced_persistent_volume_claim("sb-data", "sb-apps").status.phase == "Bound"
    prov = v1.list_namespaced_pod("nfs-provisioner", label_selector="app=nfs-subdir-external-provisioner").items
    assert len(prov) == 1

    helm = v1.read_namespaced_secret("sh.helm.release.v1.stackbill.v1", "sb-apps")
    assert helm.type == "helm.sh/release.v1"
    assert helm.metadata.labels == {"owner": "helm", "name": "stackbill", "status": "deployed", "version": "1"}
    release = kl.helm_decode(base64.b64decode(helm.data["release"]).decode())
    assert release["info"]["status"] == "deployed" and release["chart"]["metadata"]["name"] == "stackbill"


def test_reset_undoes_breakage(kube: kl.KubeLab) -> None:
    from kubernetes import client

    api = kube.api()
    v1, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    v1.delete_collection_namespaced_pod("sb-apps", label_selector="app=sb-core", grace_period_seconds=0)
    v1.delete_namespaced_secret("awscred", "sb-apps")
    v1.patch_namespace("sb-apps", {"metadata": {"labels": {"istio-injection": None, "extra": "x"}}})
    v1.create_namespaced_secret("sb-apps", {"metadata": {"name": "extra"}, "stringData": {"a": "b"}})
    custom.delete_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "gateways",
                                           "stackbill-gateway")
    v1.delete_namespaced_persistent_volume_claim("sb-data", "sb-apps")
    v1.delete_node(kl.NODE)
    apps.patch_namespaced_deployment("sb-ui", "sb-apps", {"spec": {"replicas": 3}})
    v1.delete_namespace("istio-system")  # stuck Terminating without a namespace controller

    started = time.monotonic()
    kube.reset()
    elapsed = time.monotonic() - started

    assert v1.read_namespace("sb-apps").metadata.labels == {"istio-injection": "enabled"}
    assert v1.read_namespace("istio-system").metadata.deletion_timestamp is None
    assert {s.metadata.name for s in v1.list_namespaced_secret("sb-apps").items} == {
        "awscred", "sh.helm.release.v1.stackbill.v1"}
    assert len(v1.list_namespaced_pod("sb-apps", label_selector="app=sb-core").items) == 1
    assert apps.read_namespaced_deployment("sb-ui", "sb-apps").spec.replicas == 1
    custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "gateways", "stackbill-gateway")
    assert v1.read_namespaced_persistent_volume_claim("sb-data", "sb-apps").status.phase == "Bound"
    assert v1.read_node(kl.NODE).status.conditions
    assert len(v1.list_namespaced_pod("istio-system").items) == 2
    print(f"reset took {elapsed:.2f}s")
    assert elapsed < 10


def test_narrow_token_can_list_pods_but_not_delete_them(kube: kl.KubeLab) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    path = kube.token_kubeconfig("readonly", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    narrow = client.CoreV1Api(config.new_client_from_config(config_file=str(path)))
    names = [p.metadata.name for p in narrow.list_namespaced_pod("sb-apps").items]
    assert len(names) == len(kl.SERVICES)
    with pytest.raises(ApiException) as denied:
        narrow.delete_namespaced_pod(names[0], "sb-apps")
    assert denied.value.status == 403
    with pytest.raises(ApiException) as secrets:
        narrow.list_namespaced_secret("sb-apps")
    assert secrets.value.status == 403
    with pytest.raises(KeyError):
        kube.token_kubeconfig("nobody", [])


def test_kubeconfig_verifies_the_server_certificate(kube_lab: kl.KubeLab) -> None:
    import yaml

    doc = yaml.safe_load(kube_lab.kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    assert "certificate-authority-data" in cluster and "insecure-skip-tls-verify" not in cluster
    assert cluster["server"] == kube_lab.server
    assert core(kube_lab).read_namespace("default").metadata.name == "default"


def test_sbops_reads_the_lab_kubeconfig(kube_lab: kl.KubeLab, tmp_path) -> None:
    from sbops.kube import validate

    validate(kube_lab.kubeconfig)
