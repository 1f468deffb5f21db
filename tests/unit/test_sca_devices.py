"""A customer's devices after onboarding (fjordbank.service_layer.sca): another device added
with an enrolled one's signature, a lost one revoked for good, and, with none left, one
enrolled within the window an operator opened after proving who the customer is."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjordbank import topology
from fjordbank.adapters.push import PushResult
from fjordbank.domain import sca as rules
from fjordbank.domain.events import DeviceChanged
from fjordbank.domain.payments import PaymentRejected
from fjordbank.service_layer import outbox, push, sca
from fjordbank.service_layer import sessions as session_records
from fjordbank.service_layer.sessions import session_path
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import RecordingPublisher

UID = "u1"
PAYEE = "97100000036"
NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)
VALID_AFTER = int(NOW.timestamp())  # when Auth takes the user's tokens again after a sign-out


class Phone:
    def __init__(self, key_id: str) -> None:
        self.key_id, self.key = key_id, ec.generate_private_key(ec.SECP256R1())

    @property
    def public(self) -> str:
        return rules.public_key_b64(self.key)

    def approve(self, other: Phone, uid: str = UID) -> dict:
        der = base64.b64decode(other.public)
        return {
            "keyId": self.key_id,
            "signature": rules.sign(self.key, rules.enrolment_challenge(uid, other.key_id, der)),
        }

    def pay(self, docs, request_id: str = "req-00000001", amount: int = 600_000) -> None:
        signed = {
            "keyId": self.key_id,
            "signature": rules.sign(self.key, rules.challenge(request_id, amount, "NOK", PAYEE)),
        }
        sca.check_payment(
            docs,
            UID,
            request_path=f"users/{UID}/paymentRequests/{request_id}",
            request_id=request_id,
            amount=amount,
            currency="NOK",
            to_account=PAYEE,
            own_payee=False,
            sca=signed,
            threshold=rules.DEFAULT_THRESHOLD,
        )


class Sessions:
    """fjordbank.service_layer.ports.Sessions that keeps whom it signed out; tokens are
    taken again from VALID_AFTER on."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def end_all(self, uid: str) -> int:
        self.ended.append(uid)
        return VALID_AFTER


def put(docs: MemoryDocuments, path: str, data: dict) -> None:
    batch = docs.batch()
    batch.set(path, data)
    batch.commit()


@pytest.fixture
def docs() -> MemoryDocuments:
    return MemoryDocuments()


@pytest.fixture
def phone(docs) -> Phone:
    """A customer approved with one device enrolled at onboarding."""
    first = Phone("phone-key-1")
    sca.register_key(docs, None, UID, key_id=first.key_id, public_key=first.public)
    put(docs, f"customers/{UID}", {"status": "approved"})
    put(docs, f"screeningCustomers/{UID}", {"payees": [PAYEE]})
    return first


def add(docs, new: Phone, approval: dict) -> str:
    return sca.add_device(docs, None, UID, key_id=new.key_id, public_key=new.public, approval=approval)


def refusal(fn, *args, **kw) -> str:
    with pytest.raises((rules.ScaRefused, PaymentRejected)) as refused:
        fn(*args, **kw)
    return refused.value.code


def keys(docs) -> list[str]:
    return sorted(doc.id for doc in docs.query(sca.keys_collection(UID)))


# ---- adding a device -------------------------------------------------------------------------
def test_an_enrolled_device_adds_another_which_then_signs_payments(docs, phone):
    tablet = Phone("tablet-key-1")
    assert add(docs, tablet, phone.approve(tablet)) == "tablet-key-1"
    assert keys(docs) == ["phone-key-1", "tablet-key-1"]
    assert docs.get(f"scaEnrolments/{UID}").data["keys"] == ["phone-key-1", "tablet-key-1"]
    assert docs.get(f"users/{UID}/scaKeys/tablet-key-1").data["approvedBy"] == "phone-key-1"
    tablet.pay(docs)
    # the same approval again (an answer lost): answered as the first, nothing added
    assert add(docs, tablet, phone.approve(tablet)) == "tablet-key-1"
    assert docs.get(f"scaEnrolments/{UID}").data["keys"] == ["phone-key-1", "tablet-key-1"]


