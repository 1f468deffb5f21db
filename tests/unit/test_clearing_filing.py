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
from prometheus_client import REGISTRY

from fjordbank.adapters import clearing_store
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


# ---- a move: an exclusive copy where a link is refused; the set-aside counted as it is done ----
def _link_refused(monkeypatch, err: int, *, meanwhile=None) -> None:
    """link(2) refused with ``err`` (EPERM: fs.protected_hardlinks and a file another user
    wrote); ``meanwhile`` runs first, as another process would between the check and the move."""

    def refused(src, dst, *args, **kwargs):
        if meanwhile is not None:
            meanwhile(Path(dst))
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "link", refused)


def test_a_file_another_user_wrote_never_replaces_one_filed_away_meanwhile(channel, monkeypatch, caplog):
    """With fs.protected_hardlinks=1, link(2) refuses with EPERM a file the process does not
    own (the transfer service writes the inbox as another user): taken for a file system
    without hard links, the move fell back to a checked rename, which replaced the file
    another process filed away under the name between the check and the rename."""
    ours = channel.incoming_dir / "NICS7.xml"
    ours.write_bytes(b"<ours/>")
    raced: list[Path] = []

    def the_other_process(target: Path) -> None:
        if not raced:
            raced.append(target)
            target.write_bytes(b"<the other process's/>")

    _link_refused(monkeypatch, errno.EPERM, meanwhile=the_other_process)
    monkeypatch.setattr(clearing_store, "_copy_said", False)
    caplog.set_level(logging.INFO, logger="clearing.channel")
    channel.file_away(ours)
    later = channel.incoming_dir / "NICS6.xml"
    later.write_bytes(b"<later/>")
    channel.file_away(later, ".rejected")
    kept = {p.name: p.read_bytes() for p in channel.processed.iterdir()}
    assert kept["NICS7.xml"] == b"<the other process's/>"
    assert sorted(kept.values()) == [b"<later/>", b"<ours/>", b"<the other process's/>"]
    assert list(channel.incoming_dir.iterdir()) == [] and channel.unmovable == set()
    said = [r for r in caplog.records if "copied" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"]  # once a process


def test_a_file_system_that_answers_a_link_with_eio_has_its_files_copied_not_all_skipped(channel, monkeypatch):
    _link_refused(monkeypatch, errno.EIO)
    for n in range(3):
        (channel.inbox / f"ANS{n}.xml").write_bytes(f"<{n}/>".encode())
        channel.file_away(channel.inbox / f"ANS{n}.xml")
    assert sorted(p.read_bytes() for p in channel.processed.iterdir()) == [b"<0/>", b"<1/>", b"<2/>"]
    assert channel.unmovable == set() and channel.answers() == []


def test_a_copy_cut_short_leaves_nothing_in_processed_and_the_file_where_it_was(channel, monkeypatch):
    _link_refused(monkeypatch, errno.EPERM)
    answer = channel.inbox / "ANS4.xml"
    answer.write_bytes(b"<answer/>")
    monkeypatch.setattr(os, "fsync", lambda _fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "no space")))
    channel.file_away(answer)  # logged for an operator
    assert answer.read_bytes() == b"<answer/>" and list(channel.processed.iterdir()) == []


def test_a_copy_killed_before_the_unlink_is_read_again_and_filed_away_beside_its_copy(channel, monkeypatch):
    """A copy has no inode in common with the file: killed between the copy and the unlink,
    the file is read again at the next listing (handling is idempotent) and filed away
    again beside the first copy, never over it."""

    class Killed(BaseException):
        pass

    _link_refused(monkeypatch, errno.EPERM)
    answer = channel.inbox / "ANS5.xml"
    answer.write_bytes(b"<answer/>")
    real_unlink = os.unlink

    def killed(path, *args, **kwargs):
        if Path(path) == answer:
            raise Killed
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", killed)
    with pytest.raises(Killed):
        channel.file_away(answer)
    monkeypatch.setattr(os, "unlink", real_unlink)
    later = ClearingDirs(channel.root)
    assert later.answers() == [answer]
    later.file_away(answer)
    assert sorted(p.read_bytes() for p in later.processed.iterdir()) == [b"<answer/>", b"<answer/>"]
    assert later.answers() == []


def _set_aside(why: str) -> float:
    return REGISTRY.get_sample_value("fjb_clearing_files_set_aside_total", {"file": "answer", "why": why}) or 0.0


def test_a_file_set_aside_is_counted_when_another_process_finishes_its_move(tmp_path, monkeypatch, caplog):
    """Another process listing between this one's link and its unlink took the file from
    the inbox (said as a crash's); this one's unlink found nothing, and the set-aside was
    never counted."""
    ours, theirs = ClearingDirs(tmp_path / "clearing"), ClearingDirs(tmp_path / "clearing")
    answer = ours.inbox / "ANS5.xml"
    answer.write_bytes(b"<answer/>")
    before = _set_aside("unknown")
    real_unlink, listed = os.unlink, []

    def unlink(path, *args, **kwargs):
        if Path(path) == answer and not listed:
            listed.append(None)
            listed[0] = theirs.answers()  # the other process lists meanwhile
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    caplog.set_level(logging.INFO, logger="clearing.channel")
    ours.file_away(answer, ".unknown")
    assert listed == [[]] and not answer.exists()
    assert [p.name for p in ours.processed.iterdir()] == ["ANS5.xml.unknown"]
    assert _set_aside("unknown") == before + 1
    said = [r.getMessage() for r in caplog.records if "taken from where it was" in r.getMessage()]
    assert said == ["a file filed away by another process, or left by a crash, taken from where it was"]
