"""Strong customer authentication: device keys and the check of a payment's signature.

users/{uid}/scaKeys/{keyId}   the device's public key (the app reads its own; only the
                              callable writes)
scaUsed/{sha256(signature)}   which request a signature authorised (backend only)
scaEnrolments/{uid}           the user's one enrolment (backend only)
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import DocumentReference, Transaction

from fjordbank.adapters.firestore import CUSTOMERS, SCREENING_CUSTOMERS, USERS
from fjordbank.domain import sca as rules
from fjordbank.domain.payments import PaymentRejected

SCA_KEYS = "scaKeys"
SCA_USED = "scaUsed"
SCA_ENROLMENTS = "scaEnrolments"  # {uid}: the one device enrolled (backend only)


def register_key(db: firestore.Client, uid: str, *, key_id: object, public_key: object) -> str:
    """The device key of a user, enrolled at onboarding: after sign-up and before the
    application is submitted. Once the user has applied (or has a key), enrolling is
    refused: a stolen session must not be able to add its own key to an existing
    customer. Enrolling another device needs a step-up flow (a signature by the enrolled
    key, or identity proofing), which is not built."""
    if not isinstance(key_id, str) or not rules.KEY_ID.fullmatch(key_id):
        raise rules.ScaRefused("invalid_key", "keyId must be 8-64 letters, digits, '-' or '_'")
    der = rules.parse_public_key(public_key)
    keys = db.collection(USERS).document(uid).collection(SCA_KEYS)
    customer = db.collection(CUSTOMERS).document(uid)
    # One document per user marks the enrolment: the transaction reads documents only (a
    # query in a transaction locks far more, and concurrent enrolments of different users
    # then failed on the emulator). The query is for keys enrolled before the marker existed.
    enrolment = db.collection(SCA_ENROLMENTS).document(uid)
    if list(keys.limit(1).stream()):
        raise rules.ScaRefused("sca_key_exists", "this customer already has a device key")

    @firestore.transactional
    def run(tx: Transaction) -> None:
        if enrolment.get(transaction=tx).exists:
            raise rules.ScaRefused("sca_key_exists", "this customer already has a device key")
        if customer.get(transaction=tx).exists:
            raise rules.ScaRefused(
                "enrolment_closed", "a device is enrolled at onboarding; contact the bank to enrol a new one"
            )
        tx.create(enrolment, {"keyId": key_id, "createdAt": firestore.SERVER_TIMESTAMP})
        tx.create(
            keys.document(key_id),
            {"keyId": key_id, "publicKey": base64.b64encode(der).decode(), "createdAt": firestore.SERVER_TIMESTAMP},
        )

    run(db.transaction())
    return key_id


def is_new_payee(db: firestore.Client, uid: str, to_account: str) -> bool:
    """A payee the customer has not paid before (screening's record of paid payees)."""
    return new_payee(payee_record_ref(db, uid).get().to_dict(), to_account)


def new_payee(screening_customer: dict[str, Any] | None, to_account: str) -> bool:
    return to_account not in (screening_customer or {}).get("payees", [])


def payee_record_ref(db: firestore.Client, uid: str) -> DocumentReference:
    """The document ``new_payee`` reads (screening's record of the customer's payees)."""
    return db.collection(SCREENING_CUSTOMERS).document(uid)


def key_ref(db: firestore.Client, uid: str, sca: dict[str, Any]) -> DocumentReference:
    ref: DocumentReference = db.collection(USERS).document(uid).collection(SCA_KEYS).document(sca["keyId"])
    return ref


def used_ref(db: firestore.Client, sca: dict[str, Any]) -> DocumentReference:
    return db.collection(SCA_USED).document(hashlib.sha256(sca["signature"].encode()).hexdigest())


def used_record(uid: str, request_path: str) -> dict[str, Any]:
    return {"request": request_path, "uid": uid, "usedAt": firestore.SERVER_TIMESTAMP}


def signature_required() -> PaymentRejected:
    return PaymentRejected("sca_required", "confirm this payment on your device (new payee or large amount)")


def signature_reused() -> PaymentRejected:
    return PaymentRejected("sca_reused", "this confirmation was used for another payment")


def needs_signature(amount: int, *, own_payee: bool, new_payee: bool, threshold: int) -> bool:
    return rules.required(amount, new_payee=False, threshold=threshold) or (not own_payee and new_payee)


def verify_signature(
    *,
    request_path: str,
    request_id: str,
    amount: int,
    currency: str,
    to_account: str,
    sca: dict[str, Any],
    key: dict[str, Any] | None,
    used: dict[str, Any] | None,
) -> bool:
    """Raises `PaymentRejected` unless ``sca`` is a valid signature over exactly these values
    by the registered ``key``, not used for another request. Returns whether its use still
    has to be recorded (``used`` is None: not yet)."""
    if key is None:
        raise PaymentRejected("sca_invalid", "the device key is not registered")
    if used is not None and used.get("request") != request_path:
        raise signature_reused()
    message = rules.challenge(request_id, amount, currency, to_account)
    if not rules.verify(base64.b64decode(key["publicKey"]), sca["signature"], message):
        raise PaymentRejected("sca_invalid", "the confirmation does not match this payment")
    return used is None


def check_payment(
    db: firestore.Client,
    uid: str,
    *,
    request_path: str,
    request_id: str,
    amount: int,
    currency: str,
    to_account: str,
    own_payee: bool,
    sca: dict[str, Any] | None,
    threshold: int,
) -> None:
    """Raises `PaymentRejected` (sca_required | sca_invalid | sca_reused) unless the payment
    needs no SCA or carries a valid, unused signature over exactly its values."""
    if sca is None:
        # the payee lookup (a read) only when the amount alone does not decide it
        needed = rules.required(amount, new_payee=False, threshold=threshold) or (
            not own_payee and is_new_payee(db, uid, to_account)
        )
        if needed:
            raise signature_required()
        return
    used = used_ref(db, sca)
    previous = used.get()
    record = verify_signature(
        request_path=request_path,
        request_id=request_id,
        amount=amount,
        currency=currency,
        to_account=to_account,
        sca=sca,
        key=key_ref(db, uid, sca).get().to_dict(),
        used=previous.to_dict(),
    )
    if not record:
        return
    try:
        used.create(used_record(uid, request_path))
    except AlreadyExists:
        if used.get().get("request") != request_path:  # raced by another request
            raise signature_reused() from None
