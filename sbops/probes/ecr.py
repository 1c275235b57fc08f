"""The ECR image pull secret (`awscred`): observe, judge, and refresh it.

Layout: pure decoders and judgements (table-tested), then observers (Kubernetes API reads returning plain
data), then the `ecr-refresh` plan and its appliers. The token is a secret: it lives in `Secret` objects
and in the Kubernetes secret only, never in plans, details, argv or logs.

Token format (ORIGINAL-INSTALLER.md): the ECR authorization token is base64("AWS:<password>"); the password
(what `aws ecr get-login-password` prints) is base64 of a JSON document whose `expiration` is Unix seconds.
The decoder accepts either form, so a secret holding the whole token or only the password both work.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from sbops.probes import kubecommon
from sbops.messages import ecr as msg
from sbops.model import Change, Plan, Result, Status
from sbops.secret import Secret

if TYPE_CHECKING:
    from sbops.context import Context

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
EXPIRY_ANNOTATION = "sbops.io/expires-at"
PULL_FAILURES = frozenset({"ImagePullBackOff", "ErrImagePull"})
TOKEN_ENV = "AWS_ECR_TOKEN"


# -- API errors (kubernetes >= 30 raises ApiException subclasses: NotFoundException, ForbiddenException...) --
# -- pure: the token ---------------------------------------------------------------------------------
def _b64decode(text: str) -> bytes | None:
    """Strict base64 (standard or URL-safe alphabet, padding optional); None when it is not base64."""
    cleaned = "".join(str(text).split())
    if not cleaned:
        return None
    padded = (cleaned + "=" * (-len(cleaned) % 4)).encode("ascii", "replace")
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def split_token(token: str) -> str:
    """The password part: base64("AWS:<password>") -> <password>; anything else is taken as the password."""
    raw = _b64decode(token)
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text.startswith("AWS:"):
            return text[4:]
    return str(token).strip()


def token_expiry(token: str) -> datetime | None:
    """The expiry written inside an ECR token or password (timezone-aware UTC), else None. Never raises."""
    if not token or not isinstance(token, str):
        return None
    raw = _b64decode(split_token(token))
    if raw is None:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    value = doc.get("expiration")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def parse_annotation(value: str | None) -> datetime | None:
    """sbops's `sbops.io/expires-at` annotation (ISO 8601; naive means UTC), else None."""
    if not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_annotation(when: datetime) -> str:
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- pure: the dockerconfigjson ----------------------------------------------------------------------
def registry_host(key: str) -> str:
    """`https://x.dkr.ecr...com/v2/` -> `x.dkr.ecr...com` (docker accepts both spellings as auths keys)."""
    text = key.strip().lower()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.split("/", 1)[0]


def parse_dockerconfig(text: str) -> dict[str, Any] | None:
    """The `auths` mapping of a .dockerconfigjson, else None (not JSON, or no auths mapping)."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths"), dict):
        return None
    return doc["auths"]


def auth_entry(auths: Mapping[str, Any], registry: str) -> dict[str, Any] | None:
    want = registry_host(registry)
    for key, entry in auths.items():
        if registry_host(key) == want and isinstance(entry, dict):
            return entry
    return None


def entry_password(entry: Mapping[str, Any]) -> str:
    """The password of an auths entry: `password`, else the part after ':' of base64 `auth`."""
    if entry.get("password"):
        return str(entry["password"])
    raw = _b64decode(str(entry.get("auth") or ""))
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace")
    return text.split(":", 1)[1] if ":" in text else ""


def dockerconfig(registry: str, password: str, username: str = "AWS") -> str:
    """The .dockerconfigjson `kubectl create secret docker-registry` writes."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}})


