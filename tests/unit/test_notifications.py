"""Unit and property tests for fjordbank.domain.notifications (push texts and transaction-list
entries of payment states, no I/O).

The promises checked here are the module's own: only final states push; a completed
internal payment to another customer also tells the payee; every push has a stable dedupe
key of its own; failure texts come from the reason table; amounts are formatted from exact
øre by `Money`; the transaction list shows each payment state with the right status and sign.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.domain import reasons
from fjordbank.domain.money import NBSP, Money
from fjordbank.domain.norway import format_account_number, make_account_number
from fjordbank.domain.notifications import (
    CARD,
    DEFAULT_PREFERENCES,
    INCOMING,
    MARKETING,
    ONBOARDING,
    PAYMENTS,
    REASON_TEXTS,
    Push,
    payment_pushes,
    transaction_entries,
)
from fjordbank.domain.payments import EXTERNAL, INTERNAL, PAYER_NAME, STATUS_RANK, PaymentEvent, PaymentRequested
from fjordbank.domain.payments import INCOMING as INCOMING_KIND

FROM = make_account_number("1234", "56", 7891)  # 12345678911
TO = make_account_number("1234", "56", 7893)  # 12345678938
PID = "p" + "a" * 34

FINAL_PUSHING = ("completed", "failed", "rejected")
NON_PUSHING = tuple(s for s in STATUS_RANK if s not in FINAL_PUSHING)

# ---------------------------------------------------------------------- helpers


def payment(
    *,
    pid: str = PID,
    kind: str = INTERNAL,
    amount: int = 123_456,
    uid: str = "alice",
    request_id: str = "req-00000001",
    message: str | None = "husleie",
    kid: str | None = None,
    payee_name: str | None = None,
) -> PaymentRequested:
    return PaymentRequested(
        payee_name=payee_name,
        payment_id=pid,
        uid=uid,
        request_id=request_id,
        kind=kind,
        from_account=FROM,
        to_account=TO,
        amount=amount,
        currency="NOK",
        message=message,
        kid=kid,
        due_date="2025-01-15",
        body_hash="0" * 64,
        requested_at="2025-01-15T12:00:00Z",
    )


def event(status: str, reason: str | None = None, message: str | None = None, **over) -> PaymentEvent:
    return PaymentEvent(payment(**over), status, reason, message)


def kr(minor: int) -> str:
    return Money.nok(minor).format_nok()


# ----------------------------------------------------------------- preferences


def test_default_preferences_cover_every_push_kind_and_marketing_is_off():
    assert DEFAULT_PREFERENCES == {PAYMENTS: True, INCOMING: True, CARD: True, ONBOARDING: True, MARKETING: False}


# ------------------------------------------------------------ which states push


@pytest.mark.parametrize("status", NON_PUSHING)
@pytest.mark.parametrize("payee", [None, "bob"])
def test_intermediate_states_push_nothing(status, payee):
    assert payment_pushes(event(status, "AC04", "closed"), payee_uid=payee) == []


def test_only_completed_failed_and_rejected_push():
    pushing = {s for s in STATUS_RANK if payment_pushes(event(s, "AC04"), payee_uid="bob")}
    assert pushing == set(FINAL_PUSHING)


# ------------------------------------------------------------------- completed


def test_completed_payment_pushes_the_payer():
    [push] = payment_pushes(event("completed"), payee_uid=None)
    assert push == Push(
        uid="alice",
        kind=PAYMENTS,
        title="Payment completed",
        body=f"1{NBSP}234,56{NBSP}kr to ****.**.*8938",
        data={"paymentId": PID, "requestId": "req-00000001", "status": "completed"},
        dedupe_key=f"{PID}:completed",
        news=True,
    )
    assert push.to_json() == {
        "uid": "alice",
        "kind": PAYMENTS,
        "title": "Payment completed",
        "body": f"1{NBSP}234,56{NBSP}kr to ****.**.*8938",
        "data": {"paymentId": PID, "requestId": "req-00000001", "status": "completed"},
        "dedupeKey": f"{PID}:completed",
        "news": True,
    }


def test_completed_internal_payment_to_another_customer_also_pushes_incoming_to_the_payee():
    payer_push, payee_push = payment_pushes(event("completed"), payee_uid="bob")
    assert (payer_push.uid, payer_push.kind) == ("alice", PAYMENTS)
    assert payee_push == Push(
        uid="bob",
        kind=INCOMING,
        title="Money received",
        body=f"You received 1{NBSP}234,56{NBSP}kr",
        data={"paymentId": PID, "requestId": "req-00000001", "status": "received"},
        dedupe_key=f"{PID}:received",
        news=True,
    )
    assert payer_push.data["status"] == "completed"  # the payee's data is a copy, not the payer's


def test_money_from_another_bank_is_pushed_without_the_payers_name():
    """The payer's name is the feed entry's; the lock screen gets the amount only
    (SECURITY.md; found in review, 2026-12-06)."""
    arrived = PaymentEvent(payment(kind=INCOMING_KIND), "completed", detail={PAYER_NAME: "Kari Nordmann Hansen"})
    [push] = payment_pushes(arrived, payee_uid=None)
    assert (push.kind, push.title, push.body) == (INCOMING, "Money received", f"You received 1{NBSP}234,56{NBSP}kr")


@pytest.mark.parametrize("payee", [None, "", "alice"], ids=["unknown", "empty", "payer-itself"])
def test_no_incoming_push_when_the_payee_is_unknown_or_the_payer(payee):
    pushes = payment_pushes(event("completed"), payee_uid=payee)
    assert [(p.uid, p.kind) for p in pushes] == [("alice", PAYMENTS)]


@pytest.mark.parametrize("status", ["failed", "rejected"])
def test_failed_or_rejected_payment_never_pushes_the_payee(status):
    pushes = payment_pushes(event(status, "insufficient_funds"), payee_uid="bob")
    assert [(p.uid, p.kind) for p in pushes] == [("alice", PAYMENTS)]


# ------------------------------------------------------------------- failures


@pytest.mark.parametrize("status", ["failed", "rejected"])
@pytest.mark.parametrize(("reason", "text"), sorted(REASON_TEXTS.items()))
def test_failure_text_comes_from_the_reason_table(status, reason, text):
    [push] = payment_pushes(event(status, reason, "a technical message"), payee_uid=None)
    assert push.title == "Payment not completed"
    assert push.body == f"1{NBSP}234,56{NBSP}kr: {text}"
    assert push.kind == PAYMENTS
    assert push.data == {"paymentId": PID, "requestId": "req-00000001", "status": status}
    assert push.dedupe_key == f"{PID}:{status}"


def test_reason_table_has_a_text_for_every_screening_and_ledger_funds_reason():
    expected = {
        "insufficient_funds",
        "blocked_counterparty",
        "over_payment_limit",
        "over_daily_limit",
        "velocity_limit",
        "new_payee_limit",
        "AC04",
        "AC01",
    }
    assert expected <= set(REASON_TEXTS)
    assert all(isinstance(t, str) and t for t in REASON_TEXTS.values())


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("AM04", None),  # an ISO code the bank has no words for
        ("NARR", "Kontoinnehaver Ola Nordmann ukjent"),  # the other bank's free text: a name
        ("BE05", "the receiving bank refused it"),
        ("returned", None),  # a return without a reason code
    ],
)
def test_a_payment_another_bank_returned_is_told_in_the_banks_words_only(reason, message):
    """Never the other bank's free text (pain.002 AddtlInf) nor a raw ISO code on the lock
    screen (found in review, 2026-12-06)."""
    [push] = payment_pushes(event("failed", reason, message), payee_uid=None)
    assert push.body == f"1{NBSP}234,56{NBSP}kr: returned by the receiving bank"


def test_every_reason_a_payment_can_end_with_has_words_of_the_banks():
    """Each payment reason of the catalogue is told in REASON_TEXTS' words or the general
    ones: never its code, never the event's message."""
    for code in (r.code for r in reasons.REASONS if reasons.PAYMENT in r.where):
        [push] = payment_pushes(event("failed", code, f"message of {code}"), payee_uid=None)
        why = push.body.split(": ", 1)[1]
        assert why != code and "message of" not in why, (code, why)
    [push] = payment_pushes(event("failed", "invalid_kid", "KID fails the payee's MOD10 check"), payee_uid=None)
    assert push.body.endswith(": the KID is wrong")  # RR09 from the other bank, in our words


