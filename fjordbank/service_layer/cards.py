"""The app's card operations (callables): order a card, freeze, limits, replace.

The edge never sees a card number. Ordering writes ``cards/{cardId}`` as "issuing" and a
``cards.commands.issue`` command; the card service makes the PAN in its vault and turns
the document "active" with the last four digits and expiry. Every change is one unit of
work (fjordbank.service_layer.ports) with its event in the outbox.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import ACCOUNTS, CARDS, CUSTOMERS
from fjordbank.domain import cards as rules
from fjordbank.domain import sca as sca_rules
from fjordbank.domain.accounts import validate_request_id
from fjordbank.domain.errors import DomainError
from fjordbank.domain.events import CardUpdated, IssueCard
from fjordbank.domain.norway import is_account_id
from fjordbank.domain.payments import PaymentRejected, check_sca_shape
from fjordbank.service_layer import outbox
from fjordbank.service_layer import sca as sca_checks
from fjordbank.service_layer.ports import SERVER_TIME, Clock, Doc, Documents, Publisher, UnitOfWork, Where, system_clock

MAX_CARDS_PER_ACCOUNT = 2
REPLACE_REASONS = ("lost", "stolen", "damaged")
ACCOUNT_CLOSED = "account_closed"  # a card's blockedReason when its account is closed


CARD_ID = re.compile(r"card_[0-9a-f]{20}")


def new_card_id() -> str:
    return "card_" + secrets.token_hex(10)


def card_path(card_id: str) -> str:
    return f"{CARDS}/{card_id}"


def _issue_command(uid: str, card_id: str, account_id: str) -> outbox.Event:
    body = IssueCard(uid=uid, card_id=card_id, account_id=account_id).to_json()
    return outbox.Event(topology.SUBJECT_CARD_ISSUE, body, f"{card_id}:issue")


def _updated(uid: str, card_id: str, change: dict[str, Any]) -> outbox.Event:
    body = CardUpdated(uid=uid, card_id=card_id, **change).to_json()
    return outbox.Event(topology.SUBJECT_CARD_UPDATED, body, f"{card_id}:updated:{secrets.token_hex(6)}")


def _card_doc(
    uid: str, card_id: str, account_id: str, limits: dict[str, Any], replaces: str | None = None
) -> dict[str, Any]:
    return {
        "cardId": card_id,
        "ownerUid": uid,
        "accountId": account_id,
        "status": rules.ISSUING,
        "type": rules.VIRTUAL_DEBIT,
        "limits": limits,
        "replaces": replaces,
        "createdAt": SERVER_TIME,
        "updatedAt": SERVER_TIME,
    }


def _owned_card(uow: UnitOfWork | Documents, uid: str, card_id: object) -> Doc:
    """The caller's card; any other is "no such card"."""
    if not isinstance(card_id, str) or not CARD_ID.fullmatch(card_id):  # never a path or odd text
        raise rules.CardRefused("unknown_card", "no such card")
    doc = uow.get(card_path(card_id))
    if doc is None or doc.data.get("ownerUid") != uid:
        raise rules.CardRefused("unknown_card", "no such card")  # the same answer for others' cards
    return doc


