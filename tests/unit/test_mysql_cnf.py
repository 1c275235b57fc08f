"""The option-file chain (sbops.probes.mysql.cnf) and what the mysql-config fix writes, from tables."""

from __future__ import annotations

import pytest

from sbops.probes import mysql as m
from sbops.probes.mysql import cnf as c


@pytest.mark.parametrize("text, entries", [
    ("", []),
    ("# comment\n; another\n\n", []),
    ("[mysqld]\nport = 3306\n", [("group", "mysqld", None), ("option", "port", "3306")]),
    ("[MySQLd]\nskip-name-resolve\n", [("group", "mysqld", None), ("option", "skip_name_resolve", None)]),
    ("loose-skip_host_cache\n", [("option", "skip_host_cache", None)]),
    ("wait_timeout = 28800           # 8 hours\n", [("option", "wait_timeout", "28800")]),
    ("sql_mode = \"A,B\"  # quoted\n", [("option", "sql_mode", "A,B")]),
    ("init_connect = 'SET x=1 # not a comment'\n", [("option", "init_connect", "SET x=1 # not a comment")]),
    ("!includedir /etc/mysql/conf.d/\n!include /etc/x.cnf\n",
     [("includedir", "/etc/mysql/conf.d/", None), ("include", "/etc/x.cnf", None)]),
    ("!bogus\n[broken\n", [("error", "!bogus", None), ("error", "[broken", None)]),
])
def test_parse_cnf(text: str, entries: list[tuple]) -> None:
    assert [(e.kind, e.name, e.value) for e in c.parse_cnf(text)] == entries


DEBIAN = {
    "/etc/mysql/my.cnf": "[client-server]\nsocket = /run/mysqld/mysqld.sock\n!includedir /etc/mysql/conf.d/\n"
                         "!includedir /etc/mysql/mariadb.conf.d/\n",
    "/etc/mysql/conf.d/mysql.cnf": "[mysql]\n",
    "/etc/mysql/conf.d/notes.txt": "ignored: not .cnf\n",
    "/etc/mysql/mariadb.conf.d/50-server.cnf": "[mysqld]\nbind-address = 127.0.0.1\nmax_connections = 151\n",
    "/etc/mysql/mariadb.conf.d/99-stackbill.cnf": "[mysqld]\nbind-address = 0.0.0.0\nskip-host-cache\n",
}


def reader(files: dict[str, str]):
    def read(path: str) -> str | None:
        return files.get(path)

    def listdir(directory: str) -> list[str] | None:
        prefix = directory.rstrip("/") + "/"
        names = [p[len(prefix):] for p in files if p.startswith(prefix) and "/" not in p[len(prefix):]]
        return names if names or any(p.startswith(prefix) for p in files) else None

    return read, listdir


def test_debian_layout_is_followed_in_order() -> None:
    chain = c.read_chain(c.DEFAULT_FILES, *reader(DEBIAN))
    assert chain.files == ["/etc/mysql/my.cnf", "/etc/mysql/conf.d/mysql.cnf",
                           "/etc/mysql/mariadb.conf.d/50-server.cnf", "/etc/mysql/mariadb.conf.d/99-stackbill.cnf"]
    effective = chain.effective(c.mysqld_groups("10.11.6-MariaDB"))
    assert effective["bind_address"].value == "0.0.0.0"  # the later file wins
    assert effective["bind_address"].file.endswith("99-stackbill.cnf")
    assert effective["max_connections"].value == "151"
    assert "socket" in effective  # [client-server] is read by MariaDB's server
    assert "socket" not in chain.effective(c.mysqld_groups("8.0.36"))
    assert chain.problems == []


def test_my_cnf_without_includes_reads_nothing_else() -> None:
    files = dict(DEBIAN, **{"/etc/mysql/my.cnf": "[mysqld]\nport = 3306\n"})
    chain = c.read_chain(c.DEFAULT_FILES, *reader(files))
    assert chain.files == ["/etc/mysql/my.cnf"] and chain.dirs == []
    assert not chain.reads("/etc/mysql/mariadb.conf.d/99-stackbill.cnf")
    assert m.unread_dropins(chain, ["/etc/mysql/mariadb.conf.d"], lambda p: p in files) == [
        "/etc/mysql/mariadb.conf.d/99-stackbill.cnf"]


