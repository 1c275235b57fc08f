"""sbops bundle's pure parts, from tables: the forms of a secret, the redaction, verification, --max-size, the
manifest, index.html, and the decoding of Secrets and Helm records."""

from __future__ import annotations

import base64
import gzip
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from sbops.bundle import cluster, config, html, logs, manifest
from sbops.bundle.redact import RULES, Redactor, Table, WrapView, forms, merge, Hit
from sbops.bundle.verify import scan_members
from sbops.secret import Secret

SECRET = 'Xy7/+pQ9"zZ&k=3@ü'  # every class of character an encoding changes
PLAIN = "Hn4kQ2vLr8Zt1mWp"       # what the installer generates: 16 of [A-Za-z0-9]


def embeds(secret: str) -> dict[str, bytes]:
    """The secret inside longer text in each form it may take (name -> text)."""
    raw = secret.encode()
    out = {"plain": b"log: " + raw + b" end"}
    for k in range(3):
        out[f"base64-{k}"] = b"blob " + base64.b64encode(b"p" * k + raw + b"tail-bytes") + b" end"
        out[f"base64url-{k}"] = b"blob " + base64.urlsafe_b64encode(b"\xfb" * k + raw + b"\xff\xfe") + b" end"
    out["url"] = b"GET /login?user=a&pass=" + quote(secret, safe="").encode() + b"&x=1"
    out["url-lower"] = re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), out["url"])
    out["url-plus"] = b"form=" + quote_plus(secret, safe="").encode()
    out["json"] = json.dumps({"p": secret}).encode()
    out["json-utf8"] = json.dumps({"p": secret}, ensure_ascii=False).encode()
    for width in (64, 76):
        for lead in (0, 1, 2, 15, 22):  # 15 (width 64) and 22 (76): the secret straddles a line end
            stream = base64.b64encode(b"q" * (lead + 30) + raw + b"z" * 60)
            wrapped = b"\n".join(stream[i:i + width] for i in range(0, len(stream), width))
            out[f"wrapped-{width}-{lead}"] = b"-----BEGIN DATA-----\n" + wrapped + b"\n-----END DATA-----\n"
    out["wrapped-json"] = json.dumps({"data": {"blob": base64.encodebytes(b"q" * 50 + raw + b"z" * 80).decode()}}).encode()
    out["wrapped-plain"] = b"x" * (76 - 5) + raw[:5] + b"\n" + raw[5:] + b" rest\n"
    return out


@pytest.mark.parametrize("secret", [SECRET, PLAIN])
@pytest.mark.parametrize("form", sorted(embeds(SECRET)))
def test_every_form_is_redacted_and_verification_finds_it_unredacted(secret: str, form: str) -> None:
    text = embeds(secret)[form]
    table = Table.build([secret])
    assert scan_members([("f", text)], table), f"verification misses the {form} form"
    out, counts = Redactor.build([secret]).redact(text)
    assert counts and sum(counts.values()) >= 1
    assert not scan_members([("f", out)], table), f"{form}: the secret survives redaction"
    assert b"[REDACTED:" in out


@pytest.mark.parametrize("form", ["wrapped-64-15", "wrapped-76-22", "wrapped-plain", "wrapped-json"])
def test_a_secret_across_a_line_wrap_is_found_as_wrapped(form: str) -> None:
    hits = Table.build([PLAIN]).find(embeds(PLAIN)[form])
    assert [h.kind for h in hits] == ["wrapped"]


def test_forms_of_a_secret_are_named() -> None:
    found = forms(SECRET)
    assert found[SECRET.encode()] == "plain"
    assert {"plain", "base64", "url", "json"} == set(found.values())
    assert forms("short") == {}  # below MIN_PLAIN: not searched (would redact ordinary words)


