"""Unit tests for fjordbank.service_layer.notifier (the notifier's projection of payment
events), on the in-memory documents (tests/support/memory.py): what the app sees.

The promises: a payment's state moves only forward on its request document, or on its view
when the app made none (an older state never overwrites a newer one, across batches and within one); a redelivered
event writes nothing new and queues no second push; a request document is only ever updated,
never made; a completed internal payment has a feed entry on both sides, booked once; the
entries are labelled with the customers' own categories and the payer's name, and a
transfer between one's own accounts is a transfer. The work per batch: the labels and the
owners not seen before are read outside the unit of work, which reads once and commits once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from fjordbank.domain.norway import make_account_number
from fjordbank.domain.notifications import Push
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    STATUS_RANK,
    PaymentEvent,
    PaymentRequested,
    passing,
    payment_id_for,
    requested_in_app,
)
from fjordbank.service_layer import notifier
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import Contention, Doc
from tests.support.memory import AsyncMemoryDocuments
from tests.support.recording import RecordingDocuments

FROM = make_account_number("1234", "56", 7891)  # alice's
TO = make_account_number("1234", "56", 7893)  # bob's, or somebody's at another bank
SAVINGS = make_account_number("1234", "56", 7894)  # alice's other account
PID = "p" + "a" * 34
REQUEST_ID = "req-00000001"
REQUEST = f"users/alice/paymentRequests/{REQUEST_ID}"
VIEW = f"paymentViews/{PID}"


def event(
    status: str, *, kind: str = EXTERNAL, to: str = TO, pid: str = PID, reason: str | None = None
) -> PaymentEvent:
    payment = PaymentRequested(
        payment_id=pid,
        uid="alice",
        request_id=REQUEST_ID,
        kind=kind,
        from_account=FROM,
        to_account=to,
        amount=123_456,
        currency="NOK",
        message="husleie",
        kid=None,
        due_date="2025-01-15",
        body_hash="0" * 64,
        requested_at="2025-01-15T12:00:00Z",
        payee_name="Utleier AS",
    )
    return PaymentEvent(payment, status, reason, None)


class Counted(AsyncMemoryDocuments):
    """The memory documents, counting the reads made outside a unit of work."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []  # the paths of each read, in order

    async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
        self.reads.append(list(paths))
        return await super().get_many(paths)


class Notifier:
    """The use case as the service wires it: one owners cache, the pushes queued kept."""

    def __init__(self, docs: AsyncMemoryDocuments | None = None) -> None:
        self.docs = docs or AsyncMemoryDocuments()
        self.owners = Owners(self.docs)
        self.known = notifier.Known()
        self.names = notifier.Names()
        self.queued: list[list[Push]] = []
        self.commits: list[tuple[int, BaseException | None]] = []  # (commits, the error it gave up on) per batch

    async def queue(self, pushes: list[Push]) -> None:
        self.queued.append(pushes)

    async def project(self, *events: PaymentEvent) -> list[bool]:
        projected = await notifier.project_batch(
            self.docs,
            self.owners,
            self.queue,
            list(events),
            known=self.known,
            names=self.names,
            attempted=lambda n, error: self.commits.append((n, error)),
        )
        assert [p.event for p in projected] == list(events)
        return [p.changed for p in projected]

    def doc(self, path: str) -> dict[str, Any] | None:
        found = self.docs.store.doc(path)
        return None if found is None else found.data

    def put(self, path: str, data: dict[str, Any]) -> None:
        self.docs.store.apply([("set", path, data, False)])

    def pushed(self) -> list[str]:
        return [p.dedupe_key for batch in self.queued for p in batch]


def with_request(n: Notifier | None = None) -> Notifier:
    """The app's request document, as the app made it."""
    n = n or Notifier()
    n.put(REQUEST, {"status": "received", "statusRank": STATUS_RANK["received"], "amount": 123_456})
    return n


def with_customers(n: Notifier) -> Notifier:
    """Alice pays Bob: both customers, their accounts opened."""
    n.put(f"accounts/{FROM}", {"ownerUid": "alice"})
    n.put(f"accounts/{SAVINGS}", {"ownerUid": "alice"})
    n.put(f"accounts/{TO}", {"ownerUid": "bob"})
    n.put("customers/alice", {"name": "Alice Nordmann"})
    n.put("customers/bob", {"name": "Bob Nordmann"})
    return n


