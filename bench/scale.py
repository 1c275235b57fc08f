"""How the cost of sbops grows with the cluster (issue 14, "How the cost grows"; issue 16, "Scale"):

A private kube-apiserver + etcd (tests/lab/kube.py) seeded as a StackBill install, then grown to 50, 500 and
5,000 pods across 40 namespaces (a fifth of them in the StackBill namespace sb-apps) on 2, 20 and 200 Node
objects. Objects only: nothing runs them, but every pod carries the status a kubelet would report: most
Running and Ready, 2 % CrashLoopBackOff, 1 % ImagePullBackOff, 1 % Pending (unschedulable). At each size:

  1. `sbops doctor`, every layer the kube lab answers (kubernetes, workloads, ecr, helm, istio), whole CLI
  2. `sbops doctor --check pods.ready --check pods.restarts --check k8s.nodes`, whole CLI
     goal at 5,000 pods: < 2 s and < 150 MB peak, growing no faster than linearly
  3. one scrape of `sbops exporter --layers kubernetes,workloads` (GET /metrics; the process already running)
  4. `kubectl get pods -n sb-apps` (issue 16's comparison), when kubectl is on the PATH

Times are medians of whole processes, with their CPU time (the steadier figure on a shared machine); peak memory
is the RSS high-water mark of the process and the children it waited for (wait4's ru_maxrss, through a small
spawner: see SPAWN; for the exporter its VmHWM after the scrapes). After the table, a cProfile of one
run of (2) at 5,000 pods says where the time goes: API calls (waiting on the server), JSON decoding, judgement
(sbops's pure functions), start-up (imports).

Run: .venv/bin/python bench/scale.py [--runs N] [--sizes 50,500,5000]   (starts its own API server, ~2 min)
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from tests.lab import kube as lab  # noqa: E402
from tests.lab.crowd import PODS_PER_NODE, Seeder, namespace_of  # noqa: E402
from tests.lab.env import LabEnv  # noqa: E402
from tests.lab.exporter import ExporterProc  # noqa: E402

SIZES = (50, 500, 5000)
KUBE_LAYERS = ("kubernetes", "workloads", "ecr", "helm", "istio")
THREE_CHECKS = ("pods.ready", "pods.restarts", "k8s.nodes")
SBOPS = str(Path(sys.executable).with_name("sbops"))


# -- measuring -------------------------------------------------------------------------------------------------
# A child's ru_maxrss counts the memory of the process it was forked from until its exec (Linux keeps the old
# image's high-water mark across exec), so a process forked from this one (seeded, 100 MB) would report at
# least that. Each measured process is therefore spawned by a small Python (-I -S: a few MB) that times it
# and reports its peak RSS through wait4.
SPAWN = ("import os, sys, time\n"
         "began = time.perf_counter()\n"
         "quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]\n"
         "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)\n"
         "_, status, usage = os.wait4(pid, 0)\n"
         "print(time.perf_counter() - began, usage.ru_maxrss, os.waitstatus_to_exitcode(status),\n"
         "      usage.ru_utime + usage.ru_stime)\n")


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, float]:
    """(seconds, peak RSS in MB of the process and the children it waited for, exit code, CPU seconds)."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", SPAWN, *argv], capture_output=True, text=True, env=env,
                          check=True)
    seconds, kb, code, cpu = proc.stdout.split()
    return float(seconds), int(kb) / 1024, int(code), float(cpu)


def measure(argv: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Median seconds, the highest peak RSS (MB) and the median CPU seconds over `runs` runs (after a warm-up):
    CPU time is the steadier figure on a shared machine, where wall time also waits for other people's work."""
    run_once(argv, env)
    results = [run_once(argv, env) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), max(r[1] for r in results),
            statistics.median(r[3] for r in results))


def cell(figure: tuple[float, float, float]) -> str:
    return f"{figure[0]:6.3f} s {figure[1]:6.1f} MB (cpu {figure[2]:5.2f} s)"