def test_an_approval_binds_the_customer_the_key_id_and_the_key_itself(docs, phone):
    tablet, thief = Phone("tablet-key-1"), Phone("thief-key-01")
    approval = phone.approve(tablet)
    # the approval of the tablet's key, sent with the thief's key under the tablet's id
    assert refusal(
        sca.add_device, docs, None, UID, key_id="tablet-key-1", public_key=thief.public, approval=approval
    ) == ("sca_invalid")
    assert refusal(add, docs, Phone("tablet-key-2"), approval) == "sca_invalid"  # another key id
    assert refusal(add, docs, tablet, phone.approve(tablet, uid="someone-else")) == "sca_invalid"
    # a payment's signature is no approval (another text), nor is an unknown key's
    paid = rules.sign(phone.key, rules.challenge("tablet-key-1", 1, "NOK", PAYEE))
    assert refusal(add, docs, tablet, {"keyId": phone.key_id, "signature": paid}) == "sca_invalid"
    assert refusal(add, docs, tablet, thief.approve(tablet) | {"keyId": "thief-key-01"}) == "sca_invalid"
    assert keys(docs) == ["phone-key-1"]


@pytest.mark.parametrize(
    "approval",
    [
        None,
        "sig",
        {"keyId": "phone-key-1"},
        {"keyId": "../x/y/z-abc", "signature": "x"},
        {"keyId": 1, "signature": "x"},
        {"keyId": "phone-key-1", "signature": "ø" * 88},  # not ASCII: base64 raised ValueError, a 5xx
        {"keyId": "phone-key-1", "signature": ["A" * 88]},
        {"keyId": "phone-key-1", "signature": "A" * 201},
    ],
    ids=["none", "text", "no-signature", "path", "number", "not-ascii", "list", "long"],
)
def test_a_malformed_approval_is_refused_before_any_read(docs, phone, approval):
    assert refusal(add, docs, Phone("tablet-key-1"), approval) == "invalid_approval"


def test_a_key_id_in_use_with_another_key_is_refused(docs, phone):
    impostor = Phone("phone-key-1")
    assert refusal(add, docs, impostor, phone.approve(impostor)) == "sca_key_exists"


def test_at_most_five_devices(docs, phone):
    for n in range(2, rules.MAX_DEVICES + 1):
        device = Phone(f"device-key-{n}")
        add(docs, device, phone.approve(device))
    sixth = Phone("device-key-6")
    assert refusal(add, docs, sixth, phone.approve(sixth)) == "too_many_devices"
    sca.revoke_key(docs, None, UID, key_id="device-key-2")
    assert add(docs, sixth, phone.approve(sixth)) == "device-key-6"


def test_a_customer_enrolled_before_devices_were_kept_adds_one(docs):
    """A key enrolled before ``scaEnrolments`` existed (no marker) approves a second."""
    old = Phone("older-key-1")
    put(docs, f"users/{UID}/scaKeys/{old.key_id}", {"keyId": old.key_id, "publicKey": old.public})
    tablet = Phone("tablet-key-1")
    add(docs, tablet, old.approve(tablet))
    assert docs.get(f"scaEnrolments/{UID}").data["keys"] == ["older-key-1", "tablet-key-1"]


# ---- revoking ------------------------------------------------------------------------------------
def test_a_revoked_key_signs_nothing_and_never_comes_back(docs, phone):
    tablet = Phone("tablet-key-1")
    approval = phone.approve(tablet)
    add(docs, tablet, approval)
    assert sca.revoke_key(docs, None, UID, key_id="tablet-key-1") == {
        "keyId": "tablet-key-1",
        "revoked": True,
        "devicesLeft": 1,
        "signedOut": False,
    }
    assert refusal(tablet.pay, docs) == "sca_invalid"
    # the old approval replayed (a copied request): the id is revoked for good
    assert refusal(add, docs, tablet, approval) == "device_key_revoked"
    # revoked again (a retry after a lost answer): the same answer
    assert sca.revoke_key(docs, None, UID, key_id="tablet-key-1")["devicesLeft"] == 1
    phone.pay(docs)
    assert keys(docs) == ["phone-key-1"]
    assert_kept_as_evidence(docs, tablet, "customer")


def assert_kept_as_evidence(docs, device: Phone, by: str) -> None:
    """A revoked key is kept, backend only, with its public key: what the payments it
    confirmed are verified with when one is disputed (revoking deleted the only copy:
    found in review, 2026-12-07)."""
    retired = docs.get(sca.retired_key_path(UID, device.key_id))
    assert retired is not None, device.key_id
    assert (retired.data["keyId"], retired.data["publicKey"], retired.data["revokedBy"]) == (
        device.key_id,
        device.public,
        by,
    )
    assert retired.data["revokedAt"] is not None
    message = rules.challenge("req-00000001", 600_000, "NOK", PAYEE)
    signature = rules.sign(device.key, message)
    assert rules.verify(base64.b64decode(retired.data["publicKey"]), signature, message)


