"""The lab's Helm charts (tests/lab/charts/stackbill, istio-gateway), rendered by real Helm and checked object by
object against what the lab seeds (tests/lab/kube.py), what sbops's installer passes (chart_values), and each
other (the gateway's route table must point at the Services' pinned addresses)."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sbops.install.kubernetes import chart_values
from tests.lab import kube
from tests.lab.images import IMAGES

CHARTS = Path(__file__).resolve().parents[1] / "lab" / "charts"
STACKBILL, GATEWAY = CHARTS / "stackbill", CHARTS / "istio-gateway"
SERVICE_NET = ipaddress.ip_network("10.43.0.0/16")
APPS = {"sb-admin": 80, "sb-ui": 80, "sb-core": 8080, "sb-kong": 8000}
PASSWORDS = {"mysql": "My-Sql-Pw-1234567", "mongo": "Mongo-Pw-7654321", "rabbitmq": "Rabbit-Pw-1122334"}


def installer_values() -> dict[str, Any]:
    """What sbops's installer passes (its own chart_values) for a credentials file whose MySQL is on a private
    port, as the lab's is: the installer passes that port on."""

    def section(name: str, port: int) -> SimpleNamespace:
        return SimpleNamespace(host="10.99.0.1", port=port, username="stackbill",
                               password=SimpleNamespace(reveal=lambda: PASSWORDS[name]))

    creds = SimpleNamespace(server_ip="10.99.0.1", nfs_server="", nfs_path="/data/stackbill",
                            mysql=section("mysql", 13306), mongodb=section("mongo", 27017),
                            rabbitmq=section("rabbitmq", 5672))
    values = chart_values(creds, kube.DOMAIN)  # type: ignore[arg-type]
    assert values["global"]["mysql"]["port"] == 13306
    return values


def render(helm_bin: str, helm_env: dict[str, str], chart: Path, namespace: str, tmp_path: Path,
           values: dict[str, Any] | None = None) -> tuple[str, list[dict[str, Any]]]:
    args = [helm_bin, "template", "release", str(chart), "--namespace", namespace]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        path.chmod(0o600)
        args += ["--values", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, env=helm_env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("chart", [STACKBILL, GATEWAY], ids=lambda p: p.name)
def test_lint(helm_bin: str, helm_env: dict[str, str], chart: Path) -> None:
    proc = subprocess.run([helm_bin, "lint", "--strict", str(chart)], capture_output=True, text=True,
                          env=helm_env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_identity() -> None:
    meta = yaml.safe_load((STACKBILL / "Chart.yaml").read_text())
    assert (meta["name"], meta["version"]) == ("stackbill", kube.CHART_VERSION)
    values = yaml.safe_load((STACKBILL / "values.yaml").read_text())
    assert values["image"] == {"registry": kube.REGISTRY, "tag": "lab", "pullPolicy": "Always"}
    assert {"mysql": 3306, "mongo": 27017, "rabbitmq": 5672} == {k: values["global"][k]["port"] for k in PASSWORDS}
    assert set(values["apps"]) | {"pause", "istio-ingressgateway"} == set(IMAGES)


def test_stackbill_workloads(helm_bin: str, helm_env: dict[str, str], tmp_path: Path) -> None:
    text, docs = render(helm_bin, helm_env, STACKBILL, kube.NAMESPACE, tmp_path, installer_values())
    assert {d["metadata"]["namespace"] for d in docs} == {kube.NAMESPACE}
    deployments, services, secrets = by_kind(docs, "Deployment"), by_kind(docs, "Service"), by_kind(docs, "Secret")
    assert set(deployments) == set(APPS) == set(services)
    assert kube.PULL_SECRET not in secrets  # the installer's ECR step writes it, as in production
    (credentials,) = secrets.values()
    for name, port in APPS.items():
        dep = deployments[name]
        assert dep["metadata"]["labels"]["app"] == name
        assert dep["spec"]["replicas"] == 1 and dep["spec"]["selector"]["matchLabels"] == {"app": name}
        pod = dep["spec"]["template"]
        assert pod["metadata"]["labels"] == {"app": name}
        assert pod["spec"]["imagePullSecrets"] == [{"name": kube.PULL_SECRET}]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == f"{kube.REGISTRY}/{name}:lab" and container["imagePullPolicy"] == "Always"
        assert container["args"] == [name, str(port)] and container["ports"][0]["containerPort"] == port
        env = {e["name"]: e for e in container["env"]}
        assert env["MYSQL_HOST"]["value"] == "10.99.0.1" and env["MYSQL_PORT"]["value"] == "13306"
        assert env["RABBITMQ_PORT"]["value"] == "5672" and env["MONGO_PORT"]["value"] == "27017"
        for key in PASSWORDS:
            ref = env[f"{key.upper()}_PASSWORD"]
            assert "value" not in ref
            assert ref["valueFrom"]["secretKeyRef"] == {"name": credentials["metadata"]["name"],
                                                        "key": f"{key}-password"}
            assert f"{key}-password" in credentials["data"]
        assert all(e.get("value") not in PASSWORDS.values() for e in container["env"])
        assert container["readinessProbe"]["httpGet"]["port"] == "http"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

        svc = services[name]
        assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["selector"] == {"app": name}
        assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in SERVICE_NET
        assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("http", port)]
    core = deployments["sb-core"]["spec"]["template"]["spec"]["containers"][0]
    assert core["readinessProbe"]["httpGet"]["path"] == "/apidocs/api/cloudconfiguration/general"
    assert {"name": "SB_MYSQL_CHECK", "value": "login"} in core["env"]
    assert len({s["spec"]["clusterIP"] for s in services.values()}) == len(services)
    assert not [pw for pw in PASSWORDS.values() if pw in text]  # only base64 in the Secret


def test_stackbill_istio_objects_match_the_seeded_ones(helm_bin: str, helm_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    _, docs = render(helm_bin, helm_env, STACKBILL, kube.NAMESPACE, tmp_path, installer_values())
    (gateway,) = by_kind(docs, "Gateway").values()
    (vs,) = by_kind(docs, "VirtualService").values()
    assert gateway["apiVersion"] == vs["apiVersion"] == f"{kube.ISTIO_GROUP}/{kube.ISTIO_VERSION_API}"
    assert gateway["metadata"]["name"] == kube.GATEWAY and vs["metadata"]["name"] == kube.VIRTUALSERVICE
    assert gateway["spec"] == {"selector": {"istio": "ingressgateway"}, "servers": [
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": [kube.DOMAIN],
         "tls": {"mode": "SIMPLE", "credentialName": kube.TLS_SECRET}},
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [kube.DOMAIN],
         "tls": {"httpsRedirect": True}}]}
    assert vs["spec"]["hosts"] == [kube.DOMAIN] and vs["spec"]["gateways"] == [kube.GATEWAY]
    routes = [(h["match"][0]["uri"]["prefix"], h["route"][0]["destination"]["host"],
               h["route"][0]["destination"]["port"]["number"]) for h in vs["spec"]["http"]]
    assert set(kube.ROUTES) | {("/apidocs", "sb-core", 8080), ("/", "sb-ui", 80)} == set(routes)
    # Istio takes the first match: no prefix may be shadowed by an earlier one, and "/" comes last.
    for i, (prefix, _, _) in enumerate(routes):
        assert not [earlier for earlier, _, _ in routes[:i] if prefix.startswith(earlier)], routes
    assert routes[-1][0] == "/"


