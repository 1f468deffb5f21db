"""Payments from other banks, end to end in memory: clearing reads the clearing house's
pacs.008 (fjordbank.service_layer.incoming), the ledger credits the payee or leaves the credit
unapplied (fjordbank.domain.payment_ledger), clearing sends an unapplied one back in a pacs.004,
and the notifier and "my economy" show the money in on the payee's side only.

The promises: each credit is credited once however often it is delivered; money is only
moved (the payee's partition's settlement shard pays it); a credit to no account here or to
a closed one moves nothing and is sent back once, with the reason the paying bank reads; an
unreadable file is set aside whole; every step is routed by the payee's account."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.domain import bookings, pacs
from fjordbank.domain.iso20022 import Party
from fjordbank.domain.ledger import settlement_account
from fjordbank.domain.notifications import payment_pushes, transaction_entries
from fjordbank.domain.payment_ledger import published
from fjordbank.domain.payments import INCOMING, PAYER_NAME, PaymentEvent
from fjordbank.service_layer import notifier
from fjordbank.service_layer.incoming import (
    FILE,
    RETURN_PREFIX,
    Incoming,
    arrived_event,
    return_name,
)
from fjordbank.service_layer.ledger import account_path
from fjordbank.service_layer.owners import Owners
from fjordbank.topology import ARRIVED, UNAPPLIED, partition_of
from tests.support.recording import RecordingDocuments
from tests.unit.test_ledger_use_case import ALICE, BOB, NOW, OUTSIDE, balance, bank, money, statuses

PAYER = Party("Arbeidsgiver AS", "12032400009")


def credit(n: int = 1, *, to: str = BOB, amount: int = 2_500_000) -> pacs.IncomingTransfer:
    return pacs.IncomingTransfer(
        transaction_id=f"TX{n}",
        end_to_end_id=f"E2E{n}",
        amount_minor=amount,
        settlement_date=NOW.date(),
        debtor=PAYER,
        debtor_agent_bic="DNBANOKKXXX",
        creditor_account=to,
        message="Lønn",
    )


def arrived(n: int = 1, *, to: str = BOB, uid: str = "bob", amount: int = 2_500_000) -> PaymentEvent:
    return arrived_event(credit(n, to=to, amount=amount), message_id="NICS1", payee_uid=uid, received=NOW)


# ---- the event -------------------------------------------------------------------------------
def test_every_step_of_a_payment_from_another_bank_is_routed_by_the_payees_account():
    event = arrived()
    p = event.payment
    assert (p.kind, p.uid, p.from_account, p.to_account) == (INCOMING, "bob", PAYER.account, BOB)
    for status in (ARRIVED, UNAPPLIED, "completed"):
        assert PaymentEvent(p, status).subject == f"payments.{status}.{partition_of(BOB)}"
    assert event.detail is not None and event.detail[PAYER_NAME] == "Arbeidsgiver AS"
    assert PaymentEvent.from_json(event.to_json()) == event  # the contract (payment v2) reads it back


def test_a_credit_is_booked_on_the_day_it_arrives_or_its_later_settlement_date():
    late = pacs.IncomingTransfer(**{**_fields(credit()), "settlement_date": NOW.date() - dt.timedelta(days=3)})
    early = pacs.IncomingTransfer(**{**_fields(credit()), "settlement_date": NOW.date() + dt.timedelta(days=1)})
    on = {t.settlement_date: arrived_event(t, message_id="M", payee_uid="bob", received=NOW) for t in (late, early)}
    assert on[late.settlement_date].payment.due_date == NOW.date().isoformat()
    assert on[early.settlement_date].payment.due_date == early.settlement_date.isoformat()


def _fields(t: pacs.IncomingTransfer) -> dict:
    return {name: getattr(t, name) for name in t.__dataclass_fields__}


# ---- the ledger ------------------------------------------------------------------------------
async def test_the_ledger_credits_the_payee_from_its_partitions_settlement_shard_once():
    ledger, docs = await bank({ALICE: 1_000})
    [verdict] = await ledger.post_batch([arrived()])
    assert statuses([verdict]) == ["completed"]
    assert await balance(docs, BOB) == (2_500_000, 0, 2_500_000)
    shard = (await docs.get(account_path(settlement_account(BOB)))).data  # type: ignore[union-attr]
    assert shard["balance"] == -2_500_000  # what the clearing house settled with the bank, paid out
    assert money(docs) == 0
    [again] = await ledger.post_batch([arrived()])  # the clearing house delivered it again
    assert (again.result, again.replayed) == (verdict.result, True)
    assert await balance(docs, BOB) == (2_500_000, 0, 2_500_000)
    assert [e.status for e in published(verdict.event, verdict.result)] == ["completed"]  # no payer's side here


async def test_a_credit_to_a_closed_account_is_left_unapplied_and_moves_nothing():
    ledger, docs = await bank({}, closed=(BOB,))
    [verdict] = await ledger.post_batch([arrived()])
    assert verdict.result is not None
    assert (verdict.result.status, verdict.result.reason) == (UNAPPLIED, "to_account_closed")
    assert [e.status for e in published(verdict.event, verdict.result)] == [UNAPPLIED]
    assert await balance(docs, BOB) == (0, 0, 0) and money(docs) == 0
    [again] = await ledger.post_batch([arrived()])
    assert (again.result, again.replayed) == (verdict.result, True)


async def test_a_credit_to_an_account_the_ledger_does_not_have_is_left_unapplied():
    ledger, docs = await bank({})
    [verdict] = await ledger.post_batch([arrived(to=OUTSIDE, uid="nobody")])
    assert verdict.result is not None and (verdict.result.status, verdict.result.reason) == (
        UNAPPLIED,
        "unknown_account",
    )
    assert money(docs) == 0


async def test_a_payment_from_another_bank_is_never_approved_or_debited_here():
    ledger, docs = await bank({BOB: 1_000})
    [verdict] = await ledger.post_batch([PaymentEvent(arrived().payment, "approved")])
    assert verdict.result is None and "arrives" in (verdict.error or "")
    assert await balance(docs, BOB) == (1_000, 0, 1_000)


async def test_many_credits_to_one_payee_are_one_write_of_its_account():
    ledger, docs = await bank({})
    docs.forget()
    verdicts = await ledger.post_batch([arrived(n, amount=100) for n in range(20)])
    assert statuses(verdicts) == ["completed"] * 20
    [commit] = [writes for kind, writes in docs.calls if kind == "commit"]
    assert sum(path == account_path(BOB) for _op, path in commit) == 1
    assert await balance(docs, BOB) == (2_000, 0, 2_000)


# ---- the read models -------------------------------------------------------------------------
def test_the_payee_sees_the_money_in_with_the_payers_name_and_nobody_else_sees_anything():
    done = PaymentEvent(arrived().payment, "completed", detail=arrived().detail)
    entries = transaction_entries(done, payee_uid=None)
    assert list(entries) == [BOB]
    assert (entries[BOB]["direction"], entries[BOB]["amount"], entries[BOB]["category"]) == ("in", 2_500_000, "income")
    assert entries[BOB]["counterpartyName"] == "Arbeidsgiver AS"
    [push] = payment_pushes(done, payee_uid=None)
    assert (push.uid, push.kind) == ("bob", "incoming") and "from Arbeidsgiver AS" in push.body
    assert transaction_entries(PaymentEvent(done.payment, UNAPPLIED), payee_uid=None) == {}
    assert payment_pushes(PaymentEvent(done.payment, UNAPPLIED), payee_uid=None) == []


def test_my_economy_books_it_as_the_payees_income_in_the_payees_partition():
    done = PaymentEvent(arrived().payment, "completed")
    [booking] = bookings.for_partition(done, payee_uid=None)
    assert (booking.uid, booking.account_id, booking.direction, booking.amount) == ("bob", BOB, "in", 2_500_000)
    assert bookings.from_payment(done, payee_uid=None) == [booking]  # a recomputation from the record agrees


async def test_the_notifier_makes_the_payees_entry_and_view_without_reading_them_and_once():
    docs = RecordingDocuments()
    queued: list = []

    async def queue(pushes):
        queued.append(pushes)

    done = PaymentEvent(arrived().payment, "completed", detail=arrived().detail)
    known = notifier.Known()
    await notifier.project_batch(docs, Owners(docs), queue, [done], known=known)
    assert [kind for kind, _ in docs.calls if kind == "get_many"] == []  # no read at all
    pid = done.payment.payment_id
    assert (await docs.get(f"accounts/{BOB}/transactions/{pid}")).data["direction"] == "in"  # type: ignore[union-attr]
    assert (await docs.get(f"paymentViews/{pid}")).data["status"] == "completed"  # type: ignore[union-attr]
    [again] = await notifier.project_batch(docs, Owners(docs), queue, [done], known=notifier.Known())
    # a redelivery in a new process: its guessed creates fail, it reads and changes nothing; a
    # push queued before that commit is the same push again (one collapse id: shown once)
    assert not again.changed
    assert {p.dedupe_key for batch in queued for p in batch} == {f"{pid}:received"}


# ---- clearing: files in, returns out ---------------------------------------------------------
class Payees:
    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    async def of(self, accounts: list[str]) -> dict[str, str | None]:
        return {a: self.owners.get(a) for a in accounts}


@pytest.fixture
def dirs(tmp_path: Path) -> ClearingDirs:
    return ClearingDirs(tmp_path / "clearing")


def deliver(dirs: ClearingDirs, *credits: pacs.IncomingTransfer, name: str = "NICS1") -> Path:
    path = dirs.incoming_dir / f"{name}.xml"
    batch = pacs.IncomingBatch(name, NOW, credits)
    ClearingDirs.write_atomic(path, pacs.build_pacs008(batch, creditor_agent_bic="FJBKNO22XXX"))
    return path


async def test_a_file_is_published_per_credit_and_one_to_no_account_here_is_sent_back_at_once(dirs):
    incoming = Incoming(dirs, Payees({BOB: "bob"}).of, clock=lambda: NOW)
    published_events: list[PaymentEvent] = []

    async def publish(events):
        published_events.extend(events)

    [path] = [deliver(dirs, credit(1), credit(2, to=OUTSIDE))]
    out = await incoming.receive_file(path, publish)
    assert [(e.status, e.payment.to_account, e.payment.uid) for e in out] == [(ARRIVED, BOB, "bob")]
    assert out == published_events and out[0].detail and out[0].detail[FILE] == "NICS1"
    assert dirs.incoming() == [] and (dirs.processed / "NICS1.xml").exists()
    [sent] = sorted(dirs.outbox.glob(f"{RETURN_PREFIX}*.xml"))
    [returned] = pacs.parse_pacs004(sent.read_bytes()).returns
    assert (returned.original_transaction_id, returned.reason_code, returned.amount_minor) == ("TX2", "AC01", 2_500_000)
    assert returned.original_message_id == "NICS1"


async def test_an_unreadable_file_is_set_aside_whole_and_nothing_is_published(dirs):
    incoming = Incoming(dirs, Payees({BOB: "bob"}).of, clock=lambda: NOW)
    path = dirs.incoming_dir / "bad.xml"
    path.write_bytes(b"<Document>not a pacs.008</Document>")

    async def publish(events):  # pragma: no cover - must not be called
        raise AssertionError(events)

    assert await incoming.receive_file(path, publish) == []
    assert (dirs.processed / "bad.xml.rejected").exists() and list(dirs.outbox.iterdir()) == []


def test_an_unapplied_credit_is_sent_back_once_with_the_ledgers_reason(dirs):
    incoming = Incoming(dirs, Payees({}).of, clock=lambda: NOW)
    unapplied = PaymentEvent(arrived().payment, UNAPPLIED, "to_account_closed", detail=arrived().detail)
    assert incoming.unapplied(unapplied) is True
    assert incoming.unapplied(unapplied) is False  # a redelivery: the channel has it already
    [sent] = list(dirs.outbox.glob("*.xml"))
    assert sent.name == return_name(unapplied.payment.payment_id)
    [returned] = pacs.parse_pacs004(sent.read_bytes()).returns
    assert (returned.reason_code, returned.original_end_to_end_id) == ("AC04", "E2E1")
    other = PaymentEvent(arrived(2).payment, UNAPPLIED, "something_new", detail=arrived(2).detail)
    incoming.unapplied(other)
    [second] = pacs.parse_pacs004((dirs.outbox / return_name(other.payment.payment_id)).read_bytes()).returns
    assert second.reason_code == pacs.RETURN_OTHER


# ---- the clearing service's step -------------------------------------------------------------
async def test_the_clearing_step_sends_an_unapplied_credit_back_and_waits_while_the_channel_is_down(dirs):
    """payments.unapplied reaches clearing beside payments.reserved: the return is delivered
    and the message acked; with the channel down it is retried later (never lost, never a
    second return), and the batch's other messages are not held up by it."""
    import json
    from types import SimpleNamespace

    from fjordbank.adapters.clearing_store import ClearingChannelDown
    from fjordbank.runtime import steps
    from fjordbank.runtime.consumer import Ack, Delivery, Retry
    from fjordbank.service_layer.clearing import Clearing
    from run_services.clearing import RETURN_RETRY_SECONDS, ClearingHandler

    docs = RecordingDocuments()
    handler = ClearingHandler(Clearing(docs, dirs, bic="FJORNOKK"), dirs, Incoming(dirs, Payees({}).of))
    unapplied = PaymentEvent(arrived().payment, UNAPPLIED, "to_account_closed", detail=arrived().detail)

    def batch(*events: PaymentEvent) -> list[Delivery]:
        return [
            Delivery(SimpleNamespace(subject=e.subject, data=json.dumps(e.to_json()).encode(), headers={}))
            for e in events
        ]

    real = dirs.deliver

    def down(name: str, data: bytes) -> None:
        raise ClearingChannelDown("the transfer service cannot be reached")

    dirs.deliver = down  # type: ignore[method-assign]
    [waits] = await steps.payment_step(handler.submit)(batch(unapplied))
    assert isinstance(waits, Retry) and waits.delay == RETURN_RETRY_SECONDS
    assert list(dirs.outbox.iterdir()) == []
    dirs.deliver = real  # type: ignore[method-assign]
    [sent] = await steps.payment_step(handler.submit)(batch(unapplied))
    [again] = await steps.payment_step(handler.submit)(batch(unapplied))  # redelivered after its ack was lost
    assert isinstance(sent, Ack) and isinstance(again, Ack)
    assert [p.name for p in dirs.outbox.iterdir()] == [return_name(unapplied.payment.payment_id)]
