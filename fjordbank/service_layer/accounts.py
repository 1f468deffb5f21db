"""Open, rename and close accounts (called by the accounts callables; sync Firestore).

Only an approved customer (``customers/{uid}`` with status "approved") opens accounts, at
most MAX_OPEN_ACCOUNTS open at once. A number is drawn at random and claimed in the same
transaction only if no account has it (`claim_number`): two openings that drew one number
conflict on that account document alone, and the retried one draws again. Closing happens in a
transaction that reads the balance and holds, which the ledger's own transactions also
read: a payment cannot land in between.
"""

from __future__ import annotations

import secrets
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import DocumentReference, Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.documents import FirestoreDocuments, FirestoreUnitOfWork
from fjordbank.adapters.firestore import ACCOUNTS, CUSTOMERS
from fjordbank.domain import accounts as rules
from fjordbank.domain.events import AccountChanged
from fjordbank.service_layer import outbox
from fjordbank.service_layer.ports import Publisher

_draw = secrets.SystemRandom()  # account numbers are not guessable in sequence


def _owned(
    tx: Transaction, db: firestore.Client, uid: str, account_id: str
) -> tuple[DocumentReference, dict[str, Any]]:
    if not isinstance(account_id, str) or not account_id.isdigit() or len(account_id) != 11:
        raise rules.AccountRefused("unknown_account", "no such account")
    ref = db.collection(ACCOUNTS).document(account_id)
    snap = ref.get(transaction=tx)
    if not snap.exists or snap.get("ownerUid") != uid:
        raise rules.AccountRefused("unknown_account", "no such account")  # the same for others' accounts
    return ref, snap.to_dict() or {}


def account_event(subject: str, uid: str, account_id: str, kind: str | None = None) -> outbox.Event:
    step = subject.rsplit(".", 1)[-1]
    body = AccountChanged(uid=uid, account_id=account_id, type=kind).to_json()
    return outbox.Event(subject, body, f"{account_id}:{step}")


def claim_number(tx: Transaction, db: firestore.Client, bank_reg: str) -> str:
    """A free customer account number, read in the caller's transaction (so a concurrent
    claim of the same number makes one of the two retry). Raises registry_exhausted when
    ``MAX_DRAWS`` random draws all hit taken numbers."""
    for _ in range(rules.MAX_DRAWS):
        number = rules.number_at(bank_reg, _draw.randrange(rules.POSITIONS))
        if number is not None and not db.collection(ACCOUNTS).document(number).get(transaction=tx).exists:
            return number
    raise rules.registry_exhausted(bank_reg)


def create_account(
    tx: Transaction, db: firestore.Client, uid: str, number: str, *, kind: str, name: str
) -> outbox.Event:
    """Write a new account (after the transaction's reads)."""
    tx.create(
        db.collection(ACCOUNTS).document(number),
        {
            "accountId": number,
            "ownerUid": uid,
            "name": name,
            "type": kind,
            "kind": "customer",
            "currency": "NOK",
            "balance": 0,
            "held": 0,
            "available": 0,
            "overdraftLimit": 0,
            "status": "open",
            "createdAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
        },
    )
    event = account_event(topology.SUBJECT_ACCOUNT_OPENED, uid, number, kind)
    outbox.stage(FirestoreUnitOfWork(db, tx), event)
    return event


def open_account(
    db: firestore.Client, uid: str, *, kind: str, name: str | None, bank_reg: str, publisher: Publisher
) -> str:
    kind = rules.validate_kind(kind)
    name = rules.validate_name(name if name is not None else rules.DEFAULT_NAMES[kind])

    @firestore.transactional
    def run(tx: Transaction) -> tuple[str, outbox.Event]:
        customer = db.collection(CUSTOMERS).document(uid).get(transaction=tx)
        if not customer.exists or customer.get("status") != "approved":
            raise rules.AccountRefused("not_a_customer", "only approved customers open accounts")
        owned = db.collection(ACCOUNTS).where(filter=FieldFilter("ownerUid", "==", uid))
        open_now = [s for s in tx.get(owned) if s.get("status") == "open"]
        if len(open_now) >= rules.MAX_OPEN_ACCOUNTS:
            raise rules.AccountRefused("too_many_accounts", f"at most {rules.MAX_OPEN_ACCOUNTS} open accounts")
        number = claim_number(tx, db, bank_reg)
        return number, create_account(tx, db, uid, number, kind=kind, name=name)

    opened: tuple[str, outbox.Event] = run(db.transaction())
    number, event = opened
    outbox.deliver(FirestoreDocuments(db), publisher, [event])
    return number


def rename_account(db: firestore.Client, uid: str, *, account_id: str, name: str) -> None:
    name = rules.validate_name(name)

    @firestore.transactional
    def run(tx: Transaction) -> None:
        ref, data = _owned(tx, db, uid, account_id)
        if data.get("status") != "open":
            raise rules.AccountRefused("account_closed", "a closed account cannot be renamed")
        tx.update(ref, {"name": name, "updatedAt": firestore.SERVER_TIMESTAMP})

    run(db.transaction())


def close_account(db: firestore.Client, uid: str, *, account_id: str, publisher: Publisher) -> None:
    event = account_event(topology.SUBJECT_ACCOUNT_CLOSED, uid, account_id)

    @firestore.transactional
    def run(tx: Transaction) -> None:
        ref, data = _owned(tx, db, uid, account_id)
        rules.check_closable(data)
        tx.update(
            ref, {"status": "closed", "closedAt": firestore.SERVER_TIMESTAMP, "updatedAt": firestore.SERVER_TIMESTAMP}
        )
        outbox.stage(FirestoreUnitOfWork(db, tx), event)

    run(db.transaction())
    outbox.deliver(FirestoreDocuments(db), publisher, [event])
