"""app.cloudconfiguration and app.portal through the living cluster (tests/lab/living.py), end to end.

Real here: the request goes to the node's address on the ingress gateway's NodePort (kube-proxy's iptables
rules), the gateway stand-in terminates TLS with the secret the kubelet mounted from istio-system, routes by
path to the ClusterIP Services, and kube-proxy sends it to a pod the endpoints controller listed because the
kubelet's readiness probe passed. sb-core's configuration route answers JSON only while sb-core can log in to
MySQL at the address of the Helm values, so stopping MySQL makes the kubelet mark sb-core NotReady and its
endpoints go: the gateway then answers 503 as Envoy does. Nothing is mocked and no pod status is written.

HTTP and TLS edge cases this gateway cannot produce stay in tests/integration/test_app.py, on its stand-in
HTTPS server (see that file's docstring).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from tests.integration.test_living_workloads import apps_api, core_api, eventually
from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding
from tests.lab.living import LivingCluster

NS = lab.NAMESPACE
ALL = ("app.cloudconfiguration", "app.portal")
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def doctor(env: LabEnv, *patterns: str, extra_env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`sbops doctor --output json` on the patterns, with extra environment variables (SSL_CERT_FILE)."""
    args = ["doctor", "--output", "json"]
    for pattern in patterns:
        args += ["--check", pattern]
    proc = env.sbops(*args, env=extra_env)
    assert proc.returncode in (0, 3, 4), f"doctor exited {proc.returncode}: {proc.stderr}"
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def ready_addresses(living: LivingCluster, service: str) -> list[str]:
    """The pod addresses the endpoints controller lists as Ready behind a Service."""
    endpoints = core_api(living).read_namespaced_endpoints(service, NS)
    return [a.ip for subset in endpoints.subsets or [] for a in subset.addresses or []]


def pod_ready(living: LivingCluster, app: str) -> list[str]:
    """The Ready condition of each running pod of `app`, as the kubelet set it."""
    return [next((c["status"] for c in p["status"].get("conditions", []) if c["type"] == "Ready"), "?")
            for p in living.pods() if p["metadata"]["labels"].get("app") == app
            and not p["metadata"].get("deletionTimestamp")]


def ingress_tls(living: LivingCluster) -> dict[str, str]:
    secret = core_api(living).read_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    return {k: base64.b64decode(v).decode() for k, v in secret.data.items()}


def replace_ingress_tls(living: LivingCluster, cert: str, key: str) -> None:
    """What `kubectl create secret tls --dry-run -o yaml | kubectl apply` does to the Gateway's secret."""
    core_api(living).replace_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE, {
        "metadata": {"name": lab.TLS_SECRET}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                 "tls.key": base64.b64encode(key.encode()).decode()}})


def served_certificate(living: LivingCluster) -> str:
    """The leaf the gateway presents on the NodePort for the domain (PEM), read without verification; or the
    connection's error as text, for eventually() to retry and to show: while kube-proxy catches up with a
    gateway pod that became Ready again, the NodePort refuses for a moment (its REJECT rule for a Service with
    no endpoints)."""
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((living.node_ip, lab.NODEPORT_HTTPS), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=lab.DOMAIN) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        return f"no certificate: {exc}"
    return ssl.DER_cert_to_PEM_cert(der)


def same_cert(a: str, b: str) -> bool:
    return "".join(a.split()[2:-2]) == "".join(b.split()[2:-2])  # the base64 body, whatever the line breaks


