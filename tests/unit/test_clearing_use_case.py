"""Clearing's use case (fjordbank.service_layer.clearing) on the in-memory fake and a channel
of folders (fjordbank.adapters.clearing_store.ClearingDirs in a temporary directory).

What tests/integration/test_payment_pipeline.py, test_chaos_clearing.py and test_failures.py
promise of clearing, checked in milliseconds: each payment is claimed once, into one file,
however often its message comes (recorded before the file is written, new ones with no
read); a file recorded and never written is written when the service starts; an answer
reads only its file, its payments' steps are published, then marked on the file in one
write and the answer moved on; an answer sent twice publishes the same steps (one message
id each) and leaves the same records; an answer to a file the bank has no record of, or an
unreadable one, is moved aside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from google.api_core.exceptions import DeadlineExceeded
from opentelemetry.context import Context

from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.domain import iso20022
from fjordbank.domain.payments import EXTERNAL, PaymentEvent, PaymentRequested
from fjordbank.service_layer import clearing
from fjordbank.service_layer.clearing import Clearing, file_path, payment_path, submitted
from fjordbank.service_layer.incoming import Incoming
from fjordbank.service_layer.owners import Owners
from tests.support.recording import RecordedBatch, RecordingDocuments
from tests.support.sanctions import sample_sanctions

NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
BIC = "FJBANOKKXXX"
F1, F2 = "FJB20270310090000000000F1", "FJB20270310090000000000F2"


def payment(n: int, amount: int = 1_000) -> PaymentRequested:
    return PaymentRequested(
        payment_id=f"p{n}",
        uid="alice",
        request_id=f"req-{n}",
        kind=EXTERNAL,
        from_account="97100000028",
        to_account="15030000002",
        amount=amount,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2025-03-14",
        body_hash="0" * 64,
        requested_at="2025-03-14T12:00:00Z",
        payee_name="Bergen Rør AS",
    )


class Published:
    """The publisher: what was published, with the trace context each event continued."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.events: list[PaymentEvent] = []
        self.fail = fail

    async def __call__(self, out: list[PaymentEvent], parents: Mapping[str, Context | None]) -> None:
        if self.fail is not None:
            raise self.fail
        self.events += out


@pytest.fixture
def dirs(tmp_path: Path) -> ClearingDirs:
    return ClearingDirs(tmp_path / "clearing")


def uses(dirs: ClearingDirs) -> tuple[Clearing, RecordingDocuments]:
    docs = RecordingDocuments()
    return Clearing(docs, dirs, bic=BIC, clock=lambda: NOW), docs


def answer(dirs: ClearingDirs, file_id: str, *statuses: iso20022.TransactionStatus, name: str = "") -> Path:
    report = iso20022.StatusReport(f"ANS{file_id}"[:35], file_id, NOW, statuses)
    path = dirs.inbox / (name or f"{file_id}-status.xml")
    path.write_bytes(iso20022.build_pain002(report))
    return path


async def data(docs: RecordingDocuments, path: str) -> dict:
    doc = await docs.get(path)
    assert doc is not None, path
    return doc.data


# ---- files out -------------------------------------------------------------------------------
async def test_each_payment_is_claimed_once_into_one_file(dirs):
    use, docs = uses(dirs)
    new, files = await use.claim([payment(1), payment(2)], "FJB20270310090000000000F1", traces={"p1": "00-trace-1"})
    assert [p.payment_id for p in new] == ["p1", "p2"] and files == {
        "p1": "FJB20270310090000000000F1",
        "p2": "FJB20270310090000000000F1",
    }
    new, files = await use.claim([payment(2), payment(3)], "FJB20270310090000000000F2")  # p2 redelivered with a new one
    assert [p.payment_id for p in new] == ["p3"] and files == {
        "p2": "FJB20270310090000000000F1",
        "p3": "FJB20270310090000000000F2",
    }
    new, files = await use.claim([payment(1)], "FJB20270310090000000000F3")  # only old ones: no file at all
    assert new == [] and files == {"p1": "FJB20270310090000000000F1"}
    assert await docs.get(file_path("FJB20270310090000000000F3")) is None
    f1 = await data(docs, file_path("FJB20270310090000000000F1"))
    assert (f1["status"], f1["paymentIds"], f1["count"], f1["controlSum"]) == ("created", ["p1", "p2"], 2, 2_000)
    assert (await data(docs, file_path("FJB20270310090000000000F2")))["paymentIds"] == ["p3"]
    p1 = await data(docs, payment_path("p1"))
    assert p1["fileId"] == "FJB20270310090000000000F1"
    assert f1["traces"] == {"p1": "00-trace-1"}  # what the answer continues
    # the first claim read nothing (its creates succeeded); the redelivered ones failed a
    # create and were claimed again in a unit of work that reads the records
    assert [u.operation for u in docs.units] == ["clearing"] * 2 and all(len(u.reads) == 1 for u in docs.units)


async def test_a_claim_of_new_payments_is_one_commit_and_no_read(dirs):
    use, docs = uses(dirs)
    await use.claim(
        [payment(1), payment(2), payment(1)], "FJB20270310090000000000F1"
    )  # p1 twice in one batch: claimed once
    assert docs.calls == [
        (
            "commit",
            [
                ("create", payment_path("p1")),
                ("create", payment_path("p2")),
                ("create", file_path("FJB20270310090000000000F1")),
            ],
        )
    ]


async def test_the_submitted_steps_name_the_file_that_carries_each_payment():
    events = [PaymentEvent(payment(1), "reserved"), PaymentEvent(payment(2), "reserved")]
    out = submitted(events, {"p1": "FJB20270310090000000000F1", "p2": "FJB20270310090000000000F0"})
    assert [(e.status, e.detail) for e in out] == [
        ("submitted", {"fileId": "FJB20270310090000000000F1"}),
        ("submitted", {"fileId": "FJB20270310090000000000F0"}),
    ]
    assert [e.msg_id for e in out] == ["p1:submitted", "p2:submitted"]
    passed = {"passedAt": {"approved": "2025-03-14T12:00:00+00:00", "reserved": "2025-03-14T12:00:01+00:00"}}
    (kept,) = submitted([PaymentEvent(payment(1), "reserved", detail=passed)], {"p1": "FJB20270310090000000000F1"})
    assert kept.detail == {**passed, "fileId": "FJB20270310090000000000F1"}  # the times the app's timeline shows


async def test_a_claimed_file_is_written_as_pain001_and_marked_written(dirs):
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1, 12_345), payment(2, 655)], "FJB20270310090000000000F1")
    docs.forget()
    assert await use.send_or_keep("FJB20270310090000000000F1", new)
    batch = iso20022.parse_pain001((dirs.outbox / "FJB20270310090000000000F1.xml").read_bytes())
    assert (
        batch.message_id == "FJB20270310090000000000F1"
        and batch.debtor_agent_bic == BIC
        and batch.control_sum_minor == 13_000
    )
    assert [t.end_to_end_id for t in batch.transfers] == ["p1", "p2"]
    assert batch.transfers[0].creditor.name == "Bergen Rør AS"
    # taken ("sending" by this process, in a unit of work that reads the file: no other
    # process delivers it meanwhile), then marked "written" in one that reads it too (an
    # answer may have come back meanwhile)
    assert docs.calls == []
    assert [u.operation for u in docs.units] == ["clearing_deliver", "clearing_mark_file"]
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["status"] == "written"


