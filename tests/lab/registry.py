"""The lab's ECR stand-in: Debian's `docker-registry` (distribution 2.8) over TLS with basic auth for user `AWS`.

ECR answers `docker login` with user `AWS` and a password that is the token's part after "AWS:" (what
`aws ecr get-login-password` prints); sbops writes exactly that password into the pull secret `awscred`. This
registry accepts one such password at a time, so a pull secret with a wrong or replaced token fails for real
(401, then the kubelet's own ErrImagePull / ImagePullBackOff).

How the password is checked: distribution reads an htpasswd file of bcrypt hashes, and bcrypt only uses the
first 72 bytes of a password (Python's bcrypt 5 refuses longer input; Go's compare ignores the rest). ECR
passwords are far longer, so the entry hashes the password's first 72 bytes. Real ECR passwords, and the lab's
(tests.lab.kube.ecr_token), start with a random payload, so two tokens differ well within those 72 bytes.
distribution re-reads htpasswd whenever its mtime changes, so set_token() swaps the file atomically and the
old token is refused from the next request on, without a restart (set_token waits until that is so).

Layout of a registry directory D:
    D/pki/ca.crt, ca.key              the lab CA (trusted by containerd and skopeo) unless one was given
    D/pki/registry.crt, registry.key  serving certificate signed by the CA; SAN = the host address
    D/trust/ca.crt                    skopeo's --cert-dir (only the CA: every *.crt there is a trusted root)
    D/htpasswd                        AWS:<bcrypt of the password's first 72 bytes>   (0600)
    D/auth.json                       containers-auth.json for skopeo --authfile, holds the current token (0600)
    D/policy.json                     skopeo's signature policy (accept anything: images are built here)
    D/config.yml                      the registry's config (0600: it holds the http secret)
    D/data/                           blob and manifest storage (kept across restarts)
    D/registry.log                    the registry's log;  D/registry.json  host, port, pid (for load())

Script use:  python -m tests.lab.registry start D [--host H] [--port P]   (detached; prints HOST:PORT)
             python -m tests.lab.registry token D < token-file              (accept only that token from now on)
             python -m tests.lab.registry push D ARCHIVE REPO TAG           (docker-archive tarball)
             python -m tests.lab.registry stop D
"""

from __future__ import annotations

import argparse
import atexit
import base64
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import requests

from tests.lab.common import free_port, tail
from tests.lab.kube import REGISTRY, _alive, _terminate, ecr_password, ecr_token, make_ca, make_cert

BINARY = "/usr/bin/docker-registry"
USER = "AWS"
BCRYPT_MAX = 72  # bytes of a password bcrypt uses
BCRYPT_ROUNDS = 4  # Go's minimum: every registry request checks it, and the lab's secrets are random, not guessable
DEFAULT_ACCOUNT = "123456789012"  # moto's DEFAULT_ACCOUNT_ID


def hashed_entry(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """The htpasswd line that accepts `password` for user AWS: bcrypt of its first 72 bytes."""
    import bcrypt

    digest = bcrypt.hashpw(_prefix(password), bcrypt.gensalt(rounds=rounds)).decode()
    return f"{USER}:{digest}\n"


def lab_token(hours: float = 12.0) -> str:
    """A fresh ECR-format token valid for `hours` (tests.lab.kube.ecr_token: random payload first)."""
    return ecr_token(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours))


def moto_token(account_id: str = DEFAULT_ACCOUNT) -> str:
    """The token moto's ecr.get_authorization_token returns for `account_id` (moto 5.2: base64 of
    "AWS:<account>-auth-token"; the account is MOTO_ACCOUNT_ID of the moto server, else 123456789012).

    set_token(moto_token()) makes the registry accept what `sbops fix ecr-refresh` fetches from moto. moto's
    token never changes for an account, so a "stale" token next to it is lab_token(), or moto_token() of
    another account. Its expiresAt is always 2015-01-01: sbops's ecr.expiry calls it expired regardless.
    """
    return base64.b64encode(f"AWS:{account_id}-auth-token".encode()).decode()


