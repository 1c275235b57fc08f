"""rabbitmq.reachable and rabbitmq.auth: the broker's AMQP handshake and the stackbill login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.model import Reason, Result, fail, ok
from sbops.probes.net import one_line, socket_reason
from sbops.probes.rabbitmq.session import amqp_handshake, Handshake, Login, login

if TYPE_CHECKING:
    from sbops.context import Context


def judge_handshake(host: str, port: int, answer: Handshake) -> Result:
    where = f"{host}:{port}"
    if answer.kind == "start":
        name = " ".join(p for p in (answer.product, answer.version) if p) or "an AMQP 0-9-1 broker"
        return ok(f"{name} answers AMQP on {where}", host=host, port=port, product=answer.product,
                  version=answer.version, mechanisms=answer.mechanisms)
    if answer.kind == "header":
        return fail(Reason.MISCONFIGURED, f"{where} speaks another AMQP version than 0-9-1 (not RabbitMQ's AMQP port?)",
                    host=host, port=port, answer=answer.other_header)
    if answer.kind == "silent":
        return fail(Reason.TIMEOUT, f"{where} accepted the connection but sent no AMQP answer in time: the broker hangs, "
                    "or this is not its AMQP port", host=host, port=port)
    if answer.kind == "closed":
        return fail(Reason.MISCONFIGURED, f"{where} accepted the connection but closed it without an AMQP answer",
                    host=host, port=port)
    return fail(Reason.MISCONFIGURED, f"something answers on {where} but it is not AMQP: check the RABBITMQ Port",
                host=host, port=port)


def judge_unreachable(host: str, port: int, reason: Reason, error: str) -> Result:
    where = f"{host}:{port}"
    summary = {
        Reason.REFUSED: f"nothing listens on {where}: start RabbitMQ (systemctl start rabbitmq-server) or fix the RABBITMQ Port",
        Reason.TIMEOUT: f"no answer from {where}: a firewall drops the traffic or the broker hangs",
    }.get(reason, f"cannot reach {where}: {error}")
    return fail(reason, summary, host=host, port=port, error=error)


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
        return ok(f"{result.user} logs in to {host}:{port} and opens vhost '{result.vhost}'", **evidence)
    if result.reason is Reason.AUTH_FAILED:
        return fail(Reason.AUTH_FAILED, f"RabbitMQ refused the login of {who}: wrong password or no such user",
                    error=result.error, **evidence)
    if result.reason is Reason.ACCESS_DENIED:
        return fail(Reason.ACCESS_DENIED, f"{result.user} logs in but may not use vhost '{result.vhost}': no permissions there",
                    error=result.error, **evidence)
    return judge_unreachable(host, port, result.reason, result.error)


def probe_auth(ctx: "Context") -> Result:
    host, port = ctx.endpoint("rabbitmq")
    return judge_login(host, port, login(ctx))
