"""The Kubernetes connection: which kubeconfig (or the pod's ServiceAccount), validated cheaply at start-up,
and one API client per run.

Order: --kubeconfig (setting `kubeconfig`), then $KUBECONFIG, then the in-cluster configuration when sbops
runs in a pod ($KUBERNETES_SERVICE_HOST/PORT set and a ServiceAccount token mounted), then ~/.kube/config,
then /etc/rancher/k3s/k3s.yaml (K3s's own). In a pod the ServiceAccount comes before the usual files: it is
the identity the chart grants RBAC to, and a kubeconfig left in the image or a mounted /root must not
silently replace it. The REST client is sbops.kuberest (urllib3), not the kubernetes package: see there why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Union

from sbops import kuberest
from sbops.errors import UsageError

if TYPE_CHECKING:
    from sbops.context import Context

K3S_KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")
# Where the kubelet mounts a pod's ServiceAccount token, CA and namespace. SBOPS_SERVICE_ACCOUNT_DIR moves it,
# for the tests only (a test cannot write to /var/run/secrets of the machine it runs on).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "SBOPS_SERVICE_ACCOUNT_DIR"


class NoKubeconfig(Exception):
    """No kubeconfig anywhere sbops looks: the Kubernetes checks report it instead of failing the run."""


@dataclass(frozen=True)
class InCluster:
    """The pod's own configuration: the API server from $KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's
    token and CA from its mounted directory. Stands where a kubeconfig path would (ctx.kubeconfig_path);
    str() says what it is, for reports."""

    server: str
    directory: Path

    @property
    def token_file(self) -> Path:
        return self.directory / "token"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def __str__(self) -> str:
        return f"in-cluster ServiceAccount ({self.directory})"


KubeSource = Union[Path, InCluster]


def candidates(explicit: str, env: Mapping[str, str]) -> list[tuple[Path, str]]:
    """The kubeconfig files to try, each with the name of what named it ('' for the usual files)."""
    found: list[tuple[Path, str]] = []
    if explicit:
        found.append((Path(explicit), "--kubeconfig"))
    elif env.get("KUBECONFIG"):
        found.append((Path(env["KUBECONFIG"].split(os.pathsep)[0]), "KUBECONFIG"))
    else:
        found += [(Path.home() / ".kube" / "config", ""), (K3S_KUBECONFIG, "")]
    return found


def in_cluster_server(env: Mapping[str, str]) -> str:
    """The API server's URL from the variables the kubelet sets in every pod; '' outside a pod. An address
    with a colon is IPv6 and goes in brackets (as client-go's net.JoinHostPort). A port that is not one is
    a usage error naming the variable."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", "").strip(), env.get("KUBERNETES_SERVICE_PORT", "").strip()
    if not host or not port:
        return ""
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"KUBERNETES_SERVICE_PORT={port[:40]!r}: not a port number")
    if not host.isprintable() or any(c in host for c in " /@?#[]"):
        raise UsageError(f"KUBERNETES_SERVICE_HOST={host[:80]!r}: not a host name or address")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def in_cluster(env: Mapping[str, str]) -> InCluster | None:
    """The in-cluster configuration when sbops runs in a pod with a ServiceAccount token mounted, else None
    (a pod with automountServiceAccountToken: false falls through to the kubeconfig files). Token and CA
    are checked readable now, so that a broken mount is one line naming the file (exit 2)."""
    server = in_cluster_server(env)
    if not server:
        return None
    directory = Path(env.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)
    source = InCluster(server, directory)
    if not source.token_file.exists():
        return None
    for path, what in ((source.token_file, "ServiceAccount token"), (source.ca_file, "ServiceAccount CA")):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
        if not data.strip():
            raise UsageError(f"{path}: the {what} is empty")
    return source


def find(explicit: str, env: Mapping[str, str] | None = None) -> KubeSource | None:
    """The kubeconfig (or in-cluster configuration) to use: --kubeconfig, $KUBECONFIG, the pod's
    ServiceAccount, ~/.kube/config, K3s's file. An explicitly named kubeconfig that is missing or invalid
    is a usage error."""
    env = os.environ if env is None else env
    tried = candidates(explicit, env)
    if not explicit and not env.get("KUBECONFIG"):
        pod = in_cluster(env)
        if pod is not None:
            return pod
    for path, source in tried:
        if source and not path.exists():
            raise UsageError(f"{path}: kubeconfig not found (from {source})")
        if path.exists():
            validate(path)
            return path
    return None


def kubeconfig_file(source: KubeSource | None) -> str:
    """The --kubeconfig to hand helm or istioctl: the file's path, '' in a pod (both then read the in-cluster
    configuration themselves, as client-go does when no kubeconfig is given)."""
    return str(source) if isinstance(source, Path) else ""


