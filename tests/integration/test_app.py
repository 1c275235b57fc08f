"""App layer against a real local HTTPS server (tests/lab/https.py) standing in for the ingress gateway.

The portal end to end (the real NodePort, gateway, Service and pod; MySQL stopped so the kubelet marks sb-core
NotReady; expired and foreign certificates; sb-ui and the gateway scaled to zero) is tested on the living cluster
in test_living_app.py. What stays here is what the living gateway cannot produce or show:
- the Host header and TLS server name sbops sends (the stand-in server records them);
- a 500 from the API itself (sb-core's stand-in answers 503), a 404 "no Route matched" on the API path, a 200
  HTML white page, an API that hangs (the living gateway answers 503 after its upstream timeout), a portal
  503 and a redirect, a domain the gateway has no route for (the living gateway does not route by Host), and
  a certificate no CA vouches for;
- likely causes read from the API-only cluster (a VirtualService unbound from the Gateway: the living
  gateway routes from its own table, not from the VirtualService; a ClusterIP ingress) and the live nodePorts
  of the bash installer (31080/31443).
Every check id appears here: "app.cloudconfiguration", "app.portal". No fixes of its own (the fix is the
cause's): the likely-cause test breaks a lab database (MYSQL section on a closed port) and sees the check
name it and its fix.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.lab.common import free_port
from tests.lab.env import LabEnv, status
from tests.lab.https import CLOUDCONFIG_PATH, DOMAIN, HttpsServer, Reply


def finding(result: dict) -> tuple[str, str, str]:
    """A check's (code, status, reason): the finding of the catalog (sbops.messages/app.py), not its wording."""
    return result["code"], result["status"], result["reason"]


ALL = ("app.cloudconfiguration", "app.portal")


def lab_env(root: Path, server: HttpsServer, *, timeout: float = 5) -> LabEnv:
    env = LabEnv(root).set("app.url", server.url).set("timeout", timeout)
    # The databases point at closed ports unless a test says otherwise (LabEnv's defaults: port 1).
    env.service("mysql", port=free_port(), password="lab-mysql-pw")
    return env


def test_healthy_portal_passes_and_sends_the_domain(https_portal: HttpsServer, tmp_path: Path) -> None:
    results = lab_env(tmp_path, https_portal).doctor("app.*")
    assert {cid: status(results[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}
    seen = {r["path"]: r for r in https_portal.requests}
    assert seen[CLOUDCONFIG_PATH]["host"] == DOMAIN and seen[CLOUDCONFIG_PATH]["sni"] == DOMAIN
    assert seen["/"]["host"] == DOMAIN


def test_api_error_names_the_database_as_likely_cause(https_portal: HttpsServer, tmp_path: Path) -> None:
    https_portal.set(CLOUDCONFIG_PATH, Reply(500, b'{"error":"Could not open JDBC Connection"}', "application/json"))
    result = lab_env(tmp_path, https_portal).check("app.cloudconfiguration")
    assert finding(result) == ("SB7004", "fail", "degraded")
    assert "mysql.auth" in result["details"]["failed_related"]
    assert result["details"]["related_checks"]["mysql.auth"] == "fail/refused"
    assert result["details"]["likely_cause"]["check"] == "mysql.auth"
    assert result["details"]["likely_cause"]["cause"] == "database"
    assert result["code"] == "SB7004"  # its own finding; the cause is in details.likely_cause
    assert result["fix"] == "mysql-user"


def test_api_not_found_is_kong_routing(https_portal: HttpsServer, tmp_path: Path) -> None:
    https_portal.set(CLOUDCONFIG_PATH, Reply(404, b"no Route matched with those values", "application/json"))
    assert finding(lab_env(tmp_path, https_portal).check("app.cloudconfiguration")) == ("SB7004", "fail",
                                                                                         "misconfigured")


def test_api_answering_html_is_the_white_page(https_portal: HttpsServer, tmp_path: Path) -> None:
    https_portal.set(CLOUDCONFIG_PATH, Reply.html())
    result = lab_env(tmp_path, https_portal).check("app.cloudconfiguration")
    assert finding(result) == ("SB7003", "fail", "misconfigured")
    assert result["details"]["http_status"] == 200


def test_hanging_api_times_out_within_the_check_timeout(https_portal: HttpsServer, tmp_path: Path) -> None:
    https_portal.set(CLOUDCONFIG_PATH, Reply.hang_forever())
    began = time.monotonic()
    result = lab_env(tmp_path, https_portal, timeout=1.5).check("app.cloudconfiguration")
    assert finding(result) == ("SB7002", "fail", "timeout")
    assert time.monotonic() - began < 15


def test_portal_errors_and_redirects(https_portal: HttpsServer, tmp_path: Path) -> None:
    env = lab_env(tmp_path, https_portal)
    https_portal.set("/", Reply(503, b"no healthy upstream"))
    assert finding(env.check("app.portal")) == ("SB7012", "fail", "degraded")
    https_portal.set("/", Reply(302, b"", headers=(("Location", "/portal/"),)))
    result = env.check("app.portal")
    assert finding(result) == ("SB7010", "ok", "none") and result["details"]["location"] == "/portal/"


def test_wrong_domain_gets_no_route(https_portal: HttpsServer, tmp_path: Path) -> None:
    env = lab_env(tmp_path, https_portal).set("domain", "other.example.org")
    assert finding(env.check("app.portal")) == ("SB7012", "fail", "misconfigured")
    assert https_portal.requests[-1]["host"] == "other.example.org"


def test_verify_tls_rejects_an_untrusted_certificate_and_accepts_a_trusted_one(
        https_portal: HttpsServer, tmp_path: Path) -> None:
    env = lab_env(tmp_path, https_portal).set("app.verify_tls", True)
    assert finding(env.check("app.portal")) == ("SB7011", "fail", "misconfigured")
    proc = env.sbops("doctor", "--output", "json", "--check", "app.portal",
                     env={"SSL_CERT_FILE": str(https_portal.cert_path)})
    import json

    result = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}["app.portal"]
    assert finding(result) == ("SB7010", "ok", "none")


# -- the likely cause from the cluster (tests/lab/kube.py) ---------------------------------------------
def test_not_found_names_the_broken_virtualservice(kube, https_portal: HttpsServer, tmp_path: Path) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(kube.api())
    body = api.get_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "virtualservices", "stackbill-vs")
    body["spec"]["gateways"] = ["mesh"]  # no longer bound to the Gateway: the gateway answers 404
    api.replace_namespaced_custom_object("networking.istio.io", "v1beta1", "sb-apps", "virtualservices", "stackbill-vs",
                                         body)
    https_portal.set(CLOUDCONFIG_PATH, Reply(404, b""))
    result = lab_env(tmp_path, https_portal).set("kubeconfig", str(kube.kubeconfig)).check("app.cloudconfiguration")
    assert finding(result) == ("SB7004", "fail", "misconfigured")
    assert result["details"]["likely_cause"]["check"] == "istio.virtualservice"
    assert result["details"]["likely_cause"]["cause"] == "Kong routing"
    assert result["fix"] == "istio-gateway"


