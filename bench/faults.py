"""Wall time of every command that talks to the Kubernetes API against a blackholed API server, and of every
command that talks to the databases against blackholed MySQL, MongoDB and RabbitMQ (issue 9).

For each blackhole (`silent`: accepts and never answers; `never-accepts`: SYNs unanswered) and each command
(doctor per Kubernetes layer, fix --dry-run for the Kubernetes fixes, uninstall --dry-run, the exporter's
/probe per layer), the median wall time of RUNS runs at `--timeout T`, the ratio to T, the exit code and the
reason the command gave. Goal: every command within T + 1 s (the whole process, Python's start-up included);
before issue 9, urllib3's three retries made fix and uninstall take about 3.5 x T. `install --plan` with two
Kubernetes steps probes them one after the other, each within T, so it takes about 2 x T (shown OVER GOAL).
The exporter caches some checks' results (helm.release): a repeated /probe of that layer answers at once.

In the API part no other server is involved: the settings point MySQL, MongoDB and RabbitMQ at a closed port
and their commands at /bin/false (tests/faults/test_faults_timeouts.py's isolated_config). In the database
part the credentials file and the settings point all three services (and RabbitMQ's management API) at the
blackhole, as does the kubeconfig, so `uninstall --dry-run --delete-db` measures every level at once.
Run: .venv/bin/python bench/faults.py [--timeout 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.faults.test_faults_databases import DATABASE_COMMANDS, database_setup  # noqa: E402
from tests.faults.test_faults_timeouts import COMMANDS, isolated_config, write_credentials  # noqa: E402
from tests.lab import blackhole  # noqa: E402
from tests.lab.common import free_port  # noqa: E402

EXPORTER_LAYERS = ("kubernetes", "tls", "istio", "workloads", "helm", "ecr")
def reason_of(stdout: str) -> str:
    """The most telling reason in a JSON document: timeout when any part timed out."""
    try:
        text = json.dumps(json.loads(stdout))
    except ValueError:
        return "no JSON"
    for mark, reason in (('"reason": "internal"', "INTERNAL"), ('"reason": "timeout"', "timeout"),
                         ("did not answer in time", "timeout"), ("TimeoutError", "timeout"),
                         ("timed out", "timeout")):
        if mark in text:
            return reason
    return "other"


def time_command(argv: list[str], kubeconfig: Path, cfg: Path, timeout: float, runs: int) -> tuple[float, int, str]:
    times, code, reason = [], 0, ""
    for _ in range(runs):
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sbops", *argv, "--timeout", f"{timeout:g}", "--kubeconfig",
                               str(kubeconfig), "--config", str(cfg), "--credentials", str(cfg.parent / "creds.txt")],
                              capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "NO_COLOR": "1", "KUBECONFIG": ""})
        times.append(time.perf_counter() - began)
        code, reason = proc.returncode, reason_of(proc.stdout)
    return statistics.median(times), code, reason


def time_exporter(kubeconfig: Path, cfg: Path, timeout: float, runs: int) -> list[tuple[str, float, int, str]]:
    import requests

    from tests.lab.exporter import parse, reasons

    port = free_port()
    log = cfg.parent / "exporter.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "sbops", "exporter", "--listen", f"127.0.0.1:{port}",
                                 "--timeout", f"{timeout:g}", "--kubeconfig", str(kubeconfig), "--config", str(cfg),
                                 "--credentials", str(cfg.parent / "creds.txt")],
                                stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env={**os.environ, "KUBECONFIG": ""})
    rows = []
    try:
        end = time.monotonic() + 30
        while "listening on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"exporter did not start: {log.read_text()[-500:]}")
            time.sleep(0.05)
        for layer in EXPORTER_LAYERS:
            times, status, reason = [], 0, ""
            for _ in range(runs):
                began = time.perf_counter()
                response = requests.get(f"http://127.0.0.1:{port}/probe?module={layer}", timeout=60)
                times.append(time.perf_counter() - began)
                found = set(reasons(parse(response.text)).values())
                status = response.status_code
                reason = "INTERNAL" if "internal" in found else "timeout" if "timeout" in found else ",".join(sorted(found))
            rows.append((f"exporter /probe?module={layer}", statistics.median(times), status, reason))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    print(f"--timeout {args.timeout:g}; median of {args.runs} runs; goal: wall <= timeout + 1 s\n")
    print(f"{'blackhole':<14} {'command':<34} {'wall s':>7} {'x timeout':>9} {'exit':>5}  reason")
    for mode in sorted(blackhole.MODES):
        with tempfile.TemporaryDirectory(prefix="sbops-bench-faults-") as tmp, blackhole.MODES[mode]() as server:
            root = Path(tmp)
            write_credentials(root)
            kubeconfig = blackhole.kubeconfig(root / "kubeconfig", server.port)
            cfg = isolated_config(root)
            rows = [(name, *time_command(argv, kubeconfig, cfg, args.timeout, args.runs)) for name, argv, _ in COMMANDS]
            rows += time_exporter(kubeconfig, cfg, args.timeout, args.runs)
            for name, wall, code, reason in rows:
                worst = max(worst, wall)
                mark = "" if wall <= args.timeout + 1 else "  OVER GOAL"
                print(f"{mode:<14} {name:<34} {wall:7.2f} {wall / args.timeout:9.2f} {code:>5}  {reason}{mark}")
    print()
    for mode in sorted(blackhole.MODES):
        with tempfile.TemporaryDirectory(prefix="sbops-bench-faults-") as tmp, blackhole.MODES[mode]() as server:
            kubeconfig, cfg = database_setup(Path(tmp), server.port)
            for name, argv, _ in DATABASE_COMMANDS:
                wall, code, reason = time_command(argv, kubeconfig, cfg, args.timeout, args.runs)
                worst = max(worst, wall)
                mark = "" if wall <= args.timeout + 1 else "  OVER GOAL"
                print(f"{mode + ' dbs':<14} {name:<34} {wall:7.2f} {wall / args.timeout:9.2f} {code:>5}  {reason}{mark}")
    print(f"\nslowest: {worst:.2f} s = {worst / args.timeout:.2f} x --timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