def doctor_argv(env: LabEnv, *, layers: tuple[str, ...] = (), checks: tuple[str, ...] = ()) -> list[str]:
    argv = [SBOPS, "doctor", "--output", "json", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
    for layer in layers:
        argv += ["--layer", layer]
    for check in checks:
        argv += ["--check", check]
    return argv


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(env: LabEnv, runs: int) -> tuple[float, float, int]:
    """Median seconds of GET /metrics on a running exporter (after one warm-up scrape), its VmHWM, its lines."""
    exporter = ExporterProc(env, "--layers", "kubernetes,workloads").start()
    try:
        with requests.Session() as session:
            times, lines = [], 0
            for _ in range(runs + 1):
                began = time.perf_counter()
                response = session.get(exporter.url + "/metrics", timeout=120,
                                       headers={"X-Prometheus-Scrape-Timeout-Seconds": "30"})
                times.append(time.perf_counter() - began)
                response.raise_for_status()
                lines = response.text.count("\n")
        assert exporter.proc is not None
        return statistics.median(times[1:]), hwm_mb(exporter.proc.pid), lines
    finally:
        exporter.stop()


def doctor_summary(env: LabEnv, checks: tuple[str, ...]) -> str:
    import json

    proc = subprocess.run(doctor_argv(env, checks=checks), capture_output=True, text=True)
    found = json.loads(proc.stdout)["checks"]
    return ", ".join(f"{c['id']} {c['status']}/{c['reason']}" for c in found)


def profile(env: LabEnv, checks: tuple[str, ...]) -> str:
    """One doctor run in-process under cProfile (imports included), its time split into what matters."""
    out = Path(tempfile.mkdtemp(prefix="sbops-scale-")) / "doctor.prof"
    # The engine runs checks in worker threads: every thread gets a profiler of its own, merged afterwards.
    code = ("import cProfile, threading\n"
            "profiles = []\n"
            "plain = threading.Thread.run\n"
            "def run(self):\n"
            "    profile = cProfile.Profile()\n"
            "    profiles.append(profile)\n"
            "    profile.runcall(plain, self)\n"
            "threading.Thread.run = run\n"
            "from sbops.cli import _run\n"  # main() ends in os._exit; _run() is all it does before
            "main = cProfile.Profile()\n"
            "profiles.append(main)\n"
            "try:\n    main.runcall(_run)\nexcept SystemExit:\n    pass\n"
            "for i, profile in enumerate(profiles):\n"
            f"    profile.dump_stats({str(out)!r} + f'.{{i}}')\n")
    subprocess.run([sys.executable, "-c", code, *doctor_argv(env, checks=checks)[1:]], capture_output=True, check=False)
    dumps = sorted(str(p) for p in out.parent.glob(out.name + ".*"))
    stats = pstats.Stats(*dumps)
    total = max(pstats.Stats(d).total_tt for d in dumps)  # type: ignore[attr-defined]  # the main thread's

    def cumulative(predicate: Callable[[str, str], bool]) -> float:
        """Cumulative time of the outermost calls matching predicate(file, function) (no double counting)."""
        matched = {key for key in stats.stats if predicate(key[0], key[2])}  # type: ignore[attr-defined]
        seconds = 0.0
        for key in matched:
            _, _, _, cum, callers = stats.stats[key]  # type: ignore[attr-defined]
            if not any(caller in matched for caller in callers):
                seconds += cum
        return seconds

    network = cumulative(lambda f, fn: f.endswith("sbops/kube.py") and fn == "_call")
    decode = cumulative(lambda f, fn: fn == "loads" and f.endswith("json/__init__.py"))
    imports = cumulative(lambda f, fn: fn == "_find_and_load")
    judge = cumulative(lambda f, fn: "sbops/probes/" in f and (fn.startswith(("judge_", "diagnose_pod", "restarts",
                                                                               "node_facts", "split_departing",
                                                                               "pod_counts"))))
    report = cumulative(lambda f, fn: "sbops/report/" in f)
    lines = [f"profile of `doctor --check {' --check '.join(checks)}` (cProfile: {total:.2f} s in the main thread; "
             "the figures below add up the threads):",
             f"  start-up (imports)       {imports:6.3f} s",
             f"  API calls (HTTP, server) {network:6.3f} s",
             f"  JSON decoding            {decode:6.3f} s",
             f"  judgement (pure)         {judge:6.3f} s",
             f"  report output            {report:6.3f} s",
             "  top functions by own time:"]
    buffer = io.StringIO()
    pstats.Stats(*dumps, stream=buffer).sort_stats("tottime").print_stats(8)
    body = [ln for ln in buffer.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(body) if ln.lstrip().startswith("ncalls")), 0)
    lines += ["    " + ln.strip()[:140] for ln in body[start:start + 9]]
    shutil.rmtree(out.parent, ignore_errors=True)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    kubectl = shutil.which("kubectl")
    root = Path(tempfile.mkdtemp(prefix="sbops-scale-"))
    kube = lab.KubeLab(root / "kube").start(timeout=120)
    rows: list[tuple[str, ...]] = []
    prof = ""
    try:
        kube.seed_stackbill()
        env = LabEnv(root / "env").set("kubeconfig", str(kube.kubeconfig)).set("timeout", 30)
        env.write()
        seeder = Seeder(kube)
        seeder.namespaces()
        pods_done = nodes_done = 0
        for size in sizes:
            nodes = max(2, size // PODS_PER_NODE)
            began = time.perf_counter()
            seeder.nodes(nodes_done, nodes)
            seeder.pods(pods_done, size, nodes)
            nodes_done, pods_done = nodes, size
            seeded = time.perf_counter() - began
            in_ns = sum(1 for i in range(size) if namespace_of(i) == lab.NAMESPACE)
            print(f"seeded {size} pods ({in_ns} in {lab.NAMESPACE}) on {nodes} nodes in {seeded:.1f} s; "
                  f"{doctor_summary(env, THREE_CHECKS)}", flush=True)
            every = measure(doctor_argv(env, layers=KUBE_LAYERS), args.runs)
            three = measure(doctor_argv(env, checks=THREE_CHECKS), args.runs)
            metrics = scrape(env, args.runs)
            if kubectl:
                peer = measure([kubectl, "--kubeconfig", str(kube.kubeconfig), "get", "pods", "-n", lab.NAMESPACE],
                               args.runs)
                peer_text = cell(peer)
            else:
                peer_text = "no kubectl"
            rows.append((f"{size:>5} pods / {nodes:>3} nodes",
                         cell(every), cell(three),
                         f"{metrics[0]:6.3f} s {metrics[1]:6.1f} MB",
                         peer_text))
            print("  " + " | ".join(rows[-1]), flush=True)
        seeder.close()
        prof = profile(env, THREE_CHECKS)
    finally:
        kube.stop()
        shutil.rmtree(root, ignore_errors=True)

    head = ("cluster", "doctor, kube layers", "doctor, 3 checks", "exporter scrape", "kubectl get pods -n sb-apps")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"\nmedian of {args.runs} whole processes (peak RSS: highest of the runs); "
          f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores"
          f"{'' if kubectl else '; kubectl not on the PATH (Debian: kubernetes-client)'}")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("goal at 5,000 pods: whole CLI < 2 s and < 150 MB; no faster than linear growth\n")
    print(prof)
    return 0


if __name__ == "__main__":
    sys.exit(main())
