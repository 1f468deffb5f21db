"""Unit tests for fjordbank.adapters.vault (the card vault: a local SQLite file in pytest's
tmp_path; no network).

The promises checked here are the module's own: a card gets one entry and one PAN however
often it is stored; a PAN is found by its keyed fingerprint and revealed only with the vault
key (AES-256-GCM, the card id as associated data); the file never holds a PAN in clear and
is readable by its owner only; a colliding random PAN is drawn again; keys are 32 bytes of
base64 and anything else is a configuration error.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from fjordbank.adapters.vault import CardVault, VaultEntry, decode_key, new_key
from fjordbank.domain.cards import is_valid_pan, make_pan
from fjordbank.errors import ConfigError, FjordbankError

BIN = "499210"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault" / "cards.sqlite"


@pytest.fixture
def vault(vault_path: Path) -> Iterator[CardVault]:
    v = CardVault(str(vault_path), KEY)
    yield v
    v.close()


def fixed(*pans: str):
    """A make_pan that returns ``pans`` in turn, counting its calls."""
    queue = list(pans)

    def draw() -> str:
        draw.calls += 1  # type: ignore[attr-defined]
        return queue.pop(0)

    draw.calls = 0  # type: ignore[attr-defined]
    return draw


def file_bytes(path: Path) -> bytes:
    """The database file and its WAL/SHM companions, as stored on disk."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            data += p.read_bytes()
    return data


# ----------------------------------------------------------------------- store / find / reveal


def test_store_makes_an_entry_and_returns_the_new_pan(vault: CardVault) -> None:
    entry, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    assert pan is not None and is_valid_pan(pan) and pan.startswith(BIN)
    assert isinstance(entry, VaultEntry)
    assert (entry.card_id, entry.exp_month, entry.exp_year) == ("card_1", 11, 2030)
    assert entry.token.startswith("tok_") and len(entry.token) == 4 + 32
    assert pan not in entry.token


def test_storing_the_same_card_again_returns_the_same_entry_and_no_pan(vault: CardVault) -> None:
    make = fixed(make_pan(BIN, "000000001"), make_pan(BIN, "000000002"))
    first, pan = vault.store("card_1", make, 11, 2030)
    again, none = vault.store("card_1", make, 12, 2031)
    assert none is None
    assert again == first  # same token, same expiry: the second issue command is a no-op
    assert make.calls == 1
    assert vault.reveal("card_1") == pan


def test_find_returns_the_card_by_its_pan(vault: CardVault) -> None:
    entry, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    other, other_pan = vault.store("card_2", lambda: make_pan(BIN), 1, 2029)
    assert vault.find(pan) == entry
    assert vault.find(other_pan) == other
    assert vault.find(make_pan(BIN, "999999999")) is None
    assert vault.by_card("card_1") == entry
    assert vault.by_card("card_unknown") is None


def test_reveal_returns_the_pan(vault: CardVault) -> None:
    _, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    assert vault.reveal("card_1") == pan
    assert vault.reveal("card_unknown") is None


def test_fingerprint_is_keyed_and_not_the_pan(vault: CardVault, tmp_path: Path) -> None:
    pan = make_pan(BIN, "123456789")
    other = CardVault(str(tmp_path / "other.sqlite"), OTHER_KEY)
    try:
        assert vault.fingerprint(pan) == vault.fingerprint(pan)
        assert vault.fingerprint(pan) != other.fingerprint(pan)
        assert pan not in vault.fingerprint(pan)
    finally:
        other.close()


def test_entries_survive_reopening(vault_path: Path) -> None:
    v = CardVault(str(vault_path), KEY)
    entry, pan = v.store("card_1", lambda: make_pan(BIN), 11, 2030)
    v.close()
    reopened = CardVault(str(vault_path), KEY)
    try:
        assert reopened.find(pan) == entry
        assert reopened.reveal("card_1") == pan
    finally:
        reopened.close()


# ----------------------------------------------------------------------- no PAN in clear


def test_file_does_not_contain_the_pan_in_clear(vault: CardVault, vault_path: Path) -> None:
    pans = [vault.store(f"card_{i}", lambda: make_pan(BIN), 11, 2030)[1] for i in range(20)]
    vault.close()  # checkpoint the WAL into the file
    data = file_bytes(vault_path)
    assert b"card_0" in data  # the file was read and holds the entries ...
    for pan in pans:
        assert pan is not None
        assert pan.encode("ascii") not in data  # ... but not the numbers
        assert pan[6:12].encode("ascii") + pan[12:].encode("ascii") not in data
        assert pan.encode("utf-16-le") not in data