def validate(path: Path) -> dict[str, Any]:
    """Check at start-up what the client (connection_from) will need, so that a broken kubeconfig is one
    line naming the file (exit 2) instead of every Kubernetes check crashing later: YAML that is a mapping,
    clusters/contexts/users with unique string names, a current-context naming a context whose cluster and
    user exist, a server URL, and readable certificate, key and token files (relative to the file's folder).
    Returns the parsed kubeconfig."""
    import yaml

    from sbops.settings import yaml_tree

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read kubeconfig: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: invalid kubeconfig: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    try:
        node = yaml_tree(path, text)
    except UsageError as exc:
        raise UsageError(str(exc).replace("invalid YAML", "invalid kubeconfig: not YAML", 1)) from None
    try:
        data = None if node is None else yaml.SafeLoader("").construct_document(node)
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors raise IndexError, ValueError... on odd scalars
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: invalid kubeconfig: {getattr(exc, 'problem', None) or 'bad value'}") from None
    problem = kubeconfig_problem(data, Path(os.path.abspath(path)).parent)  # as the loader: symlinks not resolved
    if problem:
        raise UsageError(f"{path}: invalid kubeconfig: {problem}")
    return data


def _named(data: Mapping[str, Any], key: str, inner: str) -> tuple[dict[str, dict[str, Any]], str]:
    """{name: the entry's `inner` mapping} of a clusters/contexts/users list, or the problem."""
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        return {}, f"no {key}"
    found: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            return {}, f"{key}[{index}] has no name"
        if name in found:
            return {}, f"two {key} are named {name!r}"
        body = entry.get(inner)
        if not isinstance(body, dict):
            return {}, f"{key} {name!r} has no {inner} mapping"
        found[name] = body
    return found, ""


def _file_problem(owner: str, body: Mapping[str, Any], key: str, base: Path, *, text: bool = False) -> str:
    """`key` (a path, relative to the kubeconfig's folder) or `key-data` (base64), as the loader takes them."""
    import base64
    import binascii

    data_key = "token" if key == "tokenFile" else f"{key}-data"
    if data_key in body:
        value = body[data_key]
        if not isinstance(value, str):
            return f"{owner}: {data_key} must be a string"
        if data_key == "token":
            return "" if value.isprintable() else f"{owner}: token holds control characters"
        try:  # strictly: the loader would silently drop what is not base64 and hand TLS an empty file
            base64.b64decode("".join(value.split()).encode(), validate=True)
        except (binascii.Error, ValueError, UnicodeError):
            return f"{owner}: {data_key} is not base64"
        return ""
    if key not in body:
        return ""
    value = body[key]
    if not isinstance(value, str) or not value or "\0" in value:
        return f"{owner}: {key} must be a file name"
    target = base / value
    try:
        content = target.read_bytes()
    except OSError as exc:
        return f"{owner}: {key} {target}: {exc.strerror or 'cannot read it'}"
    if text:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return f"{owner}: {key} {target}: not UTF-8 text"
    return ""


def kubeconfig_problem(data: Any, base: Path) -> str:
    """'' when a client can be built from `data` (a parsed kubeconfig whose relative
    paths start at `base`); else the first problem, one line. Checks the current context only, as the
    loader uses only that one."""
    from urllib.parse import urlsplit

    if not isinstance(data, dict):
        return "not a mapping"
    tables = {}
    for key, inner in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
        tables[key], problem = _named(data, key, inner)
        if problem:
            return problem
    current = data.get("current-context")
    if not isinstance(current, str) or not current:
        return "no current-context"
    if current not in tables["contexts"]:
        return f"current-context {current!r} is not among its contexts"
    context = tables["contexts"][current]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or cluster_name not in tables["clusters"]:
        return f"context {current!r} names cluster {cluster_name!r}, which is not among its clusters"
    if user_name is not None and (not isinstance(user_name, str) or user_name not in tables["users"]):
        return f"context {current!r} names user {user_name!r}, which is not among its users"
    cluster = tables["clusters"][cluster_name]
    owner = f"cluster {cluster_name!r}"
    server = cluster.get("server")
    try:
        parts = urlsplit(server) if isinstance(server, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname or not port_ok \
            or not server.isprintable() or " " in server:
        return f"{owner}: server must be an https:// URL, got {str(server)[:80]!r}"
    for key, kind in (("insecure-skip-tls-verify", bool), ("tls-server-name", str), ("proxy-url", str)):
        if key in cluster and not isinstance(cluster[key], kind):
            return f"{owner}: {key} must be a {'boolean' if kind is bool else 'string'}"
    problem = _file_problem(owner, cluster, "certificate-authority", base) if parts.scheme == "https" else ""
    if problem:
        return problem
    if user_name is None:
        return ""
    user = tables["users"][user_name]
    owner = f"user {user_name!r}"
    if "auth-provider" in user:
        return f"{owner}: auth-provider plugins are not supported: use a token, a token file or a client certificate"
    for key, text in (("tokenFile", True), ("client-certificate", False), ("client-key", False)):
        problem = _file_problem(owner, user, key, base, text=text)
        if problem:
            return problem
    if "exec" in user:
        plugin = user["exec"]
        if not isinstance(plugin, dict) or not isinstance(plugin.get("command"), str) or not plugin["command"]:
            return f"{owner}: exec must name a command"
        args, env = plugin.get("args"), plugin.get("env")
        if args is not None and not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            return f"{owner}: exec args must be a list of strings"
        if env is not None and not (isinstance(env, list) and all(
                isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("value"), str) for e in env)):
            return f"{owner}: exec env must be a list of name/value strings"
        if not isinstance(plugin.get("apiVersion", ""), str):
            return f"{owner}: exec apiVersion must be a string"
    for key in ("username", "password"):
        if key in user and not isinstance(user[key], str):
            return f"{owner}: {key} must be a string"
    return ""


