"""Wall-time figures for `sbops install --skip-infra` against the lab (`scripts/lab up`):

  1. `sbops install --plan`: validation and a plan of every step (nothing changes)
  2. `sbops install --yes` once (converges the lab: the demo chart's release sbops-bench, labels)
  3. `sbops install --yes` again: the no-op re-run (every step probes, has nothing to do, is verified)

Each figure is the median of several runs of the whole CLI process (what a user waits for). The lab keeps
what run 2 did (a release of the demo chart named sbops-bench, Helm's labels on sb-apps).
Run: .venv/bin/python bench/install.py
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lab.kube import ecr_token  # noqa: E402
from tests.lab.stack import LAB, up  # noqa: E402

RUNS = 5


def helm() -> str:
    proc = subprocess.run([str(Path(__file__).resolve().parents[1] / "scripts" / "get-helm")], capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def timed(argv: list[str], env: dict[str, str], runs: int = RUNS) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, env=env, check=False).returncode
        times.append(time.perf_counter() - began)
    return statistics.median(times), code


def main() -> int:
    env = up()
    root = LAB / "bench-install"
    for key, value in (("helm.command", helm()), ("install.chart", str(Path(__file__).resolve().parents[1] / "tests" / "lab" / "charts" / "sbops-demo")),
                       ("release", "sbops-bench"), ("install.state_file", str(root / "state.json")),
                       ("install.log_dir", str(root / "logs")), ("install.pod_timeout", 30),
                       ("install.unit_dir", str(root / "units")),
                       ("install.exporter", False)):  # no systemd on the lab's machine to run its service
        env.set(key, value)
    env.write()
    base = [sys.executable, "-m", "sbops", "install", "--skip-infra", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    extra = {**os.environ, "NO_COLOR": "1", "HELM_CACHE_HOME": str(root / "helm"), "HELM_CONFIG_HOME": str(root / "helm"),
             "HELM_DATA_HOME": str(root / "helm"),
             "AWS_ECR_TOKEN": ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=11))}
    plan, code1 = timed([*base, "--plan"], extra)
    first, code2 = timed([*base, "--yes"], extra, runs=1)
    rerun, code3 = timed([*base, "--yes"], extra)
    print(f"install --plan (13 steps, 3 skipped by --skip-infra){plan:6.2f} s   exit {code1}")
    print(f"install --yes, first run on the lab (converges)    {first:6.2f} s   exit {code2}")
    print(f"install --yes, no-op re-run (probe + verify all)   {rerun:6.2f} s   exit {code3}")
    return 0 if (code1, code2, code3) == (0, 0, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
