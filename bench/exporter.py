"""Figures for `sbops exporter` (goals from issue 4):

  1. p50/p99 latency of /metrics against the healthy lab, 1 and 20 concurrent scrapers   goal p50 < 1 s
  2. the same with every backend down (databases, broker and portal blackholed, API server stopped)
                                                                                        goal: never past the deadline
  3. resident memory of the exporter after 1,000 scrapes of the healthy lab, and whether it grew
                                                                                        goal: flat and < 100 MB
  4. a burst (issue 9): 200 scrapes of /metrics at once, each on a fresh connection, with Prometheus's
     5 s timeout header (deadline 4.5 s): p50/p99/max and how many were answered after the deadline
                                                                                        goal: none late
  5. /-/healthy while 300 slowloris connections (headers never finished) are open      goal: p99 < 1 s

Scrapes send Prometheus's X-Prometheus-Scrape-Timeout-Seconds header (10 s, so the deadline is 9.5 s).
Run: .venv/bin/python bench/exporter.py [latency down memory burst slowloris]   (default: all; starts or reuses
the lab of `scripts/lab up`)
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from tests.lab.common import Blackhole, free_port  # noqa: E402
from tests.lab.env import LabEnv  # noqa: E402
from tests.lab.exporter import ExporterProc  # noqa: E402
from tests.lab.stack import LAB, up  # noqa: E402

SCRAPE_TIMEOUT = 10.0
HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": str(SCRAPE_TIMEOUT)}


def scrape(session: requests.Session, url: str) -> float:
    began = time.perf_counter()
    response = session.get(url + "/metrics", headers=HEADERS, timeout=60)
    took = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"/metrics answered {response.status_code}: {response.text[:200]}")
    return took


def latencies(url: str, scrapers: int, per_scraper: int) -> list[float]:
    def one_scraper(_: int) -> list[float]:
        with requests.Session() as session:
            return [scrape(session, url) for _ in range(per_scraper)]

    with ThreadPoolExecutor(max_workers=scrapers) as pool:
        return [t for times in pool.map(one_scraper, range(scrapers)) for t in times]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def line(name: str, values: list[float], deadline: float) -> str:
    late = sum(1 for v in values if v > SCRAPE_TIMEOUT)
    return (f"{name:<44} p50 {statistics.median(values):6.3f} s   p99 {percentile(values, 99):6.3f} s   "
            f"max {max(values):6.3f} s   ({len(values)} scrapes, deadline {deadline:g} s, "
            f"{late} past the {SCRAPE_TIMEOUT:g} s scrape timeout)")


def dead_env(healthy: LabEnv, holes: dict[str, Blackhole]) -> LabEnv:
    """The lab's settings with every backend unreachable: blackholed servers, a stopped API server."""
    import yaml

    env = LabEnv(LAB / "bench-exporter-down")
    env.settings = dict(healthy.settings)
    for service in ("mysql", "mongodb", "rabbitmq"):
        env.service(service, port=holes[service].port, password=healthy.services[service].password.reveal(),
                    management=f"http://127.0.0.1:{holes['management'].port}" if service == "rabbitmq" else "")
    env.set("rabbitmq.management_port", holes["management"].port)
    env.set("nfs.port", free_port()).set("app.url", f"https://127.0.0.1:{holes['portal'].port}")
    config = yaml.safe_load(Path(healthy.settings["kubeconfig"]).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    (env.root / "kubeconfig").write_text(yaml.safe_dump(config))
    env.set("kubeconfig", str(env.root / "kubeconfig"))
    return env.write()


BURST = 200
BURST_TIMEOUT = 5.0  # the scrape timeout of issue 9's measurement: deadline 4.5 s
SLOWLORIS = 300


def burst(url: str, clients: int, scrape_timeout: float) -> tuple[list[float], int]:
    """`clients` scrapes released at the same instant, each on its own new connection (as many Prometheus
    servers, or dashboards, starting together): their latencies and how many did not get a 200."""
    start = threading.Barrier(clients)
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout)}

    def one(_: int) -> tuple[float, int]:
        start.wait()
        began = time.perf_counter()
        try:
            code = requests.get(url + "/metrics", headers=headers, timeout=120).status_code
        except requests.RequestException:
            code = 0
        return time.perf_counter() - began, code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, range(clients)))
    return [took for took, _ in results], sum(1 for _, code in results if code != 200)


