"""LabEnv: a temp config + credentials file pointing sbops at lab servers, and helpers to run the real CLI.

Tests run `python -m sbops` in a subprocess, exactly as a user would, and read its JSON output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sbops import credentials as creds_mod
from sbops.credentials import CloudStack, Credentials, Service
from sbops.secret import Secret

REPO = Path(__file__).resolve().parents[2]


class LabEnv:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "config.yaml"
        self.credentials_path = self.root / "stackbill-credentials.txt"
        self.settings: dict[str, Any] = {
            "journal": str(self.root / "journal.log"),
            "server_ip": "127.0.0.1",
            "timeout": 5,
        }
        self.services: dict[str, Service] = {}
        self.portal_url = "https://stackbill.example.com"
        self.nfs_server = "127.0.0.1"  # the credentials file's NFS Server (the living cluster's is its HOST_IP)
        self.credentials_file = True  # False: leave the credentials file as it is (absent, or written by a test)
        self.cloudstack: CloudStack | None = None  # the file's CLOUDSTACK SIMULATOR (or CLOUDSTACK) section

    # -- building the files ------------------------------------------------------------------------
    def set(self, key: str, value: Any) -> "LabEnv":
        """Set a dotted setting (`mysql.admin_socket`) for the config file."""
        self.settings[key] = value
        return self

    def service(self, name: str, *, host: str = "127.0.0.1", port: int, password: str,
                username: str = "stackbill", database: str = "", management: str = "") -> "LabEnv":
        """Fill the MYSQL/MONGODB/RABBITMQ section (name: mysql, mongodb, rabbitmq)."""
        self.services[name] = Service(host=host, port=port, username=username, password=Secret(password),
                                      database=database or {"mysql": "stackbill", "mongodb": "admin"}.get(name, ""),
                                      management=management)
        return self

    def credentials(self) -> Credentials:
        return Credentials(
            portal_url=self.portal_url, server_ip=self.settings.get("server_ip", "127.0.0.1"),
            generated="Thu Nov 26 10:00:00 UTC 2026",
            mysql=self.services.get("mysql", Service(host="127.0.0.1", port=1, password=Secret("unused-mysql"))),
            mongodb=self.services.get("mongodb", Service(host="127.0.0.1", port=1, password=Secret("unused-mongo"))),
            rabbitmq=self.services.get("rabbitmq", Service(host="127.0.0.1", port=1, password=Secret("unused-rabbit"))),
            nfs_server=self.nfs_server, nfs_path=str(self.settings.get("nfs.path", "/data/stackbill")),
            cloudstack=self.cloudstack,
        )

    def write(self) -> "LabEnv":
        nested: dict[str, Any] = {}
        for key, value in self.settings.items():
            node = nested
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        self.config_path.write_text(yaml.safe_dump(nested, sort_keys=True))
        if self.credentials_file:
            creds_mod.save(self.credentials(), self.credentials_path)
        return self

    # -- running sbops -----------------------------------------------------------------------------
    def sbops(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `python -m sbops ARGS --config C --credentials F` and return the completed process."""
        self.write()
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        argv = [sys.executable, "-m", "sbops", *args, "--config", str(self.config_path),
                "--credentials", str(self.credentials_path)]
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              env=full_env, cwd=REPO)

    def doctor(self, *patterns: str) -> dict[str, dict[str, Any]]:
        """Run doctor on the given check globs; return {check id: its JSON object}."""
        args = ["doctor", "--output", "json"]
        for pattern in patterns:
            args += ["--check", pattern]
        proc = self.sbops(*args)
        assert proc.returncode in (0, 3, 4), f"doctor exited {proc.returncode}: {proc.stderr}"
        return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}

    def check(self, check_id: str) -> dict[str, Any]:
        """Run one check (its requirements are not run) and return its JSON object."""
        return self.doctor(check_id)[check_id]

    def fix(self, name: str, *extra: str) -> subprocess.CompletedProcess:
        return self.sbops("fix", name, "--yes", *extra)

    def installer(self) -> "LabEnv":
        """Keep `sbops install`'s state, logs, downloads and unit files inside this environment."""
        for key in ("state_file", "log_dir", "download_dir", "unit_dir"):
            self.settings.setdefault(f"install.{key}", str(self.root / "install" / key.replace("_file", ".json")))
        # no systemd here to run the exporter's service: its step is tested through the recording runner
        self.settings.setdefault("install.exporter", False)
        return self

    def install(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
        """`sbops install ARGS` (add --yes yourself: without it and without a terminal, install refuses)."""
        return self.installer().sbops("install", *args, env=env, input=input, timeout=timeout)


def status(result: dict[str, Any]) -> tuple[str, str]:
    """A check's (status, reason): what tests assert on, rather than message text."""
    return result["status"], result["reason"]


def finding(result: dict[str, Any]) -> tuple[str, str, str]:
    """A check's (code, status, reason): the catalog finding (sbops.messages) it reported."""
    return result["code"], result["status"], result["reason"]


def fix_json(env: LabEnv, name: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run `sbops fix NAME --yes --output json`; return its exit code (0 fixed, 3 not) and document."""
    proc = env.fix(name, "--output", "json", *extra)
    assert proc.returncode in (0, 3), f"fix {name} exited {proc.returncode}: {proc.stderr}"
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# What the labs do not have, so these checks skip there (with these reasons): a certificate from certbot (the
# labs' are from files), K3s's own kubeconfig, a CloudStack. Each is tested with the real thing in its own file.
NOT_IN_LAB = {"tls.renewal": {"not_applicable"}, "k8s.kubeconfig-mode": {"not_applicable"},
              "cloudstack.reachable": {"not_applicable"}, "cloudstack.api-keys": {"blocked"},
              "cloudstack.simulator": {"not_applicable"}}


def lab_lacks(check_id: str, status: str, reason: str) -> bool:
    """True for a skip the labs are expected to give (NOT_IN_LAB)."""
    return status == "skip" and reason in NOT_IN_LAB.get(check_id, ())
