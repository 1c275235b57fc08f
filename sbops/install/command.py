"""`sbops install` from parsed flags to exit code: settings, credentials, validation, the plan and its
confirmation, the run with its log and resume state, the recap. The typer layer (sbops/cli/install.py)
only parses flags.

Exit codes: 0 installed (or nothing to do, or a plan that can run); 2 usage or validation error (nothing
changed); 3 a step failed, the plan has a step that cannot run, or the confirmation was declined;
130 interrupted (`sbops install --resume` continues).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sbops import __version__
from sbops.errors import UsageError
from sbops.install import report, steps as st
from sbops.install.run import Options, Reporter, Run
from sbops.runner import HostRunner
from sbops.secret import mask_value

EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130


def list_steps() -> str:
    from sbops.install import catalog

    rows = [(st.VALIDATE, "always", "root, distribution, ports, domain, certificate, artifacts; changes nothing")]
    rows += [(s.name, s.group, s.title) for s in catalog.steps()]
    return "\n".join(f"{name:<17} {group:<11} {title}" for name, group, title in rows) + "\n"


def load_settings(options: Options) -> Any:
    """The settings, with --domain, --kubeconfig and --timeout on top. A --domain that is not a DNS name is
    left out here: validation names it (with the JSON document of a refused run) instead of the settings'
    one-line error."""
    from sbops.install.validation import judge_domain
    from sbops.settings import Settings

    domain = options.domain if options.domain and not judge_domain(options.domain) else None
    return Settings.load(options.config or None, flags={"domain": domain,
                                                        "kubeconfig": options.kubeconfig or None,
                                                        "timeout": options.timeout or None})


def resolve_options(given: dict[str, Any], resume: bool) -> tuple[Options, Any, Any]:
    """(options, settings, state): on --resume, the interrupted run's options with the given flags on top."""
    from sbops.install.state import State

    options = Options.from_state({}, given)
    settings = load_settings(options)
    state_path = Path(str(settings["install.state_file"]))
    state = State.load(state_path)
    if not resume:
        return options, settings, state or State(state_path)
    if state is None:
        raise UsageError(f"--resume: nothing to resume (no install state at {state_path})")
    if state.finished or not state.resume_point():
        raise UsageError(f"--resume: nothing to resume: the install of {state.started_at} finished; run `sbops install` "
                         "to converge again")
    options = Options.from_state(state.options, given)
    return options, load_settings(options), state


def build_run(options: Options, settings: Any, *, runner: HostRunner, fetcher: Any, reporter: Reporter,
              env: dict[str, str] | None, ask: Callable[[str], str] | None) -> Run:
    """Credentials (kept, or generated where missing), artifacts, and the Run. `ask` prompts for a missing
    domain on a terminal; None when prompting is not allowed."""
    from sbops import credentials as creds_mod
    from sbops.context import primary_ip
    from sbops.install import creds
    from sbops.install.artifacts import Artifacts

    path = creds.default_path(options.credentials or None)
    try:
        existing = creds_mod.load(path) if path.exists() else None
        for warning in existing.warnings if existing else ():
            sys.stderr.write(f"warning: {warning}\n")
    except PermissionError as exc:
        raise UsageError(f"{path}: cannot read the credentials file: {exc.strerror}") from None
    domain = options.domain or str(settings["domain"]) or (existing.domain if existing else "")
    if ask is not None:
        options, settings, domain = prompt_missing(options, settings, domain, existing is None, ask)
    server_ip = str(settings["server_ip"]) or (existing.server_ip if existing else "") or primary_ip()
    ports = {name: int(settings[f"{name}.port"]) for name in creds.SERVICES}
    plan = creds.plan_credentials(existing, path, domain=domain, server_ip=server_ip,
                                  nfs_path=nfs_path(settings, existing), ports=ports,
                                  management_port=int(settings["rabbitmq.management_port"]))
    directory = None
    if options.artifacts_dir:
        directory = Path(options.artifacts_dir)
        if not directory.is_dir():
            raise UsageError(f"--artifacts-dir {directory}: not a directory")
    if fetcher is None:
        from sbops.install.artifacts import HttpFetcher

        fetcher = HttpFetcher()
    artifacts = Artifacts(directory, Path(str(settings["install.download_dir"])), fetcher)
    return Run(settings, options, runner, artifacts, plan, reporter=reporter, env=env)


