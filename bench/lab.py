"""Wall-time figures for the living lab (tests/lab/living.py):

  1. a cold image build (tests/lab/images.py into an empty cache: every lab image from busybox-static);
  2. `lab up` to all pods Ready, twice, in fresh directories: private MariaDB, MongoDB-wire and RabbitMQ, then
     the cluster's phases (network namespace, API server, images, registry and pushes, node Ready, pods Ready);
  3. with --build: a cold build of the Kubernetes binaries (scripts/build-kube into an empty cache, about 7
     minutes on 2 cores; otherwise the cached binaries are used and the figure is not measured);
  4. with --suite: the whole test suite (`pytest -q`, what .ci/run runs after setup).

Run: .venv/bin/python bench/lab.py [--build] [--suite]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lab import living  # noqa: E402
from tests.lab.images import build_images  # noqa: E402

STARTS = 2


def cold_images() -> float:
    with tempfile.TemporaryDirectory(prefix="sbops-bench-images-") as cache:
        began = time.perf_counter()
        build_images(Path(cache))
        return time.perf_counter() - began


def lab_up() -> dict[str, float]:
    """One start from nothing (binaries and images cached): seconds per phase, cumulative."""
    with tempfile.TemporaryDirectory(prefix="sbops-bench-lab-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        servers = living.start_servers(root / "servers")
        servers_at = time.perf_counter() - began
        cluster = living.LivingCluster(root / "cluster")
        cluster.servers = servers
        try:
            cluster.start(living.services_of(servers))
            total = time.perf_counter() - began
        finally:
            cluster.stop()
            living.stop_servers(servers)
        return {"data servers": servers_at, **{k: servers_at + v for k, v in cluster.timings.items()},
                "total": total}


def cold_kube_build() -> float:
    with tempfile.TemporaryDirectory(prefix="sbops-bench-kube-") as cache:
        began = time.perf_counter()
        subprocess.run([str(REPO / "scripts" / "build-kube")], env={**os.environ, "SBOPS_CACHE": cache}, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - began


def suite() -> tuple[float, int]:
    began = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - began, code


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in ("--build", "--suite")]
    if unknown:
        print(f"bench/lab.py: unknown option {unknown[0]} (use --build, --suite)", file=sys.stderr)
        return 2
    print(f"image build, cold: {cold_images():.1f} s")
    for run in range(1, STARTS + 1):
        phases = lab_up()
        print(f"lab up #{run}: " + ", ".join(f"{name} {at:.1f} s" for name, at in phases.items()))
    if "--build" in argv:
        print(f"Kubernetes binaries, cold build: {cold_kube_build():.0f} s")
    if "--suite" in argv:
        took, code = suite()
        print(f"whole suite: {took / 60:.1f} min (pytest exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
