"""K3s's own files on the host: the kubeconfig it writes (/etc/rancher/k3s/k3s.yaml, cluster-admin credentials)
and the settings that decide the mode K3s gives it at each start.

K3s rewrites its kubeconfig every time it starts, with the mode `write-kubeconfig-mode` names (0600 when
nothing names one). That mode comes from, later winning: /etc/rancher/k3s/config.yaml, the drop-ins in
config.yaml.d/*.yaml, the environment (K3S_KUBECONFIG_MODE in the unit's k3s.service.env) and the unit's
ExecStart flags (the upstream installer passes `--write-kubeconfig-mode 644` there). So the check reads all of
them, and a chmod alone is no fix: config.yaml must say 0600 too, and a wider mode on the command line must go.

Observation (observe_kubeconfig) is I/O; parse_mode, unit_flags, config_mode, env_mode, judge_kubeconfig_mode
and with_kubeconfig_mode are pure. plan_kubeconfig_mode is the fix `kubeconfig-mode`.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sbops.diff import file_diff
from sbops.messages import k8s as msg
from sbops.model import Change, Plan, Result
from sbops.runner import display

if TYPE_CHECKING:
    from sbops.context import Context

KEY = "write-kubeconfig-mode"
ENV_KEY = "K3S_KUBECONFIG_MODE"
SECURE = "0600"
PRIVATE_BITS = 0o077  # any group or other permission exposes cluster-admin credentials


# -- pure --------------------------------------------------------------------------------------------
def parse_mode(text: str | None) -> int | None:
    """K3s's reading of a mode: octal digits (`644`, `0644`, `0o644` is not accepted by K3s), else None."""
    if text is None:
        return None
    value = str(text).strip().strip("'\"")
    if not re.fullmatch(r"[0-7]{1,4}", value):
        return None
    return int(value, 8)


def too_open(mode_text: str | None) -> bool:
    """Whether a configured mode lets anyone but the owner at the file; an unparsable one counts as open
    (K3s refuses to start on it, and nobody can tell what was meant)."""
    mode = parse_mode(mode_text)
    return mode is None or bool(mode & PRIVATE_BITS)


def unit_flags(unit: str | None) -> dict[str, list[str]]:
    """The `--flag value` / `--flag=value` pairs of a unit's `ExecStart=... k3s server ...` line."""
    flags: dict[str, list[str]] = {}
    for line in (unit or "").replace("\\\n", " ").splitlines():  # systemd joins lines ending in a backslash
        if not line.startswith("ExecStart="):
            continue
        text = line[len("ExecStart="):]
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        i = 0
        while i < len(words):
            word = words[i]
            if word.startswith("--"):
                key, eq, value = word[2:].partition("=")
                if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
                    value, i = words[i + 1], i + 1
                flags.setdefault(key, []).append(value)
            i += 1
    return flags


def _mapping(text: str | None, where: str) -> Any:
    """The YAML node of a K3s config file (None when empty); ValueError naming the file when it is not a mapping."""
    import yaml

    if not text or not text.strip():
        return None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if root is None:
        return None
    if not isinstance(root, yaml.MappingNode):
        raise ValueError(f"{where}: not a mapping of K3s settings")
    return root


def config_mode(text: str | None, where: str = "config.yaml") -> str | None:
    """The `write-kubeconfig-mode` of a K3s config file, as written (the scalar's text: YAML 1.1 would read an
    unquoted 0644 as the number 420, K3s reads the text), None when it has none. ValueError when unreadable."""
    import yaml

    root = _mapping(text, where)
    if root is None:
        return None
    found = None
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == KEY:
            if not isinstance(value, yaml.ScalarNode):
                raise ValueError(f"{where}: {KEY} is not a single value")
            found = value.value
    return found


def env_mode(text: str | None) -> str | None:
    """K3S_KUBECONFIG_MODE of a systemd EnvironmentFile (k3s.service.env), None when absent."""
    found = None
    for line in (text or "").splitlines():
        name, eq, value = line.strip().partition("=")
        if eq and name.strip() == ENV_KEY:
            found = value.strip().strip("'\"")
    return found


def sources(config: str | None, config_path: str, dropins: list[tuple[str, str]], env: str | None, env_path: str,
            unit: str | None, unit_path: str) -> list[dict[str, str]]:
    """Every place that names the kubeconfig's mode, in K3s's order (the last one wins): [{where, kind, value}].
    ValueError when a config file cannot be read as K3s's configuration."""
    found = []
    value = config_mode(config, config_path)
    if value is not None:
        found.append({"where": config_path, "kind": "config", "value": value})
    for path, text in dropins:
        value = config_mode(text, path)
        if value is not None:
            found.append({"where": path, "kind": "dropin", "value": value})
    value = env_mode(env)
    if value is not None:
        found.append({"where": f"{env_path} ({ENV_KEY})", "kind": "env", "value": value})
    for value in unit_flags(unit).get(KEY, []):
        found.append({"where": f"{unit_path} (ExecStart --{KEY})", "kind": "unit", "value": value})
    return found


