"""Wall-time figures for `sbops uninstall`'s look before it asks: the inventory of every level and the plan.

  1. `sbops uninstall --delete-pvc --delete-namespace --delete-db --delete-mongo-data --dry-run` against the
     healthy lab (the cluster, MariaDB, SecantusDB, RabbitMQ): the whole CLI, then the inventory in-process
  2. the same with every data server blackholed (and no admin socket or rabbitmqctl to fall back on): the
     areas are observed in parallel, so the wait is one network timeout, not three   goal <= timeout + 1.5 s

Each figure is the median of several runs. Nothing is deleted (dry runs only).
Run: .venv/bin/python bench/uninstall.py   (starts or reuses the lab of `scripts/lab up`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbops.uninstall import inventory  # noqa: E402
from tests.lab.common import Blackhole  # noqa: E402
from tests.lab.env import LabEnv  # noqa: E402
from tests.lab.stack import LAB, up  # noqa: E402

LEVELS = ["--delete-pvc", "--delete-namespace", "--delete-db", "--delete-mongo-data"]
RUNS = 5


def helm_binary() -> str:
    proc = subprocess.run([str(Path(__file__).resolve().parents[1] / "scripts" / "get-helm")], capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def cli_seconds(env: LabEnv, runs: int = RUNS) -> tuple[float, int]:
    argv = [str(Path(sys.executable).with_name("sbops")), "uninstall", *LEVELS, "--dry-run", "--output", "json",
            "--config", str(env.config_path), "--credentials", str(env.credentials_path)]
    times, code = [], 0
    for _ in range(runs):
        began = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - began)
    return statistics.median(times), code


def inventory_seconds(env: LabEnv, runs: int = RUNS) -> float:
    from sbops.cli.uninstall import context

    times = []
    for _ in range(runs):
        ctx = context(str(env.config_path), str(env.credentials_path), None, None, None, None)
        began = time.perf_counter()
        inventory.observe(ctx, str(ctx.settings["release"]))
        times.append(time.perf_counter() - began)
        ctx.close()
    return statistics.median(times)


def blackholed_env(healthy: LabEnv, holes: dict[str, Blackhole]) -> LabEnv:
    env = LabEnv(LAB / "bench-uninstall-blackholed")
    env.settings = dict(healthy.settings)
    for service in ("mysql", "mongodb", "rabbitmq"):
        env.service(service, port=holes[service].port, password=healthy.services[service].password.reveal(),
                    management=f"http://127.0.0.1:{holes['management'].port}" if service == "rabbitmq" else "")
    env.set("rabbitmq.management_port", holes["management"].port)
    env.set("mysql.admin_socket", str(env.root / "no-socket")).set("rabbitmq.ctl_command", str(env.root / "no-ctl"))
    return env.write()


def main() -> int:
    healthy = up().set("helm.command", helm_binary()).write()
    timeout = float(healthy.settings.get("timeout", 5))
    cli_seconds(healthy, runs=1)  # warm caches before measuring
    figures: list[tuple[str, float, str]] = []
    seconds, code = cli_seconds(healthy)
    figures.append(("healthy lab, every level, whole CLI --dry-run", seconds, f"exit {code}; no goal"))
    figures.append(("healthy lab, every level, inventory in-process", inventory_seconds(healthy), "no goal"))
    holes = {k: Blackhole() for k in ("mysql", "mongodb", "rabbitmq", "management")}
    try:
        dead = blackholed_env(healthy, holes)
        seconds, code = cli_seconds(dead, runs=3)
        figures.append(("data servers blackholed, whole CLI --dry-run", seconds,
                        f"exit {code} (blocked); goal <= {timeout + 1.5:g} s"))
        figures.append(("data servers blackholed, inventory in-process", inventory_seconds(dead, runs=3),
                        f"goal <= {timeout + 1.5:g} s"))
    finally:
        for hole in holes.values():
            hole.close()
    width = max(len(name) for name, _, _ in figures)
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"timeout: {timeout:g} s; median of runs; machine: {cores} cores")
    for name, seconds, note in figures:
        print(f"{name:<{width}}  {seconds:7.3f} s   {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
