"""One install run: the user's options, settings, the desired credentials, the host runner, downloads,
the log, and a fresh probe Context per resource (the cluster may appear half-way, services restart)."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sbops.context import Context
from sbops.runner import HostRunner
from sbops.secret import Secret
from sbops.settings import Settings

if TYPE_CHECKING:
    from sbops.install.artifacts import Artifacts
    from sbops.install.creds import CredentialsPlan
    from sbops.install.runlog import RunLog
    from sbops.credentials import Credentials
    from sbops.probes.ecr import Token


@dataclass(frozen=True)
class Options:
    """What the user asked for, as flags; saved in the resume state (paths only, never secrets)."""

    domain: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    letsencrypt: bool = False
    email: str = ""
    skip_infra: bool = False
    skip_db: bool = False
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    artifacts_dir: str = ""
    ecr_token_file: str = ""
    ecr_refresher: bool = True
    exporter: bool = True
    force_os: bool = False
    config: str = ""
    credentials: str = ""
    kubeconfig: str = ""
    timeout: float = 0.0  # --timeout; 0: the setting's
    cloudstack: str = ""  # --cloudstack simulator|existing; "": not asked
    cloudstack_url: str = ""
    cloudstack_api_key: str = ""
    cloudstack_secret_key_file: str = ""  # a path: the secret key itself is never saved in the state

    def as_state(self) -> dict[str, Any]:
        data = asdict(self)
        data["only"], data["skip"] = list(self.only), list(self.skip)
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any], given: dict[str, Any]) -> "Options":
        """The saved options of an interrupted run, overridden by the flags given now."""
        known = {f.name for f in fields(cls)}
        merged = {k: v for k, v in data.items() if k in known}
        merged.update({k: v for k, v in given.items() if k in known})
        merged["only"], merged["skip"] = tuple(merged.get("only") or ()), tuple(merged.get("skip") or ())
        return cls(**merged)


class Reporter:
    """What the run loop tells the user as it goes (the CLI supplies a terminal or plain one)."""

    def step_started(self, name: str, title: str) -> None: ...

    def activity(self, text: str) -> None: ...

    def step_finished(self, outcome: Any) -> None: ...

    def abort(self) -> None:
        """The run stops in the middle of a step (Ctrl-C): stop any spinner."""


class Run:
    def __init__(self, settings: Settings, options: Options, runner: HostRunner, artifacts: "Artifacts",
                 credentials_plan: "CredentialsPlan", log: "RunLog | None" = None, reporter: Reporter | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.runner = runner
        self.artifacts = artifacts
        self.credentials_plan = credentials_plan
        self.log = log
        self.reporter = reporter or Reporter()
        self.env = dict(os.environ if env is None else env)
        self.plan_only = False
        self._token: "Token | None" = None
        self._token_error = ""
        self.apt_updated = False

    @property
    def credentials(self) -> "Credentials":
        return self.credentials_plan.desired

    @property
    def credentials_path(self) -> Path:
        return self.credentials_plan.path

    def context(self) -> Context:
        """A fresh Context: the kubeconfig is looked up again (K3s writes its own when it starts)."""
        from sbops import kube

        return Context(self.settings, self.credentials, self.credentials_path, self.runner,
                       kube.find(str(self.settings["kubeconfig"])))

    def secrets(self) -> list[Secret]:
        from sbops.settings import SECRET_KEYS

        found = list(self.credentials.secrets())
        from sbops.credentials import PUBLISHED_DEFAULTS

        for key in sorted(SECRET_KEYS):
            value = self.settings[key]
            if value and value not in found and value.reveal() not in PUBLISHED_DEFAULTS:
                found.append(self.settings[key])
        if self._token is not None:
            found.append(self._token.password)
        if self.env.get("AWS_ECR_TOKEN"):
            found.append(Secret(self.env["AWS_ECR_TOKEN"]))
        return found

    def say(self, text: str) -> None:
        """A line for the log (and, while a step runs, the spinner's activity)."""
        if self.log is not None:
            self.log.write(text)

    def activity(self, text: str) -> None:
        self.reporter.activity(text)
        self.say(f"  ... {text}")

    # -- things several steps need ---------------------------------------------------------------------
    def token_supplied(self) -> bool:
        """The ECR token comes from the user (file, stdin, $AWS_ECR_TOKEN), not from AWS credentials."""
        return bool(self.options.ecr_token_file or self.env.get("AWS_ECR_TOKEN"))

    def ecr_token(self, ctx: Context) -> "Token":
        """The ECR token, obtained once per run (a token on stdin can be read only once); raises
        ecr.TokenError, remembered, when there is none."""
        from sbops.probes import ecr

        if self._token is None:
            if self._token_error:
                raise ecr.TokenError(self._token_error)
            try:
                self._token = ecr.get_token(ctx, env=self.env, token_file=self.options.ecr_token_file or None)
            except ecr.TokenError as exc:
                self._token_error = str(exc)
                raise
        return self._token

    def bin_path(self, name: str) -> str:
        return str(Path(str(self.settings["install.bin_dir"])) / name)

    def helm(self) -> str:
        """The helm binary: setting helm.command when it resolves, else the one the helm step installs."""
        command = str(self.settings["helm.command"])
        return shutil.which(command) or (command if os.sep in command else self.bin_path("helm"))

    def apt_update(self) -> Callable[[], None]:
        """An applier running `apt-get update` once per run (the first package change needs it)."""
        from sbops.probes.system import apt_update_argv

        def apply() -> None:
            if self.apt_updated:
                return
            result = self.runner.run(apt_update_argv(), timeout=600)
            if not result.ok:
                raise RuntimeError(f"apt-get update failed: {result.one_line_error()}")
            self.apt_updated = True

        return apply


def wait_for(run: Run, what: str, timeout: float, probe: Callable[[Context], tuple[bool, str]],
             interval: float = 3.0) -> str:
    """Poll `probe` (fresh Context each time) until it says done; raise RuntimeError naming what was still
    wrong when `timeout` seconds pass. Returns the last status text. The spinner shows the progress."""
    import time

    end = time.monotonic() + timeout
    while True:
        ctx = run.context()
        try:
            done, status = probe(ctx)
        except Exception as exc:  # noqa: BLE001 - not up yet (API refusing, kubeconfig not written yet)
            done, status = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        finally:
            ctx.close()
        if done:
            return status
        left = end - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"{what}: not done after {timeout:g}s: {status}")
        run.activity(f"{what}: {status} ({left:.0f}s left)")
        time.sleep(min(interval, max(0.1, left)))
