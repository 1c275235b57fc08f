"""Host commands and file writes, behind one small interface shared by fixes and the installer.

Secrets never go into argv: pass them through `input` (stdin) or write them to a 0600 file. Nor into a
child's environment: children get `child_env()`, without the variables that hold sbops's secrets.
`SubprocessRunner` runs for real; `RecordingRunner` records what would run (dry-run, tests).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from sbops.credentials import write_atomic
from sbops.secret import Secret
from sbops.settings import SECRET_KEYS, env_name

log = logging.getLogger("sbops.runner")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def one_line_error(self) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return text[-1] if text else f"exit code {self.returncode}"


class HostRunner(Protocol):
    def run(self, argv: Sequence[str], *, input: str | Secret | None = None, timeout: float = 60) -> CommandResult: ...

    def write_file(self, path: Path, content: str, mode: int = 0o644) -> None: ...

    def read_file(self, path: Path) -> str | None: ...


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    for arg in argv:
        if isinstance(arg, Secret):
            raise TypeError("a Secret must not be passed on a command line; use input=")
    return tuple(str(a) for a in argv)


def display(argv: Sequence[str]) -> str:
    return shlex.join(argv)


# Variables that hold a secret sbops reads (its admin passwords, the ECR token) or that a client would take
# one from; no program sbops runs (systemctl, helm, exportfs, rabbitmqctl, apt-get, a restart command)
# needs them, so children never inherit them.
SECRET_ENV = frozenset({env_name(key) for key in SECRET_KEYS} | {
    "AWS_ECR_TOKEN", "MYSQL_PWD",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "RABBITMQ_DEFAULT_PASS",
})
SECRET_ENV_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN")


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this process's, minus every variable that holds a secret
    (those named in SECRET_ENV, and any whose name says password, secret or token)."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items()
            if k not in SECRET_ENV and not any(word in k.upper() for word in SECRET_ENV_WORDS)}


class SubprocessRunner:
    """Runs commands for real, with a timeout; a missing program is a failed result, not an exception."""

    def run(self, argv: Sequence[str], *, input: str | Secret | None = None, timeout: float = 60) -> CommandResult:
        args = _check_argv(argv)
        log.info("run: %s", display(args))
        data = input.reveal() if isinstance(input, Secret) else input
        try:
            proc = subprocess.run(args, input=data, capture_output=True, text=True, timeout=timeout, env=child_env())
        except FileNotFoundError:
            return CommandResult(args, 127, "", f"{args[0]}: command not found")
        except PermissionError:
            return CommandResult(args, 126, "", f"{args[0]}: permission denied")
        except subprocess.TimeoutExpired:
            return CommandResult(args, 124, "", f"{args[0]}: timed out after {timeout:g}s")
        return CommandResult(args, proc.returncode, proc.stdout, proc.stderr)

    def write_file(self, path: Path, content: str, mode: int = 0o644) -> None:
        log.info("write: %s (mode %o)", path, mode)
        write_atomic(Path(path), content, mode=mode, backup=Path(path).exists())

    def read_file(self, path: Path) -> str | None:
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None


class UnexpectedCommand(AssertionError):
    """A RecordingRunner was asked to run a command nobody told it how to answer: in a test, a failure."""


@dataclass
class RecordingRunner:
    """Records commands and writes instead of performing them; `responses` answers run() by program name or by
    the whole command line.

    It never invents an answer: a command without a response raises UnexpectedCommand, so a test cannot pass
    on a success the machine never gave. It never reads the machine either: read_file() answers from `files`,
    and from disk only under `read_roots` (a test's temp dir), never the real home or /etc.
    """

    responses: dict[str, CommandResult | Callable[[tuple[str, ...]], CommandResult]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    read_roots: tuple[Path, ...] = ()
    commands: list[tuple[str, ...]] = field(default_factory=list)
    writes: list[tuple[str, int]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, input: str | Secret | None = None, timeout: float = 60) -> CommandResult:
        args = _check_argv(argv)
        self.commands.append(args)
        answer = self.responses.get(display(args)) or self.responses.get(args[0])
        if answer is None:
            raise UnexpectedCommand(f"RecordingRunner: no response for `{display(args)}` (give one in responses=)")
        if callable(answer):
            return answer(args)
        return answer

    def write_file(self, path: Path, content: str, mode: int = 0o644) -> None:
        self.files[str(path)] = content
        self.writes.append((str(path), mode))

    def read_file(self, path: Path) -> str | None:
        if str(path) in self.files:
            return self.files[str(path)]
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(Path(root).resolve()) for root in self.read_roots):
            return None
        try:
            return resolved.read_text()
        except FileNotFoundError:
            return None


def succeeds(*commands: str) -> dict[str, CommandResult]:
    """Responses for a RecordingRunner: each program (or whole command line) succeeds with no output."""
    return {command: CommandResult((command,), 0, "", "") for command in commands}


def service_restart_argv(service: str, restart_command: str) -> list[str]:
    """The command that restarts a service: the configured one, else systemctl."""
    return shlex.split(restart_command) if restart_command else ["systemctl", "restart", service]


def is_root() -> bool:
    return os.geteuid() == 0