def entry(n: Notifier, account: str) -> dict[str, Any] | None:
    return n.doc(f"accounts/{account}/transactions/{PID}")


# ------------------------------------------------------------------------------- ordering


async def test_a_new_state_moves_the_request_document_and_stamps_its_timeline() -> None:
    n = with_request()
    assert await n.project(event("approved")) == [True]
    assert n.doc(VIEW) is None  # the request document shows it: no second record, read or written
    request = n.doc(REQUEST) or {}
    assert (request["status"], request["statusRank"], request["paymentId"]) == ("approved", 3, PID)
    assert request["amount"] == 123_456  # the app's fields stay
    assert isinstance(request["timeline"]["approved"], dt.datetime)
    assert request["updatedAt"] == request["timeline"]["approved"]  # the commit's time
    assert n.commits == [(1, None)]


async def test_a_state_the_ledger_answered_at_once_reaches_the_timeline_with_its_own_time() -> None:
    # the notifier never sees "approved" (fjordbank.domain.payments.UNSHOWN): the ledger's
    # answer carries screening's stamp, and one write shows both
    n = with_request()
    approved_at = dt.datetime(2025, 1, 15, 12, 0, 1, tzinfo=dt.UTC)
    assert await n.project(dataclasses.replace(passing(event("approved"), approved_at), status="reserved")) == [True]
    request = n.doc(REQUEST) or {}
    assert request["status"] == "reserved"
    assert request["timeline"]["approved"] == approved_at
    assert request["timeline"]["reserved"] == request["updatedAt"]  # the commit's time


async def test_an_older_state_never_overwrites_a_newer_one_across_batches() -> None:
    n = with_request()
    await n.project(event("completed"))
    before = dict(n.docs.store.docs)
    assert await n.project(event("submitted")) == [False]
    assert await n.project(event("approved")) == [False]
    assert n.docs.store.docs == before
    assert (n.doc(REQUEST) or {})["status"] == "completed"
    assert n.pushed() == [f"{PID}:completed"]


async def test_an_older_state_never_overwrites_a_newer_one_within_a_batch() -> None:
    n = with_request()
    assert await n.project(event("reserved"), event("approved"), event("submitted"), event("reserved")) == [
        True,
        False,
        True,
        False,
    ]
    request = n.doc(REQUEST) or {}
    assert request["status"] == "submitted"
    assert set(request["timeline"]) == {"reserved", "submitted"}
    assert (entry(n, FROM) or {})["status"] == "pending"


async def test_the_view_remembers_the_state_shown_when_the_app_made_no_request_document() -> None:
    n = Notifier()  # a payment the bank started itself (a standing order): no request document
    await n.project(event("completed"))
    assert await n.project(event("reserved")) == [False]
    assert n.doc(REQUEST) is None  # never made here: the app's (and its creation fires the edge)
    assert n.doc(VIEW) == {"status": "completed", "statusRank": STATUS_RANK["completed"]}
    assert (entry(n, FROM) or {})["status"] == "posted"


# ---------------------------------------------------------------------------- redelivery


async def test_a_redelivered_event_writes_nothing_new_and_queues_no_second_push() -> None:
    n = with_customers(with_request())
    assert await n.project(event("completed", kind=INTERNAL)) == [True]
    before = dict(n.docs.store.docs)
    assert await n.project(event("completed", kind=INTERNAL)) == [False]
    assert n.docs.store.docs == before  # every document as it was, at the same version
    assert sorted(n.pushed()) == sorted([f"{PID}:completed", f"{PID}:received"])


async def test_the_same_event_twice_in_one_batch_is_projected_once() -> None:
    n = with_request()
    assert await n.project(event("completed"), event("completed")) == [True, False]
    assert n.pushed() == [f"{PID}:completed"]
    assert list((n.doc(REQUEST) or {})["timeline"]) == ["completed"]


# ---------------------------------------------------------------------------- the feed