def test_include_of_a_missing_file_is_a_problem_and_a_loop_stops() -> None:
    files = {"/etc/my.cnf": "!include /etc/missing.cnf\n!include /etc/loop.cnf\n",
             "/etc/loop.cnf": "!include /etc/loop.cnf\n"}
    chain = c.read_chain(["/etc/my.cnf"], *reader(files))
    assert any("missing.cnf" in p for p in chain.problems)
    assert any("deeper" in p for p in chain.problems)


@pytest.mark.parametrize("argv, roots", [
    (["/usr/sbin/mariadbd"], ["/etc/my.cnf", "/etc/mysql/my.cnf", "/root/.my.cnf"]),
    (["/usr/sbin/mariadbd", "--defaults-file=/srv/db/my.cnf", "--user=mysql"], ["/srv/db/my.cnf"]),
    (["mysqld", "--defaults-extra-file=/etc/extra.cnf"], ["/etc/my.cnf", "/etc/mysql/my.cnf", "/etc/extra.cnf",
                                                          "/root/.my.cnf"]),
    (["mysqld", "--no-defaults", "--port=3307"], []),
])
def test_default_files(argv: list[str], roots: list[str]) -> None:
    assert c.default_files(argv) == roots


def test_mysqld_groups() -> None:
    assert c.mysqld_groups("8.0.36") == {"mysqld", "server", "mysqld-8.0"}
    assert {"mariadb", "mariadbd-10.11", "client-server"} <= c.mysqld_groups("10.11.6-MariaDB")


# -- what the fix writes ---------------------------------------------------------------------------------
def files_of(layout: dict[str, str], version: str = "10.11.6-MariaDB", argv: tuple[str, ...] = ()) -> m.Files:
    chain = c.read_chain(c.DEFAULT_FILES, *reader(layout))
    dirs = ["/etc/mysql/mariadb.conf.d", "/etc/mysql/mysql.conf.d"]
    return m.Files(chain, argv, tuple(m.unread_dropins(chain, dirs, lambda p: p in layout)), c.mysqld_groups(version))


def test_target_adopts_the_drop_in_the_server_reads() -> None:
    target = m.choose_target(files_of(DEBIAN), "/etc/mysql/mariadb.conf.d", lambda d: True)
    assert (target.path, target.adopted, target.include_in) == ("/etc/mysql/mariadb.conf.d/99-stackbill.cnf", True, "")


def test_target_includes_the_directory_of_an_unread_drop_in() -> None:
    layout = dict(DEBIAN, **{"/etc/mysql/my.cnf": "[mysqld]\nport = 3306\n"})
    target = m.choose_target(files_of(layout), "/etc/mysql/mariadb.conf.d", lambda d: True)
    assert target.path == "/etc/mysql/mariadb.conf.d/99-stackbill.cnf" and target.adopted
    assert (target.include_in, target.include_dir) == ("/etc/mysql/my.cnf", "/etc/mysql/mariadb.conf.d")


def test_target_new_file_in_an_included_directory() -> None:
    layout = {k: v for k, v in DEBIAN.items() if not k.endswith("99-stackbill.cnf")}
    target = m.choose_target(files_of(layout), "/etc/mysql/mariadb.conf.d", lambda d: True)
    assert (target.path, target.adopted, target.include_in) == ("/etc/mysql/mariadb.conf.d/stackbill.cnf", False, "")


def test_target_blocked_without_any_option_file_or_directory() -> None:
    assert "no option file" in m.choose_target(files_of({}), "/etc/mysql/mariadb.conf.d", lambda d: True).blocker
    layout = {"/etc/mysql/my.cnf": "[mysqld]\n"}
    assert "does not exist" in m.choose_target(files_of(layout), "/etc/mysql/mysql.conf.d", lambda d: False).blocker


