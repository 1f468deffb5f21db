"""Strong customer authentication: device keys and the check of a payment's signature.

users/{uid}/scaKeys/{keyId}   the device's public key (the app reads its own; only the
                              callable writes)
scaUsed/{sha256(identity)}    which request a signature authorised (backend only); the
                              identity is r and the lower s (domain.sca.signature_identity),
                              so no re-spelling of a signature is a new one. Records made
                              before 2026-12-04 are keyed on the signature's text and are
                              still read (`used_paths`).
scaEnrolments/{uid}           the user's devices (backend only): the key ids enrolled now
                              (``keys``), those revoked for good (``revoked``) and, after
                              an operator reopened it, when, for which key
                              (``reopenedAt``, ``expectedKey``), who and why

Every change to a customer's devices after onboarding (a key added, a key enrolled after
the bank reopened the enrolment, a key revoked, every key revoked by the bank) is
announced on ``customers.device_changed`` (`device_event`), staged in the outbox in the
transaction that makes it (fjordbank.service_layer.outbox) and published after the
commit; the notifier pushes a security notice for it to every device the customer has,
which the customer cannot switch off: a device someone else added is seen at once. The
first key, enrolled at onboarding, is not announced.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import CUSTOMERS, SCREENING_CUSTOMERS, USERS
from fjordbank.domain import sca as rules
from fjordbank.domain.events import DeviceChanged
from fjordbank.domain.payments import PaymentRejected
from fjordbank.service_layer import outbox
from fjordbank.service_layer import sessions as session_records
from fjordbank.service_layer.ports import (
    DELETE_FIELD,
    SERVER_TIME,
    AlreadyExists,
    Clock,
    Doc,
    Documents,
    Publisher,
    Sessions,
    UnitOfWork,
    system_clock,
)

SCA_KEYS = "scaKeys"
SCA_USED = "scaUsed"
SCA_ENROLMENTS = "scaEnrolments"  # {uid}: the devices enrolled and revoked (backend only)
# scaEnrolments/{uid}/retiredKeys/{keyId}: a revoked key as it was enrolled (its public key),
# with when and by whom it was revoked (backend only). Kept as the evidence that the
# payments it confirmed were authenticated (PSD2 art. 72: the bank proves it when a
# customer disputes one): revoking deleted the only copy of the public key, so after a
# "lost phone" no signature on record could be verified again, and a fraudster holding
# the session could pay and then revoke the key (found in review, 2026-12-07).
RETIRED_KEYS = "retiredKeys"
REGISTER_KEY = "sca_register_key"  # the enrolment's transaction in fjb_firestore_transaction_attempts_total
log = logging.getLogger(__name__)


def device_event(
    uid: str, change: str, key_id: str, *, at: dt.datetime, approved_by: str | None = None
) -> outbox.Event:
    """customers.device_changed for one change at ``at``. Its message id names the change: a
    key is added, enrolled and revoked at most once each (a revoked id never comes back); a
    reset by the bank is named by its time as well, since the bank may reset twice
    expecting the same key."""
    when = at.astimezone(dt.UTC).isoformat()
    body = DeviceChanged(uid=uid, change=change, key_id=key_id, approved_by=approved_by, changed_at=when).to_json()
    stamp = at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ") if change == "reset" else None
    return outbox.Event(
        topology.SUBJECT_DEVICE_CHANGED, body, ":".join(filter(None, (uid, "device", change, key_id, stamp)))
    )


def _announce(docs: Documents, publisher: Publisher | None, events: list[outbox.Event]) -> bool:
    """Publish the events a committed change staged (None: no NATS at hand; the
    relay-outbox job publishes them within minutes). Whether every one was published now."""
    if not events:
        return True
    return publisher is not None and outbox.deliver(docs, publisher, events) == len(events)


def register_key(
    docs: Documents,
    publisher: Publisher | None,
    uid: str,
    *,
    key_id: object,
    public_key: object,
    clock: Clock = system_clock,
) -> str:
    """The device key of a user, enrolled at onboarding: after sign-up and before the
    application is submitted. Once the user has applied (or has a key), enrolling is
    refused: a stolen session must not be able to add its own key to an existing
    customer. Another device is added with an enrolled one's signature (`add_device`); a
    customer with none left enrols one here within the window an operator opened after
    proving who they are (`reopen_enrolment`)."""
    key_id, public = _checked(key_id, public_key)
    # One document per user marks the enrolment: the transaction reads documents only (a
    # query in a transaction locks far more, and concurrent enrolments of different users
    # then failed on the emulator). The query is for keys enrolled before the marker existed.
    enrolment, customer, key = f"{SCA_ENROLMENTS}/{uid}", f"{CUSTOMERS}/{uid}", f"{keys_collection(uid)}/{key_id}"
    legacy = docs.query(keys_collection(uid), limit=1)
    if legacy and _enrolled(legacy[0], key_id, public):
        return key_id
    staged: list[outbox.Event] = []

    def run(uow: UnitOfWork) -> None:
        staged.clear()
        found = uow.get_many([enrolment, customer, key])
        if _enrolled(found[key], key_id, public):
            return  # a retry whose first answer was lost: answered as the first was
        state = rules.Enrolment.of(_data(found[enrolment]))
        if state is None and not legacy and found[customer] is None:  # onboarding
            uow.create(enrolment, {"keyId": key_id, "keys": [key_id], "createdAt": SERVER_TIME})
        elif state is not None and not state.keys and state.is_open(now := clock()):  # reopened by the bank
            if not state.may_enrol(key_id, base64.b64decode(public), now):
                raise rules.ScaRefused(
                    "unexpected_device_key", "the bank reopened your enrolment for another device key"
                )
            state.may_add(key_id)
            reopened = {"reopenedAt": DELETE_FIELD, "expectedKey": DELETE_FIELD}
            uow.update(enrolment, {"keys": [key_id], **reopened, "enrolledAt": SERVER_TIME})
            staged.append(device_event(uid, "enrolled", key_id, at=now))
        elif legacy or (state is not None and state.keys):
            raise rules.ScaRefused("sca_key_exists", "this customer already has a device key")
        else:
            raise rules.ScaRefused("enrolment_closed", "enrol a new device with one you have, or through the bank")
        uow.create(key, {"keyId": key_id, "publicKey": public, "createdAt": SERVER_TIME})
        for event in staged:
            outbox.stage(uow, event, clock=clock)

    docs.transact(run, operation="sca_register_key")
    _announce(docs, publisher, staged)
    log.info("device key enrolled", extra={"uid": uid, "keyId": key_id})
    return key_id


def add_device(
    docs: Documents,
    publisher: Publisher | None,
    uid: str,
    *,
    key_id: object,
    public_key: object,
    approval: object,
    clock: Clock = system_clock,
) -> str:
    """Another device's key, approved by a device the customer has: ``approval`` is
    ``{keyId, signature}``, that key's signature over `rules.enrolment_challenge` of the new
    key. The same key added again is answered as the first time; a revoked key id never
    comes back, so an approval cannot be replayed after its key was revoked."""
    key_id, public = _checked(key_id, public_key)
    if not (
        isinstance(approval, dict)
        and set(approval) == {"keyId", "signature"}
        and isinstance(approval["keyId"], str)
        and rules.KEY_ID.fullmatch(approval["keyId"])
        and isinstance(approval["signature"], str)
        and 0 < len(approval["signature"]) <= 200
        and approval["signature"].isascii()
    ):
        raise rules.ScaRefused("invalid_approval", "approval must be {keyId, signature} of an enrolled device")
    enrolment, key, approver = (
        f"{SCA_ENROLMENTS}/{uid}",
        f"{keys_collection(uid)}/{key_id}",
        f"{keys_collection(uid)}/{approval['keyId']}",
    )
    message = rules.enrolment_challenge(uid, key_id, base64.b64decode(public))
    staged: list[outbox.Event] = []

    def run(uow: UnitOfWork) -> None:
        staged.clear()
        found = uow.get_many([enrolment, key, approver])
        if _enrolled(found[key], key_id, public):
            return
        signer = _data(found[approver])
        if signer is None or not rules.verify(base64.b64decode(signer["publicKey"]), approval["signature"], message):
            raise rules.ScaRefused("sca_invalid", "the approval is not a signature of a device of yours over this key")
        if found[key] is not None:
            raise rules.ScaRefused("sca_key_exists", "a device key with this id is enrolled")
        state = rules.Enrolment.of(_data(found[enrolment])) or rules.Enrolment((approval["keyId"],), frozenset(), None)
        state.may_add(key_id)
        keys = [*state.keys, key_id]
        uow.set(enrolment, {"keys": keys, "revoked": sorted(state.revoked)}, merge=True)
        uow.create(
            key, {"keyId": key_id, "publicKey": public, "createdAt": SERVER_TIME, "approvedBy": approval["keyId"]}
        )
        staged.append(device_event(uid, "added", key_id, at=clock(), approved_by=approval["keyId"]))
        outbox.stage(uow, staged[0], clock=clock)

    docs.transact(run, operation="sca_add_device")
    _announce(docs, publisher, staged)
    log.info("device key added", extra={"uid": uid, "keyId": key_id, "approvedBy": approval["keyId"]})
    return key_id


def revoke_key(
    docs: Documents,
    publisher: Publisher | None,
    uid: str,
    *,
    key_id: object,
    sign_out: object = False,
    sessions: Sessions | None = None,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """A device key removed for good (a lost or replaced phone): its signatures are refused
    from now on and its id never enrolled again. Revoking the last one leaves payments that
    need a signature refused until the bank reopens the enrolment. A key revoked before is
    answered as revoked (a retry after a lost answer). With ``sign_out`` (a lost or stolen
    phone) every session of the customer's is ended as well (``sessions``), the one asking
    too: the lost phone's session can no longer look at the accounts, pay a known payee
    below the signature threshold or remove the customer's other devices, from the commit
    on (the rules and the callables refuse a token signed in before the sessions ended:
    fjordbank.service_layer.sessions). The sessions are ended once the key is known to be
    the customer's and before the removal is committed: if that fails nothing has changed, so the device is still
    listed for the customer to try again (ended after the commit, a failure there left a
    device removed with its session alive and nothing on the screen to retry)."""
    key_id = _key_id(key_id)
    if not isinstance(sign_out, bool):
        raise rules.ScaRefused("invalid_request", "signOutEverywhere must be true or false")
    enrolment, key = f"{SCA_ENROLMENTS}/{uid}", f"{keys_collection(uid)}/{key_id}"
    left: list[str] = []
    staged: list[outbox.Event] = []

    def revocable(found: dict[str, Doc | None]) -> rules.Enrolment:
        """The customer's enrolment, if the key is theirs (or was: a retry); else refused."""
        state = rules.Enrolment.of(_data(found[enrolment])) or rules.Enrolment((), frozenset(), None)
        if found[key] is None and key_id not in state.revoked:
            raise rules.ScaRefused("unknown_device_key", "no such device key of yours")
        return state

    valid_after = 0  # with sign_out: the time Auth takes tokens from again
    if sign_out:
        if sessions is None:
            raise ValueError("sign_out needs the sessions port")
        revocable(docs.get_many([enrolment, key]))  # a refused removal ends nobody's sessions
        valid_after = sessions.end_all(uid)

    def run(uow: UnitOfWork) -> None:
        staged.clear()
        found = uow.get_many([enrolment, key, *(session_records.paths_to_end(uid) if sign_out else [])])
        state = revocable(found)
        if sign_out:  # the tokens signed in before are refused at once (also on a retry)
            session_records.record_ended(uow, uid, valid_after, found)
        held = found[key]
        if held is None:  # revoked before: a retry after a lost answer
            left[:] = state.keys
            return
        left[:] = [k for k in state.keys if k != key_id]
        uow.set(enrolment, {"keys": left, "revoked": sorted({*state.revoked, key_id})}, merge=True)
        _retire(uow, uid, held, "customer")
        staged.append(device_event(uid, "revoked", key_id, at=clock()))
        outbox.stage(uow, staged[0], clock=clock)

    docs.transact(run, operation="sca_revoke_key")
    _announce(docs, publisher, staged)
    log.info("device key revoked", extra={"uid": uid, "keyId": key_id, "left": len(left), "signedOut": sign_out})
    return {"keyId": key_id, "revoked": True, "devicesLeft": len(left), "signedOut": sign_out}