async def test_an_answer_that_came_back_before_the_written_mark_is_kept(dirs):
    """The clearing house answered between the delivery and the "written" mark: before,
    the mark turned the record back from "answered" to "written" (found in review)."""
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1, 12_345)], "FJB20270310090000000000F1")
    transact = docs.transact

    async def answered_first(fn, *, operation):
        if operation == "clearing_mark_file":  # the answer lands just before the mark
            await clearing.mark_answered(docs, "FJB20270310090000000000F1", [("p1", "ACSC", None)])
        return await transact(fn, operation=operation)

    docs.transact = answered_first  # type: ignore[method-assign]
    assert await use.send_or_keep("FJB20270310090000000000F1", new)
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["status"] == "answered"


async def test_a_file_recorded_and_never_written_is_written_when_the_service_starts(dirs):
    use, docs = uses(dirs)
    await use.claim([payment(1)], "FJB20270310090000000000F1")  # then the process crashed before writing it
    await use.claim([payment(2)], "FJB20270310090000000000F2")
    assert await use.send_or_keep("FJB20270310090000000000F2", [payment(2)])
    await Clearing(docs, dirs, bic=BIC, clock=lambda: NOW).resend_unwritten()  # the next process
    assert sorted(p.name for p in dirs.outbox.iterdir()) == [
        "FJB20270310090000000000F1.xml",
        "FJB20270310090000000000F2.xml",
    ]
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["status"] == "written"
    assert await clearing.unwritten_files(docs) == []


# ---- answers in ------------------------------------------------------------------------------
async def test_an_answer_publishes_each_payments_step_then_marks_them_in_one_commit(dirs):
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1), payment(2)], "FJB20270310090000000000F1")
    await use.send_or_keep("FJB20270310090000000000F1", new)
    path = answer(
        dirs,
        "FJB20270310090000000000F1",
        iso20022.TransactionStatus("p1", "ACSC"),
        iso20022.TransactionStatus("p2", "RJCT", "AC04", "account closed"),
        iso20022.TransactionStatus("p9", "ACSC"),  # never in this file: left out, the answer set aside
    )
    docs.forget()
    publish = Published()
    out = await use.handle_answer(path, publish)
    assert out == publish.events
    assert [(e.payment.payment_id, e.status, e.reason, e.message) for e in out] == [
        ("p1", "settled", None, None),
        ("p2", "returned", "AC04", "account closed"),
    ]
    assert out[1].detail == {"statusReport": "ANSFJB20270310090000000000F1", "isoReason": "AC04"}
    # the file's one document for all its payments, then one write of their answers on it
    assert docs.calls == [
        ("get", file_path("FJB20270310090000000000F1")),
        ("commit", [("update", file_path("FJB20270310090000000000F1"))]),
    ]
    f1 = await data(docs, file_path("FJB20270310090000000000F1"))
    assert f1["status"] == "answered"
    assert f1["answers"] == {
        "p1": {"status": "settled", "reason": None},
        "p2": {"status": "returned", "reason": "AC04"},
    }
    # a final status that reaches none of the file's payments (an id misspelt, padded: one of
    # them may be waiting for it) is an operator's to read, not filed as handled
    assert not path.exists() and (dirs.processed / f"{path.name}.unmatched").exists()


async def test_an_answer_to_a_file_the_channel_never_had_is_set_aside_and_the_file_still_sent(dirs):
    """The file recorded and kept (the channel down): an answer naming it (misrouted,
    forged) is not applied; applied, it marked the file answered and the file was never
    sent, its other payments' money held for good."""
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1), payment(2)], "FJB20270310090000000000F1")
    path = answer(dirs, "FJB20270310090000000000F1", iso20022.TransactionStatus("p1", "ACSC"))
    publish = Published()
    assert await use.handle_answer(path, publish) == [] and publish.events == []
    assert (dirs.processed / f"{path.name}.undelivered").exists()
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["status"] == "created"
    await use.send_or_keep("FJB20270310090000000000F1", new)
    assert dirs.delivered(clearing.file_name("FJB20270310090000000000F1"))
    # once delivered, its answer is applied
    again = answer(
        dirs,
        "FJB20270310090000000000F1",
        iso20022.TransactionStatus("p1", "ACSC"),
        iso20022.TransactionStatus("p2", "RJCT", "AC04"),
    )
    out = await use.handle_answer(again, Published())
    assert [(e.payment.payment_id, e.status) for e in out] == [("p1", "settled"), ("p2", "returned")]


async def test_an_answer_sent_twice_publishes_the_same_steps_and_leaves_the_same_records(dirs):
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1)], "FJB20270310090000000000F1")
    await use.send_or_keep("FJB20270310090000000000F1", new)
    settled = iso20022.TransactionStatus("p1", "ACSC")
    publish = Published()
    first = await use.handle_answer(answer(dirs, "FJB20270310090000000000F1", settled), publish)
    record = await data(docs, file_path("FJB20270310090000000000F1"))
    again = await use.handle_answer(
        answer(dirs, "FJB20270310090000000000F1", settled, name="F1-status-dup.xml"), publish
    )
    assert [e.msg_id for e in again] == [e.msg_id for e in first] == ["p1:settled"]  # stored once by JetStream
    assert {
        k: v for k, v in (await data(docs, file_path("FJB20270310090000000000F1"))).items() if k != "updatedAt"
    } == {k: v for k, v in record.items() if k != "updatedAt"}


@pytest.mark.parametrize(
    ("first", "later"),
    [
        (iso20022.TransactionStatus("p1", "ACSC"), iso20022.TransactionStatus("p1", "RJCT", "AC04")),
        (iso20022.TransactionStatus("p1", "RJCT", "AC04"), iso20022.TransactionStatus("p1", "ACSC")),
    ],
    ids=["returned-after-settled", "settled-after-returned"],
)
async def test_a_later_answer_contradicting_an_earlier_one_for_a_payment_is_set_aside_unapplied(dirs, first, later):
    """The ledger settles or returns a reserved payment only: the second answer's step was
    dead-lettered, the file record took its status and the answer went to processed/. A
    return after settlement never reached the customer; a settlement after a return was
    the bank's loss, with nobody told (found in review, 2026-12-07)."""
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1), payment(2)], "FJB20270310090000000000F1")
    await use.send_or_keep("FJB20270310090000000000F1", new)
    publish = Published()
    await use.handle_answer(answer(dirs, "FJB20270310090000000000F1", first), publish)
    record = await data(docs, file_path("FJB20270310090000000000F1"))
    settled_2 = iso20022.TransactionStatus("p2", "ACSC")
    path = answer(dirs, "FJB20270310090000000000F1", later, settled_2, name="F1-later.xml")
    assert await use.handle_answer(path, publish) == []
    assert (dirs.processed / "F1-later.xml.mismatch").exists()
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["answers"] == record["answers"]
    # the earlier answer again is applied as before (the ledger answers a replay from its record)
    again = await use.handle_answer(answer(dirs, "FJB20270310090000000000F1", first, name="F1-again.xml"), publish)
    assert [e.payment.payment_id for e in again] == ["p1"]