def test_failure_with_neither_reason_nor_message_still_pushes():
    [push] = payment_pushes(event("rejected"), payee_uid=None)
    assert push.title == "Payment not completed"
    assert push.body.startswith(f"1{NBSP}234,56{NBSP}kr")


# ----------------------------------------------------------------- dedupe keys


def test_pushes_of_one_event_are_stable():
    ev = event("completed")
    assert payment_pushes(ev, payee_uid="bob") == payment_pushes(ev, payee_uid="bob")
    # a redelivered copy of the event (equal, not identical) makes the same pushes
    assert payment_pushes(dataclasses.replace(ev), payee_uid="bob") == payment_pushes(ev, payee_uid="bob")


def test_dedupe_key_does_not_depend_on_the_reason_or_message():
    first = payment_pushes(event("failed", "AC04", "closed"), payee_uid=None)
    again = payment_pushes(event("failed", "AC01", "other text"), payee_uid=None)
    assert first[0].dedupe_key == again[0].dedupe_key == f"{PID}:failed"


payment_ids = st.text(alphabet="0123456789abcdef", min_size=34, max_size=34).map(lambda h: f"p{h}")


@settings(max_examples=200, deadline=None, database=None)
@given(pids=st.lists(payment_ids, min_size=1, max_size=5, unique=True))
def test_dedupe_keys_are_distinct_per_payment_and_status(pids):
    keys = []
    for pid in pids:
        for status in FINAL_PUSHING:
            pushes = payment_pushes(event(status, "AC04", pid=pid), payee_uid="bob")
            assert all(p.dedupe_key.startswith(pid) for p in pushes)
            assert all(p.data["paymentId"] == pid for p in pushes)
            keys += [p.dedupe_key for p in pushes]
    assert len(keys) == len(set(keys)) == 4 * len(pids)  # completed, received, failed, rejected