def judge_kubeconfig_mode(facts: dict[str, Any]) -> Result:
    """k8s.kubeconfig-mode from observe_kubeconfig's facts. Pure.

    facts: path, exists, error (could not look), mode (int), uid, owner, symlink, sources (see `sources`),
    config_error (a config file K3s cannot read)."""
    path = facts["path"]
    details = {k: v for k, v in facts.items() if k != "mode"}
    if facts.get("error"):
        return msg.KUBECONFIG_UNOBSERVABLE.result(path=path, error=facts["error"], details=details)
    if not facts.get("exists"):
        return msg.KUBECONFIG_ABSENT.result(path=path, details=details)
    mode = int(facts["mode"])
    details["mode"] = f"{mode:04o}"
    if facts.get("config_error"):
        return msg.K3S_CONFIG_INVALID.result(error=facts["config_error"], details=details)
    open_sources = [s for s in facts.get("sources", []) if too_open(s["value"])]
    if mode & PRIVATE_BITS:
        who = "every local user" if mode & 0o007 else f"group {facts.get('group', facts.get('gid'))}"
        return msg.KUBECONFIG_READABLE.result(path=path, mode=f"{mode:04o}", who=who, details=details)
    if facts.get("uid") != 0:
        return msg.KUBECONFIG_NOT_ROOTS.result(path=path, owner=facts.get("owner", str(facts.get("uid"))),
                                               details=details)
    if open_sources:
        last = open_sources[-1]
        return msg.KUBECONFIG_MODE_NOT_PERSISTENT.result(path=path, mode=f"{mode:04o}", where=last["where"],
                                                         value=last["value"], details=details)
    kept = (f"{facts['sources'][-1]['where']} says {facts['sources'][-1]['value']}" if facts.get("sources")
            else "no setting widens it; K3s's default is 0600")
    return msg.KUBECONFIG_PRIVATE.result(path=path, mode=f"{mode:04o}", kept=kept, details=details)


_KEY_LINE = re.compile(r"""^(?P<q>["']?)write-kubeconfig-mode(?P=q)\s*:""")


def with_kubeconfig_mode(text: str | None, mode: str = SECURE, where: str = "config.yaml") -> str:
    """config.yaml's text with `write-kubeconfig-mode: "<mode>"`: the existing top-level line replaced, or one
    line appended; every other line (comments too) kept as it is. ValueError (changing nothing) when the file
    is not a block mapping sbops can edit line by line, or when the result would read differently."""
    import yaml

    old = text or ""
    root = _mapping(old, where)
    if root is not None and root.flow_style:
        raise ValueError(f"{where}: a flow-style mapping ({{...}}); edit it by hand")
    lines = old.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
    new_line = f'{KEY}: "{mode}"\n'
    if len(hits) > 1:
        raise ValueError(f"{where}: {KEY} is set {len(hits)} times; leave one")
    if hits:
        i = hits[0]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following[:1] in (" ", "\t") and following.strip() and not following.lstrip().startswith("#"):
            raise ValueError(f"{where}: {KEY}'s value spans several lines; edit it by hand")
        lines[i] = new_line
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(new_line)
    new = "".join(lines)
    before = yaml.safe_load(old) if old.strip() else {}
    after = yaml.safe_load(new)
    wanted = {**(before or {}), KEY: mode}
    if not isinstance(after, dict) or after != wanted or config_mode(new, where) != mode:
        raise ValueError(f"{where}: the edited file would not read as intended; edit it by hand")
    return new


# -- I/O ---------------------------------------------------------------------------------------------
def paths(ctx: "Context") -> dict[str, Path]:
    unit = str(ctx.settings["k3s.unit_file"]) or str(Path(str(ctx.settings["install.unit_dir"])) / "k3s.service")
    config = Path(str(ctx.settings["k3s.config_file"]))
    return {"kubeconfig": Path(str(ctx.settings["k3s.kubeconfig"])), "config": config,
            "dropins": config.with_name(config.name + ".d"), "unit": Path(unit),
            "env": Path(unit).with_name(Path(unit).name + ".env")}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def observe_kubeconfig(ctx: "Context") -> dict[str, Any]:
    """The kubeconfig's mode and owner, and every setting of its mode K3s will apply at its next start."""
    where = paths(ctx)
    path = where["kubeconfig"]
    facts: dict[str, Any] = {"path": str(path), "exists": False}
    try:
        info = os.stat(path)
        facts["symlink"] = path.is_symlink()
    except FileNotFoundError:
        return facts
    except OSError as exc:
        facts["error"] = exc.strerror or str(exc)
        return facts
    facts.update(exists=True, mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid,
                 owner=_user(info.st_uid), group=_group(info.st_gid), regular=stat.S_ISREG(info.st_mode))
    try:
        dropins = sorted((str(p), p.read_text()) for p in where["dropins"].glob("*.yaml")) \
            if where["dropins"].is_dir() else []
        facts["sources"] = sources(_read(where["config"]), str(where["config"]), dropins, _read(where["env"]),
                                   str(where["env"]), _read(where["unit"]), str(where["unit"]))
    except ValueError as exc:
        facts["config_error"] = str(exc)
    except OSError as exc:
        facts["error"] = f"cannot read K3s's settings: {exc.filename}: {exc.strerror}"
    return facts


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def probe_kubeconfig_mode(ctx: "Context") -> Result:
    """k8s.kubeconfig-mode: K3s's kubeconfig is 0600 root's, and K3s will keep it so at its next start."""
    return judge_kubeconfig_mode(observe_kubeconfig(ctx))


