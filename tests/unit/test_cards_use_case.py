"""fjordbank.service_layer.cards on the in-memory documents: the app's card callables
(order, freeze, limits, replace), with a recording publisher and a fixed clock.

What is promised: only an approved customer orders a card, on an open account of theirs,
at most two usable cards per account; only the owner changes a card (anyone else is told
there is no such card); a blocked card never changes again; each change is one unit of
work with its event, published after the commit.
"""

from __future__ import annotations

import itertools

import pytest

from clientkit.device import Device
from fjordbank import topology
from fjordbank.domain import cards as rules
from fjordbank.domain.cards import CardRefused
from fjordbank.domain.payments import PaymentRejected
from fjordbank.service_layer import cards
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import (
    RecordingPublisher,
    account_numbers,
    customer_account,
    data,
    fixed_clock,
    paths,
    seed,
)

UID, OTHER = "alice", "bob"
ACCOUNT, CLOSED, BOBS = itertools.islice(account_numbers(), 3)


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    seed(
        docs,
        {
            f"customers/{UID}": {"status": "approved"},
            f"customers/{OTHER}": {"status": "approved"},
            f"accounts/{ACCOUNT}": customer_account(UID, ACCOUNT),
            f"accounts/{CLOSED}": customer_account(UID, CLOSED, status="closed"),
            f"accounts/{BOBS}": customer_account(OTHER, BOBS),
            f"users/{UID}/scaKeys/{PHONE.key_id}": PHONE.enrolment(),
        },
    )
    return docs


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def refused(call) -> str:
    with pytest.raises(CardRefused) as caught:
        call()
    return caught.value.code


PHONE = Device.new(UID, "phone")  # the owner's enrolled device key (the docs fixture enrols it)


def unfreezing(card_id: str, device: Device = PHONE) -> dict:
    return device.confirm_card_unfreeze(card_id)


def sca_refused(call) -> str:
    with pytest.raises(PaymentRejected) as caught:
        call()
    return caught.value.code


def active_card(docs, publisher, uid: str = UID, account: str = ACCOUNT) -> str:
    """A card ordered and made active (as the card service does once it has the PAN)."""
    card_id = cards.issue_card(docs, publisher, uid, account_id=account)
    seed(docs, {f"cards/{card_id}": {**data(docs, f"cards/{card_id}"), "status": rules.ACTIVE, "last4": "4242"}})
    return card_id


# ---- order -----------------------------------------------------------------------------------
def test_an_ordered_card_is_issuing_and_the_card_service_is_told(docs, publisher):
    card_id = cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, clock=fixed_clock())
    card = data(docs, f"cards/{card_id}")
    assert card["status"] == rules.ISSUING and card["ownerUid"] == UID and card["accountId"] == ACCOUNT
    assert card["limits"] == rules.DEFAULT_LIMITS and card["replaces"] is None
    assert "pan" not in card and "number" not in card
    (command,) = publisher.stored
    assert command.subject == topology.SUBJECT_CARD_ISSUE and command.msg_id == f"{card_id}:issue"
    assert command.body["card_id"] == card_id and command.body["account_id"] == ACCOUNT
    assert docs.query("outbox") == []


def test_only_an_approved_customer_orders_on_an_open_account_of_their_own(docs, publisher):
    seed(docs, {"customers/carol": {"status": "review"}})
    assert refused(lambda: cards.issue_card(docs, publisher, "carol", account_id=ACCOUNT)) == "not_a_customer"
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=BOBS)) == "unknown_account"
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id="97100000000")) == "unknown_account"
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=12345)) == "unknown_account"
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=CLOSED)) == "account_closed"
    assert docs.query("cards") == [] and publisher.stored == []


def test_at_most_two_usable_cards_per_account_a_blocked_one_does_not_count(docs, publisher):
    first = active_card(docs, publisher)
    active_card(docs, publisher)
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=ACCOUNT)) == "too_many_cards"
    cards.replace_card(docs, publisher, UID, card_id=first, reason="lost")  # blocks one, orders one
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=ACCOUNT)) == "too_many_cards"
    assert len(docs.query("cards")) == 3


# ---- freeze ----------------------------------------------------------------------------------
def test_the_owner_freezes_and_unfreezes_and_each_change_is_an_event(docs, publisher):
    card_id = active_card(docs, publisher)
    assert cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True) == rules.FROZEN
    assert data(docs, f"cards/{card_id}")["status"] == rules.FROZEN
    assert cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=unfreezing(card_id)) == (
        rules.ACTIVE
    )
    updates = publisher.on(topology.SUBJECT_CARD_UPDATED)
    assert [u["status"] for u in updates] == [rules.FROZEN, rules.ACTIVE]
    assert len({p.msg_id for p in publisher.stored}) == len(publisher.stored)  # each change its own event


