"""Pure judgements: what the attempts made from a pod mean, as catalog findings with the paired fix.

A refused connection to a server on this host is its bind address (MySQL's `mysql-config`, MongoDB's
`mongodb-config`; RabbitMQ's listeners are set by hand); a server on another host cannot be repaired from
here, so the finding names no fix. A timeout is a firewall dropping the pods' traffic: no fix, the runbook
for host firewalls. Blocked (1129) pairs with `mysql-blocked-host`, a host not allowed (1130) and a rejected
password with the user fixes.
"""

from __future__ import annotations

from typing import Any

from sbops.messages import netpath as msg
from sbops.model import Reason, Result
from sbops.probes.netpath.attempts import HOST_NOT_ALLOWED
from sbops.probes.netpath.targets import Target

NONE, REFUSED, TIMEOUT, UNREACHABLE = (r.value for r in (Reason.NONE, Reason.REFUSED, Reason.TIMEOUT,
                                                          Reason.UNREACHABLE))
AUTH, DENIED, BLOCKED = Reason.AUTH_FAILED.value, Reason.ACCESS_DENIED.value, Reason.HOST_BLOCKED.value
# How bad a Service's failure is, worst first: the services finding reports the worst one's reason.
SEVERITY = (Reason.TIMEOUT, Reason.REFUSED, Reason.UNREACHABLE, Reason.MISCONFIGURED)
REFUSED_HINTS = {
    "mysql": "MySQL listens on 127.0.0.1 only (bind-address) or is not running",
    "mongodb": "mongod listens on 127.0.0.1 only (net.bindIp) or is not running",
    "rabbitmq": "RabbitMQ listens on 127.0.0.1 only (listeners.tcp in rabbitmq.conf) or is not running",
}
REFUSED_FIXES = {"mysql": "mysql-config", "mongodb": "mongodb-config"}


def _base(pod: str, target: Target, attempt: dict[str, Any]) -> dict[str, Any]:
    return {"pod": pod, "address": target.address, "source": target.source}


def _network(service: str, pod: str, target: Target, attempt: dict[str, Any], timeout: float, local: bool,
             details: dict[str, Any]) -> Result | None:
    """The finding for refused / timeout / unreachable (None for any other outcome)."""
    outcome = attempt.get("outcome")
    base = _base(pod, target, attempt)
    refused, silent, unreachable = {
        "mysql": (msg.MYSQL_REFUSED, msg.MYSQL_TIMEOUT, msg.MYSQL_UNREACHABLE),
        "mongodb": (msg.MONGO_REFUSED, msg.MONGO_TIMEOUT, msg.MONGO_UNREACHABLE),
        "rabbitmq": (msg.RABBIT_REFUSED, msg.RABBIT_TIMEOUT, msg.RABBIT_UNREACHABLE),
        "nfs": (msg.NFS_REFUSED, msg.NFS_TIMEOUT, msg.NFS_UNREACHABLE),
    }[service]
    if outcome == REFUSED:
        fix = REFUSED_FIXES.get(service) if local else None
        if service == "nfs":
            return refused.result(**base, details=details)
        hint = REFUSED_HINTS[service] if local else f"on {target.host} it listens on loopback only or is not running"
        return refused.result(**base, hint=hint, fix=fix, details=details)
    if outcome == TIMEOUT:
        return silent.result(**base, timeout=timeout, details=details)
    if outcome == UNREACHABLE:
        return unreachable.result(**base, error=attempt.get("error") or "no route", details=details)
    return None


def judge_mysql(pod: str, target: Target, attempt: dict[str, Any], *, who: str, timeout: float, local: bool,
                details: dict[str, Any]) -> Result:
    found = _network("mysql", pod, target, attempt, timeout, local, details)
    if found is not None:
        return found
    base = _base(pod, target, attempt)
    outcome = attempt.get("outcome")
    if outcome == NONE:
        return msg.MYSQL_OK.result(**base, who=who, version=attempt.get("version") or "unknown version",
                                   details=details)
    if outcome == BLOCKED:
        return msg.MYSQL_BLOCKED.result(**base, fix="mysql-blocked-host", details=details)
    if outcome == HOST_NOT_ALLOWED:
        return msg.MYSQL_HOST_NOT_ALLOWED.result(**base, who=who, fix="mysql-user", details=details)
    if outcome == AUTH:
        return msg.MYSQL_AUTH.result(**base, who=who, fix="mysql-user", details=details)
    reason = Reason(outcome) if outcome in {r.value for r in Reason} and outcome != NONE else Reason.UNREACHABLE
    return msg.MYSQL_OTHER.result(**base, who=who, error=attempt.get("error") or outcome, reason=reason,
                                  details=details)


