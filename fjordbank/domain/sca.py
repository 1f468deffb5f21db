"""Strong customer authentication for payments, free of I/O (PSD2 RTS, dynamic linking).

A device registers an ECDSA P-256 public key (SubjectPublicKeyInfo DER, base64 — what
WebCrypto's ``exportKey("spki")`` and the platforms' keystores give). A payment to a new
payee or above the threshold must carry a signature by that key over exactly what the
customer approved: the request id, the amount, the currency and the payee. A signature
over other values, by another key, copied to another request or missing is refused, and so
is one spelled again (`signature_identity`: s -> n - s, other base64 bits) for another.
Unfreezing a card and raising its limits are confirmed the same way (PSD2 art. 97(1)(c):
an action through a remote channel that may imply a risk of fraud): a session alone (a
stolen password) could unfreeze a card its owner froze as lost and raise what it may
spend.
The signature is IEEE P1363 (r || s, 64 bytes, base64), WebCrypto's ECDSA format.

A customer keeps up to `MAX_DEVICES` keys (`Enrolment`): the first is enrolled at
onboarding; another device is added with a signature of an enrolled key over the new key
(`enrolment_challenge`, a text no payment's challenge can be); a key is revoked for good (a
lost phone), and its id is never enrolled again, so an old approval cannot bring it back.
A customer with no device left is let enrol one by an operator who proved who they are:
for `REOPEN_WINDOW`, and only the key whose id and `fingerprint` the customer's new device
showed the operator (a window open to any key was a window for whoever held the stolen
password too).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fjordbank.domain.errors import Refused

DEFAULT_THRESHOLD = 500_000  # øre: payments above 5 000 kr need SCA
KEY_ID = re.compile(r"^(?!__.*__$)[A-Za-z0-9_-]{8,64}$")
MAX_KEY_B64 = 256
SIGNATURE_BYTES = 64
MAX_DEVICES = 5  # device keys a customer holds at once
REOPEN_WINDOW = dt.timedelta(minutes=30)  # an operator's reopening lets one device enrol this long


class ScaRefused(Refused):
    """``code``: sca_required | sca_invalid | sca_reused | invalid_key | sca_key_exists |
    enrolment_closed | too_many_devices | device_key_revoked | unknown_device_key."""

    code = "sca_refused"


def enrolment_challenge(uid: str, key_id: str, public_key_der: bytes) -> bytes:
    """What an enrolled device signs to add another: this customer, the new key's id and a
    digest of the key itself (a signature for one key never enrols another)."""
    return f"fjordbank-sca-enrol-v1|{uid}|{key_id}|{hashlib.sha256(public_key_der).hexdigest()}".encode()


FINGERPRINT = re.compile(r"^[0-9A-F]{4}(-[0-9A-F]{4}){3}$")


def fingerprint(public_key_der: bytes) -> str:
    """What a device shows of its key for a person to compare: the first 64 bits of the
    key's SHA-256, as four groups of four hex digits ("3F2A-09C1-77DE-B410"). Making
    another P-256 key with the same fingerprint takes about 2^64 tries."""
    digest = hashlib.sha256(public_key_der).hexdigest()[:16].upper()
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def read_fingerprint(text: object) -> str | None:
    """A fingerprint as an operator typed it (any case, dashes or spaces or none), None
    when it is not one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    digits = "".join(c for c in text.upper() if c not in "- ")
    grouped = "-".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return grouped if FINGERPRINT.fullmatch(grouped) else None


@dataclass(frozen=True)
class Enrolment:
    """A customer's devices as ``scaEnrolments/{uid}`` keeps them: the keys enrolled now,
    the ids revoked for good and, after an operator's reopening, when it was reopened and
    for which key (its id and fingerprint). A record from before devices were added and
    revoked has only ``keyId``: its one key."""

    keys: tuple[str, ...]
    revoked: frozenset[str]
    reopened_at: dt.datetime | None = None
    expected: tuple[str, str] | None = None  # (key id, fingerprint) the operator was shown

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> Enrolment | None:
        if data is None:
            return None
        keys = data.get("keys")
        if not isinstance(keys, list):
            keys = [data["keyId"]] if isinstance(data.get("keyId"), str) else []
        at, expected = data.get("reopenedAt"), data.get("expectedKey")
        return cls(
            tuple(keys),
            frozenset(data.get("revoked") or ()),
            at if isinstance(at, dt.datetime) and isinstance(expected, dict) else None,
            (expected["keyId"], expected["fingerprint"]) if isinstance(expected, dict) else None,
        )

    def is_open(self, now: dt.datetime) -> bool:
        """Reopened within `REOPEN_WINDOW` of ``now`` (the server's clock, both)."""
        return self.reopened_at is not None and self.reopened_at <= now < self.reopened_at + REOPEN_WINDOW

    def may_enrol(self, key_id: str, public_key_der: bytes, now: dt.datetime) -> bool:
        """Whether the reopening lets this very key enrol now."""
        return self.is_open(now) and self.expected == (key_id, fingerprint(public_key_der))

    def may_add(self, key_id: str) -> None:
        """Raises ScaRefused unless ``key_id`` may join these keys."""
        if key_id in self.revoked:
            raise ScaRefused("device_key_revoked", "this device key was revoked; make a new one")
        if len(self.keys) >= MAX_DEVICES:
            raise ScaRefused("too_many_devices", f"at most {MAX_DEVICES} devices; remove one first")