def nfs_path(settings: Any, existing: Any) -> str:
    """The exported directory: nfs.path when the user set it, else the one the credentials file records
    (a server installed with another path keeps it), else the default."""
    if settings.source("nfs.path") == "default" and existing is not None and existing.nfs_path:
        return str(existing.nfs_path)
    return str(settings["nfs.path"])


def prompt_missing(options: Options, settings: Any, domain: str, fresh: bool,
                   ask: Callable[[str], str]) -> tuple[Options, Any, str]:
    """On a terminal: the domain when none is known; on a new install, the certificate and key files
    (empty answers keep whatever TLS secret there is)."""
    wanted: dict[str, str] = {}
    if not domain:
        domain = ask("The portal's domain (e.g. portal.example.com)").strip()
        wanted["domain"] = domain
    if fresh and not (options.ssl_cert or options.ssl_key or options.letsencrypt) and "tls-secret" not in options.skip \
            and (not options.only or "tls-secret" in options.only):
        cert = ask("TLS certificate file, full chain (empty: keep the TLS secret there is)").strip()
        if cert:
            wanted.update(ssl_cert=os.path.abspath(cert), ssl_key=os.path.abspath(ask("Its private key file").strip()))
    wanted = {k: v for k, v in wanted.items() if v}
    if not wanted:
        return options, settings, domain
    options = Options.from_state(options.as_state(), wanted)
    return options, load_settings(options), domain


def execute(given: dict[str, Any], *, plan_only: bool, yes: bool, resume: bool, log_file: str = "",
            json_output: bool = False, colour: bool = False, runner: HostRunner | None = None, fetcher: Any = None,
            env: dict[str, str] | None = None, interactive: bool | None = None,
            confirm: Callable[[str], bool] | None = None, ask: Callable[[str], str] | None = None,
            out: Any = None, err: Any = None) -> int:
    from sbops.install import catalog
    from sbops.install.flow import run_install
    from sbops.install.validation import judge_root, validate
    from sbops.runner import SubprocessRunner

    out, err = out or sys.stdout, err or sys.stderr
    interactive = sys.stdin.isatty() if interactive is None else interactive
    if not plan_only and not yes and not interactive:
        raise UsageError("install: standard input is not a terminal: pass --yes to install, or --plan to see the plan")
    prompting = interactive and not yes and not json_output
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    began = time.monotonic()

    root_error, _ = judge_root(os.geteuid(), plan_only)
    if root_error:  # before anything else: a non-root run cannot even read what it would check
        err.write(f"sbops: error: {root_error}\nsbops: install: nothing was changed\n")
        return EXIT_USAGE
    options, settings, state = resolve_options(given, resume)
    if resume and not json_output:
        out.write(f"resuming the install of {state.started_at} at step {state.resume_point()} "
                  "(the steps before it are probed again)\n")
    reporter = report.make_reporter(json_output, plan_only, colour, out)
    run = build_run(options, settings, runner=runner or SubprocessRunner(), fetcher=fetcher,
                    reporter=reporter, env=env, ask=(ask or _ask) if prompting else None)
    steps = catalog.steps()
    selection = st.select(steps, only=run.options.only, skip=run.options.skip, skip_infra=run.options.skip_infra,
                          skip_db=run.options.skip_db)

    findings = validate(run, steps, selection, plan_only=plan_only)
    if findings.errors:
        return refuse(run, findings, out, err, json_output=json_output, plan_only=plan_only, started_at=started_at,
                      duration=time.monotonic() - began)
    if not json_output:
        out.write("\n".join(report.validation_lines(findings, colour)) + "\n")
    if not plan_only or log_file:
        open_log(run, findings, log_file, plan_only)
    applying = False
    try:
        if not plan_only and not yes:
            refusal = preview_and_confirm(run, steps, selection, confirm or _confirm, out, colour)
            if refusal is not None:
                return refusal
            run.reporter = report.make_reporter(json_output, False, colour, out)
        if not plan_only:
            state.begin(run.options.as_state(), str(run.log.path) if run.log else "")
            applying = True
        outcomes = run_install(run, steps, selection, plan_only=plan_only, state=None if plan_only else state)
        failed = any(o.status in (st.FAILED, st.BLOCKED) for o in outcomes)
        if not plan_only:
            state.end(finished=not failed)
        facts = report.recap_facts(run, outcomes, plan_only)
        run.say(f"result: {facts['result']}: {json.dumps(facts['counts'])}")
        if json_output:
            doc = report.document(run, findings, outcomes, plan_only=plan_only, started_at=started_at,
                                  duration=time.monotonic() - began)
            out.write(json.dumps(mask_value(doc, run.secrets()), indent=2) + "\n")
        else:
            out.write("\n".join(report.recap_lines(facts, colour)) + "\n")
        return EXIT_FAILED if failed else EXIT_OK
    except KeyboardInterrupt:
        where = state.resume_point() if applying else ""
        err.write(f"\nsbops: install interrupted{' during step ' + where if where else ''}: "
                  f"{'`sbops install --resume` continues from there' if where else 'nothing more was changed'}\n")
        return EXIT_INTERRUPTED
    finally:
        if run.log is not None:
            run.log.close()


