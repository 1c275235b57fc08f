"""The credentials file: the original installer's exact format, read and written."""

import os
import stat

import pytest

from sbops import credentials as c
from sbops.errors import UsageError
from sbops.secret import Secret

ORIGINAL = """\
============================================================
STACKBILL POC CREDENTIALS
Generated: Mon Mar  4 10:12:01 UTC 2024
============================================================

PORTAL URL: https://portal.example.com

SERVER IP: 192.0.2.10

MYSQL:
  Host: 192.0.2.10
  Port: 3306
  Database: stackbill
  Username: stackbill
  Password: Ab12Cd34Ef56Gh78

MONGODB:
  Host: 192.0.2.10
  Port: 27017
  Database: admin
  Username: stackbill
  Password: Mn12Op34Qr56St78

RABBITMQ:
  Host: 192.0.2.10
  Port: 5672
  Username: stackbill
  Password: Uv12Wx34Yz56Ab78
  Management: http://192.0.2.10:15672

NFS:
  Server: 192.0.2.10
  Path: /data/stackbill

============================================================
"""


def test_parses_the_original_installers_file():
    creds = c.parse(ORIGINAL, "/root/stackbill-credentials.txt")
    assert creds.domain == "portal.example.com"
    assert creds.server_ip == "192.0.2.10"
    assert creds.mysql.host == "192.0.2.10" and creds.mysql.port == 3306
    assert creds.mysql.password == Secret("Ab12Cd34Ef56Gh78")
    assert creds.mongodb.database == "admin"
    assert creds.rabbitmq.management == "http://192.0.2.10:15672"
    assert creds.nfs_path == "/data/stackbill" and creds.nfs_server == "192.0.2.10"


def test_render_round_trips_the_original_layout():
    creds = c.parse(ORIGINAL)
    assert c.render(creds) == ORIGINAL


def test_passwords_never_print():
    creds = c.parse(ORIGINAL)
    assert "Ab12Cd34Ef56Gh78" not in repr(creds) and "Ab12Cd34Ef56Gh78" not in str(creds.mysql)


@pytest.mark.parametrize(
    "mutate, line",
    [
        (lambda t: t.replace("  Port: 3306", "  Port: three"), 12),
        (lambda t: t.replace("  Port: 27017", "  Port: 99999"), 19),
        (lambda t: t.replace("MYSQL:\n", "MYSQL\n"), 10),
        (lambda t: t.replace("  Password: Mn12Op34Qr56St78", "  Password:"), 22),
        (lambda t: t.replace("NFS:\n", "MYSQL:\n"), 31),
        (lambda t: t.replace("  Username: stackbill\n  Password: Ab12", "  Username: stackbill\n  Username: x\n  Password: Ab12"), 15),
    ],
)
def test_malformed_files_name_the_file_and_line(mutate, line):
    with pytest.raises(UsageError) as err:
        c.parse(mutate(ORIGINAL), "/x/creds.txt")
    assert str(err.value).startswith(f"/x/creds.txt:{line}:"), str(err.value)
    assert "Ab12Cd34Ef56Gh78" not in str(err.value)


def test_write_is_atomic_0600_and_keeps_a_backup(tmp_path):
    path = tmp_path / "stackbill-credentials.txt"
    path.write_text("old contents\n")
    os.chmod(path, 0o644)
    c.save(c.parse(ORIGINAL), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backup = tmp_path / "stackbill-credentials.txt.bak"
    assert backup.read_text() == "old contents\n" and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert c.load(path).mysql.password == Secret("Ab12Cd34Ef56Gh78")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_find_prefers_flag_then_env(tmp_path):
    assert c.find("/a") == c.Path("/a")
    assert c.find(None, {"SBOPS_CREDENTIALS": "/b"}) == c.Path("/b")


def test_missing_and_unreadable_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="credentials file not found"):
        c.load(tmp_path / "nope.txt")
    (tmp_path / "dir").mkdir()
    with pytest.raises(UsageError, match="cannot read"):
        c.load(tmp_path / "dir")
