"""The file exchange with the clearing house (fjordbank.adapters.clearing_store): a name is
delivered once, whatever the clearing house does with the first copy meanwhile."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from fjordbank.adapters.clearing_store import STALE_STAGING_SECONDS, ClearingDirs
from fjordbank.domain.iso20022 import MAX_XML_BYTES


@pytest.fixture
def channel(tmp_path) -> ClearingDirs:
    return ClearingDirs(tmp_path / "clearing")


def test_a_name_taken_and_filed_away_by_the_clearing_house_is_not_delivered_again(channel):
    channel.deliver("F1.xml", b"<first/>")
    (channel.outbox / "F1.xml").rename(channel.sent / "F1.xml")  # taken
    (channel.sent / "F1.xml").unlink()  # and archived elsewhere
    with pytest.raises(FileExistsError):
        channel.deliver("F1.xml", b"<second/>")
    assert channel.delivered("F1.xml") and list(channel.outbox.iterdir()) == []
    assert channel.delivered_copy("F1.xml") == b"<first/>"  # the bank's copy: its CreDtTm is the file's writtenAt


def test_a_second_writer_waits_for_the_first_and_does_not_deliver_a_copy_taken_meanwhile(channel, monkeypatch):
    """Writer B reaches the name while A is between its check and its link; the clearing
    house takes A's copy at once. B used to find neither in the outbox nor in sent/ at its
    check, and its link then put a second copy in the outbox."""
    real_link, outcome = os.link, {}
    second = threading.Thread(target=lambda: _deliver(channel, outcome))

    def link(src, dst):
        if not second.is_alive() and "b" not in outcome:
            second.start()
            second.join(0.3)
            assert second.is_alive(), "B did not wait for A's delivery"
        real_link(src, dst)
        os.rename(dst, channel.sent / os.path.basename(dst))  # the clearing house takes it at once

    monkeypatch.setattr(os, "link", link)
    channel.deliver("F1.xml", b"<first/>")
    second.join(5)
    assert isinstance(outcome["b"], FileExistsError)
    assert list(channel.outbox.iterdir()) == [] and (channel.sent / "F1.xml").read_bytes() == b"<first/>"


def _deliver(channel: ClearingDirs, outcome: dict) -> None:
    try:
        channel.deliver("F1.xml", b"<second/>")
        outcome["b"] = None
    except Exception as exc:
        outcome["b"] = exc


def test_a_crash_after_the_copy_was_placed_and_before_its_mark_still_counts_as_delivered(channel):
    (channel.outbox / "F1.xml").write_bytes(b"<first/>")  # placed; the mark never written
    (channel.delivered_marks / "F1.xml").touch()
    with pytest.raises(FileExistsError):
        channel.deliver("F1.xml", b"<second/>")
    assert channel.delivered("F1.xml")
    channel.deliver("F2.xml", b"<other/>")  # an empty mark of a crash before the copy: delivered now
    (channel.delivered_marks / "F3.xml").touch()
    assert not channel.delivered("F3.xml")
    channel.deliver("F3.xml", b"<third/>")
    assert (channel.outbox / "F3.xml").read_bytes() == b"<third/>"


def test_a_file_set_aside_is_counted_by_what_it_was_and_why(tmp_path):
    from prometheus_client import REGISTRY

    def count(file: str, why: str) -> float | None:
        return REGISTRY.get_sample_value("fjb_clearing_files_set_aside_total", {"file": file, "why": why})

    dirs = ClearingDirs(tmp_path / "clearing")
    before = {(f, w): count(f, w) for f, w in [("incoming", "rejected"), ("answer", "unknown"), ("answer", "rejected")]}
    assert all(v is not None for v in before.values())  # every pair has a series from the start
    payments_in = dirs.incoming_dir / "NICS1.xml"
    answer = dirs.inbox / "ANS1.xml"
    handled = dirs.inbox / "ANS2.xml"
    for path in (payments_in, answer, handled):
        path.write_bytes(b"<x/>")
    dirs.file_away(payments_in, ".rejected")
    dirs.file_away(answer, ".unknown")
    dirs.file_away(handled)  # handled: not set aside, not counted
    assert count("incoming", "rejected") == before[("incoming", "rejected")] + 1  # type: ignore[operator]
    assert count("answer", "unknown") == before[("answer", "unknown")] + 1  # type: ignore[operator]
    assert count("answer", "rejected") == before[("answer", "rejected")]
    assert (dirs.processed / "NICS1.xml.rejected").exists() and (dirs.processed / "ANS2.xml").exists()


def test_a_file_another_process_filed_away_first_is_not_an_error(channel):
    """Two clearing instances overlap in a rollout and both read one answer: the second's
    file-away found nothing to move and raised FileNotFoundError, which restarted its
    reading loop (the answer's effects are idempotent, the error was not)."""
    answer = channel.inbox / "ANS1.xml"
    answer.write_bytes(b"<x/>")
    channel.file_away(answer)
    channel.file_away(answer)  # the second instance, a moment later
    channel.file_away(answer, ".rejected")
    assert [p.name for p in channel.processed.iterdir()] == ["ANS1.xml"]


# ---- found in review (2026-12-06) -------------------------------------------------------------
def test_a_crash_after_the_mark_and_before_the_file_never_delivers_the_name_twice(channel):
    """The mark is written first: a crash before the file is placed leaves a name marked
    and not placed, which is never delivered again (an operator asks the clearing house).
    The other order left a name placed and unmarked, delivered again once the clearing
    house had filed its copy away: a duplicate it rejects whole."""
    (channel.delivered_marks / "F1.xml").write_bytes(b"<first/>")  # marked; the process died then
    assert channel.delivered("F1.xml")
    with pytest.raises(FileExistsError):
        channel.deliver("F1.xml", b"<first/>")
    assert list(channel.outbox.iterdir()) == []


def test_a_file_that_could_not_be_placed_is_not_marked(channel, monkeypatch):
    def full(*_args):
        raise OSError(errno.ENOSPC, "no space left on device")

    monkeypatch.setattr(os, "link", full)
    with pytest.raises(OSError, match="no space"):
        channel.deliver("F1.xml", b"<first/>")
    monkeypatch.undo()
    assert not channel.delivered("F1.xml")
    channel.deliver("F1.xml", b"<first/>")  # tried again: delivered
    assert (channel.outbox / "F1.xml").read_bytes() == b"<first/>"


def test_files_are_written_whole_outside_the_outbox_and_a_crashed_writers_part_is_cleared(tmp_path):
    root = tmp_path / "clearing"
    channel = ClearingDirs(root)
    channel.deliver("F1.xml", b"<first/>")
    assert [p.name for p in channel.outbox.iterdir()] == ["F1.xml"]  # nothing half-written beside it
    old, fresh = channel.staging / ".tmp-crashed", channel.staging / ".tmp-at-work"
    legacy = channel.outbox / ".tmp-from-before"  # a crashed writer's, when files were written in the outbox
    for part in (old, fresh, legacy):
        part.write_bytes(b"<half")
    long_ago = time.time() - STALE_STAGING_SECONDS - 60
    for part in (old, legacy):
        os.utime(part, (long_ago, long_ago))
    ClearingDirs(root)  # the next start
    assert not old.exists() and not legacy.exists() and fresh.exists()


def test_a_file_larger_than_a_payment_file_may_be_is_not_read_whole(channel):
    huge = channel.inbox / "HUGE.xml"
    with huge.open("wb") as fh:
        fh.truncate(MAX_XML_BYTES * 4)  # sparse: no memory, no disk
    assert len(channel.read_answer(huge)) == MAX_XML_BYTES + 1  # its parse refuses it; it is set aside


def test_a_file_that_cannot_be_filed_away_is_skipped_not_read_again_and_again(channel, monkeypatch):
    long_name = channel.inbox / ("A" * 248 + ".xml")  # 252 bytes: 261 with the suffix, over 255
    long_name.write_bytes(b"<x/>")
    channel.file_away(long_name, ".rejected")  # the suffix made the name too long: kept short
    (kept,) = channel.processed.iterdir()
    assert kept.name.startswith("A" * 120 + "-") and kept.name.endswith(".rejected")
    stuck, later = channel.inbox / "A1.xml", channel.inbox / "B2.xml"
    stuck.write_bytes(b"<x/>")
    later.write_bytes(b"<y/>")
    real_link = os.link

    def refused(src, dst, *args, **kwargs):
        if Path(src) == stuck:
            raise PermissionError(errno.EACCES, "permission denied")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", refused)
    assert channel.answers() == [stuck, later]
    channel.file_away(stuck)  # logged for an operator, not raised
    assert channel.answers() == [later]  # the answers after it are read


# ---- found in review (2026-12-06): lost returns, names the channel did not read ----------------
def _killed_after_the_mark(
    channel: ClearingDirs, name: str, data: bytes, monkeypatch, *, resend_lost: bool = False
) -> None:
    """A delivery killed between its mark and its file (SIGKILL: nothing runs after it, so
    the mark is not taken back)."""

    class Killed(BaseException):
        pass

    def place(_name, _data):
        monkeypatch.setattr(os, "ftruncate", lambda *_: None)  # nothing of the process runs any more
        monkeypatch.setattr(os, "unlink", lambda *_a, **_k: None)
        raise Killed

    monkeypatch.setattr(channel, "_place", place)
    with pytest.raises(Killed):
        channel.deliver(name, data, resend_lost=resend_lost)
    monkeypatch.undo()
    assert (channel.delivered_marks / name).read_bytes() == data and list(channel.outbox.iterdir()) == []


def test_a_return_killed_between_its_mark_and_its_file_is_placed_at_the_next_try(channel, monkeypatch):
    """A return is the same message (its id) on every try: one marked and never placed is
    placed again, where a pain.001 so left stays undelivered (an operator asks the clearing
    house: a second copy of it is rejected whole)."""
    _killed_after_the_mark(channel, "RET-in1.xml", b"<return first try/>", monkeypatch, resend_lost=True)
    channel.deliver("RET-in1.xml", b"<return made again/>", resend_lost=True)
    # the mark's own copy: one made again could differ (its times: found in review of the first fix)
    assert (channel.outbox / "RET-in1.xml").read_bytes() == b"<return first try/>"
    assert channel.delivered_copy("RET-in1.xml") == b"<return first try/>"
    assert (channel.delivered_marks / "RET-in1.xml").read_bytes() == b"<return first try/>"
    with pytest.raises(FileExistsError):  # placed: never twice, waiting or taken
        channel.deliver("RET-in1.xml", b"<return/>", resend_lost=True)
    (channel.outbox / "RET-in1.xml").rename(channel.sent / "RET-in1.xml")
    with pytest.raises(FileExistsError):
        channel.deliver("RET-in1.xml", b"<return/>", resend_lost=True)
    (channel.sent / "RET-in1.xml").unlink()  # taken and filed away: its flag says it was placed
    with pytest.raises(FileExistsError):
        channel.deliver("RET-in1.xml", b"<return/>", resend_lost=True)
    assert list(channel.outbox.iterdir()) == []
    _killed_after_the_mark(channel, "F1.xml", b"<pain.001/>", monkeypatch)  # a pain.001: as it was
    with pytest.raises(FileExistsError):
        channel.deliver("F1.xml", b"<pain.001/>")
    assert list(channel.outbox.iterdir()) == []


def test_a_file_with_an_upper_case_extension_is_read_and_one_with_another_is_said_once(channel, caplog):
    for folder in (channel.incoming_dir, channel.inbox):
        for name in ("F1.XML", "F2", "F3.xml", "F4.Xml"):
            (folder / name).write_bytes(b"<x/>")
    assert [p.name for p in channel.incoming()] == ["F1.XML", "F3.xml", "F4.Xml"]
    assert [p.name for p in channel.answers()] == ["F1.XML", "F3.xml", "F4.Xml"]
    channel.incoming()
    channel.answers()
    said = [r for r in caplog.records if "not read" in r.getMessage()]
    assert [(r.levelname, r.file) for r in said] == [  # type: ignore[attr-defined]
        ("WARNING", str(channel.incoming_dir / "F2")),
        ("WARNING", str(channel.inbox / "F2")),
    ]


def test_a_writers_temporary_file_is_said_only_once_it_is_left_behind(channel, caplog):
    at_work, left = channel.incoming_dir / ".tmp-at-work", channel.incoming_dir / ".tmp-left"
    for part in (at_work, left):
        part.write_bytes(b"<half")
    long_ago = time.time() - STALE_STAGING_SECONDS - 60
    os.utime(left, (long_ago, long_ago))
    assert channel.incoming() == []
    said = [r.file for r in caplog.records if "not read" in r.getMessage()]  # type: ignore[attr-defined]
    assert said == [str(left)]


def test_a_file_filed_away_under_a_name_filed_before_never_replaces_it(channel):
    for n, why in enumerate(("", "", ".rejected", ".rejected")):
        path = channel.incoming_dir / "NICS1.xml"
        path.write_bytes(f"<copy {n}/>".encode())
        channel.file_away(path, why)
    kept = {p.name: p.read_bytes() for p in channel.processed.iterdir()}
    assert sorted(kept.values()) == [b"<copy 0/>", b"<copy 1/>", b"<copy 2/>", b"<copy 3/>"]
    assert kept["NICS1.xml"] == b"<copy 0/>" and kept["NICS1.xml.rejected"] == b"<copy 2/>"
    later = {name: body for name, body in kept.items() if name not in ("NICS1.xml", "NICS1.xml.rejected")}
    assert sorted(name.endswith(".xml.rejected") for name in later) == [False, True]
    assert all(name.startswith("NICS1.") for name in later)
    long_name = "A" * 248 + ".xml"  # too long with its suffix: kept short, and not over the first
    for body in (b"<long 1/>", b"<long 2/>"):
        (channel.inbox / long_name).write_bytes(body)
        channel.file_away(channel.inbox / long_name, ".rejected")
    longs = [p.read_bytes() for p in channel.processed.iterdir() if p.name.startswith("A" * 120)]
    assert sorted(longs) == [b"<long 1/>", b"<long 2/>"]


def test_a_return_whose_mark_was_cut_short_is_written_again_not_placed_as_it_is(channel, monkeypatch):
    """A full disk or a kill while the mark was written left part of it; placed as it was,
    the part went to the clearing house as the return (found in review, 2026-12-06)."""
    (channel.delivered_marks / "RET-in2.xml").write_bytes(b"<return cut sh")  # no flag: not whole
    channel.deliver("RET-in2.xml", b"<return whole/>", resend_lost=True)
    assert (channel.outbox / "RET-in2.xml").read_bytes() == b"<return whole/>"
    assert (channel.delivered_marks / "RET-in2.xml").read_bytes() == b"<return whole/>"

    def full(_fd, _data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fjordbank.adapters.clearing_store._write_all", full)
    with pytest.raises(OSError):
        channel.deliver("RET-in3.xml", b"<return/>", resend_lost=True)
    monkeypatch.undo()
    assert (channel.delivered_marks / "RET-in3.xml").read_bytes() == b""  # nothing kept to place as it is
    channel.deliver("RET-in3.xml", b"<return/>", resend_lost=True)
    assert (channel.outbox / "RET-in3.xml").read_bytes() == b"<return/>"


# ---- found in a review (2026-12-06): filing away raced, legacy marks had no 'whole' flag -------
def test_a_file_filed_away_never_replaces_one_another_process_filed_between_the_check_and_the_move(
    channel, monkeypatch
):
    """Two instances (or the inbox and incoming/ at the same instant) filing away files of one
    name: the other's file appeared under the free name this one had picked, and the rename
    replaced it, the bank's only copy of what was credited from it."""
    real_free, raced_once = ClearingDirs._free, []

    def raced(self, name, suffix):
        target = real_free(self, name, suffix)
        if not raced_once:
            raced_once.append(target)
            target.write_bytes(b"<the other process's/>")  # filed away by another, after the check
        return target

    ours = channel.incoming_dir / "NICS9.xml"
    ours.write_bytes(b"<ours/>")
    monkeypatch.setattr(ClearingDirs, "_free", raced)
    channel.file_away(ours)
    monkeypatch.undo()
    kept = {p.name: p.read_bytes() for p in channel.processed.iterdir()}
    assert kept["NICS9.xml"] == b"<the other process's/>"
    assert sorted(kept.values()) == [b"<ours/>", b"<the other process's/>"] and not ours.exists()


def test_a_file_filed_away_and_left_in_place_by_a_crash_is_not_read_again(channel, monkeypatch):
    """Killed between the link into processed/ and the unlink from the inbox, the file is in
    both: a later look sees it filed away (and finishes the move), never a new file."""

    class Killed(BaseException):
        pass

    answer, payments = channel.inbox / "ANS2.xml", channel.incoming_dir / "NICS2.xml"
    for path in (answer, payments):
        path.write_bytes(b"<x/>")
    real_unlink = os.unlink

    def killed(path, *args, **kwargs):
        if Path(path).parent in (channel.inbox, channel.incoming_dir):
            raise Killed
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", killed)
    for path in (answer, payments):
        with pytest.raises(Killed):
            channel.file_away(path)
    monkeypatch.undo()
    assert answer.exists() and payments.exists()  # in both places
    later = ClearingDirs(channel.root)  # the process started again
    assert later.answers() == [] and later.incoming() == []
    assert not answer.exists() and not payments.exists()
    assert sorted(p.name for p in later.processed.iterdir()) == ["ANS2.xml", "NICS2.xml"]
    # and filed away again by a process that had read it before: no second copy
    answer.write_bytes(b"<y/>")
    os.link(answer, later.processed / "ANS2.20261206T000000000000Z.xml")  # linked, not yet unlinked
    later.file_away(answer)
    assert not answer.exists()
    assert sorted(p.name for p in later.processed.iterdir()) == [
        "ANS2.20261206T000000000000Z.xml",
        "ANS2.xml",
        "NICS2.xml",
    ]


def test_a_file_is_filed_away_on_a_file_system_without_hard_links(channel, monkeypatch):
    def no_links(*_args, **_kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    for body in (b"<1/>", b"<2/>"):
        (channel.inbox / "ANS3.xml").write_bytes(body)
        channel.file_away(channel.inbox / "ANS3.xml", ".unknown")
    assert sorted(p.read_bytes() for p in channel.processed.iterdir()) == [b"<1/>", b"<2/>"]
    assert channel.answers() == []
