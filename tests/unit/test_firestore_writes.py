"""fjordbank.adapters.firestore_writes builds the very ``Write`` the Firestore client would.

Every case compares serialised bytes with the client's own `_helpers.pbs_for_*`, fed the
same data through the adapter's sentinel conversion (`documents.to_firestore`); a write the
module leaves to the client (None) must be one the client refuses, or one with a value
type the module does not encode."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import firestore as firestore_types
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.adapters import firestore_writes
from fjordbank.adapters.documents import to_firestore
from fjordbank.service_layer.ports import DELETE_FIELD, SERVER_TIME, Increment

NAME = "projects/p/databases/(default)/documents/ledgerPayments/p-1"
UTC = dt.UTC

keys = st.one_of(
    st.sampled_from(["a", "b", "status", "steps", "w", "_x", "amount"]),
    st.text(alphabet="ab1_.`\\ø-~ ", min_size=1, max_size=6),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.datetimes(timezones=st.just(UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)
sentinels = st.one_of(
    st.just(SERVER_TIME),
    st.just(DELETE_FIELD),
    st.integers(-1000, 1000).map(Increment),
    st.floats(-10, 10, allow_nan=False).map(Increment),
)
documents = st.recursive(
    st.one_of(values, sentinels),
    lambda inner: st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
).filter(lambda d: isinstance(d, dict))
dotted = st.lists(st.sampled_from(["a", "b", "steps", "credit", "x_1"]), min_size=1, max_size=3).map(".".join)
updates = st.dictionaries(st.one_of(dotted, keys), st.one_of(values, sentinels, documents), min_size=1, max_size=4)
times = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
    st.builds(
        lambda s, n: DatetimeWithNanoseconds.from_timestamp_pb(_pb_time(s, n)),
        st.integers(0, 2**33),
        st.integers(0, 999_999_999),
    ),
)


def _pb_time(seconds: int, nanos: int):
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=seconds, nanos=nanos)


def client_bytes(build) -> bytes | None:
    """The client's write, serialised (None: it refuses the write)."""
    try:
        (pb,) = build()
    except (ValueError, TypeError, AttributeError):  # (conflicting update paths fail in its walk)
        return None
    return pb._pb.SerializeToString(deterministic=True)


def ours(pb) -> bytes | None:
    return None if pb is None else pb.SerializeToString(deterministic=True)


def agree(mine, theirs: bytes | None) -> None:
    """Ours is the client's byte for byte, and ours is None exactly where the client refuses
    the write (the data drawn here holds only types this module encodes)."""
    assert ours(mine) == theirs


@settings(max_examples=400, deadline=None)
@given(documents)
def test_a_create_is_the_clients(data):
    agree(firestore_writes.create(NAME, data), client_bytes(lambda: _helpers.pbs_for_create(NAME, to_firestore(data))))


@settings(max_examples=400, deadline=None)
@given(documents, st.booleans())
def test_a_set_is_the_clients(data, merge):
    def theirs():
        if merge:
            return _helpers.pbs_for_set_with_merge(NAME, to_firestore(data), merge=True)
        return _helpers.pbs_for_set_no_merge(NAME, to_firestore(data))

    agree(firestore_writes.set_(NAME, data, merge=merge), client_bytes(theirs))


@settings(max_examples=400, deadline=None)
@given(updates, times)
def test_an_update_is_the_clients(data, when):
    option = _helpers.LastUpdateOption(when) if when is not None else None
    mine = firestore_writes.update(NAME, data, if_updated=when)
    theirs = client_bytes(lambda: _helpers.pbs_for_update(NAME, to_firestore(data), option))
    if mine is None and theirs is not None:
        # two keys naming one field (" _" and "_" parse alike): the client writes something
        # for that, and the adapter lets it
        assert len({firestore_writes.split_path(key) for key in data}) < len(data)
    else:
        agree(mine, theirs)


def test_the_writes_the_services_send_are_encoded_here_not_left_to_the_client():
    """The shapes the ledger, the notifier and insights write all take the fast path."""
    record = {
        "paymentId": "p-1",
        "amount": 12_345,
        "steps": {"approved": {"result": "ok", "at": dt.datetime(2026, 12, 1, tzinfo=UTC)}},
        "labels": ["a", 1, None],
        "updatedAt": SERVER_TIME,
    }
    update = {"steps.credit": {"result": "ok"}, "status": "completed", "held": DELETE_FIELD, "n": Increment(1)}
    when = DatetimeWithNanoseconds(2026, 12, 1, 10, 0, 0, nanosecond=123456789, tzinfo=UTC)
    made = [
        firestore_writes.create(NAME, record),
        firestore_writes.set_(NAME, record),
        firestore_writes.set_(NAME, {**record, "gone": DELETE_FIELD}, merge=True),
        firestore_writes.update(NAME, update, if_updated=when),
        firestore_writes.update(NAME, {"w.`000000004711`": Increment(5)}),
    ]
    assert all(pb is not None for pb in made)
    assert ours(made[3]) == client_bytes(
        lambda: _helpers.pbs_for_update(NAME, to_firestore(update), _helpers.LastUpdateOption(when))
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: firestore_writes.create(NAME, {"a": DELETE_FIELD}),
        lambda: firestore_writes.set_(NAME, {"a": {"b": DELETE_FIELD}}),
        lambda: firestore_writes.update(NAME, {}),
        lambda: firestore_writes.update(NAME, {"a": 1, "a.b": 2}),
        lambda: firestore_writes.update(NAME, {"a": {"b": DELETE_FIELD}}),
        lambda: firestore_writes.create(NAME, {"a": [SERVER_TIME]}),
        lambda: firestore_writes.create(NAME, {"a": object()}),
    ],
    ids=["delete in create", "delete in set", "empty update", "conflict", "nested delete", "in array", "unknown"],
)
def test_what_the_client_refuses_is_left_to_the_client(make):
    assert make() is None


def test_a_commit_request_carries_the_raw_writes_as_they_are():
    pb = firestore_writes.create(NAME, {"a": 1, "t": SERVER_TIME})
    request = firestore_types.CommitRequest(database="projects/p/databases/(default)", writes=[pb])
    assert request._pb.writes[0] == pb