async def test_a_completed_internal_payment_has_an_entry_for_the_payer_and_the_payee() -> None:
    n = with_customers(with_request())
    await n.project(event("completed", kind=INTERNAL))
    payer, payee = entry(n, FROM) or {}, entry(n, TO) or {}
    assert (payer["direction"], payer["amount"], payer["counterpartyAccount"]) == ("out", -123_456, TO)
    assert payer["counterpartyName"] == "Utleier AS"  # as the payer typed it
    assert (payee["direction"], payee["amount"], payee["counterpartyAccount"]) == ("in", 123_456, FROM)
    assert payee["counterpartyName"] == "Alice Nordmann"  # the payer's name, read from her profile
    assert payer["status"] == payee["status"] == "posted"
    assert payer["bookedAt"] == payee["bookedAt"] == payer["updatedAt"]
    assert {p.uid for batch in n.queued for p in batch} == {"alice", "bob"}


async def test_an_entry_is_booked_when_it_first_appears_and_then_only_updated() -> None:
    n = with_request()
    await n.project(event("reserved"))
    booked = (entry(n, FROM) or {})["bookedAt"]
    await n.project(event("submitted"))
    await n.project(event("completed"))
    later = entry(n, FROM) or {}
    assert later["status"] == "posted"
    assert later["bookedAt"] == booked and later["updatedAt"] > booked  # the feed's order stays


async def test_an_external_payee_is_never_looked_up_as_a_customer() -> None:
    docs = Counted()
    n = with_customers(with_request(Notifier(docs)))
    await n.project(event("completed"))  # to TO, but at another bank: an external payment
    assert entry(n, TO) is None
    assert not any(path.startswith("accounts/") for paths in docs.reads for path in paths)
    assert [p.uid for batch in n.queued for p in batch] == ["alice"]


# --------------------------------------------------------------------------------- labels


async def test_the_entries_have_each_customer_s_own_category_for_the_other() -> None:
    n = with_customers(with_request())
    n.put(f"users/alice/categoryOverrides/a:{TO}", {"category": "housing", "key": f"a:{TO}"})
    n.put(f"users/bob/categoryOverrides/a:{FROM}", {"category": "income", "key": f"a:{FROM}"})
    await n.project(event("completed", kind=INTERNAL))
    assert (entry(n, FROM) or {})["category"] == "housing"
    assert (entry(n, TO) or {})["category"] == "income"


async def test_without_own_categories_a_payment_is_a_transfer_out_and_income_in() -> None:
    n = with_customers(with_request())
    await n.project(event("completed", kind=INTERNAL))
    assert (entry(n, FROM) or {})["category"] == "transfers"
    assert (entry(n, TO) or {})["category"] == "income"


async def test_a_payment_between_own_accounts_is_a_transfer_on_both_sides_whatever_was_chosen() -> None:
    n = with_customers(with_request())
    n.put(f"users/alice/categoryOverrides/a:{SAVINGS}", {"category": "housing", "key": f"a:{SAVINGS}"})
    await n.project(event("completed", kind=INTERNAL, to=SAVINGS))
    out, into = entry(n, FROM) or {}, entry(n, SAVINGS) or {}
    assert (out["direction"], out["category"]) == ("out", "transfers")
    assert (into["direction"], into["category"], into["counterpartyName"]) == ("in", "transfers", "Alice Nordmann")


# ------------------------------------------------------------------------ the work per batch


async def test_one_read_each_for_owners_records_and_labels_then_one_commit() -> None:
    docs = Counted()
    n = with_customers(with_request(Notifier(docs)))
    await n.project(event("completed", kind=INTERNAL))
    owners, records, labels = docs.reads
    assert owners == [f"accounts/{TO}"]  # the internal payment's payee
    assert records == [REQUEST]
    # the payer's choice for the payee and the payer's name (money in reads no choice)
    assert set(labels) == {f"users/alice/categoryOverrides/a:{TO}", "customers/alice"}
    assert n.commits == [(1, None)]
    docs.reads.clear()
    await n.project(bank_started("completed", kind=INTERNAL))
    views, labels = docs.reads  # bob's account is known now, and alice's name; no request document
    assert "customers/alice" not in labels
    assert views == [f"paymentViews/{BANK}"]


