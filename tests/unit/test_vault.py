"""Unit tests for fjordbank.adapters.vault (the card vault over the document ports; here the
in-memory fake, the Firestore emulator's named database in the card integration tests).

The promises checked here are the module's own: a card gets one entry and one PAN however
often, and on however many instances, it is stored; a PAN is found by its keyed fingerprint
and revealed only with the vault key (AES-256-GCM, the card id as associated data); no
stored document holds a PAN in clear; a colliding random PAN is drawn again and leaves
nothing half written; keys are 32 bytes of base64 and anything else is a configuration
error. devstack's keeping of the vault across a stop (devstack/vault_state.py) round-trips
its documents.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography.exceptions import InvalidTag

from devstack import vault_state
from fjordbank.adapters.vault import CARDS, PANS, CardVault, VaultEntry, decode_key, decode_keyring, new_key
from fjordbank.domain import keyring
from fjordbank.domain.cards import is_valid_pan, make_pan
from fjordbank.domain.keyring import Keyring
from fjordbank.errors import ConfigError, FjordbankError
from tests.support.memory import MemoryDocuments

BIN = "499210"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def docs() -> MemoryDocuments:
    return MemoryDocuments()


@pytest.fixture
def vault(docs: MemoryDocuments) -> CardVault:
    return CardVault(docs, KEY)


def fixed(*pans: str):
    """A make_pan that returns ``pans`` in turn, counting its calls."""
    queue = list(pans)

    def draw() -> str:
        draw.calls += 1  # type: ignore[attr-defined]
        return queue.pop(0)

    draw.calls = 0  # type: ignore[attr-defined]
    return draw


def stored_text(docs: MemoryDocuments) -> str:
    """Every stored document as text, bytes in every reading a leak could take."""
    out = []
    for path, (data, _) in docs.store.docs.items():
        out.append(path)
        for value in data.values():
            if isinstance(value, bytes):
                out += [value.hex(), value.decode("latin-1"), base64.b64encode(value).decode()]
            else:
                out.append(str(value))
    return "\n".join(out)


# ----------------------------------------------------------------------- store / find / reveal


def test_store_makes_an_entry_and_returns_the_new_pan(vault: CardVault) -> None:
    entry, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    assert pan is not None and is_valid_pan(pan) and pan.startswith(BIN)
    assert isinstance(entry, VaultEntry)
    assert (entry.card_id, entry.exp_month, entry.exp_year) == ("card_1", 11, 2030)
    assert entry.token.startswith("tok_") and len(entry.token) == 4 + 32
    assert pan not in entry.token


def test_an_entry_is_the_cards_document_and_its_pans_created_together(vault: CardVault, docs) -> None:
    entry, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    card = docs.get(f"{CARDS}/card_1")
    by_pan = docs.get(f"{PANS}/{vault.fingerprint(pan)}")
    assert card is not None and by_pan is not None
    assert card.updated == by_pan.updated  # one commit
    assert by_pan.data["cardId"] == "card_1" and by_pan.data["token"] == card.data["token"] == entry.token
    assert card.data["fingerprint"] == vault.fingerprint(pan)


def test_storing_the_same_card_again_returns_the_same_entry_and_no_pan(vault: CardVault) -> None:
    make = fixed(make_pan(BIN, "000000001"), make_pan(BIN, "000000002"))
    first, pan = vault.store("card_1", make, 11, 2030)
    again, none = vault.store("card_1", make, 12, 2031)
    assert none is None
    assert again == first  # same token, same expiry: the second issue command is a no-op
    assert make.calls == 1
    assert vault.reveal("card_1") == pan


class StaleFirstRead(MemoryDocuments):
    """Another instance's view: its first read of the card was made before the card was
    stored (two deliveries of one issue command on two instances at once)."""

    def __init__(self, store) -> None:
        super().__init__(store=store)
        self.stale = True

    def get(self, path: str):
        if self.stale and path.startswith(f"{CARDS}/"):
            self.stale = False
            return None
        return super().get(path)


def test_the_same_card_stored_on_two_instances_at_once_gets_one_number(vault: CardVault, docs) -> None:
    first, pan = vault.store("card_1", fixed(make_pan(BIN, "000000001")), 11, 2030)
    other = CardVault(StaleFirstRead(docs.store), KEY)
    make = fixed(make_pan(BIN, "000000002"))
    again, none = other.store("card_1", make, 11, 2030)
    assert (again, none) == (first, None)  # the create lost: the first instance's entry
    assert make.calls == 1
    assert other.find(make_pan(BIN, "000000002")) is None  # nothing of the second draw kept
    assert other.reveal("card_1") == pan


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


def test_fingerprint_is_keyed_and_not_the_pan(vault: CardVault) -> None:
    pan = make_pan(BIN, "123456789")
    other = CardVault(MemoryDocuments(), OTHER_KEY)
    assert vault.fingerprint(pan) == vault.fingerprint(pan)
    assert vault.fingerprint(pan) != other.fingerprint(pan)
    assert pan not in vault.fingerprint(pan)


def test_entries_lists_every_card_in_pages(vault: CardVault) -> None:
    made = [vault.store(f"card_{i:02}", lambda: make_pan(BIN), 11, 2030)[0] for i in range(7)]
    assert vault.entries(page=3) == made
    assert vault.entries() == made


def test_check_reads_the_database(vault: CardVault) -> None:
    vault.check()  # an empty vault answers; a missing database raises (the emulator makes one)


# ----------------------------------------------------------------------- no PAN in clear


def test_no_stored_document_contains_the_pan_in_clear(vault: CardVault, docs) -> None:
    pans = [vault.store(f"card_{i}", lambda: make_pan(BIN), 11, 2030)[1] for i in range(20)]
    text = stored_text(docs)
    assert "card_0" in text  # the documents were read and hold the entries ...
    for pan in pans:
        assert pan is not None
        assert pan not in text  # ... but not the numbers
        assert pan[6:] not in text


def test_ciphertext_is_bound_to_the_card_id(vault: CardVault, docs) -> None:
    vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    vault.store("card_2", lambda: make_pan(BIN), 11, 2030)
    one = docs.get(f"{CARDS}/card_1").data
    # move card_1's ciphertext onto card_2: the associated data no longer matches
    batch = docs.batch()
    batch.update(f"{CARDS}/card_2", {"nonce": one["nonce"], "pan": one["pan"]})
    batch.commit()
    with pytest.raises(InvalidTag):
        vault.reveal("card_2")


def test_each_entry_has_its_own_nonce(vault: CardVault, docs) -> None:
    for i in range(10):
        vault.store(f"card_{i}", lambda: make_pan(BIN), 11, 2030)
    nonces = [docs.get(f"{CARDS}/card_{i}").data["nonce"] for i in range(10)]
    assert len(set(nonces)) == 10
    assert all(isinstance(n, bytes) and len(n) == 12 for n in nonces)


# ----------------------------------------------------------------------- keys


def test_vault_opened_with_another_key_cannot_reveal(vault: CardVault, docs) -> None:
    _, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    other = CardVault(docs, OTHER_KEY)
    with pytest.raises(InvalidTag):
        other.reveal("card_1")
    assert pan is not None
    assert other.find(pan) is None  # the fingerprint is keyed too
    assert other.by_card("card_1") is not None  # the entry itself is there


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


def test_pan_collision_is_retried_and_leaves_nothing_of_the_lost_draw(vault: CardVault, docs) -> None:
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
    assert len(docs.store.docs) == 4  # two cards, two numbers: the failed batch wrote nothing


def test_store_gives_up_after_the_attempts(vault: CardVault) -> None:
    taken = make_pan(BIN, "111111111")
    vault.store("card_1", fixed(taken), 11, 2030)
    make = fixed(*[taken] * 3)
    with pytest.raises(RuntimeError, match="unique card number"):
        vault.store("card_2", make, 11, 2030, attempts=3)
    assert make.calls == 3
    assert vault.by_card("card_2") is None


# ----------------------------------------------------------------------- devstack's keeping


def test_devstack_keeps_the_vaults_values_as_they_are() -> None:
    data = {
        "token": "tok_1",
        "nonce": bytes(range(12)),
        "pan": b"\x00\xff sealed",
        "expMonth": 11,
        "storedAt": dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC),
    }
    line = json.dumps(vault_state._encode(data))
    assert vault_state._decode(json.loads(line)) == data


# ----------------------------------------------------------------------- start-up check


def test_an_empty_vault_with_active_cards_stops_the_card_service(monkeypatch) -> None:
    """An environment moved from the file vault without its cards' numbers (or a vault
    database replaced) would decline every purchase as an unknown card: the start says so."""
    from fjordbank.adapters import documents, firestore
    from fjordbank.config import load_settings
    from run_services import cards

    bank = MemoryDocuments()
    monkeypatch.setattr(firestore, "sync_client", lambda *_a, **_k: None)
    monkeypatch.setattr(documents, "FirestoreDocuments", lambda _client: bank)
    settings = load_settings({})
    vault = CardVault(MemoryDocuments(), KEY)
    cards.refuse_an_empty_vault_with_cards(settings, vault)  # no cards at all: a new bank
    batch = bank.batch()
    batch.create("cards/card_1", {"status": "active"})
    batch.commit()
    with pytest.raises(ConfigError, match="empty while the bank has active cards"):
        cards.refuse_an_empty_vault_with_cards(settings, vault)
    vault.store("card_1", lambda: make_pan(BIN), 11, 2030)
    cards.refuse_an_empty_vault_with_cards(settings, vault)  # the numbers are there


# ----------------------------------------------------------------------- key rotation
# Found in review, 2026-12-07: the vault and CVV keys were bare keys, and nothing said which
# key had sealed a number or derived a CVV: a new secret version (the usual rotation) passed
# every start check, then declined every card as unknown, let a PAN issued before be issued
# again, and froze each card after five right CVVs taken for wrong ones.
NEW_KEY = bytes(range(2, 34))


def ring(*pairs: tuple[str, bytes]) -> Keyring:
    return keyring.parse(",".join(f"{k}:{base64.b64encode(v).decode()}" for k, v in pairs), "FJB_VAULT_KEY")


def test_a_keyring_is_one_bare_key_or_ids_with_keys_the_first_current() -> None:
    bare = keyring.parse(base64.b64encode(KEY).decode(), "FJB_VAULT_KEY")
    assert (bare.current, dict(bare.keys)) == (keyring.LEGACY_ID, {keyring.LEGACY_ID: KEY})
    two = ring(("k1", NEW_KEY), ("k0", KEY))
    assert (two.current, two.current_key, two.key(None), two.key("k0")) == ("k1", NEW_KEY, KEY, KEY)
    assert "k1" in repr(two) and base64.b64encode(NEW_KEY).decode() not in repr(two)  # never a key in a log
    with pytest.raises(keyring.UnknownKey):
        two.key("k9")
    for bad in ("", "k1:" + base64.b64encode(KEY[:16]).decode(), "bad id:AAAA", "k1:x,k1:y"):
        with pytest.raises(ConfigError, match="FJB_VAULT_KEY"):
            decode_keyring(bad, "FJB_VAULT_KEY")
    text = f"k1:{base64.b64encode(NEW_KEY).decode()},k1:{base64.b64encode(KEY).decode()}"
    with pytest.raises(ConfigError, match="twice"):
        decode_keyring(text, "FJB_VAULT_KEY")


def test_a_vault_rotated_to_a_new_key_finds_reveals_and_reseals_the_cards_of_the_old_one(docs) -> None:
    old = CardVault(docs, KEY)  # entries written before keys were named: no keyId (the legacy id)
    _, first = old.store("card_1", fixed("4992100000000016"), 11, 2030)
    old_fingerprint = old.fingerprint("4992100000000016")
    rotated = CardVault(docs, ring(("k1", NEW_KEY), ("k0", KEY)))
    rotated.check()
    assert rotated.find("4992100000000016") == old.find("4992100000000016")
    assert rotated.reveal("card_1") == first
    entry, second = rotated.store("card_2", lambda: make_pan(BIN), 11, 2030, cvv_key_id="c1")
    assert entry.cvv_key_id == "c1" and docs.get(f"{CARDS}/card_2").data["keyId"] == "k1"
    assert second is not None and rotated.find(second) == entry
    # a PAN issued under the old key is not issued again under the new one
    again = fixed("4992100000000016", "4992100000000024")
    _, third = rotated.store("card_3", again, 11, 2030)
    assert third == "4992100000000024" and again.calls == 2  # type: ignore[attr-defined]
    # an instance still holding the old ring alone does not start: it cannot open the newest card
    with pytest.raises(ConfigError, match=r"card_3.*'k1' is not in the keyring"):
        CardVault(docs, KEY).check()
    # sealed again under the new key, the old one may leave the ring
    told: list[tuple[int, int]] = []
    assert rotated.reseal(progress=lambda *a: told.append(a)) == (1, 0)
    assert told == [(3, 1)]
    assert rotated.reseal() == (0, 0)  # again: nothing left
    card_1 = docs.get(f"{CARDS}/card_1").data
    assert (card_1["keyId"], card_1["cvvKeyId"]) == ("k1", keyring.LEGACY_ID)  # its printed CVV stays
    assert docs.get(f"{PANS}/{old_fingerprint}") is None
    new_only = CardVault(docs, ring(("k1", NEW_KEY)))
    new_only.check()
    assert new_only.reveal("card_1") == first and new_only.find(first).card_id == "card_1"
    assert not any(first in t for t in [stored_text(docs)])


def test_a_ring_that_holds_another_key_under_the_id_or_lacks_the_cvv_key_does_not_start(docs) -> None:
    CardVault(docs, ring(("k1", NEW_KEY))).store("card_1", lambda: make_pan(BIN), 11, 2030, cvv_key_id="c1")
    with pytest.raises(ConfigError, match="does not open with key 'k1'"):
        CardVault(docs, ring(("k1", OTHER_KEY))).check()
    vault = CardVault(docs, ring(("k1", NEW_KEY)))
    vault.check(ring(("c1", KEY)))
    with pytest.raises(ConfigError, match="'c1' is not in the keyring"):
        vault.check(ring(("c2", KEY)))


def test_the_cvv_of_a_card_is_derived_with_the_key_its_entry_names() -> None:
    """A CVV key rotated: new cards' CVVs under the new key, those printed before still
    checked with the key they were derived with."""
    from fjordbank.domain.cards import derive_cvv

    docs = MemoryDocuments()
    cvv = ring(("c1", NEW_KEY), ("c0", KEY))
    vault = CardVault(docs, KEY)
    _, pan = vault.store("card_1", lambda: make_pan(BIN), 11, 2030, cvv_key_id="c0")
    found = vault.find(pan)
    assert found is not None and found.cvv_key_id == "c0"
    assert derive_cvv(cvv.key(found.cvv_key_id), pan, 11, 2030) == derive_cvv(KEY, pan, 11, 2030)


def test_a_reseal_stopped_half_way_leaves_the_oldest_cards_which_the_start_check_finds(docs, monkeypatch) -> None:
    """Sealed oldest first, a reseal stopped half-way left cards in the middle under the old
    key while the start check (the oldest and the newest card) passed, and they were
    declined as unknown (found in review, 2026-12-07): newest first, the oldest is left."""
    old = CardVault(docs, KEY)
    for i in range(4):
        old.store(f"card_{i}", lambda: make_pan(BIN), 11, 2030)
    rotated = CardVault(docs, ring(("k1", NEW_KEY), ("k0", KEY)))
    done: list[str] = []
    one = rotated._reseal_one

    def stopped_after_two(card_id, data, updated):
        if len(done) == 2:
            raise KeyboardInterrupt  # the job killed
        done.append(card_id)
        return one(card_id, data, updated)

    monkeypatch.setattr(rotated, "_reseal_one", stopped_after_two)
    with pytest.raises(KeyboardInterrupt):
        rotated.reseal(page=1)
    assert done == ["card_3", "card_2"]  # the newest first
    with pytest.raises(ConfigError, match="card_0"):
        CardVault(docs, ring(("k1", NEW_KEY))).check()
    monkeypatch.undo()
    assert rotated.reseal(page=1) == (2, 0)
    CardVault(docs, ring(("k1", NEW_KEY))).check()