class BadKubeconfig(NoKubeconfig):
    """The kubeconfig passed validation, yet no client could be built from it."""


TokenFile = kuberest.TokenFile


def in_cluster_configuration(source: InCluster) -> kuberest.Connection:
    """The pod's ServiceAccount: the API server from the pod's variables, its CA, the bearer token re-read
    as it rotates."""
    server = kuberest.Server(source.server, ca_pem=source.ca_file.read_bytes(), ca_file=str(source.ca_file))
    return kuberest.Connection(server, kuberest.Credentials(token_file=kuberest.TokenFile(source.token_file)))


def _inline_or_file(body: Mapping[str, Any], key: str, base: Path) -> tuple[bytes, str]:
    """(the bytes, the file they came from or '') of `key-data` (base64) or `key` (a path beside the kubeconfig)."""
    import base64

    if isinstance(body.get(f"{key}-data"), str):
        return base64.b64decode("".join(body[f"{key}-data"].split())), ""
    if isinstance(body.get(key), str) and body[key]:
        target = base / body[key]
        return target.read_bytes(), str(target)
    return b"", ""


def connection_from(data: Mapping[str, Any], base: Path) -> kuberest.Connection:
    """A Connection for a validated kubeconfig's current context (relative paths start at `base`); pure
    but for reading the files it names."""
    def named(key: str, inner: str, name: Any) -> dict[str, Any]:
        return next((e[inner] for e in data.get(key) or [] if e.get("name") == name), {})

    context = named("contexts", "context", data["current-context"])
    cluster = named("clusters", "cluster", context.get("cluster"))
    user = named("users", "user", context.get("user")) if context.get("user") is not None else {}
    ca_pem, ca_file = _inline_or_file(cluster, "certificate-authority", base)
    server = kuberest.Server(str(cluster["server"]), ca_pem=ca_pem, ca_file=ca_file,
                             insecure=cluster.get("insecure-skip-tls-verify") is True,
                             server_name=str(cluster.get("tls-server-name") or ""),
                             proxy_url=str(cluster.get("proxy-url") or ""))
    credentials = kuberest.Credentials()
    credentials.cert_pem, _ = _inline_or_file(user, "client-certificate", base)
    credentials.key_pem, _ = _inline_or_file(user, "client-key", base)
    if isinstance(user.get("token"), str) and user["token"]:
        credentials.token = user["token"]
    elif isinstance(user.get("tokenFile"), str) and user["tokenFile"]:
        credentials.token_file = kuberest.TokenFile(base / user["tokenFile"])
    elif isinstance(user.get("exec"), dict):
        plugin = user["exec"]
        credentials.exec_plugin = kuberest.ExecCredentials(kuberest.ExecPlugin(
            command=plugin["command"], args=tuple(plugin.get("args") or ()),
            env=tuple((e["name"], e["value"]) for e in plugin.get("env") or ()),
            api_version=str(plugin.get("apiVersion") or "client.authentication.k8s.io/v1beta1"), base=base))
    elif isinstance(user.get("username"), str) and isinstance(user.get("password"), str):
        credentials.basic = (user["username"], user["password"])
    return kuberest.Connection(server, credentials)