def burst_line(values: list[float], failed: int, deadline: float) -> str:
    late = sum(1 for v in values if v > deadline)
    return (f"{'burst: ' + str(len(values)) + ' concurrent scrapes, new connections':<44} p50 "
            f"{statistics.median(values):6.3f} s   p99 {percentile(values, 99):6.3f} s   max {max(values):6.3f} s   "
            f"({late} answered after the {deadline:g} s deadline, {failed} not 200)")


def slowloris(exporter: ExporterProc, connections: int) -> list[float]:
    """/-/healthy latencies (20 requests) while `connections` clients hold requests they never finish."""
    held = []
    try:
        for i in range(connections):
            sock = socket.create_connection(("127.0.0.1", exporter.port), timeout=10)
            sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: " + str(i).encode())
            held.append(sock)
        times = []
        for _ in range(20):
            began = time.perf_counter()
            assert exporter.get("/-/healthy", timeout=30).status_code == 200
            times.append(time.perf_counter() - began)
        return times
    finally:
        for sock in held:
            sock.close()


CASES = ("latency", "down", "memory", "burst", "slowloris")


def main(argv: list[str]) -> int:
    cases = argv or list(CASES)
    unknown = set(cases) - set(CASES)
    if unknown:
        print(f"bench/exporter.py: unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    healthy = up()
    deadline = SCRAPE_TIMEOUT - 0.5
    out: list[str] = []
    if "latency" in cases:
        with ExporterProc(healthy) as exporter:
            latencies(exporter.url, 1, 3)  # warm up: imports, first logins
            out.append(line("healthy lab, 1 scraper", latencies(exporter.url, 1, 40), deadline))
            out.append(line("healthy lab, 20 concurrent scrapers", latencies(exporter.url, 20, 10), deadline))

    if "down" in cases:
        holes = {name: Blackhole() for name in ("mysql", "mongodb", "rabbitmq", "management", "portal")}
        try:
            with ExporterProc(dead_env(healthy, holes)) as exporter:
                out.append(line("every backend down, 1 scraper", latencies(exporter.url, 1, 5), deadline))
                out.append(line("every backend down, 20 concurrent scrapers", latencies(exporter.url, 20, 3), deadline))
        finally:
            for hole in holes.values():
                hole.close()

    if "memory" in cases:
        with ExporterProc(healthy) as exporter:
            rss: dict[int, float] = {0: exporter.rss_bytes() / 1e6}
            done = 0
            for target in (100, 500, 1000):
                latencies(exporter.url, 10, (target - done) // 10)
                done = target
                rss[target] = exporter.rss_bytes() / 1e6
        growth = rss[1000] - rss[100]
        flat = abs(growth) <= 0.05 * rss[100]
        out.append("resident memory: " + ", ".join(f"{rss[n]:.1f} MB after {n} scrapes" for n in sorted(rss)) +
                   f"; 100 -> 1000 scrapes: {growth:+.1f} MB ({'flat' if flat else 'GREW'}); "
                   f"goal flat and < 100 MB: {'met' if flat and rss[1000] < 100 else 'NOT met'}")

    if "burst" in cases:
        with ExporterProc(healthy) as exporter:
            latencies(exporter.url, 1, 3)  # warm up
            for _ in range(2):  # twice: the second burst finds every check's client warm
                values, failed = burst(exporter.url, BURST, BURST_TIMEOUT)
                out.append(burst_line(values, failed, BURST_TIMEOUT - 0.5))
            assert exporter.proc.poll() is None

    if "slowloris" in cases:
        with ExporterProc(healthy) as exporter:
            times = slowloris(exporter, SLOWLORIS)
            out.append(f"{'/-/healthy, ' + str(SLOWLORIS) + ' slowloris connections open':<44} p50 "
                       f"{statistics.median(times):6.3f} s   p99 {percentile(times, 99):6.3f} s   "
                       f"max {max(times):6.3f} s   (20 requests; goal p99 < 1 s: "
                       f"{'met' if percentile(times, 99) < 1 else 'NOT met'})")

    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"sbops exporter, /metrics (42 checks, 12 layers); scrape timeout header {SCRAPE_TIMEOUT:g} s; {cores} cores")
    for text in out:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
