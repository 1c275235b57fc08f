"""The two extra uninstall levels the upstream `uninstall.sh --delete-db` folds in: purging the database and
NFS packages (`--purge-packages`) and deleting their data directories (`--delete-data-dirs`).

Measured before anything is asked: which of the packages (setting uninstall.packages, dpkg-query patterns)
are installed, with their installed sizes, from the dpkg database (read only); and for each data directory
(setting uninstall.data_dirs, plus nfs.path) its bytes, its file count and the processes that use it.

Safety, decided here (pure: path_problem) and checked again right before a deletion (delete_dir):
- a directory must be strictly below one of uninstall.allowed_roots, never a system directory itself, and
  reached without a symlink anywhere on its path (its real path is its path);
- a directory a running process uses (its working directory, an open file or its executable is inside) is
  refused: stop the server first. The measure names the process.
The purge runs `env DEBIAN_FRONTEND=noninteractive <uninstall.apt_command> purge -y NAMES` with the exact
names measured, never a pattern.
"""

from __future__ import annotations

import os
import shlex
import shutil
from typing import TYPE_CHECKING, Any, Iterable

from sbops.probes.rabbitmq import human_bytes
from sbops.probes.system import APT_ENV

if TYPE_CHECKING:
    from sbops.context import Context

# Never deleted whatever the settings say: the file system's own directories.
PROTECTED = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                       "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/log", "/data",
                       "/usr/local", "/var/tmp", "/mnt", "/media"})
DPKG_FORMAT = "-f=${Package}\t${Status}\t${Version}\t${Installed-Size}\n"


# -- pure ------------------------------------------------------------------------------------------------
def split_list(value: str, sep: str | None = None) -> list[str]:
    return [part.strip() for part in (value.split(sep) if sep else value.split()) if part.strip()]


def dpkg_query_argv(command: str, patterns: Iterable[str]) -> list[str]:
    return [*shlex.split(command), "-W", DPKG_FORMAT, *patterns]


def parse_packages(text: str) -> list[dict[str, Any]]:
    """Installed packages from dpkg_query_argv's output: [{name, version, kib}]. Removed-but-not-purged ones
    (`deinstall ok config-files`) are listed with installed False: a purge still removes their configuration."""
    found = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or not parts[0].strip():
            continue
        status = parts[1].strip()
        if status.endswith(" not-installed"):
            continue
        size = parts[3].strip()
        found.append({"name": parts[0].split(":")[0].strip(), "version": parts[2].strip(),
                      "kib": int(size) if size.isdigit() else None, "installed": status.endswith(" installed"),
                      "status": status})
    return sorted(found, key=lambda p: p["name"])


def purge_argv(command: str, names: Iterable[str]) -> list[str]:
    return [*APT_ENV, *shlex.split(command), "purge", "-y", "-q", *names]


def path_problem(path: str, roots: Iterable[str], real: str | None = None) -> str:
    """Why `path` may not be deleted, or ''. `real` is its resolved path (os.path.realpath) when it exists."""
    if not path.startswith("/") or os.path.normpath(path) != path.rstrip("/") or path in PROTECTED:
        return f"{path} is not a data directory sbops may delete (a system directory, or not a normal absolute path)"
    clean = [os.path.normpath(r) for r in roots if r.startswith("/")]
    if not any(path != root and path.startswith(root.rstrip("/") + "/") for root in clean):
        return f"{path} is outside the allowed roots ({', '.join(clean) or 'none'}; setting uninstall.allowed_roots)"
    if real is not None and real != path:
        return f"{path} leads elsewhere through a symlink ({real}): sbops deletes only the directory itself"
    return ""


def package_text(package: dict[str, Any]) -> str:
    size = human_bytes(package["kib"] * 1024) if package.get("kib") is not None else "size unknown"
    state = "" if package["installed"] else ", only its configuration is left"
    return f"{package['name']} {package['version']} ({size}{state})"


def dir_text(entry: dict[str, Any]) -> str:
    files = entry.get("files")
    return f"{human_bytes(entry.get('bytes'))} in {files} file{'s' if files != 1 else ''}"


# -- I/O -------------------------------------------------------------------------------------------------
def observe_packages(ctx: "Context") -> tuple[list[dict[str, Any]], str]:
    """(the measured packages, error). dpkg-query exits 1 when a pattern matches nothing and still lists the
    others; no output at all with another failure is an error."""
    argv = dpkg_query_argv(str(ctx.settings["uninstall.dpkg_query_command"]),
                           split_list(str(ctx.settings["uninstall.packages"])))
    result = ctx.runner.run(argv, timeout=60)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not result.stdout.strip()
                                           and "no packages found" not in result.stderr):
        return [], f"{argv[0]}: {result.one_line_error()}"
    return parse_packages(result.stdout), ""