def test_wal_does_not_contain_the_pan_in_clear_while_open(vault: CardVault, vault_path: Path) -> None:
    _, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    assert pan is not None
    assert pan.encode("ascii") not in file_bytes(vault_path)


def test_ciphertext_is_bound_to_the_card_id(vault: CardVault, vault_path: Path) -> None:
    vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    vault.store("card_2", lambda: make_pan(BIN), 11, 2030)
    db = sqlite3.connect(vault_path)
    try:
        nonce, pan = db.execute("SELECT nonce, pan FROM cards WHERE card_id = 'card_1'").fetchone()
        # move card_1's ciphertext onto card_2: the associated data no longer matches
        db.execute("UPDATE cards SET nonce = ?, pan = ? WHERE card_id = 'card_2'", (nonce, pan))
        db.commit()
    finally:
        db.close()
    with pytest.raises(InvalidTag):
        vault.reveal("card_2")


def test_each_entry_has_its_own_nonce(vault: CardVault, vault_path: Path) -> None:
    for i in range(10):
        vault.store(f"card_{i}", lambda: make_pan(BIN), 11, 2030)
    db = sqlite3.connect(vault_path)
    try:
        nonces = [row[0] for row in db.execute("SELECT nonce FROM cards")]
    finally:
        db.close()
    assert len(nonces) == 10
    assert len(set(nonces)) == 10
    assert all(len(n) == 12 for n in nonces)


# ----------------------------------------------------------------------- keys


def test_vault_opened_with_another_key_cannot_reveal(vault_path: Path) -> None:
    v = CardVault(str(vault_path), KEY)
    _, pan = v.store("card_1", lambda: make_pan(BIN), 11, 2030)
    v.close()
    other = CardVault(str(vault_path), OTHER_KEY)
    try:
        with pytest.raises(InvalidTag):
            other.reveal("card_1")
        assert pan is not None
        assert other.find(pan) is None  # the fingerprint is keyed too
        assert other.by_card("card_1") is not None  # the entry itself is there
    finally:
        other.close()


@pytest.mark.parametrize("text", ["not base64!", "====", "a" * 43 + "!", "ÆØÅ", "abc", "YWJj\n"])
def test_decode_key_refuses_non_base64(text: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        decode_key(text, "FJB_VAULT_KEY")
    assert "FJB_VAULT_KEY" in str(excinfo.value)
    assert isinstance(excinfo.value, FjordbankError)


@pytest.mark.parametrize("length", [0, 1, 16, 24, 31, 33, 64])
def test_decode_key_refuses_wrong_length(length: int) -> None:
    text = base64.b64encode(bytes(length)).decode()
    with pytest.raises(ConfigError, match="32 bytes") as excinfo:
        decode_key(text, "FJB_VAULT_KEY")
    if length:
        assert text not in str(excinfo.value)  # the key is not echoed


def test_decode_key_accepts_32_bytes() -> None:
    assert decode_key(base64.b64encode(KEY).decode(), "k") == KEY


def test_new_key_decodes_to_32_random_bytes() -> None:
    keys = {new_key() for _ in range(20)}
    assert len(keys) == 20
    for text in keys:
        assert len(decode_key(text, "k")) == 32
        assert len(base64.b64decode(text)) == 32


# ----------------------------------------------------------------------- collisions


def test_pan_collision_is_retried(vault: CardVault) -> None:
    taken = make_pan(BIN, "111111111")
    fresh = make_pan(BIN, "222222222")
    vault.store("card_1", fixed(taken), 11, 2030)
    make = fixed(taken, fresh)
    entry, pan = vault.store("card_2", make, 11, 2030)
    assert pan == fresh
    assert make.calls == 2
    assert vault.reveal("card_2") == fresh
    assert vault.find(taken).card_id == "card_1"  # type: ignore[union-attr]
    assert vault.find(fresh) == entry


def test_store_gives_up_after_the_attempts(vault: CardVault) -> None:
    taken = make_pan(BIN, "111111111")
    vault.store("card_1", fixed(taken), 11, 2030)
    make = fixed(*[taken] * 3)
    with pytest.raises(RuntimeError, match="unique card number"):
        vault.store("card_2", make, 11, 2030, attempts=3)
    assert make.calls == 3
    assert vault.by_card("card_2") is None


# ----------------------------------------------------------------------- file


def test_file_mode_is_0600(vault: CardVault, vault_path: Path) -> None:
    vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    assert stat.S_IMODE(os.stat(vault_path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{vault_path}{suffix}")
        if companion.exists():
            assert stat.S_IMODE(os.stat(companion).st_mode) & 0o077 == 0, suffix


def test_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "vault.sqlite"
    v = CardVault(str(path), KEY)
    try:
        assert path.exists()
    finally:
        v.close()
