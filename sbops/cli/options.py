"""What the commands share: the Typer options every command spells the same way, `Output`, colour, and the
Context built from the common flags. Imported by every module of sbops.cli, importing none of them."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import TYPE_CHECKING, Any, Optional

import typer

from sbops.errors import UsageError

if TYPE_CHECKING:
    from sbops.context import Context

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_FAILED, EXIT_WARN, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class Output(str, Enum):
    text = "text"
    json = "json"


ConfigOpt = typer.Option(None, "--config", metavar="FILE", help="YAML settings (default: $SBOPS_CONFIG, /etc/sbops/config.yaml)")
CredsOpt = typer.Option(None, "--credentials", metavar="FILE", help="credentials file (default: $SBOPS_CREDENTIALS, /root/stackbill-credentials.txt)")
TimeoutOpt = typer.Option(None, "--timeout", metavar="SECONDS", help="per-check timeout (default 5)")
KubeOpt = typer.Option(None, "--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, the pod's ServiceAccount in a pod, ~/.kube/config, /etc/rancher/k3s/k3s.yaml)")
OutputOpt = typer.Option(Output.text, "--output", "-o", help="text or json")
WaitOpt = typer.Option(None, "--wait-timeout", metavar="SECONDS",
                       help="how long restarted pods may take to be Ready (default: setting pods.rollout_timeout, 180)")


def colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def check_timeout(timeout: Optional[float], flag: str = "--timeout") -> None:
    """A timeout flag is a positive number of seconds (the settings refuse nan and the too large)."""
    if timeout is not None and timeout <= 0:
        raise UsageError(f"{flag}: must be a positive number of seconds, got {timeout:g}")


def context(config: Optional[str], credentials: Optional[str], timeout: Optional[float],
            kubeconfig: Optional[str] = None) -> "Context":
    from sbops.context import Context

    check_timeout(timeout)
    return Context.load(config, credentials, flags={"timeout": timeout, "kubeconfig": kubeconfig})


def wait_seconds(flag: Optional[float], settings: Any) -> float:
    """--wait-timeout, or setting pods.rollout_timeout when it is not given; a usage error when not positive.
    Call before anything changes."""
    if flag is not None and flag <= 0:
        raise UsageError(f"--wait-timeout: must be a positive number of seconds, got {flag:g}")
    return float(flag if flag is not None else settings["pods.rollout_timeout"])
