"""mongodb.version: the server's version against the series StackBill is installed with.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sbops.messages import mongodb as M
from sbops.model import Result
from sbops.probes.mongodb.session import MIN_VERSION, SUPPORTED_MAJOR, UNAUTHORIZED, anon_client, app_login, guarded

if TYPE_CHECKING:
    from sbops.context import Context


# ---------------------------------------------------------------------------------------------------
# version
# ---------------------------------------------------------------------------------------------------
def parse_version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(text).split("-")[0])
    return tuple(int(n) for n in numbers[:3])


def judge_version(build: dict[str, Any]) -> Result:
    """StackBill's installer pins 7.0: another major works at one's own risk; below 5.0 is unsupported.

    Reason: MISCONFIGURED ("present, but set up differently from what StackBill needs") fits an installed
    version other than the one the installer pins; nothing is down, expired or short of capacity.
    """
    text = str(build.get("version", ""))
    version = parse_version(text)
    evidence = {"version": text, "git_version": build.get("gitVersion", "")}
    if "secantusVersion" in build:
        evidence["secantus_version"] = build["secantusVersion"]
    if not version:
        return M.VERSION_UNKNOWN.result(version=text, details=evidence)
    if version[:2] < MIN_VERSION:
        return M.VERSION_TOO_OLD.result(version=text, minimum=f"{MIN_VERSION[0]}.{MIN_VERSION[1]}",
                                        supported=SUPPORTED_MAJOR, details=evidence)
    if version[0] != SUPPORTED_MAJOR:
        return M.VERSION_OTHER_MAJOR.result(version=text, supported=SUPPORTED_MAJOR, details=evidence)
    return M.VERSION_OK.result(version=text, details=evidence)


def probe_version(ctx: "Context") -> Result:
    def run() -> Result:
        try:
            build = observe_build_info(ctx)
        except RuntimeError as exc:
            return M.BUILDINFO_REFUSED.result(why=str(exc))
        return judge_version(build)

    return guarded(run, ctx)


def observe_build_info(ctx: "Context") -> dict[str, Any]:
    """buildInfo without credentials (mongod allows it), else as the StackBill user."""
    from pymongo.errors import OperationFailure

    try:
        return dict(anon_client(ctx).admin.command("buildInfo"))
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:
            raise
    login = app_login(ctx)
    if not login.ok:
        raise RuntimeError(f"buildInfo needs a login and {login.user}'s is rejected (code {login.code})")
    return dict(login.client.admin.command("buildInfo"))