@pytest.mark.parametrize("text,kind,kept", [
    (b"postgres://stackbill:S3cr3tPass@db:5432/app", "url-password", b"postgres://stackbill:"),
    (b"mongodb://sb:pa%40ss@127.0.0.1:27017/admin", "url-password", b"@127.0.0.1:27017"),
    (b"Authorization: Bearer eyJhbGciOi.abc.def", "authorization-header", b"Authorization: Bearer "),
    (b"authorization: Basic QVdTOnRva2Vu", "authorization-header", b"Basic "),
    (b'{"Authorization": "Basic QVdTOnRva2Vu"}', "authorization-header", b'"Authorization": "Basic '),
    (b"jdbc:mysql://db/sb?user=sb&password=hunter22&ssl=true", "password-field", b"&ssl=true"),
    (b"Server=db;Uid=sb;Pwd=hunter22;", "password-field", b"Server=db;"),
    (b'  "password": "x9y8z7"', "password-field", b'"password": "'),
    (b"client_secret=Zm9vYmFyYmF6", "password-field", b"client_secret="),
    (b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "aws-key-id", b"aws_access_key_id = "),
    (b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\n", "pem-private-key",
     b"-----END RSA PRIVATE KEY-----"),
    (b'"key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"', "pem-private-key", b"-----BEGIN"),
])
def test_generic_patterns(text: bytes, kind: str, kept: bytes) -> None:
    out, counts = Redactor.build([]).redact(text)
    assert counts == {kind: 1}
    assert kept in out and f"[REDACTED:{kind}]".encode() in out


@pytest.mark.parametrize("text", [
    b'"cloudstack.password": {"value": "****", "source": "default"}',   # a nested object is no value
    b"password: [REDACTED:plain]", b"password=****", b'"password": null', b"no secrets here",
    b"ecr.token-expiry: ok", b'"secret": "awscred"', b"secret: istio-ingressgateway-certs",
])
def test_generic_patterns_leave_what_is_no_secret(text: bytes) -> None:
    out, counts = Redactor.build([]).redact(text)
    assert (out, counts) == (text, {})


@pytest.mark.parametrize("rule", ["base64", "url", "json", "wrapped", "plain"])
def test_a_disabled_rule_leaves_its_form_for_verification_to_catch(rule: str) -> None:
    text = {"base64": embeds(PLAIN)["base64-1"], "url": embeds(SECRET)["url"], "json": embeds(SECRET)["json"],
            "wrapped": embeds(PLAIN)["wrapped-76-22"], "plain": embeds(PLAIN)["plain"]}[rule]
    secret = PLAIN if rule in ("base64", "wrapped", "plain") else SECRET
    out, _ = Redactor.build([secret], disabled=[rule]).redact(text)
    assert scan_members([("logs/x.log", out)], Table.build([secret]))


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        Redactor.build([], disabled=["nope"])
    assert "base64" in RULES and "pem-private-key" in RULES


def test_wrap_view_maps_back() -> None:
    data = b"A" * 76 + b"\n" + b"B" * 10 + b"\n" + b"C" * 64 + b"\r\n" + b"D" * 5 + b"\n"
    view = WrapView(data)
    assert view.text == b"A" * 76 + b"B" * 10 + b"\n" + b"C" * 64 + b"D" * 5 + b"\n"
    start = view.text.index(b"B")
    assert data[view.original(start)] == ord("B")
    assert view.crosses(70, 80) and not view.crosses(0, 76)
    assert WrapView(b"short\nlines\n").text == b"short\nlines\n"


def test_merge_overlapping_hits() -> None:
    assert merge([Hit(5, 10, "plain"), Hit(0, 6, "base64"), Hit(20, 30, "url"), Hit(8, 12, "json")]) == [
        Hit(0, 12, "base64"), Hit(20, 30, "url")]


def test_verification_names_the_member_and_form_never_the_secret() -> None:
    found = scan_members([("config/a.conf", b"x " + PLAIN.encode()), ("ok.txt", b"nothing")], Table.build([PLAIN]))
    assert [(f.member, f.kind, f.count) for f in found] == [("config/a.conf", "plain", 1)]
    assert PLAIN not in found[0].describe()


def test_table_counts_secrets_and_the_too_short() -> None:
    table = Table.build([PLAIN, SECRET, "abc", "", PLAIN])
    assert (table.count, table.skipped_short) == (2, 1)
    assert Table.build([]).find(b"anything") == []


# -- max size, manifest ---------------------------------------------------------------------------------------

def _log(n: int) -> bytes:
    return b"".join(b"line %05d\n" % i for i in range(n))


