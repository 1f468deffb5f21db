"""Onboarding: an application through the callable, a decision, and an operator's review.

Everything a decision makes is written in one Firestore transaction, so a failure leaves
nothing half-made:

  customers/{uid}      what the app shows: status, reason, name, contact, masked id
  kyc/{uid}            the full application and the screening matches (backend only)
  nationalIds/{id}     one customer per identity number (backend only)
  accounts/{number}    the first account, when approved
  outbox/{msgId}       the customers.* event(s), published after the commit

A uid that has applied cannot apply again; an identity number belongs to one customer.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import Transaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.documents import FirestoreDocuments, FirestoreUnitOfWork
from fjordbank.adapters.firestore import CUSTOMERS
from fjordbank.domain import onboarding as rules
from fjordbank.domain.accounts import DEFAULT_NAMES, SPENDING
from fjordbank.domain.events import CustomerDecided
from fjordbank.domain.norway import mask_national_id, today_in_norway
from fjordbank.domain.sanctions import SanctionsList
from fjordbank.service_layer import outbox
from fjordbank.service_layer.accounts import claim_number, create_account
from fjordbank.service_layer.ports import Publisher

log = logging.getLogger(__name__)
KYC = "kyc"
NATIONAL_IDS = "nationalIds"
SUBJECTS = {
    rules.APPROVED: topology.SUBJECT_CUSTOMER_APPROVED,
    rules.REVIEW: topology.SUBJECT_CUSTOMER_REVIEW,
    rules.REJECTED: topology.SUBJECT_CUSTOMER_REJECTED,
}


def customer_event(uid: str, status: str, reason: str | None, account_id: str | None) -> outbox.Event:
    """No personal data on NATS: the uid, the outcome and the first account."""
    body = CustomerDecided(uid=uid, status=status, reason=reason, account_id=account_id).to_json()
    return outbox.Event(SUBJECTS[status], body, f"customer:{uid}:{status}")


def load_sanctions(path: str) -> SanctionsList:
    with open(path, "rb") as fh:
        return SanctionsList.from_xml(fh.read())


def submit(
    db: firestore.Client,
    publisher: Publisher,
    uid: str,
    data: object,
    *,
    sanctions: SanctionsList,
    bank_reg: str,
    today: dt.date | None = None,
    allow_synthetic: bool = False,
) -> dict[str, Any]:
    """Validate, screen and decide an application. Raises `OnboardingRefused` (nothing
    written) for a malformed application, a second application or an identity in use."""
    application = rules.parse_application(data, today=today or today_in_norway(), allow_synthetic=allow_synthetic)
    decision = rules.decide(application, sanctions)
    nid = application.national_id.number
    customer_ref = db.collection(CUSTOMERS).document(uid)
    id_ref = db.collection(NATIONAL_IDS).document(nid)

    @firestore.transactional
    def run(tx: Transaction) -> tuple[str | None, list[outbox.Event]]:
        if customer_ref.get(transaction=tx).exists:
            raise rules.OnboardingRefused("already_onboarded", "you have already applied")
        if id_ref.get(transaction=tx).exists:
            raise rules.OnboardingRefused(
                "identity_in_use", "this identity number belongs to another customer; contact the bank", "nationalId"
            )
        number = claim_number(tx, db, bank_reg) if decision.outcome == rules.APPROVED else None
        # writes only from here on (Firestore transactions read first)
        now = firestore.SERVER_TIMESTAMP
        tx.create(
            customer_ref,
            {
                "uid": uid,
                "status": decision.outcome,
                "reason": decision.reason,
                "name": application.name,
                "email": application.email,
                "phone": application.phone,
                "address": application.address.to_dict(),
                "nationalIdMasked": mask_national_id(nid),
                "firstAccountId": number,
                "appliedAt": now,
                "decidedAt": now if decision.outcome != rules.REVIEW else None,
                "updatedAt": now,
            },
        )
        tx.create(
            db.collection(KYC).document(uid),
            {
                "nationalId": nid,
                "idKind": application.national_id.kind,
                "birthDate": application.birth_date.isoformat(),
                "name": application.name,
                "screening": [m._asdict() for m in decision.matches],
                "decision": decision.outcome,
                "reason": decision.reason,
                "appliedAt": now,
            },
        )
        tx.create(id_ref, {"uid": uid, "createdAt": now})
        events = []
        if number is not None:
            events.append(create_account(tx, db, uid, number, kind=SPENDING, name=DEFAULT_NAMES[SPENDING]))
        event = customer_event(uid, decision.outcome, decision.reason, number)
        outbox.stage(FirestoreUnitOfWork(db, tx), event)
        return number, [event, *events]

    decided: tuple[str | None, list[outbox.Event]] = run(db.transaction())
    number, events = decided
    outbox.deliver(FirestoreDocuments(db), publisher, events)
    log.info(
        "onboarding decided",
        extra={"uid": uid, "status": decision.outcome, "reason": decision.reason, "id": mask_national_id(nid)},
    )
    return {"status": decision.outcome, "reason": decision.reason, "accountId": number}


def pending_reviews(db: firestore.Client, limit: int = 100) -> list[dict[str, Any]]:
    query = db.collection(CUSTOMERS).where(filter=FieldFilter("status", "==", rules.REVIEW)).limit(limit)
    out = []
    for snap in query.stream():
        kyc = db.collection(KYC).document(snap.id).get()
        out.append(
            {
                "uid": snap.id,
                "name": snap.get("name"),
                "nationalIdMasked": snap.get("nationalIdMasked"),
                "screening": (kyc.to_dict() or {}).get("screening", []) if kyc.exists else [],
            }
        )
    return out


def decide_review(
    db: firestore.Client,
    publisher: Publisher,
    uid: str,
    *,
    approve: bool,
    operator: str,
    reason: str | None,
    bank_reg: str,
) -> dict[str, Any]:
    """An operator's decision on an application in review."""
    if not approve and not (isinstance(reason, str) and 0 < len(reason.strip()) <= 200):
        raise rules.OnboardingRefused("invalid_reason", "a rejection needs a reason (1-200 characters)")
    final_reason = reason.strip() if not approve and reason is not None else None  # a rejection's, checked above
    customer_ref = db.collection(CUSTOMERS).document(uid)

    @firestore.transactional
    def run(tx: Transaction) -> tuple[str | None, list[outbox.Event]]:
        snap = customer_ref.get(transaction=tx)
        if not snap.exists:
            raise rules.OnboardingRefused("unknown_customer", "no application from this user")
        if snap.get("status") != rules.REVIEW:
            raise rules.OnboardingRefused("not_in_review", f"the application is {snap.get('status')}, not in review")
        number = claim_number(tx, db, bank_reg) if approve else None
        status = rules.APPROVED if approve else rules.REJECTED
        now = firestore.SERVER_TIMESTAMP
        tx.update(
            customer_ref,
            {"status": status, "reason": final_reason, "firstAccountId": number, "decidedAt": now, "updatedAt": now},
        )
        tx.update(
            db.collection(KYC).document(uid),
            {"decision": status, "reason": final_reason, "reviewedBy": operator, "reviewedAt": now},
        )
        events = []
        if number is not None:
            events.append(create_account(tx, db, uid, number, kind=SPENDING, name=DEFAULT_NAMES[SPENDING]))
        event = customer_event(uid, status, final_reason, number)
        outbox.stage(FirestoreUnitOfWork(db, tx), event)
        return number, [event, *events]

    decided: tuple[str | None, list[outbox.Event]] = run(db.transaction())
    number, events = decided
    outbox.deliver(FirestoreDocuments(db), publisher, events)
    log.info("onboarding reviewed", extra={"uid": uid, "approved": approve, "operator": operator})
    return {"status": rules.APPROVED if approve else rules.REJECTED, "accountId": number}