def refuse(run: Run, findings: Any, out: Any, err: Any, *, json_output: bool, plan_only: bool, started_at: str,
           duration: float) -> int:
    """Validation failed: each problem on one line (and the JSON document), nothing changed, exit 2."""
    if json_output:
        out.write(json.dumps(report.document(run, findings, [], plan_only=plan_only, started_at=started_at,
                                             duration=duration), indent=2) + "\n")
    for line in findings.errors:
        err.write(f"sbops: error: {line}\n")
    for line in findings.warnings:
        err.write(f"sbops: warning: {line}\n")
    err.write("sbops: install: nothing was changed\n")
    return EXIT_USAGE


def open_log(run: Run, findings: Any, log_file: str, plan_only: bool) -> None:
    from sbops.install.runlog import RunLog, default_path

    path = Path(log_file) if log_file else default_path(str(run.settings["install.log_dir"]))
    run.log = RunLog(path, run.secrets).open()
    run.say(f"sbops {__version__} install: {'plan' if plan_only else 'apply'}; options {json.dumps(run.options.as_state())}")
    for line in findings.passed + [f"warning: {w}" for w in findings.warnings]:
        run.say(f"validate: {line}")


def preview_and_confirm(run: Run, steps: list[st.Step], selection: dict[str, str], confirm: Callable[[str], bool],
                        out: Any, colour: bool) -> int | None:
    """Without --yes: the plan, then the question. None to go on, else the exit code (nothing changed)."""
    from sbops.install.flow import run_install

    run.reporter = report.make_reporter(False, True, colour, out)
    preview = run_install(run, steps, selection, plan_only=True)
    if any(o.status == st.BLOCKED for o in preview):
        out.write("\n".join(report.recap_lines(report.recap_facts(run, preview, True), colour)) + "\n")
        return EXIT_FAILED
    wanted = sum(len(o.changes) for o in preview) + sum(o.status == st.DEFERRED for o in preview)
    if wanted and not confirm(f"Apply these changes ({wanted})?"):
        out.write("aborted: nothing was changed\n")
        return EXIT_FAILED
    return None


def _confirm(question: str) -> bool:
    import typer

    return typer.confirm(question, default=False)


def _ask(question: str) -> str:
    import typer

    return str(typer.prompt(question, default="", show_default=False))
