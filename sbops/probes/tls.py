"""The ingress gateway's TLS secret: where it must be, whether its certificate is good, and how to repair it.

Istio resolves a Gateway's `credentialName` in the namespace of the ingress gateway pods (istio-system),
not in the Gateway's namespace: a copy only in sb-apps is the classic mistake (reason wrong_namespace).

Layout: pure certificate judgements over `cryptography` objects (table-tested), observers (Kubernetes
reads returning plain data), then the `tls-secret` plan. `cryptography` is imported inside functions.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from sbops.messages import tls as msg
from sbops.model import Change, Plan, Result, Status
from sbops.probes import kubecommon

if TYPE_CHECKING:
    from sbops.context import Context

TLS_TYPE = "kubernetes.io/tls"
KEYS = ("tls.crt", "tls.key")


# -- pure: names -------------------------------------------------------------------------------------
def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 6.4.3: case-insensitive; a wildcard is the whole left-most label and matches one label."""
    pattern = pattern.strip().rstrip(".").lower()
    host = host.strip().rstrip(".").lower()
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    p_labels, h_labels = pattern.split("."), host.split(".")
    if p_labels[0] != "*" or "*" in ".".join(p_labels[1:]) or len(p_labels) < 3:
        return False  # only "*.example.com"; no partial-label or bare-TLD wildcards
    return len(p_labels) == len(h_labels) and p_labels[1:] == h_labels[1:] and h_labels[0] != ""


def covers(names: list[str], domain: str) -> bool:
    return any(name_matches(n, domain) for n in names)


# -- pure: certificates ------------------------------------------------------------------------------
class PemError(ValueError):
    """Not a PEM certificate chain or private key; the message is what is wrong, without naming the part
    (the findings name it: "tls.crt in istio-system/certs" or "the certificate file")."""


def load_chain(pem: bytes) -> list[Any]:
    """The certificates of a PEM chain, each fully readable (see readable_problem), or PemError."""
    from cryptography import x509

    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise PemError("holds no PEM certificate")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise PemError("is not a valid PEM certificate chain") from None
    for index, cert in enumerate(chain):
        problem = readable_problem(cert)
        if problem:
            what = "its certificate" if len(chain) == 1 else f"certificate {index + 1} of its chain"
            raise PemError(f"cannot be used: {what} {problem}")
    return chain


def readable_problem(cert: Any) -> str:
    """'' when every part sbops reads of `cert` parses. cryptography parses lazily: a certificate with
    malformed SAN bytes, a duplicate extension or a key type it does not know loads fine and raises only
    when that part is read, which would crash the check (or the installer's validation) halfway."""
    from cryptography.exceptions import UnsupportedAlgorithm

    def first_line(exc: Exception) -> str:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]

    try:
        _spki(cert.public_key())
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        return f"has a public key that cannot be read ({first_line(exc)})"
    try:
        list(cert.extensions)
        san_names(cert)
    except Exception as exc:  # noqa: BLE001 - x509.DuplicateExtension is a bare Exception
        return f"has malformed extensions ({first_line(exc)})"
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        not_after(cert)
        not_before(cert)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"has an unreadable name or validity ({first_line(exc)})"
    return ""


def load_key(pem: bytes) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
        _spki(key.public_key())
        return key
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PemError("is not an unencrypted PEM private key") from None


def san_names(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.DNSName))


def _spki(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: Any, key: Any) -> bool:
    return _spki(cert.public_key()) == _spki(key.public_key())


def chain_problem(chain: list[Any]) -> str:
    """'' when each certificate is issued by the next (issuer == next subject, signature verifies)."""
    for index in range(len(chain) - 1):
        child, parent = chain[index], chain[index + 1]
        if child.issuer != parent.subject:
            return (f"certificate {index + 1} ({child.subject.rfc4514_string()}) is issued by "
                    f"{child.issuer.rfc4514_string()}, but certificate {index + 2} is {parent.subject.rfc4514_string()}")
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError):
            pass  # unsupported key type or parameters: the names matched, accept
        except Exception:  # noqa: BLE001 - InvalidSignature
            return f"certificate {index + 1}'s signature does not verify with certificate {index + 2}'s key"
    return ""


def not_after(cert: Any) -> datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=timezone.utc)


def not_before(cert: Any) -> datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=timezone.utc)