def test_refused_portal_names_the_clusterip_ingress(kube, tmp_path: Path) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube.api())
    svc = core.read_namespaced_service("istio-ingressgateway", "istio-system")
    svc.spec.type = "ClusterIP"
    for port in svc.spec.ports:
        port.node_port = None
    core.replace_namespaced_service("istio-ingressgateway", "istio-system", svc)
    env = LabEnv(tmp_path).set("kubeconfig", str(kube.kubeconfig)).set("server_ip", "127.0.0.1") \
        .set("nodeport_https", free_port())
    result = env.check("app.portal")
    assert finding(result) == ("SB7011", "fail", "refused")
    assert result["details"]["likely_cause"]["check"] == "istio.ingress"
    assert result["fix"] == "istio-nodeports"


# -- the live nodePorts win (the current bash installer's 31080/31443) ---------------------------------------
class Forwarder:
    """A TCP forwarder from a port in the NodePort range to the lab portal: what kube-proxy does for a
    nodePort (no kube-proxy runs in the lab)."""

    def __init__(self, target: int) -> None:
        import socket
        import threading

        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for port in range(30500, 32700, 7):
            try:
                self.sock.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:  # noqa: ANN001
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_app_checks_dial_the_live_https_nodeport_not_the_configured_one(kube, https_portal: HttpsServer,
                                                                         tmp_path: Path) -> None:
    from kubernetes import client

    forwarder = Forwarder(https_portal.port)
    try:
        core = client.CoreV1Api(kube.api())
        svc = core.read_namespaced_service("istio-ingressgateway", "istio-system")
        for port in svc.spec.ports:
            if port.name == "http2":
                port.node_port = 31080
            elif port.name == "https":
                port.node_port = forwarder.port
        core.replace_namespaced_service("istio-ingressgateway", "istio-system", svc)
        # the configured (default) 31882 has nothing behind it; the Service's live HTTPS port has the portal
        env = LabEnv(tmp_path).set("kubeconfig", str(kube.kubeconfig)).set("server_ip", "127.0.0.1")
        results = env.doctor("app.*")
        assert {cid: status(results[cid]) for cid in ALL} == {cid: ("ok", "none") for cid in ALL}
        assert https_portal.requests, "the portal was not asked"
        # without a readable Service the configured port is used, and nothing answers there
        blind = LabEnv(tmp_path / "blind").set("server_ip", "127.0.0.1").set("nodeport_https", free_port())
        assert status(blind.check("app.portal"))[0] == "fail"
    finally:
        forwarder.close()
