"""Unit tests for fjordbank.domain.card_settlement (capture, reversal, expiry; no I/O).

The promises are the module's own: a capture consumes the hold whole and posts what is
captured to the card scheme's shard, a partial one gives the rest back to the day's spend;
the same capture again is answered as before and another is refused; a capture after the
hold expired is posted from the available balance and flagged; a release gives the hold
and the day's spend back; a second release is answered as the first; a reversal before
its authorisation is recorded without a fingerprint; and nothing refused changes anything.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fjordbank.domain.audit import CARD_CAPTURE
from fjordbank.domain.card_settlement import (
    CAPTURE_STEP,
    REVERSED_BEFORE_AUTHORIZATION,
    Held,
    Settlement,
    capture,
    release,
    unspent,
)
from fjordbank.domain.ledger import Account, Book, Hold, card_scheme_account

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=1)
AUTH = "ca" + "1" * 32
ACCOUNT = "12345678903"
SCHEME = card_scheme_account(AUTH)
HELD = 10_000


def record(**changes: Any) -> dict[str, Any]:
    return {
        "authId": AUTH,
        "fingerprint": "f" * 64,
        "reference": "ref-1",
        "amount": HELD,
        "currency": "NOK",
        "merchantName": "Rema 1000",
        "mcc": "5411",
        "merchantCountry": "SE",
        "channel": "online",
        "cardId": "card_1",
        "ownerUid": "alice",
        "accountId": ACCOUNT,
        "last4": "7897",
        "spendDay": "2026-11-26",
        "status": "approved",
        "reason": None,
        "createdAt": NOW,
        "updatedAt": NOW,
        **changes,
    }


def held(*, status: str = "active", balance: int = 100_000, spend: dict[str, Any] | None = None) -> Held:
    """An approval's hold of HELD on an account of ``balance``, with the scheme's shard."""
    hold = Hold(AUTH, ACCOUNT, HELD, "NOK", (NOW + dt.timedelta(days=7)).isoformat(), status=status, kind="card")
    account = Account(ACCOUNT, "NOK", balance=balance, held=HELD if status == "active" else 0, owner_uid="alice")
    scheme = Account(SCHEME, "NOK", kind="internal")
    book = Book({ACCOUNT: account, SCHEME: scheme}, holds={AUTH: hold})
    day = {"daily": 15_000, "online": 12_000, "abroad": 11_000, "cardId": "card_1", "day": "2026-11-26"}
    return Held(hold, book, day if spend is None else spend)


def assert_nothing_written(settled: Settlement) -> None:
    assert not settled.store
    assert (settled.book, settled.spend, settled.feed) == (None, None, None)


def test_the_capture_step_is_the_one_the_audit_knows() -> None:
    assert CAPTURE_STEP == CARD_CAPTURE


# ------------------------------------------------------------------------------------ capture
def test_a_full_capture_consumes_the_hold_and_posts_it_to_the_scheme() -> None:
    h = held()
    settled = capture(AUTH, record(), h, capture_ref="cap-1", amount=None, now=LATER)
    assert (settled.status, settled.reason, settled.replayed, settled.store) == ("captured", None, False, True)
    assert settled.record["capturedAmount"] == HELD and settled.record["captureRef"] == "cap-1"
    assert settled.record["updatedAt"] == LATER and "lateCapture" not in settled.record
    assert settled.book is h.book
    [posting] = h.book.postings
    assert (posting.posting_id, posting.step) == (f"{AUTH}:{CAPTURE_STEP}", CAPTURE_STEP)
    assert {(e.account_id, e.amount) for e in posting.entries} == {(ACCOUNT, -HELD), (SCHEME, HELD)}
    acct = h.book.accounts[ACCOUNT]
    assert (acct.balance, acct.held, acct.available) == (90_000, 0, 90_000)
    assert h.hold.status == "captured"
    assert settled.spend is None  # all of it was spent
    assert settled.feed is not None
    assert (settled.feed["status"], settled.feed["amount"]) == ("posted", -HELD)
    # merged into the authorisation's entry: its category stays as labelled (or relabelled)
    assert "category" not in settled.feed and settled.feed["merchantKey"] == "m:rema-1000"


def test_a_partial_capture_posts_less_and_gives_the_rest_back_to_the_day_s_spend() -> None:
    h = held()
    settled = capture(AUTH, record(), h, capture_ref="cap-1", amount=7_500, now=LATER)
    assert settled.status == "captured" and settled.record["capturedAmount"] == 7_500
    acct = h.book.accounts[ACCOUNT]
    assert (acct.balance, acct.held) == (92_500, 0)
    # online and abroad: the 2 500 not captured counts in every bucket of the day again
    assert settled.spend == {"daily": 12_500, "online": 9_500, "abroad": 8_500, "cardId": "card_1", "day": "2026-11-26"}
    assert settled.feed is not None and settled.feed["amount"] == -7_500


def test_a_capture_of_more_than_the_hold_is_refused_and_changes_nothing() -> None:
    h = held()
    settled = capture(AUTH, record(), h, capture_ref="cap-1", amount=HELD + 1, now=LATER)
    assert (settled.status, settled.reason) == ("refused", "invalid_capture")
    assert_nothing_written(settled)
    assert (h.book.accounts[ACCOUNT].held, h.hold.status, h.book.postings) == (HELD, "active", [])


def test_the_same_capture_again_is_answered_as_before_and_another_is_refused() -> None:
    captured = record(status="captured", capturedAmount=HELD, captureRef="cap-1")
    again = capture(AUTH, captured, held(status="captured"), capture_ref="cap-1", amount=None, now=LATER)
    assert (again.status, again.reason, again.replayed, again.record) == ("captured", None, True, captured)
    assert_nothing_written(again)
    other = capture(AUTH, captured, held(status="captured"), capture_ref="cap-2", amount=10, now=LATER)
    assert (other.status, other.reason, other.replayed) == ("refused", "already_captured", False)
    assert_nothing_written(other)


def test_a_capture_of_no_authorisation_is_refused() -> None:
    settled = capture(AUTH, None, None, capture_ref="cap-1", amount=None, now=LATER)
    assert (settled.status, settled.reason, settled.record) == ("refused", "unknown_authorization", {})
    assert_nothing_written(settled)


@pytest.mark.parametrize(
    ("status", "has_hold"),
    [("declined", False), ("reversed", True), ("approved", False)],
)
def test_what_holds_nothing_is_never_captured(status: str, has_hold: bool) -> None:
    h = held(status="released") if has_hold else None
    settled = capture(AUTH, record(status=status), h, capture_ref="cap-1", amount=None, now=LATER)
    assert (settled.status, settled.reason) == ("refused", f"authorization_{status}")
    assert_nothing_written(settled)


def test_a_late_capture_is_posted_from_the_available_balance_and_flagged() -> None:
    h = held(status="released")
    settled = capture(AUTH, record(status="expired"), h, capture_ref="cap-1", amount=9_000, now=LATER)
    assert (settled.status, settled.record["capturedAmount"], settled.record["lateCapture"]) == (
        "captured",
        9_000,
        True,
    )
    acct = h.book.accounts[ACCOUNT]
    assert (acct.balance, acct.held) == (91_000, 0)
    assert h.book.accounts[SCHEME].balance == 9_000
    assert settled.spend is None  # the expiry gave the day's spend back already


@pytest.mark.parametrize("amount", [HELD + 1, 90_000, 0, -5])
def test_a_late_capture_is_bounded_by_the_authorised_amount_as_one_in_time(amount: int) -> None:
    """The hold's expiry gave the hold back, not the right to post any amount: a late
    capture of more than was authorised is refused as an in-time one is."""
    for h, status in ((held(status="released"), "expired"), (held(), "approved")):
        settled = capture(AUTH, record(status=status), h, capture_ref="cap-1", amount=amount, now=LATER)
        assert (settled.status, settled.reason) == ("refused", "invalid_capture"), status
        assert_nothing_written(settled)
        assert h.book.accounts[ACCOUNT].balance == 100_000


def test_a_late_capture_without_the_funds_is_refused() -> None:
    h = held(status="released", balance=5_000)
    settled = capture(AUTH, record(status="expired"), h, capture_ref="cap-1", amount=None, now=LATER)
    assert (settled.status, settled.reason) == ("refused", "insufficient_funds")
    assert_nothing_written(settled)
    assert h.book.accounts[ACCOUNT].balance == 5_000


@pytest.mark.parametrize(("status", "reason"), [("closed", "account_closed"), ("frozen", "account_frozen")])
def test_a_late_capture_from_an_account_no_longer_open_is_refused(status: str, reason: str) -> None:
    """An account closes once its hold is released (nothing held); a closed one's money
    leaves only by its payout, and a late capture took a refund waiting there (found in
    review, 2026-12-07). The refusal is open for the reconciliation."""
    h = held(status="released")
    h.book.accounts[ACCOUNT].status = status
    settled = capture(AUTH, record(status="expired"), h, capture_ref="cap-1", amount=9_000, now=LATER)
    assert (settled.status, settled.reason) == ("refused", reason)
    assert_nothing_written(settled)
    assert h.book.accounts[ACCOUNT].balance == 100_000


# ----------------------------------------------------------------------- reversal and expiry
@pytest.mark.parametrize("status", ["reversed", "expired"])
def test_a_release_gives_the_hold_and_the_day_s_spend_back(status: str) -> None:
    h = held()
    when = LATER if status == "reversed" else NOW + dt.timedelta(days=7)  # an expiry once due
    settled = release(AUTH, record(), h, reference="ref-1", status=status, now=when)
    assert (settled.status, settled.reason, settled.replayed, settled.store) == (status, None, False, True)
    assert (settled.record["status"], settled.record["updatedAt"]) == (status, when)
    acct = h.book.accounts[ACCOUNT]
    assert (acct.balance, acct.held, acct.available) == (100_000, 0, 100_000)
    assert h.hold.status == "released" and h.book.postings == []
    assert settled.spend is not None
    assert (settled.spend["daily"], settled.spend["online"], settled.spend["abroad"]) == (5_000, 2_000, 1_000)
    assert settled.feed is not None and (settled.feed["status"], settled.feed["amount"]) == ("cancelled", -HELD)


def test_a_hold_not_due_is_not_expired() -> None:
    """Extended by an increment since the job found it due: the job's release is refused."""
    settled = release(AUTH, record(), held(), reference=None, status="expired", now=LATER)
    assert (settled.status, settled.reason) == ("refused", "not_due")
    assert_nothing_written(settled)


