"""Watch every process's command line while sbops runs, to prove no secret ever reaches an argv."""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ArgvWatcher:
    """Samples /proc/*/cmdline in a thread (every few ms) and records any that contain a secret."""

    def __init__(self, secrets: list[str], interval: float = 0.003) -> None:
        self.secrets = [s for s in secrets if s]
        self.interval = interval
        self.hits: list[str] = []
        self.seen: set[str] = set()  # every distinct command line (to check secrets known only afterwards)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) == me:
                    continue
                try:
                    argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self.seen.add(argv)
                if any(s in argv for s in self.secrets):
                    self.hits.append(argv)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> "ArgvWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
