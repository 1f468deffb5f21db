"""Unit tests for fjordbank.domain.feed (the notifier's projection of payment events, no I/O).

The promises checked here are the module's own: a payment's state moves only forward (an
older state never overwrites a newer one, in one batch or across batches), so a redelivered
event writes nothing new; the request document is updated only when the app made one, with
each state reached on its timeline; the feed entries are booked when they first appear and
then only updated; the payee's side is labelled with the payer's name and the payee's own
category; and the pushes are those of the states reached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from fjordbank.domain.feed import FIRST_ENTRY_RANK, NOT_SHOWN, PROJECTED, Labels, Projection, has_entry, project
from fjordbank.domain.norway import make_account_number
from fjordbank.domain.payments import (
    EXTERNAL,
    INTERNAL,
    STATUS_RANK,
    PaymentEvent,
    PaymentRequested,
    passed_at,
    passing,
)

FROM = make_account_number("1234", "56", 7891)
TO = make_account_number("1234", "56", 7893)
PID = "p" + "a" * 34
REQUEST = ("alice", "req-00000001")


def event(status: str, *, kind: str = EXTERNAL, pid: str = PID, reason: str | None = None) -> PaymentEvent:
    payment = PaymentRequested(
        payment_id=pid,
        uid="alice",
        request_id=REQUEST[1],
        kind=kind,
        from_account=FROM,
        to_account=TO,
        amount=123_456,
        currency="NOK",
        message="husleie",
        kid=None,
        due_date="2025-01-15",
        body_hash="0" * 64,
        requested_at="2025-01-15T12:00:00Z",
    )
    return PaymentEvent(payment, status, reason, None)


def shown(status: str) -> dict[str, Any]:
    return {"status": status, "statusRank": STATUS_RANK[status]}


def _ranks(requests: set[tuple[str, str]] | dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """The request documents that exist, showing the rank given (as the app made them: none)."""
    return requests if isinstance(requests, dict) else dict.fromkeys(requests, NOT_SHOWN)


def run(
    events: list[PaymentEvent],
    views: dict[str, dict[str, Any]] | None = None,
    *,
    requests: set[tuple[str, str]] | dict[tuple[str, str], int] | None = None,
    labels: Labels | None = None,
) -> Projection:
    return project(
        events,
        views=views or {},
        requests=_ranks({REQUEST} if requests is None else requests),
        labels=labels or Labels(),
    )


# ------------------------------------------------------------------------------- ordering


def test_a_new_state_moves_the_payment_and_its_request_document() -> None:
    p = run([event("approved")])
    assert p.changed == [True]
    assert p.views == {}  # the request document shows it: no second record of the payment
    request = p.requests[REQUEST]
    # the document was not read (it may show the edge's publish_pending): no reason now
    assert request.fields == {"paymentId": PID, **shown("approved"), "reason": None, PROJECTED: "approved"}
    assert request.timeline == ["approved"]


AT = dt.datetime(2025, 1, 15, 12, 0, 1, tzinfo=dt.UTC)


def answered(passed: list[str], status: str, *, kind: str = EXTERNAL) -> PaymentEvent:
    """The ledger's answer ``status`` to states nobody showed, each stamped by its producer
    (the ledger carries the detail on)."""
    e = event(passed[0], kind=kind)
    for i, state in enumerate(passed):
        e = passing(dataclasses.replace(e, status=state), AT + dt.timedelta(seconds=i))
    return dataclasses.replace(e, status=status)


def test_states_passed_unshown_join_the_timeline_with_the_state_after_them() -> None:
    p = run([answered(["approved"], "completed", kind=INTERNAL)], requests={REQUEST: STATUS_RANK["requested"]})
    request = p.requests[REQUEST]
    assert request.timeline == ["completed"]  # stamped with the commit's time
    assert request.passed == {"approved": AT}  # with screening's
    assert request.fields["status"] == "completed"


def test_a_request_shown_as_received_loses_its_waiting_reason_when_it_moves_on() -> None:
    """ "received" shows publish_pending (the edge could not publish, or thought so); the
    payment then went through, and the app shows any reason as an error: it is cleared."""
    p = run([event("approved")], requests={REQUEST: STATUS_RANK["received"]})
    assert p.requests[REQUEST].fields["reason"] is None
    assert (
        "reason" not in run([event("approved")], requests={REQUEST: STATUS_RANK["requested"]}).requests[REQUEST].fields
    )
    failed = run([event("failed", reason="insufficient_funds")], requests={REQUEST: STATUS_RANK["received"]})
    assert failed.requests[REQUEST].fields["reason"]["code"] == "insufficient_funds"
    unread = run([event("approved")], requests={REQUEST: NOT_SHOWN})  # the notifier's guess
    assert unread.requests[REQUEST].fields["reason"] is None


def test_a_passed_state_the_document_shows_or_passed_already_is_left_alone() -> None:
    # the document shows "submitted" (after "approved"): only "settled" is new to it
    p = run([answered(["approved", "settled"], "completed")], requests={REQUEST: STATUS_RANK["submitted"]})
    assert p.requests[REQUEST].passed == {"settled": AT + dt.timedelta(seconds=1)}


def test_a_payment_that_shows_its_final_state_takes_no_passed_state() -> None:
    p = run([answered(["approved"], "failed", kind=INTERNAL)], requests={REQUEST: STATUS_RANK["rejected"]})
    assert p.requests[REQUEST].passed == {}
    assert "status" not in p.requests[REQUEST].fields


def test_a_malformed_or_foreign_stamp_is_left_out() -> None:
    e = dataclasses.replace(
        event("completed"),
        detail={"passedAt": {"approved": "yesterday", "settled": "2025-01-15T12:00:00", "completed": AT.isoformat()}},
    )
    assert passed_at(e) == {}  # not a time, no time zone, a state that is shown
    assert run([e]).requests[REQUEST].passed == {}


def test_an_older_state_never_overwrites_a_newer_one() -> None:
    p = run([event("approved")], {PID: shown("submitted")})
    assert p.changed == [False]
    assert (p.views, p.requests, p.entries, p.pushes) == ({}, {}, {}, [])


def test_a_redelivered_state_writes_nothing_new() -> None:
    first = run([event("completed")], {PID: shown("submitted")})
    assert first.changed == [True]
    again = run([event("completed")], {PID: {"status": first.requests[REQUEST].fields[PROJECTED]}})
    assert again == Projection(changed=[False])
    by_view = run([event("completed")], {PID: shown("submitted")}, requests=set())
    assert run([event("completed")], by_view.views, requests=set()) == Projection(changed=[False])


def test_in_a_batch_each_event_applies_to_the_state_the_ones_before_left() -> None:
    p = run([event("reserved"), event("approved"), event("submitted"), event("submitted")])
    assert p.changed == [True, False, True, False]
    request = p.requests[REQUEST]
    assert request.fields["status"] == "submitted"
    assert request.timeline == ["reserved", "submitted"]


def test_nothing_leaves_a_terminal_state() -> None:
    p = run([event("failed", reason="AC04")], {PID: shown("completed")})
    assert p.changed == [False]


# ---------------------------------------------------------------------- request documents


def test_a_payment_without_a_request_document_is_shown_by_its_view_and_feed_only() -> None:
    p = run([event("reserved")], requests=set())
    assert p.changed == [True]
    assert p.requests == {}
    assert p.views == {PID: shown("reserved")}
    assert list(p.entries) == [(FROM, PID)]


def test_a_reason_reaches_the_request_document() -> None:
    p = run([event("failed", reason="AC04")], {PID: shown("submitted")})
    assert p.requests[REQUEST].fields["reason"] == {"code": "AC04", "message": "AC04"}


# ---------------------------------------------------------------------------- feed entries


def test_only_states_from_reserved_on_have_feed_entries() -> None:
    assert [s for s in STATUS_RANK if has_entry(event(s))] == [
        s for s in STATUS_RANK if STATUS_RANK[s] >= FIRST_ENTRY_RANK
    ]
    p = run([event("approved")])
    assert p.entries == {}


def test_a_feed_entry_is_booked_when_it_first_appears() -> None:
    p = run([event("reserved"), event("submitted")], {PID: shown("approved")})
    entry = p.entries[(FROM, PID)]
    assert entry.booked
    assert entry.fields["status"] == "pending"  # the latest state's entry, booked once


def test_a_feed_entry_shown_before_is_updated_not_booked_again() -> None:
    p = run([event("completed")], {PID: shown("submitted")})
    entry = p.entries[(FROM, PID)]
    assert not entry.booked
    assert entry.fields["status"] == "posted"


def test_a_feed_entry_is_written_again_only_when_its_status_changes() -> None:
    """reserved, submitted and settled all show "pending": one write, at reserved."""
    state, written = shown("approved"), []
    for status in ("reserved", "submitted", "settled", "completed"):
        p = run([event(status)], {PID: state})
        written.append({k: e.fields["status"] for k, e in p.entries.items()})
        assert p.shown[PID]["status"] == status and p.requests[REQUEST].timeline == [status]  # the app sees each
        state = shown(status)
    assert written == [{(FROM, PID): "pending"}, {}, {}, {(FROM, PID): "posted"}]
    returned = run([event("returned", reason="account_closed")], {PID: shown("submitted")})
    assert returned.entries[(FROM, PID)].fields["status"] == "cancelled"


def test_an_internal_payment_s_payee_gets_an_entry_labelled_with_the_payer() -> None:
    labels = Labels(
        owners={TO: "bob"},
        overrides={("bob", f"a:{FROM}"): "income", ("alice", f"a:{TO}"): "housing"},
        payer_names={"alice": "Alice Nordmann"},
    )
    p = run([event("completed", kind=INTERNAL)], labels=labels)
    payer, payee = p.entries[(FROM, PID)], p.entries[(TO, PID)]
    assert payer.booked and payee.booked
    assert (payer.fields["direction"], payer.fields["category"]) == ("out", "housing")
    assert payee.fields["direction"] == "in"
    assert payee.fields["counterpartyName"] == "Alice Nordmann"
    assert {push.uid for push in p.pushes} == {"alice", "bob"}


def test_an_external_payee_is_never_looked_up_as_a_customer() -> None:
    p = run([event("completed")], {PID: shown("submitted")}, labels=Labels(owners={TO: "bob"}))
    assert list(p.entries) == [(FROM, PID)]
    assert {push.uid for push in p.pushes} == {"alice"}


# --------------------------------------------------------------------------------- pushes


def test_pushes_are_those_of_the_states_reached() -> None:
    p = run([event("submitted"), event("completed"), event("completed")], {PID: shown("reserved")})
    assert [push.dedupe_key for push in p.pushes] == [f"{PID}:completed"]


def test_several_payments_are_projected_independently() -> None:
    other = "p" + "b" * 34
    p = run(
        [event("reserved"), event("reserved", pid=other), event("approved", pid=other)],
        {other: shown("submitted")},
        requests=set(),
    )
    assert p.changed == [True, False, False]
    assert set(p.views) == {PID}


def test_a_request_the_scheduler_failed_already_keeps_its_status_and_the_customer_is_told() -> None:
    """The scheduler fails a payment it could not pay on the request document itself, then
    publishes "failed": the notifier has projected nothing yet, so it pushes and writes its
    record, and leaves the status, reason and timeline the scheduler wrote."""
    p = run([event("failed", reason="insufficient_funds")], requests={REQUEST: STATUS_RANK["failed"]})
    assert p.changed == [True]
    request = p.requests[REQUEST]
    assert request.fields == {"paymentId": PID, PROJECTED: "failed"}
    assert request.timeline == []
    assert [push.dedupe_key for push in p.pushes] == [f"{PID}:failed"]


def test_a_request_document_s_status_never_moves_back_even_when_the_notifier_starts_from_nothing() -> None:
    p = run([event("approved"), event("reserved")], requests={REQUEST: STATUS_RANK["approved"]})
    request = p.requests[REQUEST]
    assert (request.fields["status"], request.fields[PROJECTED], request.timeline) == (
        "reserved",
        "reserved",
        ["reserved"],
    )
