"""`sbops install --letsencrypt`, the tls.renewal check and the tls-deploy-lineage fix, for real.

Real here: Pebble (Let's Encrypt's ACME test server, Debian's `pebble`, tests/lab/pebble.py) issuing and
renewing with Debian's `certbot` (HTTP-01, --standalone, on a free port Pebble validates on); the kube-apiserver
lab (tests/lab/kube.py) holding the Gateway's TLS secret; certbot running the deploy hook sbops installed,
which runs `sbops tls deploy-hook` and writes the secret through the Kubernetes API; `systemctl --root DIR`
(real systemctl, offline) enabling and reading certbot.timer in a private unit tree.

Not real: systemd itself. There is no systemd as PID 1 here, so the timer never fires; the tests renew by
running `certbot renew` as the timer's service would, and judge the timer from what `systemctl is-enabled`
reads in the private tree (setting letsencrypt.systemd_root).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab import kube as lab
from tests.lab.env import LabEnv, finding
from tests.lab.pebble import Pebble, pebble  # noqa: F401 - the fixture

STEP = "letsencrypt"
CHECK = "tls.renewal"
FIX = "tls-deploy-lineage"
EMAIL = "ops@stackbill.example.com"
TIMER_UNIT = Path("/lib/systemd/system/certbot.timer")


@pytest.fixture
def acme_env(kube: lab.KubeLab, tmp_path: Path, pebble: Pebble) -> LabEnv:  # noqa: F811
    if shutil.which("certbot") is None or not TIMER_UNIT.exists():
        raise RuntimeError("certbot is not installed: scripts/setup installs Debian's certbot package")
    root = tmp_path / "systemd-root"
    (root / "lib/systemd/system").mkdir(parents=True)
    shutil.copy(TIMER_UNIT, root / "lib/systemd/system/certbot.timer")
    le = tmp_path / "letsencrypt"
    env = LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig)).installer()
    for key, value in (("server", pebble.directory_url), ("http01_port", pebble.http01_port),
                       ("config_dir", str(le / "config")), ("work_dir", str(le / "work")),
                       ("logs_dir", str(le / "logs")), ("systemd_root", str(root)),
                       ("hook_log", str(tmp_path / "deploy-hook.log"))):
        env.set(f"letsencrypt.{key}", value)
    return env


def secret_crt(core: Any) -> bytes:
    secret = core.read_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE)
    return base64.b64decode(secret.data["tls.crt"])


def live(env: LabEnv, name: str = "fullchain.pem") -> bytes:
    return (Path(env.settings["letsencrypt.config_dir"]) / "live" / lab.DOMAIN / name).read_bytes()


def hook(env: LabEnv) -> Path:
    return Path(env.settings["letsencrypt.config_dir"]) / "renewal-hooks" / "deploy" / "sbops-tls-secret"


def renew(env: LabEnv, pebble: Pebble) -> subprocess.CompletedProcess:  # noqa: F811
    """`certbot renew` as certbot.timer's service runs it, forced (the certificate is fresh), without its sleep."""
    argv = ["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew", "--non-interactive"]
    for key in ("config_dir", "work_dir", "logs_dir"):
        argv += [f"--{key.replace('_', '-')}", str(env.settings[f"letsencrypt.{key}"])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, env={**os.environ, **pebble.certbot_env()})
    assert proc.returncode == 0, proc.stdout + proc.stderr + pebble.log()
    return proc


def install(env: LabEnv, pebble: Pebble, *extra: str) -> subprocess.CompletedProcess:  # noqa: F811
    return env.install("--yes", "--letsencrypt", "--email", EMAIL, "--only", STEP, *extra, env=pebble.certbot_env())


def test_first_issuance_then_renewal_reach_the_secret_through_the_hook(acme_env: LabEnv, pebble: Pebble,  # noqa: F811
                                                                       core: Any) -> None:
    env = acme_env
    plan = env.install("--plan", "--letsencrypt", "--email", EMAIL, "--only", STEP, "--output", "json",
                       env=pebble.certbot_env())
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = {r["name"]: r for s in json.loads(plan.stdout)["steps"] if s["name"] == STEP for r in s["resources"]}
    assert any("certbot" in c for ch in planned["letsencrypt.certificate"]["changes"] for c in ch["commands"])
    assert not Path(env.settings["letsencrypt.config_dir"], "live").exists(), "--plan obtained a certificate"
    before = secret_crt(core)

    proc = install(env, pebble)
    assert proc.returncode == 0, proc.stdout + proc.stderr + pebble.log()
    issued = live(env)
    assert secret_crt(core) == issued != before
    assert b"Pebble" in subprocess.run(["openssl", "x509", "-noout", "-issuer"], input=live(env, "cert.pem"),
                                       capture_output=True).stdout
    assert os.access(hook(env), os.X_OK) and "PRIVATE" not in hook(env).read_text()
    assert finding(env.check(CHECK)) == ("SB6330", "ok", "none")

    again = install(env, pebble, "--output", "json")
    assert again.returncode == 0, again.stdout + again.stderr
    step = next(s for s in json.loads(again.stdout)["steps"] if s["name"] == STEP)
    assert step["status"] == "unchanged", step
    assert live(env) == issued, "a re-run asked for a new certificate"

    renew(env, pebble)
    renewed = live(env)
    assert renewed != issued
    assert secret_crt(core) == renewed
    entries = [json.loads(line) for line in Path(env.settings["letsencrypt.hook_log"]).read_text().splitlines()]
    assert entries[-1]["outcome"] == "ok" and entries[-1]["renewed_lineage"].endswith(lab.DOMAIN)
    assert "PRIVATE KEY" not in Path(env.settings["letsencrypt.hook_log"]).read_text()
    assert finding(env.check(CHECK)) == ("SB6330", "ok", "none")


