"""The exports(5) parser, the export judgement and the exports-file rewrite, from tables."""

from __future__ import annotations

import pytest

from sbops.model import Reason, Status
from sbops.probes.nfs import (
    Client, covers, desired_line, effective_options, judge_export, mounters, node_internal_ips, parse_exports,
    rewrite_exports,
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


NODE = "10.0.0.10"  # a one-node K3s: the node's InternalIP is the server's own address
WHO = mounters([NODE], NODE)
OPTS = "rw,sync,no_subtree_check,no_root_squash"
NODE_LINE = f"{P} {NODE}({OPTS})"


def judge(text, path=P, who=WHO):
    return judge_export(None if text is None else parse_exports(text), path, who, "/etc/exports", POD)


@pytest.mark.parametrize("text, status, reason, code", [
    (f"{NODE_LINE}\n", Status.OK, Reason.NONE, "SB5001"),
    (f"{P}/ {NODE}(rw,sync,no_subtree_check)\n", Status.OK, Reason.NONE, "SB5001"),  # trailing slash, root_squash: fine
    (f"{P} {NODE}(rw) 192.168.5.0/24(ro)\n", Status.OK, Reason.NONE, "SB5001"),  # an extra client is fine
    (f"{P} 10.0.0.0/24(rw,sync)\n", Status.OK, Reason.NONE, "SB5001"),  # a network holding the node
    (f"{P} {POD}(rw) {NODE}(rw)\n", Status.OK, Reason.NONE, "SB5001"),
    (None, Status.FAIL, Reason.MISSING, "SB5002"),
    ("", Status.FAIL, Reason.MISSING, "SB5003"),
    ("/other 10.0.0.10(rw)\n", Status.FAIL, Reason.MISSING, "SB5003"),
    (f"# {NODE_LINE}\n", Status.FAIL, Reason.MISSING, "SB5003"),  # commented out
    (f"{GOOD}\n", Status.FAIL, Reason.MISCONFIGURED, "SB5005"),  # ARCHITECTURE.md's pod network: no mount works
    (f"{P} 10.42.1.0/24(rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5005"),
    (f"{P} {NODE}(ro,sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5007"),
    (f"{P} {NODE}(sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5007"),  # ro by default
    (f"{P} {NODE}(rw,async)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5007"),
    (f"{P} *({OPTS})\n", Status.WARN, Reason.INSECURE, "SB5008"),  # both installers' line: works, open to anyone
    (f"{P} 0.0.0.0/0(rw,sync)\n", Status.WARN, Reason.INSECURE, "SB5008"),
    (f"{P} {NODE}(rw,sync) *(ro)\n", Status.WARN, Reason.INSECURE, "SB5008"),
    (f"{P} {NODE} (rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5007"),  # the space: the node ro, the world rw
    (f"{P} {NODE}(ro) *(rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5007"),  # the narrowest client applies
    (f"{P} -rw,sync {NODE}\n", Status.OK, Reason.NONE, "SB5001"),  # '-opts' defaults
    (f"{P} {NODE}( rw,sync)\n", Status.FAIL, Reason.MISCONFIGURED, "SB5004"),  # syntax error: exportfs drops it
    (f"{P} node1.example.com(rw,sync)\n", Status.WARN, Reason.MISCONFIGURED, "SB5006"),  # a name sbops cannot compare
])
def test_judge_export(text, status, reason, code):
    result = judge(text)
    assert (result.code, result.status, result.reason) == (code, status, reason), result.summary


def test_pod_network_only_names_the_node_addresses_it_misses():
    two = mounters(["10.0.0.10", "10.0.0.11"], "10.0.0.10")
    result = judge(f"{GOOD}\n", who=two)
    assert result.details["missing"] == ["10.0.0.10", "10.0.0.11"]
    assert result.code == "SB5005"
    assert result.args["missing"] == "10.0.0.10, 10.0.0.11" and result.args["pods_only"]
    partial = judge(f"{P} 10.0.0.10(rw,sync)\n", who=two)
    assert (partial.status, partial.details["missing"]) == (Status.FAIL, ["10.0.0.11"])


def test_world_root_access_named():
    result = judge(f"{P} *({OPTS})\n")
    assert result.code == "SB5008" and result.args["root"] and NODE in result.args["addresses"]
    assert result.details["wider_than_nodes"] == ["*"]


def test_without_the_node_list_only_the_servers_address_counts_and_it_says_so():
    blind = mounters(None, "192.0.2.5", "no kubeconfig")
    pods = judge(f"{GOOD}\n", who=blind)
    assert (pods.status, pods.reason) == (Status.FAIL, Reason.MISCONFIGURED)  # never passes on the pod network
    good = judge(f"{P} 192.0.2.5(rw,sync)\n", who=blind)
    assert (good.code, good.status) == ("SB5001", Status.OK) and "no kubeconfig" in good.args["note"]
    assert good.details["nodes_unknown"]


def test_node_internal_ips_and_mounters():
    nodes = [{"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.10"},
                                       {"type": "Hostname", "address": "n1"}]}},
             {"status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.1"},
                                       {"type": "InternalIP", "address": "10.0.0.11"}]}}, {}]
    assert node_internal_ips(nodes) == ["10.0.0.10", "10.0.0.11"]
    assert mounters(["10.0.0.10", "10.0.0.11"], "10.0.0.10").addresses == ("10.0.0.10", "10.0.0.11")
    assert mounters(["10.0.0.11"], "10.0.0.10").addresses == ("10.0.0.11", "10.0.0.10")
    assert mounters([], "10.0.0.10").addresses == ("10.0.0.10",) and not mounters([], "x").note


