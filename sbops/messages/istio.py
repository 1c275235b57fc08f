"""Istio's findings (SB64xx): istio.istiod, istio.ingress, istio.gateway, istio.virtualservice."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

ISTIOD, INGRESS, GATEWAY, VS = (f"runbooks/istio.{name}.md" for name in ("istiod", "ingress", "gateway",
                                                                          "virtualservice"))

# istio.istiod
ISTIOD_READY = define("SB6410", "IstiodReady", Status.OK, "istiod ready in {namespace} ({ready}/{count} pod(s))",
                      ISTIOD, Reason.NONE)
ISTIOD_MISSING = define("SB6411", "IstiodMissing", Status.FAIL,
                        "istiod is not installed: no Deployment or pod labelled {label} in {namespace}", ISTIOD,
                        Reason.MISSING)
ISTIOD_NOT_READY = define("SB6412", "IstiodNotReady", Status.FAIL,
                          "istiod in {namespace} is not ready ({what}): the gateway gets no configuration", ISTIOD,
                          Reason.NOT_READY)

# istio.ingress
INGRESS_SERVED = define("SB6420", "IngressNodePortsServed", Status.OK,
                        "ingress gateway {kind} {service}: http2 {http}, https {https}, {ready} ready pod(s){note}",
                        INGRESS, Reason.NONE)
INGRESS_SERVICE_MISSING = define("SB6421", "IngressServiceMissing", Status.FAIL,
                                 "the ingress gateway Service {namespace}/{service} does not exist: the portal has no "
                                 "way in", INGRESS, Reason.MISSING)
INGRESS_NOT_NODEPORT = define("SB6422", "IngressServiceNotNodePort", Status.FAIL,
                              "ingress gateway Service {service} is type {kind}, not NodePort: nothing listens on the "
                              "nodes", INGRESS, Reason.MISCONFIGURED)
INGRESS_NODEPORT_ABSENT = define("SB6423", "IngressNodePortAbsent", Status.FAIL,
                                 "ingress gateway Service {service} has no nodePort for {ports}: the portal cannot be "
                                 "reached over {protocols}", INGRESS, Reason.MISCONFIGURED)
INGRESS_NODEPORT_SHARED = define("SB6424", "IngressNodePortShared", Status.FAIL,
                                 "ingress gateway Service {service} puts HTTP and HTTPS on one nodePort ({port})",
                                 INGRESS, Reason.MISCONFIGURED)
INGRESS_PODS_NOT_READY = define("SB6425", "IngressGatewayNotReady", Status.FAIL,
                                "no ready ingress gateway pod behind {service} ({what}): the nodePorts answer nothing",
                                INGRESS, Reason.NOT_READY)
INGRESS_SELECTS_STRANGERS = define("SB6426", "IngressSelectorWrong", Status.FAIL,
                                   "{service}'s selector {selector} picks pods that are not the ingress gateway "
                                   "({gateway_selector})", INGRESS, Reason.MISCONFIGURED)
INGRESS_UNREACHED = define("SB6427", "IngressNodePortsLeadNowhere", Status.FAIL,
                           "ingress gateway nodePorts lead nowhere: {ports}, which no gateway container declares",
                           INGRESS, Reason.MISCONFIGURED)

# istio.gateway
GATEWAY_SERVES = define("SB6430", "GatewayServesDomain", Status.OK,
                        "Gateway {gateway}: selects the ingress gateway, serves {hosts} over HTTPS with {credential}",
                        GATEWAY, Reason.NONE)
GATEWAY_MISSING = define("SB6431", "GatewayMissing", Status.FAIL,
                         "Gateway {namespace}/{gateway} does not exist: the ingress gateway routes nothing to StackBill",
                         GATEWAY, Reason.MISSING)
GATEWAY_MISCONFIGURED = define("SB6432", "GatewayMisconfigured", Status.FAIL, "Gateway {gateway}: {problems}", GATEWAY,
                               Reason.MISCONFIGURED)
GATEWAY_CREDENTIAL_UNRESOLVED = define("SB6433", "GatewayCredentialUnresolved", Status.FAIL,
                                       "Gateway {gateway}'s credentialName {credential} does not resolve: no such "
                                       "secret in {namespace}, where the ingress gateway looks it up (see tls.secret)",
                                       GATEWAY, Reason.MISCONFIGURED)

# istio.virtualservice
VS_ROUTES_READY = define("SB6440", "VirtualServiceRoutesReady", Status.OK,
                         "VirtualService {virtualservice}: bound to {gateway}, {routes} route(s) to ready Services", VS,
                         Reason.NONE)
VS_MISSING = define("SB6441", "VirtualServiceMissing", Status.FAIL,
                    "VirtualService {namespace}/{virtualservice} does not exist: no route reaches the StackBill services",
                    VS, Reason.MISSING)
VS_MISCONFIGURED = define("SB6442", "VirtualServiceMisconfigured", Status.FAIL, "VirtualService {virtualservice}: "
                          "{problems}", VS, Reason.MISCONFIGURED)
VS_NO_ROUTES = define("SB6443", "VirtualServiceHasNoRoutes", Status.FAIL,
                      "VirtualService {virtualservice} has no http routes", VS, Reason.MISCONFIGURED)
VS_NO_ENDPOINTS = define("SB6444", "VirtualServiceEndpointsNotReady", Status.FAIL,
                         "VirtualService {virtualservice}: no ready endpoints behind {services} (their pods are not "
                         "Ready: see pods.ready)", VS, Reason.NOT_READY)
