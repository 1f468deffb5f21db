"""The customer's phone for strong customer authentication (SCA).

A P-256 key the phone makes and keeps; its public half is enrolled with the bank
(`enrolment`, what sca_register_key takes; another device of the same customer is
approved by this one, `approve`), and the phone signs exactly the payment it
confirms (`confirm`: the challenge of fjordbank.domain.sca over the request id, amount,
currency and payee), the standing order (`confirm_order`, `confirm_order_change`), or the
card unfrozen or given higher limits (`confirm_card_unfreeze`, `confirm_card_limits`). A
tool that acts as the phone on later runs keeps the key in a directory of its own, readable
by the owner only (`save`, `load`).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clientkit.errors import KitError
from fjordbank.domain import sca
from fjordbank.domain.cards import LIMIT_KINDS


@dataclass
class Device:
    uid: str  # whose phone
    key_id: str
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, uid: str, prefix: str = "device-") -> Device:
        return cls(uid, f"{prefix}{uuid.uuid4().hex[:12]}", ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        return sca.public_key_b64(self.key)

    def enrolment(self) -> dict:
        """The key as the phone enrols it (the sca_register_key callable's data)."""
        return {"keyId": self.key_id, "publicKey": self.public_key}

    def approve(self, other: Device) -> dict:
        """This phone's approval of another device of the same customer: the new key and
        this key's signature over it (the sca_add_device callable's data)."""
        challenge = sca.enrolment_challenge(self.uid, other.key_id, base64.b64decode(other.public_key))
        return {**other.enrolment(), "approval": {"keyId": self.key_id, "signature": sca.sign(self.key, challenge)}}

    def confirm(self, request_id: str, amount: int, currency: str, to_account: str) -> dict:
        """The phone's signature over exactly this payment (arguments in the challenge's order)."""
        return self._signed(sca.challenge(request_id, amount, currency, to_account))

    def confirm_order(
        self,
        order_id: str,
        amount: int,
        currency: str,
        to_account: str,
        frequency: str,
        start_date: str,
        *,
        from_account: str,
        end_date: str | None,
    ) -> dict:
        """The phone's signature over exactly this new standing order: the account it pays
        from and its end date (None: none) too, which the bank checks against the order sent."""
        return self._signed(
            sca.order_challenge(
                order_id,
                amount,
                currency,
                to_account,
                frequency,
                start_date,
                from_account=from_account,
                end_date=end_date,
            )
        )

    def confirm_order_change(
        self, order_id: str, from_amount: int, amount: int, currency: str, to_account: str
    ) -> dict:
        """The phone's signature over a standing order's larger amount (from what it is now)."""
        return self._signed(sca.order_change_challenge(order_id, from_amount, amount, currency, to_account))

    def confirm_card_unfreeze(self, card_id: str) -> dict:
        """The phone's signature to unfreeze the card (the cards_freeze callable's ``sca``)."""
        return self._signed(sca.card_unfreeze_challenge(card_id))

    def confirm_card_limits(self, card_id: str, from_limits: dict, limits: dict) -> dict:
        """The phone's signature over the card's higher limits, from what they are (both
        complete: daily, online, abroad in øre; the cards_limits callable's ``sca``)."""
        kinds = LIMIT_KINDS
        return self._signed(
            sca.card_limits_challenge(card_id, tuple(from_limits[k] for k in kinds), tuple(limits[k] for k in kinds))
        )

    def _signed(self, challenge: bytes) -> dict:
        return {"keyId": self.key_id, "signature": sca.sign(self.key, challenge)}

    def to_json(self) -> dict:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {"uid": self.uid, "keyId": self.key_id, "privateKey": pem}

    @classmethod
    def from_json(cls, data: dict, where: object = "the device") -> Device:
        key = serialization.load_pem_private_key(data["privateKey"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KitError(f"{where} does not hold a P-256 key")
        return cls(data["uid"], data["keyId"], key)

    def save(self, directory: Path) -> Path:
        """Kept as ``directory/{uid}.json``, readable by the owner only (0600), in a
        directory it makes the owner's only (0700). Written to a file of its own made 0600
        and moved over the old one: opening the old one kept its mode, and a key saved over
        a file others could read stayed readable by them (found in review); a save that
        fails half-way leaves the old file whole."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{self.uid}.json"
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.uid}.", suffix=".tmp")  # made 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, directory: Path, uid: str) -> Device | None:
        """The device kept for ``uid``, None if there is none."""
        path = directory / f"{uid}.json"
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()), path)
