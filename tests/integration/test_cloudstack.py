"""The cloudstack layer and `sbops install --cloudstack`, against the lab.

CloudStack itself cannot run here (nothing can be pulled), so the API is a STAND-IN
(tests/lab/cloudstack_standin.py): an HTTP server implementing CloudStack's documented request signing
(verified independently of the `cs` library sbops signs with), its uniform 401 for every authentication
failure, admin sessions, and the few commands sbops uses. Podman is real (Debian's podman, private storage
and network), running a locally built image that runs the same stand-in in place of apache/cloudstack-simulator.
Every check is broken the way a user's would break, seen failing with its reason, repaired by the real
`sbops fix`, and seen passing.
"""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sbops import credentials as creds_mod
from sbops.credentials import CloudStack
from sbops.secret import Secret
from tests.lab.cloudstack import CONTAINER_PORT, IMAGE, requests_seen, set_clock, wait_api
from tests.lab.cloudstack_standin import StandIn, signature_of
from tests.lab.common import free_port
from tests.lab.env import LabEnv, finding, fix_json, status

USER = "sb-admin@portal.test"


def simulator_env(root: Path, server: StandIn, user) -> LabEnv:
    """A lab env whose credentials file has the script's CLOUDSTACK SIMULATOR section for `server`."""
    env = LabEnv(root)
    env.cloudstack = CloudStack(url=server.url, admin_user="admin", admin_password=Secret("password"),
                                username=user.username, password=Secret(user.password),
                                api_key=Secret(user.apikey), secret_key=Secret(user.secretkey))
    return env


def keys_of(env: LabEnv) -> tuple[str, str]:
    cs = creds_mod.load(env.credentials_path).cloudstack
    return cs.api_key.reveal(), cs.secret_key.reveal()


# -- the stand-in itself -----------------------------------------------------------------------------------
def test_standin_accepts_cs_signed_requests_and_refuses_a_tampered_one(cloudstack_standin):
    """The stand-in's own verification (not cs's) accepts what cs signs, and a changed parameter fails it."""
    from sbops.probes import cloudstack as probe

    user = cloudstack_standin.user_with_keys()
    api = cloudstack_standin.url + "/api"
    good = probe.call(api, "listZones", timeout=3, key=Secret(user.apikey), secret=Secret(user.secretkey))
    assert good.status == 200 and good.value["zone"]
    params = {"command": "listZones", "apiKey": user.apikey, "response": "json"}
    signature = signature_of(params, user.secretkey)
    tampered = urllib.parse.urlencode({**params, "command": "listCapabilities", "signature": signature})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{api}?{tampered}", timeout=3)
    assert refused.value.code == 401