def new_client(kubeconfig: KubeSource) -> kuberest.Connection:
    """A Connection for `kubeconfig` (or the in-cluster configuration). Never retries: urllib3's default
    Retry(3) would make each call against a hung API server take four times --timeout."""
    if isinstance(kubeconfig, InCluster):
        return in_cluster_configuration(kubeconfig)
    try:
        data = validate(kubeconfig)
        return connection_from(data, Path(os.path.abspath(kubeconfig)).parent)
    except (UsageError, OSError, ValueError, KeyError, TypeError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadKubeconfig(f"{kubeconfig}: cannot load the kubeconfig: {text}") from None


def api_client(ctx: "Context") -> kuberest.Connection:
    """One Connection per run (shared by every check), or NoKubeconfig."""

    def make() -> Any:
        if ctx.kubeconfig_path is None:
            raise NoKubeconfig(
                f"no kubeconfig (looked at $KUBECONFIG, the pod's ServiceAccount, ~/.kube/config, {K3S_KUBECONFIG}; "
                "use --kubeconfig FILE)")
        return new_client(ctx.kubeconfig_path)

    return ctx.shared("kube.client", make)


def request_timeout(ctx: "Context") -> tuple[float, float]:
    """(connect, read) for every API call: pass as `_request_timeout=`."""
    return (ctx.net_timeout, ctx.net_timeout)


# -- the REST calls ---------------------------------------------------------------------------------------
# sbops makes a few dozen kinds of API call and reads the answers as kubectl-style dicts, over its own small
# REST client (sbops.kuberest): the kubernetes package's client costs about 0.2 s of imports (its typed models
# are built with pydantic) before the first request.

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
ApiException = kuberest.ApiException


def path(*, group: str = "", version: str = "v1", namespace: str = "", plural: str = "", name: str = "",
         sub: str = "") -> str:
    """The REST path of a collection or object: path(plural="secrets", namespace="sb-apps", name="awscred")."""
    from urllib.parse import quote

    parts = ["/api/v1"] if not group else [f"/apis/{group}/{version}"]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    if plural:
        parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if sub:
        parts.append(sub)
    return "/".join(parts)


class KubeApi:
    """JSON in, dicts out, over one Connection. Errors are ApiException (status, reason, body), so
    `kubecommon.api_reason` classifies them."""

    def __init__(self, client: kuberest.Connection, timeout: tuple[float, float]) -> None:
        self.client = client
        self.timeout = timeout

    def request(self, method: str, resource: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json") -> Any:
        import json

        data = self._call(method, resource, query=query, body=body, content_type=content_type,
                          accept="application/json")
        return json.loads(data) if data else None

    def text(self, resource: str, **query: Any) -> str:
        """A GET whose answer is text, not JSON: a container's log (`pods/NAME/log`)."""
        return self._call("GET", resource, query=query, accept="text/plain, */*").decode("utf-8", "replace")

    def _call(self, method: str, resource: str, *, query: Mapping[str, Any] | None, accept: str,
              body: Any = None, content_type: str = "application/json") -> bytes:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        answer = self.client.request(method, resource, params=list((query or {}).items()), headers=headers,
                                     body=body, timeout=self.timeout)
        return kuberest.raise_for_status(answer)

    def raw(self, method: str, resource: str, *, params: list[tuple[str, str]], headers: Mapping[str, str],
            timeout: tuple[float, float]) -> tuple[int, bytes]:
        """Any answer as (status, body), not raising on an HTTP error: a pod proxy's answer is the pod's
        (repeatable query parameters; `timeout` for this call only). Connection errors and timeouts raise."""
        answer = self.client.request(method, resource, params=params, headers=headers, timeout=timeout)
        return answer.status, answer.data

    def get(self, resource: str, **query: Any) -> dict[str, Any]:
        return self.request("GET", resource, query=query)

    def get_or_none(self, resource: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404); other errors raise."""
        try:
            return self.get(resource)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, resource: str, *, label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:
        found = self.get(resource, labelSelector=label_selector, fieldSelector=field_selector)
        return list((found or {}).get("items") or [])

    def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", resource, body=body)

    def replace(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", resource, body=body)

    def patch(self, resource: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]:
        return self.request("PATCH", resource, body=body, content_type=content_type)

    def delete(self, resource: str, *, ignore_missing: bool = False) -> None:
        try:
            self.request("DELETE", resource)
        except ApiException as exc:
            if not (ignore_missing and exc.status == 404):
                raise


def api(ctx: "Context") -> KubeApi:
    """One KubeApi per run, over the shared ApiClient, with the run's (connect, read) timeouts."""
    return ctx.shared("kube.api", lambda: KubeApi(api_client(ctx), request_timeout(ctx)))
