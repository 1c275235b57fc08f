"""Pure parts of sbops.backup, from tables: option-file quoting, dump argv, account statements, count
differences, RabbitMQ definitions handling, cluster object cleaning, the archive's verification and the
chunked encryption (on local files: no server is involved)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from sbops.backup import archive, cluster, crypto, mongodb, mysql, rabbitmq


@pytest.mark.parametrize("value, quoted", [
    ("plain", '"plain"'), ('with"quote', '"with\\"quote"'), ("back\\slash", '"back\\\\slash"'), ("#;=x", '"#;=x"'),
])
def test_option_values_are_quoted(value: str, quoted: str) -> None:
    assert mysql.option_value(value) == quoted


def test_dump_argv_has_the_defaults_file_first_and_no_secret() -> None:
    text = mysql.defaults_text("stackbill", "S3cret\"pw", "127.0.0.1", 3307)
    assert 'password="S3cret\\"pw"' in text and "protocol=TCP" in text
    argv = mysql.dump_argv("/usr/bin/mariadb-dump", "/tmp/x/client.cnf", ["stackbill", "configuration"])
    assert argv[1] == "--defaults-file=/tmp/x/client.cnf"
    assert {"--single-transaction", "--routines", "--triggers", "--events"} <= set(argv)
    assert argv[-3:] == ["--databases", "stackbill", "configuration"]
    assert not any("S3cret" in a for a in argv)
    with pytest.raises(ValueError):
        mysql.dump_argv("dump", "f", ["bad name; DROP"])


def test_account_statements_create_alter_and_grant() -> None:
    got = mysql.account_statements("CREATE USER `stackbill`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                                   ["GRANT ALL PRIVILEGES ON *.* TO `stackbill`@`%` WITH GRANT OPTION"])
    assert got == ["CREATE USER IF NOT EXISTS `stackbill`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                   "ALTER USER `stackbill`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                   "GRANT ALL PRIVILEGES ON *.* TO `stackbill`@`%` WITH GRANT OPTION"]
    assert mysql.split_statements("a\n;;\nb\n") == ["a", "b"]
    with pytest.raises(ValueError):
        mysql.account_statements("GRANT x", [])


@pytest.mark.parametrize("expected, observed, problems", [
    ({"s.a": 3}, {"s.a": 3}, []),
    ({"s.a": 3}, {"s.a": 2}, ["s.a: 2 rows, expected 3"]),
    ({"s.a": 3}, {}, ["s.a: missing, expected 3 rows"]),
    ({}, {"s.extra": 1}, []),
])
def test_row_count_differences(expected: dict, observed: dict, problems: list) -> None:
    assert archive.count_differences(expected, observed, "rows") == problems


def test_mongodb_layout_and_indexes() -> None:
    assert mongodb.part_names("usage", "events") == ("mongodb/usage/events.bson", "mongodb/usage/events.metadata.json")
    assert mongodb.wanted_databases(["admin", "usage", "config", "local", "billing"]) == ["billing", "usage"]
    assert mongodb.index_model_args({"v": 2, "key": {"_id": 1}, "name": "_id_"}) is None
    assert mongodb.index_model_args({"v": 2, "key": {"a": 1, "b": -1}, "name": "ab", "unique": True}) == (
        [("a", 1), ("b", -1)], {"name": "ab", "unique": True})
    assert archive.count_differences({"u.e": 2}, {"u.e": 1}, "documents") == ["u.e: 1 documents, expected 2"]


def test_rabbitmq_hashes_are_stripped_and_users_without_them_set_aside() -> None:
    defs = {"users": [{"name": "a", "password_hash": "h", "hashing_algorithm": "sha256", "tags": ""}],
            "vhosts": [{"name": "/"}]}
    stripped = rabbitmq.strip_hashes(defs)
    assert stripped["users"] == [{"name": "a", "tags": ""}] and defs["users"][0]["password_hash"] == "h"
    importable, without = rabbitmq.split_users({**stripped, "users": stripped["users"] + defs["users"]})
    assert [u["name"] for u in without] == ["a"] and importable["users"] == defs["users"]
    expected = {"queues": [{"vhost": "v", "name": "q"}], "users": [{"name": "gone"}], "vhosts": [{"name": "v"}]}
    assert rabbitmq.missing_items(expected, {"vhosts": [{"name": "v"}]}, {"gone"}) == ["queue v/q is missing"]


def test_cluster_objects_lose_server_fields() -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "data": {"k": "dg=="}, "status": {},
           "metadata": {"name": "awscred", "namespace": "sb-apps", "uid": "u", "resourceVersion": "9",
                        "managedFields": [], "labels": {"a": "b"}}}
    assert cluster.clean(obj) == {"apiVersion": "v1", "kind": "Secret", "data": {"k": "dg=="},
                                  "metadata": {"name": "awscred", "namespace": "sb-apps", "labels": {"a": "b"}}}
    summary = cluster.release_summary({"name": "stackbill", "namespace": "sb-apps", "version": 3,
                                       "info": {"status": "deployed"}, "config": {"x": 1},
                                       "chart": {"metadata": {"name": "stackbill", "version": "1.2.3"}}})
    assert summary["chart"]["version"] == "1.2.3" and summary["values"] == {"x": 1} and summary["revision"] == 3


# -- the archive -------------------------------------------------------------------------------------------
def _archive(tmp_path: Path, passphrase: bytes | None = None, parts: dict | None = None) -> Path:
    stage = archive.Stage(tmp_path)
    for name, data in (parts or {"mysql/dump.sql": b"-- dump\n" * 5000, "rabbitmq/definitions.json": b"{}"}).items():
        stage.write(name, name.split("/")[0], data)
    manifest = archive.Manifest(created="now", host="h", sbops="0", layers={"mysql": {"status": "ok"}},
                                parts=list(stage.parts))
    out = tmp_path / ("a.tar.enc" if passphrase else "a.tar")
    archive.write_archive(stage, manifest, out, passphrase)
    stage.cleanup()
    return out


def test_archive_is_0600_and_reads_back(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    opened = archive.open_archive(path, None, tmp_path)
    assert opened.file("mysql/dump.sql").read_bytes() == b"-- dump\n" * 5000
    assert [p.name for p in opened.manifest.parts] == ["mysql/dump.sql", "rabbitmq/definitions.json"]
    opened.cleanup()
    assert sorted(os.listdir(tmp_path)) == ["a.tar"]  # no staging or temporary file left behind


def test_every_truncation_is_refused(tmp_path: Path) -> None:
    import tarfile

    path = _archive(tmp_path)
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + last.size  # after this come only padding and the end-of-archive blocks
    for cut in list(range(0, end, 509)) + [end - 1]:
        bad = tmp_path / "cut.tar"
        bad.write_bytes(data[:cut])
        with pytest.raises(archive.ArchiveError):
            archive.open_archive(bad, None, tmp_path)


def test_a_changed_byte_names_the_part(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    data = bytearray(path.read_bytes())
    index = data.index(b"-- dump") + 20
    data[index] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(archive.ArchiveError, match="part mysql/dump.sql: sha256 differs"):
        archive.open_archive(path, None, tmp_path)


@pytest.mark.parametrize("size", [0, 1, crypto.CHUNK - 1, crypto.CHUNK, crypto.CHUNK + 1, 2 * crypto.CHUNK + 7])
def test_encryption_round_trip_in_chunks(size: int) -> None:
    plain = os.urandom(size)
    sealed = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(plain), sealed, b"passphrase-123")
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(sealed.getvalue()), out, b"passphrase-123")
    assert out.getvalue() == plain


def test_encryption_refuses_wrong_passphrase_reordering_and_cuts() -> None:
    plain = os.urandom(3 * crypto.CHUNK)
    sealed = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(plain), sealed, b"passphrase-123")
    data = sealed.getvalue()
    header_len = len(crypto.MAGIC) + 5 + int.from_bytes(data[len(crypto.MAGIC) + 1:len(crypto.MAGIC) + 5], "big")
    frame = 4 + crypto.CHUNK + crypto.TAG
    first, second = data[header_len:header_len + frame], data[header_len + frame:header_len + 2 * frame]
    cases = {
        "wrong passphrase": (data, b"passphrase-124", "wrong passphrase"),
        "cut at a chunk boundary": (data[:header_len + 2 * frame], b"passphrase-123", "truncated"),
        "cut inside a chunk": (data[:-5], b"passphrase-123", "truncated"),
        "chunks swapped": (data[:header_len] + second + first + data[header_len + 2 * frame:], b"passphrase-123",
                           "wrong passphrase, or its first chunk"),
        "header changed": (data.replace(b'"n": 32768', b'"n": 16384', 1), b"passphrase-123", "wrong passphrase"),
        "appended": (data + b"x", b"passphrase-123", "after its last chunk"),
    }
    for label, (content, passphrase, expected) in cases.items():
        with pytest.raises(crypto.CryptoError, match=expected):
            crypto.decrypt_stream(io.BytesIO(content), io.BytesIO(), passphrase)


def test_passphrase_file(tmp_path: Path) -> None:
    good = tmp_path / "p"
    good.write_text("long enough phrase\nignored\n")
    assert crypto.read_passphrase(good) == b"long enough phrase"
    short = tmp_path / "s"
    short.write_text("short\n")
    with pytest.raises(ValueError, match=":1: the passphrase must be at least 8"):
        crypto.read_passphrase(short)
    with pytest.raises(ValueError, match="cannot read"):
        crypto.read_passphrase(tmp_path / "missing")


def test_manifest_refuses_unsafe_names() -> None:
    doc = {"format": archive.FORMAT, "layers": {}, "parts": [{"name": "../etc/passwd", "layer": "x", "size": 1,
                                                             "sha256": "0"}]}
    with pytest.raises(archive.ArchiveError, match="unsafe part name"):
        archive.Manifest.from_dict(json.loads(json.dumps(doc)))
