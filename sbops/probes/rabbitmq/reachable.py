"""rabbitmq.reachable and rabbitmq.auth: the broker's AMQP handshake and the stackbill login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.messages import rabbitmq as M
from sbops.model import Reason, Result
from sbops.probes.net import one_line, socket_reason
from sbops.probes.rabbitmq.session import amqp_handshake, Handshake, Login, login

if TYPE_CHECKING:
    from sbops.context import Context


def judge_handshake(host: str, port: int, answer: Handshake) -> Result:
    where = f"{host}:{port}"
    if answer.kind == "start":
        name = " ".join(p for p in (answer.product, answer.version) if p) or "an AMQP 0-9-1 broker"
        return M.ANSWERS.result(name=name, where=where, details={
            "host": host, "port": port, "product": answer.product, "version": answer.version,
            "mechanisms": answer.mechanisms})
    if answer.kind == "header":
        return M.OTHER_AMQP.result(where=where, details={"host": host, "port": port, "answer": answer.other_header})
    message = {"silent": M.SILENT, "closed": M.CLOSED}.get(answer.kind, M.NOT_AMQP)
    return message.result(where=where, details={"host": host, "port": port})


def judge_unreachable(host: str, port: int, reason: Reason, error: str) -> Result:
    where = f"{host}:{port}"
    details = {"host": host, "port": port, "error": error}
    if reason is Reason.REFUSED:
        return M.REFUSED.result(where=where, details=details)
    if reason is Reason.TIMEOUT:
        return M.TIMEOUT.result(where=where, details=details)
    return M.UNREACHABLE.result(reason=reason, where=where, error=error, details=details)


def probe_reachable(ctx: "Context") -> Result:
    host, port = ctx.endpoint("rabbitmq")
    try:
        answer = amqp_handshake(host, port, ctx.net_timeout)
    except OSError as exc:
        return judge_unreachable(host, port, socket_reason(exc), one_line(exc))
    return judge_handshake(host, port, answer)


def judge_login(host: str, port: int, result: Login) -> Result:
    who = f"{result.user} on {host}:{port} vhost '{result.vhost}'"
    evidence = {"host": host, "port": port, "user": result.user, "vhost": result.vhost}
    if result.ok:
        return M.LOGIN_OK.result(user=result.user, where=f"{host}:{port}", vhost=result.vhost, details=evidence)
    if result.reason is Reason.AUTH_FAILED:
        return M.LOGIN_REFUSED.result(who=who, details={"error": result.error, **evidence})
    if result.reason is Reason.ACCESS_DENIED:
        return M.VHOST_DENIED.result(user=result.user, vhost=result.vhost, details={"error": result.error, **evidence})
    return judge_unreachable(host, port, result.reason, result.error)


def probe_auth(ctx: "Context") -> Result:
    host, port = ctx.endpoint("rabbitmq")
    return judge_login(host, port, login(ctx))
