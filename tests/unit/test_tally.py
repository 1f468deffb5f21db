"""fjordbank.runtime.tally: each message's failures and give-backs in this process, the
oldest forgotten past its size."""

from __future__ import annotations

from fjordbank.runtime.tally import DeliveryTally


def test_failures_and_give_backs_are_counted_apart_and_forgotten_when_settled():
    tally = DeliveryTally()
    key = ("ledger-p3", 42)
    tally.gave_back(key)
    tally.gave_back(key)
    assert tally.failed(key) == 1 and tally.failed(key) == 2
    assert tally.ended_here(key) == 4
    tally.forget(key)
    assert tally.ended_here(key) == 0 and len(tally) == 0
    assert tally.failed(("ledger-p4", 42)) == 1  # another durable's message with the same sequence


def test_the_oldest_message_is_forgotten_past_the_size():
    tally = DeliveryTally(size=3)
    for seq in range(1, 4):
        tally.failed(("ledger", seq))
    tally.failed(("ledger", 1))  # seen again: the newest now
    tally.failed(("ledger", 4))
    assert len(tally) == 3
    assert tally.ended_here(("ledger", 2)) == 0  # the oldest, forgotten
    assert tally.ended_here(("ledger", 1)) == 2


def test_transient_failures_are_the_failures_not_of_the_message_s_own():
    tally = DeliveryTally()
    key = ("notifier-cards", 7)
    assert tally.transient_failures(key) == 0
    tally.failed(key, own=True)
    tally.gave_back(key)
    assert tally.transient_failures(key) == 0
    tally.failed(key)
    assert tally.transient_failures(key) == 1 and tally.own_failures(key) == 1
