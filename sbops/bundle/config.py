"""config/: the services' configuration files, sbops's settings and the credentials file with every secret
replaced; and the secrets known on this host (credentials file, settings, kubeconfig, exporter web-config).

Pure: `cnf_includes`, `settings_rows`. I/O: `config_files`, `collect`, `local_secrets`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sbops.secret import MASK, Secret, mask_text

if TYPE_CHECKING:
    from sbops.context import Context

MYSQL = ("/etc/mysql/my.cnf", "/etc/my.cnf")
MONGODB = ("/etc/mongod.conf",)
RABBITMQ = ("/etc/rabbitmq/rabbitmq.conf", "/etc/rabbitmq/rabbitmq-env.conf", "/etc/rabbitmq/advanced.config")
_INCLUDE = re.compile(r"^\s*!(include|includedir)\s+(\S.*?)\s*$", re.M)


def cnf_includes(text: str) -> tuple[list[str], list[str]]:
    """(`!include` files, `!includedir` dirs) of a MySQL option file, in order."""
    files, dirs = [], []
    for kind, target in _INCLUDE.findall(text):
        (files if kind == "include" else dirs).append(target)
    return files, dirs


def settings_rows(items: list[tuple[str, Any, str]]) -> list[dict[str, str]]:
    """`sbops config show`'s rows, secrets shown as the mask."""
    def shown(value: Any) -> str:
        if isinstance(value, Secret):
            return MASK if value else ""
        return str(value)

    return [{"key": k, "value": shown(v), "source": s} for k, v, s in items]


def _mysql_files(first: list[Path]) -> list[Path]:
    seen: list[Path] = []
    queue = list(first)
    while queue and len(seen) < 200:
        path = queue.pop(0)
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        try:
            files, dirs = cnf_includes(path.read_text(errors="replace"))
        except OSError:
            continue
        queue += [path.parent / f for f in files]
        for d in dirs:
            folder = path.parent / d
            if folder.is_dir():
                queue += sorted(p for p in folder.iterdir() if p.suffix in (".cnf", ".conf"))
    return seen


def config_files(ctx: "Context", overrides: dict[str, list[Path]] | None = None) -> dict[str, list[Path]]:
    """group -> the files to copy (those that exist). `overrides` replaces a group's starting files."""
    given = overrides or {}
    if "mysql" in given:
        mysql_start = given["mysql"]
    elif ctx.settings["mysql.defaults_file"]:
        mysql_start = [Path(ctx.settings["mysql.defaults_file"])]
    else:
        mysql_start = [Path(p) for p in MYSQL]
    k3s = Path(ctx.settings["k3s.config_file"])
    k3s_files = [k3s] + (sorted((k3s.parent / "config.yaml.d").glob("*.yaml")) if (k3s.parent / "config.yaml.d").is_dir() else [])
    groups = {
        "mysql": _mysql_files(mysql_start),
        "mongodb": given.get("mongodb", [Path(p) for p in MONGODB]),
        "rabbitmq": given.get("rabbitmq", [Path(p) for p in RABBITMQ]),
        "k3s": given.get("k3s", k3s_files),
    }
    return {g: [p for p in paths if p.is_file()] for g, paths in groups.items()}


def collect(ctx: "Context", put: Callable[[str, bytes], None], overrides: dict[str, list[Path]] | None = None) -> list[str]:
    missing: list[str] = []
    for group, paths in config_files(ctx, overrides).items():
        if not paths:
            missing.append(f"{group}: no configuration file found")
        names: set[str] = set()
        for path in paths:
            name = path.name if path.name not in names else f"{path.parent.name}-{path.name}"
            names.add(name)
            try:
                put(f"config/{group}/{name}", path.read_bytes())
            except OSError as exc:
                missing.append(f"{path}: {exc.strerror or exc}")
    rows = settings_rows(ctx.settings.items())
    put("config/sbops-settings.json", (json.dumps({
        "settings": {r["key"]: {"value": r["value"], "source": r["source"]} for r in rows},
        "credentials": str(ctx.credentials_path) if ctx.credentials_path else None,
        "kubeconfig": str(ctx.kubeconfig_path) if ctx.kubeconfig_path else None}, indent=2) + "\n").encode())
    if ctx.credentials_path is not None:
        try:
            text = Path(ctx.credentials_path).read_text(errors="replace")
        except OSError as exc:
            missing.append(f"{ctx.credentials_path}: {exc.strerror or exc}")
        else:
            put("config/stackbill-credentials.txt", mask_text(text, ctx.secrets()).encode())
    return missing


def local_secrets(ctx: "Context") -> list[str]:
    """The secrets this host's files give sbops: the credentials file's passwords and keys, the settings'
    admin passwords, the kubeconfig's token and client key, the exporter web-config's password hashes and
    TLS key, and the ECR token file."""
    found = [s.reveal() for s in ctx.secrets()]
    found += _kubeconfig_secrets(ctx)
    found += _webconfig_secrets(ctx)
    token_file = ctx.settings["ecr.token_file"]
    if token_file and token_file != "-":
        found += _file_text(Path(token_file))
    return [v for v in dict.fromkeys(found) if v]


def _file_text(path: Path) -> list[str]:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return []
    return [text] if text else []


def _kubeconfig_secrets(ctx: "Context") -> list[str]:
    from sbops import kube

    source = ctx.kubeconfig_path
    if source is None:
        return []
    if isinstance(source, kube.InCluster):
        return _file_text(source.token_file)
    try:
        import yaml

        doc = yaml.safe_load(Path(source).read_text())
    except Exception:  # noqa: BLE001 - an unreadable kubeconfig holds nothing we can search for
        return []
    found: list[str] = []
    for user in (doc or {}).get("users") or []:
        body = (user or {}).get("user") or {}
        for key in ("token", "password", "client-key-data"):
            if body.get(key):
                found.append(str(body[key]))
        if body.get("client-key-data"):
            import base64

            try:
                found.append(base64.b64decode(body["client-key-data"]).decode())
            except (ValueError, UnicodeDecodeError):
                pass
        for key in ("tokenFile", "client-key"):
            if body.get(key):
                found += _file_text(Path(body[key]))
    return found


def _webconfig_secrets(ctx: "Context") -> list[str]:
    path = ctx.settings["exporter.web_config"]
    if not path:
        return []
    try:
        from sbops.exporter import webconfig

        config = webconfig.load(Path(path))
    except Exception:  # noqa: BLE001 - the doctor's exporter checks report a bad web-config; here: nothing known
        return []
    found = list(config.users.values())
    if config.tls is not None:
        found += _file_text(config.tls.key_file)
    return found