def _prefix(password: str) -> bytes:
    """What bcrypt, hence the registry, compares of a password."""
    return password.encode()[:BCRYPT_MAX]


def _write_private(path: Path, text: str) -> None:
    """Write a secret-bearing file atomically at 0600 (created 0600, never world-readable for an instant)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class LabRegistry:
    """docker-registry on HOST:PORT (TLS, lab CA), data in `root`; binds only `host`."""

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int | None = None,
                 ca: tuple[str, str] | None = None) -> None:
        """`ca`: (ca_cert_pem, ca_key_pem) of a lab CA to sign the serving cert with (one is made otherwise)."""
        self.root = Path(root)
        self.host = host
        self.port = port or 0
        self.pid = 0
        self.start_seconds = 0.0
        self._ca = ca
        self._proc: subprocess.Popen | None = None

    # -- identity and paths -----------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """HOST:PORT, as image references and containerd's registry.configs name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the serving certificate: what containerd (tls.ca_file) and clients trust."""
        return self.root / "pki" / "ca.crt"

    @property
    def cert_dir(self) -> Path:
        """A directory holding only the CA, for skopeo's --cert-dir / --dest-cert-dir."""
        return self.root / "trust"

    @property
    def authfile(self) -> Path:
        return self.root / "auth.json"

    @property
    def htpasswd(self) -> Path:
        return self.root / "htpasswd"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    @property
    def state_file(self) -> Path:
        return self.root / "registry.json"

    @property
    def running(self) -> bool:
        return bool(self.pid) and _alive(self.pid)

    @property
    def token(self) -> str:
        """The token the registry accepts now (base64 of "AWS:<password>")."""
        token = self._stored_token()
        if token is None:
            raise RuntimeError(f"no token set in {self.authfile} (start() or set_token() first)")
        return token

    @property
    def password(self) -> str:
        return ecr_password(self.token)

    @classmethod
    def load(cls, root: Path | str) -> "LabRegistry":
        """The registry described by root/registry.json (started by another process, e.g. the CLI)."""
        registry = cls(root)
        state = json.loads(registry.state_file.read_text())
        registry.host, registry.port, registry.pid = state["host"], state["port"], state.get("pid", 0)
        return registry

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "LabRegistry":
        """Start the registry (keeping port, storage and accepted token of an earlier run in the same root).

        With no token set yet, a fresh lab token (12 h) is accepted; set_token() replaces it.
        """
        started = time.monotonic()
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        self.port = self.port or free_port(self.host)
        self._write_pki()
        self._write_token(self._stored_token() or lab_token())  # keyed by this address, even on a new port
        (self.root / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self._write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}  # env overrides config
        log = open(self.log, "ab")
        self._proc = subprocess.Popen([BINARY, "serve", str(self.root / "config.yml")], stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                      start_new_session=True)
        log.close()
        self.pid = self._proc.pid
        self._save()
        atexit.register(self._stop_if_owned)  # a crashed test run must not leave the registry behind
        self._wait_ready(timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the registry (by pid, so a detached one can be stopped from another process). Idempotent."""
        if self.pid:
            _terminate(self.pid, self._proc)
        self._proc = None
        self.pid = 0
        if self.state_file.exists():
            self._save()

    def _stop_if_owned(self) -> None:
        if self._proc is not None:
            self.stop()

    def _wait_ready(self, timeout: float) -> None:
        """Until /v2/ answers over verified TLS (401 without credentials: auth is on)."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self._proc.returncode}: {tail(self.log, 30)}")
            try:
                status = requests.get(f"{self.url}/v2/", verify=str(self.ca_file), timeout=2).status_code
            except requests.RequestException as exc:
                last = type(exc).__name__
                time.sleep(0.02)
                continue
            if status == 401:
                return
            raise RuntimeError(f"{self.url}/v2/ answered {status} without credentials (expected 401)")
        self.stop()
        raise TimeoutError(f"docker-registry not ready on {self.url} after {timeout:g}s ({last}): {tail(self.log, 30)}")

    # -- tokens -----------------------------------------------------------------------------------------
    def set_token(self, token: str, timeout: float = 10.0) -> None:
        """Accept only `token` (ECR format, base64 of "AWS:<password>") from now on; the previous one gets 401.

        When running, waits until the registry has re-read htpasswd (the new password is accepted). Refuses a
        token whose password shares its first 72 bytes with the current one's: the registry could not tell
        them apart, and a test expecting the old one to fail would be misled.
        """
        old = self._stored_token()
        if old and old != token and _prefix(ecr_password(old)) == _prefix(ecr_password(token)):
            raise ValueError("the new token's password starts with the same 72 bytes as the current one's: "
                             "bcrypt would accept both (make it with tests.lab.kube.ecr_token: random payload first)")
        self._write_token(token)
        if not self.running:
            return
        end = time.monotonic() + timeout
        while True:
            status = requests.get(f"{self.url}/v2/", auth=(USER, ecr_password(token)), verify=str(self.ca_file),
                                  timeout=5).status_code
            if status == 200:
                return
            if time.monotonic() > end:
                raise TimeoutError(f"{self.url} still refuses the new token ({status}) after {timeout:g}s")
            time.sleep(0.02)

    def _write_token(self, token: str) -> None:
        """htpasswd first (what the registry checks), then auth.json (what skopeo sends); both 0600, atomic.

        distribution re-reads htpasswd when its mtime differs from the one it last read; the new file gets an
        mtime strictly after the old one, so two swaps within one clock tick still count as a change."""
        password = ecr_password(token)
        previous = self.htpasswd.stat().st_mtime_ns if self.htpasswd.exists() else 0
        _write_private(self.htpasswd, hashed_entry(password))
        stamp = max(time.time_ns(), previous + 1_000_000)
        os.utime(self.htpasswd, ns=(stamp, stamp))
        _write_private(self.authfile, json.dumps({"auths": {self.address: {"auth": token}}}))

    def _stored_token(self) -> str | None:
        """The token of an earlier run in this root (auth.json has one entry, whatever its address)."""
        try:
            return next(iter(json.loads(self.authfile.read_text())["auths"].values()))["auth"]
        except (OSError, ValueError, KeyError, StopIteration):
            return None

    # -- images -----------------------------------------------------------------------------------------
    def push(self, archive: Path | str, repo: str, tag: str, timeout: float = 120.0) -> str:
        """Push a docker-archive tarball as REPO:TAG with skopeo; returns the image reference pushed.

        Credentials go through --dest-authfile (0600), never the command line; TLS is verified with the lab CA.
        """
        target = f"{self.address}/{repo}:{tag}"
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        argv = ["skopeo", "--policy", str(self.root / "policy.json"), "--tmpdir", str(tmp),
                "copy", "--retry-times", "2",
                "--dest-authfile", str(self.authfile), "--dest-cert-dir", str(self.cert_dir),
                f"docker-archive:{archive}", f"docker://{target}"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo copy to {target} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return target

    def get(self, path: str, token: str | None = None, headers: dict[str, str] | None = None) -> Any:
        """GET {url}{path} with the accepted token (or `token`), TLS verified with the lab CA."""
        password = ecr_password(token or self.token)
        return requests.get(f"{self.url}{path}", auth=(USER, password), verify=str(self.ca_file),
                            headers=headers, timeout=10)

    def catalog(self) -> list[str]:
        response = self.get("/v2/_catalog")
        response.raise_for_status()
        return response.json().get("repositories") or []

    def tags(self, repo: str) -> list[str]:
        response = self.get(f"/v2/{repo}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json().get("tags") or []

    # -- containerd -------------------------------------------------------------------------------------
    def containerd_cri_config(self, mirror_of: str = REGISTRY) -> str:
        """The CRI plugin's registry section (containerd 1.6 config version 2) that sends pulls of `mirror_of`
        images here over TLS trusting the lab CA. The endpoint must say https://: without it containerd talks
        plain HTTP to an IP registry and gets 400. Credentials come from the pod's pull secret (keyed by
        `mirror_of`), as in production."""
        cri = 'plugins."io.containerd.grpc.v1.cri".registry'
        return (f'[{cri}.mirrors."{mirror_of}"]\n'
                f'  endpoint = ["{self.url}"]\n'
                f'[{cri}.configs."{self.address}".tls]\n'
                f'  ca_file = "{self.ca_file}"\n')

    # -- files --------------------------------------------------------------------------------------------
    def _write_pki(self) -> None:
        """The CA (given, or made once per root) and a serving cert for the host address: made again when the
        CA was given (it may be another one) or the host changed, kept otherwise (containerd trusts the CA)."""
        pki = self.root / "pki"
        pki.mkdir(exist_ok=True)
        if self._ca is not None:
            self.ca_file.write_text(self._ca[0])
            _write_private(pki / "ca.key", self._ca[1])
        elif not self.ca_file.exists():
            ca_cert, ca_key = make_ca("sbops lab registry CA")
            _write_private(pki / "ca.key", ca_key)
            self.ca_file.write_text(ca_cert)
        ca = (self.ca_file.read_text(), (pki / "ca.key").read_text())
        host_file = pki / "registry.host"
        current = (pki / "registry.crt").exists() and host_file.exists() and host_file.read_text() == self.host
        if self._ca is not None or not current:
            cert, key, _ = make_cert(self.host, days=3650, sans=[self.host], ca=ca)
            _write_private(pki / "registry.key", key)
            (pki / "registry.crt").write_text(cert)
            host_file.write_text(self.host)
        self.cert_dir.mkdir(exist_ok=True)
        (self.cert_dir / "ca.crt").write_text(self.ca_file.read_text())

    def _write_config(self) -> None:
        pki = self.root / "pki"
        config = {
            "version": 0.1,
            "log": {"level": "info", "fields": {"service": "sbops-lab-registry"}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": self.address, "secret": secrets.token_hex(16),
                     "tls": {"certificate": str(pki / "registry.crt"), "key": str(pki / "registry.key")},
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "auth": {"htpasswd": {"realm": f"https://{REGISTRY}/", "path": str(self.htpasswd)}},
        }
        _write_private(self.root / "config.yml", json.dumps(config, indent=1))  # JSON is YAML

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"host": self.host, "port": self.port, "pid": self.pid}))


