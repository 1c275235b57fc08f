"""The Helm release's findings (SB65xx): helm.release."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

RELEASE = "runbooks/helm.release.md"

RELEASE_DEPLOYED = define("SB6510", "HelmReleaseDeployed", Status.OK, "{where} is deployed", RELEASE, Reason.NONE)
RELEASE_MISSING = define("SB6511", "HelmReleaseMissing", Status.FAIL,
                         "no Helm release {release} in namespace {namespace} (no {prefix}{release}.v* secret): "
                         "StackBill was not installed with Helm here", RELEASE, Reason.MISSING)
RELEASE_STUCK = define("SB6512", "HelmReleaseStuck", Status.FAIL,
                       "{where} is stuck in {status}: an install/upgrade was interrupted and Helm refuses further "
                       "upgrades", RELEASE, Reason.STUCK)
RELEASE_FAILED = define("SB6513", "HelmReleaseFailed", Status.FAIL, "{where} failed: {description}", RELEASE,
                        Reason.FAILED)
RELEASE_UNINSTALLED = define("SB6514", "HelmReleaseUninstalled", Status.FAIL, "{where} was uninstalled", RELEASE,
                             Reason.MISSING)
RELEASE_ODD_STATUS = define("SB6515", "HelmReleaseUnexpectedStatus", Status.FAIL,
                            "{where} has status {status}, not deployed", RELEASE, Reason.MISCONFIGURED)