async def test_a_failed_publish_marks_nothing_and_leaves_the_answer_to_be_read_again(dirs):
    use, docs = uses(dirs)
    new, _files = await use.claim([payment(1)], "FJB20270310090000000000F1")
    await use.send_or_keep("FJB20270310090000000000F1", new)
    path = answer(dirs, "FJB20270310090000000000F1", iso20022.TransactionStatus("p1", "ACSC"))
    with pytest.raises(TimeoutError):
        await use.handle_answer(path, Published(fail=TimeoutError("no ack")))
    assert path.exists() and "answers" not in await data(docs, file_path("FJB20270310090000000000F1"))
    assert (await data(docs, file_path("FJB20270310090000000000F1")))["status"] == "written"


async def test_an_answer_to_a_file_the_bank_has_no_record_of_is_moved_aside(dirs):
    use, docs = uses(dirs)
    path = answer(dirs, "FJBSTRAY", iso20022.TransactionStatus("p1", "ACSC"))
    publish = Published()
    assert await use.handle_answer(path, publish) == []
    assert publish.events == [] and [c for c in docs.calls if c[0] == "commit"] == []
    assert (dirs.processed / f"{path.name}.unknown").exists() and not path.exists()


async def test_a_claim_whose_commit_went_through_but_answered_an_error_still_has_its_file_written(dirs):
    """The commit was applied and its answer lost: the retried commit finds its own creates
    (AlreadyExists). The payments are the file's, and the file is still to be written."""
    use, docs = uses(dirs)
    await use.claim([payment(1), payment(2)], F1)
    again, files = await use.claim([payment(1), payment(2)], F1)  # what the fallback reads
    assert [p.payment_id for p in again] == ["p1", "p2"] and files == {"p1": F1, "p2": F1}
    assert await use.send_or_keep(F1, again)
    assert (await data(docs, file_path(F1)))["status"] == "written"
    # a later batch with the same payments under another file id: in F1 already, no file
    later, files = await use.claim([payment(1)], F2)
    assert later == [] and files == {"p1": F1}


@pytest.mark.parametrize(
    ("due", "executed"),
    [
        ("2025-03-14", "2025-03-14"),
        ("2025-03-15", "2025-03-17"),
        ("2025-12-24", "2025-12-29"),
        ("2025-05-17", "2025-05-19"),
    ],
)
def test_a_payment_due_on_a_day_banks_do_not_settle_is_asked_for_the_next_banking_day(due: str, executed: str):
    """pain.001's ReqdExctnDt: the clearing house settles on banking days only."""
    scheduled = dataclasses.replace(payment(1), due_date=due, requested_at="2025-03-01T12:00:00Z")
    transfer = clearing.to_transfer(scheduled, dt.date(2025, 3, 1))
    assert transfer.requested_execution_date == dt.date.fromisoformat(executed)


def test_a_payment_made_after_its_due_date_is_not_asked_for_a_day_gone_by():
    """A standing order's payment the job made late (or on the Monday after a Saturday)
    asked the clearing house to execute it on its past due date."""
    late = dataclasses.replace(payment(1), due_date="2025-03-12", requested_at="2025-03-14T06:00:00Z")
    assert clearing.to_transfer(late, dt.date(2025, 3, 14)).requested_execution_date == dt.date(2025, 3, 14)


def test_a_file_written_on_a_later_day_asks_for_that_day_and_its_answer_regroups_as_written():
    """Booked Friday 14 March 2025; the channel was down until Monday the 17th: the file
    asks for Monday, not the Friday gone by. The file's record keeps when it was written,
    so an answer for a whole block finds the block the bank got."""
    friday = dataclasses.replace(payment(1), requested_at="2025-03-14T06:00:00Z")
    monday = dt.datetime(2025, 3, 17, 7, 0, tzinfo=dt.UTC)
    assert clearing.to_transfer(friday, dt.date(2025, 3, 15)).requested_execution_date == dt.date(2025, 3, 17)
    written = clearing.payment_file(F1, [friday], bic=BIC, now=monday, written=monday)
    (block,) = iso20022.payment_groups(written)
    assert block.requested_execution_date == dt.date(2025, 3, 17)
    before = clearing.payment_file(F1, [friday], bic=BIC, now=monday, written=None)  # a record of before
    (old,) = iso20022.payment_groups(before)
    assert old.requested_execution_date == dt.date(2025, 3, 14)
    report = iso20022.StatusReport(
        "CH-1", F1, monday + dt.timedelta(days=1), (), (iso20022.BlockStatus(block.payment_information_id, "ACSC"),)
    )
    answered = clearing.Answered(True, {"p1": (friday, None)}, written=monday)
    (status,) = clearing.with_blocks(report, answered, bic=BIC).statuses
    assert (status.end_to_end_id, status.status) == ("p1", "ACSC")


def test_a_payment_a_file_cannot_carry_is_named_before_it_is_claimed():
    assert clearing.unsendable(payment(1)) is None
    broken = dataclasses.replace(payment(2), currency="EUR")  # not published by the edge
    assert "NOK" in (clearing.unsendable(broken) or "")


@pytest.mark.parametrize(
    ("field", "text", "sent"),
    [
        ("message", "Husleie mars\nleil. 2B", "Husleie mars leil. 2B"),
        ("message", "Husleie \U0001f3e0 mars", "Husleie mars"),
        ("message", "\u79df\u91d1", None),
        ("message", "Lønn – «mars» ½", "Lønn - «mars» 1/2"),
        ("payee_name", "Bergen \u202eRør AS", "Bergen Rør AS"),
        ("payee_name", "Čáhcegáddi AS", "Cáhcegáddi AS"),
        ("message", "a" * 139 + "…", "a" * 139 + "."),  # 140 characters stored, ... is longer
        ("message", "½" * 140, " ".join(["1/2"] * 140)[:140].rstrip()),
        ("payee_name", "Å" * 69 + "…", "Å" * 69 + "."),  # the edge's 70 characters, in the file too
    ],
)
def test_a_payments_text_from_before_the_edge_refused_it_goes_in_the_file_as_a_bank_takes_it(field, text, sent):
    """Text the edge now refuses (a standing order stored before: its payments carry the
    text it had) is sent as Norwegian banks take it, ISO 8859-15 with no control or format
    character: another bank could refuse the transfer or the whole file with it, and kept
    out of the file the payment's money stayed held until an operator came."""
    p = dataclasses.replace(payment(1), **{field: text})
    assert clearing.unsendable(p) is None
    transfer = clearing.to_transfer(p, None)
    carried = transfer.message if field == "message" else transfer.creditor.name
    assert carried == (sent if sent is not None or field == "message" else clearing.CREDITOR_NAME)
    assert all(map(iso20022.is_payment_text_char, carried or ""))


async def test_a_recorded_file_that_cannot_be_written_does_not_stop_the_service_starting(dirs):
    use, docs = uses(dirs)
    broken = dataclasses.replace(payment(1), currency="EUR")
    await use.claim([broken], F1)  # recorded before such payments were kept out
    await use.claim([payment(2)], F2)
    await Clearing(docs, dirs, bic=BIC, clock=lambda: NOW).resend_unwritten()  # no exception
    assert sorted(p.name for p in dirs.outbox.iterdir()) == [f"{F2}.xml"]
    assert (await data(docs, file_path(F1)))["status"] == "created"  # left for an operator


