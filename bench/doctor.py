"""Wall-time figures for `sbops doctor` (goals from issue 2):

  1. every data-layer check (mysql, mongodb, rabbitmq, nfs) against the healthy lab      goal < 1.5 s
  2. the same checks with every server stopped, then with every server blackholed        goal <= timeout + 1 s
  3. every check of every layer (data layers plus the test cluster), healthy lab          goal < 2 s
  4. every layer with the API server stopped (kubeconfig at a closed port)                goal <= timeout + 1 s
  5. `sbops --help`                                                                        goal < 0.3 s

Each figure is the median of several runs, for the whole CLI process (what a user waits for) and, for
1 and 2, the engine alone in-process (the checks without Python's start-up).
Run: .venv/bin/python bench/doctor.py   (starts or reuses the lab of `scripts/lab up`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbops.context import Context  # noqa: E402
from sbops.engine import run_checks  # noqa: E402
from sbops.registry import load_all  # noqa: E402
from tests.lab.common import Blackhole, free_port  # noqa: E402
from tests.lab.env import LabEnv  # noqa: E402
from tests.lab.stack import LAB, up  # noqa: E402

DATA_LAYERS = ["mysql", "mongodb", "rabbitmq", "nfs"]
RUNS = 5


def cli_seconds(argv: list[str], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def engine_seconds(env: LabEnv, runs: int = RUNS, layers: list[str] | None = DATA_LAYERS) -> tuple[float, dict[str, int]]:
    env.write()
    checks = load_all().select(layers, None)
    times, counts = [], {}
    for _ in range(runs):
        ctx = Context.load(str(env.config_path), str(env.credentials_path))
        began = time.perf_counter()
        outcomes = run_checks(ctx, checks)
        times.append(time.perf_counter() - began)
        ctx.close()
        counts = {}
        for o in outcomes:
            counts[o.result.status.value] = counts.get(o.result.status.value, 0) + 1
    return statistics.median(times), counts


def doctor_argv(env: LabEnv, layers: list[str] | None = DATA_LAYERS) -> list[str]:
    sbops = str(Path(sys.executable).with_name("sbops"))
    argv = [sbops, "doctor", "--output", "json", "--config", str(env.config_path), "--credentials", str(env.credentials_path)]
    for layer in layers or []:
        argv += ["--layer", layer]
    return argv


def api_stopped_env(healthy: LabEnv) -> LabEnv:
    """The healthy lab, but its kubeconfig points at a port where no API server listens."""
    import yaml

    env = LabEnv(LAB / "bench-api-stopped")
    env.settings = dict(healthy.settings)
    env.services = dict(healthy.services)
    config = yaml.safe_load(Path(healthy.settings["kubeconfig"]).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = env.root / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    env.set("kubeconfig", str(path))
    return env.write()


def dead_env(healthy: LabEnv, name: str, ports: dict[str, int]) -> LabEnv:
    """A copy of the lab's settings with every server's ports replaced (closed or blackholed)."""
    env = LabEnv(LAB / f"bench-{name}")
    env.settings = dict(healthy.settings)
    for service in ("mysql", "mongodb", "rabbitmq"):
        env.service(service, port=ports[service], password=healthy.services[service].password.reveal(),
                    management=f"http://127.0.0.1:{ports['management']}" if service == "rabbitmq" else "")
    env.set("rabbitmq.management_port", ports["management"])
    env.set("nfs.port", ports["nfs"])
    return env.write()


def main() -> int:
    healthy = up()
    timeout = float(healthy.settings.get("timeout", 5))
    figures: list[tuple[str, float, str]] = []
    for layer_run in range(1):  # warm the lab (first logins populate caches) before measuring
        engine_seconds(healthy, runs=1)
    seconds, counts = engine_seconds(healthy)
    figures.append(("healthy lab, data-layer checks, engine", seconds, f"goal < 1.5 s; {counts}"))
    figures.append(("healthy lab, data-layer checks, whole CLI", cli_seconds(doctor_argv(healthy)), "goal < 1.5 s"))

    stopped = dead_env(healthy, "stopped", {k: free_port() for k in ("mysql", "mongodb", "rabbitmq", "management", "nfs")})
    seconds, counts = engine_seconds(stopped, runs=3)
    figures.append(("every server stopped, engine", seconds, f"goal <= {timeout + 1:g} s; {counts}"))
    figures.append(("every server stopped, whole CLI", cli_seconds(doctor_argv(stopped), runs=3), f"goal <= {timeout + 1:g} s"))

    holes = {k: Blackhole() for k in ("mysql", "mongodb", "rabbitmq", "management", "nfs")}
    try:
        blackholed = dead_env(healthy, "blackholed", {k: h.port for k, h in holes.items()})
        seconds, counts = engine_seconds(blackholed, runs=3)
        figures.append(("every server blackholed, engine", seconds, f"goal <= {timeout + 1:g} s; {counts}"))
        figures.append(("every server blackholed, whole CLI", cli_seconds(doctor_argv(blackholed), runs=3), f"goal <= {timeout + 1:g} s"))
    finally:
        for hole in holes.values():
            hole.close()

    seconds, counts = engine_seconds(healthy, layers=None)
    figures.append(("healthy lab, every layer, engine", seconds, f"goal < 2 s; {counts}"))
    figures.append(("healthy lab, every layer, whole CLI", cli_seconds(doctor_argv(healthy, None)), "goal < 2 s"))
    stopped_api = api_stopped_env(healthy)
    seconds, counts = engine_seconds(stopped_api, runs=3, layers=None)
    figures.append(("API server stopped, every layer, engine", seconds, f"goal <= {timeout + 1:g} s; {counts}"))
    figures.append(("API server stopped, every layer, whole CLI", cli_seconds(doctor_argv(stopped_api, None), runs=3),
                    f"goal <= {timeout + 1:g} s"))

    sbops = str(Path(sys.executable).with_name("sbops"))
    figures.append(("sbops --help", cli_seconds([sbops, "--help"], runs=10), "goal < 0.3 s"))
    figures.append(("sbops doctor --list", cli_seconds([sbops, "doctor", "--list"], runs=10), "no goal"))

    width = max(len(name) for name, _, _ in figures)
    print(f"timeout per check: {timeout:g} s; median of runs; machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores")
    for name, seconds, note in figures:
        print(f"{name:<{width}}  {seconds:7.3f} s   {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
