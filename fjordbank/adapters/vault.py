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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fjordbank.domain import keyring
from fjordbank.domain.cards import pan_fingerprint
from fjordbank.domain.keyring import Keyring
from fjordbank.errors import ConfigError
from fjordbank.service_layer.ports import AlreadyExists, Documents, OrderBy, Stale

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
    """One bare key (fjordbank.domain.keyring.decode_key); raises ConfigError."""
    try:
        return keyring.decode_key(text, name)
    except keyring.KeyringError as exc:
        raise ConfigError(str(exc)) from None


def decode_keyring(text: str, name: str) -> Keyring:
    """A secret's keyring (fjordbank.domain.keyring: one bare key, or ``id:key,...``)."""
    try:
        return keyring.parse(text, name)
    except keyring.KeyringError as exc:
        raise ConfigError(str(exc)) from None


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class VaultEntry:
    token: str
    card_id: str
    exp_month: int
    exp_year: int
    cvv_key_id: str = keyring.LEGACY_ID  # the CVV key its printed CVV is derived with


def open_vault(project_id: str, database: str, key: bytes | Keyring) -> CardVault:
    """The vault on its Firestore database (the emulator's when FIRESTORE_EMULATOR_HOST is set)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.firestore import sync_client

    return CardVault(FirestoreDocuments(sync_client(project_id, deadline=CALL_DEADLINE_S, database=database)), key)


def _entry(card_id: str, data: dict[str, Any]) -> VaultEntry:
    cvv_key_id = data.get("cvvKeyId") or keyring.LEGACY_ID
    return VaultEntry(data["token"], card_id, int(data["expMonth"]), int(data["expYear"]), cvv_key_id)


class CardVault:
    """The vault over a `Documents` of its own database (blocking: the card service calls
    it off its loop)."""

    def __init__(self, docs: Documents, keys: bytes | Keyring) -> None:
        """``keys``: the vault's keyring (``FJB_VAULT_KEY``); a bare key is the ring of
        that key alone under its legacy id. Each entry says which key sealed it (``keyId``;
        none: the legacy id) and is found by a fingerprint under that key."""
        self.docs = docs
        self.keys = keys if isinstance(keys, Keyring) else Keyring.single(keys)
        self._aead = {key_id: AESGCM(key) for key_id, key in self.keys.keys.items()}
        self._fp_keys = {
            key_id: hmac.new(key, b"fjordbank-vault-fingerprint", hashlib.sha256).digest()
            for key_id, key in self.keys.keys.items()
        }

    def fingerprint(self, pan: str, key_id: str | None = None) -> str:
        """The PAN's fingerprint under the current key (or ``key_id``'s)."""
        return pan_fingerprint(self._fp_keys[key_id or self.keys.current], pan)

    def _fingerprints(self, pan: str) -> list[str]:
        """The PAN's fingerprint under each key of the ring, the current one's first."""
        ids = [self.keys.current, *(k for k in self.keys.keys if k != self.keys.current)]
        return [f"{PANS}/{self.fingerprint(pan, key_id)}" for key_id in ids]

    def check(self, cvv_keys: Keyring | None = None) -> None:
        """Reads (the oldest and the newest card), so that a vault database that does not
        exist or cannot be reached stops the card service at its start rather than at its
        first card, and so does a keyring that cannot open the vault's cards, or (with
        ``cvv_keys``) a CVV keyring without the key their CVVs were derived with: a key
        left out at a rotation, or an instance started with the ring of before a new key's
        (found in review, 2026-12-07: a new secret version passed every start check, then
        declined every card as unknown). Raises ConfigError."""
        for descending in (False, True):
            for doc in self.docs.query(CARDS, order_by=[OrderBy("storedAt", descending)], limit=1):
                try:
                    self._open(doc.id, doc.data)
                    if cvv_keys is not None:
                        cvv_keys.key(doc.data.get("cvvKeyId"))
                except keyring.UnknownKey as exc:
                    raise ConfigError(f"the card vault's card {doc.id}: {exc} (terraform/modules/card_vault)") from None
                except InvalidTag:
                    raise ConfigError(
                        f"the card vault's card {doc.id} does not open with key {doc.data.get('keyId')!r}:"
                        " FJB_VAULT_KEY holds another key under that id"
                    ) from None

    def _open(self, card_id: str, data: dict[str, Any]) -> str:
        key_id = data.get("keyId") or keyring.LEGACY_ID
        self.keys.key(key_id)  # raises UnknownKey for a key the ring does not hold
        return self._aead[key_id].decrypt(bytes(data["nonce"]), bytes(data["pan"]), card_id.encode()).decode()

    def is_empty(self) -> bool:
        """Whether the vault holds no card at all (one read)."""
        return not self.docs.query(CARDS, limit=1)

    def by_card(self, card_id: str) -> VaultEntry | None:
        doc = self.docs.get(f"{CARDS}/{card_id}")
        return _entry(card_id, doc.data) if doc is not None else None

    def find(self, pan: str) -> VaultEntry | None:
        """The card with this PAN: looked up by its fingerprint under each key of the ring
        (one read; a card sealed under an earlier key until it is sealed again, `reseal`)."""
        paths = self._fingerprints(pan)
        if len(paths) == 1:
            doc = self.docs.get(paths[0])
        else:
            found = self.docs.get_many(paths)
            doc = next((d for p in paths if (d := found.get(p)) is not None), None)
        return _entry(doc.data["cardId"], doc.data) if doc is not None else None

    def _issued(self, pan: str) -> bool:
        """Whether a card sealed under another key of the ring has this PAN (the batch's
        create of the current key's fingerprint is what finds one sealed under it)."""
        others = self._fingerprints(pan)[1:]
        return bool(others) and any(d is not None for d in self.docs.get_many(others).values())

    def store(
        self,
        card_id: str,
        make_pan: Callable[[], str],
        exp_month: int,
        exp_year: int,
        attempts: int = 20,
        *,
        cvv_key_id: str = keyring.LEGACY_ID,
    ) -> tuple[VaultEntry, str | None]:
        """The card's entry, made with a new unique PAN from ``make_pan()`` unless the card
        has one already (an issue command delivered twice), sealed under the ring's current
        key; ``cvv_key_id``: the CVV key its CVV is derived with. Returns (entry, new PAN or
        None)."""
        existing = self.by_card(card_id)
        if existing is not None:
            return existing, None
        key_id = self.keys.current
        for _ in range(attempts):
            pan = make_pan()
            if self._issued(pan):
                continue  # a collision with a card sealed under an earlier key: draw again
            nonce = secrets.token_bytes(12)
            token = "tok_" + secrets.token_hex(16)
            fingerprint = self.fingerprint(pan)
            stored_at = dt.datetime.now(dt.UTC)
            keys = {"keyId": key_id, "cvvKeyId": cvv_key_id}
            batch = self.docs.batch()
            batch.create(
                f"{CARDS}/{card_id}",
                {
                    "token": token,
                    "fingerprint": fingerprint,
                    "nonce": nonce,
                    "pan": self._aead[key_id].encrypt(nonce, pan.encode(), card_id.encode()),
                    "expMonth": exp_month,
                    "expYear": exp_year,
                    "storedAt": stored_at,
                    **keys,
                },
            )
            batch.create(
                f"{PANS}/{fingerprint}",
                {
                    "cardId": card_id,
                    "token": token,
                    "expMonth": exp_month,
                    "expYear": exp_year,
                    "storedAt": stored_at,
                    **keys,
                },
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
            return VaultEntry(token, card_id, exp_month, exp_year, cvv_key_id), pan
        raise RuntimeError("could not draw a unique card number")

    def reveal(self, card_id: str) -> str | None:
        """The clear PAN (for the card service's own use, e.g. derive or verify a CVV)."""
        doc = self.docs.get(f"{CARDS}/{card_id}")
        if doc is None:
            return None
        return self._open(card_id, doc.data)

    def reseal(self, progress: Callable[[int, int], None] | None = None, page: int = 200) -> tuple[int, int]:
        """Seal every card sealed under another key than the current one under the current
        one, each in one batch (its entry updated, its fingerprint under the current key
        created, the old one deleted: all or nothing), so the earlier key can leave the ring.
        Safe to run again or beside the service: a card done is skipped, one changed or done
        meanwhile fails its batch and is left for the next run. Its CVV key stays (the
        printed CVV does not change). Newest first: a run stopped half-way leaves the oldest
        cards under the earlier key, and the start check (`check`), which opens the oldest
        card, refuses a ring without that key (oldest first, the oldest were done and the
        check passed while cards in the middle could not be opened: found in review,
        2026-12-07). Returns (sealed, left: under another key after this run);
        ``progress`` is told (seen, sealed) after each page."""
        seen = sealed = left = 0
        last = None
        while True:
            docs = self.docs.query(CARDS, order_by=[OrderBy("storedAt", True)], limit=page, start_after=last)
            for doc in docs:
                seen += 1
                if (doc.data.get("keyId") or keyring.LEGACY_ID) != self.keys.current:
                    done = self._reseal_one(doc.id, doc.data, doc.updated)
                    sealed, left = sealed + done, left + 1 - done
            if progress is not None:
                progress(seen, sealed)
            if len(docs) < page:
                return sealed, left
            last = docs[-1]

    def _reseal_one(self, card_id: str, data: dict[str, Any], updated: dt.datetime) -> int:
        pan = self._open(card_id, data)
        key_id, nonce = self.keys.current, secrets.token_bytes(12)
        fingerprint = self.fingerprint(pan)
        pans: dict[str, Any] = {k: data[k] for k in ("token", "expMonth", "expYear", "storedAt") if k in data}
        cvv_key_id = data.get("cvvKeyId") or keyring.LEGACY_ID
        batch = self.docs.batch()
        batch.update(
            f"{CARDS}/{card_id}",
            {
                "keyId": key_id,
                "cvvKeyId": cvv_key_id,
                "nonce": nonce,
                "pan": self._aead[key_id].encrypt(nonce, pan.encode(), card_id.encode()),
                "fingerprint": fingerprint,
            },
            if_updated=updated,
        )
        batch.create(f"{PANS}/{fingerprint}", {"cardId": card_id, **pans, "keyId": key_id, "cvvKeyId": cvv_key_id})
        batch.delete(f"{PANS}/{data['fingerprint']}")
        try:
            batch.commit()
        except (AlreadyExists, Stale):
            return 0  # sealed meanwhile (another run), or changed: the next run reads it again
        return 1

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