@pytest.mark.parametrize("named", ["FJB20250314/x", "..", "F1", "FJB2027031009000000000f01"])
async def test_an_answer_naming_no_file_id_of_ours_is_moved_aside_unread(dirs, named):
    """OrgnlMsgId is the other bank's text: one that is not a file id this bank makes is an
    unknown file, and never a document path."""
    use, docs = uses(dirs)
    path = answer(dirs, named, iso20022.TransactionStatus("p1", "ACSC"), name="odd-status.xml")
    assert await use.handle_answer(path, Published()) == []
    assert docs.calls == []
    assert (dirs.processed / "odd-status.xml.unknown").exists() and not path.exists()


async def test_an_answer_declaring_an_encoding_python_cannot_use_is_moved_aside(dirs):
    use, docs = uses(dirs)
    for n, encoding in enumerate(["foo", "idna", "hex", "utf-32"]):
        bad = dirs.inbox / f"enc{n}-status.xml"
        bad.write_bytes(f'<?xml version="1.0" encoding="{encoding}"?><Document/>'.encode())
        assert await use.handle_answer(bad, Published()) == []
        assert (dirs.processed / f"enc{n}-status.xml.rejected").exists()
    assert docs.calls == []


async def test_an_unreadable_answer_is_moved_aside_and_the_channel_down_leaves_it_waiting(dirs, tmp_path):
    use, docs = uses(dirs)
    bad = dirs.inbox / "junk-status.xml"
    bad.write_bytes(b"<not-a-pain002/>")
    assert await use.handle_answer(bad, Published()) == []
    assert (dirs.processed / "junk-status.xml.rejected").exists() and docs.calls == []

    class Down(ClearingDirs):
        def read_answer(self, path: Path) -> bytes:
            raise ConnectionError("the transfer service is unreachable")

    down = Clearing(docs, Down(dirs.root), bic=BIC)
    waiting = answer(dirs, "FJB20270310090000000000F1", iso20022.TransactionStatus("p1", "ACSC"))
    with pytest.raises(ConnectionError):
        await down.handle_answer(waiting, Published())
    assert waiting.exists()


async def test_an_answer_the_parser_fails_on_is_moved_aside_not_retried_forever(dirs, monkeypatch):
    """A parser defect (any exception but the channel's) must not stall every later answer."""
    use, _docs = uses(dirs)
    bad = answer(dirs, "FJB20270310090000000000F1", iso20022.TransactionStatus("p1", "ACSC"))

    def broken(data: bytes) -> iso20022.StatusReport:
        raise RecursionError("a defect")

    monkeypatch.setattr(iso20022, "parse_pain002", broken)
    assert await use.handle_answer(bad, Published()) == []
    assert not bad.exists() and (dirs.processed / f"{bad.name}.rejected").exists()


# ---- the service's step: a payment a file cannot carry -------------------------------------------
async def test_a_payment_a_file_cannot_carry_is_dead_lettered_and_the_rest_go_out(dirs):
    """A payment a pain.001 cannot carry (in euro: never published by the edge) is
    dead-lettered on its own; the others of the batch are claimed, written and submitted."""
    from types import SimpleNamespace

    from fjordbank.runtime import steps
    from fjordbank.runtime.consumer import Ack, Delivery, Reject
    from run_services.clearing import ClearingHandler

    use, docs = uses(dirs)
    handler = ClearingHandler(use, dirs, Incoming(docs, dirs, Owners(docs).of, bic=BIC, sanctions=sample_sanctions))
    published: list[PaymentEvent] = []

    async def publish(out, parents=None):
        published.extend(out)

    handler.publish = publish  # type: ignore[method-assign]
    broken = dataclasses.replace(payment(2), currency="EUR")
    reserved = [PaymentEvent(p, "reserved") for p in (payment(1), broken, payment(3))]
    batch = [
        Delivery(SimpleNamespace(subject=e.subject, data=json.dumps(e.to_json()).encode(), headers={}))
        for e in reserved
    ]
    outcomes = await steps.payment_step(handler.submit)(batch)
    assert isinstance(outcomes[0], Ack) and isinstance(outcomes[2], Ack)
    assert isinstance(outcomes[1], Reject) and "pain.001" in outcomes[1].reason
    assert [(e.payment.payment_id, e.status) for e in published] == [("p1", "submitted"), ("p3", "submitted")]
    (written,) = list(dirs.outbox.iterdir())
    assert b"p1" in written.read_bytes() and b"p3" in written.read_bytes() and b"p2" not in written.read_bytes()
    assert await docs.get(payment_path("p2")) is None  # never claimed: no file waits on it


# ---- answers to whole blocks, and answers on the way --------------------------------------------
def _clearing_house_answer(dirs: ClearingDirs, file_id: str, inner: str, name: str) -> Path:
    """A pain.002 as a clearing house may send it: statuses given for whole blocks."""
    path = dirs.inbox / name
    path.write_bytes(
        (
            f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{iso20022.PAIN002_NS}"><CstmrPmtStsRpt>'
            "<GrpHdr><MsgId>CH-1</MsgId><CreDtTm>2025-03-14T13:00:00Z</CreDtTm></GrpHdr>"
            f"<OrgnlGrpInfAndSts><OrgnlMsgId>{file_id}</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId>"
            f"{inner}</CstmrPmtStsRpt></Document>"
        ).encode()
    )
    return path


async def test_a_file_rejected_as_a_whole_returns_every_payment_in_it(dirs):
    use, docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2), payment(3)], F1)
    await use.send_or_keep(F1, new)
    rejected = "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf></OrgnlGrpInfAndSts>"
    publish = Published()
    out = await use.handle_answer(_clearing_house_answer(dirs, F1, rejected, "whole-status.xml"), publish)
    assert [(e.payment.payment_id, e.status, e.reason) for e in out] == [
        ("p1", "returned", "FF01"),
        ("p2", "returned", "FF01"),
        ("p3", "returned", "FF01"),
    ]
    answers = (await data(docs, file_path(F1)))["answers"]
    assert {pid: a["status"] for pid, a in answers.items()} == {"p1": "returned", "p2": "returned", "p3": "returned"}


async def test_a_block_rejected_as_a_whole_returns_its_payments_but_those_named_on_their_own(dirs):
    use, _docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2), payment(3)], F1)
    await use.send_or_keep(F1, new)
    (block,) = [
        g.payment_information_id
        for g in iso20022.payment_groups(clearing.payment_file(F1, new, bic=BIC, now=NOW, written=NOW))
    ]
    inner = (
        "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{block}</OrgnlPmtInfId><PmtInfSts>RJCT</PmtInfSts>"
        "<StsRsnInf><Rsn><Prtry>AM04</Prtry></Rsn></StsRsnInf>"
        "<TxInfAndSts><OrgnlEndToEndId>p2</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf></TxInfAndSts>"
        "</OrgnlPmtInfAndSts>"
    )
    out = await use.handle_answer(_clearing_house_answer(dirs, F1, inner, "block-status.xml"), Published())
    # p2 is named (with its own reason); the block's final status answers the others it does
    # not list (ISO 20022: a payment information status is every transaction's in the block;
    # a bank lists some to give their own reason) where they stayed "submitted" with money held
    assert sorted((e.payment.payment_id, e.status, e.reason) for e in out) == [
        ("p1", "returned", "AM04"),
        ("p2", "returned", "AC04"),
        ("p3", "returned", "AM04"),
    ]
    inner = (
        "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{block}</OrgnlPmtInfId><PmtInfSts>RJCT</PmtInfSts>"
        "<StsRsnInf><Rsn><Prtry>AM04</Prtry></Rsn></StsRsnInf></OrgnlPmtInfAndSts>"
    )
    out = await use.handle_answer(_clearing_house_answer(dirs, F1, inner, "block2-status.xml"), Published())
    assert out == []  # every payment was answered by the report before