def test_a_hook_that_cannot_run_fails_tls_renewal_and_the_fix_repairs_it(acme_env: LabEnv, pebble: Pebble,  # noqa: F811
                                                                         core: Any) -> None:
    env = acme_env
    proc = install(env, pebble)
    assert proc.returncode == 0, proc.stdout + proc.stderr + pebble.log()
    issued = live(env)

    hook(env).chmod(0o644)  # the way a copy or an editor leaves it: certbot skips a non-executable hook
    assert finding(env.check(CHECK)) == ("SB6335", "fail", "misconfigured")
    renew(env, pebble)
    assert live(env) != issued and secret_crt(core) == issued, "the renewal should not have reached the cluster"
    result = env.check(CHECK)
    assert finding(result) == ("SB6333", "fail", "failed")
    assert result["fix"] == FIX

    dry = env.sbops("fix", FIX, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert secret_crt(core) == issued, "a dry run changed the secret"
    fixed = env.fix(FIX)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "PRIVATE KEY" not in fixed.stdout + fixed.stderr
    assert secret_crt(core) == live(env) and os.access(hook(env), os.X_OK)
    assert finding(env.check(CHECK)) == ("SB6330", "ok", "none")


def test_a_missing_hook_and_a_disabled_timer_each_have_their_reason(acme_env: LabEnv, pebble: Pebble,  # noqa: F811
                                                                    core: Any) -> None:
    env = acme_env
    proc = install(env, pebble)
    assert proc.returncode == 0, proc.stdout + proc.stderr + pebble.log()
    hook(env).unlink()
    assert finding(env.check(CHECK)) == ("SB6334", "fail", "missing")
    assert env.fix(FIX).returncode == 0
    root = env.settings["letsencrypt.systemd_root"]
    disabled = subprocess.run(["systemctl", "--root", root, "disable", "certbot.timer"], capture_output=True, text=True)
    assert disabled.returncode == 0, disabled.stderr
    assert finding(env.check(CHECK)) == ("SB6336", "fail", "not_running")
    assert env.fix(FIX).returncode == 0
    assert finding(env.check(CHECK)) == ("SB6330", "ok", "none")


def test_a_certificate_from_files_is_not_certbots_business(acme_env: LabEnv, pebble: Pebble,  # noqa: F811
                                                           core: Any) -> None:
    """The seeded secret holds the lab CA's certificate: no lineage, then a lineage the secret is not from."""
    env = acme_env
    assert finding(env.check(CHECK)) == ("SB6331", "skip", "not_applicable")
    proc = install(env, pebble)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cert, key, ca = lab.make_cert(lab.DOMAIN, days=90)
    core.patch_namespaced_secret(lab.TLS_SECRET, lab.ISTIO_NAMESPACE, {"data": {
        "tls.crt": base64.b64encode((cert + ca).encode()).decode(), "tls.key": base64.b64encode(key.encode()).decode()}})
    assert finding(env.check(CHECK)) == ("SB6331", "skip", "not_applicable")
    refused = env.fix(FIX)
    assert refused.returncode != 0 and secret_crt(core) == (cert + ca).encode()


def test_the_deploy_hook_leaves_other_lineages_alone_and_fails_without_one(acme_env: LabEnv, pebble: Pebble,  # noqa: F811
                                                                           core: Any) -> None:
    """certbot runs deploy hooks for every certificate it renews: another domain's lineage must not land in the
    portal's secret; run by hand without RENEWED_LINEAGE, the hook fails and says why. Both are logged."""
    env = acme_env
    proc = install(env, pebble)
    assert proc.returncode == 0, proc.stdout + proc.stderr + pebble.log()
    before = secret_crt(core)
    other = Path(env.settings["letsencrypt.config_dir"]) / "live" / "other.example.net"
    environ = {k: v for k, v in os.environ.items() if k != "RENEWED_LINEAGE"}
    elsewhere = env.sbops("tls", "deploy-hook", env={**environ, "RENEWED_LINEAGE": str(other)})
    assert elsewhere.returncode == 0 and "not the portal's lineage" in elsewhere.stdout, elsewhere.stderr
    assert secret_crt(core) == before
    unset = subprocess.run(hook_argv(env), capture_output=True, text=True, timeout=60, env=environ)
    assert unset.returncode == 3 and "RENEWED_LINEAGE is not set" in unset.stderr
    entries = [json.loads(line) for line in Path(env.settings["letsencrypt.hook_log"]).read_text().splitlines()]
    assert [e["outcome"] for e in entries[-2:]] == ["ok", "failed"]
    assert finding(env.check(CHECK)) == ("SB6330", "ok", "none")


def hook_argv(env: LabEnv) -> list[str]:
    """`sbops tls deploy-hook` with the environment's files, for a run with an environment of its own."""
    env.write()
    return [sys.executable, "-m", "sbops", "tls", "deploy-hook", "--config", str(env.config_path),
            "--credentials", str(env.credentials_path)]
