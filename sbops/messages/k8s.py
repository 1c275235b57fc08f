"""The Kubernetes cluster's findings (SB60xx): k8s.api, k8s.nodes, k8s.namespace, k8s.storage, and the one
finding every Kubernetes layer reports when an API call fails (SB6001, sbops.probes.kubecommon.api_failure)."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

API, NODES, NAMESPACE, STORAGE, KUBECONFIG_MODE = (f"runbooks/k8s.{name}.md" for name in (
    "api", "nodes", "namespace", "storage", "kubeconfig-mode"))

# shared by every Kubernetes layer (k8s, pods, ecr, tls, istio, helm): the reason is the call's
# (auth_failed, access_denied, missing, refused, timeout, unreachable)
API_CALL_FAILED = define("SB6001", "KubernetesApiCallFailed", Status.FAIL, "cannot {what}: {why}", API)

# k8s.api
API_ANSWERS = define("SB6010", "KubeApiAnswers", Status.OK, "API server {server} answers, Kubernetes {version}",
                     API, Reason.NONE)
API_CREDENTIALS_REJECTED = define(
    "SB6011", "KubeApiCredentialsRejected", Status.FAIL,
    "API server {server} rejected the credentials in {kubeconfig} (HTTP 401): the token or client certificate is "
    "wrong or expired", API, Reason.AUTH_FAILED)
API_ACCESS_DENIED = define("SB6012", "KubeApiAccessDenied", Status.FAIL,
                           "API server {server} denies the kubeconfig's user (HTTP 403)", API, Reason.ACCESS_DENIED)
API_NOT_ANSWERING = define("SB6013", "KubeApiNotAnswering", Status.FAIL, "API server {server} {problem}", API)
NOT_AN_API_SERVER = define("SB6014", "NotAKubeApiServer", Status.FAIL,
                           "{server} (the server of {kubeconfig}) is not a Kubernetes API server", API,
                           Reason.MISCONFIGURED)

# k8s.nodes
NODES_READY = define("SB6020", "NodesReady", Status.OK, "{count} node(s) Ready, no pressure", NODES, Reason.NONE)
NO_NODES = define("SB6021", "NoNodes", Status.FAIL,
                  "the cluster has no nodes: K3s's agent has not registered this server", NODES, Reason.MISSING)
NODES_NOT_READY = define("SB6022", "NodesNotReady", Status.FAIL, "node(s) not Ready: {nodes}", NODES, Reason.NOT_READY)
NODES_UNDER_PRESSURE = define("SB6023", "NodesUnderPressure", Status.WARN,
                              "node(s) under pressure: {nodes}: pods may get evicted", NODES, Reason.DEGRADED)

# k8s.namespace
NAMESPACE_READY = define("SB6030", "NamespaceReady", Status.OK, "namespace {namespace} exists with {label}={value}",
                         NAMESPACE, Reason.NONE)
NAMESPACE_MISSING = define("SB6031", "NamespaceMissing", Status.FAIL,
                           "namespace {namespace} does not exist: StackBill is not installed, or was installed in "
                           "another namespace (setting namespace)", NAMESPACE, Reason.MISSING)
NAMESPACE_TERMINATING = define("SB6032", "NamespaceTerminating", Status.FAIL,
                               "namespace {namespace} is being deleted (Terminating)", NAMESPACE, Reason.MISCONFIGURED)
NAMESPACE_NOT_INJECTED = define("SB6033", "NamespaceInjectionDisabled", Status.FAIL,
                                "namespace {namespace} lacks label {label}={value} (has {found}): new pods get no "
                                "Istio sidecar", NAMESPACE, Reason.MISCONFIGURED)

# k8s.storage
STORAGE_READY = define("SB6040", "StorageReady", Status.OK,
                       "StorageClass {storage_class} exists, {claims} PVC(s) Bound, provisioner Ready", STORAGE,
                       Reason.NONE)
STORAGE_CLASS_MISSING = define("SB6041", "StorageClassMissing", Status.FAIL,
                               "StorageClass {storage_class} does not exist: the chart's volumes cannot be provisioned",
                               STORAGE, Reason.MISSING)
PROVISIONER_MISSING = define("SB6042", "ProvisionerMissing", Status.FAIL,
                             "no NFS provisioner pod ({selector}) in any namespace: new volumes stay Pending", STORAGE,
                             Reason.NOT_RUNNING)
PROVISIONER_NOT_READY = define("SB6043", "ProvisionerNotReady", Status.FAIL, "NFS provisioner not Ready: {pods}",
                               STORAGE, Reason.NOT_READY)
CLAIMS_NOT_BOUND = define("SB6044", "ClaimsNotBound", Status.FAIL, "PVC(s) not Bound: {claims}", STORAGE,
                          Reason.PENDING)

# k8s.kubeconfig-mode
KUBECONFIG_PRIVATE = define("SB6050", "KubeconfigPrivate", Status.OK,
                            "{path} is mode {mode}, root's, and K3s keeps it so ({kept})", KUBECONFIG_MODE,
                            Reason.NONE)
KUBECONFIG_READABLE = define("SB6051", "KubeconfigReadableByOthers", Status.FAIL,
                             "{path} is mode {mode}: {who} can read K3s's cluster-admin credentials",
                             KUBECONFIG_MODE, Reason.INSECURE)
KUBECONFIG_NOT_ROOTS = define("SB6052", "KubeconfigNotOwnedByRoot", Status.FAIL,
                              "{path} is owned by {owner}, not root: that user holds K3s's cluster-admin credentials",
                              KUBECONFIG_MODE, Reason.INSECURE)
KUBECONFIG_MODE_NOT_PERSISTENT = define(
    "SB6053", "KubeconfigModeNotPersistent", Status.FAIL,
    "{path} is mode {mode} now, but {where} sets write-kubeconfig-mode {value}: K3s rewrites it so at its next start",
    KUBECONFIG_MODE, Reason.MISCONFIGURED)
KUBECONFIG_ABSENT = define("SB6054", "K3sKubeconfigAbsent", Status.SKIP,
                           "no K3s kubeconfig at {path}: K3s is not installed here (setting k3s.kubeconfig)",
                           KUBECONFIG_MODE, Reason.NOT_APPLICABLE)
KUBECONFIG_UNOBSERVABLE = define("SB6055", "KubeconfigUnobservable", Status.SKIP, "cannot look at {path}: {error}",
                                 KUBECONFIG_MODE, Reason.NO_ACCESS)
K3S_CONFIG_INVALID = define("SB6056", "K3sConfigInvalid", Status.FAIL,
                            "{error}: K3s cannot read its configuration, so nobody can tell the kubeconfig's mode "
                            "after its next start", KUBECONFIG_MODE, Reason.MISCONFIGURED)