async def test_an_entry_there_already_takes_its_new_status_only_and_is_not_labelled_again() -> None:
    docs = Counted()
    n = with_customers(with_request(Notifier(docs)))
    n.put(f"users/alice/categoryOverrides/a:{TO}", {"category": "housing"})
    await n.project(event("submitted"))  # to another bank: its entry appears, pending
    assert (entry(n, FROM) or {})["category"] == "housing"
    n.put(f"accounts/{FROM}/transactions/{PID}", {**(entry(n, FROM) or {}), "category": "bills"})  # relabelled since
    docs.reads.clear()
    await n.project(event("completed"))
    assert docs.reads == []  # the record is known, and the entry is not labelled again
    assert (entry(n, FROM) or {})["status"] == "posted"
    assert (entry(n, FROM) or {})["category"] == "bills"  # the relabelling stays


async def test_a_payer_s_name_is_read_once_per_process() -> None:
    docs = Counted()
    n = with_customers(with_request(Notifier(docs)))
    await n.project(event("completed", kind=INTERNAL))
    assert n.doc(entry_of(TO, PID))["counterpartyName"] == "Alice Nordmann"
    assert n.names.get("alice") == "Alice Nordmann"
    docs.reads.clear()
    again = await notifier.read_labels(docs, [event("completed", kind=INTERNAL)], {TO: "bob"}, n.names)
    assert again.payer_names == {"alice": "Alice Nordmann"} and "customers/alice" not in docs.reads[-1]
    other = await notifier.read_labels(docs, [event("completed", kind=INTERNAL)], {TO: "bob"}, notifier.Names())
    assert other.payer_names == {"alice": "Alice Nordmann"} and "customers/alice" in docs.reads[-1]  # another process


async def test_a_payer_without_a_customer_document_is_read_once_too() -> None:
    docs = Counted()
    with_customers(with_request(Notifier(docs)))
    docs.store.apply([("delete", "customers/alice", None, False)])  # an account opened outside onboarding
    names = notifier.Names()
    for _ in range(2):
        labels = await notifier.read_labels(docs, [event("completed", kind=INTERNAL)], {TO: "bob"}, names)
        assert labels.payer_names == {"alice": None}
    assert ["customers/alice" in paths for paths in docs.reads] == [True, False]


def entry_of(account: str, payment_id: str) -> str:
    return f"accounts/{account}/transactions/{payment_id}"


BANK = "p" + "c" * 34  # a payment the bank started itself: no request document


def bank_started(status: str, *, kind: str = EXTERNAL) -> PaymentEvent:
    payment = replace(event(status, kind=kind).payment, payment_id=BANK, request_id="so-1")
    return PaymentEvent(payment, status)


async def test_a_record_known_is_written_without_a_read_in_one_commit_guarded_by_its_version() -> None:
    """The request document is the notifier's record of a payment the app asked for (no view
    is read or written); a payment the bank started has its view. Once this process has read
    or written a record, the payment's next state is one commit and no read, on the
    condition that the record is still the version it wrote."""
    docs = RecordingDocuments()
    n = with_request(Notifier(docs))
    await n.project(event("approved"), bank_started("reserved"))
    assert [c for c in docs.calls if c[0] != "get_many" or "categoryOverrides" not in c[1][0]] == [  # but the labels
        ("get_many", [REQUEST]),  # a payment the bank started has no request document to read
        ("get_many", [f"paymentViews/{BANK}"]),
        (
            "commit",
            [("update", REQUEST), ("create", f"paymentViews/{BANK}"), ("set", f"accounts/{FROM}/transactions/{BANK}")],
        ),
    ]
    docs.forget()
    await n.project(event("reserved"), bank_started("submitted"))
    assert [kind for kind, _ in docs.calls] == ["get_many", "commit"]  # the labels of the request's new entry
    assert (n.doc(REQUEST) or {})["status"] == "reserved"
    assert n.doc(f"paymentViews/{BANK}") == {"status": "submitted", "statusRank": STATUS_RANK["submitted"]}


