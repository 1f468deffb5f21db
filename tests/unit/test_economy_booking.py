"""Unit tests for fjordbank.domain.economy_booking (booking a batch into "my economy" and
the subscription list, no I/O).

The promises checked here are the module's own: a batch reads each document it needs once;
a booking is counted in its month once, however often it is delivered (in one batch or
after its item was written); a recategorised merchant moves the booking's amount; transfers
between own accounts count nowhere and track no subscription; a regular charge is listed as
a subscription, keeps a customer's "not a subscription", and a listed one whose pattern
breaks is taken off the list (a dismissed one stays).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from fjordbank.domain import economy
from fjordbank.domain.bookings import Booking
from fjordbank.domain.economy_booking import (
    CHOSEN,
    DISMISSED,
    DROPPED_THROUGH,
    HISTORY,
    ITEM,
    LISTED,
    MONTH,
    OVERRIDE,
    SUBSCRIPTION,
    Booked,
    DocKey,
    NeedsReplay,
    also_needed,
    book,
    chosen_category,
    needed,
)
from fjordbank.domain.subscriptions import HISTORY_LIMIT

UID = "u1"
ACCOUNT = "12345678903"
PAYEE = "86011117947"


def card(tx: str, date: str, amount: int, merchant: str = "NETFLIX.COM", mcc: str = "4899") -> Booking:
    return Booking(UID, tx, ACCOUNT, date, amount, "out", "card", merchant_name=merchant, mcc=mcc)


def payment(tx: str, date: str, amount: int, direction: str = "out", *, own: bool = False) -> Booking:
    return Booking(UID, tx, ACCOUNT, date, amount, direction, "payment", counterparty_account=PAYEE, own_transfer=own)


def written(booked: Booked) -> dict[DocKey, dict[str, Any]]:
    """What a batch wrote, as the documents the next batch would read."""
    docs: dict[DocKey, dict[str, Any]] = {}
    docs |= {(ITEM, uid, t): item for (uid, t), item in booked.items.items()}
    docs |= {(ITEM, uid, t): item for (uid, t), item in booked.kept.items()}
    docs |= {(MONTH, uid, m): month for (uid, m), month in booked.months.items()}
    docs |= {(HISTORY, uid, k): history for (uid, k), history in booked.histories.items()}
    docs |= {(SUBSCRIPTION, uid, k): sub for (uid, k), sub in booked.subscriptions.items()}
    return docs


def run(batches: list[list[Booking]], found: dict[DocKey, dict[str, Any]] | None = None) -> dict[DocKey, Any]:
    """Book the batches one after the other, each reading what the ones before wrote."""
    docs = dict(found or {})
    for batch in batches:
        found = {k: docs[k] for k in needed(batch, replays=True) if k in docs}
        found |= {k: docs[k] for k in also_needed(batch, found) if k in docs}
        booked = book(batch, found, replays=True)
        docs |= written(booked)
        for uid, key in booked.unlisted:
            docs.pop((SUBSCRIPTION, uid, key), None)
    return docs


MONTHLY = [card(f"n{i}", f"2026-{m:02d}-09", 12_900) for i, m in enumerate((8, 9, 10, 11))]


# ------------------------------------------------------------------------------ reads


def test_a_batch_reads_each_document_once_and_own_transfers_read_nothing() -> None:
    a, b = card("c1", "2026-11-02", 100, "REMA 1000", "5411"), card("c2", "2026-11-03", 200, "REMA 1000", "5411")
    keys = needed([a, b, payment("own", "2026-11-04", 300, own=True)], replays=True)
    assert len(keys) == len(set(keys))
    assert set(keys) == {
        (ITEM, UID, "c1"),
        (ITEM, UID, "c2"),
        (MONTH, UID, "2026-11"),
        (HISTORY, UID, a.key),  # it says the customer's category: no override read
    }


def test_a_batch_of_new_bookings_reads_no_item_and_no_month() -> None:
    a, b = card("c1", "2026-11-02", 100, "REMA 1000", "5411"), card("c2", "2026-11-03", 200, "REMA 1000", "5411")
    keys = needed(
        [a, b, payment("salary", "2026-11-25", 300, "in"), payment("own", "2026-11-04", 300, own=True)], replays=False
    )
    assert len(keys) == len(set(keys))
    assert set(keys) == {(HISTORY, UID, a.key)}  # money in has no override and no history


def test_money_in_is_counted_but_tracks_no_subscription_and_reads_no_override() -> None:
    keys = needed([payment("salary", "2026-11-25", 4_500_000, "in")], replays=True)
    assert {k[0] for k in keys} == {ITEM, MONTH}


def test_a_choice_for_a_payee_never_recategorises_money_in_from_it() -> None:
    salary = payment("salary", "2026-11-25", 4_500_000, "in")
    booked = book([salary], {(OVERRIDE, UID, salary.key): {"category": "groceries"}}, replays=True)
    assert booked.items[(UID, "salary")]["category"] == "income"


# ------------------------------------------------------------------------- the economy


def test_a_booking_is_counted_in_its_month() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    booked = book([c], {}, replays=True)
    assert booked.months[(UID, "2026-11")] == {
        "month": "2026-11",
        "income": 0,
        "spending": {"groceries": 45_000},
        "spent": 45_000,
        "savings": -45_000,
        "count": 1,
    }
    # a charge out's item is its charge in the merchant's history: no document of its own
    assert booked.items == {}
    [charge] = booked.histories[(UID, c.key)]["charges"]
    assert charge == {"id": "c1", "date": "2026-11-02", "amount": 45_000, "category": "groceries"}
    salary = book([payment("salary", "2026-11-25", 4_500_000, "in")], {}, replays=True)
    item = salary.items[(UID, "salary")]  # money in: a document
    assert (item["amount"], item["category"], item["accountId"], item["date"]) == (
        4_500_000,
        "income",
        ACCOUNT,
        "2026-11-25",
    )


def test_a_redelivered_booking_is_counted_once() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    in_one_batch = book([c, c], {}, replays=True)
    assert in_one_batch.months[(UID, "2026-11")]["count"] == 1
    docs = run([[c]])
    again = book([c], {k: docs[k] for k in needed([c], replays=True) if k in docs}, replays=True)
    assert (again.items, again.months) == ({}, {})


def test_new_bookings_give_their_months_changes() -> None:
    """Without replays a month is what the batch adds (whatever month or item is found: the
    use case reads none), and a booking twice in the batch is added once."""
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    salary = payment("salary", "2026-11-25", 4_500_000, "in")
    docs = {k: v for k, v in run([[c, salary]]).items() if k[0] != HISTORY}  # the charge's history before it
    added = book([c, salary, c, payment("own", "2026-11-04", 300, own=True)], docs, replays=False)
    assert not added.replays and list(added.items) == [(UID, "salary")]  # created: money in
    assert added.months == {
        (UID, "2026-11"): {
            "month": "2026-11",
            "income": 4_500_000,
            "spending": {"groceries": 45_000},
            "spent": 45_000,
            "savings": 4_455_000,
            "count": 2,
        }
    }


def choose(docs: dict[DocKey, Any], key: str, category: str) -> None:
    """The customer's choice, as the recategorise callable writes it: the override document
    and the merchant's history's ``CHOSEN`` (a history it makes if there is none)."""
    docs[(OVERRIDE, UID, key)] = {"category": category}
    docs[(HISTORY, UID, key)] = {"key": key, "charges": [], **docs.get((HISTORY, UID, key), {}), CHOSEN: category}


def test_a_history_says_the_customers_category_so_no_override_is_read() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    assert docs[(HISTORY, UID, c.key)][CHOSEN] is None  # none chosen, and the history says so
    found = {(HISTORY, UID, c.key): docs[(HISTORY, UID, c.key)]}
    assert also_needed([c], found, choices_on_histories=True) == []
    # until then, None may be a choice the previous callable kept on the override only
    assert also_needed([c], found) == [(OVERRIDE, UID, c.key)]
    choose(docs, c.key, "restaurants")
    assert also_needed([c], {(HISTORY, UID, c.key): docs[(HISTORY, UID, c.key)]}) == []
    d = card("c2", "2026-11-09", 30_000, "REMA 1000", "5411")
    after = run([[d]], {k: v for k, v in docs.items() if k[0] != OVERRIDE})  # never read
    assert after[(MONTH, UID, "2026-11")]["spending"] == {"groceries": 45_000, "restaurants": 30_000}
    assert after[(HISTORY, UID, c.key)][CHOSEN] == "restaurants"  # kept on the history's next write


def test_a_history_that_says_none_chosen_reads_the_override_until_every_choice_is_on_its_history() -> None:
    """The insights service is deployed before the recategorise callable: it wrote None on
    a merchant's history, the previous callable kept the customer's choice on the override
    only, and None was taken for "none chosen": the choice was never read (found in review,
    2026-12-07). A choice is never taken back, so None says no more than no field."""
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    assert docs[(HISTORY, UID, c.key)][CHOSEN] is None
    docs[(OVERRIDE, UID, c.key)] = {"category": "restaurants"}  # the previous callable: the override only
    d = card("c2", "2026-11-09", 30_000, "REMA 1000", "5411")
    after = run([[d]], docs)  # (c1, booked before the choice, is the callable's to move)
    assert after[(MONTH, UID, "2026-11")]["spending"] == {"groceries": 45_000, "restaurants": 30_000}
    assert after[(HISTORY, UID, c.key)][CHOSEN] == "restaurants"  # says it from now on
    assert chosen_category({(HISTORY, UID, c.key): {CHOSEN: None}}, UID, c.key) is None  # no override read


def test_once_every_choice_is_on_its_history_no_override_is_read() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    assert also_needed([c], {}, choices_on_histories=True) == []  # its first charge: no choice
    docs = run([[c]])
    before = {k: v for k, v in docs[(HISTORY, UID, c.key)].items() if k != CHOSEN}  # no choice said: none
    assert also_needed([c], {(HISTORY, UID, c.key): before}, choices_on_histories=True) == []


def test_a_merchant_without_a_history_or_with_one_from_before_reads_its_override() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    assert also_needed([c], {}) == [(OVERRIDE, UID, c.key)]  # its first charge (no subscription either)
    docs = run([[c]])
    before = {k: v for k, v in docs[(HISTORY, UID, c.key)].items() if k != CHOSEN}  # written before the field
    assert (OVERRIDE, UID, c.key) in also_needed([c], {(HISTORY, UID, c.key): before})
    d = card("c2", "2026-11-09", 30_000, "REMA 1000", "5411")
    after = run([[d]], {(HISTORY, UID, c.key): before, (OVERRIDE, UID, c.key): {"category": "restaurants"}})
    assert after[(MONTH, UID, "2026-11")]["spending"] == {"restaurants": 30_000}
    assert after[(HISTORY, UID, c.key)][CHOSEN] == "restaurants"  # says it from now on


def test_a_recategorised_merchant_moves_the_booking_s_amount() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    choose(docs, c.key, "restaurants")
    moved = book([c], {k: docs[k] for k in needed([c], replays=True) if k in docs}, replays=True)
    month = moved.months[(UID, "2026-11")]
    assert (month["spending"], month["count"]) == ({"restaurants": 45_000}, 1)
    assert moved.histories[(UID, c.key)]["charges"][0]["category"] == "restaurants"


# --------------------------------------------------- a charge out's item, in its history


def found_for(batch: list[Booking], docs: dict[DocKey, Any], *, replays: bool) -> dict[DocKey, Any]:
    """What the use case reads for ``batch`` (without ``replays``: no item, no month)."""
    return {k: docs[k] for k in needed(batch, replays=replays) if k in docs}


def test_a_charge_its_history_has_is_not_counted_again_and_reads_no_item() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    again = book([c], found_for([c], docs, replays=False), replays=False)
    assert (again.items, again.months, again.kept) == ({}, {}, {})
    assert again.histories[(UID, c.key)] == docs[(HISTORY, UID, c.key)]  # the same history


def test_a_charge_booked_before_in_another_category_is_booked_again_reading_its_month() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    choose(docs, c.key, "restaurants")
    with pytest.raises(NeedsReplay):  # moving it takes its month as it is
        book([c], found_for([c], docs, replays=False), replays=False)


def test_a_charge_from_before_items_moved_onto_histories_keeps_its_item_document() -> None:
    c = card("c1", "2026-11-02", 45_000, "REMA 1000", "5411")
    docs = run([[c]])
    history = docs[(HISTORY, UID, c.key)]
    docs[(HISTORY, UID, c.key)] = {
        **history,
        "charges": [{k: v for k, v in ch.items() if k != "category"} for ch in history["charges"]],
    }
    docs[(ITEM, UID, "c1")] = {**economy.Item("2026-11", "out", "groceries", 45_000).to_dict(), "key": c.key}
    with pytest.raises(NeedsReplay):
        book([c], found_for([c], docs, replays=False), replays=False)
    choose(docs, c.key, "restaurants")
    moved = book([c], found_for([c], docs, replays=True), replays=True)
    assert moved.items[(UID, "c1")]["category"] == "restaurants"  # the document, as before
    assert "category" not in moved.histories[(UID, c.key)]["charges"][0]
    assert moved.months[(UID, "2026-11")]["spending"] == {"restaurants": 45_000}


def test_a_charge_a_full_history_drops_takes_its_item_to_a_document() -> None:
    daily = [
        card(f"d{n:03d}", f"2026-{9 + n // 28:02d}-{1 + n % 28:02d}", 4_500, "KAFFEBAREN", "5814")
        for n in range(HISTORY_LIMIT + 1)
    ]
    docs = run([daily[:HISTORY_LIMIT]])
    assert not any(k[0] == ITEM for k in docs)
    booked = book([daily[-1]], found_for([daily[-1]], docs, replays=False), replays=False)
    oldest = daily[0]
    assert list(booked.kept) == [(UID, oldest.tx_id)]
    assert booked.kept[(UID, oldest.tx_id)] == {
        "month": "2026-09",
        "direction": "out",
        "category": booked.kept[(UID, oldest.tx_id)]["category"],
        "amount": 4_500,
        "key": oldest.key,
        "date": oldest.date,
    }
    docs |= written(booked)
    # the dropped charge again: older than all the full history keeps, so perhaps booked
    with pytest.raises(NeedsReplay):
        book([oldest], found_for([oldest], docs, replays=False), replays=False)
    again = book([oldest], found_for([oldest], docs, replays=True), replays=True)
    assert (again.items, again.months) == ({}, {})  # its document: counted once


def same_day(n: int, start: int = 100) -> list[Booking]:
    """``n`` purchases at one merchant on one day, their ids in order (the card kind of the
    bench: one customer paying one merchant more than a history keeps in a day)."""
    return [card(f"t{start + i:04d}", "2026-11-20", 4_500, "KAFFEBAREN", "5814") for i in range(n)]


def test_a_new_charge_of_a_full_history_s_oldest_day_is_booked_without_reading_its_item() -> None:
    """A history full of one day's charges that never dropped one: a new charge of that
    day that sorts before them all was never in it, so it is booked at once (and dropped
    at once, its item to a document); one that sorts at or before the newest dropped may
    have been, and is booked reading its item."""
    kept = same_day(HISTORY_LIMIT, start=100)
    docs = run([kept])
    assert docs[(HISTORY, UID, kept[0].key)][DROPPED_THROUGH] is None
    early = same_day(2, start=10)  # t0010, t0011: sort before every kept one
    booked = book([early[1]], found_for([early[1]], docs, replays=False), replays=False)
    assert list(booked.kept) == [(UID, "t0011")]  # dropped at once, its item a document
    assert booked.histories[(UID, kept[0].key)][DROPPED_THROUGH] == ["2026-11-20", "t0011"]
    docs |= written(booked)
    with pytest.raises(NeedsReplay):  # t0010 sorts before t0011, the newest dropped: perhaps booked
        book([early[0]], found_for([early[0]], docs, replays=False), replays=False)
    with pytest.raises(NeedsReplay):  # t0011 itself again (a redelivery): its item is a document
        book([early[1]], found_for([early[1]], docs, replays=False), replays=False)
    between = card("t0050", "2026-11-20", 4_500, "KAFFEBAREN", "5814")  # after t0011, before t0100
    booked = book([between], found_for([between], docs, replays=False), replays=False)
    assert list(booked.kept) == [(UID, "t0050")]
    assert booked.histories[(UID, kept[0].key)][DROPPED_THROUGH] == ["2026-11-20", "t0050"]


def test_a_full_history_from_before_the_field_takes_everything_up_to_its_oldest_as_maybe_dropped() -> None:
    kept = same_day(HISTORY_LIMIT, start=100)
    docs = run([kept])
    del docs[(HISTORY, UID, kept[0].key)][DROPPED_THROUGH]  # as written before 2026-12-02
    early = card("t0050", "2026-11-20", 4_500, "KAFFEBAREN", "5814")
    with pytest.raises(NeedsReplay):
        book([early], found_for([early], docs, replays=False), replays=False)
    booked = book([early], found_for([early], docs, replays=True), replays=True)
    # the history now says what it may have dropped: up to its oldest charge then
    assert booked.histories[(UID, kept[0].key)][DROPPED_THROUGH] == ["2026-11-20", "t0100"]


def run_as_the_use_case(batches: list[list[Booking]]) -> dict[DocKey, Any]:
    """``run``, each batch first without replays (a month as increments, items created) and
    again with them when it raises NeedsReplay or an item it creates is there already."""
    docs: dict[DocKey, Any] = {}
    for batch in batches:
        try:
            booked = book(batch, found_for(batch, docs, replays=False), replays=False)
            if any((ITEM, uid, t) in docs for uid, t in booked.items):
                raise NeedsReplay("a create fails")
        except NeedsReplay:
            booked = book(batch, found_for(batch, docs, replays=True), replays=True)
            docs |= written(booked)
        else:
            for (uid, month), change in booked.months.items():
                before = economy.Month.from_dict(docs.get((MONTH, uid, month), {"month": month}))
                added = economy.Month.from_dict(change)
                before.income += added.income
                before.count += added.count
                for category, amount in added.spending.items():
                    before.spending[category] = before.spending.get(category, 0) + amount
                docs[(MONTH, uid, month)] = before.to_dict()
            docs |= {k: v for k, v in written(booked).items() if k[0] != MONTH}
        for uid, key in booked.unlisted:
            docs.pop((SUBSCRIPTION, uid, key), None)
    return docs


@pytest.mark.parametrize("runner", [run, run_as_the_use_case], ids=["replays", "as-the-use-case"])
def test_the_months_equal_a_recomputation_past_a_full_history_and_replays(runner) -> None:
    daily = [
        card(f"d{n:03d}", f"2026-{9 + n // 28:02d}-{1 + n % 28:02d}", 4_500 + n, "KAFFEBAREN", "5814")
        for n in range(HISTORY_LIMIT + 20)
    ]
    salary = payment("salary", "2026-10-25", 4_500_000, "in")
    batches = [daily[:30], [salary, *daily[30:70]], daily[70:], daily[::-1], [salary, *daily[:5]]]
    docs = runner(batches)
    recomputed = economy.recompute([*daily, salary])
    for month, figures in recomputed.items():
        assert economy.Month.from_dict(docs[(MONTH, UID, month)]).figures() == figures.figures()
    kept_on_history = {ch["id"] for ch in docs[(HISTORY, UID, daily[0].key)]["charges"]}
    documents = {k[2] for k in docs if k[0] == ITEM}
    assert kept_on_history.isdisjoint(documents) and kept_on_history | documents == {b.tx_id for b in daily} | {
        "salary"
    }


@pytest.mark.parametrize("runner", [run, run_as_the_use_case], ids=["replays", "as-the-use-case"])
def test_the_months_equal_a_recomputation_of_one_day_s_many_charges_in_any_order(runner) -> None:
    charges = same_day(HISTORY_LIMIT + 40)
    shuffled = random.Random(7).sample(charges, len(charges))
    batches = [shuffled[i : i + 7] for i in range(0, len(shuffled), 7)] + [shuffled[:10]]
    docs = runner(batches)
    for month, figures in economy.recompute(charges).items():
        assert economy.Month.from_dict(docs[(MONTH, UID, month)]).figures() == figures.figures()
    kept_on_history = {ch["id"] for ch in docs[(HISTORY, UID, charges[0].key)]["charges"]}
    documents = {k[2] for k in docs if k[0] == ITEM}
    assert kept_on_history.isdisjoint(documents) and kept_on_history | documents == {b.tx_id for b in charges}


def test_the_months_equal_a_recomputation_of_the_same_bookings() -> None:
    bookings = [
        payment("salary", "2026-11-25", 4_500_000, "in"),
        card("c1", "2026-11-02", 45_000, "REMA 1000", "5411"),
        card("c2", "2026-10-30", 12_900),
        payment("rent", "2026-11-01", 1_200_000),
        payment("savings", "2026-11-26", 500_000, own=True),
    ]
    docs = run([bookings[:2], bookings[2:], bookings])  # the last batch: every one again
    recomputed = economy.recompute(bookings)
    for month, figures in recomputed.items():
        assert economy.Month.from_dict(docs[(MONTH, UID, month)]).figures() == figures.figures()


def test_a_transfer_between_own_accounts_counts_nowhere() -> None:
    booked = book([payment("own", "2026-11-04", 300, own=True)], {}, replays=True)
    assert booked == Booked({}, {}, {}, {}, [], replays=True)


# ------------------------------------------------------------------------ subscriptions


def test_a_monthly_charge_is_listed_as_a_subscription() -> None:
    docs = run([[c] for c in MONTHLY])
    sub = docs[(SUBSCRIPTION, UID, MONTHLY[0].key)]
    assert (sub["interval"], sub["amount"], sub["status"], sub["category"]) == (
        "monthly",
        12_900,
        "active",
        "subscriptions",
    )
    assert [c["id"] for c in docs[(HISTORY, UID, MONTHLY[0].key)]["charges"]] == ["n0", "n1", "n2", "n3"]


def test_the_charges_of_one_batch_are_detected_together() -> None:
    booked = book(MONTHLY, {}, replays=True)
    assert list(booked.subscriptions) == [(UID, MONTHLY[0].key)]


def test_a_customer_s_not_a_subscription_sticks() -> None:
    key = MONTHLY[0].key
    docs = run([[c] for c in MONTHLY[:3]])
    assert docs[(HISTORY, UID, key)][LISTED] == "active" == docs[(SUBSCRIPTION, UID, key)]["status"]
    docs[(SUBSCRIPTION, UID, key)]["status"] = docs[(HISTORY, UID, key)][LISTED] = DISMISSED  # the callable
    docs = run([[MONTHLY[3]]], docs)
    sub = docs[(SUBSCRIPTION, UID, key)]
    assert (sub["status"], sub["occurrences"], docs[(HISTORY, UID, key)][LISTED]) == (DISMISSED, 4, DISMISSED)


def test_a_charge_reads_the_history_and_not_the_subscription() -> None:
    docs = run([[c] for c in MONTHLY[:3]])
    history = (HISTORY, UID, MONTHLY[0].key)
    assert history in needed([MONTHLY[3]], replays=False)
    assert also_needed([MONTHLY[3]], {history: docs[history]}) == [(OVERRIDE, UID, MONTHLY[0].key)]  # says None
    assert also_needed([MONTHLY[3]], {history: docs[history]}, choices_on_histories=True) == []
    assert SUBSCRIPTION not in {k[0] for k in also_needed([MONTHLY[3]], {})}  # no history yet: no subscription


def test_a_history_from_before_the_listed_status_reads_its_subscription_once() -> None:
    key = MONTHLY[0].key
    old = {"charges": [{"id": f"n{i}", "date": c.date, "amount": c.amount} for i, c in enumerate(MONTHLY[:3])]}
    assert also_needed([MONTHLY[3]], {(HISTORY, UID, key): old}) == [(OVERRIDE, UID, key), (SUBSCRIPTION, UID, key)]
    docs = run([[MONTHLY[3]]], {(HISTORY, UID, key): old, (SUBSCRIPTION, UID, key): {"status": DISMISSED}})
    assert docs[(SUBSCRIPTION, UID, key)]["status"] == DISMISSED == docs[(HISTORY, UID, key)][LISTED]


def test_a_broken_pattern_is_taken_off_the_list_unless_dismissed() -> None:
    key = MONTHLY[0].key
    odd = card("odd", "2026-11-20", 99_000)  # one charge and another of a different price: no pattern
    charges = {"charges": [{"id": "n0", "date": "2026-08-09", "amount": 12_900}]}

    def history(status):
        return {(HISTORY, UID, key): {**charges, LISTED: status}}

    broken = book([odd], history("active"), replays=True)
    assert broken.unlisted == [(UID, key)] and broken.histories[(UID, key)][LISTED] is None
    assert book([odd], history(DISMISSED), replays=True).unlisted == []
    assert book([odd], history(None), replays=True).unlisted == []  # never listed: nothing to take off
    # a history from before LISTED: its subscription document says
    legacy = {(HISTORY, UID, key): charges, (SUBSCRIPTION, UID, key): {"status": "active"}}
    assert book([odd], legacy, replays=True).unlisted == [(UID, key)]
