"""mysql.connections: how close the server is to max_connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbops.messages import mysql as M
from sbops.model import Result
from sbops.probes.mysql.access import any_session, no_access_result
from sbops.probes.mysql.config import MIN_CONNECTIONS

if TYPE_CHECKING:
    from sbops.context import Context


# ======================================================================================================
# mysql.connections
# ======================================================================================================
WARN_RATIO = 0.8


def judge_connections(threads: int, maximum: int) -> Result:
    """Pure: warn at 80 % of max_connections, fail at 100 %."""
    ratio = threads / maximum if maximum else 1.0
    evidence = {"threads_connected": threads, "max_connections": maximum, "percent": round(ratio * 100, 1)}
    args = {"threads": threads, "maximum": maximum, "percent": ratio * 100}
    if ratio < WARN_RATIO:
        return M.CONNECTIONS_OK.result(details=evidence, **args)
    message = M.CONNECTIONS_EXHAUSTED if ratio >= 1.0 else M.CONNECTIONS_NEAR_MAX
    return message.result(details=evidence, fix="mysql-config" if maximum < MIN_CONNECTIONS else None, **args)


def probe_connections(ctx: "Context") -> Result:
    access = any_session(ctx)
    if access.session is None:
        return no_access_result(access, "read the connection count")
    row = access.session.rows("SELECT @@GLOBAL.max_connections AS m")[0]
    status = access.session.rows("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    threads = int(status[0]["value"]) if status else 0
    return judge_connections(threads, int(row["m"]))