def challenge(request_id: str, amount: int, currency: str, to_account: str) -> bytes:
    """The exact bytes the device signs for a payment: what the customer sees and approves."""
    return f"fjordbank-sca-v1|{request_id}|{amount}|{currency}|{to_account}".encode()


# Each kind of confirmation signs under a tag of its own, so that one never stands for
# another: a payment's (whose id the app makes, and any order id may equal) made a weekly
# standing order of the same id and terms, and a standing order's made a payment.
def order_challenge(
    order_id: str,
    amount: int,
    currency: str,
    to_account: str,
    frequency: str,
    start_date: str,
    *,
    from_account: str,
    end_date: str | None,
) -> bytes:
    """What the device signs for a new standing order: its payment from which account, how
    often, from when and until when ("" for no end date), as
    ``fjordbank-sca-order-v2|orderId|amount|currency|fromAccount|toAccount|frequency|startDate|endDate``.
    The first version signed neither the end date nor the from-account, and the order is
    tied to its confirmation by its id only: a confirmation of "6 000 kr monthly until June"
    made an order with no end date, or one paid from another of the customer's accounts
    (found in review, 2026-12-06). A v1 signature no longer verifies (sca_invalid): the
    reference clients sign this version. The two new values are named at each call, as an
    account number in the place of the other would still be a valid text."""
    end = end_date or ""
    return (
        f"fjordbank-sca-order-v2|{order_id}|{amount}|{currency}|{from_account}|{to_account}|"
        f"{frequency}|{start_date}|{end}"
    ).encode()


def order_change_challenge(order_id: str, from_amount: int, amount: int, currency: str, to_account: str) -> bytes:
    """What the device signs for a standing order's larger amount: from what it is, to what
    (a confirmed raise replayed after the amount changed raises nothing)."""
    return f"fjordbank-sca-order-change-v1|{order_id}|{from_amount}|{amount}|{currency}|{to_account}".encode()


def order_schedule_challenge(
    order_id: str,
    from_amount: int,
    amount: int,
    currency: str,
    to_account: str,
    schedule: tuple[str, str, str | None, str | None],
) -> bytes:
    """What the device signs for a standing order that is to pay sooner or for longer (an
    earlier next due date, a later end date or none): the order's payment from what to
    what, and ``schedule`` (next due from, to; end date from, to; "" for no end date). A
    session alone moved a confirmed 15 000 kr order's next date to tomorrow, day after day,
    or took its end date away (found in review, 2026-12-06)."""
    from_next, next_due, from_end, end = schedule
    dates = f"{from_next}|{next_due}|{from_end or ''}|{end or ''}"
    return f"fjordbank-sca-order-schedule-v1|{order_id}|{from_amount}|{amount}|{currency}|{to_account}|{dates}".encode()


def card_unfreeze_challenge(card_id: str) -> bytes:
    """What the device signs to unfreeze a card: ``fjordbank-sca-card-unfreeze-v1|cardId``.
    The same card frozen and unfrozen again signs the same text: the signature's record of
    use names the card's version it unfroze, so a confirmation is good for one unfreezing
    (fjordbank.service_layer.cards)."""
    return f"fjordbank-sca-card-unfreeze-v1|{card_id}".encode()


def card_limits_challenge(card_id: str, from_limits: tuple[int, ...], limits: tuple[int, ...]) -> bytes:
    """What the device signs for a card's higher limits: from what they are to what, each
    as daily|online|abroad in øre (fjordbank.domain.cards.LIMIT_KINDS), as
    ``fjordbank-sca-card-limits-v1|cardId|daily|online|abroad|daily|online|abroad``."""
    values = "|".join(str(v) for v in (*from_limits, *limits))
    return f"fjordbank-sca-card-limits-v1|{card_id}|{values}".encode()


def required(amount: int, *, new_payee: bool, threshold: int = DEFAULT_THRESHOLD) -> bool:
    return new_payee or amount > threshold


def parse_public_key(text: object) -> bytes:
    """The DER of a P-256 public key given as base64 SPKI; raises ScaRefused(invalid_key)."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_KEY_B64:
        raise ScaRefused("invalid_key", "publicKey must be a base64 SubjectPublicKeyInfo")
    try:
        der = base64.b64decode(text, validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:  # an algorithm or curve it cannot read
        raise ScaRefused("invalid_key", "publicKey is not a valid public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ScaRefused("invalid_key", "publicKey must be an ECDSA P-256 key")
    return der


def verify(public_key_der: bytes, signature_b64: object, message: bytes) -> bool:
    if not isinstance(signature_b64, str) or len(signature_b64) > 200:
        return False
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key = serialization.load_der_public_key(public_key_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        # parse_public_key only stores P-256 keys: anything else is corrupted data, not a bad signature
        raise TypeError(f"the stored SCA key is no ECDSA key but {type(key).__name__}")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# The order of P-256's group: (r, s) and (r, n - s) are the same signature to the verifier.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signature_identity(signature_b64: str) -> bytes | None:
    """What makes a signature the same signature: r and the lower of s and n - s, as bytes,
    whatever base64 spelling carried them (None: not a signature's shape). ECDSA lets anyone
    turn a signature into a second valid one (s -> n - s), and base64 lets the unused bits
    of its last character vary: a record of use keyed on the text would miss both."""
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != SIGNATURE_BYTES:
        return None
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):  # never a valid signature (verify refuses it too)
        return None
    return r.to_bytes(32, "big") + min(s, P256_ORDER - s).to_bytes(32, "big")


def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    """What the device does (for tests, the reference app's Python peers and tools)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()


def public_key_b64(private_key: ec.EllipticCurvePrivateKey) -> str:
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()