HEADER = "# /etc/exports\n#\tcomment with tab\n\n"
ADDR = ("10.0.0.10",)


@pytest.mark.parametrize("old, new", [
    ("", f"{NODE_LINE}\n"),
    (HEADER, f"{HEADER}{NODE_LINE}\n"),
    ("/other h(rw)", f"/other h(rw)\n{NODE_LINE}\n"),  # no final newline: one is added before appending
    (f"{HEADER}{P} *({OPTS})\n/other h(rw)\n", f"{HEADER}{NODE_LINE}\n/other h(rw)\n"),
    (f"/x a(rw)\n{P} *(rw)   # the installer's\n/y b(ro)\n", f"/x a(rw)\n{NODE_LINE}  # the installer's\n/y b(ro)\n"),
    (f"{P} \\\n  *(rw) \\\n  10.0.0.1(ro)\n# keep\n", f"{NODE_LINE} 10.0.0.1(ro)\n# keep\n"),  # others kept
    (f"{P} *(rw)\n/mid h(rw)\n{P}/ 1.2.3.4(rw)\n", f"{NODE_LINE} 1.2.3.4(rw)\n/mid h(rw)\n"),  # merged
    (f"# {P} *(rw)\n", f"# {P} *(rw)\n{NODE_LINE}\n"),  # a commented-out entry is left alone
    (f"{P} *(rw)", f"{NODE_LINE}"),  # the file's (missing) final newline is kept
    (f"/x a(rw)\r\n{P} *(rw)\r\n", f"/x a(rw)\r\n{NODE_LINE}\n"),
    (f"{GOOD}\n", f"{NODE_LINE}\n"),  # the pod network goes: never a target, it gives every pod root access
    (f"{P} {NODE}(ro) backup.example.com(ro)\n", f"{NODE_LINE} backup.example.com(ro)\n"),
    (f"{P} -async 10.0.0.0/8(ro)\n", f"{P} -async {NODE}({OPTS}) 10.0.0.0/8(ro)\n"),
])
def test_rewrite_exports(old, new):
    assert rewrite_exports(old, P, ADDR, POD) == new


def test_rewrite_is_idempotent_and_passes():
    once = rewrite_exports(f"{HEADER}{P} *(rw)\n", P, ADDR, POD)
    assert rewrite_exports(once, P, ADDR, POD) == once
    assert judge(once).status is Status.OK
    for old in (f"{GOOD}\n", f"{P} -async 10.0.0.0/8(ro)\n", f"{P} {NODE}(ro) *(rw)\n"):
        assert judge(rewrite_exports(old, P, ADDR, POD)).status is Status.OK, old


def test_desired_line_quotes_spaces():
    assert desired_line("/data/my share", ADDR) == f'"/data/my share" {NODE}({OPTS})'
    (entry,) = parse_exports(desired_line("/data/my share", ("10.0.0.10", "10.0.0.11")))
    assert entry.path == "/data/my share" and [c.host for c in entry.clients] == ["10.0.0.10", "10.0.0.11"]
