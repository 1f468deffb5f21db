"""Unit tests for fjordbank.domain.card_authorization (the card authorisation decision, no I/O).

The promises checked here are the module's own: a reference seen before gets the answer it
got (the same request the same decision, a reversal that overtook it "reversed", another
request with the reference a "duplicate_reference" that stores nothing); a new request is
declined on the card first (unknown, frozen, expired, CVV, limits), then on the funds (a
closed or gone account, too little available); an approval holds the amount on the account
and counts it in the card's spend of the day; a failed expiry or CVV check is counted per
card and day and freezes the card at the limit; and the feed entry shows the purchase with
the customer's own category for the merchant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from fjordbank.domain.card_authorization import (
    FROZEN_FOR_FAILED_CHECKS,
    Attempt,
    answer_again,
    authorize,
    check_card,
    feed_entry,
    new_record,
)
from fjordbank.domain.cards import (
    DEFAULT_LIMITS,
    FROZEN,
    HOLD_DAYS,
    MAX_FAILED_CHECKS,
    AuthorizationRequest,
    authorization_id,
    make_pan,
)
from fjordbank.domain.ledger import Account

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
DAY = "2026-11-26"
ACCOUNT = "12345678903"
PAN = make_pan("499210", "123456789")


def request(**changes: Any) -> AuthorizationRequest:
    base = AuthorizationRequest(
        reference="proc-ref-0001",
        pan=PAN,
        exp_month=11,
        exp_year=2030,
        cvv="123",
        amount=12_345,
        currency="NOK",
        merchant_name="Rema 1000 Grünerløkka",
        mcc="5411",
        merchant_country="NO",
        channel="pos",
    )
    return replace(base, **changes)


def attempt(*, card_id: str | None = "card_1", cvv_ok: bool | None = True, **changes: Any) -> Attempt:
    req = request(**changes)
    return Attempt(
        request=req,
        auth_id=authorization_id(req.reference),
        card_id=card_id,
        day=DAY,
        now=NOW,
        cvv_ok=cvv_ok,
    )


def card(**changes: Any) -> dict[str, Any]:
    return {
        "cardId": "card_1",
        "status": "active",
        "expMonth": 11,
        "expYear": 2030,
        "ownerUid": "alice",
        "accountId": ACCOUNT,
        "last4": "7897",
        **changes,
    }


def account(**changes: Any) -> Account:
    return replace(Account(ACCOUNT, "NOK", balance=100_000, owner_uid="alice"), **changes)


# ------------------------------------------------------------------ a reference seen before


def test_the_same_request_again_gets_the_same_approval_whatever_happened_since() -> None:
    a = attempt()
    previous = {**authorize(a, card(), {}, account()).record, "status": "captured"}
    answer = answer_again(a, previous)
    assert (answer.status, answer.reason, answer.replayed) == ("approved", None, True)
    assert answer.record is previous


def test_the_same_declined_request_again_is_declined_for_the_same_reason() -> None:
    a = attempt()
    previous = authorize(a, card(status=FROZEN), {}, account()).record
    answer = answer_again(a, previous)
    assert (answer.status, answer.reason, answer.replayed) == ("declined", "card_frozen", True)


def test_a_request_whose_reversal_came_first_is_declined() -> None:
    answer = answer_again(attempt(), {"authId": "ca1", "fingerprint": None, "status": "reversed"})
    assert (answer.status, answer.reason, answer.replayed) == ("declined", "reversed_before_authorization", True)


def test_another_request_with_a_used_reference_is_declined_and_shows_nothing_stored() -> None:
    previous = authorize(attempt(), card(), {}, account()).record
    answer = answer_again(attempt(amount=99_999), previous)
    assert (answer.status, answer.reason, answer.replayed, answer.record) == (
        "declined",
        "duplicate_reference",
        False,
        {},
    )


# ---------------------------------------------------------------------- decided on the card


def test_an_unknown_card_is_declined_and_nothing_but_the_record_is_written() -> None:
    a = attempt(card_id=None)
    assert check_card(a, None, {}) == "unknown_card"
    decided = authorize(a, None, {}, None)
    assert (decided.status, decided.reason) == ("declined", "unknown_card")
    assert (decided.book, decided.spend, decided.card_update) == (None, None, None)
    assert decided.record["ownerUid"] is None and decided.record["accountId"] is None


@pytest.mark.parametrize(
    ("changes", "card_changes", "reason"),
    [
        ({}, {"status": FROZEN}, "card_frozen"),
        ({}, {"status": "blocked"}, "card_blocked"),
        ({}, {"expYear": 2020, "expMonth": 1}, "invalid_expiry"),
        ({"channel": "online"}, {}, "cvv_required"),
        ({"channel": "atm"}, {}, "atm_not_supported"),
        ({"channel": "atm"}, {"type": "virtual-debit", "expMonth": 1}, "atm_not_supported"),
        ({"amount": DEFAULT_LIMITS["daily"] + 1}, {}, "over_daily_limit"),
        ({"merchant_country": "SE", "amount": DEFAULT_LIMITS["abroad"] + 1}, {}, "over_abroad_limit"),
    ],
)
def test_the_card_declines_before_the_funds_are_looked_at(
    changes: dict[str, Any], card_changes: dict[str, Any], reason: str
) -> None:
    a = attempt(cvv_ok=None if changes.get("channel") == "online" else True, **changes)
    assert check_card(a, card(**card_changes), {}) == reason
    decided = authorize(a, card(**card_changes), {}, account())  # an account given is not used
    assert (decided.status, decided.reason, decided.book) == ("declined", reason, None)
    if reason == "atm_not_supported":  # a refused channel is no failed check: nothing counted
        assert (decided.spend, decided.card_update) == (None, None)


def test_the_day_s_spend_counts_against_the_limit() -> None:
    a = attempt(amount=1_000)
    spent = {"daily": DEFAULT_LIMITS["daily"] - 1_000}
    assert check_card(a, card(), spent) is None
    assert check_card(a, card(), {"daily": DEFAULT_LIMITS["daily"] - 999}) == "over_daily_limit"


def test_a_card_expires_at_the_end_of_its_month_in_norway_not_in_utc() -> None:
    """00:30 on 1 April in Oslo is still 31 March in UTC: a card valid through 03/2027 has
    expired by then (and is valid until 23:59 on 31 March, Oslo time)."""
    expires = card(expMonth=3, expYear=2027)
    after = replace(
        attempt(exp_month=3, exp_year=2027), now=dt.datetime(2027, 3, 31, 22, 30, tzinfo=dt.UTC), day="2027-04-01"
    )
    assert check_card(after, expires, {}) == "card_expired"
    before = replace(
        attempt(exp_month=3, exp_year=2027), now=dt.datetime(2027, 3, 31, 21, 30, tzinfo=dt.UTC), day="2027-03-31"
    )
    assert check_card(before, expires, {}) is None


# --------------------------------------------------------------------- decided on the funds


def test_an_allowed_card_without_its_account_is_declined_account_closed() -> None:
    decided = authorize(attempt(), card(), {}, None)
    assert (decided.status, decided.reason, decided.book, decided.spend) == ("declined", "account_closed", None, None)


@pytest.mark.parametrize(
    ("acct", "reason"),
    [
        (account(balance=12_344), "insufficient_funds"),
        (account(status="closed"), "account_closed"),
        (account(owner_uid="mallory"), "unknown_account"),
    ],
)
def test_the_account_declines_what_it_cannot_hold(acct: Account, reason: str) -> None:
    decided = authorize(attempt(), card(), {}, acct)
    assert (decided.status, decided.reason, decided.book, decided.spend) == ("declined", reason, None, None)


def test_an_approval_holds_the_amount_and_counts_it_in_the_day_s_spend() -> None:
    a = attempt(merchant_country="SE", channel="online")
    decided = authorize(a, card(), {"daily": 100, "online": 50, "abroad": 0, "failedChecks": 2}, account())
    assert (decided.status, decided.reason, decided.card_update) == ("approved", None, None)
    assert decided.book is not None
    hold = decided.book.holds[a.auth_id]
    assert (hold.account_id, hold.amount, hold.kind) == (ACCOUNT, 12_345, "card")
    assert hold.expires_at == (NOW + dt.timedelta(days=HOLD_DAYS)).isoformat()
    assert decided.book.accounts[ACCOUNT].available == 100_000 - 12_345
    assert decided.spend == {
        "daily": 12_445,
        "online": 12_395,
        "abroad": 12_345,
        "failedChecks": 2,
        "cardId": "card_1",
        "day": DAY,
    }


def test_the_record_carries_the_request_without_pan_or_cvv_and_the_card_s_owner() -> None:
    a = attempt()
    record = authorize(a, card(), {}, account()).record
    decided = authorize(a, card(), {}, account())
    assert decided.book is not None
    assert record == {
        **new_record(a, card()),
        "status": "approved",
        "reason": None,
        "hold": decided.book.holds[a.auth_id].to_dict(),  # the hold, kept on the record
    }
    assert record["fingerprint"] == a.fingerprint
    assert (record["ownerUid"], record["accountId"], record["last4"], record["spendDay"]) == (
        "alice",
        ACCOUNT,
        "7897",
        DAY,
    )
    assert PAN not in repr(record) and "cvv" not in {k.lower() for k in record}


# ------------------------------------------------------------------------ failed checks


def test_a_wrong_cvv_is_counted_for_the_card_and_day() -> None:
    decided = authorize(attempt(cvv_ok=False), card(), {"daily": 500}, account())
    assert (decided.status, decided.reason, decided.book, decided.card_update) == (
        "declined",
        "cvv_mismatch",
        None,
        None,
    )
    assert decided.spend == {"daily": 500, "cardId": "card_1", "day": DAY, "failedChecks": 1}


def test_the_last_allowed_failed_check_freezes_the_card() -> None:
    spend = {"failedChecks": MAX_FAILED_CHECKS - 1}
    decided = authorize(attempt(exp_month=12), card(), spend, account())
    assert decided.reason == "invalid_expiry"
    assert decided.spend is not None and decided.spend["failedChecks"] == MAX_FAILED_CHECKS
    assert decided.card_update == {"status": FROZEN, "frozenReason": FROZEN_FOR_FAILED_CHECKS, "updatedAt": NOW}


def test_other_declines_are_not_counted_as_failed_checks() -> None:
    decided = authorize(attempt(), card(status=FROZEN), {"failedChecks": 3}, account())
    assert (decided.spend, decided.card_update) == (None, None)


# --------------------------------------------------------------------------- feed entry


def test_the_feed_entry_shows_the_purchase_in_the_customer_s_category() -> None:
    record = authorize(attempt(), card(), {}, account()).record
    entry = feed_entry(record, "pending", -12_345, None)
    assert entry is not None
    assert (entry["status"], entry["amount"], entry["direction"], entry["category"]) == (
        "pending",
        -12_345,
        "out",
        "groceries",
    )
    assert (entry["date"], entry["cardLast4"], entry["bookedAt"]) == (DAY, "7897", NOW)
    chosen = feed_entry(record, "posted", -12_345, {"category": "restaurants"})
    assert chosen is not None and chosen["category"] == "restaurants"


def test_an_authorisation_without_an_account_has_no_feed_entry() -> None:
    record = authorize(attempt(card_id=None), None, {}, None).record
    assert feed_entry(record, "pending", -1, None) is None
