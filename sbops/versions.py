"""Every version `sbops install` pins and every URL it downloads from, in one place.

Upgrading a component is a change to this file (and its test table), nothing else. The checksums are
not pinned here: upstream publishes a sha256 file next to each artifact, and the installer verifies the
download against it (online), or against the operator's SHA256SUMS manifest (--artifacts-dir).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

K3S_VERSION = "v1.29.0+k3s1"
ISTIO_VERSION = "1.20.3"
ISTIO_PROFILE = "demo"
HELM_VERSION = "v3.17.1"
HELM_MAJOR = 3
MONGODB_SERIES = "7.0"
MYSQL_SERIES = "8.0"  # Ubuntu's mysql-server; Debian ships MariaDB (10.11 on Debian 12) instead

# Distributions K3s supports here (ID, VERSION_ID from /etc/os-release) and their apt codenames.
SUPPORTED_OS: dict[tuple[str, str], str] = {
    ("ubuntu", "22.04"): "jammy",
    ("ubuntu", "24.04"): "noble",
    ("debian", "12"): "bookworm",
}

# The vendor's MongoDB 7.0 repository per distribution: (base URL, suite, component).
# MongoDB publishes 7.0 for jammy, not for noble: noble uses jammy's packages (same libssl3 ABI).
MONGODB_KEY_URL = f"https://pgp.mongodb.com/server-{MONGODB_SERIES}.asc"
MONGODB_REPOS: dict[str, tuple[str, str, str]] = {
    "jammy": ("https://repo.mongodb.org/apt/ubuntu", f"jammy/mongodb-org/{MONGODB_SERIES}", "multiverse"),
    "noble": ("https://repo.mongodb.org/apt/ubuntu", f"jammy/mongodb-org/{MONGODB_SERIES}", "multiverse"),
    "bookworm": ("https://repo.mongodb.org/apt/debian", f"bookworm/mongodb-org/{MONGODB_SERIES}", "main"),
}

# Distribution packages per service. MySQL: Ubuntu's mysql-server is 8.0; Debian 12 has only MariaDB.
MYSQL_PACKAGES = {"mysql": ("mysql-server",), "mariadb": ("mariadb-server",)}
MYSQL_SERVER_PACKAGES = ("mysql-server", "mysql-server-8.0", "mariadb-server", "mysql-community-server",
                         "percona-server-server")
MONGODB_PACKAGES = ("mongodb-org",)
MONGODB_SERVER_PACKAGES = ("mongodb-org-server",)
RABBITMQ_PACKAGES = ("rabbitmq-server",)
NFS_PACKAGES = ("nfs-kernel-server",)


def arch(machine: str | None = None) -> str:
    """Go-style architecture of this machine (the name K3s, Helm and Istio publish under)."""
    machine = (machine or platform.machine()).lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class Artifact:
    """One file the installer needs: its name (also its name in --artifacts-dir), where it is published,
    and the published sha256 file that lists it."""

    name: str
    url: str
    checksum_url: str
    what: str  # for humans: "the K3s binary"


def k3s_binary(cpu: str) -> Artifact:
    base = f"https://github.com/k3s-io/k3s/releases/download/{K3S_VERSION.replace('+', '%2B')}"
    name = "k3s" if cpu == "amd64" else f"k3s-{cpu}"
    return Artifact(name, f"{base}/{name}", f"{base}/sha256sum-{cpu}.txt", f"the K3s {K3S_VERSION} binary")


def k3s_images(cpu: str) -> Artifact:
    """The images K3s itself needs, for air-gapped installs (K3s imports it from agent/images at start)."""
    base = f"https://github.com/k3s-io/k3s/releases/download/{K3S_VERSION.replace('+', '%2B')}"
    name = f"k3s-airgap-images-{cpu}.tar.zst"
    return Artifact(name, f"{base}/{name}", f"{base}/sha256sum-{cpu}.txt", f"the K3s {K3S_VERSION} images")


def helm_archive(cpu: str) -> Artifact:
    name = f"helm-{HELM_VERSION}-linux-{cpu}.tar.gz"
    url = f"https://get.helm.sh/{name}"
    return Artifact(name, url, f"{url}.sha256sum", f"Helm {HELM_VERSION}")


def helm_member(cpu: str) -> str:
    return f"linux-{cpu}/helm"


def istioctl_archive(cpu: str) -> Artifact:
    name = f"istioctl-{ISTIO_VERSION}-linux-{cpu}.tar.gz"
    url = f"https://github.com/istio/istio/releases/download/{ISTIO_VERSION}/{name}"
    return Artifact(name, url, f"{url}.sha256", f"istioctl {ISTIO_VERSION}")


ISTIOCTL_MEMBER = "istioctl"