def certificate_findings(cert_pem: bytes, key_pem: bytes, domain: str, now: datetime, warn_days: float,
                         where: str = "") -> list[Result]:
    """The one judgement of a certificate/key pair: every finding, most basic first (unreadable, expired,
    not yet valid, wrong domain, wrong key, chain order, then the expiring warning), or the one passing
    finding. tls.certificate reports the first; the tls-secret fix and `sbops install` refuse on every
    failure (pair_problems). `where` names the secret ("istio-system/certs"); "" means files.

    The leaf is the certificate of the key (so a chain in the wrong order is named as such), else the first.
    """
    subject = f"the certificate in {where}" if where else "the certificate"
    crt = f"tls.crt in {where}" if where else "the certificate file"
    key_name = f"tls.key in {where}" if where else "the key file"
    try:
        chain = load_chain(cert_pem)
    except PemError as exc:
        return [msg.CERTIFICATE_UNREADABLE.result(crt=crt, problem=str(exc))]
    try:
        key = load_key(key_pem)
    except PemError:
        key = None
    spki = _spki(key.public_key()) if key is not None else b""
    index = next((i for i, c in enumerate(chain) if spki and _spki(c.public_key()) == spki), None)
    leaf = chain[index] if index is not None else chain[0]
    expires, starts = not_after(leaf), not_before(leaf)
    names = san_names(leaf)
    details = {"subject": leaf.subject.rfc4514_string(), "issuer": leaf.issuer.rfc4514_string(), "san": names,
               "expires_at": expires.isoformat(), "chain_length": len(chain), "domain": domain}
    found: list[Result] = []

    def add(message: Any, *, extra: dict[str, Any] | None = None, **args: Any) -> None:
        found.append(message.result(details={**details, **(extra or {})}, expires_at=expires, **args))

    if key is None:
        add(msg.KEY_UNREADABLE, key=key_name)
    if expires <= now:
        add(msg.CERTIFICATE_EXPIRED, subject=subject, expired=f"{expires:%Y-%m-%d}")
    elif starts > now:
        add(msg.CERTIFICATE_NOT_YET_VALID, subject=subject, starts=f"{starts:%Y-%m-%d %H:%M}",
            extra={"not_before": starts.isoformat()})
    if domain and not covers(names, domain):
        add(msg.CERTIFICATE_WRONG_DOMAIN, subject=subject, domain=domain, names=", ".join(names) or "none")
    if key is not None and index is None:
        add(msg.KEY_MISMATCH, key=key_name, subject=subject)
    problem = (f"the server certificate is number {index + 1} of {len(chain)}; it must come first"
               if index else chain_problem(chain))
    if problem:
        add(msg.CHAIN_OUT_OF_ORDER, subject=subject, problem=problem, extra={"chain_problem": problem})
    days = (expires - now).total_seconds() / 86400
    if not found and days < warn_days:
        add(msg.CERTIFICATE_EXPIRING, subject=subject, days=days, expires=f"{expires:%Y-%m-%d}",
            extra={"days_left": round(days, 2)})
    if not found:
        note = "" if domain else " (domain unknown: SAN not checked; set `domain`)"
        add(msg.CERTIFICATE_VALID, subject=subject, expires=f"{expires:%Y-%m-%d}", note=note,
            extra={"days_left": round(days, 2)})
    return found


def judge_certificate(cert_pem: bytes, key_pem: bytes, domain: str, now: datetime, warn_days: float,
                      where: str = "the secret") -> Result:
    """tls.certificate: the most basic of certificate_findings."""
    return certificate_findings(cert_pem, key_pem, domain, now, warn_days, where)[0]


# -- pure: where the secret is -----------------------------------------------------------------------
@dataclass(frozen=True)
class SecretState:
    name: str
    namespace: str  # where it must be
    source: str  # where the name came from: "Gateway sb-apps/stackbill-gateway" or "setting tls.secret"
    exists: bool
    type: str = ""
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # decoded; tls.key is a secret
    elsewhere: tuple[str, ...] = ()  # other namespaces holding a secret of that name


def judge_secret(state: SecretState) -> Result:
    where = f"{state.namespace}/{state.name}"
    details = {"secret": state.name, "namespace": state.namespace, "credential_source": state.source}
    if not state.exists:
        if state.elsewhere:
            return msg.SECRET_ELSEWHERE.result(secret=state.name, found_in=", ".join(state.elsewhere),
                                               namespace=state.namespace,
                                               details={**details, "found_in": list(state.elsewhere)})
        return msg.SECRET_MISSING.result(where=where, source=state.source, details=details)
    missing = [k for k in KEYS if not state.data.get(k)]
    if missing:
        return msg.SECRET_INCOMPLETE.result(where=where, missing=", ".join(missing),
                                            details={**details, "type": state.type, "missing_keys": missing})
    return msg.SECRET_PRESENT.result(where=where, details={**details, "type": state.type})