def _block_answer(block: str, status: str, listed: str = "") -> str:
    reason = "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>" if status == "RJCT" else ""
    return (
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{block}</OrgnlPmtInfId><PmtInfSts>{status}</PmtInfSts>{reason}"
        f"{listed}</OrgnlPmtInfAndSts>"
    )


@pytest.mark.parametrize(
    "contradiction",
    ["settled-then-rejected", "rejected-then-settled", "file-rejected-block-settled", "block-rejected-payment-settled"],
)
async def test_an_answer_that_contradicts_itself_is_moved_aside_unapplied(dirs, contradiction):
    """Found in review (2026-12-07): a block answered settled and then rejected (or the other
    way round) was applied by the answer last in the file, and a block settled in a file
    rejected as a whole (GrpSts RJCT) had its payments settled. Which answer is the bank's
    is an operator's to find out: nothing is applied, the file is kept as `.rejected`."""
    use, docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2)], F1)
    await use.send_or_keep(F1, new)
    (block,) = {
        g.payment_information_id
        for g in iso20022.payment_groups(clearing.payment_file(F1, new, bic=BIC, now=NOW, written=NOW))
    }
    p1_settled = "<TxInfAndSts><OrgnlEndToEndId>p1</OrgnlEndToEndId><TxSts>ACSC</TxSts></TxInfAndSts>"
    inner = {
        "settled-then-rejected": "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        + _block_answer(block, "ACSC")
        + _block_answer(block, "RJCT"),
        "rejected-then-settled": "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        + _block_answer(block, "RJCT")
        + _block_answer(block, "ACSC"),
        "file-rejected-block-settled": "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AC01</Cd></Rsn></StsRsnInf>"
        "</OrgnlGrpInfAndSts>" + _block_answer(block, "ACSC"),
        "block-rejected-payment-settled": "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        + _block_answer(block, "RJCT", p1_settled),
    }[contradiction]
    path = _clearing_house_answer(dirs, F1, inner, "contradiction-status.xml")
    publish = Published()
    assert await use.handle_answer(path, publish) == [] and publish.events == []
    assert (dirs.processed / "contradiction-status.xml.rejected").exists() and not path.exists()
    record = await data(docs, file_path(F1))
    assert record["status"] == "written" and not record.get("answers")


async def test_an_answer_with_only_statuses_on_the_way_publishes_nothing_and_marks_nothing(dirs):
    use, docs = uses(dirs)
    new, _ = await use.claim([payment(1)], F1)
    await use.send_or_keep(F1, new)
    inner = (
        "<GrpSts>ACCP</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>B</OrgnlPmtInfId>"
        "<TxInfAndSts><OrgnlEndToEndId>p1</OrgnlEndToEndId><TxSts>ACSP</TxSts></TxInfAndSts></OrgnlPmtInfAndSts>"
    )
    path = _clearing_house_answer(dirs, F1, inner, "accepted-status.xml")
    publish = Published()
    assert await use.handle_answer(path, publish) == [] and publish.events == []
    assert (await data(docs, file_path(F1)))["status"] == "written"  # not answered: the final answer comes later
    assert not path.exists()


async def test_a_block_answered_that_the_file_does_not_have_is_applied_where_it_reaches_and_moved_aside(dirs):
    """A final rejection of block ``NOTPROVIDED`` (or of another file's block) reaches no
    payment: it was filed as handled, the payments stayed submitted with their money held
    and nothing pointed an operator at it (found by review). An id with whitespace around
    it is the block's own."""
    use, docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2)], F1)
    await use.send_or_keep(F1, new)
    (block,) = [
        g.payment_information_id
        for g in iso20022.payment_groups(clearing.payment_file(F1, new, bic=BIC, now=NOW, written=NOW))
    ]

    def rejected(block_id: str, listed: str = "") -> str:
        return (
            "</OrgnlGrpInfAndSts>"
            f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{block_id}</OrgnlPmtInfId><PmtInfSts>RJCT</PmtInfSts>"
            f"<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>{listed}</OrgnlPmtInfAndSts>"
        )

    p1_listed = "<TxInfAndSts><OrgnlEndToEndId>p1</OrgnlEndToEndId><TxSts>RJCT</TxSts></TxInfAndSts>"
    path = _clearing_house_answer(dirs, F1, rejected("NOTPROVIDED", p1_listed), "np-status.xml")
    out = await use.handle_answer(path, Published())
    assert [(e.payment.payment_id, e.status) for e in out] == [("p1", "returned")]  # what it names is applied
    assert (dirs.processed / "np-status.xml.unmatched").exists() and not path.exists()
    assert set((await data(docs, file_path(F1)))["answers"]) == {"p1"}
    path = _clearing_house_answer(dirs, F1, rejected("NOTPROVIDED"), "np2-status.xml")
    assert await use.handle_answer(path, Published()) == []
    assert (dirs.processed / "np2-status.xml.unmatched").exists()
    path = _clearing_house_answer(dirs, F1, rejected(f" {block} "), "ws-status.xml")
    out = await use.handle_answer(path, Published())
    assert [(e.payment.payment_id, e.status, e.reason) for e in out] == [("p2", "returned", "AC04")]
    assert (dirs.processed / "ws-status.xml").exists()


@pytest.mark.parametrize(
    ("info", "shown"),
    [
        ("Konto avsluttet", "Konto avsluttet"),
        ("Konto avsluttet\nkontakt\tmottaker", "Konto avsluttet kontakt mottaker"),
        (" ", None),
        ("x" * 90 + "\n\n" + "y" * 30, ("x" * 90 + " " + "y" * 30)[:105]),
    ],
)
async def test_a_banks_free_text_with_line_breaks_or_blank_is_shown_cleaned_never_a_reason_to_refuse(
    dirs, info: str, shown: str | None
):
    """A comment the schema allows (Max105Text: line breaks and tabs are element content)
    made the whole answer, other customers' settlements in it too, unreadable (found by
    review)."""
    use, _docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2)], F1)
    await use.send_or_keep(F1, new)
    inner = (
        "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>B</OrgnlPmtInfId>"
        "<TxInfAndSts><OrgnlEndToEndId>p1</OrgnlEndToEndId><TxSts>ACSC</TxSts></TxInfAndSts>"
        "<TxInfAndSts><OrgnlEndToEndId>p2</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        f"<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>{info}</AddtlInf></StsRsnInf></TxInfAndSts>"
        "</OrgnlPmtInfAndSts>"
    )
    path = _clearing_house_answer(dirs, F1, inner, "info-status.xml")
    out = await use.handle_answer(path, Published())
    assert [(e.payment.payment_id, e.status) for e in out] == [("p1", "settled"), ("p2", "returned")]
    report = iso20022.parse_pain002(_clearing_house_answer(dirs, F1, inner, "again.xml").read_bytes())
    assert [s.additional_info for s in report.statuses] == [None, shown]