def _check_can_issue(uow: UnitOfWork, uid: str, account_id: str, key: str | None = None) -> str | None:
    """An approved customer's open account, with fewer than the most usable cards on it.
    Returns the card issued before under the app's idempotency key ``key`` (None: none)."""
    customer = uow.get(f"{CUSTOMERS}/{uid}")
    if customer is None or customer.data.get("status") != "approved":
        raise rules.CardRefused("not_a_customer", "only approved customers get cards")
    if customer.data.get("frozen"):  # under sanctions (fjordbank.service_layer.rescreening)
        raise rules.CardRefused("customer_frozen", "the customer's accounts are frozen")
    account = uow.get(f"{ACCOUNTS}/{account_id}")
    if account is None or account.data.get("ownerUid") != uid:
        raise rules.CardRefused("unknown_account", "no such account")
    if account.data.get("status") == "frozen":
        raise rules.CardRefused("account_frozen", "the account is frozen")
    if account.data.get("status") != "open":
        raise rules.CardRefused("account_closed", "the account is closed")
    on_account = uow.query(CARDS, where=[Where("accountId", "==", account_id)])
    mine = [c for c in on_account if c.data.get("ownerUid") == uid]
    if key is not None and (issued := next((c.id for c in mine if c.data.get("issueRequest") == key), None)):
        return issued
    if key is not None and uow.query(
        CARDS, where=[Where("ownerUid", "==", uid), Where("issueRequest", "==", key)], limit=1
    ):  # the key of an order for another account: refused, not a second card (found in review, 2026-12-06)
        raise rules.CardRefused("request_id_reused", "this requestId ordered a card on another account")
    if sum(1 for c in mine if c.data.get("status") != rules.BLOCKED) >= MAX_CARDS_PER_ACCOUNT:
        raise rules.CardRefused("too_many_cards", f"at most {MAX_CARDS_PER_ACCOUNT} cards per account")
    return None


def issue_card(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    *,
    account_id: object,
    request_id: object = None,
    clock: Clock = system_clock,
) -> str:
    """A new virtual card on the customer's account. ``request_id``: the app's idempotency
    key (as an account opening's): an issue with a key used before answers the card it
    issued and issues nothing. Without it, a retry after an answer lost to a timeout (the
    app told "busy") ordered a second card (found in review, 2026-12-06)."""
    if not is_account_id(account_id):
        raise rules.CardRefused("unknown_account", "no such account")
    try:
        key = validate_request_id(request_id)  # an account opening's key's rules
    except DomainError as exc:
        raise rules.CardRefused(exc.code, exc.message) from None
    card_id = new_card_id()
    event = _issue_command(uid, card_id, account_id)

    def run(uow: UnitOfWork) -> str | None:
        if (issued := _check_can_issue(uow, uid, account_id, key)) is not None:
            return issued
        doc = _card_doc(uid, card_id, account_id, dict(rules.DEFAULT_LIMITS))
        uow.create(card_path(card_id), {**doc, **({"issueRequest": key} if key is not None else {})})
        outbox.stage(uow, event, clock=clock)
        return None

    if (issued := docs.transact(run, operation="cards_issue")) is not None:
        return issued
    outbox.deliver(docs, publisher, [event])
    return card_id


# What a change of a card is confirmed with: the text signed, what it is (for the
# messages), and whether the change needs it (None: nothing to confirm, a freeze).
Confirmation = tuple[bytes, str, bool]


def _confirmed(
    docs: Documents, uid: str, card_id: object, sca: object, needed: Callable[[Doc], Confirmation | None]
) -> dt.datetime | None:
    """The version of the caller's card a confirmation was checked against, None when none
    was checked. ``needed`` (of the card as it stands) gives the text to sign, what it is
    and whether the change needs it; ``sca`` must then be a device key's signature of it,
    unused or used for this version of the card only (a retry of the same change after its
    commit failed). Read and checked before the change's transaction, which then refuses a
    card changed since (`_unchanged`): a confirmation is of the card the customer saw.

    A confirmation given where none is needed (a second tap on "Unfreeze", a retry after a
    lost answer, a screen that showed the card frozen or its limits lower) is recorded as
    used if it is valid and unused, and otherwise left aside: unrecorded, a valid one stayed
    good for ever and unfroze the card again after its owner froze it as lost (found in
    review, 2026-12-07); refused, a retry of a change already made failed (found in the
    review of that fix)."""
    check_sca_shape(sca)
    card = _owned_card(docs, uid, card_id)
    asked = needed(card)
    if asked is None or (sca is None and not asked[2]):
        return None
    message, what, required = asked
    try:
        sca_checks.check_confirmation(
            docs,
            uid,
            request_path=f"{card.path}@{card.updated.isoformat()}",
            sca=sca if isinstance(sca, dict) else None,
            message=message,
            required=PaymentRejected("sca_required", f"confirm {what} on your device"),
            what=what,
        )
    except PaymentRejected:
        if required:
            raise
        return None  # not needed: left aside
    return card.updated