# -- observers ---------------------------------------------------------------------------------------
def credential_name(ctx: "Context") -> tuple[str, str]:
    """(name, source): the Gateway's HTTPS credentialName, else setting tls.secret when there is none."""
    from sbops.probes import kubecommon

    gateway = str(ctx.settings["istio.gateway"])
    namespace = kubecommon.namespace(ctx)
    try:
        obj = kubecommon.api(ctx).get(kubecommon.path(group="networking.istio.io", version="v1beta1",
                                                      namespace=namespace, plural="gateways", name=gateway))
    except Exception as exc:  # noqa: BLE001
        if kubecommon.api_status(exc) == 404:
            return str(ctx.settings["tls.secret"]), "setting tls.secret (no Gateway)"
        if kubecommon.api_status(exc) == 403:
            return str(ctx.settings["tls.secret"]), "setting tls.secret (Gateway not readable: RBAC)"
        raise
    name = gateway_credential(obj)
    if name:
        return name, f"Gateway {namespace}/{gateway}"
    return str(ctx.settings["tls.secret"]), f"setting tls.secret (Gateway {namespace}/{gateway} names none)"


def gateway_credential(gateway: Mapping[str, Any]) -> str:
    for server in (gateway.get("spec") or {}).get("servers") or []:
        port = server.get("port") or {}
        tls = server.get("tls") or {}
        if tls.get("credentialName") and (str(port.get("protocol", "")).upper() in ("HTTPS", "TLS") or tls.get("mode")):
            return str(tls["credentialName"])
    return ""


def _decode(data: Mapping[str, str] | None) -> dict[str, bytes]:
    out = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value or "")
        except ValueError:
            out[key] = b""
    return out


def read_state(ctx: "Context") -> SecretState:
    from sbops.probes import kubecommon

    name, source = credential_name(ctx)
    namespace = str(ctx.settings["tls.namespace"])
    obj = kubecommon.api(ctx).get_or_none(kubecommon.path(namespace=namespace, plural="secrets", name=name))
    if obj is not None:
        return SecretState(name, namespace, source, True, obj.get("type") or "", _decode(obj.get("data")))
    return SecretState(name, namespace, source, False, elsewhere=tuple(find_elsewhere(ctx, name, namespace)))


def find_elsewhere(ctx: "Context", name: str, skip_namespace: str) -> list[str]:
    """Namespaces holding a secret called `name`: cluster-wide list, else (no RBAC for that) the app namespace."""
    from sbops.probes import kubecommon

    api = kubecommon.api(ctx)
    try:
        found = api.list(kubecommon.path(plural="secrets"), field_selector=f"metadata.name={name}")
        namespaces = {s["metadata"]["namespace"] for s in found}
        return sorted(namespaces - {skip_namespace})
    except Exception as exc:  # noqa: BLE001
        if kubecommon.api_status(exc) != 403:
            raise
    app_ns = kubecommon.namespace(ctx)
    try:
        api.get(kubecommon.path(namespace=app_ns, plural="secrets", name=name))
        return [app_ns]
    except Exception as exc:  # noqa: BLE001
        if kubecommon.api_status(exc) in (403, 404):
            return []
        raise


def read_copy(ctx: "Context", name: str, namespace: str) -> dict[str, bytes]:
    from sbops.probes import kubecommon

    obj = kubecommon.api(ctx).get(kubecommon.path(namespace=namespace, plural="secrets", name=name))
    return _decode(obj.get("data"))


def observe_secret(ctx: "Context") -> SecretState | Result:
    try:
        return read_state(ctx)
    except Exception as exc:  # noqa: BLE001
        return kubecommon.api_failure("read the TLS secret", exc)


def probe_secret(ctx: "Context") -> Result:
    state = observe_secret(ctx)
    return state if isinstance(state, Result) else judge_secret(state)


def probe_certificate(ctx: "Context") -> Result:
    from sbops.probes import kubecommon

    state = observe_secret(ctx)
    if isinstance(state, Result):
        return state
    if not state.exists or any(not state.data.get(k) for k in KEYS):
        return judge_secret(state)
    return judge_certificate(state.data["tls.crt"], state.data["tls.key"], kubecommon.domain(ctx),
                             datetime.now(timezone.utc), float(ctx.settings["tls.warn_days"]),
                             f"{state.namespace}/{state.name}")


# -- the plan ----------------------------------------------------------------------------------------
def files_from(ctx: "Context", cert_file: str | None = None, key_file: str | None = None) -> tuple[str, str]:
    """The fix's --cert/--key (the installer's --ssl-cert/--ssl-key), else settings tls.cert_file/tls.key_file
    (env SBOPS_TLS_CERT_FILE / SBOPS_TLS_KEY_FILE)."""
    cert = cert_file or str(ctx.settings["tls.cert_file"])
    key = key_file or str(ctx.settings["tls.key_file"])
    return str(cert or ""), str(key or "")


def validate_pair(cert_pem: bytes, key_pem: bytes, domain: str, now: datetime, what: str) -> list[str]:
    """Blockers for installing this pair (the tls-secret fix; `sbops install` validates with the same
    pair_problems): every failure of certificate_findings."""
    return [f"{what}: {problem}" for problem in pair_problems(cert_pem, key_pem, domain, now)]