# ---- a file recorded and not written, found again (found by review) ---------------------------
class _AppliedThenLost(RecordingDocuments):
    """A database whose next commit is applied and answers an error (a deadline): the
    client does not retry a commit on DEADLINE_EXCEEDED."""

    fail_next: str | None = None  # a path the failing commit writes

    def batch(self):
        docs = self

        class Batch(RecordedBatch):
            async def commit(self):
                written = await super().commit()
                if docs.fail_next and any(path == docs.fail_next for _k, path, _d, _o in self.writes):
                    docs.fail_next = None
                    raise DeadlineExceeded("Deadline Exceeded")
                return written

        return Batch(self)


async def test_a_claim_applied_though_it_answered_an_error_has_its_file_written_by_the_cycle_that_finds_it(dirs):
    """The redelivered cycle (a new file id) found the payments in the first cycle's file,
    wrote nothing and published them submitted: that file waited unwritten, their money
    held, until the service happened to restart."""
    from types import SimpleNamespace

    from fjordbank.runtime import steps
    from fjordbank.runtime.consumer import Delivery
    from run_services.clearing import ClearingHandler

    docs = _AppliedThenLost()
    docs.fail_next = file_path(F1)
    use = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW)
    ids = iter([F1, F2, "FJB20270310090000000000F3"])
    use.new_file_id = lambda: next(ids)  # type: ignore[method-assign]
    handler = ClearingHandler(use, dirs, Incoming(docs, dirs, Owners(docs).of, bic=BIC, sanctions=sample_sanctions))
    published = Published()
    handler.publish = lambda out, parents=None: published(out, parents or {})  # type: ignore[method-assign]
    reserved = PaymentEvent(payment(1), "reserved")

    def batch() -> list[Delivery]:
        msg = SimpleNamespace(subject=reserved.subject, data=json.dumps(reserved.to_json()).encode(), headers={})
        return [Delivery(msg)]

    with pytest.raises(DeadlineExceeded):  # the first delivery: the batch is naked
        await steps.payment_step(handler.submit)(batch())
    await steps.payment_step(handler.submit)(batch())  # its redelivery
    assert [(e.payment.payment_id, e.status, e.detail["fileId"]) for e in published.events] == [("p1", "submitted", F1)]
    assert [p.name for p in dirs.outbox.iterdir()] == [f"{F1}.xml"]
    assert (await data(docs, file_path(F1)))["status"] == "written"
    assert await docs.get(file_path(F2)) is None  # no second file for the same payment
    # once written, a later redelivery finds it so and writes nothing again
    await steps.payment_step(handler.submit)(batch())
    assert [p.name for p in dirs.outbox.iterdir()] == [f"{F1}.xml"]


async def test_a_file_delivered_whose_mark_was_lost_is_not_delivered_again_when_the_service_starts(dirs):
    """Delivered twice under one message id, the copy is rejected whole by the clearing
    house, and that answer would return payments the first copy settles."""
    docs = _AppliedThenLost()
    use = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW)
    new, _ = await use.claim([payment(1), payment(2)], F1)

    real_mark = clearing.mark_file

    async def mark(docs_, file_id, status, *, written):
        if status == "written":
            raise DeadlineExceeded("Deadline Exceeded")  # not applied this time
        return await real_mark(docs_, file_id, status, written=written)

    clearing.mark_file = mark  # type: ignore[assignment]
    try:
        with pytest.raises(DeadlineExceeded):
            await use.send_or_keep(F1, new)
    finally:
        clearing.mark_file = real_mark  # type: ignore[assignment]
    assert (await data(docs, file_path(F1)))["status"] == "sending"
    (dirs.outbox / f"{F1}.xml").rename(dirs.sent / f"{F1}.xml")  # the clearing house took it
    restarted = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW + dt.timedelta(minutes=5))
    await restarted.resend_unwritten()
    assert list(dirs.outbox.iterdir()) == []  # not delivered again
    record = await data(docs, file_path(F1))
    assert (record["status"], record["writtenAt"]) == ("written", NOW)  # the first delivery's time
    # one whose delivery did not happen (the channel failed it) is delivered then
    new, _ = await use.claim([payment(3)], F2)
    await real_mark(docs, F2, "sending", written=NOW)
    await restarted.resend_unwritten()
    assert [p.name for p in dirs.outbox.iterdir()] == [f"{F2}.xml"]
    assert (await data(docs, file_path(F2)))["status"] == "written"