# --- pytest fixtures ------------------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # script use without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="session")
    def lab_registry(tmp_path_factory: Any) -> Iterator[LabRegistry]:
        """One registry on 127.0.0.1 for the session (a fresh lab token accepted; set_token() to change it)."""
        registry = LabRegistry(tmp_path_factory.mktemp("registry"))
        try:
            yield registry.start()
        finally:
            registry.stop()


# --- script entry ---------------------------------------------------------------------------------------------

def start_detached(root: Path, host: str = "127.0.0.1", port: int | None = None) -> LabRegistry:
    """Start (or reuse) the registry in `root`; it outlives this process (stop with stop_detached)."""
    if (root / "registry.json").exists():
        registry = LabRegistry.load(root)
        if registry.running and registry.host == host and (port is None or registry.port == port):
            return registry
        registry.stop()
        if registry.host == host and port is None:
            port = registry.port
    registry = LabRegistry(root, host, port).start()
    registry._proc = None  # hand over: tracked by pid from now on
    return registry


def stop_detached(root: Path) -> None:
    if (root / "registry.json").exists():
        LabRegistry.load(root).stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("start", "stop", "token", "push"))
    parser.add_argument("root", type=Path)
    parser.add_argument("args", nargs="*", help="push: ARCHIVE REPO TAG")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    options = parser.parse_args(argv)
    root = options.root.resolve()
    if options.command == "start":
        print(start_detached(root, options.host, options.port).address)
    elif options.command == "stop":
        stop_detached(root)
    elif options.command == "token":  # from stdin: a token never travels on a command line
        token = sys.stdin.read().strip()
        if not token:
            parser.error("token: give the token on stdin")
        LabRegistry.load(root).set_token(token)
    else:
        if len(options.args) != 3:
            parser.error("push: ARCHIVE REPO TAG")
        archive, repo, tag = options.args
        print(LabRegistry.load(root).push(Path(archive), repo, tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