# -- fix ---------------------------------------------------------------------------------------------
def plan_kubeconfig_mode(ctx: "Context") -> Plan:
    """chmod 600 (and chown root) the kubeconfig now, and make config.yaml say 0600 so that K3s keeps it so.
    A wider mode on the unit's command line, its environment file or a config.yaml.d drop-in is not edited:
    the plan refuses and says what to change (sbops does not rewrite K3s's unit)."""
    where = paths(ctx)
    facts = observe_kubeconfig(ctx)
    path = where["kubeconfig"]
    if facts.get("error"):
        return Plan(blockers=(f"cannot look at {path}: {facts['error']}",))
    if not facts["exists"]:
        return Plan(blockers=(f"no K3s kubeconfig at {path} (setting k3s.kubeconfig): nothing to protect",))
    if facts.get("symlink") or not facts.get("regular"):
        return Plan(blockers=(f"{path} is not a regular file (a symlink or special file): sbops changes only the "
                              "file K3s writes; look at it by hand",))
    if facts.get("config_error"):
        return Plan(blockers=(f"{facts['config_error']}: K3s cannot read it either; repair it first",))
    blockers = []
    for source in facts["sources"]:
        if source["kind"] != "config" and too_open(source["value"]):
            blockers.append(_manual(source))
    if blockers:
        return Plan(blockers=tuple(blockers))
    changes = []
    mode, uid = facts["mode"], facts["uid"]
    if mode & PRIVATE_BITS or uid != 0:
        argvs = ([["chown", "root:root", str(path)]] if uid != 0 else []) + [["chmod", "600", str(path)]]

        def protect() -> None:
            for argv in argvs:
                result = ctx.runner.run(argv, timeout=30)
                if not result.ok:
                    raise RuntimeError(f"{display(argv)} failed: {result.one_line_error()}")

        owner = f", owner {facts['owner']} -> root" if uid != 0 else ""
        changes.append(Change(f"make {path} readable by root only (mode {mode:04o} -> 0600{owner}); sbops and K3s "
                              "run as root and keep their access", tuple(display(a) for a in argvs), protect))
    config_value = next((s["value"] for s in facts["sources"] if s["kind"] == "config"), None)
    if (too_open(config_value) if config_value is not None else bool(changes)):
        config = where["config"]
        old = _read(config)
        try:
            new = with_kubeconfig_mode(old, SECURE, str(config))
        except ValueError as exc:
            return Plan(blockers=(str(exc),))
        if not config.parent.is_dir():
            return Plan(blockers=(f"{config.parent} does not exist: is K3s installed here?",))

        def persist() -> None:
            ctx.runner.write_file(config, new, 0o600)

        now = f"now {config_value}" if config_value is not None else "now unset"
        changes.append(Change(f"set {KEY} to {SECURE} in {config} ({now}) so that K3s writes the kubeconfig 0600 at "
                              f"every start; takes effect at K3s's next start, no restart needed"
                              + (f"; previous file kept as {config.name}.bak" if old is not None else ""),
                              (), persist, (file_diff(str(config), old, new),)))
    if not changes:
        return Plan(nothing_to_do=f"{path} is 0600 root's and nothing tells K3s to widen it")
    return Plan(changes=tuple(changes))


def _manual(source: dict[str, str]) -> str:
    value, where = source["value"], source["where"]
    if source["kind"] == "unit":
        return (f"{where} gives --{KEY} {value}, which overrides config.yaml at every start: sbops does not edit "
                f"K3s's unit. Remove that flag from ExecStart (or make it --{KEY} 600), run `systemctl "
                "daemon-reload`, then run `sbops fix kubeconfig-mode` again (no K3s restart needed)")
    if source["kind"] == "env":
        return (f"{where} is {value}: delete that line (or make it 600), then run `sbops fix kubeconfig-mode` again")
    return (f"{where} sets {KEY}: {value}, which overrides config.yaml: remove that line (or make it \"0600\"), "
            "then run `sbops fix kubeconfig-mode` again")
