"""The card vault: the only place a full card number lives.

A SQLite file owned by the card service alone (in production: a PCI-scoped store such as
Cloud SQL with a KMS key, reachable only from the card service). Each PAN is encrypted
with AES-256-GCM under the vault key, with the card id as associated data, and found by a
keyed fingerprint, never by its clear value. The CVV is not stored at all (see
`fjordbank.domain.cards.derive_cvv`). Nothing here logs a PAN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fjordbank.domain.cards import pan_fingerprint
from fjordbank.errors import ConfigError


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


class CardVault:
    def __init__(self, path: str, key: bytes) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(key)
        self._fp_key = hmac.new(key, b"fjordbank-vault-fingerprint", hashlib.sha256).digest()
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cards (token TEXT PRIMARY KEY, card_id TEXT UNIQUE NOT NULL, "
            "fingerprint TEXT UNIQUE NOT NULL, nonce BLOB NOT NULL, pan BLOB NOT NULL, "
            "exp_month INTEGER NOT NULL, exp_year INTEGER NOT NULL)"
        )

    def fingerprint(self, pan: str) -> str:
        return pan_fingerprint(self._fp_key, pan)

    def by_card(self, card_id: str) -> VaultEntry | None:
        row = self._db.execute(
            "SELECT token, card_id, exp_month, exp_year FROM cards WHERE card_id = ?", (card_id,)
        ).fetchone()
        return VaultEntry(*row) if row else None

    def find(self, pan: str) -> VaultEntry | None:
        row = self._db.execute(
            "SELECT token, card_id, exp_month, exp_year FROM cards WHERE fingerprint = ?", (self.fingerprint(pan),)
        ).fetchone()
        return VaultEntry(*row) if row else None

    def store(
        self, card_id: str, make_pan: Callable[[], str], exp_month: int, exp_year: int, attempts: int = 20
    ) -> tuple[VaultEntry, str | None]:
        """The card's entry, made with a new unique PAN from ``make_pan()`` unless the card
        has one already (an issue command delivered twice). Returns (entry, new PAN or None)."""
        with self._lock:
            existing = self.by_card(card_id)
            if existing is not None:
                return existing, None
            for _ in range(attempts):
                pan = make_pan()
                nonce = secrets.token_bytes(12)
                token = "tok_" + secrets.token_hex(16)
                try:
                    self._db.execute(
                        "INSERT INTO cards VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            token,
                            card_id,
                            self.fingerprint(pan),
                            nonce,
                            self._aead.encrypt(nonce, pan.encode(), card_id.encode()),
                            exp_month,
                            exp_year,
                        ),
                    )
                except sqlite3.IntegrityError:
                    continue  # the random serial collided with an issued PAN: draw again
                return VaultEntry(token, card_id, exp_month, exp_year), pan
            raise RuntimeError("could not draw a unique card number")

    def reveal(self, card_id: str) -> str | None:
        """The clear PAN (for the card service's own use, e.g. derive or verify a CVV)."""
        row = self._db.execute("SELECT nonce, pan FROM cards WHERE card_id = ?", (card_id,)).fetchone()
        if row is None:
            return None
        return self._aead.decrypt(row[0], row[1], card_id.encode()).decode()

    def close(self) -> None:
        self._db.close()
