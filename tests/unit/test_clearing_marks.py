"""The clearing channel's delivery marks from before their 'whole' flag
(fjordbank.adapters.clearing_store): a return marked whole and never placed is placed again
as it was marked, not made again, at its next try; one cut short is not taken for whole.
Opening the store reads no mark (found in review, 2026-12-06: every mark was read, parsed
and synced in the store's constructor, 2,000 of them in 22 s)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os

import pytest

from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.domain import safexml

RETURN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.004.001.09"><PmtRtr><GrpHdr>'
    b"<MsgId>RET-in1</MsgId><CreDtTm>2026-12-06T17:00:00</CreDtTm></GrpHdr></PmtRtr></Document>\n"
)


def _legacy(root, marks: dict[str, bytes]) -> None:
    """Marks as the code before the 'whole' flag left them: the mark alone."""
    ClearingDirs(root)
    for name, body in marks.items():
        (root / "delivered" / name).write_bytes(body)


def _parses(monkeypatch) -> list[int]:
    parsed: list[int] = []
    real_parse = safexml.parse

    def counted(data, **kwargs):
        parsed.append(len(data))
        return real_parse(data, **kwargs)

    monkeypatch.setattr(safexml, "parse", counted)
    return parsed


def test_opening_the_store_reads_no_mark(tmp_path, monkeypatch):
    """Every historical pain.001 mark (never flagged by the older code, and never read for
    delivery again) was read, parsed and synced when the store opened, before the service
    ran."""
    root = tmp_path / "clearing"
    _legacy(root, {**{f"F{n}.xml": b"<pain.001/>" for n in range(20)}, "RET-in1.xml": RETURN})
    parsed = _parses(monkeypatch)
    channel = ClearingDirs(root)
    assert parsed == [] and list(channel.delivered_marks.glob("*.whole")) == []
    with pytest.raises(FileExistsError):  # a pain.001 marked: delivered, nothing read
        channel.deliver("F1.xml", b"<pain.001/>")
    assert parsed == []


def test_a_return_marked_whole_before_the_flag_existed_is_placed_as_marked_not_made_again(
    tmp_path, monkeypatch, caplog
):
    """At the deploy of the flag, a return whose mark was whole and unflagged (killed between
    the mark and the file) was made again at its next try: a new creation time and
    settlement date, the mark overwritten (found in a review, 2026-12-06). Its mark is
    looked at then, once."""
    root = tmp_path / "clearing"
    _legacy(
        root,
        {
            "RET-in1.xml": RETURN,
            "RET-in2.xml": RETURN[:150],  # cut short by a kill while it was written
            "RET-in3.xml": b"\0" * len(RETURN),  # its size on disk, its data lost in a crash
            "RET-in4.xml": b"",  # a crash before either
        },
    )
    caplog.set_level(logging.INFO, logger="clearing.channel")
    channel = ClearingDirs(root)  # the store opens after the deploy
    parsed = _parses(monkeypatch)
    channel.deliver("RET-in1.xml", b"<made again/>", resend_lost=True)
    assert parsed == [len(RETURN)]
    assert (channel.outbox / "RET-in1.xml").read_bytes() == RETURN  # the same message as marked
    assert (channel.delivered_marks / "RET-in1.xml").read_bytes() == RETURN
    assert (channel.delivered_marks / "RET-in1.xml.whole").exists()
    for name in ("RET-in2.xml", "RET-in3.xml", "RET-in4.xml"):  # written again, whole
        channel.deliver(name, b"<return written again/>", resend_lost=True)
        assert (channel.outbox / name).read_bytes() == b"<return written again/>"
    assert parsed == [len(RETURN), 150, len(RETURN)]  # the empty mark: not read
    said = sorted(r.file for r in caplog.records if "cut short" in r.getMessage())  # type: ignore[attr-defined]
    assert said == ["RET-in2.xml", "RET-in3.xml"]


def test_a_whole_mark_of_a_return_is_found_whole_where_locks_need_a_mark_open_for_writing(tmp_path, monkeypatch):
    """On NFS flock is emulated by fcntl locks, and an exclusive lock on a file open only for
    reading fails with EBADF: the mark was opened read-only to be checked, so a whole mark
    was never flagged, and its return was made again."""
    root = tmp_path / "clearing"
    _legacy(root, {"RET-in1.xml": RETURN})
    real_flock = fcntl.flock

    def nfs(fd, operation):
        if operation & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", nfs)
    channel = ClearingDirs(root)
    channel.deliver("RET-in1.xml", b"<made again/>", resend_lost=True)
    assert (channel.outbox / "RET-in1.xml").read_bytes() == RETURN


def test_a_stale_whole_flag_never_sits_on_a_mark_written_again_and_cut_short(tmp_path, monkeypatch):
    """A mark is written afresh (empty: a crash before either) while a flag says it whole (a
    crash that kept the flag and lost the mark's data): killed while writing, the part sat
    under the flag and was placed as the return at its next try."""

    class Killed(BaseException):
        pass

    root = tmp_path / "clearing"
    channel = ClearingDirs(root)
    (channel.delivered_marks / "RET-in5.xml").touch()
    (channel.delivered_marks / "RET-in5.xml.whole").touch()

    def cut(fd, data):
        os.write(fd, data[:20])
        monkeypatch.setattr(os, "ftruncate", lambda *_: None)  # nothing of the process runs any more
        monkeypatch.setattr(os, "unlink", lambda *_a, **_k: None)
        raise Killed

    monkeypatch.setattr("fjordbank.adapters.clearing_store._write_all", cut)
    with pytest.raises(Killed):
        channel.deliver("RET-in5.xml", RETURN, resend_lost=True)
    monkeypatch.undo()
    assert not (channel.delivered_marks / "RET-in5.xml.whole").exists()
    channel.deliver("RET-in5.xml", RETURN, resend_lost=True)
    assert (channel.outbox / "RET-in5.xml").read_bytes() == RETURN


def test_a_mark_is_read_at_most_until_it_is_flagged_whole_and_new_marks_are_flagged_as_written(tmp_path, monkeypatch):
    root = tmp_path / "clearing"
    _legacy(root, {"RET-in1.xml": RETURN, "RET-in2.xml": RETURN[:99]})
    parsed = _parses(monkeypatch)
    channel = ClearingDirs(root)
    channel.deliver("F2.xml", b"<pain.001 2/>")  # marks written from now on are flagged as they are written
    channel.deliver("RET-in3.xml", RETURN, resend_lost=True)
    assert parsed == []
    channel.deliver("RET-in1.xml", b"<made again/>", resend_lost=True)
    channel.deliver("RET-in2.xml", RETURN, resend_lost=True)  # cut short: written again whole
    assert parsed == [len(RETURN), 99]
    assert sorted(p.name for p in channel.delivered_marks.glob("*.whole")) == [
        "F2.xml.whole",
        "RET-in1.xml.whole",
        "RET-in2.xml.whole",
        "RET-in3.xml.whole",
    ]
    for name in ("RET-in1.xml", "RET-in2.xml", "RET-in3.xml"):
        with pytest.raises(FileExistsError):  # placed: never again
            channel.deliver(name, RETURN, resend_lost=True)
    assert parsed == [len(RETURN), 99]