class _CountingDirs(ClearingDirs):
    """The channel, counting deliveries; ``down`` as an outage."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = False
        self.deliveries: list[str] = []

    def _channel(self) -> None:
        if self.down:
            raise ConnectionError("channel down")

    def deliver(self, name: str, data: bytes) -> None:
        super().deliver(name, data)
        self.deliveries.append(name)


def _slow_take(monkeypatch, entered: asyncio.Event, gate: asyncio.Event) -> None:
    """The first delivery taken waits at ``gate`` before it is delivered (a slow transfer)."""
    real = clearing.take_delivery
    first = [True]

    async def take(docs, file_id, sender, now):
        taken = await real(docs, file_id, sender, now)
        if first[0] and taken == "mine":
            first[0] = False
            entered.set()
            await gate.wait()
        return taken

    monkeypatch.setattr(clearing, "take_delivery", take)


async def test_a_file_being_delivered_by_this_process_is_not_delivered_again_by_a_cycle(tmp_path, monkeypatch):
    """After a crash between the mark and the delivery, with the channel down when the
    service started, the retry and a redelivered cycle's `write_left` both delivered it
    (found by review)."""
    dirs = _CountingDirs(tmp_path / "clearing")
    docs = RecordingDocuments()
    use = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW, retry_seconds=0.01)
    await use.claim([payment(1)], F1)
    await clearing.take_delivery(docs, F1, "a-process-gone", NOW - dt.timedelta(minutes=10))  # then it crashed
    dirs.down = True
    await use.resend_unwritten()  # when the service starts: the channel cannot tell
    assert F1 in use.unsure and not dirs.deliveries
    dirs.down = False
    entered, gate = asyncio.Event(), asyncio.Event()
    _slow_take(monkeypatch, entered, gate)
    stop = asyncio.Event()
    pending = asyncio.create_task(use.deliver_pending(stop))
    await entered.wait()
    new, files = await use.claim([payment(1)], F2)  # the crashed batch's payment, redelivered
    assert new == [] and files == {"p1": F1}
    await use.write_left(files, F2)
    gate.set()
    await asyncio.sleep(0.05)
    stop.set()
    await pending
    assert dirs.deliveries == [f"{F1}.xml"]
    assert (await data(docs, file_path(F1)))["status"] == "written"


async def test_a_file_another_process_is_delivering_is_left_to_it_and_marked_once_delivered(tmp_path, monkeypatch):
    dirs = _CountingDirs(tmp_path / "clearing")
    docs = RecordingDocuments()
    a = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW)
    b = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW + dt.timedelta(seconds=40), retry_seconds=0.01)
    entered, gate = asyncio.Event(), asyncio.Event()
    _slow_take(monkeypatch, entered, gate)
    new, _ = await a.claim([payment(1)], F1)
    cycle_a = asyncio.create_task(a.send_or_keep(F1, new))
    await entered.wait()  # A has taken it and not delivered it yet
    _new, files = await b.claim([payment(1)], F2)  # B gets the payment again
    await b.write_left(files, F2)
    assert F1 in b.unsure and not dirs.deliveries  # left to A
    gate.set()
    assert await cycle_a
    (dirs.outbox / f"{F1}.xml").rename(dirs.sent / f"{F1}.xml")  # the clearing house took it
    stop = asyncio.Event()
    pending = asyncio.create_task(b.deliver_pending(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await pending
    assert dirs.deliveries == [f"{F1}.xml"] and not b.unsure


async def test_an_answer_naming_every_payment_with_blocks_not_provided_is_filed_as_handled(dirs):
    """A bank that does not echo block ids (OrgnlPmtInfId NOTPROVIDED, as this bank's own
    pain.002 writer puts it) and names every payment: nothing is left to match, so the
    answer is not set aside (found by review)."""
    use, _docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2)], F1)
    await use.send_or_keep(F1, new)
    path = answer(dirs, F1, iso20022.TransactionStatus("p1", "ACSC"), iso20022.TransactionStatus("p2", "ACSC"))
    out = await use.handle_answer(path, Published())
    assert sorted(e.payment.payment_id for e in out) == ["p1", "p2"]
    assert [p.name for p in dirs.processed.iterdir()] == [path.name]


async def test_a_file_another_process_delivered_keeps_its_delivery_time_when_found_delivered(tmp_path, monkeypatch):
    """The process that found it busy marked it written with its own clock: after midnight
    in Oslo, an answer to a whole block regrouped the file by the wrong day and returned a
    payment the clearing house executes on Monday (found by review)."""
    friday = dt.datetime(2025, 3, 14, 22, 59, 30, tzinfo=dt.UTC)  # 23:59:30 in Oslo
    dirs = _CountingDirs(tmp_path / "clearing")
    docs = RecordingDocuments()
    a = Clearing(docs, dirs, bic=BIC, clock=lambda: friday)
    b = Clearing(docs, dirs, bic=BIC, clock=lambda: friday + dt.timedelta(seconds=60), retry_seconds=0.01)
    today = dataclasses.replace(payment(1), due_date="2025-03-14", requested_at="2025-03-14T20:00:00Z")
    monday = dataclasses.replace(payment(2), due_date="2025-03-17", requested_at="2025-03-14T20:00:00Z")
    entered, gate = asyncio.Event(), asyncio.Event()
    _slow_take(monkeypatch, entered, gate)
    new, _ = await a.claim([today, monday], F1)
    cycle_a = asyncio.create_task(a.send_or_keep(F1, new))
    await entered.wait()
    _new, files = await b.claim([today], F2)
    await b.write_left(files, F2)
    assert F1 in b.unsure
    gate.set()
    assert await cycle_a
    blocks = iso20022.payment_groups(iso20022.parse_pain001((dirs.outbox / f"{F1}.xml").read_bytes()))
    stop = asyncio.Event()
    pending = asyncio.create_task(b.deliver_pending(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await pending
    record = await data(docs, file_path(F1))
    assert (record["status"], record["writtenAt"]) == ("written", friday)
    inner = (
        "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{blocks[0].payment_information_id}</OrgnlPmtInfId>"
        "<PmtInfSts>RJCT</PmtInfSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf></OrgnlPmtInfAndSts>"
    )
    out = await a.handle_answer(_clearing_house_answer(dirs, F1, inner, "blk-status.xml"), Published())
    assert [(e.payment.payment_id, e.status) for e in out] == [("p1", "returned")]
    await b.send_or_keep(F1, new)  # found again after its answer: left answered
    assert (await data(docs, file_path(F1)))["status"] == "answered"


async def test_a_delivery_slower_than_the_grace_is_not_delivered_twice(tmp_path, monkeypatch):
    """A process that stalled past the grace between taking the file and delivering it (or
    a peer whose clock runs ahead): the other took it over and both delivered (found by
    review). The channel delivers a name once."""
    dirs = _CountingDirs(tmp_path / "clearing")
    docs = RecordingDocuments()
    a = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW)
    b = Clearing(docs, dirs, bic=BIC, clock=lambda: NOW + dt.timedelta(minutes=3))
    entered, gate = asyncio.Event(), asyncio.Event()
    _slow_take(monkeypatch, entered, gate)
    new, _ = await a.claim([payment(1)], F1)
    cycle_a = asyncio.create_task(a.send_or_keep(F1, new))
    await entered.wait()
    _new, files = await b.claim([payment(1)], F2)
    await b.write_left(files, F2)  # past the grace, the channel without it: B takes it over
    gate.set()
    assert await cycle_a  # A finds it delivered
    assert dirs.deliveries == [f"{F1}.xml"]
    assert (await data(docs, file_path(F1)))["status"] == "written"
    (dirs.outbox / f"{F1}.xml").rename(dirs.sent / f"{F1}.xml")
    with pytest.raises(FileExistsError):  # taken by the clearing house: not again either
        dirs.deliver(f"{F1}.xml", b"<x/>")


async def test_a_file_another_process_is_delivering_does_not_hold_up_the_others(dirs):
    use, docs = uses(dirs)
    use.retry_seconds = 60
    await use.claim([payment(1)], F1)
    await use.claim([payment(2)], F2)
    await clearing.take_delivery(docs, F1, "another-process", NOW)
    use.undelivered = {F1: [payment(1)], F2: [payment(2)]}  # both kept after an outage
    stop = asyncio.Event()
    task = asyncio.create_task(use.deliver_pending(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await task
    assert [p.name for p in dirs.outbox.iterdir()] == [f"{F2}.xml"] and list(use.unsure) == [F1]


def test_the_channel_delivers_a_name_once_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    """Cloud Storage FUSE (the production channel's mount) has no hard links."""
    import errno
    import os

    def no_links(*_args, **_kwargs):
        raise OSError(errno.ENOTSUP, "hard links are not supported")

    monkeypatch.setattr(os, "link", no_links)
    channel = ClearingDirs(tmp_path / "clearing")
    channel.deliver("F.xml", b"<a/>")
    assert (channel.outbox / "F.xml").read_bytes() == b"<a/>"
    with pytest.raises(FileExistsError):
        channel.deliver("F.xml", b"<b/>")
    assert (channel.outbox / "F.xml").read_bytes() == b"<a/>"
    assert [p.name for p in channel.outbox.iterdir()] == ["F.xml"]  # no temporary file left


# ---- an answer that says something else of the file ----------------------------------------------
def _settled(p1: str = "", head: str = "") -> str:
    return (
        f"{head}<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>NOTPROVIDED</OrgnlPmtInfId>"
        f"<TxInfAndSts><OrgnlEndToEndId>p1</OrgnlEndToEndId><TxSts>ACSC</TxSts>{p1}</TxInfAndSts></OrgnlPmtInfAndSts>"
    )


@pytest.mark.parametrize(
    "inner",
    [
        _settled(head="<OrgnlNbOfTxs>7</OrgnlNbOfTxs>"),
        _settled(head="<OrgnlCtrlSum>0.01</OrgnlCtrlSum>"),
        _settled('<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">{amount}</InstdAmt></Amt></OrgnlTxRef>'),
        _settled('<OrgnlTxRef><Amt><InstdAmt Ccy="NOK">0.01</InstdAmt></Amt></OrgnlTxRef>'),
    ],
    ids=["count", "sum", "currency", "amount"],
)
async def test_an_answer_that_disagrees_with_its_file_is_set_aside_unapplied(dirs, inner):
    """Its count, its sum or a payment's amount or currency not the file's: about another
    file, or garbled. Applied, a status for 0.01 EUR settled a payment of 10 NOK."""
    use, docs = uses(dirs)
    new, _ = await use.claim([payment(1), payment(2)], F1)
    await use.send_or_keep(F1, new)
    amount = iso20022.format_amount(payment(1).amount)
    path = _clearing_house_answer(dirs, F1, inner.format(amount=amount), "odd-status.xml")
    publish = Published()
    assert await use.handle_answer(path, publish) == [] and publish.events == []
    assert (dirs.processed / "odd-status.xml.mismatch").exists()
    assert (await data(docs, file_path(F1)))["status"] == "written"
    # the same answer with the file's own figures is applied
    total = iso20022.format_amount(payment(1).amount + payment(2).amount)
    agreeing = _settled(
        f'<OrgnlTxRef><Amt><InstdAmt Ccy="NOK">{amount}</InstdAmt></Amt></OrgnlTxRef>',
        head=f"<OrgnlNbOfTxs>2</OrgnlNbOfTxs><OrgnlCtrlSum>{total}</OrgnlCtrlSum>",
    )
    out = await use.handle_answer(_clearing_house_answer(dirs, F1, agreeing, "ok-status.xml"), Published())
    assert [(e.payment.payment_id, e.status) for e in out] == [("p1", "settled")]


@pytest.mark.parametrize(
    "head",
    ["<OrgnlCtrlSum>lots</OrgnlCtrlSum>", "<OrgnlNbOfTxs>-1</OrgnlNbOfTxs>", "<OrgnlCtrlSum>1.001</OrgnlCtrlSum>"],
)
def test_an_answer_with_a_malformed_count_or_sum_is_unreadable(dirs, head):
    data = _clearing_house_answer(dirs, F1, _settled(head=head), "bad.xml").read_bytes()
    with pytest.raises(iso20022.InvalidPaymentFile):
        iso20022.parse_pain002(data)
    no_currency = _settled("<OrgnlTxRef><Amt><InstdAmt>10.00</InstdAmt></Amt></OrgnlTxRef>")
    with pytest.raises(iso20022.InvalidPaymentFile):
        iso20022.parse_pain002(_clearing_house_answer(dirs, F1, no_currency, "bad2.xml").read_bytes())


async def test_a_delivery_whose_mark_was_lost_keeps_the_time_of_the_copy_delivered(tmp_path, monkeypatch):
    """Delivered at 23:59:58 on Friday in Oslo and the "written" mark lost: the retry two
    seconds later (Saturday) took the file with its own time and, finding it delivered,
    kept that time; an answer to a whole block was then regrouped by Saturday, and
    returned with it a payment of a block the clearing house executes."""
    friday = dt.datetime(2025, 3, 14, 22, 59, 58, tzinfo=dt.UTC)
    now = [friday - dt.timedelta(minutes=5)]
    dirs = _CountingDirs(tmp_path / "clearing")
    docs = RecordingDocuments()
    use = Clearing(docs, dirs, bic=BIC, clock=lambda: now[0])
    today = dataclasses.replace(payment(1), due_date="2025-03-14", requested_at="2025-03-14T20:00:00Z")
    monday = dataclasses.replace(payment(2), due_date="2025-03-17", requested_at="2025-03-14T20:00:00Z")
    new, _ = await use.claim([today, monday], F1)
    dirs.down = True
    assert not await use.send_or_keep(F1, new)  # kept for deliver_pending
    dirs.down = False
    real_mark, lost = clearing.mark_file, [True]

    async def mark(docs_, file_id, status, *, written):
        if lost[0]:
            lost[0] = False
            raise DeadlineExceeded("Deadline Exceeded")  # not applied
        return await real_mark(docs_, file_id, status, written=written)

    monkeypatch.setattr(clearing, "mark_file", mark)
    now[0] = friday
    with pytest.raises(DeadlineExceeded):
        await use.send_or_keep(F1, use.undelivered[F1])
    now[0] = friday + dt.timedelta(seconds=2)
    await use.send_or_keep(F1, use.undelivered[F1])  # delivered already: marked, not sent again
    assert dirs.deliveries == [f"{F1}.xml"]
    record = await data(docs, file_path(F1))
    assert (record["status"], record["writtenAt"]) == ("written", friday)
    # the same when the service starts and finds the file "sending" with a later time
    batch = docs.batch()
    batch.update(file_path(F1), {"status": "sending", "writtenAt": friday + dt.timedelta(hours=1)})
    await batch.commit()
    await Clearing(docs, dirs, bic=BIC, clock=lambda: friday + dt.timedelta(hours=2)).resend_unwritten()
    record = await data(docs, file_path(F1))
    assert (record["status"], record["writtenAt"]) == ("written", friday)


async def test_a_file_with_text_from_before_the_text_rule_is_answered_and_written(dirs):
    """A stored message of 140 characters ending in '…' (the file took it as it was): its
    Latin form is longer. Made again for its answer's blocks (`_block_of`) or written late,
    the file raised InvalidPaymentFile: the answer stayed in the inbox with every later one
    behind it, and the file recorded before was left unwritten with its money held."""
    use, _docs = uses(dirs)
    long = dataclasses.replace(payment(1), message="Husleie " + "x" * 131 + "\u2026")
    await use.claim([long, payment(2)], F1)
    await use.resend_unwritten()  # written now, the text as banks take it
    (written,) = list(dirs.outbox.iterdir())
    (transfer, _) = iso20022.parse_pain001(written.read_bytes()).transfers
    assert transfer.message == "Husleie " + "x" * 131 + "."
    path = _clearing_house_answer(
        dirs,
        F1,
        "<GrpSts>ACSC</GrpSts></OrgnlGrpInfAndSts>",  # the whole file settled, as a block status
        "whole-status.xml",
    )
    out = await use.handle_answer(path, Published())
    assert sorted((e.payment.payment_id, e.status) for e in out) == [("p1", "settled"), ("p2", "settled")]


async def test_a_file_kept_by_a_process_that_stopped_is_taken_over_without_a_restart(tmp_path):
    """A rollout: B started (nothing to take over then); A claimed a file while the channel
    was down, kept it in memory and stopped. The file stayed "sending"-less and unwritten,
    its payments submitted with their money held, until B happened to restart (found in
    review, 2026-12-06). B's pending loop looks for such files every ORPHAN_FILE_SECONDS."""
    dirs = _CountingDirs(tmp_path / "clearing")
    now = [NOW]
    docs = RecordingDocuments(lambda: now[0])  # the database's time: the clock's
    a = Clearing(docs, dirs, bic=BIC, clock=lambda: now[0])
    b = Clearing(docs, dirs, bic=BIC, clock=lambda: now[0], retry_seconds=0.01)
    await b.resend_unwritten()
    dirs.down = True
    new, _ = await a.claim([payment(1)], F1)
    assert not await a.send_or_keep(F1, new) and F1 in a.undelivered
    del a  # stopped
    dirs.down = False
    stop = asyncio.Event()
    pending = asyncio.create_task(b.deliver_pending(stop))
    await asyncio.sleep(0.05)
    assert dirs.deliveries == []  # not yet: B holds nothing, and has not looked
    now[0] = NOW + dt.timedelta(seconds=clearing.ORPHAN_FILE_SECONDS) + clearing.SENDING_GRACE
    await asyncio.sleep(0.05)
    stop.set()
    await pending
    assert dirs.deliveries == [f"{F1}.xml"]
    assert (await docs.get(file_path(F1))).data["status"] == "written"  # type: ignore[union-attr]