def judge_mongodb(pod: str, target: Target, attempt: dict[str, Any], *, who: str, timeout: float, local: bool,
                  details: dict[str, Any]) -> Result:
    found = _network("mongodb", pod, target, attempt, timeout, local, details)
    if found is not None:
        return found
    base = _base(pod, target, attempt)
    outcome = attempt.get("outcome")
    if outcome == NONE:
        login = f" and {who} logs in" if attempt.get("login") else " (hello; no password to log in with)"
        return msg.MONGO_OK.result(**base, login=login, details=details)
    if outcome == AUTH:
        return msg.MONGO_AUTH.result(**base, who=who, fix="mongodb-user", details=details)
    return msg.MONGO_NOT_MONGO.result(**base, error=attempt.get("error") or str(outcome), details=details)


def judge_rabbitmq(pod: str, target: Target, attempt: dict[str, Any], *, who: str, timeout: float, local: bool,
                   details: dict[str, Any]) -> Result:
    found = _network("rabbitmq", pod, target, attempt, timeout, local, details)
    if found is not None:
        return found
    base = _base(pod, target, attempt)
    outcome = attempt.get("outcome")
    if outcome == NONE:
        login = f"; {who} logs in" if attempt.get("login") else "; no password to log in with"
        return msg.RABBIT_OK.result(**base, product=attempt.get("product") or "AMQP 0-9-1", login=login,
                                    details=details)
    if outcome == AUTH:
        return msg.RABBIT_AUTH.result(**base, who=who, fix="rabbitmq-user", details=details)
    if outcome == DENIED:
        return msg.RABBIT_DENIED.result(**base, who=who, fix="rabbitmq-user", details=details)
    return msg.RABBIT_NOT_AMQP.result(**base, error=attempt.get("error") or str(outcome), details=details)


def judge_nfs(pod: str, target: Target, attempt: dict[str, Any], *, who: str, timeout: float, local: bool,
              details: dict[str, Any]) -> Result:
    found = _network("nfs", pod, target, attempt, timeout, local, details)
    if found is not None:
        return found
    if attempt.get("outcome") == NONE:
        return msg.NFS_OK.result(**_base(pod, target, attempt), details=details)
    return msg.NFS_UNREACHABLE.result(**_base(pod, target, attempt), error=attempt.get("error") or "no answer",
                                      details=details)


JUDGES = {"mysql": judge_mysql, "mongodb": judge_mongodb, "rabbitmq": judge_rabbitmq, "nfs": judge_nfs}


def judge_services(pod: str, targets: list[Target], attempts: list[dict[str, Any]], untestable: list[str],
                   details: dict[str, Any]) -> Result:
    """Every routed Service answering HTTP (any status) passes; otherwise the worst failure's reason."""
    failed: list[tuple[Target, dict[str, Any]]] = []
    answered: list[str] = []
    for target, attempt in zip(targets, attempts):
        if attempt.get("outcome") == NONE:
            answered.append(f"{target.key} {target.address} HTTP {attempt.get('http_status')}")
        else:
            failed.append((target, attempt))
    if untestable:
        details = {**details, "untestable": untestable}
    if not failed:
        return msg.SERVICES_OK.result(pod=pod, services=", ".join(answered), details=details)
    reasons = {Reason(a.get("outcome")) if a.get("outcome") in {r.value for r in Reason} else Reason.UNREACHABLE
               for _, a in failed}
    worst = next((r for r in SEVERITY if r in reasons), Reason.UNREACHABLE)
    problems = "; ".join(f"{t.key} at {t.address} ({t.source}): {a.get('outcome')}" for t, a in failed)
    return msg.SERVICES_FAIL.result(pod=pod, failed=len(failed), total=len(targets), problems=problems, reason=worst,
                                    details=details)


TCP_OK = {"mysql": msg.MYSQL_TCP_OK, "mongodb": msg.MONGO_TCP_OK, "rabbitmq": msg.RABBIT_TCP_OK, "nfs": msg.NFS_OK}
UNREACHABLE_MESSAGES = {"mysql": msg.MYSQL_UNREACHABLE, "mongodb": msg.MONGO_UNREACHABLE,
                        "rabbitmq": msg.RABBIT_UNREACHABLE, "nfs": msg.NFS_UNREACHABLE}


def judge_tcp_only(service: str, pod: str, target: Target, attempt: dict[str, Any], *, timeout: float, local: bool,
                   details: dict[str, Any]) -> Result:
    """A probe pod's TCP attempt: refused / timeout / unreachable as from a sandbox; a connection that opened
    passes with a summary that says the protocol and the login were not tested (that needs sbops on the node)."""
    found = _network(service, pod, target, attempt, timeout, local, details)
    if found is not None:
        return found
    base = _base(pod, target, attempt)
    if attempt.get("outcome") == NONE:
        return TCP_OK[service].result(**base, details=details)
    return UNREACHABLE_MESSAGES[service].result(**base, error=attempt.get("error") or str(attempt.get("outcome")),
                                                details=details)