def test_revoking_a_key_that_is_not_the_customers_is_not_found(docs, phone):
    put(docs, "users/u2/scaKeys/others-key-1", {"keyId": "others-key-1", "publicKey": phone.public})
    assert refusal(sca.revoke_key, docs, None, UID, key_id="others-key-1") == "unknown_device_key"
    assert refusal(sca.revoke_key, docs, None, UID, key_id="../u2/scaKeys") == "invalid_key"
    assert docs.get("users/u2/scaKeys/others-key-1") is not None


def test_with_the_last_key_revoked_a_session_alone_cannot_enrol_another(docs, phone):
    sca.revoke_key(docs, None, UID, key_id="phone-key-1")
    assert refusal(phone.pay, docs) == "sca_invalid"
    thief = Phone("thief-key-01")
    assert (
        refusal(sca.register_key, docs, None, UID, key_id=thief.key_id, public_key=thief.public) == "enrolment_closed"
    )
    assert keys(docs) == []


# ---- the bank reopens the enrolment --------------------------------------------------------------
@pytest.fixture
def clocked() -> tuple[MemoryDocuments, list[dt.datetime]]:
    """Documents whose commit time (SERVER_TIME) is the test's clock."""
    now = [NOW]
    return MemoryDocuments(lambda: now[0]), now


def fingerprint(device: Phone) -> str:
    return rules.fingerprint(base64.b64decode(device.public))


def reopen(docs, new: Phone, shown: str | None = None, key_id: str | None = None) -> dict:
    return sca.reopen_enrolment(
        docs,
        None,
        UID,
        operator="op-1",
        reason="BankID at the branch",
        key_id=key_id or new.key_id,
        fingerprint=shown if shown is not None else fingerprint(new).lower().replace("-", " "),
        sessions=Sessions(),
    )


def enrol(docs, device: Phone, at: dt.datetime) -> str:
    return sca.register_key(docs, None, UID, key_id=device.key_id, public_key=device.public, clock=lambda: at)


def test_an_operator_revokes_every_key_and_lets_the_device_shown_enrol_for_thirty_minutes(clocked):
    docs, _now = clocked
    phone = Phone("phone-key-1")
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    put(docs, f"customers/{UID}", {"status": "approved"})
    put(docs, f"screeningCustomers/{UID}", {"payees": [PAYEE]})
    tablet, new = Phone("tablet-key-1"), Phone("new-phone-01")
    add(docs, tablet, phone.approve(tablet))
    answer = reopen(docs, new)
    assert answer == {
        "uid": UID,
        "revoked": ["phone-key-1", "tablet-key-1"],
        "keyId": "new-phone-01",
        "fingerprint": fingerprint(new),
        "minutes": 30,
        "noticePublished": False,  # no NATS here (None): the notice waits in the outbox
        "signedOut": True,
    }
    assert keys(docs) == [] and refusal(phone.pay, docs) == "sca_invalid"
    assert_kept_as_evidence(docs, phone, "bank:op-1")
    assert_kept_as_evidence(docs, tablet, "bank:op-1")
    record = docs.get(f"scaEnrolments/{UID}").data
    assert (record["reopenedBy"], record["reopenedReason"]) == ("op-1", "BankID at the branch")
    assert abs(record["reopenedAt"] - NOW) < dt.timedelta(seconds=1)  # the commit's time, not the operator's
    later = NOW + dt.timedelta(minutes=29)
    # the stolen password's own key, in the window: not the one the operator was shown
    thief = Phone("thief-key-01")
    assert refusal(enrol, docs, thief, later) == "unexpected_device_key"
    impostor = Phone("new-phone-01")  # the id shown, another key
    assert refusal(enrol, docs, impostor, later) == "unexpected_device_key"
    assert enrol(docs, new, later) == new.key_id
    new.pay(docs)
    assert refusal(enrol, docs, thief, later) == "sca_key_exists"
    assert enrol(docs, new, later) == new.key_id  # the same again: answered as the first
    assert {"reopenedAt", "expectedKey"}.isdisjoint(docs.get(f"scaEnrolments/{UID}").data)