# -------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("minor", "text"),
    [
        (1, f"0,01{NBSP}kr"),
        (5, f"0,05{NBSP}kr"),
        (10, f"0,10{NBSP}kr"),
        (29, f"0,29{NBSP}kr"),  # 0.29 * 100 is 28.999999999999996 as a float
        (100, f"1,00{NBSP}kr"),
        (57, f"0,57{NBSP}kr"),  # 0.57 * 100 is 56.99999999999999
        (100_000, f"1{NBSP}000,00{NBSP}kr"),
        (100_000_000, f"1{NBSP}000{NBSP}000,00{NBSP}kr"),
        (12_345_678_901, f"123{NBSP}456{NBSP}789,01{NBSP}kr"),
    ],
)
def test_amounts_are_formatted_exactly_in_norwegian_style(minor, text):
    [payer] = payment_pushes(event("failed", "AC04", amount=minor), payee_uid=None)
    assert payer.body == f"{text}: {REASON_TEXTS['AC04']}"
    _, incoming = payment_pushes(event("completed", amount=minor), payee_uid="bob")
    assert incoming.body == f"You received {text}"


@settings(max_examples=300, deadline=None, database=None)
@given(minor=st.integers(1, 10**13), status=st.sampled_from(FINAL_PUSHING), kind=st.sampled_from([INTERNAL, EXTERNAL]))
def test_push_amounts_round_trip_to_the_exact_ore(minor, status, kind):
    pushes = payment_pushes(event(status, "AC04", amount=minor, kind=kind), payee_uid="bob")
    payer = pushes[0]
    amount_text = payer.body.split(" to ")[0] if status == "completed" else payer.body.split(": ")[0]
    assert amount_text == Money.nok(minor).format_nok()
    assert Money.parse_nok(amount_text) == Money.nok(minor)
    assert "." not in amount_text and " " not in amount_text  # comma decimals, no-break spaces
    for push in pushes:
        assert all(isinstance(v, str) for v in push.data.values())
        assert all(isinstance(v, str) for v in (push.uid, push.kind, push.title, push.body, push.dedupe_key))


def test_completed_push_shows_the_payee_account_masked():
    """A push shows on a lock screen: the payee's number is masked to its last four digits."""
    [push] = payment_pushes(event("completed", kind=EXTERNAL), payee_uid=None)
    assert push.body.endswith(" to ****.**.*8938")
    assert format_account_number(TO) not in push.body


# --------------------------------------------------------- transaction entries


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("reserved", "pending"),
        ("submitted", "pending"),
        ("settled", "pending"),
        ("completed", "posted"),
        ("failed", "cancelled"),
        ("returned", "cancelled"),
    ],
)
@pytest.mark.parametrize("kind", [INTERNAL, EXTERNAL])
def test_payer_entry_shows_the_payment_state(status, shown, kind):
    entries = transaction_entries(event(status, "AC04", kind=kind), payee_uid=None)
    assert entries[FROM] == {
        "paymentId": PID,
        "amount": -123_456,
        "currency": "NOK",
        "direction": "out",
        "counterpartyAccount": TO,
        "counterpartyName": None,
        "message": "husleie",
        "kid": None,
        "status": shown,
        "reason": "AC04",
        "kind": "payment",
        "category": "transfers",  # a payment without KID to a payee with no rule
        "merchantKey": f"a:{TO}",
        "date": event(status).payment.due_date,
    }
    assert set(entries) == {FROM}


@pytest.mark.parametrize("status", ["received", "scheduled", "requested", "approved", "rejected"])
@pytest.mark.parametrize("payee", [None, "bob"])
def test_states_before_the_ledger_show_no_entry(status, payee):
    assert transaction_entries(event(status, "blocked_counterparty"), payee_uid=payee) == {}