@pytest.mark.parametrize("limit,logs_cut,other_cut", [
    (10_000_000, [], []),
    (6000, ["logs/a.log", "logs/b.log"], []),
    (500, ["logs/a.log", "logs/b.log"], ["config/c.conf"]),
])
def test_max_size_cuts_logs_first_keeping_the_newest(limit: int, logs_cut: list, other_cut: list) -> None:
    files = {"logs/a.log": _log(500), "logs/b.log": _log(300), "config/c.conf": b"x" * 1000, "doctor.json": b"{}"}
    out, truncated = manifest.apply_max_size(files, limit)
    assert truncated == sorted(logs_cut + other_cut)
    if truncated:
        assert sum(len(v) for v in out.values()) <= limit
    for name in logs_cut:
        assert out[name].startswith(manifest.TRUNCATED[:10]) or len(out[name]) < len(manifest.TRUNCATED)
        if len(out[name]) > 60:
            assert out[name].endswith(files[name][-20:])  # the newest lines are kept


@pytest.mark.parametrize("text,value", [("20M", 20 << 20), ("1g", 1 << 30), ("500K", 500 << 10), ("1024", 1024),
                                        ("1.5MiB", int(1.5 * (1 << 20)))])
def test_parse_size(text: str, value: int) -> None:
    assert manifest.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "big", "-1M", "0", "5T"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        manifest.parse_size(text)


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("45s", 45)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert logs.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10", "0m", "2w"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        logs.parse_duration(text)


@pytest.mark.parametrize("data,n,want", [(b"a\nb\nc\n", 2, b"b\nc\n"), (b"a\nb\nc", 2, b"b\nc"), (b"a\n", 5, b"a\n"),
                                         (b"a\nb\n", 0, b"")])
def test_tail(data: bytes, n: int, want: bytes) -> None:
    assert logs.tail(data, n) == want


def test_log_queries() -> None:
    assert logs.journal_argv("k3s", logs.Window(lines=10))[-1] == "--lines=10"
    assert logs.journal_argv("k3s", logs.Window(since=600))[-1] == "--since=-600s"
    assert logs.log_query("sb-core", logs.Window(since=60), True) == {
        "container": "sb-core", "timestamps": "true", "sinceSeconds": 60, "previous": "true"}
    assert logs.log_query("sb-core", logs.Window(lines=5), False)["tailLines"] == 5


