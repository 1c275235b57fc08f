"""The installer's validation judgements (each failure's message), artifacts and manifests, the resume
state, the run log's masking, and what the user sees (step lines, spinner, recap)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sbops.errors import UsageError
from sbops.install import artifacts as art
from sbops.install import report, steps as st, validation as val
from sbops.install.run import Options
from sbops.install.runlog import RunLog
from sbops.install.state import State
from sbops.versions import Artifact
from sbops.model import Change, Plan
from sbops.probes.host import Listener
from sbops.probes.tls import pair_problems
from sbops.secret import Secret
from tests.lab.kube import make_ca, make_cert

DOMAIN = "portal.example.com"
NOW = datetime.now(timezone.utc)


# -- validation: each failure and its message -------------------------------------------------------
def test_root() -> None:
    assert val.judge_root(0, False) == ("", "")
    error, _ = val.judge_root(1000, False)
    assert error == "must run as root (it installs packages, writes /etc and starts services): use sudo"
    error, warning = val.judge_root(1000, True)
    assert not error and warning.startswith("not running as root: some probes cannot look")


@pytest.mark.parametrize("info, force, error, warning", [
    ({"ID": "ubuntu", "VERSION_ID": "22.04"}, False, "", ""),
    ({"ID": "ubuntu", "VERSION_ID": "24.04"}, False, "", ""),
    ({"ID": "debian", "VERSION_ID": "12"}, False, "", ""),
    ({"ID": "centos", "VERSION_ID": "7", "PRETTY_NAME": "CentOS Linux 7 (Core)"}, False,
     "CentOS Linux 7 (Core) is not supported: sbops installs on Ubuntu 22.04/24.04 and Debian 12, the distributions "
     "K3s supports here (--force-os to try anyway)", ""),
    ({"ID": "ubuntu", "VERSION_ID": "20.04", "PRETTY_NAME": "Ubuntu 20.04.6 LTS"}, True, "",
     "Ubuntu 20.04.6 LTS is not a supported distribution (Ubuntu 22.04/24.04 and Debian 12); going on because of --force-os"),
    ({}, False, "unknown is not supported: sbops installs on Ubuntu 22.04/24.04 and Debian 12, the distributions K3s "
                "supports here (--force-os to try anyway)", ""),
])
def test_os(info: dict, force: bool, error: str, warning: str) -> None:
    got_error, got_warning, _ = val.judge_os(info, force)
    assert (got_error, got_warning) == (error, warning)


@pytest.mark.parametrize("domain, message", [
    ("portal.example.com", ""),
    ("a-b.c1.example.co.uk", ""),
    ("portal.example.com.", ""),
    ("", "no domain: give --domain (the portal's DNS name, e.g. portal.example.com)"),
    ("10.0.0.5", "--domain 10.0.0.5: an IP address; give the portal's DNS name (its certificate and the Gateway need one)"),
    ("https://portal.example.com", "--domain https://portal.example.com: give the name only, without scheme or path (e.g. portal.example.com)"),
    ("portal", "--domain portal: not a valid DNS name (labels of letters, digits and inner hyphens, at least two of them, e.g. portal.example.com)"),
    ("-bad.example.com", "--domain -bad.example.com: not a valid DNS name"),
    ("por_tal.example.com", "--domain por_tal.example.com: not a valid DNS name"),
    ("*.example.com", "--domain *.example.com: not a valid DNS name"),
    ("a" * 64 + ".example.com", f"--domain {'a' * 64}.example.com: not a valid DNS name"),
])
def test_domain(domain: str, message: str) -> None:
    got = val.judge_domain(domain)
    assert got.startswith(message) if message else got == ""


def listener(port: int, pid: int | None, process: str) -> Listener:
    return Listener("0.0.0.0", port, pid, process)


@pytest.mark.parametrize("owners, speaks, kwargs, message", [
    ([], None, {}, ""),
    ([listener(3306, 10, "mariadbd")], True, {}, ""),
    ([listener(3306, 10, "python3")], False, {},
     "port 3306 (MySQL) is in use by python3 (pid 10), which is not MySQL: stop it, or move MySQL to another port"),
    ([listener(3306, None, "")], False, {}, "port 3306 (MySQL) is in use by a kernel socket, which is not MySQL"),
    ([listener(3306, None, "")], False, {"kernel_ok": True}, ""),
    ([listener(3306, 7, "nfsd")], False, {"allowed": ("nfsd",)}, ""),
    ([listener(3306, 7, "beam.smp")], None, {"allowed_pids": frozenset({7})}, ""),
    ([listener(3306, 8, "nginx")], None, {"allowed_pids": frozenset({7})}, "port 3306 (MySQL) is in use by nginx (pid 8)"),
])
def test_port(owners: list, speaks, kwargs: dict, message: str) -> None:
    got = val.judge_port("MySQL", 3306, owners, speaks, **kwargs)
    assert got.startswith(message) if message else got == ""


def test_check_ports_uses_the_amqp_ports_process_for_management() -> None:
    needs = [val.PortNeed("RabbitMQ", 5672, lambda p: True), val.PortNeed("RabbitMQ management", 15672, same_as=5672)]
    same = [listener(5672, 40, "beam.smp"), listener(15672, 40, "beam.smp")]
    assert val.check_ports(needs, same) == []
    other = [listener(5672, 40, "beam.smp"), listener(15672, 41, "node")]
    assert val.check_ports(needs, other) == [
        "port 15672 (RabbitMQ management) is in use by node (pid 41), which is not RabbitMQ management: stop it, or "
        "move RabbitMQ management to another port"]


@pytest.fixture(scope="module")
def pki() -> dict[str, tuple[bytes, bytes]]:
    ca = make_ca()
    good = make_cert(DOMAIN, ca=ca)
    other = make_cert("other.example.org", ca=ca)
    expired = make_cert(DOMAIN, days=30, not_before=NOW - timedelta(days=60), ca=ca)
    future = make_cert(DOMAIN, days=30, not_before=NOW + timedelta(days=2), ca=ca)
    return {"good": ((good[0] + good[2]).encode(), good[1].encode()),
            "other": (other[0].encode(), other[1].encode()),
            "expired": (expired[0].encode(), expired[1].encode()),
            "future": (future[0].encode(), future[1].encode()),
            "mismatch": (good[0].encode(), other[1].encode()),
            "wrong_order": ((good[2] + good[0]).encode(), good[1].encode())}


@pytest.mark.parametrize("case, problems", [
    ("good", []),
    ("other", [f"the certificate does not cover {DOMAIN} (its names: other.example.org)"]),
    ("expired", ["the certificate expired on"]),
    ("future", ["the certificate is not valid before"]),
    ("mismatch", ["the key file is not the private key of the certificate"]),
    ("wrong_order", ["the chain of the certificate is out of order: the server certificate is number 2 of 2"]),
])
def test_pair_problems(pki, case: str, problems: list[str]) -> None:
    got = pair_problems(*pki[case], DOMAIN, NOW)
    assert len(got) == len(problems), got
    for line, start in zip(got, problems):
        assert line.startswith(start), got


def test_pair_problems_of_files_that_are_not_pem(pki) -> None:
    assert pair_problems(b"hello", pki["good"][1], DOMAIN, NOW) == ["the certificate file holds no PEM certificate"]
    assert pair_problems(pki["good"][0], b"junk", DOMAIN, NOW) == ["the key file is not an unencrypted PEM private key"]


def test_judge_pair_files(pki, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(pki["expired"][0])
    key.write_bytes(pki["expired"][1])
    read = lambda p: Path(p).read_bytes()  # noqa: E731
    assert val.judge_pair("", "", read, DOMAIN, NOW) == []
    assert val.judge_pair(str(cert), "", read, DOMAIN, NOW) == [
        "--ssl-cert and --ssl-key go together: give both files, or neither (to keep the TLS secret there is)"]
    assert val.judge_pair(str(cert), str(tmp_path / "nope.pem"), read, DOMAIN, NOW) == [
        f"--ssl-key {tmp_path / 'nope.pem'}: cannot read: No such file or directory"]
    [line] = val.judge_pair(str(cert), str(key), read, DOMAIN, NOW)
    assert line.startswith(f"--ssl-cert {cert} / --ssl-key {key}: the certificate expired on")


# -- artifacts -----------------------------------------------------------------------------------------
def write_bundle(root: Path, files: dict[str, bytes], manifest: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    sums = manifest if manifest is not None else {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    (root / art.MANIFEST).write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return root


def test_parse_sums() -> None:
    text = f"# comment\n{'a' * 64}  k3s\n{'B' * 64} *./images/istio.tar\n"
    assert art.parse_sums(text, "SUMS") == {"k3s": "a" * 64, "images/istio.tar": "b" * 64}
    with pytest.raises(UsageError, match="SUMS:1: expected '<sha256 hex>  <file name>'"):
        art.parse_sums("deadbeef k3s\n", "SUMS")


def test_offline_artifacts_are_checked_against_the_manifest(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "a", {"k3s": b"binary", "images/istio.tar": b"img", "helm.tgz": b"h"})
    (bundle / "helm.tgz").write_bytes(b"tampered")
    bag = art.Artifacts(bundle, tmp_path / "dl", fetcher=None)
    assert bag.check("k3s") == ""
    problems = bag.verify_all()
    assert len(problems) == 1 and problems[0].startswith(f"--artifacts-dir: {bundle / 'helm.tgz'} does not match SHA256SUMS")
    assert bag.check("istioctl.tgz") == f"--artifacts-dir: istioctl.tgz is not listed in {bundle / 'SHA256SUMS'}"
    assert bag.extra_images() == [bundle / "images/istio.tar"]
    assert bag.get(Artifact("k3s", "u", "c", "K3s")) == bundle / "k3s"
    with pytest.raises(RuntimeError, match="does not match"):
        bag.get(Artifact("helm.tgz", "u", "c", "Helm"))
    (bundle / "k3s").unlink()
    assert bag.check("k3s") == f"--artifacts-dir: {bundle / 'k3s'} is listed in SHA256SUMS but missing"


def test_missing_manifest_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"--artifacts-dir: {tmp_path / 'SHA256SUMS'} not found"):
        art.Artifacts(tmp_path, tmp_path / "dl", None).manifest()


class DictFetcher:
    """The installer's download seam, serving fixed bytes: the real HTTP fetcher is tested in integration."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fetched: list[str] = []

    def get(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.files:
            raise art.FetchError(f"{url}: HTTP 404")
        return self.files[url]

    def download(self, url: str, dest: Path) -> None:
        dest.write_bytes(self.get(url))


def test_online_download_is_verified_against_the_published_checksum(tmp_path: Path) -> None:
    item = Artifact("helm.tgz", "https://x/helm.tgz", "https://x/helm.tgz.sha256sum", "Helm")
    good = hashlib.sha256(b"helm").hexdigest()
    fetcher = DictFetcher({item.url: b"helm", item.checksum_url: f"{good}  helm.tgz\n".encode()})
    bag = art.Artifacts(None, tmp_path / "dl", fetcher)
    path = bag.get(item)
    assert path.read_bytes() == b"helm" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert bag.get(item) == path and fetcher.fetched.count(item.url) == 1  # cached and re-verified
    fetcher.files[item.url] = b"evil"
    path.unlink()
    with pytest.raises(RuntimeError, match="does not match the published"):
        bag.get(item)
    assert not path.exists() and not list((tmp_path / "dl").glob(".helm*"))
    del fetcher.files[item.checksum_url]
    with pytest.raises(RuntimeError, match="cannot get the checksum of Helm: https://x/helm.tgz.sha256sum: HTTP 404"):
        bag.get(item)


# -- resume state and options ----------------------------------------------------------------------------
def test_state_round_trip_and_resume_point(tmp_path: Path) -> None:
    state = State(tmp_path / "s.json")
    state.begin(Options(domain="p.example.com", skip_infra=True, only=("mysql",)).as_state(), "/log")
    for name, status in (("credentials", "unchanged"), ("mysql", "changed"), ("mongodb", "running")):
        state.mark(name, status)
    loaded = State.load(tmp_path / "s.json")
    assert loaded.resume_point() == "mongodb" and not loaded.finished
    assert oct((tmp_path / "s.json").stat().st_mode & 0o777) == "0o600"
    options = Options.from_state(loaded.options, {"ssl_cert": "/c.pem"})
    assert (options.domain, options.skip_infra, options.only, options.ssl_cert) == ("p.example.com", True, ("mysql",), "/c.pem")
    loaded.mark("mongodb", "changed")
    loaded.end(True)
    assert State.load(tmp_path / "s.json").resume_point() == ""


def test_corrupt_state_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable install state"):
        State.load(tmp_path / "s.json")
    (tmp_path / "s.json").write_text('{"schema": 99}')
    with pytest.raises(UsageError, match="not an sbops install state"):
        State.load(tmp_path / "s.json")


# -- the run log -------------------------------------------------------------------------------------------
def test_run_log_masks_secrets_one_file_per_run(tmp_path: Path) -> None:
    import logging

    secret = Secret("TopSecretPass123")
    log = RunLog(tmp_path / "logs" / "install.log", lambda: [secret]).open()
    log.write("password is TopSecretPass123")
    logging.getLogger("sbops.runner").info("run: %s", "echo TopSecretPass123")
    log.close()
    second = RunLog(tmp_path / "logs" / "install.log", lambda: []).open()
    second.close()
    text = (tmp_path / "logs" / "install.log").read_text()
    assert "TopSecretPass123" not in text and text.count("****") == 2
    assert second.path == tmp_path / "logs" / "install-1.log"
    assert oct((tmp_path / "logs").stat().st_mode & 0o777) == "0o700"
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"


# -- what the user sees ----------------------------------------------------------------------------------------
def outcome(status: str, plan: Plan | None = None, applied: list[str] | None = None, **kwargs) -> st.StepOutcome:
    step = st.Step("mysql", "MySQL", st.DB, (st.Resource("mysql.user", lambda r, c: Plan()),))
    resource = st.ResourceOutcome("mysql.user", plan, applied=applied or [])
    return st.StepOutcome(step, status, [resource], duration=1.25, **kwargs)


def test_step_lines() -> None:
    change = Change("create 'stackbill'@'%'", ("CREATE USER 'stackbill'@'%%' IDENTIFIED BY '****'",))
    assert report.step_lines(outcome(st.PLANNED, Plan(changes=(change,))), plan_only=True) == [
        "  + mysql             would change     1.2s",
        "      + create 'stackbill'@'%'",
        "          $ CREATE USER 'stackbill'@'%%' IDENTIFIED BY '****'"]
    assert report.step_lines(outcome(st.CHANGED, Plan(changes=(change,)), applied=[change.description]), plan_only=False) == [
        "  ✔ mysql             changed          1.2s", "      + create 'stackbill'@'%'"]
    assert report.step_lines(outcome(st.UNCHANGED, Plan(nothing_to_do="users match")), plan_only=False) == [
        "  ✔ mysql             nothing to do    1.2s", "      = mysql.user: users match"]
    skipped = st.StepOutcome(outcome(st.SKIPPED).step, st.SKIPPED, why_skipped="--skip-db")
    assert report.step_lines(skipped, plan_only=False) == ["  - mysql             skipped (--skip-db)"]
    failed = outcome(st.FAILED, Plan(blockers=("no login works",)))
    failed.resources[0].error = "no login works"
    assert report.step_lines(failed, plan_only=False)[1] == "      ✘ mysql.user: no login works"


def test_terminal_reporter_spins_then_prints_the_step() -> None:
    class SignallingStream(io.StringIO):
        """Tells the test when the spinner has drawn the activity, instead of a sleep that hopes it has."""

        drawn = threading.Event()

        def write(self, text: str) -> int:
            if "waiting for port 3306" in text:
                self.drawn.set()
            return super().write(text)

    stream = SignallingStream()
    reporter = report.TerminalReporter(stream, colour=False)
    reporter.step_started("mysql", "MySQL")
    reporter.activity("waiting for port 3306")
    assert stream.drawn.wait(10), "the spinner never drew the activity"
    reporter.step_finished(outcome(st.UNCHANGED, Plan(nothing_to_do="ok")))
    text = stream.getvalue()
    assert "waiting for port 3306" in text and any(frame in text for frame in report.TerminalReporter.FRAMES)
    assert text.endswith("  ✔ mysql             nothing to do    1.2s\n      = mysql.user: ok\n")


def test_recap_lines() -> None:
    facts = {"result": "finished", "failed_step": "", "counts": {"unchanged": 12, "skipped": 3},
             "portal_url": "https://p.example.com:31882", "portal_by_ip": "https://10.0.0.5:31882",
             "nodeports": {"http": 31443, "https": 31882},
             "firewall": {"open": [31443, 31882], "keep_closed": [2049, 3306]},
             "credentials_file": "/root/stackbill-credentials.txt", "ecr_refresher": "",
             "exporter": "http://127.0.0.1:29100/metrics (sbops-exporter.service; alert rules: sbops exporter print-rules)",
             "log_file": "/var/log/x.log", "next": "sbops doctor"}
    assert report.recap_lines(facts) == [
        "", "Install finished (3 skipped, 12 unchanged)",
        "  Portal:      https://p.example.com:31882  (admin UI under /admin; by address: https://10.0.0.5:31882)",
        "  NodePorts:   HTTPS 31882, HTTP 31443 (redirects to HTTPS)",
        "  Firewall:    open TCP 31443, 31882 to the portal's users; keep 2049, 3306 closed to the outside (pods reach them on the host)",
        "  Credentials: /root/stackbill-credentials.txt (mode 0600; passwords are not shown)",
        "  Metrics:     http://127.0.0.1:29100/metrics (sbops-exporter.service; alert rules: sbops exporter print-rules)",
        "  Log:         /var/log/x.log",
        "  Next:        sbops doctor"]


def test_step_outcome_json_has_no_secret_values() -> None:
    change = Change("set 'stackbill'@'%' password", ("ALTER USER ... '****'",))
    doc = outcome(st.CHANGED, Plan(changes=(change,)), applied=[change.description]).as_dict()
    assert json.loads(json.dumps(doc))["resources"][0]["applied"] == ["set 'stackbill'@'%' password"]


def test_listener_names_itself(tmp_path: Path) -> None:
    """The lab's NFS stand-in is named nfsd (psutil reads the name the kernel reports)."""
    import psutil

    from tests.lab.common import free_port
    from tests.lab.listener import ListenerProc

    proc = ListenerProc("127.0.0.1", free_port(), tmp_path / "l.log", name="nfsd").start()
    try:
        assert psutil.Process(proc.pid).name() == "nfsd"
    finally:
        proc.stop()
    assert os.path.exists(tmp_path / "l.log")


# -- downloads over real HTTP ------------------------------------------------------------------------------
def test_http_fetcher_downloads_and_the_checksum_guards_it(tmp_path: Path) -> None:
    """A local HTTP server (http.server in a thread) serves an artifact and its published sha256 file."""
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    (served / "helm.tgz").write_bytes(b"helm archive")
    (served / "helm.tgz.sha256sum").write_text(f"{hashlib.sha256(b'helm archive').hexdigest()}  helm.tgz\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        bag = art.Artifacts(None, tmp_path / "dl", art.HttpFetcher(connect_timeout=2, read_timeout=5))
        item = Artifact("helm.tgz", f"{base}/helm.tgz", f"{base}/helm.tgz.sha256sum", "Helm")
        assert bag.get(item).read_bytes() == b"helm archive"
        (served / "helm.tgz").write_bytes(b"swapped on the server")
        (tmp_path / "dl" / "helm.tgz").unlink()
        with pytest.raises(RuntimeError, match=f"{base}/helm.tgz: sha256 .* does not match the published"):
            bag.get(item)
        with pytest.raises(RuntimeError, match="cannot get the checksum of Helm: .*: HTTP 404"):
            bag.get(Artifact("x.tgz", f"{base}/x.tgz", f"{base}/x.tgz.sha256", "Helm"))
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(art.FetchError, match="ConnectionError"):
        art.HttpFetcher(connect_timeout=1, read_timeout=1).get(f"{base}/helm.tgz")


# -- the interactive flow: plan, confirm, apply ------------------------------------------------------------------
def test_without_yes_the_plan_is_shown_and_confirmed(tmp_path: Path) -> None:
    from sbops.install import command

    config = tmp_path / "config.yaml"
    state = tmp_path / "state.json"
    config.write_text(f"install:\n  state_file: {state}\n  log_dir: {tmp_path / 'logs'}\n")
    creds = tmp_path / "creds.txt"
    given = {"config": str(config), "credentials": str(creds), "only": ("credentials",)}
    asked: list[str] = []

    def answer(reply: bool):
        def confirm(question: str) -> bool:
            asked.append(question)
            return reply
        return confirm

    out, err = io.StringIO(), io.StringIO()
    code = command.execute(given, plan_only=False, yes=False, resume=False, interactive=True, confirm=answer(False),
                           ask=lambda q: "", out=out, err=err)
    assert code == 3 and asked == ["Apply these changes (1)?"]
    assert "+ generate MYSQL, MONGODB, RABBITMQ password(s)" in out.getvalue() and "aborted: nothing was changed" in out.getvalue()
    assert not creds.exists() and not state.exists()

    out = io.StringIO()
    code = command.execute(given, plan_only=False, yes=False, resume=False, interactive=True, confirm=answer(True),
                           ask=lambda q: "", out=out, err=err)
    assert code == 0 and creds.exists() and len(asked) == 2
    assert "Install finished" in out.getvalue()

    out = io.StringIO()
    code = command.execute(given, plan_only=False, yes=False, resume=False, interactive=True, confirm=answer(True),
                           ask=lambda q: "", out=out, err=err)
    assert code == 0 and len(asked) == 2  # nothing to change: nothing to confirm


def test_a_missing_domain_is_asked_for_on_a_terminal(tmp_path: Path) -> None:
    from sbops.install import command

    config = tmp_path / "config.yaml"
    config.write_text(f"install:\n  state_file: {tmp_path / 's.json'}\n  log_dir: {tmp_path / 'logs'}\n")
    given = {"config": str(config), "credentials": str(tmp_path / "creds.txt"), "only": ("credentials",)}
    questions: list[str] = []
    out = io.StringIO()
    code = command.execute(given, plan_only=False, yes=False, resume=False, interactive=True, confirm=lambda q: True,
                           ask=lambda q: questions.append(q) or "portal.example.com", out=out, err=io.StringIO())
    assert code == 0 and questions == ["The portal's domain (e.g. portal.example.com)"]
    from sbops import credentials as creds_mod

    assert creds_mod.load(tmp_path / "creds.txt").portal_url == "https://portal.example.com"


def test_install_help_shows_an_example() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "sbops", "install", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Example: sbops install --domain" in proc.stdout


def test_a_new_install_asks_for_the_certificate_on_a_terminal(tmp_path: Path) -> None:
    from sbops.install import command

    config = tmp_path / "config.yaml"
    config.write_text(f"install:\n  state_file: {tmp_path / 's.json'}\n")
    answers = iter(["portal.example.com", str(tmp_path / "fullchain.pem"), str(tmp_path / "privkey.pem")])
    questions: list[str] = []
    err = io.StringIO()
    code = command.execute({"config": str(config), "credentials": str(tmp_path / "creds.txt"),
                            "only": ("credentials", "tls-secret")}, plan_only=True, yes=False, resume=False,
                           interactive=True, ask=lambda q: questions.append(q) or next(answers), out=io.StringIO(), err=err)
    assert questions == ["The portal's domain (e.g. portal.example.com)",
                         "TLS certificate file, full chain (empty: keep the TLS secret there is)", "Its private key file"]
    assert code == 2 and f"sbops: error: --ssl-cert {tmp_path / 'fullchain.pem'}: cannot read: No such file" in err.getvalue()