def test_after_the_window_the_enrolment_is_refused(clocked):
    docs, _now = clocked
    phone, new = Phone("phone-key-1"), Phone("new-phone-01")
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    put(docs, f"customers/{UID}", {"status": "approved"})
    reopen(docs, new)
    assert refusal(enrol, docs, new, NOW + rules.REOPEN_WINDOW + dt.timedelta(seconds=1)) == "enrolment_closed"
    assert refusal(enrol, docs, new, NOW - dt.timedelta(minutes=1)) == "enrolment_closed"  # before it opened
    assert enrol(docs, new, NOW + dt.timedelta(minutes=1)) == new.key_id


def test_the_bank_reopens_only_for_an_approved_customer_a_reason_and_a_key_it_was_shown(docs, phone):
    new = Phone("new-phone-01")
    assert refusal(
        sca.reopen_enrolment,
        docs,
        None,
        UID,
        operator="o",
        reason=" ",
        key_id=new.key_id,
        fingerprint="x",
        sessions=Sessions(),
    ) == ("invalid_reason")
    for shown in ("", "ABCD", "GGGG-0000-0000-0000", "A" * 50, None, 7):
        assert refusal(
            sca.reopen_enrolment,
            docs,
            None,
            UID,
            operator="o",
            reason="BankID",
            key_id=new.key_id,
            fingerprint=shown,
            sessions=Sessions(),
        ) == ("invalid_fingerprint"), shown
    assert refusal(reopen, docs, new, key_id="../x/y") == "invalid_key"
    assert refusal(
        sca.reopen_enrolment,
        docs,
        None,
        "nobody",
        operator="o",
        reason="BankID",
        key_id=new.key_id,
        fingerprint=fingerprint(new),
        sessions=Sessions(),
    ) == ("unknown_customer")
    sca.revoke_key(docs, None, UID, key_id="phone-key-1")
    assert refusal(reopen, docs, Phone("phone-key-1")) == "device_key_revoked"  # the lost phone's id


def test_a_reason_firestore_cannot_store_is_refused_before_the_customer_is_signed_out(docs, phone):
    """The reason was only length-checked: a lone surrogate passed, the customer's sessions
    were ended, then the Firestore write failed (UnicodeEncodeError), and the operator was
    answered INTERNAL with the customer signed out and nothing recorded (found in review).
    It is checked first, as an operator's decision on an application is."""
    new, sessions = Phone("new-phone-01"), Sessions()
    for reason in ("BankID \ud800", "\ud800\ud800\ud800", "BankID\x00 at the branch", "BankID\nat the branch"):
        assert refusal(
            sca.reopen_enrolment,
            docs,
            None,
            UID,
            operator="op-1",
            reason=reason,
            key_id=new.key_id,
            fingerprint=fingerprint(new),
            sessions=sessions,
        ) == ("invalid_reason"), repr(reason)
    assert sessions.ended == [] and keys(docs) == ["phone-key-1"]
    assert docs.get(f"scaEnrolments/{UID}") is None or "reopenedAt" not in docs.get(f"scaEnrolments/{UID}").data


def test_an_operator_does_not_reopen_their_own_enrolment(docs, phone):
    """Four eyes: an operator who is also a customer could let a device of their choosing
    into their own account (found in review). Another operator may."""
    new, sessions = Phone("new-phone-01"), Sessions()
    shown = {"reason": "BankID at the branch", "key_id": new.key_id, "fingerprint": fingerprint(new)}
    own = refusal(sca.reopen_enrolment, docs, None, UID, operator=UID, **shown, sessions=sessions)
    assert own == "four_eyes"
    assert sessions.ended == [] and keys(docs) == ["phone-key-1"]
    assert sca.reopen_enrolment(docs, None, UID, operator="op-1", **shown, sessions=sessions)["revoked"] == [
        "phone-key-1"
    ]


def test_a_fingerprint_is_read_as_an_operator_types_it():
    printed = rules.fingerprint(b"key")
    assert rules.FINGERPRINT.fullmatch(printed)
    for typed in (printed, printed.lower(), printed.replace("-", ""), printed.replace("-", " ")):
        assert rules.read_fingerprint(typed) == printed


def test_an_enrolment_record_from_before_revocations_reads_as_its_one_key():
    assert rules.Enrolment.of({"keyId": "phone-key-1"}) == rules.Enrolment(("phone-key-1",), frozenset())
    assert rules.Enrolment.of(None) is None
    assert not rules.Enrolment((), frozenset()).is_open(NOW)


def test_a_signature_that_is_not_ascii_is_no_signature():
    assert rules.verify(base64.b64decode(Phone("phone-key-1").public), "ø" * 88, b"x") is False


