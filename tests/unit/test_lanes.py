"""fjordbank/service_layer/lanes.py: many items at once, each key's in order on one lane;
the deadline and the stop end the handing out; a failure is raised once the lanes end."""

from __future__ import annotations

import threading
import time

import pytest

from fjordbank.service_layer.lanes import QUEUE_DEPTH, in_lanes, lane_of


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
    calls = iter(range(1000))
    deferred = in_lanes(
        range(100),
        key=str,
        work=handed.append,
        lanes=2,
        deadline_passed=lambda: next(calls) >= 10,  # passes at the 11th item
    )
    assert deferred is True
    assert sorted(handed) == list(range(10))


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
    assert len(drawn) <= 5 + QUEUE_DEPTH + 1  # the handing out ended, not after reading everything


def test_lanes_are_stable_across_processes() -> None:
    assert lane_of("12345678903", 16) == lane_of("12345678903", 16)
    assert lane_of("12345678903", 16) == 2  # crc32, not Python's per-process salted hash
    with pytest.raises(ValueError, match="at least 1"):
        in_lanes([], key=str, work=lambda _x: None, lanes=0)