def pair_problems(cert_pem: bytes, key_pem: bytes, domain: str, now: datetime) -> list[str]:
    """Every reason this certificate/key pair cannot serve `domain` now, one line each (the installer's
    validation shows them all at once, where the tls.certificate check names the most basic one).
    Expiring soon is not a problem: a pair that still works is installable."""
    return [r.summary for r in certificate_findings(cert_pem, key_pem, domain, now, 0.0) if r.status is Status.FAIL]


def plan_secret(ctx: "Context", *, cert_file: str | None = None, key_file: str | None = None) -> Plan:
    """Create/replace the kubernetes.io/tls secret in tls.namespace from files, or copy a valid misplaced one."""
    from sbops.probes import kubecommon

    now = datetime.now(timezone.utc)
    domain = kubecommon.domain(ctx)
    state = observe_secret(ctx)
    if isinstance(state, Result):
        return Plan(blockers=(state.summary,))
    cert_file, key_file = files_from(ctx, cert_file, key_file)
    notes = [f"secret name from {state.source}"]
    if not domain:
        notes.append("domain unknown (set `domain`): the certificate's names were not checked")
    if cert_file or key_file:
        if not (cert_file and key_file):
            return Plan(blockers=("give both the certificate and the key (tls.cert_file and tls.key_file)",))
        try:
            cert_pem, key_pem = Path(cert_file).read_bytes(), Path(key_file).read_bytes()
        except OSError as exc:
            return Plan(blockers=(f"{exc.filename}: cannot read: {exc.strerror or exc}",))
        blockers = validate_pair(cert_pem, key_pem, domain, now, f"{cert_file} + {key_file}")
        if blockers:
            return Plan(blockers=tuple(blockers), notes=tuple(notes))
        if state.exists and state.type == TLS_TYPE and state.data.get("tls.crt") == cert_pem \
                and state.data.get("tls.key") == key_pem:
            return Plan(nothing_to_do=f"{state.namespace}/{state.name} already holds these files", notes=tuple(notes))
        return Plan(changes=(write_change(ctx, state, cert_pem, key_pem, f"from {cert_file} and {key_file}", (cert_file, key_file)),),
                    notes=tuple(notes))
    where = f"{state.namespace}/{state.name}"
    if state.exists:
        current = judge_secret(state)
        if current.status is Status.OK:
            problems = validate_pair(state.data["tls.crt"], state.data["tls.key"], domain, now, where)
            if not problems:
                return Plan(nothing_to_do=f"{where} exists and its certificate is valid", notes=tuple(notes))
            return Plan(blockers=(*problems, "give a new certificate and key with tls.cert_file / tls.key_file "
                                             "(env SBOPS_TLS_CERT_FILE / SBOPS_TLS_KEY_FILE)"), notes=tuple(notes))
    for namespace in state.elsewhere:
        try:
            data = read_copy(ctx, state.name, namespace)
        except Exception:  # noqa: BLE001 - an unreadable copy is just not a candidate
            continue
        if not all(data.get(k) for k in KEYS):
            continue
        problems = validate_pair(data["tls.crt"], data["tls.key"], domain, now, f"{namespace}/{state.name}")
        if problems:
            notes.append(f"the copy in {namespace} is not usable: {problems[0]}")
            continue
        return Plan(changes=(write_change(ctx, state, data["tls.crt"], data["tls.key"], f"copied from {namespace}/{state.name}"),),
                    notes=tuple(notes))
    problem = "is incomplete" if state.exists else "does not exist"
    return Plan(blockers=(f"{where} {problem} and no valid copy exists elsewhere: give the certificate (full chain) and "
                          "key files with settings tls.cert_file / tls.key_file (env SBOPS_TLS_CERT_FILE / SBOPS_TLS_KEY_FILE)",),
                notes=tuple(notes))


def secret_body(name: str, namespace: str, cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": TLS_TYPE,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "sbops"}},
        "data": {"tls.crt": base64.b64encode(cert_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()},
    }


def write_change(ctx: "Context", state: SecretState, cert_pem: bytes, key_pem: bytes, origin: str,
                  files: tuple[str, str] = ("CERT", "KEY")) -> Change:
    from sbops.probes import kubecommon

    verb = "replace" if state.exists else "create"
    where = f"{state.namespace}/{state.name}"

    def apply() -> None:
        body = secret_body(state.name, state.namespace, cert_pem, key_pem)
        kubecommon.put_secret(ctx, body, state.type if state.exists else None)

    return Change(f"via the Kubernetes API: {verb} secret {where} (type {TLS_TYPE}, tls.crt + tls.key {origin})",
                  (), apply)
