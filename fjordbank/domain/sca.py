"""Strong customer authentication for payments, free of I/O (PSD2 RTS, dynamic linking).

A device registers an ECDSA P-256 public key (SubjectPublicKeyInfo DER, base64 — what
WebCrypto's ``exportKey("spki")`` and the platforms' keystores give). A payment to a new
payee or above the threshold must carry a signature by that key over exactly what the
customer approved: the request id, the amount, the currency and the payee. A signature
over other values, by another key, copied to another request or missing is refused, and so
is one spelled again (`signature_identity`: s -> n - s, other base64 bits) for another.
The signature is IEEE P1363 (r || s, 64 bytes, base64), WebCrypto's ECDSA format.

A customer keeps up to `MAX_DEVICES` keys (`Enrolment`): the first is enrolled at
onboarding; another device is added with a signature of an enrolled key over the new key
(`enrolment_challenge`, a text no payment's challenge can be); a key is revoked for good (a
lost phone), and its id is never enrolled again, so an old approval cannot bring it back.
A customer with no device left is let enrol one by an operator who proved who they are
(`REOPEN_WINDOW`).
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
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
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


@dataclass(frozen=True)
class Enrolment:
    """A customer's devices as ``scaEnrolments/{uid}`` keeps them: the keys enrolled now,
    the ids revoked for good and, after an operator's reopening, until when one device may
    enrol without another's signature. A record from before devices were added and revoked
    has only ``keyId``: its one key."""

    keys: tuple[str, ...]
    revoked: frozenset[str]
    open_until: dt.datetime | None

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> Enrolment | None:
        if data is None:
            return None
        keys = data.get("keys")
        if not isinstance(keys, list):
            keys = [data["keyId"]] if isinstance(data.get("keyId"), str) else []
        until = data.get("openUntil")
        return cls(tuple(keys), frozenset(data.get("revoked") or ()), until if isinstance(until, dt.datetime) else None)

    def is_open(self, now: dt.datetime) -> bool:
        return self.open_until is not None and now < self.open_until

    def may_add(self, key_id: str) -> None:
        """Raises ScaRefused unless ``key_id`` may join these keys."""
        if key_id in self.revoked:
            raise ScaRefused("device_key_revoked", "this device key was revoked; make a new one")
        if len(self.keys) >= MAX_DEVICES:
            raise ScaRefused("too_many_devices", f"at most {MAX_DEVICES} devices; remove one first")


def challenge(request_id: str, amount: int, currency: str, to_account: str) -> bytes:
    """The exact bytes the device signs: what the customer sees and approves."""
    return f"fjordbank-sca-v1|{request_id}|{amount}|{currency}|{to_account}".encode()


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
    except binascii.Error:
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
