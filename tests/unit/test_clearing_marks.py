"""The clearing channel's delivery marks from before their 'whole' flag
(fjordbank.adapters.clearing_store): a return marked whole and never placed is placed again
as it was marked, not made again, once the store has opened; one cut short is not taken for
whole."""

from __future__ import annotations

import logging

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


def test_a_return_marked_whole_before_the_flag_existed_is_placed_as_marked_not_made_again(tmp_path, caplog):
    """At the deploy of the flag, a return whose mark was whole and unflagged (killed between
    the mark and the file) was made again at its next try: a new creation time and
    settlement date, the mark overwritten (found in a review, 2026-12-06)."""
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
    caplog.set_level(logging.WARNING, logger="clearing.channel")
    channel = ClearingDirs(root)  # the store opens after the deploy
    marks = channel.delivered_marks
    assert sorted(p.name for p in marks.glob("*.whole")) == ["RET-in1.xml.whole"]
    said = sorted(r.file for r in caplog.records if "cut short" in r.getMessage())  # type: ignore[attr-defined]
    assert said == ["RET-in2.xml", "RET-in3.xml"]
    channel.deliver("RET-in1.xml", b"<made again/>", resend_lost=True)
    assert (channel.outbox / "RET-in1.xml").read_bytes() == RETURN  # the same message as marked
    assert (marks / "RET-in1.xml").read_bytes() == RETURN
    for name in ("RET-in2.xml", "RET-in3.xml", "RET-in4.xml"):  # written again, whole
        channel.deliver(name, b"<return written again/>", resend_lost=True)
        assert (channel.outbox / name).read_bytes() == b"<return written again/>"


def test_each_mark_is_read_at_a_start_until_it_is_flagged_whole_and_new_marks_are_flagged_as_written(
    tmp_path, monkeypatch
):
    root = tmp_path / "clearing"
    _legacy(root, {"F1.xml": b"<pain.001/>", "RET-in1.xml": RETURN, "RET-in2.xml": RETURN[:99]})
    parsed: list[int] = []
    real_parse = safexml.parse

    def counted(data, **kwargs):
        parsed.append(len(data))
        return real_parse(data, **kwargs)

    monkeypatch.setattr(safexml, "parse", counted)
    channel = ClearingDirs(root)
    assert len(parsed) == 3
    flags = sorted(p.name for p in channel.delivered_marks.glob("*.whole"))
    assert flags == ["F1.xml.whole", "RET-in1.xml.whole"]
    channel.deliver("F2.xml", b"<pain.001 2/>")  # marks written from now on are flagged as they are written
    channel.deliver("RET-in3.xml", RETURN, resend_lost=True)
    parsed.clear()
    ClearingDirs(root)  # a start again: only the one cut short is looked at again
    assert parsed == [99]
    channel.deliver("RET-in2.xml", RETURN, resend_lost=True)  # written again whole at its next try
    parsed.clear()
    again = ClearingDirs(root)
    assert parsed == []  # nothing left to look at
    assert sorted(p.name for p in again.delivered_marks.glob("*.whole")) == [
        "F1.xml.whole",
        "F2.xml.whole",
        "RET-in1.xml.whole",
        "RET-in2.xml.whole",
        "RET-in3.xml.whole",
    ]