@pytest.mark.parametrize(("before", "now"), [("reversed", "reversed"), ("expired", "expired"), ("reversed", "expired")])
def test_a_second_release_is_answered_as_the_first(before: str, now: str) -> None:
    done = record(status=before)
    settled = release(AUTH, done, held(status="released"), reference="ref-1", status=now, now=LATER)
    assert (settled.status, settled.replayed, settled.record) == (before, True, done)
    assert_nothing_written(settled)


def test_the_merchants_reversal_after_the_expiry_calls_the_purchase_off_and_moves_nothing() -> None:
    """The job gave the hold back; the merchant's reversal then only marks the record, so no
    late capture may take it; nothing is announced (the expiry was)."""
    done = record(status="expired")
    settled = release(AUTH, done, held(status="released"), reference="ref-1", status="reversed", now=LATER)
    assert (settled.status, settled.store, settled.silent) == ("reversed", True, True)
    assert (settled.record["status"], settled.record["reversedAfterExpiry"]) == ("reversed", True)
    assert (settled.book, settled.spend, settled.feed) == (None, None, None)
    late = capture(AUTH, settled.record, held(status="released"), capture_ref="cap-1", amount=1_000, now=LATER)
    assert (late.status, late.reason) == ("refused", "authorization_reversed")
    # the card service's own release of an approval not answered is no merchant's reversal
    own = release(AUTH, done, held(status="released"), reference="ref-1", status="reversed", now=LATER, unanswered=True)
    assert (own.status, own.replayed) == ("expired", True)


