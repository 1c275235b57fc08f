"""Figures for `sbops bundle` (issue 15):

  1. verification throughput: 100 known secrets, in every form, searched in a 200 MB synthetic log  goal >= 50 MB/s
     (the same scan the bundle runs on the archive it wrote; the redaction pass, which adds the generic
     patterns, is printed too)
  2. collection time and archive size for a lab: the test cluster (kube-apiserver seeded as a StackBill
     install) and a seeded MariaDB, through the real CLI (`sbops bundle`), median of 3 runs

Run: .venv/bin/python bench/bundle.py [--size-mb 200] [--secrets 100] [--no-lab]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbops.bundle.redact import Redactor, Table  # noqa: E402

LINES = (
    "{t} INFO  [sb-core] c.s.core.api.RequestLogger - GET /api/v1/accounts/{n}/instances 200 {ms}ms user=ops{u}",
    "{t} WARN  [sb-billing] c.s.billing.UsageJob - usage record {n} late by {ms} ms, retrying",
    "{t} DEBUG [sb-kong] upstream=sb-core:8080 latency={ms} request_id={hex}",
    '{t} {{"level":"info","msg":"reconciled","resource":"vm-{n}","duration_ms":{ms},"trace":"{hex}"}}',
    "{t} ERROR [sb-email-svc] SMTP 421 from mail.example.com for message {hex}; will retry in {ms}s",
)


def synthetic_log(size: int, secrets: list[str], rnd: random.Random) -> tuple[bytes, int]:
    """About `size` bytes of log lines, with every secret planted once in each of five forms somewhere."""
    chunk_lines = []
    for i in range(20000):
        template = LINES[i % len(LINES)]
        chunk_lines.append(template.format(t=f"2026-12-02T01:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}Z",
                                           n=rnd.randrange(10**6), ms=rnd.randrange(2000), u=rnd.randrange(50),
                                           hex="%016x" % rnd.getrandbits(64)))
    chunk = ("\n".join(chunk_lines) + "\n").encode()
    planted = []
    for secret in secrets:
        blob = base64.b64encode(b"x" * rnd.randrange(3) + secret.encode() + b"tail").decode()
        wrapped = base64.encodebytes(b"q" * 52 + secret.encode() + b"z" * 40).decode()
        planted += [f"connecting with {secret}", f"payload {blob}", f"GET /login?p={quote(secret, safe='')}",
                    json.dumps({"password": secret}), wrapped]
    extra = ("\n".join(planted) + "\n").encode()
    copies = max(1, (size - len(extra)) // len(chunk))
    data = chunk * copies
    middle = len(data) // 2
    middle = data.rfind(b"\n", 0, middle) + 1
    return data[:middle] + extra + data[middle:], len(planted)


def throughput(size_mb: int, count: int) -> None:
    rnd = random.Random(15)
    alphabet = string.ascii_letters + string.digits + "!@#%^&*+/=\"\\"
    secrets = ["".join(rnd.choice(alphabet) for _ in range(rnd.choice((16, 24, 32)))) for _ in range(count)]
    began = time.perf_counter()
    data, planted = synthetic_log(size_mb * 1_000_000, secrets, rnd)
    print(f"synthetic log: {len(data) / 1e6:.0f} MB, {planted} planted values ({time.perf_counter() - began:.1f}s to make)")
    began = time.perf_counter()
    table = Table.build(secrets)
    print(f"automaton: {count} secrets in every form, built in {time.perf_counter() - began:.3f}s")
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        hits = table.find(data)
        runs.append(time.perf_counter() - began)
    best, median = min(runs), statistics.median(runs)
    print(f"verification scan: {len(hits)} hits; median {len(data) / 1e6 / median:.0f} MB/s, "
          f"best {len(data) / 1e6 / best:.0f} MB/s (goal >= 50 MB/s)")
    redactor = Redactor.build(secrets)
    began = time.perf_counter()
    out, counts = redactor.redact(data)
    seconds = time.perf_counter() - began
    print(f"redaction (known secrets + generic patterns): {len(data) / 1e6 / seconds:.0f} MB/s, "
          f"{sum(counts.values())} redactions {dict(sorted(counts.items()))}")
    left = table.find(out)
    print(f"after redaction: {len(left)} hits left (must be 0)")


def lab(runs: int = 3) -> None:
    from tests.lab.env import LabEnv
    from tests.lab.kube import KubeLab
    from tests.lab.mariadb import LAB_PASSWORD, MariaDB

    root = Path(tempfile.mkdtemp(prefix="sbops-bench-bundle-"))
    kube = KubeLab(root / "kube")
    mysql = MariaDB(root / "mariadb")
    try:
        kube.start()
        kube.seed_stackbill()
        mysql.prepare().start()
        mysql.seed_stackbill(LAB_PASSWORD)
        env = LabEnv(root / "env")
        env.service("mysql", port=mysql.port, password=LAB_PASSWORD)
        env.set("kubeconfig", str(kube.kubeconfig)).write()
        times, sizes = [], []
        for i in range(runs):
            out = root / f"bundle-{i}.tar.gz"
            began = time.perf_counter()
            proc = env.sbops("bundle", "--output-file", str(out), "--output", "json")
            times.append(time.perf_counter() - began)
            if proc.returncode != 0:
                print(f"sbops bundle exited {proc.returncode}: {proc.stderr[-300:]}")
                return
            doc = json.loads(proc.stdout)
            sizes.append(doc["size"])
        print(f"lab bundle (test cluster + MariaDB, CLI): median {statistics.median(times):.1f}s, "
              f"archive {statistics.median(sizes) / 1024:.0f} KiB, {doc['files']} files, "
              f"{doc['redactions']} redactions, not collected: {len(doc['not_collected'])}")
    finally:
        mysql.destroy()
        kube.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--secrets", type=int, default=100)
    parser.add_argument("--no-lab", action="store_true", help="only the throughput figure")
    args = parser.parse_args()
    throughput(args.size_mb, args.secrets)
    if not args.no_lab:
        lab()
    return 0


if __name__ == "__main__":
    sys.exit(main())
