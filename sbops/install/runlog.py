"""One log file per install run: what was planned, applied and verified, with times; never a secret.

Default: <install.log_dir>/install-<UTC time>.log (mode 0600, directory 0700). Every line goes through
mask_text with the run's secrets (the passwords, the ECR token), as does every record the `sbops`
loggers emit meanwhile (the runner logs each command it runs: never with a secret in argv, by design).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TextIO

from sbops.errors import UsageError
from sbops.secret import Secret, mask_text


def default_path(log_dir: str, now: datetime | None = None) -> Path:
    now = now or datetime.now(timezone.utc)
    return Path(log_dir) / f"install-{now:%Y%m%d-%H%M%S}.log"


class RunLog:
    """Append-only, masked, flushed line by line (a killed run leaves a readable log)."""

    def __init__(self, path: Path, secrets: Callable[[], list[Secret]]) -> None:
        self.path = path
        self._secrets = secrets
        self._handle: TextIO | None = None
        self._handler: logging.Handler | None = None

    def open(self) -> "RunLog":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.path
            for n in range(1, 100):  # one file per run, even two runs in the same second
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    break
                except FileExistsError:
                    path = self.path.with_name(f"{self.path.stem}-{n}{self.path.suffix}")
            else:  # pragma: no cover - a hundred runs in a second
                raise UsageError(f"--log-file: {self.path} and its variants exist")
        except OSError as exc:
            raise UsageError(f"--log-file: cannot create {self.path}: {exc.strerror or exc}") from None
        self.path = path
        self._handle = os.fdopen(fd, "w", buffering=1)
        self._handler = _Handler(self)
        logging.getLogger("sbops").addHandler(self._handler)
        logging.getLogger("sbops").setLevel(logging.INFO)
        return self

    def write(self, text: str) -> None:
        if self._handle is None:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        for line in mask_text(str(text), self._secrets()).splitlines() or [""]:
            self._handle.write(f"{stamp} {line}\n")

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("sbops").removeHandler(self._handler)
            self._handler = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class _Handler(logging.Handler):
    def __init__(self, log: RunLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log.write(f"  [{record.name}] {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never break the install
            pass
