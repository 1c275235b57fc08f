"""The credentials file's `.bak` and the opening of the file (issue 9, item 3 and the FIFO/device defect).

The backup used to be written with shutil.copy2 and then chmod: it followed a symlink planted at
`<file>.bak`, wrote into a file another user owns (who then read all three passwords), could overwrite and
chmod any root-owned file, and was briefly 0644. It is now written as the file is: a temporary file at 0600
in the same directory, then os.replace; an existing `.bak` is never opened.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from sbops import credentials as c
from sbops.errors import UsageError
from tests.unit.test_credentials import ORIGINAL

NOBODY = 65534
OLD = "old contents with Ab12Cd34Ef56Gh78\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture()
def creds_file(tmp_path: Path) -> Path:
    path = tmp_path / "stackbill-credentials.txt"
    path.write_text(OLD)
    os.chmod(path, 0o600)
    return path


def save(path: Path) -> None:
    c.save(c.parse(ORIGINAL), path)


def test_a_symlink_planted_at_bak_is_replaced_not_followed(creds_file: Path, tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    bak = creds_file.with_name(creds_file.name + ".bak")
    bak.symlink_to(victim)
    save(creds_file)
    assert victim.read_text() == "precious\n" and mode(victim) == 0o644
    assert not bak.is_symlink() and bak.read_text() == OLD and mode(bak) == 0o600


def test_a_dangling_symlink_at_bak_creates_nothing_where_it_points(creds_file: Path, tmp_path: Path):
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    bak = creds_file.with_name(creds_file.name + ".bak")
    bak.symlink_to(target)
    save(creds_file)
    assert not target.exists() and not bak.is_symlink() and bak.read_text() == OLD


def test_a_bak_owned_by_another_user_is_replaced_and_they_read_nothing(creds_file: Path, tmp_path: Path):
    """Their file (here reached through a hard link, as a reader keeping it open would be) keeps its own
    contents: the passwords go into a new inode that root owns at 0600."""
    theirs = tmp_path / "theirs"
    theirs.write_text("their notes\n")
    os.chown(theirs, NOBODY, NOBODY)
    os.chmod(theirs, 0o666)
    bak = creds_file.with_name(creds_file.name + ".bak")
    os.link(theirs, bak)
    save(creds_file)
    assert theirs.read_text() == "their notes\n" and theirs.stat().st_uid == NOBODY and mode(theirs) == 0o666
    info = bak.stat()
    assert info.st_ino != theirs.stat().st_ino and info.st_uid == os.geteuid() and mode(bak) == 0o600
    assert bak.read_text() == OLD


def test_a_root_owned_file_is_never_overwritten_or_chmoded(creds_file: Path, tmp_path: Path):
    system = tmp_path / "shadow"
    system.write_text("root:x:...\n")
    os.chmod(system, 0o640)
    before = system.stat()
    bak = creds_file.with_name(creds_file.name + ".bak")
    bak.symlink_to(system)
    save(creds_file)
    after = system.stat()
    assert system.read_text() == "root:x:...\n" and mode(system) == 0o640
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_the_backup_keeps_the_old_time_and_is_never_wider_than_the_old_file(tmp_path: Path):
    path = tmp_path / "exports"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    c.write_atomic(path, "new\n", mode=0o644)
    bak = tmp_path / "exports.bak"
    assert mode(path) == 0o644 and mode(bak) == 0o600  # the old contents keep the old, narrower mode
    assert bak.stat().st_mtime_ns == 1_000_000_000_000_000_000
    c.write_atomic(path, "newer\n", mode=0o644)
    assert bak.read_text() == "new\n" and mode(bak) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "exports.bak"]  # no temporary left


def test_a_bak_that_cannot_be_replaced_leaves_the_file_and_no_temporary(creds_file: Path, tmp_path: Path):
    bak = creds_file.with_name(creds_file.name + ".bak")
    bak.mkdir()
    (bak / "inside").write_text("kept\n")
    with pytest.raises(OSError):
        save(creds_file)
    assert creds_file.read_text() == OLD and (bak / "inside").read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [creds_file.name, bak.name]


READER = textwrap.dedent("""
    import os, sys, time
    os.setgid({uid}); os.setuid({uid})
    directory, secret, stop = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
    polls = wins = 0
    while not os.path.exists(stop):
        polls += 1
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            try:
                with open(os.path.join(directory, name), "rb") as handle:
                    if secret in handle.read():
                        wins += 1
            except OSError:
                pass
    print(polls, wins)
