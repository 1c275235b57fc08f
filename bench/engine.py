"""Wall-time figures for the engine alone (no servers): the timings the unit tests used to assert.

  1. eight probes of 0.5 s each, run in parallel                         goal < 1.5 s (serially: 4 s)
  2. one probe stuck on a blackholed port, per-check timeout 0.5 s       goal < 1.5 s
  3. three probes of 3 s each under an overall deadline of 0.6 s         goal < 1.5 s

The unit tests prove the behaviour without a clock (a barrier, timeout reasons); this prints how fast it is.
Run: .venv/bin/python bench/engine.py
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbops.context import Context  # noqa: E402
from sbops.engine import run_checks  # noqa: E402
from sbops.model import Severity, ok  # noqa: E402
from sbops.registry import Check  # noqa: E402
from sbops.settings import Settings  # noqa: E402
from tests.lab.common import Blackhole  # noqa: E402

RUNS = 5


def make(cid: str, probe) -> Check:
    return Check(cid, "host", cid, Severity.CRITICAL, probe, (), fix=None, no_fix="bench")


def median_seconds(run) -> float:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    ctx = Context(Settings.load(env={}))
    parallel = [make(f"b.sleep{i}", lambda c: (time.sleep(0.5), ok("slept"))[1]) for i in range(8)]
    print(f"8 x 0.5 s probes in parallel:         {median_seconds(lambda: run_checks(ctx, parallel)):.3f} s  (goal < 1.5 s)")

    hole = Blackhole()
    try:
        def connect(c):
            socket.create_connection(("127.0.0.1", hole.port), timeout=30)
            return ok("connected?")

        stuck = [make("b.hang", connect)]
        seconds = median_seconds(lambda: run_checks(ctx, stuck, timeout=0.5))
        print(f"blackholed probe, timeout 0.5 s:      {seconds:.3f} s  (goal < 1.5 s)")
    finally:
        hole.close()

    slow = [make(f"b.slow{i}", lambda c: (time.sleep(3), ok("late"))[1]) for i in range(3)]
    seconds = median_seconds(lambda: run_checks(ctx, slow, timeout=10, deadline=0.6))
    print(f"3 x 3 s probes, deadline 0.6 s:       {seconds:.3f} s  (goal < 1.5 s)")


if __name__ == "__main__":
    main()
