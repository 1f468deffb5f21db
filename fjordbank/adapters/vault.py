"""The card vault: the only place a full card number lives.

A Firestore database of its own (``FJB_VAULT_DATABASE``, default ``card-vault``), which only
the card service's identity can reach (IAM, terraform/modules/card_vault) and no client
(its rules deny everything). Each PAN is encrypted with AES-256-GCM under the vault key
(``FJB_VAULT_KEY``), with the card id as associated data, before it leaves the process,
and is found by a keyed fingerprint, never by its clear value. The CVV is not stored at all
(see `fjordbank.domain.cards.derive_cvv`). Nothing here logs a PAN.

Two collections, written together, each document created once and never changed:

- ``vaultCards/{cardId}``: the card's token, the PAN sealed, its nonce, the expiry and the
  fingerprint;
- ``vaultPans/{fingerprint}``: which card has that PAN (the processor's requests find a
  card by its number).

A card's entry is made in one batch of two creates: a card already in the vault (an issue
command delivered twice, on any instance) or a PAN already issued (a random serial that
collided) fails the batch as a whole, and nothing is half written. So any number of card
service instances may share the vault, during a rollout too. (It was a SQLite file on an
NFS share until 2026-12-06: Cloud Run mounts NFS without the lock manager, so only one
instance could use it, and a rollout ran two on it at once.)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fjordbank.domain.cards import pan_fingerprint
from fjordbank.errors import ConfigError
from fjordbank.service_layer.ports import AlreadyExists, Documents

CARDS = "vaultCards"
PANS = "vaultPans"
# The default id of the vault's database (terraform creates it; the emulator makes a named
# database on its first use).
DEFAULT_DATABASE = "card-vault"
# Every call's wait, retries included: the vault is called off the loop, and a call that
# does not answer frees its thread after this long. The processor's request that needs the
# vault is answered 503 "retry" by its route's timeout first (run_services/cards.py,
# AUTHORIZATION_TIMEOUT_SECONDS), and an issue command is tried again.
CALL_DEADLINE_S = 8.0


def decode_key(text: str, name: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ConfigError(f"{name} is not base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{name} must be 32 bytes (base64), got {len(key)}")
    return key


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class VaultEntry:
    token: str
    card_id: str
    exp_month: int
    exp_year: int


def open_vault(project_id: str, database: str, key: bytes) -> CardVault:
    """The vault on its Firestore database (the emulator's when FIRESTORE_EMULATOR_HOST is set)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.firestore import sync_client

    return CardVault(FirestoreDocuments(sync_client(project_id, deadline=CALL_DEADLINE_S, database=database)), key)


def _entry(card_id: str, data: dict[str, Any]) -> VaultEntry:
    return VaultEntry(data["token"], card_id, int(data["expMonth"]), int(data["expYear"]))


class CardVault:
    """The vault over a `Documents` of its own database (blocking: the card service calls
    it off its loop)."""

    def __init__(self, docs: Documents, key: bytes) -> None:
        self.docs = docs
        self._aead = AESGCM(key)
        self._fp_key = hmac.new(key, b"fjordbank-vault-fingerprint", hashlib.sha256).digest()

    def fingerprint(self, pan: str) -> str:
        return pan_fingerprint(self._fp_key, pan)

    def check(self) -> None:
        """One read, so that a vault database that does not exist or cannot be reached
        stops the card service at its start rather than at its first card."""
        self.docs.get(f"{CARDS}/-")

    def is_empty(self) -> bool:
        """Whether the vault holds no card at all (one read)."""
        return not self.docs.query(CARDS, limit=1)

    def by_card(self, card_id: str) -> VaultEntry | None:
        doc = self.docs.get(f"{CARDS}/{card_id}")
        return _entry(card_id, doc.data) if doc is not None else None

    def find(self, pan: str) -> VaultEntry | None:
        doc = self.docs.get(f"{PANS}/{self.fingerprint(pan)}")
        return _entry(doc.data["cardId"], doc.data) if doc is not None else None

    def store(
        self, card_id: str, make_pan: Callable[[], str], exp_month: int, exp_year: int, attempts: int = 20
    ) -> tuple[VaultEntry, str | None]:
        """The card's entry, made with a new unique PAN from ``make_pan()`` unless the card
        has one already (an issue command delivered twice). Returns (entry, new PAN or None)."""
        existing = self.by_card(card_id)
        if existing is not None:
            return existing, None
        for _ in range(attempts):
            pan = make_pan()
            nonce = secrets.token_bytes(12)
            token = "tok_" + secrets.token_hex(16)
            fingerprint = self.fingerprint(pan)
            stored_at = dt.datetime.now(dt.UTC)
            batch = self.docs.batch()
            batch.create(
                f"{CARDS}/{card_id}",
                {
                    "token": token,
                    "fingerprint": fingerprint,
                    "nonce": nonce,
                    "pan": self._aead.encrypt(nonce, pan.encode(), card_id.encode()),
                    "expMonth": exp_month,
                    "expYear": exp_year,
                    "storedAt": stored_at,
                },
            )
            batch.create(
                f"{PANS}/{fingerprint}",
                {"cardId": card_id, "token": token, "expMonth": exp_month, "expYear": exp_year, "storedAt": stored_at},
            )
            try:
                batch.commit()
            except AlreadyExists:
                # the card was stored meanwhile (the same command on another instance), or
                # the random serial collided with an issued PAN: which one, the card says
                existing = self.by_card(card_id)
                if existing is not None:
                    return existing, None
                continue  # a collision: draw again
            return VaultEntry(token, card_id, exp_month, exp_year), pan
        raise RuntimeError("could not draw a unique card number")

    def reveal(self, card_id: str) -> str | None:
        """The clear PAN (for the card service's own use, e.g. derive or verify a CVV)."""
        doc = self.docs.get(f"{CARDS}/{card_id}")
        if doc is None:
            return None
        return self._aead.decrypt(bytes(doc.data["nonce"]), bytes(doc.data["pan"]), card_id.encode()).decode()

    def entries(self, page: int = 500) -> list[VaultEntry]:
        """Every card in the vault, in card id order (the operator's and the tests' sweep)."""
        out: list[VaultEntry] = []
        last = None
        while True:
            docs = self.docs.query(CARDS, limit=page, start_after=last)
            out.extend(_entry(d.id, d.data) for d in docs)
            if len(docs) < page:
                return out
            last = docs[-1]
