"""Strong customer authentication's use cases (fjordbank.service_layer.sca) on the
in-memory ports: the device key's enrolment and the check of a payment's signature (the
standing orders' path; the payment trigger's is in test_edge_use_case)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjordbank.domain import sca as rules
from fjordbank.domain.payments import PaymentRejected
from fjordbank.service_layer import sca
from tests.support.memory import MemoryDocuments
from tests.support.round_trips import RoundTrips

UID = "u1"
KEY = ec.generate_private_key(ec.SECP256R1())
PAYEE, NEW_PAYEE = "97100000036", "15030000010"
ORDER = f"users/{UID}/standingOrders/order-12345678"


@pytest.fixture
def docs() -> RoundTrips:
    return RoundTrips(MemoryDocuments())


def put(docs: RoundTrips, path: str, data: dict) -> None:
    b = docs.docs.batch()
    b.set(path, data)
    b.commit()


def enrolled(docs: RoundTrips) -> RoundTrips:
    sca.register_key(docs, None, UID, key_id="phone-key-1", public_key=rules.public_key_b64(KEY))
    put(docs, f"screeningCustomers/{UID}", {"payees": [PAYEE]})
    docs.reset()
    return docs


# ---- enrolment ---------------------------------------------------------------------------
def test_a_key_is_enrolled_once_in_one_query_and_one_unit_of_work(docs):
    assert (
        sca.register_key(docs, None, UID, key_id="phone-key-1", public_key=rules.public_key_b64(KEY)) == "phone-key-1"
    )
    key = docs.get(f"users/{UID}/scaKeys/phone-key-1")
    assert key.data["keyId"] == "phone-key-1" and key.data["publicKey"] == rules.public_key_b64(KEY)
    assert docs.get(f"scaEnrolments/{UID}").data["keyId"] == "phone-key-1"
    assert docs.counts["RunQuery"] == 1 and docs.counts["BeginTransaction"] == 1
    assert docs.docs.attempts == {sca.REGISTER_KEY: 1}


@pytest.mark.parametrize(
    ("before", "code"),
    [
        ({f"scaEnrolments/{UID}": {"keyId": "phone-key-1"}}, "sca_key_exists"),
        ({f"users/{UID}/scaKeys/older-key-1": {"keyId": "older-key-1"}}, "sca_key_exists"),  # before the marker
        ({f"customers/{UID}": {"status": "approved"}}, "enrolment_closed"),
    ],
    ids=["enrolled", "key-before-the-marker", "applied"],
)
def test_a_second_enrolment_or_one_after_applying_is_refused(docs, before, code):
    for path, data in before.items():
        put(docs, path, data)
    with pytest.raises(rules.ScaRefused) as refused:
        sca.register_key(docs, None, UID, key_id="stolen-key-1", public_key=rules.public_key_b64(KEY))
    assert refused.value.code == code
    assert docs.get(f"users/{UID}/scaKeys/stolen-key-1") is None


def test_the_same_enrolment_retried_after_a_lost_answer_is_answered_as_the_first(docs):
    """The same key id and public key again (the first answer was lost): its key id, even
    once the customer applied; where it was told sca_key_exists, as another device's key
    is, and the web app went on as if enrolled, the tool that enrols stopped for good."""
    public = rules.public_key_b64(KEY)
    assert sca.register_key(docs, None, UID, key_id="phone-key-1", public_key=public) == "phone-key-1"
    assert sca.register_key(docs, None, UID, key_id="phone-key-1", public_key=public) == "phone-key-1"
    put(docs, f"customers/{UID}", {"status": "approved"})
    assert sca.register_key(docs, None, UID, key_id="phone-key-1", public_key=public) == "phone-key-1"
    other = rules.public_key_b64(ec.generate_private_key(ec.SECP256R1()))
    for key_id, key in (("phone-key-1", other), ("web-key-0002", public), ("web-key-0002", other)):
        with pytest.raises(rules.ScaRefused) as refused:
            sca.register_key(docs, None, UID, key_id=key_id, public_key=key)
        assert refused.value.code == "sca_key_exists"
    assert docs.get(f"users/{UID}/scaKeys/phone-key-1").data["publicKey"] == public


def test_a_malformed_key_is_refused_before_any_read(docs):
    with pytest.raises(rules.ScaRefused) as refused:
        sca.register_key(docs, None, UID, key_id="no", public_key=rules.public_key_b64(KEY))
    assert refused.value.code == "invalid_key" and docs.calls == 0


# ---- a payment's signature ---------------------------------------------------------------
def check(docs: RoundTrips, *, amount: int = 12_300, to: str = PAYEE, signed=None, path: str = ORDER, **kw) -> None:
    sca.check_payment(
        docs,
        UID,
        request_path=path,
        request_id=path.rsplit("/", 1)[-1],
        amount=amount,
        currency="NOK",
        to_account=to,
        own_payee=kw.get("own_payee", False),
        sca=signed,
        threshold=rules.DEFAULT_THRESHOLD,
    )


def signature(amount: int = 12_300, to: str = PAYEE, request_id: str = "order-12345678", key=KEY) -> dict:
    return {"keyId": "phone-key-1", "signature": rules.sign(key, rules.challenge(request_id, amount, "NOK", to))}


def test_no_signature_is_needed_for_a_small_payment_to_a_known_or_own_payee(docs):
    enrolled(docs)
    check(docs)
    check(docs, to=NEW_PAYEE, own_payee=True)
    assert docs.counts == {"BatchGetDocuments": 1}  # the payee lookup only when the amount does not decide


@pytest.mark.parametrize(("amount", "to"), [(500_001, PAYEE), (12_300, NEW_PAYEE)], ids=["large", "new-payee"])
def test_a_large_payment_or_a_new_payee_needs_a_signature(docs, amount, to):
    enrolled(docs)
    with pytest.raises(PaymentRejected) as refused:
        check(docs, amount=amount, to=to)
    assert refused.value.code == "sca_required"


def test_a_valid_signature_is_recorded_as_used_in_one_read_and_one_write(docs):
    enrolled(docs)
    signed = signature(500_001)
    check(docs, amount=500_001, signed=signed)
    used = docs.get(sca.used_path(signed))
    assert used.data["request"] == ORDER and used.data["uid"] == UID
    assert docs.counts == {"BatchGetDocuments": 2, "Commit": 1}  # the key and the use in one read
    check(docs, amount=500_001, signed=signed)  # the same request again: no second record


def test_a_signature_used_for_another_request_is_refused(docs):
    enrolled(docs)
    signed = signature()
    check(docs, signed=signed)
    with pytest.raises(PaymentRejected) as refused:
        check(docs, signed=signed, path=f"users/{UID}/standingOrders/order-87654321")
    assert refused.value.code == "sca_reused"


def respelled(signed: dict, *, flip_s: bool = False, pad_bits: bool = False) -> dict:
    """The same signature in another spelling: s -> n - s (ECDSA's own twin), or base64
    with the unused bits of its last character set (it decodes to the same bytes)."""
    raw = base64.b64decode(signed["signature"])
    if flip_s:
        raw = raw[:32] + (rules.P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    text = base64.b64encode(raw).decode()
    if pad_bits:  # 64 bytes: "xy==" ends it, and y carries 4 bits that decode to nothing
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        text = text[:-3] + alphabet[alphabet.index(text[-3]) | 0b1111] + "=="
        assert base64.b64decode(text, validate=True) == raw and text != base64.b64encode(raw).decode()
    return {**signed, "signature": text}


@pytest.mark.parametrize(
    "spelling", [{"flip_s": True}, {"pad_bits": True}, {"flip_s": True, "pad_bits": True}], ids=["s", "bits", "both"]
)
def test_a_signature_spelled_again_is_the_same_signature(docs, spelling):
    """A payment's signature, re-spelled, verifies (the verifier cannot tell) but is the
    signature already used: it cannot also make a standing order of the same id."""
    enrolled(docs)
    signed = signature(500_001)
    check(docs, amount=500_001, signed=signed, path=f"users/{UID}/paymentRequests/order-12345678")
    again = respelled(signed, **spelling)
    assert again["signature"] != signed["signature"]
    assert sca.used_path(again) == sca.used_path(signed)
    with pytest.raises(PaymentRejected) as refused:
        check(docs, amount=500_001, signed=again)
    assert refused.value.code == "sca_reused"


def test_a_use_recorded_under_the_signature_s_text_before_is_still_found(docs):
    """Records made before signatures had an identity are keyed on their text."""
    enrolled(docs)
    signed = signature()
    legacy = f"scaUsed/{hashlib.sha256(signed['signature'].encode()).hexdigest()}"
    put(docs, legacy, sca.used_record(UID, f"users/{UID}/paymentRequests/order-12345678"))
    with pytest.raises(PaymentRejected) as refused:
        check(docs, signed=signed)
    assert refused.value.code == "sca_reused"
    assert docs.get(sca.used_path(signed)) is None


@pytest.mark.parametrize(
    "signed",
    [
        signature(key=ec.generate_private_key(ec.SECP256R1())),
        signature(amount=99_900),
        {**signature(), "keyId": "unknown-key"},
    ],
    ids=["another-key", "other-values", "unregistered-key"],
)
def test_a_signature_that_does_not_match_is_invalid(docs, signed):
    enrolled(docs)
    with pytest.raises(PaymentRejected) as refused:
        check(docs, signed=signed)
    assert refused.value.code == "sca_invalid"
    assert docs.get(sca.used_path(signed)) is None


def test_a_use_recorded_between_the_read_and_the_write_by_another_request_is_refused(docs):
    enrolled(docs)
    signed = signature()
    real_get_many = docs.get_many

    def get_many_then_raced(paths):
        found = real_get_many(paths)
        put(docs, sca.used_path(signed), sca.used_record(UID, f"users/{UID}/standingOrders/order-other-1"))
        return found

    docs.get_many = get_many_then_raced
    with pytest.raises(PaymentRejected) as refused:
        check(docs, signed=signed)
    assert refused.value.code == "sca_reused"


@pytest.mark.parametrize("key", ["MA0wBQYDKgMEAwQAAAAA"], ids=["unknown-algorithm"])
def test_a_key_the_crypto_library_cannot_read_is_an_invalid_key(key):
    with pytest.raises(rules.ScaRefused) as refused:
        rules.parse_public_key(key)
    assert refused.value.code == "invalid_key"


@pytest.mark.parametrize(
    "confirmation",
    [True, "x", {}, {"keyId": "key-00000001", "signature": 5}, {"keyId": "key-00000001", "signature": "\ud800"}],
)
def test_a_confirmation_of_any_other_shape_is_invalid_sca(confirmation):
    from fjordbank.domain.payments import check_sca_shape

    with pytest.raises(PaymentRejected) as refused:
        check_sca_shape(confirmation)
    assert refused.value.code == "invalid_sca"


# A signature whose r or s is out of P-256's range (any 64 bytes the app may send: s all
# ones) was turned into its identity before any verification, and n - s < 0 raised
# OverflowError: the payment trigger failed without a status, a standing order's callable
# answered INTERNAL.
OUT_OF_RANGE = [
    base64.b64encode(b"\x01" * 32 + b"\xff" * 32).decode(),  # s >= n
    base64.b64encode(b"\xff" * 32 + b"\x01" * 32).decode(),  # r >= n
    base64.b64encode(b"\x00" * 32 + b"\x01" * 32).decode(),  # r = 0
    base64.b64encode(b"\x01" * 32 + b"\x00" * 32).decode(),  # s = 0
]


@pytest.mark.parametrize("signature", OUT_OF_RANGE)
def test_a_signature_out_of_the_curves_range_has_no_identity(signature):
    assert rules.signature_identity(signature) is None


@pytest.mark.parametrize("signature", OUT_OF_RANGE)
def test_a_signature_out_of_the_curves_range_is_refused_as_invalid(signature):
    docs = enrolled(RoundTrips(MemoryDocuments()))
    with pytest.raises(PaymentRejected) as refused:
        check(docs, amount=500_001, signed={"keyId": "phone-key-1", "signature": signature})
    assert refused.value.code == "sca_invalid"