async def test_a_record_another_writer_moved_fails_the_commit_and_the_batch_is_read_and_decided_again() -> None:
    n = with_request()
    await n.project(event("approved"))
    moved = {"status": "submitted", "statusRank": STATUS_RANK["submitted"], "projectedStatus": "submitted"}
    n.put(REQUEST, {**(n.doc(REQUEST) or {}), **moved})  # another instance, after the partition moved
    assert await n.project(event("reserved"), event("completed")) == [False, True]  # against the new version
    assert n.commits[-1] == (2, None)
    assert (n.doc(REQUEST) or {})["status"] == "completed"
    assert set(n.pushed()) == {f"{PID}:completed"}  # queued by each attempt, shown once (its collapse id)


async def test_records_that_keep_moving_give_the_batch_back_as_contention() -> None:
    class Moving(AsyncMemoryDocuments):
        async def get_many(self, paths: Sequence[str]) -> dict[str, Doc | None]:
            found = await super().get_many(paths)
            self.store.apply([("set", REQUEST, {"status": "received", "statusRank": 0}, False)])  # after the read
            return found

    n = with_request(Notifier(Moving()))
    with pytest.raises(Contention):
        await n.project(event("approved"))
    assert len(n.commits) == 1 and n.commits[0][0] == notifier.ATTEMPTS
    assert isinstance(n.commits[0][1], Contention)


async def test_a_payee_the_event_tells_is_not_read() -> None:
    """The edge tells an internal payment's payee (it read the account): no owner read."""
    docs = Counted()
    n = with_customers(with_request(Notifier(docs)))
    told = requested_in_app(event("completed", kind=INTERNAL), payee_uid="bob")
    assert await n.project(told) == [True]
    assert not any(path.startswith("accounts/") for paths in docs.reads for path in paths)
    assert (entry(n, TO) or {})["direction"] == "in"  # the payee's side, in bob's feed


# ------------------------------------------------------------ a final state first seen


def from_the_edge(status: str, *, kind: str = INTERNAL, reason: str | None = None) -> PaymentEvent:
    """An event of a payment the edge published (its request document exists)."""
    return requested_in_app(event(status, kind=kind, reason=reason))


async def test_a_payment_from_the_edge_first_seen_final_is_written_without_a_read() -> None:
    """An internal payment reaches the notifier once, final: its request document is not
    read, only updated on the condition that it exists, and its feed entries are created."""
    docs = RecordingDocuments()
    n = with_customers(with_request(Notifier(docs)))
    docs.forget()
    assert await n.project(from_the_edge("completed")) == [True]
    calls = [
        c
        for c in docs.calls
        if not (
            c[0] == "get_many"
            and all(
                "/accounts/" in p or p.startswith(("accounts/", "customers/", "users/alice/categoryOverrides"))
                for p in c[1]
            )
        )
    ]
    assert calls == [
        (
            "commit",
            [
                ("update", REQUEST),
                ("create", f"accounts/{FROM}/transactions/{PID}"),
                ("create", f"accounts/{TO}/transactions/{PID}"),
            ],
        ),
    ]
    request = n.doc(REQUEST) or {}
    assert (request["status"], request["projectedStatus"], request["amount"]) == ("completed", "completed", 123_456)
    assert (entry(n, FROM) or {})["status"] == "posted" and (entry(n, TO) or {})["status"] == "posted"
    assert n.pushed() and n.commits == [(1, None)]


@pytest.mark.parametrize("status", ["completed", "submitted"])
async def test_the_edge_s_publish_pending_is_cleared_by_a_later_state_written_without_a_read(status: str) -> None:
    """The edge's publish raised but the message was stored (a timeout), so the document
    shows "received" with publish_pending while the payment goes on: the state written
    without reading the document clears the reason, as one written after a read does."""
    n = with_customers(Notifier())
    pending = {"code": "publish_pending", "message": "nats: timeout"}
    n.put(REQUEST, {"status": "received", "statusRank": STATUS_RANK["received"], "amount": 123_456, "reason": pending})
    await n.project(from_the_edge(status, kind=INTERNAL if status == "completed" else EXTERNAL))
    request = n.doc(REQUEST) or {}
    assert (request["status"], request.get("reason")) == (status, None)


