"""sbops side by side with what its users would run instead (issue 16), on the lab, in one run:

  1. `sbops doctor`, every layer, healthy lab  vs  the troubleshooting page's commands as a script
     (6 `kubectl get`, 3 `mariadb -e`, 1 `curl`): ARCHITECTURE.md's "Troubleshooting" section, run in order
  2. the exporter's `/probe?module=mysql`  vs  `prometheus-mysqld-exporter`'s `/metrics` on the same MariaDB
  3. `sbops doctor --check pods.ready --check pods.restarts --check k8s.nodes` at 5,000 pods on 200 nodes
     vs  `kubectl get pods -n sb-apps` (time and peak memory), on bench/scale.py's seeded API server
  4. the exporter's full `/metrics` on the healthy lab (goal: p50 <= 150 ms)

The alternatives come from Debian's packages (scripts/get-peers unpacks kubernetes-client and
prometheus-mysqld-exporter). Times are medians of whole processes (scrapes: of HTTP requests to a running
exporter), with CPU time beside them: the steadier figure on a shared 2-core machine. Each ratio is
sbops / the alternative; the goal is <= 1.0.

Run: .venv/bin/python bench/peers.py [--runs N] [--scrapes N] [--pods N]   (starts or reuses `scripts/lab`'s lab)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.scale import cell, doctor_argv, hwm_mb, measure  # noqa: E402
from tests.lab import kube as kubelab  # noqa: E402
from tests.lab.common import free_port  # noqa: E402
from tests.lab.crowd import PODS_PER_NODE, Seeder  # noqa: E402
from tests.lab.env import REPO, LabEnv  # noqa: E402
from tests.lab.exporter import ExporterProc  # noqa: E402

THREE_CHECKS = ("pods.ready", "pods.restarts", "k8s.nodes")


def peers() -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "get-peers")], capture_output=True, text=True, check=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def https_node_port(kubeconfig: str) -> int:
    from sbops import kube

    api = kube.KubeApi(kube.new_client(Path(kubeconfig)), (10.0, 10.0))
    for service in api.list("/api/v1/namespaces/istio-system/services"):
        for port in service["spec"].get("ports") or []:
            if port.get("name", "").startswith("https") and port.get("nodePort"):
                return int(port["nodePort"])
    raise RuntimeError("no HTTPS nodePort on the ingress gateway's Service")


def troubleshooting_script(env: LabEnv, bin_dir: Path, folder: Path) -> list[str]:
    """ARCHITECTURE.md's troubleshooting commands for this lab, as one bash script (what an operator runs
    instead of `sbops doctor`). MariaDB's password goes in a 0600 defaults file, as it should."""
    creds = env.credentials()
    mysql = creds.mysql
    defaults = folder / "my.cnf"
    defaults.write_text(f"[client]\nuser={mysql.username}\npassword={mysql.password.reveal()}\n"
                        f"host={mysql.host}\nport={mysql.port}\n")
    defaults.chmod(0o600)
    kubeconfig = env.settings["kubeconfig"]
    port = https_node_port(kubeconfig)
    k = f"{bin_dir / 'kubectl'} --kubeconfig {kubeconfig}"
    m = f"mariadb --defaults-file={defaults}"
    script = folder / "troubleshooting.sh"
    script.write_text("\n".join([
        "#!/bin/bash",
        f"{k} get nodes",
        f"{k} get pods -n sb-apps -o wide",
        f"{k} get svc -n sb-apps",
        f"{k} get endpoints -n sb-apps",
        f"{k} get gateway,virtualservice -n sb-apps",
        f"{k} get secret awscred -n sb-apps",
        f"{m} -e 'SELECT 1'",
        f"{m} -e 'SHOW DATABASES'",
        f"{m} -e 'SHOW GRANTS'",
        f"curl -sk --max-time 10 --resolve stackbill.example.com:{port}:{env.settings['server_ip']} "
        f"https://stackbill.example.com:{port}/apidocs/api/cloudconfiguration/general",
        "",
    ]))
    script.chmod(0o700)
    return ["/bin/bash", str(script)]


def check_count(env: LabEnv) -> tuple[int, str]:
    import json

    proc = subprocess.run(doctor_argv(env), capture_output=True, text=True)
    found = json.loads(proc.stdout)["checks"]
    bad = [f"{c['id']} {c['status']}" for c in found if c["status"] not in ("ok", "skip")]
    return len(found), ", ".join(bad) or "all ok or skip"


def scrape_times(url: str, count: int) -> list[float]:
    with requests.Session() as session:
        session.get(url, timeout=60).raise_for_status()  # warm-up (first logins, imports)
        times = []
        for _ in range(count):
            began = time.perf_counter()
            session.get(url, timeout=60).raise_for_status()
            times.append(time.perf_counter() - began)
    return times