def test_only_the_owner_changes_a_card_anyone_else_is_told_there_is_none(docs, publisher):
    card_id = active_card(docs, publisher)
    calls = [
        lambda: cards.set_frozen(docs, publisher, OTHER, card_id=card_id, frozen=True),
        lambda: cards.set_limits(docs, publisher, OTHER, card_id=card_id, limits={"online": 0}),
        lambda: cards.replace_card(docs, publisher, OTHER, card_id=card_id, reason="stolen"),
        lambda: cards.set_frozen(docs, publisher, UID, card_id="card_nope", frozen=True),
        lambda: cards.set_frozen(docs, publisher, UID, card_id="accounts/x", frozen=True),
        lambda: cards.set_frozen(docs, publisher, UID, card_id="card_/x", frozen=True),  # never a path
        lambda: cards.set_limits(docs, publisher, UID, card_id="card_\ud800", limits={"online": 0}),
    ]
    assert [refused(call) for call in calls] == ["unknown_card"] * len(calls)
    assert data(docs, f"cards/{card_id}")["status"] == rules.ACTIVE
    assert publisher.subjects() == [topology.SUBJECT_CARD_ISSUE]


def test_a_card_still_issuing_is_not_frozen_and_frozen_must_be_a_boolean(docs, publisher):
    card_id = cards.issue_card(docs, publisher, UID, account_id=ACCOUNT)
    assert refused(lambda: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)) == "card_not_active"
    assert refused(lambda: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen="yes")) == "invalid_request"


# ---- confirmed on the device -----------------------------------------------------------------
# Unfreezing a card and raising its limits are actions that may imply a risk of fraud (PSD2
# art. 97(1)(c)): a session alone (a stolen password) unfroze a card its owner had frozen
# as lost and raised what it may spend to the most (found in review, 2026-12-07).
def test_unfreezing_needs_the_phone_s_confirmation_good_for_that_one_unfreezing(docs, publisher):
    card_id = active_card(docs, publisher)
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)
    events = len(publisher.stored)
    unfreeze = lambda sca=None: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=sca)  # noqa: E731
    assert sca_refused(unfreeze) == "sca_required"
    thief = Device.new(UID, "thief")  # a key never enrolled
    assert sca_refused(lambda: unfreeze(unfreezing(card_id, thief))) == "sca_invalid"
    other_card = active_card(docs, publisher)
    assert sca_refused(lambda: unfreeze(unfreezing(other_card))) == "sca_invalid"  # another card's
    assert sca_refused(lambda: unfreeze({"keyId": PHONE.key_id})) == "invalid_sca"
    assert data(docs, f"cards/{card_id}")["status"] == rules.FROZEN
    assert len(publisher.stored) == events + 1  # the other card's issue only
    confirmation = unfreezing(card_id)
    assert unfreeze(confirmation) == rules.ACTIVE
    # frozen again (lost again): the confirmation used once unfreezes nothing
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)
    assert sca_refused(lambda: unfreeze(confirmation)) == "sca_reused"
    assert data(docs, f"cards/{card_id}")["status"] == rules.FROZEN
    assert unfreeze(unfreezing(card_id)) == rules.ACTIVE
    # freezing, and "unfreezing" a card that is not frozen, need none
    assert cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False) == rules.ACTIVE


def test_a_confirmation_sent_where_none_was_needed_is_used_up_all_the_same(docs, publisher):
    """Two taps on "Unfreeze": the second's confirmation, sent for a card unfrozen by the
    first, was not recorded, and unfroze the card again after its owner froze it as lost
    (found in review, 2026-12-07)."""
    card_id = active_card(docs, publisher)
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)
    unfreeze = lambda sca=None: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=sca)  # noqa: E731
    first, second = unfreezing(card_id), unfreezing(card_id)
    assert unfreeze(first) == rules.ACTIVE
    assert unfreeze(second) == rules.ACTIVE  # the card is active: nothing to confirm, but it is used
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)  # lost
    assert sca_refused(lambda: unfreeze(second)) == "sca_reused"
    assert sca_refused(lambda: unfreeze(unfreezing(card_id, Device.new(UID, "thief")))) == "sca_invalid"
    assert unfreeze(unfreezing(card_id)) == rules.ACTIVE
    # a lowering confirmed (the app may sign every change) is checked and used up too
    lower = {"daily": 500_000, "online": 100_000, "abroad": 0}
    signed = PHONE.confirm_card_limits(card_id, rules.DEFAULT_LIMITS, lower)
    assert cards.set_limits(docs, publisher, UID, card_id=card_id, limits=lower, sca=signed) == lower
    # and where none is needed, one used or not matching is left aside, not refused: a
    # retry of a change already made, a screen behind the card (the review of the fix)
    assert cards.set_limits(docs, publisher, UID, card_id=card_id, limits=lower, sca=signed) == lower
    assert cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True) == rules.FROZEN
    confirmation = unfreezing(card_id)
    assert unfreeze(confirmation) == rules.ACTIVE
    assert unfreeze(confirmation) == rules.ACTIVE  # the answer was lost: the same request again
    stale = PHONE.confirm_card_limits(card_id, rules.DEFAULT_LIMITS, {**lower, "daily": 400_000})
    changed = cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"daily": 400_000}, sca=stale)
    assert changed == {**lower, "daily": 400_000}