# ---- the customer is told of every change to their devices -----------------------------------
def reset_for(docs, pub, new: Phone, sessions: Sessions | None = None) -> dict:
    """The bank's reset for ``new``, as an operator makes it after BankID."""
    return sca.reopen_enrolment(
        docs,
        pub,
        UID,
        operator="op-1",
        reason="BankID",
        key_id=new.key_id,
        fingerprint=fingerprint(new),
        sessions=sessions or Sessions(),
    )


def test_every_change_to_the_devices_is_announced_once_and_the_first_key_is_not(clocked):
    docs, _now = clocked
    pub = RecordingPublisher()
    phone, tablet, new = Phone("phone-key-1"), Phone("tablet-key-1"), Phone("new-phone-01")
    sca.register_key(docs, pub, UID, key_id=phone.key_id, public_key=phone.public)  # onboarding
    put(docs, f"customers/{UID}", {"status": "approved"})
    assert pub.stored == []
    sca.add_device(docs, pub, UID, key_id=tablet.key_id, public_key=tablet.public, approval=phone.approve(tablet))
    sca.add_device(docs, pub, UID, key_id=tablet.key_id, public_key=tablet.public, approval=phone.approve(tablet))
    sca.revoke_key(docs, pub, UID, key_id=tablet.key_id)
    sca.revoke_key(docs, pub, UID, key_id=tablet.key_id)  # a retry after a lost answer
    reset_for(docs, pub, new)
    sca.register_key(
        docs, pub, UID, key_id=new.key_id, public_key=new.public, clock=lambda: NOW + dt.timedelta(minutes=1)
    )
    told = [(b["change"], b["key_id"], b["approved_by"]) for b in pub.on(topology.SUBJECT_DEVICE_CHANGED)]
    assert told == [
        ("added", "tablet-key-1", "phone-key-1"),
        ("revoked", "tablet-key-1", None),
        ("reset", "new-phone-01", None),
        ("enrolled", "new-phone-01", None),
    ]
    assert all(DeviceChanged.from_json(p.body).uid == UID for p in pub.stored)
    assert docs.query(outbox.OUTBOX) == []  # published, so taken off the outbox
    # the bank resets again (for another new key: one enrolled now is refused): a second
    # notice, not the first again
    again = reset_for(docs, pub, Phone("new-phone-02"))
    assert again["noticePublished"] is True
    resets = [b for b in pub.on(topology.SUBJECT_DEVICE_CHANGED) if b["change"] == "reset"]
    assert len(resets) == 2 and resets[0]["changed_at"] != resets[1]["changed_at"]


def test_a_change_nats_did_not_take_stands_and_its_notice_waits_in_the_outbox(docs, phone):
    tablet, pub = Phone("tablet-key-1"), RecordingPublisher(down=True)
    sca.add_device(docs, pub, UID, key_id=tablet.key_id, public_key=tablet.public, approval=phone.approve(tablet))
    assert keys(docs) == ["phone-key-1", "tablet-key-1"]
    [waiting] = docs.query(outbox.OUTBOX)
    assert (waiting.data["subject"], waiting.data["body"]["change"]) == (topology.SUBJECT_DEVICE_CHANGED, "added")
    refused = RecordingPublisher()
    assert refusal(sca.revoke_key, docs, refused, UID, key_id="nobodys-key") == "unknown_device_key"
    assert refused.attempts == 0 and len(docs.query(outbox.OUTBOX)) == 1  # a refusal announces nothing


# ---- a lost phone's session ----------------------------------------------------------------
def test_a_lost_phone_removed_with_sign_out_ends_every_session_and_a_retry_does_it_again(docs, phone):
    tablet, sessions = Phone("tablet-key-1"), Sessions()
    add(docs, tablet, phone.approve(tablet))
    kept = sca.revoke_key(docs, None, UID, key_id=tablet.key_id)  # replaced: the sessions stay
    assert (kept["signedOut"], sessions.ended) == (False, [])
    assert docs.get(session_path(UID)) is None  # no session ended: no record, every token taken
    lost = Phone("phone-key-2")
    add(docs, lost, phone.approve(lost))
    answer = sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=sessions)
    assert answer == {"keyId": lost.key_id, "revoked": True, "devicesLeft": 1, "signedOut": True}
    assert sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=sessions)["revoked"]
    assert sessions.ended == [UID, UID]  # the retry of an answer lost (or of a failed sign-out)
    # the tokens signed in before the sign-out are refused at once (the rules and callables read this)
    record = docs.get(session_path(UID)).data  # type: ignore[union-attr]
    assert record["validAfter"] == VALID_AFTER
    assert session_records.ended(record, VALID_AFTER - 1) and not session_records.ended(record, VALID_AFTER)
    with pytest.raises(session_records.SessionEnded) as refused:
        session_records.check(docs, UID, VALID_AFTER - 3600)
    assert refused.value.valid_after == VALID_AFTER  # the app keeps a session signed in since
    session_records.check(docs, UID, VALID_AFTER + 5)  # signed in again: taken
    for wrong in ("yes", 1, None):
        assert refusal(sca.revoke_key, docs, None, UID, key_id=phone.key_id, sign_out=wrong, sessions=sessions) == (
            "invalid_request"
        )
    assert keys(docs) == ["phone-key-1"]  # a refused request revoked nothing


