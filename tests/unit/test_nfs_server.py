"""`exportfs -v` parsing, the server judgement and the directory judgement, from tables."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes import nfs
from sbops.probes.nfs import Active, judge_directory, judge_server, parse_exportfs, same_clients

P = "/data/stackbill"

# Real output of nfs-utils 2.6.2's `exportfs -v` (short path on one line; long path wraps; <world>).
REAL = (
    "/tmp/x        \t10.42.0.0/16(sync,wdelay,hide,no_subtree_check,sec=sys,rw,root_squash,no_all_squash)\n"
    "/tmp/tmp.JeRKzpMHVQ/data\n"
    "\t\t10.42.0.0/16(sync,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash)\n"
    "/tmp/tmpmb5e9_ik/data/stackbill\n"
    "\t\t<world>(sync,wdelay,hide,no_subtree_check,sec=sys,rw,no_root_squash,no_all_squash)\n"
)


def test_parse_exportfs_real_output():
    got = parse_exportfs(REAL)
    assert [(a.path, a.client) for a in got] == [
        ("/tmp/x", "10.42.0.0/16"), ("/tmp/tmp.JeRKzpMHVQ/data", "10.42.0.0/16"),
        ("/tmp/tmpmb5e9_ik/data/stackbill", "*"),
    ]
    assert "no_root_squash" in got[1].options and "rw" in got[0].options


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("\n\n", []),
    ("/a\t10.0.0.1(rw)\n/a\t10.0.0.2(ro)\n", [("/a", "10.0.0.1"), ("/a", "10.0.0.2")]),
    ("/my\\040share\t<world>(ro)\n", [("/my share", "*")]),
    ("/b\thost.example.com\n", [("/b", "host.example.com")]),  # plain `exportfs` (no -v): no options
])
def test_parse_exportfs(text, expected):
    assert [(a.path, a.client) for a in parse_exportfs(text)] == expected


LISTENERS = {"addresses": ["0.0.0.0"], "processes": []}


def active(*clients, path=P):
    return [Active(path, c, ("rw",)) for c in clients]


@pytest.mark.parametrize("listening, ok, error, actives, file_clients, status, reason, fix, code", [
    (True, True, "", active("10.42.0.0/16"), ["10.42.0.0/16"], Status.OK, Reason.NONE, None, "SB5030"),
    (True, True, "", active("10.42.0.0/16", path=P + "/"), ["10.42.0.0/16"], Status.OK, Reason.NONE, None, "SB5030"),
    (False, False, "", [], None, Status.FAIL, Reason.NOT_RUNNING, None, "SB5031"),
    (True, False, "exportfs: command not found", [], None, Status.FAIL, Reason.MISSING, None, "SB5032"),
    (True, False, "exportfs: permission denied", [], None, Status.FAIL, Reason.NO_ACCESS, None, "SB5032"),
    (True, True, "", [], ["10.42.0.0/16"], Status.FAIL, Reason.MISCONFIGURED, "nfs-export", "SB5033"),
    (True, True, "", active("10.42.0.0/16", path="/other"), None, Status.FAIL, Reason.MISCONFIGURED, "nfs-export", "SB5033"),
    # the file says the pod network, the kernel still exports to everyone: edited but not re-exported
    (True, True, "", active("*"), ["10.42.0.0/16"], Status.FAIL, Reason.MISCONFIGURED, "nfs-export", "SB5034"),
    # hostnames may print canonicalised: no staleness claim then
    (True, True, "", active("pods.example.com"), ["pods"], Status.OK, Reason.NONE, None, "SB5030"),
    (True, True, "", active("10.42.0.0/16"), None, Status.OK, Reason.NONE, None, "SB5030"),  # no file: server-side only
])
def test_judge_server(listening, ok, error, actives, file_clients, status, reason, fix, code):
    result = judge_server(listening, 2049, LISTENERS, ok, error, actives, P, file_clients)
    assert (result.code, result.status, result.reason, result.fix) == (code, status, reason, fix), result.summary


def d(**kw):
    base = {"path": P, "exists": True, "is_dir": True, "writable": True, "free_gb": 50.0, "mode": "0o777"}
    return {**base, **kw}


@pytest.mark.parametrize("info, status, reason, code", [
    (d(), Status.OK, Reason.NONE, "SB5020"),
    ({"path": P, "exists": False}, Status.FAIL, Reason.MISSING, "SB5021"),
    (d(is_dir=False), Status.FAIL, Reason.MISCONFIGURED, "SB5022"),
    (d(writable=False, write_error="EROFS: Read-only file system"), Status.FAIL, Reason.ACCESS_DENIED, "SB5024"),
    (d(writable=False, write_error="EACCES: Permission denied", as_root=False), Status.FAIL, Reason.NO_ACCESS, "SB5023"),
    (d(writable=False, write_error="EACCES: Permission denied", as_root=True), Status.FAIL, Reason.ACCESS_DENIED, "SB5024"),
    (d(free_gb=3.2), Status.WARN, Reason.DEGRADED, "SB5025"),
    (d(free_gb=10.0), Status.OK, Reason.NONE, "SB5020"),
])
def test_judge_directory(info, status, reason, code):
    result = judge_directory(info, 10)
    assert (result.code, result.status, result.reason) == (code, status, reason)


@pytest.mark.parametrize("wanted, live, same", [
    (["10.42.0.0/16"], ["10.42.0.0/16"], True),
    (["10.42.0.0/255.255.0.0"], ["10.42.0.0/16"], True),
    (["10.1.2.3"], ["10.1.2.3"], True),
    (["*"], ["*"], True),
    (["10.42.0.0/16"], ["*"], False),
    (["10.42.0.0/16", "10.1.2.3"], ["10.42.0.0/16"], False),
    (["localhost"], ["localhost"], None),  # hostnames: exportfs may canonicalise them, so no claim
])
def test_same_clients(wanted, live, same):
    assert same_clients(wanted, live) is same


@pytest.mark.parametrize("listener, server, expected", [
    ("0.0.0.0", "10.99.4.1", True),
    ("::", "10.99.4.1", True),
    ("10.99.4.1", "10.99.4.1", True),
    ("10.99.7.1", "10.99.4.1", False),  # another address's nfsd (another lab, another interface) serves not ours
    ("127.0.0.1", "192.0.2.10", False),
    ("127.0.0.1", "nfs.example.com", True),  # a name: cannot tell, count it
])
def test_a_listener_serves_the_nfs_address_only_if_wildcard_or_the_same(listener: str, server: str,
                                                                         expected: bool) -> None:
    assert nfs.serves(listener, server) is expected