def test_file_findings_and_host_cache_from_files() -> None:
    files = files_of(DEBIAN)
    lacking = {r.variable for r in m.file_findings(files, "10.0.0.5")}
    assert "bind_address" not in lacking and "skip_host_cache" not in lacking
    assert {"max_connections", "sql_mode", "skip_name_resolve"} <= lacking
    assert m.with_file_facts({"host_cache_size": "279"}, files)["skip_host_cache"] == "ON"
    bare = files_of({"/etc/mysql/my.cnf": "[mysqld]\n"})
    assert m.with_file_facts({"host_cache_size": "279"}, bare)["skip_host_cache"] == "OFF"
    flag = files_of({"/etc/mysql/my.cnf": "[mysqld]\n"}, argv=("mariadbd", "--skip-host-cache"))
    assert m.with_file_facts({"host_cache_size": "279"}, flag)["skip_host_cache"] == "ON"


def test_later_overrides() -> None:
    layout = dict(DEBIAN, **{"/etc/mysql/mariadb.conf.d/zz-local.cnf": "[mysqld]\nmax_connections = 50\n"})
    found = m.later_overrides(files_of(layout), "/etc/mysql/mariadb.conf.d/99-stackbill.cnf", ["max_connections"])
    assert found == ["/etc/mysql/mariadb.conf.d/zz-local.cnf:2 sets max_connections"]


@pytest.mark.parametrize("before, lines, after", [
    ("[mysqld]\nsql_mode = A\nport = 1\n", {"sql_mode": "sql_mode = B"}, "[mysqld]\nsql_mode = B\nport = 1\n"),
    ("[mysqld]\nport = 1\n\n[client]\nx = 1\n", {"skip_host_cache": "skip-host-cache"},
     "[mysqld]\nport = 1\nskip-host-cache\n\n[client]\nx = 1\n"),
    ("[client]\nsql_mode = A\n", {"sql_mode": "sql_mode = B"}, "[client]\nsql_mode = A\n\n[mysqld]\nsql_mode = B\n"),
    ("", {"skip_name_resolve": "skip-name-resolve"}, "[mysqld]\nskip-name-resolve\n"),
    ("# keep me\n[mysqld]\nskip_name_resolve = 0  # no\n", {"skip_name_resolve": "skip-name-resolve"},
     "# keep me\n[mysqld]\nskip-name-resolve\n"),
])
def test_merge_cnf(before: str, lines: dict[str, str], after: str) -> None:
    assert m.merge_cnf(before, lines) == after
    assert m.merge_cnf(after, lines) == after  # a second run changes nothing


def test_with_includedir() -> None:
    assert c.with_includedir("[mysqld]\nport = 1", "/d") == "[mysqld]\nport = 1\n!includedir /d\n"
    chain = c.read_chain(["/my.cnf"], *reader({"/my.cnf": c.with_includedir("", "/d"), "/d/s.cnf": "[mysqld]\n"}))
    assert chain.reads("/d/s.cnf")


@pytest.mark.parametrize("argv, on", [
    (("/usr/sbin/mariadbd", "--skip-host-cache"), True),
    (("/usr/sbin/mariadbd", "--skip_host_cache"), True),
    (("/usr/sbin/mariadbd", "--loose-skip-host-cache=1"), True),
    (("/usr/sbin/mariadbd", "--skip-host-cache=0"), False),
    (("/usr/sbin/mariadbd", "--skip-name-resolve"), False),
    (("/usr/sbin/mariadbd",), False),
])
def test_flags_on_the_command_line(argv: tuple[str, ...], on: bool) -> None:
    assert files_of({"/etc/mysql/my.cnf": "[mysqld]\n"}, argv=argv).sets("skip_host_cache") is on


@pytest.mark.parametrize("files, argv", [
    ({"/run/mysqld/mysqld.pid": "42\n", "/proc/42/cmdline": "/usr/sbin/mariadbd\0--defaults-file=/x/my.cnf\0"},
     ["/usr/sbin/mariadbd", "--defaults-file=/x/my.cnf"]),
    ({"/run/mysqld/mysqld.pid": "42\n", "/proc/42/cmdline": "/usr/bin/python3\0app.py\0"}, None),  # a reused pid
    ({"/run/mysqld/mysqld.pid": "not a pid\n"}, None),
    ({}, None),
])
def test_server_argv(files: dict[str, str], argv: list[str] | None) -> None:
    def denied(path: object) -> str:
        raise PermissionError(13, "Permission denied")

    assert m.server_argv("/run/mysqld/mysqld.pid", lambda p: files.get(str(p))) == argv
    assert m.server_argv("/run/mysqld/mysqld.pid", denied) is None