""")


def test_a_local_reader_polling_during_saves_never_reads_a_password():
    """The issue's reader won the 0644 window in 6,252 of 6,307 saves. Here an unprivileged process lists
    the directory and opens every file in it as fast as it can while 300 saves run."""
    directory = Path(tempfile.mkdtemp(prefix="sbops-bak-race-", dir="/tmp"))
    try:
        os.chmod(directory, 0o755)  # others may list and open: only the files' own modes protect them
        path = directory / "stackbill-credentials.txt"
        save(path)
        bak = path.with_name(path.name + ".bak")
        save(path)
        stop = directory.parent / (directory.name + ".stop")
        reader = subprocess.Popen([sys.executable, "-c", READER.format(uid=NOBODY), str(directory),
                                   "Ab12Cd34Ef56Gh78", str(stop)], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(300):
                bak.unlink()  # each save makes a new .bak: the case that used to be 0644 for a moment
                save(path)
        finally:
            stop.touch()
            out, _ = reader.communicate(timeout=30)
            stop.unlink()
        polls, wins = map(int, out.split())
        assert polls > 100, f"the reader must really have polled during the saves ({polls})"
        assert wins == 0, f"an unprivileged reader read the passwords {wins} times in {polls} polls"
        assert mode(path) == 0o600 and mode(bak) == 0o600
    finally:
        shutil.rmtree(directory)


# -- opening the file ---------------------------------------------------------------------------------
def test_a_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "creds.fifo"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(lambda: c.load(fifo), result), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "loading a FIFO must not block"
    [error] = result
    assert isinstance(error, UsageError) and str(error) == f"{fifo}: cannot read credentials file: a FIFO, not a regular file"


def _catch(call, into):
    try:
        call()
    except BaseException as exc:  # noqa: BLE001
        into.append(exc)


@pytest.mark.parametrize("device, kind", [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")])
def test_devices_are_refused(device, kind):
    with pytest.raises(UsageError) as err:
        c.load(Path(device))
    assert str(err.value) == f"{device}: cannot read credentials file: {kind}, not a regular file"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path):
    link = tmp_path / "creds.txt"
    link.symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="a character device, not a regular file"):
        c.load(link)


def test_dev_null_still_means_an_empty_file():
    creds = c.load(Path("/dev/null"))
    assert creds.mysql.password is None


def test_an_oversized_file_is_refused(tmp_path: Path):
    big = tmp_path / "big.txt"
    big.write_text(ORIGINAL + "#" * c.MAX_BYTES)
    with pytest.raises(UsageError) as err:
        c.load(big)
    assert str(err.value).startswith(f"{big}: cannot read credentials file: ") and "over the limit" in str(err.value)


def test_a_regular_file_at_the_limit_is_read(tmp_path: Path):
    path = tmp_path / "padded.txt"
    path.write_text(ORIGINAL + " " * (c.MAX_BYTES - len(ORIGINAL)))
    assert c.load(path).mysql.port == 3306


def test_the_cli_names_a_fifo_in_one_line_and_exits_2(tmp_path: Path):
    fifo = tmp_path / "creds.fifo"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "sbops", "doctor", "--layer", "host", "--credentials", str(fifo)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"sbops: error: {fifo}: cannot read credentials file: a FIFO, not a regular file\n"
