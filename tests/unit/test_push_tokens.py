"""One push token, one customer (fjordbank.service_layer.push_tokens): Bob signing in on the
phone Alice signed out of registers its one token under him, and Alice's pushes no longer
reach it (found in review, 2026-12-07: her amounts and card digits on his lock screen) but
her security notices (a thief registering her real phone's token under an account of his
own took those from her too: found in review, 2026-12-07)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fjordbank.service_layer.push import settings_path, targets
from fjordbank.service_layer.push_tokens import (
    PUSH_TOKENS,
    claim_new_tokens,
    new_tokens,
    registry_path,
    settings_written,
)
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import NOW as CLOCK_NOW
from tests.support.use_cases import fixed_clock, seed

PHONE = "token-of-the-shared-phone"
NOW = int(CLOCK_NOW.timestamp())  # signedOutAt of a token another customer took


def device(token: str) -> dict[str, str]:
    return {"token": token, "platform": "ios"}


def settings(docs: MemoryDocuments, uid: str) -> dict[str, Any]:
    found = docs.get(settings_path(uid))
    return {} if found is None else found.data


def register(docs: MemoryDocuments, uid: str, device_id: str, token: str) -> list[str]:
    """What the app writes, then what the trigger on the write does."""
    before = docs.get(settings_path(uid))
    data = dict(before.data) if before is not None else {}
    after = {**data, "devices": {**data.get("devices", {}), device_id: device(token)}, "changed": device_id}
    seed(docs, {settings_path(uid): after})
    return settings_written(docs, uid, before.data if before else None, after, clock=fixed_clock())


def test_the_customer_who_registers_a_token_takes_it_from_the_one_before() -> None:
    docs = MemoryDocuments(fixed_clock())
    assert register(docs, "alice", "alices-phone", PHONE) == []
    assert register(docs, "alice", "alices-tablet", "token-of-her-tablet") == []
    assert register(docs, "bob", "bobs-phone", PHONE) == ["alice"]
    assert settings(docs, "alice")["devices"] == {"alices-tablet": device("token-of-her-tablet")}
    assert settings(docs, "bob")["devices"] == {"bobs-phone": device(PHONE)}
    assert docs.get(registry_path(PHONE)).data["uid"] == "bob"
    assert PHONE not in docs.get(registry_path(PHONE)).path  # kept by its hash
    alice = docs.get(settings_path("alice"))
    assert [t for t, _ in targets(alice, "payments")] == ["token-of-her-tablet"]  # no amount of hers on it
    assert sorted(t for t, _ in targets(alice, "security")) == sorted([PHONE, "token-of-her-tablet"])
    assert settings(docs, "alice")["signedOutDevices"] == {"alices-phone": {**device(PHONE), "signedOutAt": NOW}}
    # and back: Alice signs in on it again
    assert register(docs, "alice", "alices-phone-again", PHONE) == ["bob"]
    assert settings(docs, "bob")["devices"] == {}
    assert [t for t, _ in targets(docs.get(settings_path("bob")), "security")] == [PHONE]
    assert sorted(t for t, _ in targets(docs.get(settings_path("alice")), "payments")) == sorted(
        [PHONE, "token-of-her-tablet"]
    )


def test_a_token_taken_by_another_account_still_brings_her_the_notice_of_a_device_added() -> None:
    """The thief of a phone of Alice's read her devices' tokens while his session lasted;
    once the bank ended her sessions and her real phone signed in again, he registered its
    token under an account of his own. The claim took it from her devices and from those
    of her ended sessions, and the notice of the device he then enrolled on her account
    reached the stolen phone alone (found in review, 2026-12-07). A claim proves nothing
    about the install: it takes her pushes off the token, never her security notices."""
    docs = MemoryDocuments(fixed_clock())
    register(docs, "alice", "real-phone", PHONE)
    register(docs, "alice", "stolen-phone", "token-of-the-stolen-phone")
    ended = {  # the bank ended her sessions (sessions.py), then her real phone signed in again
        "devices": {"real-phone-again": device(PHONE)},
        "signedOutDevices": {"real-phone": device(PHONE), "stolen-phone": device("token-of-the-stolen-phone")},
    }
    write(docs, "alice", ended)
    assert register(docs, "mallory", "x", PHONE) == ["alice"]
    alice = docs.get(settings_path("alice"))
    assert PHONE in [t for t, _ in targets(alice, "security")]
    assert PHONE not in [t for t, _ in targets(alice, "payments")]
    assert settings(docs, "alice")["signedOutDevices"]["real-phone"] == device(PHONE)  # the bank's, untouched


def test_a_token_only_in_her_ended_sessions_devices_stays_there() -> None:
    docs = MemoryDocuments(fixed_clock())
    register(docs, "alice", "alices-phone", PHONE)
    moved = {"devices": {}, "signedOutDevices": {"alices-phone": device(PHONE), "old": device("old-token")}}
    seed(docs, {settings_path("alice"): moved})  # the bank ended her sessions (sessions.py)
    assert register(docs, "bob", "bobs-phone", PHONE) == ["alice"]
    assert settings(docs, "alice") == moved


def test_a_token_the_customer_had_already_or_removed_again_takes_nothing() -> None:
    docs = MemoryDocuments(fixed_clock())
    register(docs, "alice", "alices-phone", PHONE)
    seed(docs, {settings_path("bob"): {"devices": {}}})
    # Bob's write with the token, read by the trigger after his app removed it again
    assert claim_new_tokens(docs, "bob", {"devices": {}}, {"devices": {"p": device(PHONE)}}) == []
    assert settings(docs, "alice")["devices"] == {"alices-phone": device(PHONE)}
    # the same token under a second device id of Alice's is no new token
    assert new_tokens({"devices": {"a": device(PHONE)}}, {"devices": {"a": device(PHONE), "b": device(PHONE)}}) == []
    # a preference changed, a device removed, an entry of another shape: nothing new
    assert new_tokens({"devices": {"a": device(PHONE)}}, {"devices": {"a": device(PHONE)}, "payments": False}) == []
    assert new_tokens({"devices": {"a": device(PHONE)}}, {"devices": {}}) == []
    assert new_tokens(None, {"devices": {"a": {"token": 7}}}) == []
    assert new_tokens(None, None) == []


def test_a_claim_run_again_changes_nothing() -> None:
    """The trigger is retried when it fails: the second run finds the token claimed."""
    docs = MemoryDocuments(fixed_clock())
    register(docs, "alice", "alices-phone", PHONE)
    before = settings(docs, "bob") or None
    assert register(docs, "bob", "bobs-phone", PHONE) == ["alice"]
    assert claim_new_tokens(docs, "bob", before, settings(docs, "bob"), clock=fixed_clock()) == []
    assert settings(docs, "bob")["devices"] == {"bobs-phone": device(PHONE)}


def write(docs: MemoryDocuments, uid: str, after: dict[str, Any]) -> None:
    before = docs.get(settings_path(uid))
    seed(docs, {settings_path(uid): after})
    settings_written(docs, uid, before.data if before else None, after, clock=fixed_clock())


def registry(docs: MemoryDocuments) -> list[str]:
    return sorted(d.data["uid"] for d in docs.query(PUSH_TOKENS))


def test_the_registry_holds_the_tokens_customers_hold_not_every_one_ever_written() -> None:
    """An app writing a new token for one device id again and again grew the registry
    without end (found in review, 2026-12-07); a token taken out leaves it."""
    docs = MemoryDocuments(fixed_clock())
    for n in range(50):
        write(docs, "alice", {"devices": {"phone": device(f"token-{n}")}, "changed": "phone"})
    assert registry(docs) == ["alice"]
    write(docs, "alice", {"devices": {}, "changed": "phone"})
    assert registry(docs) == []


def test_a_token_moved_to_an_ended_session_stays_hers_in_the_registry() -> None:
    """Her security notices still go there; Bob registering it makes it his, and the
    trigger on the write to her settings that moved it takes it from nobody."""
    docs = MemoryDocuments(fixed_clock())
    register(docs, "alice", "alices-phone", PHONE)
    write(docs, "alice", {"devices": {}, "signedOutDevices": {"alices-phone": device(PHONE)}})
    assert registry(docs) == ["alice"]
    register(docs, "alice", "alices-phone-again", PHONE)
    hers = settings(docs, "alice")
    assert register(docs, "bob", "bobs-phone", PHONE) == ["alice"]
    assert settings_written(docs, "alice", hers, settings(docs, "alice")) == []  # the trigger on the move
    assert registry(docs) == ["bob"]
    write(docs, "alice", {**settings(docs, "alice"), "signedOutDevices": {}})  # rolled out of her ended ones
    assert registry(docs) == ["bob"]


def test_a_late_retry_of_an_earlier_claim_takes_nothing_from_the_later_one() -> None:
    """Alice's claim failed at first (the trigger is retried); Bob registered the token on
    the phone after her, and his claim took it from nobody. Her retry took it back from
    him, and her pushes reached the phone he uses (found in review, 2026-12-07): the
    claims go by when the tokens were registered, and hers loses to his."""
    docs = MemoryDocuments(fixed_clock())
    earlier, later = CLOCK_NOW - dt.timedelta(minutes=5), CLOCK_NOW - dt.timedelta(minutes=1)
    alices = {"devices": {"alices-phone": device(PHONE)}}
    seed(docs, {settings_path("alice"): alices})  # her write; its trigger's run failed
    bobs = {"devices": {"bobs-phone": device(PHONE)}}
    seed(docs, {settings_path("bob"): bobs})
    assert settings_written(docs, "bob", None, bobs, written_at=later) == []  # from nobody
    assert settings_written(docs, "alice", None, alices, written_at=earlier) == []  # her retry, late
    assert docs.get(registry_path(PHONE)).data == {"uid": "bob", "registeredAt": later}
    assert settings(docs, "bob")["devices"] == {"bobs-phone": device(PHONE)}
    assert settings(docs, "alice")["devices"] == {}  # as if hers had run first and his taken it
    alice = docs.get(settings_path("alice"))
    assert PHONE not in [t for t, _ in targets(alice, "payments")]
    assert PHONE in [t for t, _ in targets(alice, "security")]
    # her app registering it again, later than his, takes it
    again = {**settings(docs, "alice"), **alices}
    seed(docs, {settings_path("alice"): again})
    assert settings_written(docs, "alice", {"devices": {}}, again, written_at=CLOCK_NOW) == ["bob"]
    assert settings(docs, "bob")["devices"] == {}