async def test_a_redelivered_final_state_a_new_process_guessed_is_read_and_changes_nothing() -> None:
    n = with_customers(with_request())
    await n.project(from_the_edge("completed"))
    relabelled = {**(entry(n, FROM) or {}), "category": "gifts"}  # the customer's own label
    n.put(f"accounts/{FROM}/transactions/{PID}", relabelled)
    again = Notifier(n.docs)  # a process that remembers nothing (a restart, a partition moved)
    assert await again.project(from_the_edge("completed")) == [False]
    assert again.commits == [(2, None)]  # the guess's creates failed; read, nothing to write
    assert (entry(n, FROM) or {})["category"] == "gifts"
    assert set(again.pushed()) == set(n.pushed())  # queued again, shown once (their collapse ids)


async def test_a_guess_of_a_request_document_that_is_not_there_is_read_again() -> None:
    n = with_customers(Notifier())  # no request document (the flag was wrong)
    assert await n.project(from_the_edge("failed", reason="insufficient_funds")) == [True]
    assert n.commits == [(2, None)]
    assert (n.doc(VIEW) or {})["status"] == "failed"


async def test_a_submitted_payment_from_the_edge_is_guessed_and_its_later_state_in_a_new_process_too() -> None:
    docs = RecordingDocuments()
    n = with_customers(with_request(Notifier(docs)))
    docs.forget()
    assert await n.project(from_the_edge("submitted", kind=EXTERNAL)) == [True]
    assert [c[0] for c in docs.calls if "users/alice/paymentRequests/" in str(c[1])] == ["commit"]  # no read
    assert (entry(n, FROM) or {})["status"] == "pending"
    later = Notifier(n.docs)  # the partition moved: this process remembers nothing
    assert await later.project(from_the_edge("completed", kind=EXTERNAL)) == [True]
    assert later.commits == [(2, None)]  # the entry's create failed: read, then moved on
    assert ((n.doc(REQUEST) or {})["status"], (entry(n, FROM) or {})["status"]) == ("completed", "posted")
    stale = Notifier(n.docs)
    assert await stale.project(from_the_edge("submitted", kind=EXTERNAL)) == [False]  # a late redelivery
    assert (n.doc(REQUEST) or {})["status"] == "completed"  # never back


async def test_what_is_not_guessed_is_read_first() -> None:
    for first in (
        from_the_edge("rejected", kind=EXTERNAL, reason="sanctions"),  # no feed entry to guard it
        event("completed", kind=INTERNAL),  # not marked as the edge's
    ):
        docs = RecordingDocuments()
        n = with_customers(with_request(Notifier(docs)))
        docs.forget()
        await n.project(first)
        assert ("get_many", [REQUEST]) in docs.calls, first.status


async def test_a_document_under_a_bank_started_payments_request_id_is_never_taken_for_its_record() -> None:
    """A standing order's payment has no request document; its request id (so-ORDER-DATE)
    is predictable from the order the app named. An app that made a document under it
    first (the rules took the id then; the edge refused it) had the notifier take that
    document for the payment's record: no view was made, and the app's document went on
    showing the edge's "rejected" while the money moved (found in review, 2026-12-06)."""
    rid = "so-order0001-20250115"
    pid = payment_id_for("alice", rid)
    docs = RecordingDocuments()
    n = with_customers(Notifier(docs))
    forged = {"status": "rejected", "statusRank": STATUS_RANK["rejected"], "reason": {"code": "invalid_request_id"}}
    n.put(f"users/alice/paymentRequests/{rid}", forged)
    started = event("completed", kind=INTERNAL)
    started = replace(started, payment=replace(started.payment, request_id=rid, payment_id=pid))
    docs.forget()
    assert await n.project(started) == [True]
    assert (n.doc(f"paymentViews/{pid}") or {})["status"] == "completed"
    assert n.doc(f"users/alice/paymentRequests/{rid}") == forged  # left as the app made it
    assert not any(f"paymentRequests/{rid}" in str(c[1]) for c in docs.calls)  # never read
