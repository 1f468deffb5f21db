"""The file exchange with the clearing house (fjordbank.adapters.clearing_store): a name is
delivered once, whatever the clearing house does with the first copy meanwhile."""

from __future__ import annotations

import os
import threading

import pytest

from fjordbank.adapters.clearing_store import ClearingDirs


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