def data_dirs(ctx: "Context") -> list[str]:
    wanted = split_list(str(ctx.settings["uninstall.data_dirs"]), ":") + [str(ctx.settings["nfs.path"])]
    return list(dict.fromkeys(os.path.normpath(p) for p in wanted))


def allowed_roots(ctx: "Context") -> list[str]:
    return split_list(str(ctx.settings["uninstall.allowed_roots"]), ":")


def measure_dir(path: str) -> dict[str, Any]:
    """{path, exists, real, is_dir, bytes, files, error}: a walk that never follows a symlink."""
    entry: dict[str, Any] = {"path": path, "exists": os.path.lexists(path)}
    if not entry["exists"]:
        return entry
    entry["real"] = os.path.realpath(path)
    entry["is_dir"] = os.path.isdir(path) and not os.path.islink(path)
    if not entry["is_dir"]:
        return entry
    total, files, errors = 0, 0, []
    for top, dirs, names in os.walk(path, onerror=lambda exc: errors.append(exc)):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
                files += 1
            except OSError as exc:
                errors.append(exc)
    entry.update(bytes=total, files=files)
    if errors:
        entry["error"] = f"{len(errors)} entr{'y' if len(errors) == 1 else 'ies'} unreadable ({errors[0]})"
    return entry


def _inside(candidate: str | None, path: str) -> bool:
    return bool(candidate) and (candidate == path or str(candidate).startswith(path.rstrip("/") + "/"))


def holders(paths: Iterable[str]) -> dict[str, list[str]]:
    """For each directory, the processes using something inside it: "mysqld (pid 812, its working directory)"."""
    import psutil

    wanted = [os.path.realpath(p) for p in paths]
    found: dict[str, list[str]] = {p: [] for p in wanted}
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.info["pid"] == me:
            continue
        uses: dict[str, list[str]] = {}
        try:
            cwd, exe = proc.cwd(), proc.exe()
            opened = [f.path for f in proc.open_files()]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:  # not root: only this user's processes are seen (sbops runs as root)
            continue
        for path in wanted:
            how = [w for w, hit in (("its working directory", _inside(cwd, path)), ("its executable", _inside(exe, path)),
                                    ("an open file", any(_inside(f, path) for f in opened))) if hit]
            if how:
                uses[path] = how
        for path, how in uses.items():
            found[path].append(f"{proc.info['name']} (pid {proc.info['pid']}, {', '.join(how)})")
    return {p: found[os.path.realpath(p)] for p in paths}


def observe_dirs(ctx: "Context") -> list[dict[str, Any]]:
    entries = [measure_dir(path) for path in data_dirs(ctx)]
    present = [e["path"] for e in entries if e.get("is_dir")]
    used = holders(present) if present else {}
    roots = allowed_roots(ctx)
    for entry in entries:
        entry["used_by"] = used.get(entry["path"], [])
        entry["problem"] = path_problem(entry["path"], roots, entry.get("real")) if entry["exists"] else ""
        if entry["exists"] and not entry.get("is_dir") and not entry["problem"]:
            entry["problem"] = f"{entry['path']} is not a directory"
    return entries


# -- apply -----------------------------------------------------------------------------------------------
class Refused(Exception):
    """A deletion sbops refuses when it looks again right before it (one line for the report)."""


def purge(ctx: "Context", names: tuple[str, ...]) -> None:
    argv = purge_argv(str(ctx.settings["uninstall.apt_command"]), names)
    result = ctx.runner.run(argv, timeout=1800)
    if not result.ok:
        raise Refused(f"{shlex.join(argv)}: {result.one_line_error()}")


def delete_dir(ctx: "Context", path: str) -> None:
    """Remove `path` after checking again what the plan checked: allowed, no symlink, nobody using it."""
    entry = measure_dir(path)
    if not entry["exists"]:
        return
    problem = path_problem(path, allowed_roots(ctx), entry["real"]) or \
        ("" if entry["is_dir"] else f"{path} is not a directory")
    if problem:
        raise Refused(problem)
    users = holders([path])[path]
    if users:
        raise Refused(f"{path} is in use by {'; '.join(users)}: stop it first")
    shutil.rmtree(path)  # does not follow symlinks inside (fd-based on Linux)
