"""Unit and property tests for the card and onboarding pushes of
fjordbank.domain.notifications (no I/O).

The promises checked here are the module's own: an approved or declined card authorisation
tells the card holder the amount (formatted from exact øre) and, for a decline, the reason
from the reason table, with the merchant's name in the data payload only (the app shows it
once opened), never in the visible text on the lock screen (SECURITY.md); onboarding results are told with fixed texts;
every push has the kind of its user preference and a stable dedupe key of its own (a
released reservation is shown beside its approval, never raced to replace it); anything else
(unknown status, no user) pushes nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjordbank.domain.money import NBSP, Money
from fjordbank.domain.notifications import (
    CARD,
    CARD_REASON_TEXTS,
    DEFAULT_PREFERENCES,
    DEVICE_TEXTS,
    ONBOARDING,
    SECURITY,
    Push,
    card_pushes,
    customer_pushes,
    device_pushes,
    onboarding_pushes,
)

AUTH_ID = "ca" + "0" * 32


def card_event(**changes: object) -> dict:
    event: dict = {
        "v": 1,
        "auth_id": AUTH_ID,
        "status": "approved",
        "reason": None,
        "uid": "user_1",
        "card_id": "card_1",
        "account_id": "acc_1",
        "last4": "7897",
        "amount": 12_345,
        "currency": "NOK",
        "merchant_name": "Rema 1000",
        "mcc": "5411",
        "merchant_country": "NO",
        "channel": "pos",
    }
    event.update(changes)
    return event


# ----------------------------------------------------------------------- constants


def test_kind_constants() -> None:
    assert CARD == "card"
    assert ONBOARDING == "onboarding"
    assert DEFAULT_PREFERENCES[CARD] is True
    assert DEFAULT_PREFERENCES[ONBOARDING] is True


# ----------------------------------------------------------------------- card pushes


def test_approved_card_purchase_push() -> None:
    [push] = card_pushes(card_event())
    assert push == Push(
        uid="user_1",
        kind=CARD,
        title="Card purchase",
        body=f"123,45{NBSP}kr with the card ending 7897",
        data={"authorizationId": AUTH_ID, "cardId": "card_1", "status": "approved", "merchantName": "Rema 1000"},
        dedupe_key=f"{AUTH_ID}:approved",
        news=True,
    )
    assert push.to_json() == {
        "uid": "user_1",
        "kind": "card",
        "title": "Card purchase",
        "body": f"123,45{NBSP}kr with the card ending 7897",
        "data": {"authorizationId": AUTH_ID, "cardId": "card_1", "status": "approved", "merchantName": "Rema 1000"},
        "dedupeKey": f"{AUTH_ID}:approved",
        "news": True,
    }


@pytest.mark.parametrize(("reason", "text"), sorted(CARD_REASON_TEXTS.items()))
def test_declined_card_purchase_push_names_the_reason(reason: str, text: str) -> None:
    [push] = card_pushes(card_event(status="declined", reason=reason))
    assert push.kind == CARD
    assert push.title == "Card purchase declined"
    assert push.body == f"123,45{NBSP}kr: {text}"
    assert push.data == {
        "authorizationId": AUTH_ID,
        "cardId": "card_1",
        "status": "declined",
        "merchantName": "Rema 1000",
    }
    assert push.dedupe_key == f"{AUTH_ID}:declined"


@pytest.mark.parametrize("reason", [None, "", "duplicate_reference", "unknown_card", "something_new"])
def test_declined_for_an_unlisted_reason_says_the_bank_declined(reason: str | None) -> None:
    [push] = card_pushes(card_event(status="declined", reason=reason))
    assert push.body == f"123,45{NBSP}kr: the bank declined it"


def test_card_reason_texts_cover_the_card_decisions() -> None:
    for reason in (
        "card_frozen",
        "card_blocked",
        "card_expired",
        "insufficient_funds",
        "over_daily_limit",
        "over_online_limit",
        "over_abroad_limit",
        "cvv_mismatch",
        "cvv_required",
        "invalid_expiry",
    ):
        assert reason in CARD_REASON_TEXTS


def test_approved_and_declined_have_different_dedupe_keys() -> None:
    [approved] = card_pushes(card_event(status="approved"))
    [declined] = card_pushes(card_event(status="declined", reason="card_frozen"))
    assert approved.dedupe_key != declined.dedupe_key


def test_card_push_dedupe_key_is_stable() -> None:
    assert card_pushes(card_event()) == card_pushes(card_event())
    assert card_pushes(card_event(auth_id="ca" + "1" * 32))[0].dedupe_key == "ca" + "1" * 32 + ":approved"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (1, f"0,01{NBSP}kr"),
        (100, f"1,00{NBSP}kr"),
        (123_456_789, f"1{NBSP}234{NBSP}567,89{NBSP}kr"),
    ],
)
def test_card_push_amount_is_formatted_from_ore(amount: int, shown: str) -> None:
    [push] = card_pushes(card_event(amount=amount))
    assert push.body == f"{shown} with the card ending 7897"


@pytest.mark.parametrize("amount", [None, "12345", 123.45, True])
def test_card_push_without_a_whole_amount_leaves_it_out(amount: object) -> None:
    [push] = card_pushes(card_event(amount=amount))
    assert push.body == "A purchase with the card ending 7897"
    [declined] = card_pushes(card_event(amount=amount, status="declined", reason="card_frozen"))
    assert declined.body == "A purchase: the card is frozen"


@pytest.mark.parametrize("merchant", [None, "", 5])
def test_card_push_without_merchant_has_no_merchant_in_its_data(merchant: object) -> None:
    [push] = card_pushes(card_event(merchant_name=merchant))
    assert push.body == f"123,45{NBSP}kr with the card ending 7897"
    assert "merchantName" not in push.data


CARD_STATUSES = ["approved", "declined", "reversed", "expired", "captured", "refunded", "incremented"]


@pytest.mark.parametrize("status", CARD_STATUSES)
def test_no_card_push_names_the_merchant_on_the_lock_screen(status: str) -> None:
    """SECURITY.md: a push's visible text carries amounts and masked numbers only. Every card
    push named the merchant in its body, on the lock screen (found in review, 2026-12-06):
    the name is in the data payload, which the app shows once it is opened."""
    merchant = "Apotek 1 Storo"
    event = card_event(
        status=status,
        merchant_name=merchant,
        late=True,
        refund_id="rf1",
        increment_id="in1",
        authorized_amount=20_000,
        reason="card_frozen",
    )
    [push] = card_pushes(event)
    assert "Apotek" not in push.title and "Apotek" not in push.body
    assert push.data["merchantName"] == merchant


@pytest.mark.parametrize("status", ["captured", "authorized", "APPROVED", "", None, "review", "rejected"])
def test_other_card_statuses_push_nothing(status: str | None) -> None:
    assert card_pushes(card_event(status=status)) == []


@pytest.mark.parametrize(
    ("status", "title", "body"),
    [
        ("reversed", "Card purchase cancelled", f"123,45{NBSP}kr: the amount is no longer reserved"),
        (
            "expired",
            "Reservation ended",
            f"123,45{NBSP}kr: no longer reserved, but the merchant can still charge it later",
        ),
    ],
)
def test_a_released_reservation_is_told_beside_the_purchase(status: str, title: str, body: str) -> None:
    """A purchase the till declined after the bank approved it (the answer came too late)
    stayed shown as spent. Its release is a push of its own: with the approval's collapse
    id the phone would show whichever send landed last, and nothing orders the two."""
    [approved] = card_pushes(card_event())
    [released] = card_pushes(card_event(status=status))
    assert (released.title, released.body, released.kind) == (title, body, CARD)
    assert released.dedupe_key == f"{AUTH_ID}:{status}" != approved.dedupe_key
    assert released.data["status"] == status and released.data["authorizationId"] == approved.data["authorizationId"]


def test_a_capture_after_the_reservation_ended_is_told_and_one_within_it_is_not() -> None:
    """Told "Reservation ended ... the merchant can still charge it later": when the
    merchant does, the holder is told too. A capture within its reservation pushes nothing
    (the approval's push told the purchase)."""
    assert card_pushes(card_event(status="captured")) == []
    assert card_pushes(card_event(status="captured", late=False)) == []
    [charged] = card_pushes(card_event(status="captured", late=True))
    assert (charged.title, charged.kind) == ("Card purchase charged", CARD)
    assert charged.body == f"123,45{NBSP}kr: the merchant charged it after its reservation ended"
    assert charged.dedupe_key == f"{AUTH_ID}:captured" and charged.data["status"] == "captured"


@pytest.mark.parametrize("uid", [None, ""])
def test_card_event_without_a_user_pushes_nothing(uid: str | None) -> None:
    assert card_pushes(card_event(uid=uid)) == []
    assert card_pushes({k: v for k, v in card_event().items() if k != "uid"}) == []


def test_empty_card_event_pushes_nothing() -> None:
    assert card_pushes({}) == []


def test_card_push_data_values_are_strings() -> None:
    [push] = card_pushes(card_event(card_id=None))
    assert push.data == {
        "authorizationId": AUTH_ID,
        "cardId": "None",
        "status": "approved",
        "merchantName": "Rema 1000",
    }
    assert all(isinstance(v, str) for v in push.data.values())


@given(
    amount=st.integers(1, 100_000_000),
    status=st.sampled_from(["approved", "declined", "reversed", "expired"]),
    auth=st.from_regex(r"ca[0-9a-f]{32}", fullmatch=True),
    uid=st.text(min_size=1, max_size=30),
)
def test_card_push_property(amount: int, status: str, auth: str, uid: str) -> None:
    [push] = card_pushes(card_event(amount=amount, status=status, auth_id=auth, uid=uid))
    assert push.uid == uid
    assert push.kind == CARD
    assert push.dedupe_key == f"{auth}:{status}"
    assert push.data["status"] == status
    assert push.data["authorizationId"] == auth
    assert push.body.startswith(Money.nok(amount).format_nok()) and "Rema" not in push.body
    assert all(isinstance(v, str) for v in push.data.values())


# ----------------------------------------------------------------------- onboarding pushes


@pytest.mark.parametrize(
    ("status", "title", "body"),
    [
        ("approved", "Welcome to Fjordbank", "Your account is open and ready to use."),
        ("review", "We are checking your application", "We will tell you as soon as it is decided."),
        ("rejected", "Your application", "We could not open an account for you. Contact us to know more."),
    ],
)
def test_onboarding_push_texts(status: str, title: str, body: str) -> None:
    [push] = onboarding_pushes({"uid": "user_1", "status": status})
    assert push == Push("user_1", ONBOARDING, title, body, {"status": status}, f"customer:user_1:{status}")


def test_onboarding_push_does_not_say_why_it_was_rejected() -> None:
    [push] = onboarding_pushes({"uid": "user_1", "status": "rejected", "reason": "sanctions_match"})
    assert "sanction" not in push.body.lower()
    assert "sanction" not in push.title.lower()
    assert push.data == {"status": "rejected"}


@pytest.mark.parametrize("status", ["approve", "declined", "pending", "", None, "APPROVED"])
def test_unknown_onboarding_status_pushes_nothing(status: str | None) -> None:
    assert onboarding_pushes({"uid": "user_1", "status": status}) == []


@pytest.mark.parametrize("event", [{"status": "approved"}, {"uid": None, "status": "approved"}, {"uid": ""}, {}])
def test_onboarding_without_a_user_pushes_nothing(event: dict) -> None:
    assert onboarding_pushes(event) == []


@given(uid=st.text(min_size=1, max_size=40), status=st.sampled_from(["approved", "review", "rejected"]))
def test_onboarding_dedupe_key_property(uid: str, status: str) -> None:
    [push] = onboarding_pushes({"uid": uid, "status": status})
    assert push.uid == uid
    assert push.kind == ONBOARDING
    assert push.dedupe_key == f"customer:{uid}:{status}"
    others = {
        p.dedupe_key for s in ("approved", "review", "rejected") for p in onboarding_pushes({"uid": uid, "status": s})
    }
    assert len(others) == 3


@pytest.mark.parametrize("change", ["added", "enrolled", "revoked", "reset"])
def test_a_device_change_is_a_security_notice_each_under_its_own_key(change: str) -> None:
    at = "2026-12-05T10:00:00+00:00"
    event = {"v": 1, "uid": "user_1", "change": change, "key_id": "tablet-key-1", "approved_by": None, "changed_at": at}
    [push] = customer_pushes(event)
    title, body = DEVICE_TEXTS[change]
    # a reset's push does not name the key the bank expects (a lost phone may still get it)
    data = {"change": change} if change == "reset" else {"change": change, "keyId": "tablet-key-1"}
    assert push == Push("user_1", SECURITY, title, body, data, f"device:user_1:{change}:tablet-key-1:{at}")
    assert "call us" in body  # what to do if it was not the customer
    assert SECURITY not in DEFAULT_PREFERENCES  # no setting the app could switch off
    [later] = customer_pushes({**event, "changed_at": "2026-12-05T11:00:00+00:00"})
    assert later.dedupe_key != push.dedupe_key  # two resets are two notices on the phone


@pytest.mark.parametrize(
    "event",
    [
        {"uid": "user_1", "change": "stolen", "key_id": "k", "changed_at": "t"},
        {"uid": "", "change": "added", "key_id": "k", "changed_at": "t"},
        {"uid": "user_1", "change": "added", "key_id": None, "changed_at": "t"},
        {"change": "added", "key_id": "k", "changed_at": "t"},
    ],
)
def test_a_device_change_without_a_user_a_key_or_a_known_change_pushes_nothing(event: dict) -> None:
    assert device_pushes(event) == []


def test_a_refund_is_told_with_its_amount_each_under_its_own_key() -> None:
    first = card_event(status="refunded", amount=4_500, merchant_name="Elkjøp Lade", refund_id="rf1")
    [push] = card_pushes(first)
    assert (push.uid, push.kind, push.title) == ("user_1", CARD, "Refund")
    assert push.body == f"{Money.nok(4_500).format_nok()} refunded to your account"
    assert push.data["refundId"] == "rf1" and push.data["status"] == "refunded"
    assert push.data["merchantName"] == "Elkjøp Lade"
    [unknown] = card_pushes({**first, "amount": None})
    assert unknown.body == "A purchase was refunded to your account"
    [second] = card_pushes({**first, "refund_id": "rf2"})
    assert len({push.dedupe_key, second.dedupe_key}) == 2  # two refunds of one purchase: both shown
    assert card_pushes({**first, "uid": None}) == []


def test_an_increment_is_told_with_the_amount_more_and_in_all_each_under_its_own_key() -> None:
    first = card_event(
        status="incremented",
        amount=50_000,
        authorized_amount=150_000,
        merchant_name="Scandic Lerkendal",
        increment_id="in1",
    )
    [push] = card_pushes(first)
    assert (push.uid, push.kind, push.title) == ("user_1", CARD, "Reservation increased")
    more, total = Money.nok(50_000).format_nok(), Money.nok(150_000).format_nok()
    assert push.body == f"{more} more reserved on the card ending 7897: {total} in all"
    assert push.data["merchantName"] == "Scandic Lerkendal"
    assert push.data["incrementId"] == "in1" and push.data["status"] == "incremented"
    [second] = card_pushes({**first, "increment_id": "in2"})
    assert len({push.dedupe_key, second.dedupe_key}) == 2  # two increments of one reservation: both shown