def test_a_card_frozen_for_guessed_security_codes_is_unfrozen_only_with_a_confirmation(docs, publisher):
    card_id = active_card(docs, publisher)
    seed(docs, {f"cards/{card_id}": {**data(docs, f"cards/{card_id}"), "status": rules.FROZEN}})
    unfreeze = lambda sca=None: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=sca)  # noqa: E731
    assert sca_refused(unfreeze) == "sca_required"
    assert unfreeze(unfreezing(card_id)) == rules.ACTIVE


def test_raising_a_limit_needs_a_confirmation_of_the_limits_from_what_they_are(docs, publisher):
    card_id = active_card(docs, publisher)
    lower = {"daily": 500_000, "online": 100_000, "abroad": 0}
    assert cards.set_limits(docs, publisher, UID, card_id=card_id, limits=lower) == lower  # none needed
    higher = {"online": 200_000}
    wanted = {**lower, **higher}
    change = lambda sca=None: cards.set_limits(docs, publisher, UID, card_id=card_id, limits=higher, sca=sca)  # noqa: E731
    assert sca_refused(change) == "sca_required"
    stale = PHONE.confirm_card_limits(card_id, rules.DEFAULT_LIMITS, wanted)  # from limits the card no longer has
    assert sca_refused(lambda: change(stale)) == "sca_invalid"
    more = PHONE.confirm_card_limits(card_id, lower, {**wanted, "online": 300_000})  # to other limits
    assert sca_refused(lambda: change(more)) == "sca_invalid"
    assert data(docs, f"cards/{card_id}")["limits"] == lower
    confirmation = PHONE.confirm_card_limits(card_id, lower, wanted)
    assert change(confirmation) == wanted
    # lowered again, the same confirmation raises nothing (its limits "from" are the card's again)
    cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"online": 100_000})
    assert sca_refused(lambda: change(confirmation)) == "sca_reused"
    assert data(docs, f"cards/{card_id}")["limits"] == lower


def test_a_card_changed_while_its_change_was_confirmed_is_refused(docs, publisher, monkeypatch):
    """The confirmation is checked against the card as read; a change in between (another
    device, the card service freezing it for guessed codes) is not what was confirmed."""
    card_id = active_card(docs, publisher)
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=True)
    check = cards.sca_checks.check_confirmation

    def check_then_changed(*args, **kw):
        check(*args, **kw)
        card = data(docs, f"cards/{card_id}")
        seed(docs, {f"cards/{card_id}": {**card, "limits": {**card["limits"], "abroad": 0}}})

    monkeypatch.setattr(cards.sca_checks, "check_confirmation", check_then_changed)
    call = lambda: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=unfreezing(card_id))  # noqa: E731
    assert refused(call) == "card_changed"
    assert data(docs, f"cards/{card_id}")["status"] == rules.FROZEN
    # and one read active, asked to unfreeze without a confirmation, frozen in between
    monkeypatch.undo()
    cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False, sca=unfreezing(card_id))
    read = cards._owned_card

    def read_then_frozen(reads, uid, card):
        found = read(reads, uid, card)
        if reads is docs:  # the read before the transaction
            seed(docs, {f"cards/{card_id}": {**data(docs, f"cards/{card_id}"), "status": rules.FROZEN}})
        return found

    monkeypatch.setattr(cards, "_owned_card", read_then_frozen)
    assert refused(lambda: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False)) == "card_changed"
    assert data(docs, f"cards/{card_id}")["status"] == rules.FROZEN