def test_every_status_is_either_shown_or_not():
    shown = {s for s in STATUS_RANK if transaction_entries(event(s), payee_uid=None)}
    assert shown == {"reserved", "submitted", "settled", "completed", "failed", "returned"}


@pytest.mark.parametrize("payee", ["bob", "alice"], ids=["other-customer", "own-account"])
def test_completed_internal_payment_with_a_known_payee_shows_an_incoming_entry(payee):
    ev = PaymentEvent(payment(kid="1234567890128", message=None), "completed")
    entries = transaction_entries(ev, payee_uid=payee)
    assert set(entries) == {FROM, TO}
    assert entries[TO] == {
        "paymentId": PID,
        "amount": 123_456,
        "currency": "NOK",
        "direction": "in",
        "counterpartyAccount": FROM,
        "counterpartyName": None,
        "message": None,
        "kid": "1234567890128",
        "status": "posted",
        "reason": None,
        "kind": "payment",
        "category": "income" if payee == "bob" else "transfers",  # own accounts: neither income nor spending
        "merchantKey": f"a:{FROM}",
        "date": ev.payment.due_date,
    }
    assert entries[FROM]["amount"] == -123_456
    assert entries[FROM]["kid"] == "1234567890128"
    assert entries[FROM]["category"] == ("bills" if payee == "bob" else "transfers")  # bills: paid with a KID


@pytest.mark.parametrize(
    ("status", "kind", "payee"),
    [
        ("completed", INTERNAL, None),
        ("completed", EXTERNAL, None),
        ("completed", EXTERNAL, "bob"),
        ("failed", INTERNAL, "bob"),
        ("reserved", INTERNAL, "bob"),
        ("settled", INTERNAL, "bob"),
        ("returned", INTERNAL, "bob"),
    ],
)
def test_no_incoming_entry_unless_internal_completed_with_a_known_payee(status, kind, payee):
    entries = transaction_entries(event(status, kind=kind), payee_uid=payee)
    assert set(entries) == {FROM}


@settings(max_examples=300, deadline=None, database=None)
@given(
    minor=st.integers(1, 10**12),
    status=st.sampled_from(list(STATUS_RANK)),
    kind=st.sampled_from([INTERNAL, EXTERNAL]),
    payee=st.sampled_from([None, "alice", "bob"]),
)
def test_entry_signs_are_negative_out_and_positive_in(minor, status, kind, payee):
    entries = transaction_entries(event(status, amount=minor, kind=kind), payee_uid=payee)
    for account, entry in entries.items():
        assert type(entry["amount"]) is int
        assert entry["currency"] == "NOK"
        assert entry["paymentId"] == PID
        if entry["direction"] == "out":
            assert (account, entry["amount"]) == (FROM, -minor)
        else:
            assert entry["direction"] == "in"
            assert (account, entry["amount"], entry["status"]) == (TO, minor, "posted")
    if len(entries) == 2:
        assert sum(e["amount"] for e in entries.values()) == 0


def test_a_customers_own_category_for_a_payee_is_used():
    evt = event("completed")
    uid = evt.payment.uid
    overrides = {(uid, f"a:{TO}"): "housing"}
    assert transaction_entries(evt, payee_uid=None, overrides=overrides)[FROM]["category"] == "housing"
    assert transaction_entries(evt, payee_uid=None)[FROM]["category"] == "transfers"


def test_entries_name_the_counterparty():
    evt = PaymentEvent(payment(payee_name="Oslo Kommune"), "completed")
    entries = transaction_entries(evt, payee_uid="bob", payer_name="Alice Hansen")
    assert entries[FROM]["counterpartyName"] == "Oslo Kommune"
    assert entries[TO]["counterpartyName"] == "Alice Hansen"


# ---- found in review (2026-12-06): what a push's visible text may carry (SECURITY.md) ------
@pytest.mark.parametrize("kind", [INTERNAL, EXTERNAL, INCOMING_KIND])
@pytest.mark.parametrize("status", FINAL_PUSHING)
def test_no_payment_push_names_a_person_or_shows_a_whole_account_number_or_the_message(kind, status):
    """A push's title and body are on the lock screen: amounts and masked account numbers
    only (SECURITY.md), never the payee's or payer's name, the payment's message or a whole
    account number."""
    ev = PaymentEvent(
        payment(kind=kind, payee_name="Ola Nordmann", message="husleie til Kari"),
        status,
        "AC04",
        "Kari Nordmann unknown",
        {PAYER_NAME: "Kari Nordmann"},
    )
    for push in payment_pushes(ev, payee_uid="bob"):
        shown = f"{push.title} {push.body}"
        assert "Nordmann" not in shown and "Kari" not in shown and "husleie" not in shown
        assert FROM not in shown and TO not in shown
        assert format_account_number(FROM) not in shown and format_account_number(TO) not in shown
