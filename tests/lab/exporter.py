"""`sbops exporter` as a real process for tests and the benchmark: start it on a free port against a LabEnv,
scrape it over HTTP, parse what it serves, stop it. Also where promtool is found (scripts/get-promtool)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.lab.common import free_port, tail
from tests.lab.env import REPO, LabEnv

Samples = dict[tuple[str, frozenset], float]


def promtool() -> Path:
    """The promtool binary that scripts/setup caches; fails loudly (the tests needing it must not skip)."""
    path = Path(os.environ.get("SBOPS_CACHE") or Path.home() / ".cache" / "sbops") / "promtool" / "promtool"
    if not os.access(path, os.X_OK):
        proc = subprocess.run([str(REPO / "scripts" / "get-promtool")], capture_output=True, text=True)
        if proc.returncode != 0 or not os.access(path, os.X_OK):
            raise RuntimeError(f"promtool missing and scripts/get-promtool failed: {proc.stderr.strip()[-500:]}")
    return path


def run_promtool(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool()), *args], input=input, capture_output=True, text=True, timeout=60)


class ExporterProc:
    """`python -m sbops exporter --listen 127.0.0.1:<free> --config C --credentials F [extra]`."""

    def __init__(self, env: LabEnv, *extra: str, port: int | None = None, host: str = "127.0.0.1",
                 environ: dict[str, str] | None = None) -> None:
        self.env = env
        self.extra = list(extra)
        self.host = host  # an agent of `doctor --cluster` tests listens on an address of its own
        self.environ = environ or {}
        self.port = port or free_port(host)
        self.log = env.root / f"exporter-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.scheme = "https" if any(a == "--web-config" for a in extra) else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "sbops", "exporter", "--listen", f"{self.host}:{self.port}", *self.extra,
                "--config", str(self.env.config_path), "--credentials", str(self.env.credentials_path)]

    def start(self, timeout: float = 30.0) -> "ExporterProc":
        self.env.write()
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=REPO, env={**os.environ, "NO_COLOR": "1", **self.environ}, start_new_session=True)
        handle.close()
        end = time.monotonic() + timeout
        while "listening on" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sbops exporter exited with {self.proc.returncode}: {tail(self.log)}")
            if time.monotonic() > end:
                raise TimeoutError(f"sbops exporter did not start in {timeout:g}s: {tail(self.log)}")
            time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=5)

    def rss_bytes(self) -> int:
        import psutil

        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss

    def get(self, path: str = "/metrics", timeout: float = 30.0, **kwargs: Any) -> Any:
        import requests

        return requests.get(self.url + path, timeout=timeout, **kwargs)

    def scrape(self, path: str = "/metrics", scrape_timeout: float | None = None, **kwargs: Any) -> str:
        headers = dict(kwargs.pop("headers", {}) or {})
        if scrape_timeout is not None:
            headers["X-Prometheus-Scrape-Timeout-Seconds"] = str(scrape_timeout)
        response = self.get(path, headers=headers, **kwargs)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        return response.text

    def __enter__(self) -> "ExporterProc":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def parse(text: str) -> Samples:
    """{(sample name, frozenset of label pairs): value} of a text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def by_check(samples: Samples, name: str) -> dict[str, float]:
    """{check id: value} of a per-check family (sbops_check_success, ...)."""
    return {dict(labels)["check"]: v for (n, labels), v in samples.items() if n == name}


def findings(samples: Samples) -> dict[str, list[str]]:
    """{check id: the codes of its sbops_check_finding series} (one, when the result has a code)."""
    out: dict[str, list[str]] = {}
    for (n, labels), v in samples.items():
        if n == "sbops_check_finding" and v == 1:
            out.setdefault(dict(labels)["check"], []).append(dict(labels)["code"])
    return out


def reasons(samples: Samples) -> dict[str, str]:
    """{check id: its current reason} from the sbops_check_failure_reason state set."""
    return {dict(labels)["check"]: dict(labels)["reason"] for (n, labels), v in samples.items()
            if n == "sbops_check_failure_reason" and v == 1}