# ---- limits ----------------------------------------------------------------------------------
def test_limits_are_merged_into_the_cards_and_published(docs, publisher):
    card_id = active_card(docs, publisher)
    merged = cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"online": 0})
    assert merged == {**rules.DEFAULT_LIMITS, "online": 0}
    assert data(docs, f"cards/{card_id}")["limits"] == merged
    assert publisher.on(topology.SUBJECT_CARD_UPDATED)[-1]["limits"] == merged


def test_invalid_limits_change_nothing(docs, publisher):
    card_id = active_card(docs, publisher)
    with pytest.raises(CardRefused):
        cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"online": -1})
    assert data(docs, f"cards/{card_id}")["limits"] == rules.DEFAULT_LIMITS


# ---- replace ---------------------------------------------------------------------------------
def test_a_lost_card_is_blocked_and_a_new_one_ordered_with_its_limits(docs, publisher):
    card_id = active_card(docs, publisher)
    cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"abroad": 0})
    new_id = cards.replace_card(docs, publisher, UID, card_id=card_id, reason="lost")
    old, new = data(docs, f"cards/{card_id}"), data(docs, f"cards/{new_id}")
    assert (old["status"], old["blockedReason"], old["replacedBy"]) == (rules.BLOCKED, "lost", new_id)
    assert new["status"] == rules.ISSUING and new["replaces"] == card_id and new["limits"] == old["limits"]
    blocked, issue = publisher.stored[-2:]
    assert blocked.subject == topology.SUBJECT_CARD_UPDATED and blocked.body["status"] == rules.BLOCKED
    assert issue.subject == topology.SUBJECT_CARD_ISSUE and issue.body["card_id"] == new_id


def test_a_blocked_card_never_changes_again(docs, publisher):
    card_id = active_card(docs, publisher)
    cards.replace_card(docs, publisher, UID, card_id=card_id, reason="damaged")
    stored = len(publisher.stored)
    calls = [
        lambda: cards.replace_card(docs, publisher, UID, card_id=card_id, reason="lost"),
        lambda: cards.set_frozen(docs, publisher, UID, card_id=card_id, frozen=False),
        lambda: cards.set_limits(docs, publisher, UID, card_id=card_id, limits={"online": 0}),
    ]
    assert [refused(call) for call in calls] == ["card_not_active"] * 3
    assert len(publisher.stored) == stored


def test_a_replacement_needs_a_known_reason(docs, publisher):
    card_id = active_card(docs, publisher)
    assert refused(lambda: cards.replace_card(docs, publisher, UID, card_id=card_id, reason="bored")) == (
        "invalid_request"
    )


# ---- a retry after a lost answer (found in review, 2026-12-06) --------------------------------
def test_an_order_retried_with_its_key_answers_the_card_it_ordered(docs, publisher):
    """The first answer lost to a timeout (the app told "busy"): a retry ordered a second card."""
    first = cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="card-order-0001")
    stored = len(publisher.stored)
    assert cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="card-order-0001") == first
    assert len(publisher.stored) == stored and data(docs, f"cards/{first}")["issueRequest"] == "card-order-0001"
    other = cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="card-order-0002")
    assert other != first  # another key: another card
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="x")) == (
        "invalid_request_id"
    )


def test_an_order_key_used_for_another_account_is_refused_and_orders_nothing(docs, publisher):
    """A client idempotency key with a different body is refused and changes nothing: the
    key of an order on one account ordered a second card on another (found in review,
    2026-12-06)."""
    second = next(a for a in itertools.islice(account_numbers(), 10) if a not in (ACCOUNT, CLOSED, BOBS))
    seed(docs, {f"accounts/{second}": customer_account(UID, second)})
    first = cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="card-order-0001")
    stored = len(publisher.stored)
    assert refused(lambda: cards.issue_card(docs, publisher, UID, account_id=second, request_id="card-order-0001")) == (
        "request_id_reused"
    )
    assert len(publisher.stored) == stored and len(paths(docs, "cards")) == 1
    assert cards.issue_card(docs, publisher, UID, account_id=ACCOUNT, request_id="card-order-0001") == first
    assert cards.issue_card(docs, publisher, UID, account_id=second, request_id="card-order-0002") != first


def test_a_replacement_retried_answers_the_card_it_ordered(docs, publisher):
    card_id = active_card(docs, publisher)
    new_id = cards.replace_card(docs, publisher, UID, card_id=card_id, reason="lost")
    stored = len(publisher.stored)
    assert cards.replace_card(docs, publisher, UID, card_id=card_id, reason="lost") == new_id
    assert len(publisher.stored) == stored  # nothing done again