def test_stackbill_refuses_a_cluster_ip_outside_the_service_network(helm_bin: str, helm_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"apps": {"sb-ui": {"clusterIP": "10.42.0.9"}}}))
    proc = subprocess.run([helm_bin, "template", "r", str(STACKBILL), "--values", str(path)],
                          capture_output=True, text=True, env=helm_env, timeout=60)
    assert proc.returncode != 0 and "not inside the service network" in proc.stderr


def test_istio_gateway_chart(helm_bin: str, helm_env: dict[str, str], tmp_path: Path) -> None:
    _, docs = render(helm_bin, helm_env, GATEWAY, kube.ISTIO_NAMESPACE, tmp_path)
    _, stackbill = render(helm_bin, helm_env, STACKBILL, kube.NAMESPACE, tmp_path)
    assert {d["metadata"]["namespace"] for d in docs} == {kube.ISTIO_NAMESPACE}
    deployments, services = by_kind(docs, "Deployment"), by_kind(docs, "Service")
    assert set(deployments) == {"istio-ingressgateway", "istiod"}

    gw = deployments["istio-ingressgateway"]
    labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert gw["spec"]["template"]["metadata"]["labels"] == labels and gw["metadata"]["labels"].items() >= labels.items()
    (proxy,) = gw["spec"]["template"]["spec"]["containers"]
    assert proxy["image"] == f"{kube.REGISTRY}/istio-ingressgateway:lab"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    volumes = {v["name"]: v for v in gw["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ingressgateway-certs"]["secret"]["secretName"] == kube.TLS_SECRET
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    env = {e["name"]: e["value"] for e in proxy["env"]}
    assert env["GW_CERT"] == mounts["ingressgateway-certs"] + "/tls.crt"
    assert env["GW_ROUTES"] == mounts["routes"] + "/routes"

    svc = services["istio-ingressgateway"]["spec"]
    assert svc["type"] == "NodePort" and svc["selector"] == {"istio": "ingressgateway"}
    assert [(p["name"], p["port"], p["targetPort"], p.get("nodePort")) for p in svc["ports"]] == [
        ("status-port", 15021, 15021, None), ("http2", 80, 8080, kube.NODEPORT_HTTP),
        ("https", 443, 8443, kube.NODEPORT_HTTPS)]

    istiod = deployments["istiod"]["spec"]["template"]
    assert istiod["metadata"]["labels"]["app"] == "istiod"
    assert istiod["spec"]["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 15014}

    # The route table: the stackbill chart's VirtualService, with its Services' pinned addresses.
    (config,) = by_kind(docs, "ConfigMap").values()
    table = [line.split() for line in config["data"]["routes"].splitlines()]
    addresses = {name: s["spec"]["clusterIP"] for name, s in by_kind(stackbill, "Service").items()}
    ports = {name: s["spec"]["ports"][0]["port"] for name, s in by_kind(stackbill, "Service").items()}
    (vs,) = by_kind(stackbill, "VirtualService").values()
    wanted = {(h["match"][0]["uri"]["prefix"], h["route"][0]["destination"]["host"]) for h in vs["spec"]["http"]}
    assert {(prefix, name) for prefix, _, _, name in table} == wanted
    for prefix, address, port, name in table:
        assert (address, int(port)) == (addresses[name], ports[name]), prefix
