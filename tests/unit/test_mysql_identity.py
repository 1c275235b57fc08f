"""Which server a login reaches: sbops.probes.mysql.identity_mismatch from a table."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes import mysql as m

A = m.ServerId("db1", 3306, bind_address="0.0.0.0")
B = m.ServerId("db1", 3307, bind_address="0.0.0.0")
MYSQL_A = m.ServerId("db1", 3306, uuid="aaaa")
MYSQL_A_OTHER_PORT = m.ServerId("db1", 3310, uuid="aaaa")  # the same server seen through a forwarded port
MYSQL_C = m.ServerId("db1", 3306, uuid="cccc")  # same host name and port, another server (a container)


@pytest.mark.parametrize("admin, app, host, port, local, same", [
    (A, A, "10.0.0.5", 3306, True, True),
    (B, A, "10.0.0.5", 3306, True, False),  # the issue: a second MariaDB answers on the socket
    (MYSQL_A, MYSQL_A_OTHER_PORT, "10.0.0.5", 3310, True, True),  # server_uuid decides
    (MYSQL_C, MYSQL_A, "10.0.0.5", 3306, True, False),
    # the stackbill login is down: the socket's server must listen on Host:Port
    (A, None, "10.0.0.5", 3306, True, True),
    (B, None, "10.0.0.5", 3306, True, False),  # another port
    (A, None, "10.0.0.9", 3306, False, False),  # the credentials name another machine
    (m.ServerId("db1", 3306, bind_address="127.0.0.1"), None, "10.0.0.5", 3306, True, False),
    (m.ServerId("db1", 3306, bind_address="127.0.0.1"), None, "127.0.0.1", 3306, True, True),
    (m.ServerId("db1", 3306, bind_address="10.0.0.5"), None, "10.0.0.5", 3306, True, True),
    (m.ServerId("db1", 3306, bind_address=""), None, "10.0.0.5", 3306, True, True),  # every address
    (m.ServerId("db1", 3306, bind_address="*"), None, "10.0.0.5", 3306, True, True),
    (m.ServerId("db1", 3306, skip_networking=True), None, "10.0.0.5", 3306, True, False),
])
def test_identity_mismatch(admin: m.ServerId, app: m.ServerId | None, host: str, port: int, local: bool,
                           same: bool) -> None:
    why = m.identity_mismatch(admin, app, host, port, local)
    assert (why == "") is same
    if not same:
        assert f"port {admin.port}" in why and f"{host}:{port}" in why  # says which server it reached


def test_a_loopback_bound_server_is_the_one_when_nothing_listens_on_host_port() -> None:
    """bind-address 127.0.0.1 and the credentials name the server IP: refused there, so the socket's server,
    configured for that port, is the only one meant (and mysql-config may repair its bind-address)."""
    loopback = m.ServerId("db1", 3306, bind_address="127.0.0.1")
    assert m.identity_mismatch(loopback, None, "10.0.0.5", 3306, True, endpoint_silent=True) == ""
    assert m.identity_mismatch(loopback, None, "10.0.0.5", 3306, True, endpoint_silent=False) != ""
    assert m.identity_mismatch(B, None, "10.0.0.5", 3306, True, endpoint_silent=True) != ""  # port still decides


def test_wrong_server_is_its_own_reason_and_blocks_plans() -> None:
    err = m.WrongServer("admin root via socket /s", "it reaches the server on db1 port 3307", B)
    access = m.Access(None, {"app": err, "admin": err})
    result = m.no_access_result(access, "read the variables")
    assert (result.status, result.reason) == (Status.SKIP, Reason.WRONG_SERVER)
    assert result.details["reached"]["port"] == 3307
    assert m.no_access_blocker(access).startswith("refusing to change anything")
    plain = m.Access(None, {"admin": m.LoginError("admin", OSError("refused"))})
    assert m.no_access_result(plain, "x").reason is Reason.NO_ACCESS
    assert m.no_access_blocker(plain).startswith("no MySQL login works")
