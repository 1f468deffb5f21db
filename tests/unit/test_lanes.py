"""fjordbank/service_layer/lanes.py: many items at once, each key's in order on one lane;
the deadline and the stop end the handing out; a failure is raised once the lanes end."""

from __future__ import annotations

import threading
import time

import pytest

from fjordbank.service_layer.lanes import READ_AHEAD, in_lanes, lane_of


def test_each_keys_items_are_worked_on_in_order_and_every_item_once() -> None:
    items = [(f"acct-{i % 7}", i) for i in range(300)]
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def work(item: tuple[str, int]) -> None:
        time.sleep(0.0005)
        with lock:
            seen.setdefault(item[0], []).append(item[1])

    assert in_lanes(items, key=lambda it: it[0], work=work, lanes=4) is False
    assert sorted(n for ns in seen.values() for n in ns) == list(range(300))
    for key, ns in seen.items():
        assert ns == [n for k, n in items if k == key]  # in the order given


def test_different_keys_are_worked_on_at_the_same_time() -> None:
    lanes = 4
    keys = []
    i = 0
    while len({lane_of(k, lanes) for k in keys}) < lanes:  # one key for each lane
        k = f"acct-{i}"
        if lane_of(k, lanes) not in {lane_of(x, lanes) for x in keys}:
            keys.append(k)
        i += 1
    together = threading.Barrier(lanes, timeout=5)  # passes only with every lane working at once
    in_lanes(keys, key=lambda k: k, work=lambda _k: together.wait(), lanes=lanes)


def test_one_lane_is_the_serial_loop() -> None:
    order: list[int] = []
    in_lanes(range(20), key=str, work=order.append, lanes=1)
    assert order == list(range(20))


def test_a_passed_deadline_stops_the_handing_out_and_says_deferred() -> None:
    handed: list[int] = []
    drawn: list[int] = []

    def items():
        for n in range(100):
            drawn.append(n)
            yield n

    deferred = in_lanes(
        items(),
        key=str,
        work=handed.append,
        lanes=2,
        deadline_passed=lambda: len(drawn) > 10,  # passes once the 11th item is read
    )
    assert deferred is True
    assert len(drawn) == 11  # nothing read after it
    assert set(handed) <= set(range(10))  # what was handed out is worked on, or dropped


def test_a_failure_is_raised_and_the_items_not_begun_are_dropped() -> None:
    done: list[int] = []

    def work(n: int) -> None:
        if n == 3:
            raise RuntimeError("boom")
        done.append(n)

    with pytest.raises(RuntimeError, match="boom"):
        in_lanes(range(200), key=lambda _n: "one account", work=work, lanes=4)
    assert done == [0, 1, 2]  # the same lane: nothing after the failure was worked on


def test_a_stop_set_by_the_work_drops_what_was_not_begun() -> None:
    stop = threading.Event()
    done: list[int] = []

    def work(n: int) -> None:
        done.append(n)
        if n == 4:
            stop.set()

    drawn: list[int] = []

    def items():
        for n in range(1000):
            drawn.append(n)
            yield n

    assert in_lanes(items(), key=lambda _n: "a", work=work, lanes=3, stop=stop) is False
    assert done == [0, 1, 2, 3, 4]
    assert len(drawn) <= 5 + READ_AHEAD + 1  # the handing out ended, not after reading everything


def test_lanes_are_stable_across_processes() -> None:
    assert lane_of("12345678903", 16) == lane_of("12345678903", 16)
    assert lane_of("12345678903", 16) == 2  # crc32, not Python's per-process salted hash
    with pytest.raises(ValueError, match="at least 1"):
        in_lanes([], key=str, work=lambda _x: None, lanes=0)


def test_one_keys_many_items_do_not_hold_up_the_other_lanes() -> None:
    """One payer's page of payments comes together (the query's order) and all go to one
    lane: the other keys' items, read after them, are still worked on meanwhile (a bounded
    lane queue held the hand-out, every other lane idle: found in review, 2026-12-06)."""
    release = threading.Event()
    others_done = threading.Event()
    seen_others: list[str] = []

    waited: list[bool] = []

    def work(item: tuple[str, int]) -> None:
        if item[0] == "busy":
            if item[1] == 0:  # the busy payer's first item holds its lane until the others are done
                waited.append(release.wait(5))
        else:
            seen_others.append(item[0])
            if len(seen_others) == 20:
                others_done.set()
                release.set()

    busy_lane = lane_of("busy", 8)
    others = [k for k in (f"acct-{i}" for i in range(200)) if lane_of(k, 8) != busy_lane][:20]
    items = [("busy", i) for i in range(200)] + [(k, 0) for k in others]
    in_lanes(items, key=lambda it: it[0], work=work, lanes=8)
    assert waited == [True]  # the others were done while the busy lane was held
    assert len(seen_others) == 20


def test_items_handed_out_and_not_begun_by_the_deadline_are_dropped_as_deferred() -> None:
    done: list[int] = []
    passed = threading.Event()

    def work(n: int) -> None:
        done.append(n)
        if n == 2:
            passed.set()

    deferred = in_lanes(range(50), key=lambda _n: "one", work=work, lanes=2, deadline_passed=passed.is_set)
    assert deferred is True
    assert done == [0, 1, 2]
