"""This host's system software: installed packages, systemd units, binaries and their versions.

What the installer needs to know before it installs or starts anything, observed through ctx.runner
(dpkg-query, systemctl, `<binary> --version`), so a RecordingRunner answers for a machine that is not
this one. The parsers and the decision of what a service needs (`service_actions`) are pure.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Iterable, Sequence

from sbops.runner import HostRunner, display

APT_ENV = ("env", "DEBIAN_FRONTEND=noninteractive")


# -- packages ----------------------------------------------------------------------------------------
def dpkg_query_argv(packages: Sequence[str]) -> list[str]:
    return ["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Version}\n", *packages]


def parse_dpkg_query(text: str) -> dict[str, str]:
    """Installed packages -> version, from `dpkg-query -W -f='${Package}\\t${Status}\\t${Version}\\n'`.

    A package that was removed but not purged reports `deinstall ok config-files`: not installed.
    """
    found = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].strip().endswith(" installed"):
            found[parts[0].split(":")[0]] = parts[2].strip()
    return found


def installed_packages(runner: HostRunner, packages: Sequence[str]) -> dict[str, str]:
    """Which of `packages` are installed (dpkg-query exits 1 for unknown names but lists the known ones)."""
    result = runner.run(dpkg_query_argv(packages), timeout=30)
    return parse_dpkg_query(result.stdout)


def apt_update_argv() -> list[str]:
    return [*APT_ENV, "apt-get", "update", "-q"]


def apt_install_argv(packages: Sequence[str]) -> list[str]:
    return [*APT_ENV, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]


# -- systemd -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitState:
    active: str  # active, inactive, failed, activating, unknown
    enabled: str  # enabled, disabled, static, not-found, ...


def unit_state(runner: HostRunner, unit: str) -> UnitState:
    active = runner.run(["systemctl", "is-active", unit], timeout=30).stdout.strip() or "unknown"
    enabled = runner.run(["systemctl", "is-enabled", unit], timeout=30).stdout.strip() or "not-found"
    return UnitState(active.splitlines()[0], enabled.splitlines()[0])


def enable_now_argv(unit: str) -> list[str]:
    return ["systemctl", "enable", "--now", unit]


# -- binaries ----------------------------------------------------------------------------------------
_VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)")


def parse_version(text: str) -> str:
    """The first version number in a `--version` output: 'k3s version v1.29.0+k3s1 (3190a5a)' -> 'v1.29.0+k3s1'."""
    match = _VERSION.search(text or "")
    if not match:
        return ""
    return ("v" if match.group(0).startswith("v") else "") + match.group(1)


def binary_version(runner: HostRunner, argv: Sequence[str]) -> str | None:
    """The version a binary reports, '' when it runs but names none, None when it is not there."""
    result = runner.run(list(argv), timeout=30)
    if result.returncode in (126, 127):
        return None
    if not result.ok:
        return None
    return parse_version(result.stdout + "\n" + result.stderr)


def major(version: str) -> int | None:
    match = re.match(r"v?(\d+)\.", version or "")
    return int(match.group(1)) if match else None


# -- what a host service needs ----------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceFacts:
    """What was observed of one service the installer may have to install or start."""

    name: str  # MySQL, MongoDB, ...
    host: str
    port: int
    local: bool  # the credentials file puts it on this machine
    answers: bool  # something accepts connections on its port
    installed: dict[str, str]  # installed server packages -> version
    unit: str


def service_actions(facts: ServiceFacts) -> tuple[list[str], str]:
    """Pure: ([] | ['install'] | ['install', 'start'] | ['start'], why nothing is needed).

    A service on another host is not installed here; one that answers on its port is left alone
    (whatever installed it); an installed one that does not answer is started; else it is installed.
    """
    where = f"{facts.host}:{facts.port}"
    if not facts.local:
        return [], f"{facts.name} at {where} is on another host: nothing is installed here"
    if facts.answers:
        return [], f"{facts.name} answers at {where}"
    if facts.installed:
        return ["start"], ""
    return ["install", "start"], ""


def describe_packages(installed: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(installed.items())) or "none"


def shown(argvs: Iterable[Sequence[str]]) -> tuple[str, ...]:
    return tuple(display(list(a)) for a in argvs)


# -- the distribution ------------------------------------------------------------------------------
OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")


def parse_os_release(text: str) -> dict[str, str]:
    """Pure: os-release(5) KEY=value lines (values may be quoted) -> dict."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("'\"")]
        out[key.strip()] = parts[0] if parts else ""
    return out


def os_release(runner: HostRunner) -> dict[str, str]:
    """This machine's os-release (empty when neither file exists)."""
    from pathlib import Path

    for name in OS_RELEASE_FILES:
        text = runner.read_file(Path(name))
        if text is not None:
            return parse_os_release(text)
    return {}
