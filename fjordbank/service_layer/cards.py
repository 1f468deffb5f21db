"""The app's card operations (callables): order a card, freeze, limits, replace.

The edge never sees a card number. Ordering writes ``cards/{cardId}`` as "issuing" and a
``cards.commands.issue`` command; the card service makes the PAN in its vault and turns
the document "active" with the last four digits and expiry. Every change is one Firestore
transaction with its event in the outbox.
"""

from __future__ import annotations

import secrets
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import DocumentReference, Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.documents import FirestoreDocuments, FirestoreUnitOfWork
from fjordbank.adapters.firestore import ACCOUNTS, CARDS, CUSTOMERS
from fjordbank.domain import cards as rules
from fjordbank.domain.events import CardUpdated, IssueCard
from fjordbank.service_layer import outbox
from fjordbank.service_layer.ports import Publisher

MAX_CARDS_PER_ACCOUNT = 2
REPLACE_REASONS = ("lost", "stolen", "damaged")


def new_card_id() -> str:
    return "card_" + secrets.token_hex(10)


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
        "type": "virtual-debit",
        "limits": limits,
        "replaces": replaces,
        "createdAt": firestore.SERVER_TIMESTAMP,
        "updatedAt": firestore.SERVER_TIMESTAMP,
    }


def _owned_card(
    tx: Transaction, db: firestore.Client, uid: str, card_id: object
) -> tuple[DocumentReference, dict[str, Any]]:
    if not isinstance(card_id, str) or not card_id.startswith("card_") or len(card_id) > 40:
        raise rules.CardRefused("unknown_card", "no such card")
    ref = db.collection(CARDS).document(card_id)
    snap = ref.get(transaction=tx)
    if not snap.exists or snap.get("ownerUid") != uid:
        raise rules.CardRefused("unknown_card", "no such card")  # the same answer for others' cards
    return ref, snap.to_dict() or {}


def issue_card(db: firestore.Client, publisher: Publisher, uid: str, *, account_id: object) -> str:
    if not isinstance(account_id, str) or not account_id.isdigit() or len(account_id) != 11:
        raise rules.CardRefused("unknown_account", "no such account")
    card_id = new_card_id()
    event = _issue_command(uid, card_id, account_id)

    @firestore.transactional
    def run(tx: Transaction) -> None:
        customer = db.collection(CUSTOMERS).document(uid).get(transaction=tx)
        if not customer.exists or customer.get("status") != "approved":
            raise rules.CardRefused("not_a_customer", "only approved customers get cards")
        account = db.collection(ACCOUNTS).document(account_id).get(transaction=tx)
        if not account.exists or account.get("ownerUid") != uid:
            raise rules.CardRefused("unknown_account", "no such account")
        if account.get("status") != "open":
            raise rules.CardRefused("account_closed", "the account is closed")
        on_account = db.collection(CARDS).where(filter=FieldFilter("accountId", "==", account_id))
        usable = [s for s in tx.get(on_account) if s.get("status") != rules.BLOCKED and s.get("ownerUid") == uid]
        if len(usable) >= MAX_CARDS_PER_ACCOUNT:
            raise rules.CardRefused("too_many_cards", f"at most {MAX_CARDS_PER_ACCOUNT} cards per account")
        tx.create(
            db.collection(CARDS).document(card_id), _card_doc(uid, card_id, account_id, dict(rules.DEFAULT_LIMITS))
        )
        outbox.stage(FirestoreUnitOfWork(db, tx), event)

    run(db.transaction())
    outbox.deliver(FirestoreDocuments(db), publisher, [event])
    return card_id


def set_frozen(db: firestore.Client, publisher: Publisher, uid: str, *, card_id: object, frozen: object) -> str:
    if type(frozen) is not bool:
        raise rules.CardRefused("invalid_request", "frozen must be true or false")
    status = rules.FROZEN if frozen else rules.ACTIVE

    @firestore.transactional
    def run(tx: Transaction) -> outbox.Event:
        ref, data = _owned_card(tx, db, uid, card_id)
        if data.get("status") not in (rules.ACTIVE, rules.FROZEN):
            raise rules.CardRefused("card_not_active", f"a card that is {data.get('status')} cannot be changed")
        tx.update(ref, {"status": status, "updatedAt": firestore.SERVER_TIMESTAMP})
        event = _updated(uid, data["cardId"], {"status": status})
        outbox.stage(FirestoreUnitOfWork(db, tx), event)
        return event

    event: outbox.Event = run(db.transaction())
    outbox.deliver(FirestoreDocuments(db), publisher, [event])
    return status


def set_limits(
    db: firestore.Client, publisher: Publisher, uid: str, *, card_id: object, limits: object
) -> dict[str, Any]:
    @firestore.transactional
    def run(tx: Transaction) -> tuple[dict[str, Any], outbox.Event]:
        ref, data = _owned_card(tx, db, uid, card_id)
        if data.get("status") == rules.BLOCKED:
            raise rules.CardRefused("card_not_active", "a blocked card cannot be changed")
        merged = rules.validate_limits(limits, data.get("limits"))
        tx.update(ref, {"limits": merged, "updatedAt": firestore.SERVER_TIMESTAMP})
        event = _updated(uid, data["cardId"], {"limits": merged})
        outbox.stage(FirestoreUnitOfWork(db, tx), event)
        return merged, event

    changed: tuple[dict[str, Any], outbox.Event] = run(db.transaction())
    merged, event = changed
    outbox.deliver(FirestoreDocuments(db), publisher, [event])
    return merged


def replace_card(db: firestore.Client, publisher: Publisher, uid: str, *, card_id: object, reason: object) -> str:
    """Block the card at once (lost, stolen, damaged) and order a new one on the same
    account with the same limits."""
    if reason not in REPLACE_REASONS:
        raise rules.CardRefused("invalid_request", f"reason must be one of {list(REPLACE_REASONS)}")
    new_id = new_card_id()

    @firestore.transactional
    def run(tx: Transaction) -> list[outbox.Event]:
        ref, data = _owned_card(tx, db, uid, card_id)
        if data.get("status") == rules.BLOCKED:
            raise rules.CardRefused("card_not_active", "the card is already blocked")
        tx.update(
            ref,
            {
                "status": rules.BLOCKED,
                "blockedReason": reason,
                "replacedBy": new_id,
                "updatedAt": firestore.SERVER_TIMESTAMP,
            },
        )
        tx.create(
            db.collection(CARDS).document(new_id),
            _card_doc(uid, new_id, data["accountId"], data.get("limits") or dict(rules.DEFAULT_LIMITS), data["cardId"]),
        )
        events = [
            _updated(uid, data["cardId"], {"status": rules.BLOCKED, "reason": reason}),
            _issue_command(uid, new_id, data["accountId"]),
        ]
        for event in events:
            outbox.stage(FirestoreUnitOfWork(db, tx), event)
        return events

    events: list[outbox.Event] = run(db.transaction())
    outbox.deliver(FirestoreDocuments(db), publisher, events)
    return new_id
