"""Credentials files of every installer version: the current script's exact text, unknown sections and
nested blocks kept byte-identical with a warning, the CLOUDSTACK SIMULATOR section read, its secrets masked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sbops import credentials as c
from sbops.context import Context
from sbops.errors import UsageError
from sbops.secret import Secret, mask_text
from sbops.settings import Settings
from tests.unit.test_credentials import ORIGINAL

# UPSTREAM-CURRENT.md's text, verbatim, with the shell's values filled in the way bash expands them:
# ${CLOUDSTACK_API_KEY:-"(generate from CloudStack UI)"} inside the heredoc gives the text without quotes.
CURRENT = """\
================================================================================
STACKBILL POC CREDENTIALS
Generated: Mon Nov 30 10:00:00 UTC 2026
================================================================================

PORTAL URL: https://portal.example.com

SERVER IP: 192.0.2.20

MYSQL:
  Host: 192.0.2.20
  Port: 3306
  Database: stackbill
  Username: stackbill
  Password: My12Sq34Lp56Ab78

MONGODB:
  Host: 192.0.2.20
  Port: 27017
  Database: admin
  Username: stackbill
  Password: Mo12Ng34Od56Bb78

RABBITMQ:
  Host: 192.0.2.20
  Port: 5672
  Username: stackbill
  Password: Ra12Bb34It56Mq78
  Management: http://192.0.2.20:15672

NFS:
  Server: 192.0.2.20
  Path: /data/stackbill

CLOUDSTACK SIMULATOR:
  URL: http://192.0.2.20:8080/client
  Default Admin: admin / password

  StackBill User:
    Username: sb-admin@portal.example.com
    Password: Cs12Ad34Mi56Nn78
    API Key: (generate from CloudStack UI)
    Secret Key: (generate from CloudStack UI)

================================================================================
"""
WITH_KEYS = CURRENT.replace("API Key: (generate from CloudStack UI)", "API Key: Ak12Ak34Ak56Ak78Ak90") \
    .replace("Secret Key: (generate from CloudStack UI)", "Secret Key: Sk12Sk34Sk56Sk78Sk90")
# Without the simulator the current script writes no CLOUDSTACK block: the 80-character banner follows NFS.
NO_SIMULATOR = CURRENT.split("CLOUDSTACK SIMULATOR:")[0] + "=" * 80 + "\n"


@pytest.mark.parametrize("text", [ORIGINAL, CURRENT, WITH_KEYS, NO_SIMULATOR], ids=["original", "current",
                                                                                 "with-keys", "no-simulator"])
def test_every_version_parses_without_warnings_and_renders_byte_identical(text):
    creds = c.parse(text, "/root/stackbill-credentials.txt")
    assert creds.warnings == ()
    assert c.render(creds) == text
    assert creds.mysql.password and creds.nfs_path == "/data/stackbill"


def test_current_script_sections_are_read():
    creds = c.parse(CURRENT, "/root/stackbill-credentials.txt")
    assert creds.server_ip == "192.0.2.20" and creds.nfs_server == "192.0.2.20"
    cs = creds.cloudstack
    assert cs is not None and cs.url == "http://192.0.2.20:8080/client"
    assert cs.username == "sb-admin@portal.example.com" and cs.password == Secret("Cs12Ad34Mi56Nn78")
    assert (cs.admin_user, cs.admin_password) == ("admin", Secret("password"))
    # the placeholders are not keys
    assert cs.api_key is None and cs.secret_key is None
    keyed = c.parse(WITH_KEYS).cloudstack
    assert keyed.api_key == Secret("Ak12Ak34Ak56Ak78Ak90") and keyed.secret_key == Secret("Sk12Sk34Sk56Sk78Sk90")
    assert c.parse(CURRENT.replace("(generate from CloudStack UI)", '"(generate from CloudStack UI)"')).cloudstack.api_key is None
    assert c.parse(ORIGINAL).cloudstack is None and c.parse(NO_SIMULATOR).cloudstack is None


def test_cloudstack_secrets_are_secrets_everywhere(tmp_path):
    creds = c.parse(WITH_KEYS, "/x")
    revealed = {s.reveal() for s in creds.secrets()}
    assert {"Cs12Ad34Mi56Nn78", "Ak12Ak34Ak56Ak78Ak90", "Sk12Sk34Sk56Sk78Sk90", "My12Sq34Lp56Ab78"} <= revealed
    # the simulator's published default "password" stays a Secret but is not used to mask text
    assert "password" not in revealed
    for secret in ("Cs12Ad34Mi56Nn78", "Ak12Ak34Ak56Ak78Ak90", "Sk12Sk34Sk56Sk78Sk90"):
        assert secret not in repr(creds) and secret not in str(creds.cloudstack)
    ctx = Context(Settings.load(env={}), creds, Path("/x"))
    text = mask_text("key Ak12Ak34Ak56Ak78Ak90 secret Sk12Sk34Sk56Sk78Sk90 pw Cs12Ad34Mi56Nn78 mysql_native_password",
                     ctx.secrets())
    assert text == "key **** secret **** pw **** mysql_native_password"


def test_nfs_and_cloudstack_sections_become_settings_with_their_line():
    creds = c.parse(WITH_KEYS, "/root/creds.txt")
    s = Context(Settings.load(env={}), creds, Path("/root/creds.txt")).settings
    assert s["nfs.server"] == "192.0.2.20" and s.source("nfs.server") == "/root/creds.txt:32"
    assert s["nfs.path"] == "/data/stackbill" and s.source("nfs.path") == "/root/creds.txt:33"
    assert s["cloudstack.url"] == "http://192.0.2.20:8080/client" and s.source("cloudstack.url") == "/root/creds.txt:36"
    assert s["cloudstack.username"] == "sb-admin@portal.example.com"
    assert isinstance(s["cloudstack.api_key"], Secret) and s["cloudstack.api_key"] == Secret("Ak12Ak34Ak56Ak78Ak90")
    assert s["cloudstack.secret_key"] == Secret("Sk12Sk34Sk56Sk78Sk90") and s["cloudstack.password"] == Secret("Cs12Ad34Mi56Nn78")
    # the config file, env and flags still win over the credentials file
    env = Settings.load(env={"SBOPS_NFS_PATH": "/srv/nfs"})
    assert Context(env, creds, Path("/root/creds.txt")).settings["nfs.path"] == "/srv/nfs"
    # placeholders give no key setting
    placeholder = Context(Settings.load(env={}), c.parse(CURRENT, "/x"), Path("/x")).settings
    assert placeholder["cloudstack.api_key"] == Secret("") and placeholder.source("cloudstack.api_key") == "default"


UNKNOWN = CURRENT.replace("NFS:\n", """\
KAFKA:
  Host: 192.0.2.20
    Nested: deeper
  Password: NotReadBySbops1