def test_a_reversal_before_its_authorisation_is_recorded_without_a_fingerprint() -> None:
    settled = release(AUTH, None, None, reference="ref-late", status="reversed", now=NOW)
    assert (settled.status, settled.reason, settled.store) == ("reversed", REVERSED_BEFORE_AUTHORIZATION, True)
    assert settled.record == {
        "authId": AUTH,
        "reference": "ref-late",
        "fingerprint": None,
        "status": "reversed",
        "reason": REVERSED_BEFORE_AUTHORIZATION,
        "createdAt": NOW,
        "updatedAt": NOW,
    }
    assert (settled.book, settled.spend, settled.feed) == (None, None, None)


@pytest.mark.parametrize(("status", "has_hold"), [("captured", True), ("declined", False)])
def test_what_holds_nothing_is_never_released(status: str, has_hold: bool) -> None:
    h = held(status="captured") if has_hold else None
    settled = release(AUTH, record(status=status), h, reference="ref-1", status="reversed", now=LATER)
    assert (settled.status, settled.reason) == ("refused", f"authorization_{status}")
    assert_nothing_written(settled)


def test_a_day_without_spend_has_nothing_to_give_back() -> None:
    assert unspent(record(), None, 1_000) is None
    assert unspent(record(channel="pos", merchantCountry="NO"), {"daily": 3_000, "online": 7}, 1_000) == {
        "daily": 2_000,
        "online": 7,
        "abroad": 0,
    }
