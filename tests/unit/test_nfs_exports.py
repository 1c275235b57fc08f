"""The exports(5) parser, the export judgement and the exports-file rewrite, from tables."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes.nfs import (
    Client, covers, desired_line, effective_options, judge_export, parse_exports, rewrite_exports,
)

P = "/data/stackbill"
POD = "10.42.0.0/16"
GOOD = f"{P} {POD}(rw,sync,no_subtree_check,no_root_squash)"


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("# only a comment\n\n", []),
    (f"{GOOD}\n", [(P, [(POD, ("rw", "sync", "no_subtree_check", "no_root_squash"))], 1, 1)]),
    ("/a host1(rw) host2(ro,sync)\n", [("/a", [("host1", ("rw",)), ("host2", ("ro", "sync"))], 1, 1)]),
    ("/a *(rw)\n", [("/a", [("*", ("rw",))], 1, 1)]),
    ("/a\n", [("/a", [("*", ())], 1, 1)]),  # no client: everyone, default options
    ("/a host1\n", [("/a", [("host1", ())], 1, 1)]),
    ("/a host1 (rw)\n", [("/a", [("host1", ()), ("*", ("rw",))], 1, 1)]),  # the classic space mistake
    ("/a \\\n   10.0.0.0/8(rw) \\\n   host2(ro)\n/b h(rw)\n",
     [("/a", [("10.0.0.0/8", ("rw",)), ("host2", ("ro",))], 1, 3), ("/b", [("h", ("rw",))], 4, 4)]),
    ('"/data/my share" 10.0.0.1(rw)\n', [("/data/my share", [("10.0.0.1", ("rw",))], 1, 1)]),
    ("/data/my\\040share 10.0.0.1(rw)\n", [("/data/my share", [("10.0.0.1", ("rw",))], 1, 1)]),
    ("  /a h(rw)   # trailing comment\n", [("/a", [("h", ("rw",))], 1, 1)]),
    ("#/commented h(rw)\n/real h(rw)\n", [("/real", [("h", ("rw",))], 2, 2)]),
    ("/a @netgroup(rw) *.example.com(ro) [fd00::]/64(rw)\n",
     [("/a", [("@netgroup", ("rw",)), ("*.example.com", ("ro",)), ("[fd00::]/64", ("rw",))], 1, 1)]),
])
def test_parse_exports(text, expected):
    got = [(e.path, [(c.host, c.options) for c in e.clients], e.line, e.end_line) for e in parse_exports(text)]
    assert got == expected


@pytest.mark.parametrize("text", ["/a h( rw , sync )\n", "/a 10.1.0.0/16( rw,sync)\n", "/a h(rw)#c\n", "/a h(rw\n"])
def test_parse_syntax_errors_exportfs_rejects(text):
    """Each of these makes the real exportfs say 'syntax error: bad option list' (tried on nfs-utils 2.6.2)."""
    (entry,) = parse_exports(text)
    assert entry.error
    assert judge(text, "/a").reason is Reason.MISCONFIGURED


def test_parse_default_options_and_comment():
    (entry,) = parse_exports("/a -rw,sync h1 h2(ro)  # note\n")
    assert entry.defaults == ("rw", "sync")
    assert entry.clients == (Client("h1", ()), Client("h2", ("ro",)))
    assert entry.comment == "# note"


@pytest.mark.parametrize("options, defaults, rw, sync, squash", [
    ((), (), False, True, True),  # nfs-utils defaults: ro, sync, root_squash
    (("rw",), (), True, True, True),
    (("rw", "async"), (), True, False, True),
    (("rw", "no_root_squash"), (), True, True, False),
    (("ro",), ("rw",), False, True, True),  # the client's own option wins over '-rw'
    ((), ("rw", "no_root_squash"), True, True, False),
    (("rw", "ro"), (), False, True, True),  # the last one wins
])
def test_effective_options(options, defaults, rw, sync, squash):
    assert effective_options(options, defaults) == {"rw": rw, "sync": sync, "root_squash": squash}


@pytest.mark.parametrize("host, covered", [
    ("*", True), ("10.42.0.0/16", True), ("10.0.0.0/8", True), ("0.0.0.0/0", True),
    ("10.42.0.0/255.255.0.0", True), ("10.42.1.0/24", False), ("10.42.0.5", False), ("192.168.0.0/16", False),
    ("host.example.com", False), ("@pods", False), ("[fd00::]/8", False),
])
def test_covers(host, covered):
    assert covers(host, POD) is covered


def judge(text, path=P):
    return judge_export(None if text is None else parse_exports(text), path, POD, "/etc/exports")


@pytest.mark.parametrize("text, status, reason", [
    (f"{GOOD}\n", Status.OK, Reason.NONE),
    (f"{P}/ {POD}(rw,sync,no_subtree_check)\n", Status.OK, Reason.NONE),  # trailing slash, root_squash: fine
    (f"{P} {POD}(rw) 192.168.5.0/24(ro)\n", Status.OK, Reason.NONE),  # an extra narrow client is fine
    (None, Status.FAIL, Reason.MISSING),
    ("", Status.FAIL, Reason.MISSING),
    ("/other 10.42.0.0/16(rw)\n", Status.FAIL, Reason.MISSING),
    (f"# {GOOD}\n", Status.FAIL, Reason.MISSING),  # commented out
    (f"{P} 192.168.1.0/24(rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED),
    (f"{P} 10.42.1.0/24(rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED),  # only part of the pod network
    (f"{P} {POD}(ro,sync)\n", Status.FAIL, Reason.MISCONFIGURED),
    (f"{P} {POD}(sync)\n", Status.FAIL, Reason.MISCONFIGURED),  # ro by default
    (f"{P} {POD}(rw,async)\n", Status.FAIL, Reason.MISCONFIGURED),
    (f"{P} *(rw,sync,no_subtree_check,no_root_squash)\n", Status.WARN, Reason.INSECURE),  # the installer's line
    (f"{P} 10.0.0.0/8(rw,sync)\n", Status.WARN, Reason.INSECURE),
    (f"{P} {POD}(rw,sync) *(ro)\n", Status.WARN, Reason.INSECURE),
    (f"{P} {POD} (rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED),  # the space: pods ro, world rw
    (f"{P} {POD}(ro) *(rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED),  # the narrowest client applies
    (f"{P} -rw,sync {POD}\n", Status.OK, Reason.NONE),  # '-opts' defaults
    (f"{P} {POD}( rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED),  # syntax error: exportfs drops it
])
def test_judge_export(text, status, reason):
    result = judge(text)
    assert (result.status, result.reason) == (status, reason), result.summary


def test_judge_export_world_root_access_named():
    result = judge(f"{P} *(rw,sync,no_subtree_check,no_root_squash)\n")
    assert "everyone" in result.summary and "no_root_squash" in result.summary
    assert result.details["wider_than_pods"] == ["*"]


HEADER = "# /etc/exports\n#\tcomment with tab\n\n"


@pytest.mark.parametrize("old, new", [
    ("", f"{GOOD}\n"),
    (HEADER, f"{HEADER}{GOOD}\n"),
    ("/other h(rw)", f"/other h(rw)\n{GOOD}\n"),  # no final newline: one is added before appending
    (f"{HEADER}{P} *(rw,sync,no_subtree_check,no_root_squash)\n/other h(rw)\n",
     f"{HEADER}{GOOD}\n/other h(rw)\n"),
    (f"/x a(rw)\n{P} *(rw)   # the installer's\n/y b(ro)\n", f"/x a(rw)\n{GOOD}  # the installer's\n/y b(ro)\n"),
    (f"{P} \\\n  *(rw) \\\n  10.0.0.1(ro)\n# keep\n", f"{GOOD}\n# keep\n"),  # continuation lines go too
    (f"{P} *(rw)\n/mid h(rw)\n{P}/ 1.2.3.4(rw)\n", f"{GOOD}\n/mid h(rw)\n"),  # duplicates merged into one
    (f"# {P} *(rw)\n", f"# {P} *(rw)\n{GOOD}\n"),  # a commented-out entry is left alone
    (f"{P} *(rw)", f"{GOOD}"),  # the file's (missing) final newline is kept
    (f"/x a(rw)\r\n{P} *(rw)\r\n", f"/x a(rw)\r\n{GOOD}\n"),
])
def test_rewrite_exports(old, new):
    assert rewrite_exports(old, P, POD) == new


def test_rewrite_is_idempotent_and_passes():
    once = rewrite_exports(f"{HEADER}{P} *(rw)\n", P, POD)
    assert rewrite_exports(once, P, POD) == once
    assert judge(once).status is Status.OK


def test_desired_line_quotes_spaces():
    assert desired_line("/data/my share", POD) == f'"/data/my share" {POD}(rw,sync,no_subtree_check,no_root_squash)'
    (entry,) = parse_exports(desired_line("/data/my share", POD))
    assert entry.path == "/data/my share"
