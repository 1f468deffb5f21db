"""A keyring: the keys one secret names, each with an id, the first the one in use.

The card vault seals each number under a key and the CVV is derived with another
(fjordbank.adapters.vault, fjordbank.domain.cards.derive_cvv). With one bare key each,
nothing said which key had sealed a number or derived a CVV, so neither key could ever be
rotated (PCI DSS 3.6/3.7): a new secret version made every card an unknown one, and every
printed CVV a wrong one (found in review, 2026-12-07). Each vault entry now names its
keys, and a secret holds a keyring:

    <id>:<base64 32 bytes>[,<id>:<base64 32 bytes>...]

The first key is current: new cards are sealed (or their CVV derived) under it; the others
only open what they sealed. A secret of one bare base64 key is the keyring of that key under
the id `LEGACY_ID`, the id of every entry written before entries named their keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

LEGACY_ID = "k0"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
KEY_BYTES = 32


class KeyringError(ValueError):
    """A keyring's text that is not one (the message names the secret, never a key)."""


class UnknownKey(LookupError):
    """An entry sealed under a key the keyring does not hold (left out at a rotation)."""


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def single(cls, key: bytes) -> Keyring:
        return cls(LEGACY_ID, {LEGACY_ID: key})

    def key(self, key_id: str | None) -> bytes:
        """The key ``key_id`` names (None: an entry from before keys were named)."""
        found = self.keys.get(key_id or LEGACY_ID)
        if found is None:
            raise UnknownKey(f"key {key_id or LEGACY_ID!r} is not in the keyring (it holds {sorted(self.keys)})")
        return found

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]

    def __repr__(self) -> str:  # never a key in a log line or a traceback
        return f"Keyring(current={self.current!r}, ids={sorted(self.keys)})"


def decode_key(text: str, name: str) -> bytes:
    """One key of secret ``name``: base64 of `KEY_BYTES` bytes; raises `KeyringError`
    (never echoing the text)."""
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{name}: a key is not base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{name}: a key must be {KEY_BYTES} bytes (base64), got {len(key)}")
    return key


def parse(text: str, name: str) -> Keyring:
    """The keyring a secret's ``text`` holds (see the module); raises `KeyringError`."""
    text = text.strip()
    if not text:
        raise KeyringError(f"{name} is not set")
    if ":" not in text:
        return Keyring.single(decode_key(text, name))
    keys: dict[str, bytes] = {}
    for part in text.split(","):
        key_id, sep, value = part.strip().partition(":")
        if not sep or not KEY_ID.fullmatch(key_id):
            raise KeyringError(f"{name}: each key is <id>:<base64>, the id 1-32 of A-Z a-z 0-9 _ -")
        if key_id in keys:
            raise KeyringError(f"{name}: key id {key_id!r} is given twice")
        keys[key_id] = decode_key(value, name)
    return Keyring(next(iter(keys)), keys)