def test_the_banks_reset_signs_the_customer_out_everywhere(clocked):
    docs, _now = clocked
    phone, new, sessions = Phone("phone-key-1"), Phone("new-phone-01"), Sessions()
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    put(docs, f"customers/{UID}", {"status": "approved"})
    put(docs, push.settings_path(UID), PUSH_SETTINGS)
    answer = reset_for(docs, None, new, sessions)
    assert (answer["signedOut"], sessions.ended) == (True, [UID])
    assert docs.get(session_path(UID)).data["validAfter"] == VALID_AFTER  # type: ignore[union-attr]
    assert docs.get(push.settings_path(UID)).data == SIGNED_OUT  # type: ignore[union-attr]


# the customer's push settings: a preference and two devices, the lost phone's and the tablet's
PUSH_SETTINGS = {
    "marketing": True,
    "devices": {
        "lost-phone": {"token": "tok-lost", "platform": "ios"},
        "tablet": {"token": "tok-tab", "platform": "web"},
    },
    "changed": "tablet",
}
# after the bank ended the sessions: the devices get the security notices only
SIGNED_OUT = {
    "marketing": True,
    "signedOutDevices": {k: {**v, "signedOutAt": VALID_AFTER} for k, v in PUSH_SETTINGS["devices"].items()},
}


def test_a_lost_phone_removed_with_sign_out_gets_no_push_but_the_security_notices(docs, phone):
    """Ending the sessions takes every device off the pushes in the same commit (the lost
    phone's session can no longer write its registration away, and the app's forced
    sign-out does not): found in review, 2026-12-06. They keep getting the security
    notices, the one of this very change first (a stranger with the password who removed
    the customer's phone must not go unseen). The preferences stay; a device signed in
    again registers itself again, and gets every push. A revoke without sign-out leaves
    the devices alone."""
    lost = Phone("phone-key-2")
    add(docs, lost, phone.approve(lost))
    put(docs, push.settings_path(UID), PUSH_SETTINGS)
    sca.revoke_key(docs, None, UID, key_id=phone.key_id)  # a replaced phone: nobody signed out
    assert docs.get(push.settings_path(UID)).data == PUSH_SETTINGS  # type: ignore[union-attr]

    sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=Sessions())
    assert docs.get(push.settings_path(UID)).data == SIGNED_OUT  # type: ignore[union-attr]
    sender = RecordingSender()
    assert push.deliver_batch(docs, sender, pushes("payments")) == {push.NO_DEVICES: 1} and sender.sent == []
    assert push.deliver_batch(docs, sender, pushes("security")) == {push.SENT: 1}
    assert sorted(sender.sent) == ["tok-lost", "tok-tab"]

    # the tablet signs in again and registers (as the app writes: a merge of its one entry)
    settings_write(docs, {"devices": {"tablet": PUSH_SETTINGS["devices"]["tablet"]}, "changed": "tablet"})
    sender.sent.clear()
    assert push.deliver_batch(docs, sender, pushes("payments")) == {push.SENT: 1} and sender.sent == ["tok-tab"]
    sender.sent.clear()
    push.deliver_batch(docs, sender, pushes("security"))
    assert sorted(sender.sent) == ["tok-lost", "tok-tab"]  # the tablet's token once


def pushes(kind: str) -> dict:
    return {"pushes": [{"uid": UID, "kind": kind, "dedupeKey": f"p1:{kind}", "title": "t", "body": "b"}]}


def settings_write(docs, data: dict) -> None:
    batch = docs.batch()
    batch.set(push.settings_path(UID), data, merge=True)
    batch.commit()


