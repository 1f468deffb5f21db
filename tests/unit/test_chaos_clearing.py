"""The clearing faults' pure parts: the channel that raises while it is down, the files the
clearing service keeps until the channel is back, and the counterparty's answers sent
twice and out of order."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from fjordbank.adapters import faults
from fjordbank.adapters.clearing_store import CHANNEL_DOWN, ClearingChannelDown, ClearingDirs
from fjordbank.adapters.faults import FaultSwitch
from fjordbank.domain.payments import PaymentRequested
from fjordbank.service_layer import clearing
from fjordbank.service_layer.clearing import Clearing
from simulators.counterparty.answers import MAX_HOLD, AnswerPost
from tests.support.memory import AsyncMemoryDocuments


def switch(tmp_path, **entries) -> FaultSwitch:
    path = tmp_path / "faults.json"
    faults.write(path, entries)
    return FaultSwitch(path, "clearing", poll_seconds=0)


def down(tmp_path, sw: FaultSwitch, on: bool) -> None:
    faults.write(sw.path, {CHANNEL_DOWN: {"until": time.time() + 60}} if on else {})
    sw._mtime = None  # the test flips it faster than a file's mtime resolution


def test_the_channel_raises_as_an_outage_while_down_and_works_again_after(tmp_path):
    sw = switch(tmp_path)
    dirs = ClearingDirs(tmp_path / "clearing", sw)
    (dirs.inbox / "a-status.xml").write_bytes(b"<x/>")
    down(tmp_path, sw, True)
    with pytest.raises(ConnectionError):
        dirs.deliver("F1.xml", b"<pain/>")
    with pytest.raises(ClearingChannelDown):
        dirs.answers()
    with pytest.raises(ClearingChannelDown):
        dirs.read_answer(dirs.inbox / "a-status.xml")
    assert not list(dirs.outbox.iterdir())
    down(tmp_path, sw, False)
    dirs.deliver("F1.xml", b"<pain/>")
    assert (dirs.outbox / "F1.xml").read_bytes() == b"<pain/>"
    assert [p.name for p in dirs.answers()] == ["a-status.xml"]


def test_an_entry_past_its_until_or_for_another_service_is_off(tmp_path):
    sw = switch(tmp_path, clearing_channel_down={"until": time.time() - 1})
    ClearingDirs(tmp_path / "c1", sw).deliver("F.xml", b"x")
    sw = switch(tmp_path, clearing_channel_down={"until": time.time() + 60, "services": ["ledger"]})
    ClearingDirs(tmp_path / "c2", sw).deliver("F.xml", b"x")


def payment(n: int) -> PaymentRequested:
    return PaymentRequested(
        payment_id=f"p{n:034x}",
        uid="u1",
        request_id=f"req-{n}",
        kind="external",
        from_account="12345678903",
        to_account="15031200005",
        amount=1_000 + n,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2026-11-30",
        body_hash="0" * 64,
        requested_at="2026-11-30T12:00:00Z",
    )


def test_a_file_the_channel_does_not_take_is_kept_and_sent_once_it_is_back(tmp_path):
    sw = switch(tmp_path)
    dirs = ClearingDirs(tmp_path / "clearing", sw)
    docs = AsyncMemoryDocuments()
    uses = Clearing(docs, dirs, bic="FJBANOKKXXX", retry_seconds=0.1)

    async def status() -> str:
        doc = await docs.get("clearingFiles/FJB1")
        assert doc is not None
        return str(doc.data["status"])

    async def scenario() -> None:
        await clearing.claim(docs, [payment(1)], "FJB1")
        down(tmp_path, sw, True)
        assert await uses.send_or_keep("FJB1", [payment(1)]) is False  # the batch is not failed
        assert list(uses.undelivered) == ["FJB1"] and await status() == "sending"  # not "written" in Firestore
        stop = asyncio.Event()
        task = asyncio.create_task(uses.deliver_pending(stop))
        await asyncio.sleep(0.2)
        assert not list(dirs.outbox.iterdir())  # retried, still down
        down(tmp_path, sw, False)
        for _ in range(100):
            if not uses.undelivered:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
        assert await status() == "written"

    asyncio.run(scenario())
    assert [p.name for p in dirs.outbox.iterdir()] == ["FJB1.xml"]


def drain(post: AnswerPost, fault, passes: int = MAX_HOLD + 2) -> list[str]:
    names = []
    for _ in range(passes):
        names += [name for _source, name, _data in post.release(fault)]
    return names


def test_without_the_fault_each_answer_goes_out_at_once_in_file_order():
    post = AnswerPost(random.Random(1))
    for i in range(5):
        post.add(f"F{i}.xml", f"F{i}-status.xml", b"x", None)
    assert [n for _s, n, _d in post.release(None)] == [f"F{i}-status.xml" for i in range(5)]
    assert post.queue == []


def test_the_counterparty_fault_sends_answers_twice_and_later_files_answers_first():
    post = AnswerPost(random.Random(7))
    fault = {"duplicate_rate": 0.5, "reorder": True}
    for i in range(40):
        post.add(f"F{i:02}.xml", f"F{i:02}-status.xml", b"x", fault)
    assert post.holds("F00.xml") and not post.holds("G.xml")
    first = [n for _s, n, _d in post.release(fault)]
    out = first + drain(post, fault)
    originals = [n for n in out if not n.endswith("-dup.xml")]
    copies = [n for n in out if n.endswith("-dup.xml")]
    assert sorted(originals) == [f"F{i:02}-status.xml" for i in range(40)]  # each once, none lost
    assert 8 <= len(copies) <= 32 and all(c.replace("-dup", "") in originals for c in copies)
    held = [f"F{i:02}-status.xml" for i in range(40) if f"F{i:02}-status.xml" not in first]
    assert held and any(n > min(held) for n in first)  # a later file's answer before an earlier one's
    assert post.queue == [] and not post.holds("F00.xml")


def test_an_outbox_file_leaves_only_with_its_original_answer():
    post = AnswerPost(random.Random(3))
    fault = {"duplicate_rate": 1.0, "reorder": False}
    post.add("F.xml", "F-status.xml", b"x", fault)
    sources = [(s, n) for _ in range(MAX_HOLD + 2) for s, n, _d in post.release(fault)]
    assert ("F.xml", "F-status.xml") in sources and (None, "F-status-dup.xml") in sources