NFS:
""").replace("  Path: /data/stackbill\n", "  Path: /data/stackbill\n  Options: rw\n").replace(
    "  StackBill User:\n", "  Extra Block:\n    Foo: bar\n\n  StackBill User:\n").replace(
    "  Management: http://192.0.2.20:15672\n", "  Management: http://192.0.2.20:15672\n  Vhost:\n    name: /\n")


def test_unknown_sections_and_nested_blocks_are_kept_byte_identical_with_warnings():
    creds = c.parse(UNKNOWN, "/f")
    assert c.render(creds) == UNKNOWN
    text = "\n".join(creds.warnings)
    assert "/f:33: section KAFKA is not one sbops reads" in text
    assert "'Options' in NFS" in text and "Extra Block" in text and "Vhost" in text
    assert "NotReadBySbops1" not in text and "Cs12Ad34Mi56Nn78" not in text
    # what sbops reads is unaffected
    assert creds.cloudstack.password == Secret("Cs12Ad34Mi56Nn78") and creds.nfs_server == "192.0.2.20"
    # changing a value rewrites that line only, the unknown parts stay
    changed = replace(creds, rabbitmq=replace(creds.rabbitmq, password=Secret("NewRabbit0000001")))
    assert c.render(changed) == UNKNOWN.replace("Ra12Bb34It56Mq78", "NewRabbit0000001")


def test_render_changes_only_changed_values_and_adds_missing_ones():
    creds = c.parse(CURRENT.replace("  Password: Mo12Ng34Od56Bb78\n", ""))
    assert creds.mongodb.password is None
    filled = replace(creds, mongodb=replace(creds.mongodb, password=Secret("Generated0000002")),
                     generated="Tue Dec  1 00:00:00 UTC 2026")
    expected = CURRENT.replace("Mo12Ng34Od56Bb78", "Generated0000002").replace(
        "Mon Nov 30 10:00:00 UTC 2026", "Tue Dec  1 00:00:00 UTC 2026")
    assert c.render(filled) == expected
    no_rabbit = c.parse(ORIGINAL.replace(ORIGINAL[ORIGINAL.index("RABBITMQ:"):ORIGINAL.index("NFS:")], ""))
    back = replace(no_rabbit, rabbitmq=c.parse(ORIGINAL).rabbitmq)
    assert "RABBITMQ:\n  Host: 192.0.2.10\n" in c.render(back) and c.render(back).endswith("=" * 60 + "\n")
    assert c.parse(c.render(back)).rabbitmq == c.parse(ORIGINAL).rabbitmq


def test_a_new_file_with_cloudstack_round_trips():
    creds = c.parse(WITH_KEYS)
    fresh = replace(creds, source=None)
    assert c.parse(c.render(fresh)) == creds


@pytest.mark.parametrize("mutate, line, message", [
    (lambda t: t.replace("  Port: 3306", "  Port: three"), 12, "Port must be a number"),
    (lambda t: t.replace("MYSQL:\n", "MYSQL\n"), 10, "expected 'MYSQL:'"),
    (lambda t: t.replace("NFS:\n", "MYSQL:\n"), 31, "section MYSQL appears twice"),
    (lambda t: t.replace("  Path: /data/stackbill\n", "  /data/stackbill\n"), 33, "expected 'Key: value' in section NFS"),
])
def test_needed_sections_that_cannot_be_read_are_errors(mutate, line, message):
    with pytest.raises(UsageError) as err:
        c.parse(mutate(CURRENT), "/x/creds.txt")
    assert str(err.value).startswith(f"/x/creds.txt:{line}:") and message in str(err.value), str(err.value)


def test_an_unreadable_cloudstack_section_is_a_warning_not_an_error():
    text = CURRENT.replace("    API Key: (generate from CloudStack UI)\n", "    garbage without colon\n") \
        .replace("  URL: http", "  URL: http").replace("  Default Admin:", "  Default Admin: x\n  Default Admin:")
    creds = c.parse(text, "/f")
    assert creds.warnings and c.render(creds) == text
    assert creds.mysql.password == Secret("My12Sq34Lp56Ab78")


def test_indented_line_outside_a_section_is_kept_with_a_warning():
    text = ORIGINAL.replace("SERVER IP: 192.0.2.10\n\n", "SERVER IP: 192.0.2.10\n  Host: x\n\n")
    creds = c.parse(text, "/f")
    assert creds.warnings == ("/f:9: indented line outside a section; kept as is",)
    assert c.render(creds) == text


def test_the_installers_credentials_steps_keep_the_current_scripts_file():
    from sbops.install import creds as steps

    existing = c.parse(CURRENT, "/root/stackbill-credentials.txt")
    plan = steps.plan_credentials(existing, Path("/root/stackbill-credentials.txt"), domain="", server_ip="192.0.2.20",
                                  nfs_path="/data/stackbill", ports={"mysql": 3306, "mongodb": 27017, "rabbitmq": 5672})
    assert plan.generated == () and plan.desired.cloudstack == existing.cloudstack
    assert c.render(plan.desired) == CURRENT  # save-credentials has nothing to change
    assert steps.file_differences(existing, plan.desired) == []
    missing = c.parse(CURRENT.replace("  Password: Ra12Bb34It56Mq78\n", ""), "/root/stackbill-credentials.txt")
    plan = steps.plan_credentials(missing, Path("/x"), domain="", server_ip="192.0.2.20", nfs_path="/data/stackbill",
                                  ports={"mysql": 3306, "mongodb": 27017, "rabbitmq": 5672},
                                  make=lambda: Secret("Generated0000003"))
    written = c.render(steps.with_new_passwords(plan))
    # the generated password goes at the end of its section; every other byte stays
    assert written == CURRENT.replace("  Password: Ra12Bb34It56Mq78\n", "").replace(
        "  Management: http://192.0.2.20:15672\n", "  Management: http://192.0.2.20:15672\n  Password: Generated0000003\n")
    assert "CLOUDSTACK SIMULATOR:\n  URL:" in written and "    Secret Key: (generate from CloudStack UI)\n" in written
    assert c.parse(written).rabbitmq.password == Secret("Generated0000003")


def test_a_missing_portal_url_is_added_before_the_sections():
    text = ORIGINAL.replace("PORTAL URL: https://portal.example.com\n\n", "")
    creds = c.parse(text)
    assert c.render(creds) == text and creds.portal_url == ""
    filled = c.render(replace(creds, portal_url="https://portal.example.com"))
    assert filled == ORIGINAL.replace("PORTAL URL: https://portal.example.com\n\nSERVER IP: 192.0.2.10\n\n",
                                      "SERVER IP: 192.0.2.10\n\nPORTAL URL: https://portal.example.com\n\n")
    assert c.parse(filled).portal_url == "https://portal.example.com"