def mysqld_exporter(bin_dir: Path, env: LabEnv, folder: Path) -> tuple[subprocess.Popen, str]:
    """mysqld_exporter 0.14 on the lab MariaDB, logged in as stackbill (DATA_SOURCE_NAME in its environment)."""
    mysql = env.credentials().mysql
    port = free_port()
    dsn = f"{mysql.username}:{mysql.password.reveal()}@tcp({mysql.host}:{mysql.port})/"
    proc = subprocess.Popen([str(bin_dir / "prometheus-mysqld-exporter"), f"--web.listen-address=127.0.0.1:{port}"],
                            env={**os.environ, "DATA_SOURCE_NAME": dsn}, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "mysqld_exporter.log", "wb"))
    url = f"http://127.0.0.1:{port}/metrics"
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"mysqld_exporter did not answer: {(folder / 'mysqld_exporter.log').read_text()[-500:]}")


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:5.2f}x" if theirs else "  n/a"


def scale_rows(bin_dir: Path, pods: int, runs: int) -> list[tuple[str, str, str, str]]:
    root = Path(tempfile.mkdtemp(prefix="sbops-peers-"))
    kube = kubelab.KubeLab(root / "kube").start(timeout=120)
    try:
        kube.seed_stackbill()
        env = LabEnv(root / "env").set("kubeconfig", str(kube.kubeconfig)).set("timeout", 30)
        env.write()
        seeder = Seeder(kube)
        seeder.namespaces()
        nodes = max(2, pods // PODS_PER_NODE)
        seeder.nodes(0, nodes)
        seeder.pods(0, pods, nodes)
        seeder.close()
        ours = measure(doctor_argv(env, checks=THREE_CHECKS), runs)
        theirs = measure([str(bin_dir / "kubectl"), "--kubeconfig", str(kube.kubeconfig), "get", "pods", "-n",
                          kubelab.NAMESPACE], runs)
        what = f"doctor, 3 checks, {pods} pods / {nodes} nodes"
        return [(what, cell(ours), "kubectl get pods -n sb-apps: " + cell(theirs),
                 f"time {ratio(ours[0], theirs[0])}  cpu {ratio(ours[2], theirs[2])}  peak {ratio(ours[1], theirs[1])}")]
    finally:
        kube.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument("--pods", type=int, default=5000)
    args = parser.parse_args()
    bin_dir = peers()
    from tests.lab.stack import up

    env = up()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="sbops-peers-") as tmp:
        folder = Path(tmp)
        count, state = check_count(env)
        print(f"lab: {count} checks ({state})", flush=True)
        ours = measure(doctor_argv(env), args.runs)
        theirs = measure(troubleshooting_script(env, bin_dir, folder), args.runs)
        rows.append((f"doctor, every layer ({count} checks)", cell(ours), "troubleshooting script: " + cell(theirs),
                     f"time {ratio(ours[0], theirs[0])}  cpu {ratio(ours[2], theirs[2])}"))
        print("  " + " | ".join(rows[-1]), flush=True)

        exporter = ExporterProc(env).start()
        peer, peer_url = mysqld_exporter(bin_dir, env, folder)
        try:
            probe = scrape_times(exporter.url + "/probe?module=mysql", args.scrapes)
            theirs_s = scrape_times(peer_url, args.scrapes)
            rows.append(("exporter /probe?module=mysql", f"p50 {statistics.median(probe) * 1000:6.1f} ms",
                         f"mysqld_exporter /metrics: p50 {statistics.median(theirs_s) * 1000:6.1f} ms",
                         f"time {ratio(statistics.median(probe), statistics.median(theirs_s))}"))
            print("  " + " | ".join(rows[-1]), flush=True)
            full = scrape_times(exporter.url + "/metrics", args.scrapes)
            assert exporter.proc is not None
            rows.append(("exporter full /metrics", f"p50 {statistics.median(full) * 1000:6.1f} ms, "
                         f"p90 {sorted(full)[int(len(full) * 0.9) - 1] * 1000:6.1f} ms", "-",
                         f"goal p50 <= 150 ms; exporter peak {hwm_mb(exporter.proc.pid):.0f} MB"))
            print("  " + " | ".join(rows[-1]), flush=True)
        finally:
            peer.kill()
            exporter.stop()
    rows += scale_rows(bin_dir, args.pods, args.runs)
    print("  " + " | ".join(rows[-1]), flush=True)

    print(f"\nmedians of {args.runs} whole processes / {args.scrapes} scrapes; "
          f"{os.cpu_count()} cores; ratio = sbops / the alternative (goal <= 1.0)")
    head = ("what", "sbops", "the alternative", "ratio")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