def reopen_enrolment(
    docs: Documents,
    publisher: Publisher | None,
    uid: str,
    *,
    operator: str,
    reason: object,
    key_id: object,
    fingerprint: object,
    sessions: Sessions,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """An operator, having proved the customer's identity outside the app (in production:
    BankID, or a branch), lets the customer's new device enrol without another's
    signature: every key the customer has is revoked (a lost phone may be in someone's
    hands), and for `rules.REOPEN_WINDOW` ``sca_register_key`` enrols the one key whose id
    and fingerprint the new device showed the operator (``key_id``, ``fingerprint``), no
    other: whoever holds the customer's password cannot enrol theirs in the window. The
    window runs from the commit's time, the database's clock, never the operator's. Every
    session of the customer's is ended too (``sessions``), at once: the lost phone's, and
    the new device signs in again (fjordbank.service_layer.sessions). That is done once the
    reset is known to be allowed and before it is committed, so a failure of it changes nothing and the
    operator's retry is a first reset, not a second window and a second notice."""
    # checked before anything is done, as an operator's decision on an application is: a
    # reason Firestore cannot store (a lone surrogate) ended the customer's sessions, then
    # failed the write, and the operator was answered INTERNAL (found in review)
    if not (isinstance(reason, str) and 3 <= len(reason.strip()) <= 200 and reason.isprintable()):
        raise rules.ScaRefused(
            "invalid_reason", "reason: what proved the customer's identity (3-200 printable characters)"
        )
    if operator == uid:
        # four eyes: an operator could let a device of their own choosing into their own
        # customer account (found in review). bankctl's operator is a name, never a uid.
        raise rules.ScaRefused("four_eyes", "an operator does not reopen their own device enrolment")
    key_id = _key_id(key_id)
    if (printed := rules.read_fingerprint(fingerprint)) is None:
        raise rules.ScaRefused("invalid_fingerprint", "fingerprint: the 16 hex digits the new device shows")
    enrolment, customer = f"{SCA_ENROLMENTS}/{uid}", f"{CUSTOMERS}/{uid}"
    older = [doc.id for doc in docs.query(keys_collection(uid), limit=rules.MAX_DEVICES + 1)]
    revoked: list[str] = []
    staged = [device_event(uid, "reset", key_id, at=clock())]

    def allowed(found: dict[str, Doc | None]) -> rules.Enrolment:
        """The customer's enrolment, if the bank may reset it for this key; else refused."""
        if (_data(found[customer]) or {}).get("status") != "approved":
            raise rules.ScaRefused("unknown_customer", "no approved customer with this uid")
        state = rules.Enrolment.of(_data(found[enrolment])) or rules.Enrolment((), frozenset())
        if key_id in state.revoked:
            raise rules.ScaRefused(
                "device_key_revoked", "this device key id was revoked; the device must make a new one"
            )
        if key_id in state.keys or key_id in older:
            # the reset revokes every key the customer has, this one too: the window it
            # opened could never be used, with every device gone and every session ended
            raise rules.ScaRefused(
                "device_key_enrolled",
                "this device key is enrolled now and a reset revokes it; the device must make a new one",
            )
        return state

    allowed(docs.get_many([enrolment, customer]))
    valid_after = sessions.end_all(uid)

    def run(uow: UnitOfWork) -> None:
        found = uow.get_many([enrolment, customer, *session_records.paths_to_end(uid)])
        state = allowed(found)
        revoked[:] = sorted({*state.keys, *older})
        held = uow.get_many([f"{keys_collection(uid)}/{old}" for old in revoked])  # reads before writes
        # the tokens signed in before are refused at once
        session_records.record_ended(uow, uid, valid_after, found)
        for old_key in held.values():
            if old_key is not None:
                _retire(uow, uid, old_key, f"bank:{operator}")
        uow.set(
            enrolment,
            {
                "keys": [],
                "revoked": sorted({*state.revoked, *revoked}),
                "reopenedAt": SERVER_TIME,
                "expectedKey": {"keyId": key_id, "fingerprint": printed},
                "reopenedBy": operator,
                "reopenedReason": reason.strip(),
            },
            merge=True,
        )
        outbox.stage(uow, staged[0], clock=clock)

    docs.transact(run, operation="sca_reopen_enrolment")
    notified = _announce(docs, publisher, staged)
    log.warning("device enrolment reopened", extra={"uid": uid, "operator": operator, "revoked": len(revoked)})
    return {
        "uid": uid,
        "revoked": revoked,
        "keyId": key_id,
        "fingerprint": printed,
        "minutes": int(rules.REOPEN_WINDOW.total_seconds() // 60),
        "noticePublished": notified,  # False: it waits in the outbox for the relay-outbox job
        "signedOut": True,
    }


def retired_key_path(uid: str, key_id: str) -> str:
    return f"{SCA_ENROLMENTS}/{uid}/{RETIRED_KEYS}/{key_id}"


def _retire(uow: UnitOfWork, uid: str, key: Doc, by: str) -> None:
    """Delete the device key ``key`` and keep it as retired (`RETIRED_KEYS`), in ``uow``."""
    uow.set(retired_key_path(uid, key.id), {**key.data, "revokedAt": SERVER_TIME, "revokedBy": by})
    uow.delete(key.path)


def _checked(key_id: object, public_key: object) -> tuple[str, str]:
    """The key id and the public key (base64 DER) of a device key; raises invalid_key."""
    return _key_id(key_id), base64.b64encode(rules.parse_public_key(public_key)).decode()


def _key_id(key_id: object) -> str:
    """A device key's id as a caller gave it; raises invalid_key."""
    if not isinstance(key_id, str) or not rules.KEY_ID.fullmatch(key_id):
        raise rules.ScaRefused("invalid_key", "keyId must be 8-64 letters, digits, '-' or '_'")
    return key_id


def _enrolled(doc: Doc | None, key_id: str, public: str) -> bool:
    """This very key, enrolled before: a retry whose first answer was lost is answered as
    the first was (told "exists", the app went on as if enrolled, or the tool that enrols
    stopped, and another device's key is told so all the same)."""
    return doc is not None and doc.id == key_id and doc.data.get("publicKey") == public


def _data(doc: Doc | None) -> dict[str, Any] | None:
    """A document's data, None when there is none (what the checks below take)."""
    return None if doc is None else doc.data


def is_new_payee(docs: Documents, uid: str, to_account: str) -> bool:
    """A payee the customer has not paid before (screening's record of paid payees)."""
    return new_payee(_data(docs.get(payee_record_path(uid))), to_account)


def new_payee(screening_customer: dict[str, Any] | None, to_account: str) -> bool:
    return to_account not in (screening_customer or {}).get("payees", [])


def payee_record_path(uid: str) -> str:
    """The document ``new_payee`` reads (screening's record of the customer's payees)."""
    return f"{SCREENING_CUSTOMERS}/{uid}"


def keys_collection(uid: str) -> str:
    return f"{USERS}/{uid}/{SCA_KEYS}"


def key_path(uid: str, sca: dict[str, Any]) -> str:
    return f"{keys_collection(uid)}/{sca['keyId']}"


def used_path(sca: dict[str, Any]) -> str:
    """The record of the signature's use: keyed on its identity (r and the lower s), or on
    its text when it has no signature's shape (it fails verification then anyway)."""
    identity = rules.signature_identity(sca["signature"])
    key = identity if identity is not None else sca["signature"].encode()
    return f"{SCA_USED}/{hashlib.sha256(key).hexdigest()}"


def used_paths(sca: dict[str, Any]) -> list[str]:
    """Where a record of the signature's use may be: `used_path` (where it is made), and
    the record a backend before 2026-12-04 made, keyed on the exact text it was sent as."""
    return [used_path(sca), f"{SCA_USED}/{hashlib.sha256(sca['signature'].encode()).hexdigest()}"]


def used_of(found: dict[str, Doc | None], sca: dict[str, Any]) -> dict[str, Any] | None:
    """The signature's record of use among the documents read (`used_paths`), None: none."""
    return next((doc.data for path in used_paths(sca) if (doc := found.get(path)) is not None), None)


def used_record(uid: str, request_path: str) -> dict[str, Any]:
    return {"request": request_path, "uid": uid, "usedAt": SERVER_TIME}


def signature_required() -> PaymentRejected:
    return PaymentRejected("sca_required", "confirm this payment on your device (new payee or large amount)")


def signature_reused() -> PaymentRejected:
    return PaymentRejected("sca_reused", "this confirmation was used for another payment or change")


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
    challenge: bytes | None = None,
) -> bool:
    """Raises `PaymentRejected` unless ``sca`` is a valid signature over exactly these values
    (a payment's challenge, or ``challenge``: a standing order's) by the registered ``key``,
    not used for another request. Returns whether its use still has to be recorded
    (``used`` is None: not yet)."""
    message = challenge if challenge is not None else rules.challenge(request_id, amount, currency, to_account)
    return verify_confirmation(request_path=request_path, message=message, sca=sca, key=key, used=used)


def verify_confirmation(
    *,
    request_path: str,
    message: bytes,
    sca: dict[str, Any],
    key: dict[str, Any] | None,
    used: dict[str, Any] | None,
    what: str = "this payment",
) -> bool:
    """Raises `PaymentRejected` (sca_invalid | sca_reused) unless ``sca`` is a valid
    signature over ``message`` by the registered ``key``, not used for another request
    than ``request_path``. Returns whether its use still has to be recorded."""
    if key is None:
        raise PaymentRejected("sca_invalid", "the device key is not registered")
    if used is not None and used.get("request") != request_path:
        raise signature_reused()
    if not rules.verify(base64.b64decode(key["publicKey"]), sca["signature"], message):
        raise PaymentRejected("sca_invalid", f"the confirmation does not match {what}")
    return used is None


def check_payment(
    docs: Documents,
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
    challenge: bytes | None = None,
) -> None:
    """Raises `PaymentRejected` (sca_required | sca_invalid | sca_reused) unless the payment
    needs no SCA or carries a valid, unused signature over exactly its values (``challenge``:
    what a standing order's confirmation signs instead of a payment's)."""
    if sca is None:
        # the payee lookup (a read) only when the amount alone does not decide it
        needed = rules.required(amount, new_payee=False, threshold=threshold) or (
            not own_payee and is_new_payee(docs, uid, to_account)
        )
        if needed:
            raise signature_required()
        return
    message = challenge if challenge is not None else rules.challenge(request_id, amount, currency, to_account)
    check_confirmation(
        docs,
        uid,
        request_path=request_path,
        sca=sca,
        message=message,
        required=signature_required(),
        what="this payment",
    )


def check_confirmation(
    docs: Documents,
    uid: str,
    *,
    request_path: str,
    sca: dict[str, Any] | None,
    message: bytes,
    required: PaymentRejected,
    what: str,
) -> None:
    """Raises ``required`` without a confirmation, `PaymentRejected` (sca_invalid |
    sca_reused) unless ``sca`` is a valid signature over ``message`` by one of the
    customer's device keys, unused or used for ``request_path`` only (a retry of the same
    change); records its use for ``request_path``. For what is not a payment: a card
    unfrozen, its limits raised (fjordbank.service_layer.cards)."""
    if sca is None:
        raise required
    used, key = used_path(sca), key_path(uid, sca)
    found = docs.get_many([*used_paths(sca), key])  # one round trip for all
    record = verify_confirmation(
        request_path=request_path,
        message=message,
        sca=sca,
        key=_data(found[key]),
        used=used_of(found, sca),
        what=what,
    )
    if record:
        claim_signature(docs, uid, used, request_path)


def claim_signature(docs: Documents, uid: str, used: str, request_path: str) -> None:
    """Record that the signature at ``used`` authorised ``request_path``; raises
    `PaymentRejected` (sca_reused) if another request recorded it first."""
    batch = docs.batch()
    batch.create(used, used_record(uid, request_path))
    try:
        batch.commit()
    except AlreadyExists:
        if (_data(docs.get(used)) or {}).get("request") != request_path:  # raced by another request
            raise signature_reused() from None