def _unchanged(card: Doc, confirmed: dt.datetime | None) -> None:
    """A card changed between its confirmation's check and the change is refused: the
    customer confirmed what they saw (the app asks again with the card as it is)."""
    if confirmed is not None and card.updated != confirmed:
        raise rules.CardRefused("card_changed", "the card changed while this was confirmed; try again")


def set_frozen(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    *,
    card_id: object,
    frozen: object,
    sca: object = None,
    clock: Clock = system_clock,
) -> str:
    """Freeze or unfreeze a card. Unfreezing a frozen card needs ``sca``, a device's
    signature of `card_unfreeze_challenge` (found in review: a session alone unfroze a card
    its owner had frozen as lost)."""
    if type(frozen) is not bool:
        raise rules.CardRefused("invalid_request", "frozen must be true or false")
    status = rules.FROZEN if frozen else rules.ACTIVE

    def needed(card: Doc) -> Confirmation | None:
        if frozen:
            return None
        required = card.data.get("status") == rules.FROZEN
        return sca_rules.card_unfreeze_challenge(card.data["cardId"]), "unfreezing this card", required

    confirmed = _confirmed(docs, uid, card_id, sca, needed)

    def run(uow: UnitOfWork) -> outbox.Event:
        card = _owned_card(uow, uid, card_id)
        _unchanged(card, confirmed)
        if card.data.get("status") not in (rules.ACTIVE, rules.FROZEN):
            raise rules.CardRefused("card_not_active", f"a card that is {card.data.get('status')} cannot be changed")
        if confirmed is None and not frozen and card.data.get("status") == rules.FROZEN:
            # frozen since it was read without one: the customer confirms again
            raise rules.CardRefused("card_changed", "the card changed while this was confirmed; try again")
        uow.update(card.path, {"status": status, "updatedAt": SERVER_TIME})
        event = _updated(uid, card.data["cardId"], {"status": status})
        outbox.stage(uow, event, clock=clock)
        return event

    outbox.deliver(docs, publisher, [docs.transact(run, operation="cards_freeze")])
    return status


def _limits_of(limits: dict[str, int]) -> tuple[int, ...]:
    return tuple(limits[kind] for kind in rules.LIMIT_KINDS)