# -- healthy -----------------------------------------------------------------------------------------
def test_portal_answers_through_the_nodeport_gateway_service_and_pod(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    """The default target: https://<server_ip>:<the live HTTPS nodePort> with Host and SNI = the domain. The
    answer is sb-core's own JSON (it names the MySQL address of the Helm values and the server's version, so
    it came from the pod, which logged in), and the portal page is sb-ui's. With app.verify_tls and the lab
    CA as the trust store, the certificate of the secret the Gateway names verifies for the domain."""
    results = living_env.doctor("app.*")
    assert {cid: finding(results[cid]) for cid in ALL} == {
        "app.cloudconfiguration": ("SB7001", "ok", "none"), "app.portal": ("SB7010", "ok", "none")}, results
    config = results["app.cloudconfiguration"]["details"]
    assert config["url"] == f"https://{living.node_ip}:{lab.NODEPORT_HTTPS}/apidocs/api/cloudconfiguration/general"
    body = json.loads(config["body_start"])
    mysql = living.servers["mysql"]
    assert body["status"] == "success" and body["data"]["mysql"] == f"{living.host_ip}:{mysql.port}", body
    assert body["data"]["domain"] == lab.DOMAIN and body["data"]["serverVersion"], body
    assert results["app.portal"]["details"]["content_type"].startswith("text/html")

    ca = PEM.findall(ingress_tls(living)["tls.crt"])[-1]  # tls.crt is the leaf and the lab CA
    (tmp_path / "ca.pem").write_text(ca)
    verified = doctor(living_env.set("app.verify_tls", True), "app.*", extra_env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    assert {cid: verified[cid]["status"] for cid in ALL} == dict.fromkeys(ALL, "ok"), verified


# -- MySQL stops: the readiness probe fails for real ---------------------------------------------------
def test_mysql_down_makes_sb_core_not_ready_and_the_api_check_names_mysql(
        living: LivingCluster, living_env: LabEnv) -> None:
    mysql = living.servers["mysql"]
    assert ready_addresses(living, "sb-core"), "sb-core has no Ready endpoint before the test"
    mysql.stop()
    try:
        eventually("the kubelet marks sb-core NotReady", lambda: pod_ready(living, "sb-core"),
                   lambda states: states and all(s == "False" for s in states), timeout=60)
        eventually("sb-core leaves its Service's endpoints", lambda: ready_addresses(living, "sb-core"),
                   lambda found: not found, timeout=60)
        result = living_env.doctor("app.*")
        api = result["app.cloudconfiguration"]
        assert finding(api) == ("SB7004", "fail", "degraded"), api
        assert api["details"]["http_status"] == 503
        # the gateway's own answer: kube-proxy rejects a Service without endpoints
        assert "upstream connect error" in api["details"]["body_start"], api["details"]
        cause = api["details"]["likely_cause"]
        assert cause["check"].startswith("mysql.") and cause["cause"] == "database", cause
        assert cause["reason"] == "refused", cause
        assert cause["check"] in api["details"]["failed_related"]
        assert "netpath.mysql" in api["details"]["failed_related"], api["details"]["related_checks"]
        assert api["fix"] == cause["fix"]
        assert "mysql" in api["summary"].lower()
        # the portal page (sb-ui) does not need MySQL
        assert finding(result["app.portal"]) == ("SB7010", "ok", "none")
    finally:
        mysql.start()
    eventually("sb-core Ready again", lambda: ready_addresses(living, "sb-core"), bool, timeout=60)
    eventually("app.cloudconfiguration passes again", lambda: living_env.check("app.cloudconfiguration"),
               lambda r: r["status"] == "ok", timeout=30)


# -- the ingress certificate --------------------------------------------------------------------------
def test_expired_certificate_fails_the_app_checks_only_when_verifying(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    """The TLS secret replaced with a certificate that expired: the kubelet updates the mounted secret, the
    gateway serves the new pair. The app checks do not verify by default (sbops talks to an IP address), so
    they still pass; tls.certificate is the check that says the certificate expired. With app.verify_tls
    (and the new CA trusted) the handshake fails: SB7002 / SB7011 misconfigured, "certificate has expired" in
    the error, a tls.* check named as the likely cause."""
    import datetime as dt

    ca = lab.make_ca("sbops lab other CA")
    cert, key, ca_pem = lab.make_cert(lab.DOMAIN, days=30, ca=ca,
                                      not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40))
    replace_ingress_tls(living, cert + ca_pem, key)
    eventually("the gateway serves the expired certificate", lambda: same_cert(served_certificate(living), cert),
               bool, timeout=90)

    plain = living_env.doctor("app.*", "tls.certificate")
    assert {cid: plain[cid]["status"] for cid in ALL} == dict.fromkeys(ALL, "ok"), plain
    assert finding(plain["tls.certificate"])[1:] == ("fail", "expired"), plain["tls.certificate"]

    (tmp_path / "ca.pem").write_text(ca_pem)
    verified = doctor(living_env.set("app.verify_tls", True), "app.*", extra_env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    for cid, code in (("app.cloudconfiguration", "SB7002"), ("app.portal", "SB7011")):
        assert finding(verified[cid]) == (code, "fail", "misconfigured"), verified[cid]
        assert "expired" in verified[cid]["details"]["error"], verified[cid]["details"]
        assert verified[cid]["details"]["likely_cause"]["check"].startswith("tls."), verified[cid]["details"]


def test_certificate_of_another_domain_fails_verification_with_a_hostname_mismatch(
        living: LivingCluster, living_env: LabEnv, tmp_path: Path) -> None:
    ca = lab.make_ca("sbops lab other CA")
    cert, key, ca_pem = lab.make_cert("other.example.org", days=30, ca=ca)
    replace_ingress_tls(living, cert + ca_pem, key)
    eventually("the gateway serves the other certificate", lambda: same_cert(served_certificate(living), cert),
               bool, timeout=90)
    (tmp_path / "ca.pem").write_text(ca_pem)
    verified = doctor(living_env.set("app.verify_tls", True), "app.*", "tls.certificate",
                      extra_env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    portal = verified["app.portal"]
    assert finding(portal) == ("SB7011", "fail", "misconfigured"), portal
    assert "mismatch" in portal["details"]["error"].lower() or "doesn't match" in portal["details"]["error"], portal
    assert verified["tls.certificate"]["status"] == "fail", verified["tls.certificate"]
    assert portal["details"]["likely_cause"]["check"].startswith("tls."), portal["details"]


# -- the portal's pods gone ----------------------------------------------------------------------------
def test_sb_ui_scaled_to_zero_fails_the_portal_with_no_healthy_upstream(
        living: LivingCluster, living_env: LabEnv) -> None:
    apps_api(living).patch_namespaced_deployment_scale("sb-ui", NS, {"spec": {"replicas": 0}})
    eventually("sb-ui's pods are gone", lambda: [p for p in living.pods()
                                                if p["metadata"]["labels"].get("app") == "sb-ui"], lambda left: not left)
    eventually("sb-ui has no endpoints", lambda: ready_addresses(living, "sb-ui"), lambda found: not found)
    results = living_env.doctor("app.*")
    portal = results["app.portal"]
    assert finding(portal) == ("SB7012", "fail", "degraded"), portal
    assert portal["details"]["http_status"] == 503
    assert "no healthy backend" in portal["summary"], portal["summary"]
    # the API is sb-core's route, which is still served
    assert finding(results["app.cloudconfiguration"]) == ("SB7001", "ok", "none")


def test_ingress_gateway_scaled_to_zero_is_refused_at_the_nodeport(living: LivingCluster, living_env: LabEnv) -> None:
    """No gateway pod: kube-proxy rejects the NodePort (nothing listens behind it), so both checks are refused
    and the way in (istio.ingress) is the likely cause."""
    apps_api(living).patch_namespaced_deployment_scale("istio-ingressgateway", lab.ISTIO_NAMESPACE,
                                                       {"spec": {"replicas": 0}})
    eventually("the gateway's pods are gone", lambda: living.pods(lab.ISTIO_NAMESPACE),
               lambda pods: not [p for p in pods if p["metadata"]["labels"].get("app") == "istio-ingressgateway"])
    results = living_env.doctor("app.*")
    assert finding(results["app.cloudconfiguration"]) == ("SB7002", "fail", "refused"), results["app.cloudconfiguration"]
    assert finding(results["app.portal"]) == ("SB7011", "fail", "refused"), results["app.portal"]
    assert results["app.portal"]["details"]["likely_cause"]["check"] == "istio.ingress", results["app.portal"]["details"]
