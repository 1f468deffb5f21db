"""Filing away the clearing house's files (fjordbank.adapters.clearing_store), found in a
review of the move that never overwrites (2026-12-06): a momentary error of the mount while
a listing looks hid a file until a restart, a file system that refuses a link for want of
ownership fell back to a rename that could overwrite, a file set aside was not counted when
another process finished its move, and every listing scanned ``processed/`` once per
waiting file with a second name."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from fjordbank.adapters.clearing_store import ClearingDirs


@pytest.fixture
def channel(tmp_path) -> ClearingDirs:
    return ClearingDirs(tmp_path / "clearing")


def _archived(channel: ClearingDirs, path: Path) -> None:
    """A second name of the file outside ``processed/``, as a transfer service keeping an
    archive by hard links leaves it."""
    archive = channel.root / "archive"
    archive.mkdir(exist_ok=True)
    os.link(path, archive / path.name)


# ---- a listing: a check that fails is no file filed away ---------------------------------------
def test_a_momentary_error_of_the_mount_while_a_listing_looks_does_not_hide_the_file(channel, monkeypatch, caplog):
    """EIO from a FUSE or NFS mount on the stat of one file put it among the unmovable ones,
    never read again until a restart, said as 'filed away and left where it was'."""
    payments = channel.incoming_dir / "NICS8.xml"
    payments.write_bytes(b"<payments/>")
    real_stat, failed = Path.stat, []

    def flaky(self, *args, **kwargs):
        if self == payments and not failed:
            failed.append(self)
            raise OSError(errno.EIO, "Input/output error")
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", flaky)
    caplog.set_level(logging.INFO, logger="clearing.channel")
    assert channel.incoming() == [payments]  # read: handling it is idempotent, file_away looks again
    assert failed and channel.incoming() == [payments]
    assert channel.unmovable == set()
    assert not [r for r in caplog.records if "left" in r.getMessage() or r.levelno >= logging.ERROR]


def test_a_momentary_error_scanning_processed_does_not_hide_a_file_with_a_second_name(channel, monkeypatch):
    answer = channel.inbox / "ANS8.xml"
    answer.write_bytes(b"<answer/>")
    _archived(channel, answer)
    real_scandir = os.scandir

    def flaky(path=".", *args, **kwargs):
        if Path(path) == channel.processed:
            raise OSError(errno.EIO, "Input/output error")
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", flaky)
    assert channel.answers() == [answer]
    monkeypatch.undo()
    assert channel.answers() == [answer] and channel.unmovable == set()
    channel.file_away(answer)
    assert [p.name for p in channel.processed.iterdir()] == ["ANS8.xml"] and channel.answers() == []


def test_a_file_filed_away_that_cannot_be_removed_from_where_it_was_is_skipped_for_an_operator(
    channel, monkeypatch, caplog
):
    answer = channel.inbox / "ANS9.xml"
    answer.write_bytes(b"<answer/>")
    os.link(answer, channel.processed / "ANS9.xml")  # filed away; the unlink never ran
    real_unlink = os.unlink

    def refused(path, *args, **kwargs):
        if Path(path) == answer:
            raise PermissionError(errno.EACCES, "permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    assert channel.answers() == []
    assert channel.unmovable == {answer}
    assert [r.levelname for r in caplog.records if "cannot be removed" in r.getMessage()] == ["ERROR"]


# ---- a listing: processed/ is scanned at most once ---------------------------------------------
def test_a_listing_scans_processed_at_most_once_and_only_for_a_file_with_a_second_name(channel, monkeypatch):
    """A transfer service keeping an archive by hard links gave every waiting file a second
    name: processed/ (never pruned; 200,000 files took 2.7 s) was scanned once per file at
    every listing, in the event loop."""
    for n in range(50):
        (channel.processed / f"OLD{n}.xml").write_bytes(b"<old/>")
    waiting = [channel.incoming_dir / f"NEW{n}.xml" for n in range(5)]
    for path in waiting:
        path.write_bytes(b"<new/>")
    scans: list[Path] = []
    real_scandir = os.scandir

    def counted(path=".", *args, **kwargs):
        if Path(path) == channel.processed:
            scans.append(Path(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", counted)
    assert channel.incoming() == waiting
    assert scans == []  # no file with a second name: nothing to look for
    for path in waiting:
        _archived(channel, path)
    os.link(waiting[2], channel.processed / "NEW2.xml")  # filed away, left by a crash
    assert channel.incoming() == [waiting[0], waiting[1], waiting[3], waiting[4]]
    assert len(scans) == 1
    assert not waiting[2].exists()  # taken from where it was