def set_limits(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    *,
    card_id: object,
    limits: object,
    sca: object = None,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """Set some of a card's limits. Raising any needs ``sca``, a device's signature of
    `card_limits_challenge` from the limits as they are to the new ones; lowering needs
    none (found in review: a session alone raised a card's limits to the most)."""

    def raised(card: Doc) -> tuple[dict[str, int], dict[str, int]]:
        current = {**rules.DEFAULT_LIMITS, **(card.data.get("limits") or {})}
        return current, rules.validate_limits(limits, current)

    def needed(card: Doc) -> Confirmation | None:
        if card.data.get("status") == rules.BLOCKED:
            return None  # refused in the change
        current, merged = raised(card)
        required = any(merged[kind] > current[kind] for kind in rules.LIMIT_KINDS)
        message = sca_rules.card_limits_challenge(card.data["cardId"], _limits_of(current), _limits_of(merged))
        return message, "these card limits", required

    confirmed = _confirmed(docs, uid, card_id, sca, needed)

    def run(uow: UnitOfWork) -> tuple[dict[str, Any], outbox.Event]:
        card = _owned_card(uow, uid, card_id)
        _unchanged(card, confirmed)
        if card.data.get("status") == rules.BLOCKED:
            raise rules.CardRefused("card_not_active", "a blocked card cannot be changed")
        current, merged = raised(card)
        if confirmed is None and any(merged[kind] > current[kind] for kind in rules.LIMIT_KINDS):
            # lowered since it was read without one: the customer confirms the raise
            raise rules.CardRefused("card_changed", "the card changed while this was confirmed; try again")
        uow.update(card.path, {"limits": merged, "updatedAt": SERVER_TIME})
        event = _updated(uid, card.data["cardId"], {"limits": merged})
        outbox.stage(uow, event, clock=clock)
        return merged, event

    merged, event = docs.transact(run, operation="cards_limits")
    outbox.deliver(docs, publisher, [event])
    return merged


def cards_of_account(uow: UnitOfWork, uid: str, account_id: str) -> list[Doc]:
    """The customer's cards on the account not blocked yet (read before the unit's writes)."""
    found = uow.query(CARDS, where=[Where("accountId", "==", account_id)])
    return [c for c in found if c.data.get("ownerUid") == uid and c.data.get("status") != rules.BLOCKED]


def block_cards(uow: UnitOfWork, uid: str, cards: list[Doc], *, clock: Clock = system_clock) -> list[outbox.Event]:
    """Block ``cards`` of an account being closed (`cards_of_account`, read in the close's
    unit of work), ``blockedReason`` "account_closed", each with its cards.updated staged.
    A card left "active" on a closed account contradicted it in the app, could still be
    frozen and changed, and replacing it issued a new number for a dead account."""
    events = []
    for card in cards:
        uow.update(card.path, {"status": rules.BLOCKED, "blockedReason": ACCOUNT_CLOSED, "updatedAt": SERVER_TIME})
        events.append(_updated(uid, card.id, {"status": rules.BLOCKED, "reason": ACCOUNT_CLOSED}))
        outbox.stage(uow, events[-1], clock=clock)
    return events


def replace_card(
    docs: Documents, publisher: Publisher, uid: str, *, card_id: object, reason: object, clock: Clock = system_clock
) -> str:
    """Block the card at once (lost, stolen, damaged) and order a new one on the same
    account with the same limits."""
    if reason not in REPLACE_REASONS:
        raise rules.CardRefused("invalid_request", f"reason must be one of {list(REPLACE_REASONS)}")
    new_id = new_card_id()
    replaced: list[str] = []

    def run(uow: UnitOfWork) -> list[outbox.Event]:
        replaced.clear()
        card = _owned_card(uow, uid, card_id)
        data = card.data
        if data.get("status") == rules.BLOCKED and data.get("blockedReason") == reason and data.get("replacedBy"):
            # replaced before for the same reason: a retry after a lost answer (the app told
            # "busy") is answered with the card ordered then, and nothing is done again
            replaced.append(data["replacedBy"])
            return []
        if data.get("status") == rules.BLOCKED:
            raise rules.CardRefused("card_not_active", "the card is already blocked")
        account = uow.get(f"{ACCOUNTS}/{data['accountId']}")
        if account is not None and account.data.get("status") == "frozen":
            # the customer freezes a lost card themselves (cards_freeze); a new one waits for the bank
            raise rules.CardRefused("account_frozen", "the card's account is frozen")
        if account is None or account.data.get("status") != "open":
            # no new number for a dead account (its cards are blocked when it is closed)
            raise rules.CardRefused("account_closed", "the card's account is closed")
        uow.update(
            card.path,
            {"status": rules.BLOCKED, "blockedReason": reason, "replacedBy": new_id, "updatedAt": SERVER_TIME},
        )
        uow.create(
            card_path(new_id),
            _card_doc(uid, new_id, data["accountId"], data.get("limits") or dict(rules.DEFAULT_LIMITS), data["cardId"]),
        )
        events = [
            _updated(uid, data["cardId"], {"status": rules.BLOCKED, "reason": reason}),
            _issue_command(uid, new_id, data["accountId"]),
        ]
        for event in events:
            outbox.stage(uow, event, clock=clock)
        return events

    outbox.deliver(docs, publisher, docs.transact(run, operation="cards_replace"))
    return replaced[0] if replaced else new_id
