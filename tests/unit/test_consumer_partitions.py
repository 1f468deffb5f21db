"""A consumer that takes a partition tells its use case (``on_partition``), which forgets
the versions it remembers: another owner may have written those documents meanwhile
(fjordbank.service_layer.recent)."""

from __future__ import annotations

import datetime as dt

from fjordbank.config import load_settings
from fjordbank.runtime.consumer import ConsumerService
from fjordbank.service_layer.recent import Version, Versions


async def nothing(batch):  # pragma: no cover - never called
    return []


async def test_taking_a_partition_forgets_what_the_use_case_remembers():
    known = Versions(10)
    known.put("accounts/1", Version({"balance": 1}, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    svc = ConsumerService(durable="ledger", settings=load_settings({}), handler=nothing, on_partition=known.clear)
    await svc._acquire(3)
    assert len(known) == 0 and known.get("accounts/1") is None
    assert svc._active[3].is_set()


def test_the_most_recent_are_kept_and_the_least_recently_used_go_first():
    known: Versions = Versions(2)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for path in ("a", "b"):
        known.put(path, Version({}, at))
    assert known.get("a") is not None  # a used: b is now the oldest
    known.put("c", Version({}, at))
    assert (known.get("a") is not None, known.get("b"), known.get("c") is not None) == (True, None, True)
    known.forget(["a"])
    assert len(known) == 1