def test_a_device_the_bank_signed_out_that_fcm_no_longer_knows_is_removed_from_its_map(docs, phone):
    lost = Phone("phone-key-2")
    add(docs, lost, phone.approve(lost))
    put(docs, push.settings_path(UID), PUSH_SETTINGS)
    sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=Sessions())
    sender = RecordingSender(unregistered={"tok-lost"})
    assert push.deliver_batch(docs, sender, pushes("security")) == {push.SENT: 1}
    kept = docs.get(push.settings_path(UID)).data["signedOutDevices"]  # type: ignore[union-attr]
    assert kept == {"tablet": SIGNED_OUT["signedOutDevices"]["tablet"]}


def test_a_customer_signed_out_everywhere_without_push_settings_gets_none_made_up(docs, phone):
    lost = Phone("phone-key-2")
    add(docs, lost, phone.approve(lost))
    sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=Sessions())
    assert push.chosen(docs.get(push.settings_path(UID))) == push.chosen(None)  # the defaults, as before


class RecordingSender:
    def __init__(self, unregistered: set[str] | None = None) -> None:
        self.sent: list[str] = []
        self.unregistered = unregistered or set()

    def send(self, token, *, title, body, data, collapse_id=None):
        self.sent.append(token)
        if token in self.unregistered:
            return PushResult(token, ok=False, error="404", code="UNREGISTERED", unregistered=True)
        return PushResult(token, ok=True, message_id="m")


class Failing(Sessions):
    def end_all(self, uid: str) -> int:
        raise ConnectionError("Auth did not answer")


def test_when_the_sessions_cannot_be_ended_nothing_is_removed_or_reset_and_a_retry_does_it_all(clocked):
    docs, _now = clocked
    phone, lost, new = Phone("phone-key-1"), Phone("phone-key-2"), Phone("new-phone-01")
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    put(docs, f"customers/{UID}", {"status": "approved"})
    add(docs, lost, phone.approve(lost))
    pub = RecordingPublisher()
    with pytest.raises(ConnectionError):
        sca.revoke_key(docs, pub, UID, key_id=lost.key_id, sign_out=True, sessions=Failing())
    assert keys(docs) == ["phone-key-1", "phone-key-2"] and pub.stored == []  # still listed, to try again
    sessions = Sessions()
    assert sca.revoke_key(docs, pub, UID, key_id=lost.key_id, sign_out=True, sessions=sessions)["signedOut"]
    assert (keys(docs), sessions.ended) == (["phone-key-1"], [UID])
    shown = {"operator": "op-1", "reason": "BankID", "key_id": new.key_id, "fingerprint": fingerprint(new)}
    with pytest.raises(ConnectionError):
        sca.reopen_enrolment(docs, pub, UID, **shown, sessions=Failing())
    assert keys(docs) == ["phone-key-1"] and "reopenedAt" not in docs.get(f"scaEnrolments/{UID}").data
    # a removal or a reset the bank may not make ends nobody's sessions
    assert refusal(sca.revoke_key, docs, pub, UID, key_id="nobodys-key", sign_out=True, sessions=sessions) == (
        "unknown_device_key"
    )
    assert refusal(sca.reopen_enrolment, docs, pub, "nobody", **shown, sessions=sessions) == "unknown_customer"
    assert sessions.ended == [UID]
    sca.reopen_enrolment(docs, pub, UID, **shown, sessions=sessions)
    assert sessions.ended == [UID, UID] and keys(docs) == []
    assert [b["change"] for b in pub.on(topology.SUBJECT_DEVICE_CHANGED)] == ["revoked", "reset"]


class Ending(Sessions):
    """Sessions ended at the times given, one per call (Auth's tokensValidAfterTime)."""

    def __init__(self, *times: int) -> None:
        super().__init__()
        self.times = list(times)

    def end_all(self, uid: str) -> int:
        self.ended.append(uid)
        return self.times.pop(0)


