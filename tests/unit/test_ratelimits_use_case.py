"""The rate limit's use case (fjordbank.service_layer.ratelimits) on the in-memory ports:
one write per request, whose result carries the counts it decides on (one round trip, no
read, no transaction), and the sliding window of fjordbank.domain.ratelimit."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain.ratelimit import LIMITS, window
from fjordbank.service_layer import ratelimits
from fjordbank.service_layer.ports import Increment
from tests.support.memory import MemoryDocuments
from tests.support.round_trips import RoundTrips

START = dt.datetime(2027, 3, 10, 10, 0, 0, tzinfo=dt.UTC)  # a window's first second
CARDS = LIMITS["cards"]  # 20 a minute


def at(seconds: float):
    return lambda: START + dt.timedelta(seconds=seconds)


@pytest.fixture
def docs() -> RoundTrips:
    return RoundTrips(MemoryDocuments(at(0)))


def counts(docs: RoundTrips, uid: str = "u1", action: str = "cards") -> dict:
    doc = docs.docs.get(ratelimits.document_path(uid, action))
    return {} if doc is None else doc.data["w"]


def test_a_check_is_one_write_and_no_read(docs):
    ratelimits.check(docs, "u1", "cards", clock=at(1))
    assert docs.counts == {"Commit": 1}
    index = window(CARDS, at(1)().timestamp()).index
    assert counts(docs) == {ratelimits.window_key(index): 1, ratelimits.window_key(index - 1): 0}


def test_up_to_the_capacity_in_a_window_then_refused_with_a_wait(docs):
    for _ in range(CARDS.capacity):
        ratelimits.check(docs, "u1", "cards", clock=at(5))
    with pytest.raises(ratelimits.RateLimited) as refused:
        ratelimits.check(docs, "u1", "cards", clock=at(5))
    assert refused.value.code == "rate_limited" and refused.value.retry_after > 0
    assert "cards" in refused.value.message
    # the refused request counted too: a client that keeps retrying stays refused
    assert sum(counts(docs).values()) == CARDS.capacity + 1


def test_the_previous_windows_count_weighs_less_as_the_window_goes_by(docs):
    for _ in range(CARDS.capacity):
        ratelimits.check(docs, "u1", "cards", clock=at(59))
    with pytest.raises(ratelimits.RateLimited):  # early in the next window: the last one weighs nearly fully
        ratelimits.check(docs, "u1", "cards", clock=at(61))
    ratelimits.check(docs, "u1", "cards", clock=at(60 + 45))  # a quarter of it is left


def test_users_and_actions_are_counted_apart(docs):
    for _ in range(CARDS.capacity):
        ratelimits.check(docs, "u1", "cards", clock=at(5))
    ratelimits.check(docs, "u2", "cards", clock=at(5))
    ratelimits.check(docs, "u1", "accounts", clock=at(5))
    with pytest.raises(ratelimits.RateLimited):
        ratelimits.check(docs, "u1", "cards", clock=at(5))


def test_old_windows_are_deleted_and_the_document_expires(docs):
    for seconds in (0, 60, 120, 180):
        ratelimits.check(docs, "u1", "cards", clock=at(seconds))
    index = window(CARDS, at(180)().timestamp()).index
    assert set(counts(docs)) == {ratelimits.window_key(index), ratelimits.window_key(index - 1)}
    doc = docs.docs.get(ratelimits.document_path("u1", "cards"))
    assert doc.data["expireAt"] == at(180 + 2 * CARDS.period_seconds)()


def test_a_count_in_a_callers_batch_reads_its_own_result(docs):
    """The edge adds the count to its own commit (with the signature's use): the count finds
    its write's result wherever it is in the batch."""
    batch = docs.batch()
    batch.set("elsewhere/x", {"n": Increment(7)})
    counted = ratelimits.count_in(batch, "u1", "cards", now=at(1)().timestamp())
    batch.create("scaUsed/abc", {"request": "r"})
    counted.check(batch.commit())
    assert docs.counts == {"Commit": 1} and sum(counts(docs).values()) == 1


def test_a_full_window_refuses_from_the_count_documents_state(docs):
    """As the integration tests exhaust a limit: the counts written straight into the document."""
    index = window(CARDS, at(1)().timestamp()).index
    full = {ratelimits.window_key(i): CARDS.capacity for i in (index - 1, index)}
    b = docs.docs.batch()
    b.set(ratelimits.document_path("u1", "cards"), {"w": full}, merge=True)
    b.commit()
    with pytest.raises(ratelimits.RateLimited):
        ratelimits.check(docs, "u1", "cards", clock=at(1))