# -- observed state ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SecretState:
    """What sbops saw of the pull secret; `config` is the decoded .dockerconfigjson (secret: kept out of details)."""

    name: str
    namespace: str
    exists: bool
    type: str = ""
    config: str | None = field(default=None, repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    pull_secrets: tuple[str, ...]


def judge_secret(state: SecretState, registry: str, workloads: list[Workload]) -> Result:
    """ecr.secret: exists, right type, an auths entry for the registry, referenced by every workload."""
    where = f"{state.namespace}/{state.name}"
    details = {"secret": state.name, "namespace": state.namespace}
    if not state.exists:
        return msg.SECRET_MISSING.result(where=where, details=details)
    if state.type != DOCKERCONFIGJSON:
        return msg.SECRET_WRONG_TYPE.result(where=where, type=state.type or "(none)", expected=DOCKERCONFIGJSON,
                                            details={**details, "type": state.type})
    auths = parse_dockerconfig(state.config or "")
    if auths is None:
        return msg.SECRET_UNREADABLE.result(where=where, details=details)
    if auth_entry(auths, registry) is None:
        return msg.SECRET_LACKS_REGISTRY.result(where=where, registry=registry, details={
            **details, "registry": registry, "registries": sorted(registry_host(k) for k in auths)})
    missing = [f"{w.kind}/{w.name}" for w in workloads if state.name not in w.pull_secrets]
    if missing:
        return msg.WORKLOADS_WITHOUT_SECRET.result(count=len(missing), secret=state.name, workloads=", ".join(missing),
                                                   details={**details, "without_pull_secret": missing})
    return msg.SECRET_VALID.result(where=where, registry=registry, workloads=len(workloads),
                                   details={**details, "registry": registry, "workloads": len(workloads)})


def judge_expiry(state: SecretState, registry: str, now: datetime, warn_hours: float) -> Result:
    """ecr.expiry: from the token itself, else sbops's annotation; expired fails, < warn_hours warns."""
    auths = parse_dockerconfig(state.config or "") or {}
    entry = auth_entry(auths, registry) or {}
    expires = token_expiry(entry_password(entry))
    source = "token"
    if expires is None:
        expires = parse_annotation(state.annotations.get(EXPIRY_ANNOTATION))
        source = f"annotation {EXPIRY_ANNOTATION}"
    where = f"{state.namespace}/{state.name}"
    if expires is None:
        return msg.TOKEN_EXPIRY_UNKNOWN.result(where=where, annotation=EXPIRY_ANNOTATION,
                                               details={"secret": state.name, "namespace": state.namespace})
    left = expires - now
    hours = left.total_seconds() / 3600
    details = {"secret": state.name, "namespace": state.namespace, "expires_at": expires.isoformat(),
               "source": source, "hours_left": round(hours, 2)}
    if left <= timedelta(0):
        return msg.TOKEN_EXPIRED.result(where=where, ago=_ago(-left), details=details, expires_at=expires)
    if hours < warn_hours:
        return msg.TOKEN_EXPIRING.result(where=where, left=_ago(left), details=details, expires_at=expires)
    return msg.TOKEN_VALID.result(where=where, left=_ago(left), details=details, expires_at=expires)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 60}m"


def stuck_pods(pods: list[Mapping[str, Any]]) -> list[str]:
    """Names of pods with a container (or init container) waiting in ImagePullBackOff / ErrImagePull."""
    names = []
    for pod in pods:
        status = pod.get("status") or {}
        states = list(status.get("containerStatuses") or []) + list(status.get("initContainerStatuses") or [])
        if any(((s.get("state") or {}).get("waiting") or {}).get("reason") in PULL_FAILURES for s in states):
            names.append(pod["metadata"]["name"])
    return sorted(names)


# -- observers ---------------------------------------------------------------------------------------
def read_secret(ctx: "Context") -> SecretState:
    from sbops.probes import kubecommon

    name, namespace = str(ctx.settings["ecr.secret"]), kubecommon.namespace(ctx)
    obj = kubecommon.api(ctx).get_or_none(kubecommon.path(namespace=namespace, plural="secrets", name=name))
    if obj is None:
        return SecretState(name, namespace, False)
    raw = (obj.get("data") or {}).get(".dockerconfigjson")
    config = None
    if raw:
        decoded = _b64decode(raw)
        config = decoded.decode("utf-8", "replace") if decoded is not None else None
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    return SecretState(name, namespace, True, obj.get("type") or "", config, annotations)


def read_workloads(ctx: "Context") -> list[Workload]:
    from sbops.probes import kubecommon

    deployments = kubecommon.api(ctx).list(
        kubecommon.path(group="apps", namespace=kubecommon.namespace(ctx), plural="deployments"))
    out = []
    for item in deployments:
        spec = ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
        names = tuple(ref["name"] for ref in (spec.get("imagePullSecrets") or []) if ref and ref.get("name"))
        out.append(Workload("Deployment", item["metadata"]["name"], names))
    return sorted(out, key=lambda w: w.name)


def probe_secret(ctx: "Context") -> Result:
    try:
        state = read_secret(ctx)
        workloads = read_workloads(ctx) if state.exists else []
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure("read the ECR pull secret", exc)
    return judge_secret(state, str(ctx.settings["ecr.registry"]), workloads)