def test_manifest_lists_what_failed_and_the_redactions() -> None:
    records = [manifest.CollectorRecord("host", "ok", 0.1, missing=["/etc/exports: not readable"]),
               manifest.CollectorRecord("hang", "timeout", 2.0, error="did not finish within the 2s deadline")]
    red = {"logs/a.log": {"plain": 2, "base64": 1}, "config/x": {"url-password": 1}}
    entries = manifest.file_entries({"logs/a.log": b"abc"}, red)
    doc = manifest.manifest(version="1", started_at="t", seconds=1.0, options={}, records=records, entries=entries,
                            report=manifest.redaction_report(red, 5, 1, []), truncated=[])
    assert doc["not_collected"] == ["hang: did not finish within the 2s deadline", "host: /etc/exports: not readable"]
    assert doc["redaction"]["by_kind"] == {"base64": 1, "plain": 2, "url-password": 1}
    assert doc["redaction"]["total"] == 4
    assert doc["files"][0]["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- index.html ------------------------------------------------------------------------------------------------

def test_index_shows_failures_with_cause_and_links() -> None:
    doctor = {"counts": {"pass": 3, "fail": 1}, "checks": [
        {"id": "mysql.reachable", "status": "fail", "summary": "connection refused <b>", "fix": None, "runbook": "r",
         "details": {"likely_cause": {"check": "mysql.service", "cause": "MariaDB is stopped", "summary": "inactive",
                                      "fix": "mysql-start"}}},
        {"id": "k8s.nodes", "status": "pass", "summary": "ok", "details": {}}]}
    doc = {"created": "t", "sbops": "1", "files": [{"path": "logs/pods/sb-apps/x/y.log", "size": 3}],
           "not_collected": ["logs.pods: HTTP 502"], "redaction": {"total": 2, "by_kind": {"plain": 2}}}
    page = html.render_index(doctor, doc)
    assert "mysql.reachable" in page and "MariaDB is stopped" in page and "sbops fix mysql-start" in page
    assert "connection refused &lt;b&gt;" in page  # escaped
    assert "href='logs/pods/sb-apps/x/y.log'" in page and "logs.pods: HTTP 502" in page
    assert "k8s.nodes" not in page.split("id='failed'")[1].split("</table>")[0]
    assert "did not run" in html.render_index(None, doc)


# -- Secrets, Helm, settings ----------------------------------------------------------------------------------

def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def test_secret_values_of_a_pull_secret_include_the_decoded_ecr_password() -> None:
    password = _b64(json.dumps({"payload": "p" * 40, "expiration": 1893456000}))
    token = _b64("AWS:" + password)
    config_json = json.dumps({"auths": {"reg.example": {"username": "AWS", "password": token,
                                                        "auth": _b64("AWS:" + token)}}})
    obj = {"type": "kubernetes.io/dockerconfigjson", "metadata": {"name": "awscred", "namespace": "sb-apps"},
           "data": {".dockerconfigjson": _b64(config_json)}}
    values = cluster.secret_values(obj)
    assert token in values and password in values and _b64("AWS:" + token) in values and config_json in values
    meta = cluster.secret_metadata(obj)
    assert meta["keys"] == [".dockerconfigjson"] and meta["registries"]["reg.example"]["token_expires"].startswith("2030")
    assert token not in json.dumps(meta)


def test_secret_values_skip_certificates_and_namespace_names() -> None:
    obj = {"type": "kubernetes.io/service-account-token", "data": {
        "namespace": _b64("istio-system"), "ca.crt": _b64("-----BEGIN CERTIFICATE-----\nMII\n"),
        "token": _b64("eyJhbGciOiJSUzI1NiJ9.payload.signature")}}
    values = cluster.secret_values(obj)
    assert "eyJhbGciOiJSUzI1NiJ9.payload.signature" in values
    assert "istio-system" not in values and not any("CERTIFICATE" in v for v in values)


def test_helm_record_is_decoded_with_secret_values_masked() -> None:
    release = {"name": "stackbill", "namespace": "sb-apps", "version": 2, "info": {"status": "deployed"},
               "chart": {"metadata": {"name": "stackbill", "version": "1.0.0"}},
               "config": {"global": {"domain": "portal.example"}, "mysql": {"password": "Hn4kQ2vLr8Zt1mWp"},
                          "apiKeys": ["k1-abcdefgh"]}, "manifest": "kind: Secret ..."}
    data = _b64(_b64(gzip.compress(json.dumps(release).encode())))
    obj = {"type": "helm.sh/release.v1", "metadata": {"name": "sh.helm.release.v1.stackbill.v2"},
           "data": {"release": data}}
    record = cluster.helm_record(obj)
    assert record["revision"] == 2 and record["chart"]["version"] == "1.0.0"
    assert record["values"]["global"]["domain"] == "portal.example"
    assert record["values"]["mysql"]["password"] == cluster.MASK and record["values"]["apiKeys"] == [cluster.MASK]
    assert "manifest" not in record
    values = cluster.secret_values(obj)
    assert "Hn4kQ2vLr8Zt1mWp" in values and "k1-abcdefgh" in values and "portal.example" not in values


def test_slim_drops_managed_fields_and_last_applied() -> None:
    obj = {"metadata": {"name": "x", "managedFields": [1], "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{secret}", "keep": "1"}}}
    assert cluster.slim(obj)["metadata"] == {"name": "x", "annotations": {"keep": "1"}}


def test_cnf_includes_and_settings_rows() -> None:
    text = "[mysqld]\n!include /etc/mysql/extra.cnf\n!includedir /etc/mysql/conf.d/\n  !includedir  mariadb.conf.d\n"
    assert config.cnf_includes(text) == (["/etc/mysql/extra.cnf"], ["/etc/mysql/conf.d/", "mariadb.conf.d"])
    rows = config.settings_rows([("mysql.admin_password", Secret("Hn4kQ2vLr8Zt1mWp"), "env"),
                                 ("namespace", "sb-apps", "default"), ("cloudstack.password", Secret(""), "default")])
    assert [r["value"] for r in rows] == ["****", "sb-apps", ""]


def test_every_pattern_names_the_words_it_needs() -> None:
    """A pattern whose words are absent is skipped: each must have its words, and each case above needs them."""
    from sbops.bundle.redact import NEEDS, PATTERN_NAMES

    assert set(NEEDS) == set(PATTERN_NAMES) and all(NEEDS.values())