def test_a_sign_out_that_commits_after_a_later_reset_never_moves_the_end_back(clocked):
    """The customer's sign-out ended the sessions at 1 000 and the bank's reset at 2 000;
    the sign-out's commit comes last: tokens signed in before 2 000 stay refused."""
    docs, _now = clocked
    phone, lost, new = Phone("phone-key-1"), Phone("phone-key-2"), Phone("new-phone-01")
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    add(docs, lost, phone.approve(lost))
    put(docs, f"customers/{UID}", {"status": "approved"})
    reset_for(docs, None, new, Ending(2_000))
    assert docs.get(session_path(UID)).data["validAfter"] == 2_000  # type: ignore[union-attr]
    answer = sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=Ending(1_000))
    assert answer["revoked"] and docs.get(session_path(UID)).data["validAfter"] == 2_000  # type: ignore[union-attr]
    with pytest.raises(session_records.SessionEnded):
        session_records.check(docs, UID, 1_500)
    sca.revoke_key(docs, None, UID, key_id=phone.key_id, sign_out=True, sessions=Ending(3_000))
    assert docs.get(session_path(UID)).data["validAfter"] == 3_000  # type: ignore[union-attr]  # a later end


@pytest.mark.parametrize(
    ("record", "auth_time", "ended"),
    [
        (None, 0, False),  # never ended by the bank
        ({"validAfter": 100}, 99, True),
        ({"validAfter": 100}, 100, False),  # the second of the end: as Auth takes it
        ({"validAfter": 100}, None, True),  # no claim: signed in at 0
        ({"validAfter": 100.0}, 150, False),  # a number is a number
        ({"endedAt": "x"}, 10**10, True),  # no usable time: every session ended (as the rules fail)
        ({"validAfter": "100"}, 10**10, True),
        ({"validAfter": True}, 10**10, True),
    ],
)
def test_a_session_record_is_read_as_the_rules_read_it_and_a_bad_one_fails_closed(record, auth_time, ended):
    assert session_records.ended(record, auth_time) is ended


def test_the_bank_does_not_reopen_for_a_key_the_customer_has_enrolled_now(docs, phone):
    """The device shown to the operator still held its enrolled key (the web app keeps its
    key): the reset answered success, revoked that very key in the same commit, ended every
    session, and the one enrolment its window allowed was then refused device_key_revoked."""
    before = keys(docs)
    assert refusal(reopen, docs, phone) == "device_key_enrolled"
    assert keys(docs) == before  # nothing revoked, nobody signed out
    fresh = Phone("phone-key-2")
    assert reopen(docs, fresh)["keyId"] == "phone-key-2"  # a new key on the same device


def test_a_second_end_before_any_device_registers_again_keeps_the_devices_on_the_security_notices(clocked):
    """A sign-out, then the bank's reset before any device signed in again: the second end
    found no device signed in and dropped those signed out, so the reset's own notice
    reached nobody (found in review of the signed-out devices)."""
    docs, _now = clocked
    phone, lost, new = Phone("phone-key-1"), Phone("phone-key-2"), Phone("new-phone-01")
    sca.register_key(docs, None, UID, key_id=phone.key_id, public_key=phone.public)
    add(docs, lost, phone.approve(lost))
    put(docs, f"customers/{UID}", {"status": "approved"})
    put(docs, push.settings_path(UID), PUSH_SETTINGS)
    sca.revoke_key(docs, None, UID, key_id=lost.key_id, sign_out=True, sessions=Ending(VALID_AFTER))
    reset_for(docs, None, new, Ending(VALID_AFTER + 30))
    assert docs.get(push.settings_path(UID)).data == SIGNED_OUT  # type: ignore[union-attr]
    # a device signed in again in between is signed out with the others
    settings_write(docs, {"devices": {"laptop": {"token": "tok-laptop", "platform": "web"}}, "changed": "laptop"})
    sca.revoke_key(docs, None, UID, key_id=phone.key_id, sign_out=True, sessions=Ending(VALID_AFTER + 60))
    kept = docs.get(push.settings_path(UID)).data[push.SIGNED_OUT_DEVICES]  # type: ignore[union-attr]
    assert set(kept) == {"lost-phone", "tablet", "laptop"}


def test_past_its_bound_the_devices_signed_out_last_are_kept_whatever_their_names(monkeypatch):
    """Firestore keeps a map's keys sorted: the order the devices were written in is gone
    when it is read back, so the bound keeps the newest by their signedOutAt (found in
    review: it kept the first end's z-devices over the second end's a-devices)."""
    monkeypatch.setattr(session_records, "MAX_SIGNED_OUT_DEVICES", 2)
    first = session_records.signed_out_devices({}, {"zeta": {"token": "t-z"}, "yak": {"token": "t-y"}}, ended=100)
    sorted_back = dict(sorted(first.items()))  # as Firestore gives it back
    second = session_records.signed_out_devices(sorted_back, {"alpha": {"token": "t-a"}}, ended=200)
    assert set(second) == {"alpha", "zeta"} and second["alpha"]["signedOutAt"] == 200