# -- cloudstack.reachable ----------------------------------------------------------------------------------
def test_reachable_passes_then_refused_when_the_api_stops(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = simulator_env(tmp_path, cloudstack_standin, user)
    result = env.check("cloudstack.reachable")
    assert finding(result) == ("SB8001", "ok", "none")
    cloudstack_standin.stop()
    assert finding(env.check("cloudstack.reachable")) == ("SB8004", "fail", "refused")


def test_reachable_times_out_on_a_silent_port(tmp_path):
    from tests.lab.blackhole import Silent

    with Silent() as silent:
        env = LabEnv(tmp_path).set("cloudstack.url", f"http://127.0.0.1:{silent.port}/client").set("timeout", 2)
        assert status(env.check("cloudstack.reachable")) == ("fail", "timeout")


def test_a_url_that_is_not_cloudstack_is_misconfigured(cloudstack_standin, tmp_path):
    """The portal's URL given instead of CloudStack's: an HTML 404 page, not CloudStack's JSON."""
    env = LabEnv(tmp_path).set("cloudstack.url", f"http://127.0.0.1:{cloudstack_standin.port}/portal")
    assert finding(env.check("cloudstack.reachable")) == ("SB8005", "fail", "misconfigured")


def test_no_cloudstack_configured_skips_every_check(tmp_path):
    env = LabEnv(tmp_path)
    results = env.doctor("cloudstack.*")
    assert {cid: status(r) for cid, r in results.items()} == {
        "cloudstack.reachable": ("skip", "not_applicable"), "cloudstack.api-keys": ("skip", "blocked"),
        "cloudstack.simulator": ("skip", "not_applicable")}
    assert status(env.check("cloudstack.api-keys")) == ("skip", "not_applicable")  # run alone


# -- cloudstack.api-keys -----------------------------------------------------------------------------------
def test_keys_pass_and_the_fix_has_nothing_to_do(cloudstack_standin, tmp_path):
    env = simulator_env(tmp_path, cloudstack_standin, cloudstack_standin.user_with_keys())
    assert finding(env.check("cloudstack.api-keys")) == ("SB8010", "ok", "none")
    code, doc = fix_json(env, "cloudstack-keys")
    assert code == 0 and doc["plan"]["nothing_to_do"] and not doc["plan"]["changes"], doc


def test_wrong_secret_key_is_a_bad_signature_and_the_fix_records_the_right_one(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = simulator_env(tmp_path, cloudstack_standin, user)
    env.cloudstack = CloudStack(**{**env.cloudstack.__dict__, "secret_key": Secret("a-secret-key-from-another-user")})
    result = env.check("cloudstack.api-keys")
    assert finding(result) == ("SB8013", "fail", "auth_failed")
    assert result["details"]["username"] == USER
    env.credentials_file = False  # from now on the file is what sbops wrote
    code, doc = fix_json(env, "cloudstack-keys")
    assert code == 0 and {c["status"] for c in doc["checks"]} == {"ok"}, doc
    assert user.secretkey not in json.dumps(doc)
    assert keys_of(env) == (user.apikey, user.secretkey)
    assert stat.S_IMODE(env.credentials_path.stat().st_mode) == 0o600
    assert finding(env.check("cloudstack.api-keys")) == ("SB8010", "ok", "none")


def test_regenerated_keys_leave_an_unknown_key_and_the_fix_records_the_current_ones(cloudstack_standin, tmp_path):
    """Someone pressed "Generate keys" in the UI: the file's API key belongs to nobody any more."""
    user = cloudstack_standin.user_with_keys()
    env = simulator_env(tmp_path, cloudstack_standin, user)
    env.write()
    env.credentials_file = False
    cloudstack_standin.state.register_keys(user)
    assert finding(env.check("cloudstack.api-keys")) == ("SB8014", "fail", "missing")
    code, _ = fix_json(env, "cloudstack-keys")
    assert code == 0
    assert keys_of(env) == (user.apikey, user.secretkey)
    assert finding(env.check("cloudstack.api-keys")) == ("SB8010", "ok", "none")


def test_the_scripts_placeholder_keys_are_missing_and_the_fix_generates_them(cloudstack_standin, tmp_path):
    """The script writes "(generate from CloudStack UI)" when its registerUserKeys call failed."""
    user = cloudstack_standin.state.add_user(USER, "Us12Er34Pa56Ss78", "admin")
    env = simulator_env(tmp_path, cloudstack_standin, user)
    env.write()
    env.credentials_file = False
    assert env.credentials_path.read_text().count("(generate from CloudStack UI)") == 2
    assert finding(env.check("cloudstack.api-keys")) == ("SB8011", "fail", "missing")
    code, doc = fix_json(env, "cloudstack-keys")
    assert code == 0, doc
    assert user.apikey and keys_of(env) == (user.apikey, user.secretkey)
    assert "(generate from CloudStack UI)" not in env.credentials_path.read_text()
    assert finding(env.check("cloudstack.api-keys")) == ("SB8010", "ok", "none")


def test_disabled_user_is_access_denied_and_the_fix_enables_it(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = simulator_env(tmp_path, cloudstack_standin, user)
    user.state = "disabled"
    result = env.check("cloudstack.api-keys")
    assert finding(result) == ("SB8015", "fail", "access_denied")
    env.credentials_file = False
    code, _ = fix_json(env, "cloudstack-keys")
    assert code == 0 and user.state == "enabled"
    assert finding(env.check("cloudstack.api-keys")) == ("SB8010", "ok", "none")


def test_clock_skew_is_told_apart_and_the_fix_refuses(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = simulator_env(tmp_path, cloudstack_standin, user)
    set_clock(cloudstack_standin.url, 3600)
    result = env.check("cloudstack.api-keys")
    assert finding(result) == ("SB8016", "fail", "misconfigured")
    assert result["details"]["clock_skew_seconds"] > 3500
    proc = env.fix("cloudstack-keys")
    assert proc.returncode != 0 and "clock" in proc.stdout + proc.stderr
    env.credentials_file = False
    assert keys_of(env) == (user.apikey, user.secretkey)  # nothing changed
    set_clock(cloudstack_standin.url, 0)
    assert status(env.check("cloudstack.api-keys")) == ("ok", "none")


def test_without_an_admin_login_a_rejection_is_reported_as_unexplained(cloudstack_standin, tmp_path):
    """An existing CloudStack given by settings only, secret key from the environment, no admin login."""
    user = cloudstack_standin.user_with_keys()
    env = LabEnv(tmp_path).set("cloudstack.url", cloudstack_standin.url).set("cloudstack.api_key", user.apikey)
    proc = env.sbops("doctor", "--output", "json", "--check", "cloudstack.api-keys",
                     env={"SBOPS_CLOUDSTACK_SECRET_KEY": "wrong-secret-key"})
    result = json.loads(proc.stdout)["checks"][0]
    assert finding(result) == ("SB8017", "fail", "auth_failed")
    assert "wrong-secret-key" not in proc.stdout + proc.stderr
    ok = env.sbops("doctor", "--output", "json", "--check", "cloudstack.api-keys",
                   env={"SBOPS_CLOUDSTACK_SECRET_KEY": user.secretkey})
    assert status(json.loads(ok.stdout)["checks"][0]) == ("ok", "none")
    assert user.secretkey not in ok.stdout + ok.stderr


# -- cloudstack.simulator (real podman) --------------------------------------------------------------------
def podman_env(root: Path, podman, port: int) -> LabEnv:
    env = LabEnv(root)
    env.set("cloudstack.simulator_image", IMAGE).set("cloudstack.simulator_port", port)
    env.set("cloudstack.simulator_container_port", CONTAINER_PORT).set("cloudstack.wait_timeout", 60)
    return env


def run_sbops(env: LabEnv, podman, *args: str):
    return env.sbops(*args, env=podman.env)


def test_stopped_simulator_is_not_running_and_the_fix_starts_it(lab_podman, tmp_path):
    port = free_port()
    lab_podman.run("run", "-d", "--name", "cloudstack-simulator", "-p", f"{port}:{CONTAINER_PORT}", IMAGE)
    try:
        url = f"http://127.0.0.1:{port}/client"
        wait_api(url)
        env = podman_env(tmp_path, lab_podman, port)
        env.cloudstack = CloudStack(url=url, admin_user="admin", admin_password=Secret("password"), username=USER)
        doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--check", "cloudstack.simulator").stdout)
        assert finding(doc["checks"][0]) == ("SB8030", "ok", "none")
        lab_podman.run("stop", "cloudstack-simulator")
        doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--layer", "cloudstack").stdout)
        found = {c["id"]: c for c in doc["checks"]}
        assert finding(found["cloudstack.simulator"]) == ("SB8034", "fail", "not_running")
        assert status(found["cloudstack.reachable"]) == ("fail", "refused")
        assert found["cloudstack.reachable"]["details"]["likely_cause"]["check"] == "cloudstack.simulator"
        assert found["cloudstack.reachable"]["fix"] == "cloudstack-simulator-start"
        fixed = run_sbops(env, lab_podman, "fix", "cloudstack-simulator-start", "--yes", "--output", "json")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert lab_podman.inspect("cloudstack-simulator")["State"]["Running"]
        doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--layer", "cloudstack").stdout)
        found = {c["id"]: c for c in doc["checks"]}
        assert status(found["cloudstack.simulator"]) == ("ok", "none")
        assert status(found["cloudstack.reachable"]) == ("ok", "none")
    finally:
        lab_podman.remove_all()


def test_removed_simulator_is_missing_and_the_fix_refuses(lab_podman, tmp_path):
    env = podman_env(tmp_path, lab_podman, free_port())
    env.cloudstack = CloudStack(url="http://127.0.0.1:9/client", username=USER)
    doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--check", "cloudstack.simulator").stdout)
    assert finding(doc["checks"][0]) == ("SB8033", "fail", "missing")
    proc = run_sbops(env, lab_podman, "fix", "cloudstack-simulator-start", "--yes")
    assert proc.returncode != 0 and "install --cloudstack simulator" in proc.stdout + proc.stderr


def test_simulator_on_another_port_is_misconfigured_and_the_fix_refuses_to_touch_it(lab_podman, tmp_path):
    """A container of that name publishing another port than the settings say: not provably the simulator."""
    port, other = free_port(), free_port()
    lab_podman.run("create", "--name", "cloudstack-simulator", "-p", f"{other}:{CONTAINER_PORT}", IMAGE)
    try:
        env = podman_env(tmp_path, lab_podman, port)
        env.cloudstack = CloudStack(url=f"http://127.0.0.1:{port}/client", username=USER)
        lab_podman.run("start", "cloudstack-simulator")
        doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--check",
                                   "cloudstack.simulator").stdout)
        assert finding(doc["checks"][0]) == ("SB8035", "fail", "misconfigured")
        lab_podman.run("stop", "--time", "0", "cloudstack-simulator")
        proc = run_sbops(env, lab_podman, "fix", "cloudstack-simulator-start", "--yes")
        assert proc.returncode != 0 and "refusing to start it" in proc.stdout + proc.stderr
        assert not lab_podman.inspect("cloudstack-simulator")["State"]["Running"]
    finally:
        lab_podman.remove_all()


def test_without_podman_the_simulator_check_skips_with_the_reason(tmp_path):
    env = LabEnv(tmp_path).set("cloudstack.podman_command", str(tmp_path / "no-podman"))
    env.cloudstack = CloudStack(url="http://127.0.0.1:9/client", username=USER)
    result = env.check("cloudstack.simulator")
    assert finding(result) == ("SB8032", "skip", "no_access")
    assert "no-podman" in result["summary"]


# -- sbops install --cloudstack ------------------------------------------------------------------------------
def test_install_simulator_end_to_end_through_podman(lab_podman, tmp_path):
    port = free_port()
    env = podman_env(tmp_path, lab_podman, port)
    env.credentials_file = False  # the install writes it
    try:
        proc = env.install("--yes", "--only", "credentials", "--only", "cloudstack", "--cloudstack", "simulator",
                           "--domain", "portal.test", "--output", "json", env=lab_podman.env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        creds = creds_mod.load(env.credentials_path)
        assert creds.cloudstack is not None and creds.cloudstack.simulator
        assert creds.cloudstack.url == f"http://127.0.0.1:{port}/client"
        assert creds.cloudstack.username == USER and creds.cloudstack.api_key and creds.cloudstack.secret_key
        assert stat.S_IMODE(env.credentials_path.stat().st_mode) == 0o600
        assert creds.cloudstack.secret_key.reveal() not in proc.stdout + proc.stderr
        seen = requests_seen(creds.cloudstack.url)
        assert {"login", "createUser", "registerUserKeys"} <= {s["command"] for s in seen}
        assert not any(s["password_in_query"] for s in seen), seen
        doc = json.loads(run_sbops(env, lab_podman, "doctor", "--output", "json", "--layer", "cloudstack").stdout)
        assert {c["id"]: status(c) for c in doc["checks"]} == {
            "cloudstack.reachable": ("ok", "none"), "cloudstack.api-keys": ("ok", "none"),
            "cloudstack.simulator": ("ok", "none")}
        again = env.install("--yes", "--only", "credentials", "--only", "cloudstack", "--cloudstack", "simulator",
                            "--domain", "portal.test", "--output", "json", env=lab_podman.env)
        assert again.returncode == 0, again.stderr[-2000:]
        step = next(s for s in json.loads(again.stdout)["steps"] if s["name"] == "cloudstack")
        assert step["status"] == "unchanged", step
        assert creds_mod.load(env.credentials_path).cloudstack.secret_key == creds.cloudstack.secret_key
    finally:
        lab_podman.remove_all()


def test_install_simulator_refuses_a_port_another_program_holds(lab_podman, tmp_path):
    from tests.lab.blackhole import Silent

    with Silent() as holder:
        env = podman_env(tmp_path, lab_podman, holder.port)
        env.credentials_file = False
        proc = env.install("--yes", "--only", "cloudstack", "--cloudstack", "simulator", "--domain", "portal.test",
                           env=lab_podman.env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"port {holder.port} (the CloudStack simulator) is in use" in proc.stderr
    assert lab_podman.inspect("cloudstack-simulator") is None and not env.credentials_path.exists()


def test_install_existing_records_url_and_keys_and_never_the_secret_in_the_state(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = LabEnv(tmp_path)
    env.credentials_file = False
    secret_file = tmp_path / "cs-secret"
    secret_file.write_text(user.secretkey + "\n")
    proc = env.install("--yes", "--only", "credentials", "--only", "cloudstack", "--cloudstack", "existing",
                       "--cloudstack-url", cloudstack_standin.url, "--cloudstack-api-key", user.apikey,
                       "--cloudstack-secret-key-file", str(secret_file), "--domain", "portal.test")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    creds = creds_mod.load(env.credentials_path)
    assert creds.cloudstack is not None and not creds.cloudstack.simulator
    assert (creds.cloudstack.url, creds.cloudstack.api_key.reveal(), creds.cloudstack.secret_key.reveal()) == (
        cloudstack_standin.url, user.apikey, user.secretkey)
    state = Path(env.settings["install.state_file"]).read_text()
    assert user.secretkey not in state and "cs-secret" in state
    assert user.secretkey not in proc.stdout + proc.stderr
    results = env.doctor("cloudstack.*")
    assert {cid: status(r) for cid, r in results.items()} == {
        "cloudstack.reachable": ("ok", "none"), "cloudstack.api-keys": ("ok", "none"),
        "cloudstack.simulator": ("skip", "not_applicable")}


def test_install_existing_with_a_wrong_secret_records_nothing(cloudstack_standin, tmp_path):
    user = cloudstack_standin.user_with_keys()
    env = LabEnv(tmp_path)
    env.write()
    env.credentials_file = False
    before = env.credentials_path.read_bytes()
    proc = env.install("--yes", "--only", "cloudstack", "--cloudstack", "existing", "--cloudstack-url",
                       cloudstack_standin.url, "--cloudstack-api-key", user.apikey, "--domain", "portal.test",
                       env={"SBOPS_CLOUDSTACK_SECRET_KEY": "not-the-secret"})
    assert proc.returncode != 0
    assert "signed with the given keys fails" in proc.stdout + proc.stderr
    assert env.credentials_path.read_bytes() == before


def test_install_rejects_a_bad_cloudstack_option(tmp_path):
    env = LabEnv(tmp_path)
    proc = env.install("--yes", "--cloudstack", "cloud")
    assert proc.returncode == 2 and "--cloudstack" in proc.stderr and "Traceback" not in proc.stderr