def probe_expiry(ctx: "Context") -> Result:
    try:
        state = read_secret(ctx)
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure("read the ECR pull secret", exc)
    if not state.exists:
        return msg.SECRET_MISSING.result(where=f"{state.namespace}/{state.name}",
                                         details={"secret": state.name, "namespace": state.namespace})
    return judge_expiry(state, str(ctx.settings["ecr.registry"]), datetime.now(timezone.utc),
                        float(ctx.settings["ecr.warn_hours"]))



# -- the token for ecr-refresh -----------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    password: Secret  # the docker password (the part after "AWS:")
    expires_at: datetime | None
    source: str  # for humans: "file /x", "env AWS_ECR_TOKEN", "AWS ECR API (profile p, region r)"


class TokenError(Exception):
    """No token could be obtained; the message says why (never contains the token)."""


def token_from_text(text: str, source: str, fallback_expiry: datetime | None = None) -> Token:
    value = text.strip()
    if not value:
        raise TokenError(f"{source}: empty token")
    if any(ch.isspace() for ch in value):
        raise TokenError(f"{source}: the token must be one line without spaces")
    password = split_token(value)
    return Token(Secret(password), token_expiry(password) or fallback_expiry, source)


def token_from_aws(ctx: "Context", profile: str | None = None, region: str | None = None) -> Token:
    """boto3's standard chain (env, shared config/profile, instance role); never embedded credentials.
    `profile`/`region` (the fix's --profile/--region) win over the settings ecr.profile/ecr.region."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    profile = profile or str(ctx.settings["ecr.profile"]) or None
    region = region or str(ctx.settings["ecr.region"]) or None
    endpoint = str(ctx.settings["ecr.endpoint_url"]) or None
    where = f"AWS ECR API (region {region or 'default'}{', profile ' + profile if profile else ''})"
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        config = Config(connect_timeout=ctx.net_timeout, read_timeout=ctx.net_timeout, retries={"max_attempts": 1})
        client = session.client("ecr", endpoint_url=endpoint, config=config)
        answer = client.get_authorization_token()
    except (BotoCoreError, ClientError) as exc:
        raise TokenError(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    data = (answer.get("authorizationData") or [{}])[0]
    token = data.get("authorizationToken") or ""
    expires = data.get("expiresAt")
    if isinstance(expires, datetime) and expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    return token_from_text(token, where, expires.astimezone(timezone.utc) if isinstance(expires, datetime) else None)


def get_token(ctx: "Context", *, env: Mapping[str, str] | None = None, stdin: Any = None, token_file: str | None = None,
              profile: str | None = None, region: str | None = None) -> Token:
    """--token-file / ecr.token_file (`-` = stdin), else $AWS_ECR_TOKEN, else the AWS API."""
    env = os.environ if env is None else env
    path = token_file or str(ctx.settings["ecr.token_file"])
    if path == "-":
        return token_from_text((stdin or sys.stdin).read(), "standard input")
    if path:
        try:
            return token_from_text(Path(path).read_text(), f"file {path}")
        except OSError as exc:
            raise TokenError(f"{path}: cannot read the token file: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TokenError(f"{path}: the token file is not UTF-8 text") from None
    if env.get(TOKEN_ENV):
        return token_from_text(env[TOKEN_ENV], f"env {TOKEN_ENV}")
    return token_from_aws(ctx, profile, region)


# -- the plan ----------------------------------------------------------------------------------------
def refresh_needed(state: SecretState, registry: str, now: datetime, warn_hours: float) -> Result | None:
    """Pure: None when the secret already holds a token for `registry` with more than `warn_hours` left,
    else the finding that says why it needs a new one (the judgements of ecr.secret and ecr.expiry;
    workloads are not looked at)."""
    for verdict in (judge_secret(state, registry, []), judge_expiry(state, registry, now, warn_hours)):
        if verdict.status is not Status.OK:
            return verdict
    return None


def plan_ensure(ctx: "Context", *, token_file: str | None = None, profile: str | None = None, region: str | None = None,
                source: "Callable[[], Token] | None" = None) -> Plan:
    """The installer's pull secret: left alone while its token is valid (so a second install changes
    nothing), else what ecr-refresh does. `source`, when given, is called for the token instead of
    get_token (the installer fetches it once per run: a token on stdin can be read only once)."""
    from sbops.probes import kubecommon

    registry = str(ctx.settings["ecr.registry"])
    try:
        state = read_secret(ctx)
    except Exception as exc:  # noqa: BLE001
        if kubecommon.is_api_error(exc):
            return Plan(blockers=(kubecommon.api_failure_summary("read the pull secret", exc),))
        raise
    why = refresh_needed(state, registry, datetime.now(timezone.utc), float(ctx.settings["ecr.warn_hours"]))
    if why is None:
        verdict = judge_expiry(state, registry, datetime.now(timezone.utc), float(ctx.settings["ecr.warn_hours"]))
        return Plan(nothing_to_do=f"{verdict.summary} (`sbops fix ecr-refresh` renews it)")
    plan = plan_refresh(ctx, token_file=token_file, profile=profile, region=region, source=source)
    return Plan(plan.changes, plan.blockers, (f"a new token is needed: {why.summary}", *plan.notes), plan.nothing_to_do)


def plan_refresh(ctx: "Context", *, token_file: str | None = None, profile: str | None = None, region: str | None = None,
                 source: "Callable[[], Token] | None" = None) -> Plan:
    """Replace the pull secret with a fresh token, annotate its expiry, delete pods stuck pulling images.

    Deleting those pods is safe: they are not Ready (a container waits for its image), so they serve
    nothing; their ReplicaSet recreates them and the new pods pull with the new secret. Pods without a
    controller would not come back, so they are only named, never deleted.
    """
    from sbops.probes import kubecommon

    registry = str(ctx.settings["ecr.registry"])
    try:
        state = read_secret(ctx)
        pod_dicts = kubecommon.api(ctx).list(kubecommon.path(namespace=kubecommon.namespace(ctx), plural="pods"))
    except Exception as exc:  # noqa: BLE001
        if kubecommon.is_api_error(exc):
            return Plan(blockers=(kubecommon.api_failure_summary("read the pull secret and pods", exc),))
        raise
    try:
        token = source() if source is not None else get_token(ctx, token_file=token_file, profile=profile, region=region)
    except TokenError as exc:
        return Plan(blockers=(f"no ECR token: {exc} (configure AWS credentials for boto3, set ecr.profile, "
                              f"or give a token with ecr.token_file / {TOKEN_ENV})",))
    owned = {p["metadata"]["name"] for p in pod_dicts if any(r.get("controller") for r in p["metadata"].get("ownerReferences") or [])}
    stuck = stuck_pods(pod_dicts)
    notes = [f"token from {token.source}"]
    changes = [_secret_change(ctx, state, registry, token)]
    deletable = [n for n in stuck if n in owned]
    orphans = [n for n in stuck if n not in owned]
    if deletable:
        changes.append(_delete_pods_change(ctx, state.namespace, deletable))
    if orphans:
        notes.append(f"pods stuck pulling images without a controller (not deleted, they would not come back): {', '.join(orphans)}")
    if token.expires_at is None:
        notes.append("the token's expiry is unknown (not an ECR-format token): ecr.expiry will warn that it cannot tell")
    elif token.expires_at <= datetime.now(timezone.utc):
        notes.append(f"the new token already expired ({format_annotation(token.expires_at)}): check the clock and the token source")
    return Plan(changes=tuple(changes), notes=tuple(notes))


def secret_body(name: str, namespace: str, registry: str, token: Token) -> dict[str, Any]:
    annotations = {EXPIRY_ANNOTATION: format_annotation(token.expires_at)} if token.expires_at else {}
    config = dockerconfig(registry, token.password.reveal())
    return {
        "apiVersion": "v1", "kind": "Secret", "type": DOCKERCONFIGJSON,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                     "labels": {"app.kubernetes.io/managed-by": "sbops"}},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }


def _secret_change(ctx: "Context", state: SecretState, registry: str, token: Token) -> Change:
    from sbops.probes import kubecommon

    verb = "replace" if state.exists else "create"
    expiry = f", expires {format_annotation(token.expires_at)}" if token.expires_at else ""
    description = (f"via the Kubernetes API: {verb} secret {state.namespace}/{state.name} ({DOCKERCONFIGJSON} for "
                   f"{registry}, user AWS, password ****{expiry})")

    def apply() -> None:
        body = secret_body(state.name, state.namespace, registry, token)
        kubecommon.put_secret(ctx, body, state.type if state.exists else None)

    return Change(description, (), apply)


def _delete_pods_change(ctx: "Context", namespace: str, names: list[str]) -> Change:
    from sbops.probes import kubecommon

    def apply() -> None:
        api = kubecommon.api(ctx)
        for name in names:  # already gone is fine
            api.delete(kubecommon.path(namespace=namespace, plural="pods", name=name), ignore_missing=True)

    return Change(f"via the Kubernetes API: delete {len(names)} pod(s) in {namespace} stuck in ImagePullBackOff/ErrImagePull "
                  "so their controllers recreate them: " + ", ".join(names), (), apply)
