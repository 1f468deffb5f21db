"""fjordbank.service_layer.insights on the in-memory documents: the customer's corrections
(recategorise a merchant, dismiss a subscription) and my economy recomputed from the
ledger's records against the one the insights service keeps.

What is promised: a category is chosen per merchant and only for spending on one's own
accounts; choosing it moves the merchant's bookings between categories in "my economy"
(their months with them, in chunks of a bounded size), relabels the feed entries and the
subscription; a subscription's status sticks; the recomputation equals the kept figures
when they are right and says where they are not.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from google.api_core import exceptions as api_errors

from fjordbank.domain import economy
from fjordbank.service_layer import insights
from fjordbank.service_layer.insights import InsightsRefused
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import NOW, account_numbers, customer_account, data, fixed_clock, seed

UID, OTHER = "alice", "bob"
REFUNDED = dt.datetime(2027, 3, 10, 9, 0, tzinfo=dt.UTC)
SPENDING, BOBS, SAVINGS = itertools.islice(account_numbers(), 3)
REMA = "m:rema-1000"  # override_key of the card merchant "REMA 1000"


def month(name: str, **spending: int) -> dict:
    return economy.Month(name, spending=spending, count=len(spending)).to_dict()


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    feed = f"accounts/{SPENDING}/transactions"
    seed(
        docs,
        {
            f"accounts/{SPENDING}": customer_account(UID, SPENDING),
            f"accounts/{BOBS}": customer_account(OTHER, BOBS),
            f"{feed}/auth-1": {"direction": "out", "kind": "card", "merchantKey": REMA, "category": "groceries"},
            f"{feed}/auth-2": {"direction": "out", "kind": "card", "merchantKey": REMA, "category": "groceries"},
            f"{feed}/auth-3": {"direction": "out", "kind": "card", "merchantKey": "m:kiwi", "category": "groceries"},
            f"{feed}/pay-in-1": {"direction": "in", "kind": "payment", "counterpartyAccount": BOBS},
            f"accounts/{SAVINGS}": customer_account(UID, SAVINGS),
            f"{feed}/pay-own-1": {
                "direction": "out",
                "kind": "payment",
                "counterpartyAccount": SAVINGS,
                "merchantKey": f"a:{SAVINGS}",
                "category": "transfers",
            },
            f"{feed}/pay-out-1": {
                "direction": "out",
                "kind": "payment",
                "counterpartyAccount": BOBS,
                "merchantKey": f"a:{BOBS}",
                "category": "transfers",
            },
            f"users/{UID}/economyItems/auth-1": {**item("2027-03", 500), "key": REMA},
            f"users/{UID}/economyItems/auth-2": {**item("2027-02", 300), "key": REMA},
            f"users/{UID}/economyItems/auth-3": {**item("2027-03", 200), "key": "m:kiwi"},
            f"users/{UID}/economy/2027-03": month("2027-03", groceries=700),
            f"users/{UID}/economy/2027-02": month("2027-02", groceries=300),
            f"users/{UID}/subscriptions/{REMA}": {"status": "active", "category": "groceries"},
        },
    )
    return docs


def item(month_name: str, amount: int, category: str = "groceries") -> dict:
    return economy.Item(month_name, "out", category, amount).to_dict()


def refused(call) -> str:
    with pytest.raises(InsightsRefused) as caught:
        call()
    return caught.value.code


def recategorise(docs, transaction_id: str = "auth-1", category: str = "restaurants", uid: str = UID) -> dict:
    return insights.recategorise(docs, uid, SPENDING, transaction_id, category, clock=fixed_clock())


def test_a_merchant_recategorised_moves_its_bookings_months_feed_and_subscription(docs):
    result = recategorise(docs)
    assert result == {"key": REMA, "category": "restaurants", "bookingsMoved": 2, "entriesRelabelled": 2}
    assert data(docs, f"users/{UID}/categoryOverrides/{REMA}") == {
        "category": "restaurants",
        "key": REMA,
        "updatedAt": NOW,
    }
    march = economy.Month.from_dict(data(docs, f"users/{UID}/economy/2027-03"))
    february = economy.Month.from_dict(data(docs, f"users/{UID}/economy/2027-02"))
    assert march.spending == {"groceries": 200, "restaurants": 500} and february.spending == {"restaurants": 300}
    assert data(docs, f"users/{UID}/economyItems/auth-3")["category"] == "groceries"  # another merchant
    feed = f"accounts/{SPENDING}/transactions"
    assert [data(docs, f"{feed}/auth-{i}")["category"] for i in (1, 2, 3)] == [
        "restaurants",
        "restaurants",
        "groceries",
    ]
    assert data(docs, f"users/{UID}/subscriptions/{REMA}")["category"] == "restaurants"
    # the merchant had no history: one is made to carry the choice (the insights service
    # reads it for every charge, and no override), in the unit of work that kept the override
    assert data(docs, f"users/{UID}/merchantHistory/{REMA}") == {
        "key": REMA,
        "charges": [],
        "chosenCategory": "restaurants",
    }


def test_a_merchants_history_carries_the_choice_with_its_override(docs):
    coop = "m:coop"
    history = {"key": coop, "charges": [{"id": "c1", "date": "2027-03-05", "amount": 60, "category": "groceries"}]}
    seed(
        docs,
        {
            f"accounts/{SPENDING}/transactions/c1": {"direction": "out", "kind": "card", "merchantKey": coop},
            f"users/{UID}/merchantHistory/{coop}": {**history, "subscriptionStatus": "dismissed"},
            f"users/{UID}/economy/2027-03": month("2027-03", groceries=60),
        },
    )
    commits = docs.store.commits
    recategorise(docs, "c1", "restaurants")
    kept = data(docs, f"users/{UID}/merchantHistory/{coop}")
    assert kept["chosenCategory"] == "restaurants" and kept["subscriptionStatus"] == "dismissed"
    assert kept["charges"][0]["category"] == "restaurants"
    assert data(docs, f"users/{UID}/categoryOverrides/{coop}")["category"] == "restaurants"
    # one unit of work for the choice, then the feed's batch (the merchant has no items, no subscription)
    assert docs.attempts["insights_recategorise_history"] == 1 and docs.store.commits - commits == 2


def test_the_bookings_a_history_keeps_move_with_those_in_documents_each_once(docs):
    coop = "m:coop"
    feed = f"accounts/{SPENDING}/transactions"
    seed(
        docs,
        {
            f"{feed}/c-new": {"direction": "out", "kind": "card", "merchantKey": coop, "category": "groceries"},
            f"users/{UID}/merchantHistory/{coop}": {
                "key": coop,
                "charges": [
                    {"id": "c-old", "date": "2027-01-05", "amount": 40},  # booked before: its item a document
                    {"id": "c-feb", "date": "2027-02-05", "amount": 50, "category": "groceries"},
                    {"id": "c-new", "date": "2027-03-05", "amount": 60, "category": "groceries"},
                ],
                "subscriptionStatus": None,
            },
            f"users/{UID}/economyItems/c-old": {**item("2027-01", 40), "key": coop},
            f"users/{UID}/economyItems/c-gone": {**item("2027-01", 30), "key": coop},  # its history dropped it
            f"users/{UID}/economy/2027-01": month("2027-01", groceries=70),
            f"users/{UID}/economy/2027-02": month("2027-02", groceries=350),
            f"users/{UID}/economy/2027-03": month("2027-03", groceries=760),
        },
    )
    result = recategorise(docs, "c-new")
    assert (result["key"], result["bookingsMoved"], result["entriesRelabelled"]) == (coop, 4, 1)
    months = {
        m: economy.Month.from_dict(data(docs, f"users/{UID}/economy/{m}")).spending
        for m in ("2027-01", "2027-02", "2027-03")
    }
    assert months == {
        "2027-01": {"restaurants": 70},
        "2027-02": {"groceries": 300, "restaurants": 50},
        "2027-03": {"groceries": 700, "restaurants": 60},
    }
    charges = data(docs, f"users/{UID}/merchantHistory/{coop}")["charges"]
    assert [c.get("category") for c in charges] == [None, "restaurants", "restaurants"]
    assert [data(docs, f"users/{UID}/economyItems/{t}")["category"] for t in ("c-old", "c-gone")] == ["restaurants"] * 2
    assert recategorise(docs, "c-new")["bookingsMoved"] == 0  # each moved once


def test_choosing_the_same_category_again_moves_nothing(docs):
    recategorise(docs)
    again = recategorise(docs, "auth-2")
    assert (again["bookingsMoved"], again["entriesRelabelled"]) == (0, 0)


def test_bookings_move_in_chunks_each_with_its_months(docs, monkeypatch):
    monkeypatch.setattr(insights, "CHUNK", 1)
    monkeypatch.setattr(insights, "RELABEL_BATCH", 1)
    commits = docs.store.commits
    assert recategorise(docs)["bookingsMoved"] == 2
    # one unit of work per chunk
    assert docs.attempts["insights_recategorise"] == 2
    # the choice (the override and the history made for it), two chunks, the feed: a batch
    # per entry and the last (empty) one, the subscription
    assert docs.store.commits - commits == 1 + 2 + 3 + 1
    assert economy.Month.from_dict(data(docs, f"users/{UID}/economy/2027-02")).spending == {"restaurants": 300}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"category": "income"}, "invalid_category"),
        ({"category": "nonsense"}, "invalid_category"),
        ({"transaction_id": "../../x"}, "invalid_transaction"),
        ({"transaction_id": "auth-9"}, "unknown_transaction"),
        ({"uid": OTHER}, "unknown_transaction"),  # not bob's account: as if there were no such transaction
        ({"transaction_id": "pay-in-1"}, "not_spending"),
        ({"transaction_id": "pay-own-1"}, "not_spending"),  # to an own account: a transfer, whatever is chosen
    ],
)
def test_a_correction_that_cannot_be_made_changes_nothing(docs, args, code):
    before = {path: stored[0] for path, stored in docs.store.docs.items()}
    assert refused(lambda: recategorise(docs, **args)) == code
    assert {path: stored[0] for path, stored in docs.store.docs.items()} == before


def test_a_payment_to_someone_else_s_account_is_spending_that_can_be_recategorised(docs):
    assert recategorise(docs, "pay-out-1", "housing")["entriesRelabelled"] == 1
    assert data(docs, f"accounts/{SPENDING}/transactions/pay-out-1")["category"] == "housing"


def test_an_account_that_is_not_a_number_is_no_transaction(docs):
    with pytest.raises(InsightsRefused) as caught:
        insights.recategorise(docs, UID, "accounts", "auth-1", "restaurants")
    assert caught.value.code == "unknown_transaction"


def test_a_dismissed_subscription_stays_dismissed_until_restored(docs):
    assert insights.set_subscription_status(docs, UID, REMA, "dismissed") == {
        "merchantKey": REMA,
        "status": "dismissed",
    }
    assert data(docs, f"users/{UID}/subscriptions/{REMA}")["status"] == "dismissed"
    insights.set_subscription_status(docs, UID, REMA, "active")
    assert data(docs, f"users/{UID}/subscriptions/{REMA}")["status"] == "active"
    assert refused(lambda: insights.set_subscription_status(docs, UID, "m:netflix", "dismissed")) == (
        "unknown_subscription"
    )
    assert refused(lambda: insights.set_subscription_status(docs, OTHER, REMA, "dismissed")) == "unknown_subscription"
    assert refused(lambda: insights.set_subscription_status(docs, UID, "a/b", "dismissed")) == "invalid_merchant_key"
    for odd in ("\ud800", ".", "..", "__x__", "m:x\n"):  # no document id Firestore would refuse
        assert refused(lambda odd=odd: insights.set_subscription_status(docs, UID, odd, "dismissed")) == (
            "invalid_merchant_key"
        )


# ---- recomputation from the ledger -----------------------------------------------------------
def ledger_records(docs) -> None:
    """Alice paid Bob 1 000 (completed), another payment failed, Bob paid Alice 400, and a
    card purchase of 250 was captured (another one only authorised)."""

    def paid(payment_id: str, uid: str, source: str, target: str, amount: int, status: str = "completed") -> dict:
        return {
            "paymentId": payment_id,
            "uid": uid,
            "requestId": payment_id,
            "kind": "internal",
            "fromAccount": source,
            "toAccount": target,
            "amount": amount,
            "currency": "NOK",
            "dueDate": "2027-03-02",
            "bodyHash": "0" * 64,
            "status": status,
        }

    card = {
        "ownerUid": UID,
        "accountId": SPENDING,
        "merchantName": "REMA 1000",
        "mcc": "5411",
        "spendDay": "2027-03-03",
    }
    seed(
        docs,
        {
            "ledgerPayments/p1": paid("p1", UID, SPENDING, BOBS, 1_000),
            "ledgerPayments/p2": paid("p2", UID, SPENDING, BOBS, 9_000, status="failed"),
            "ledgerPayments/p3": paid("p3", OTHER, BOBS, SPENDING, 400),
            "cardAuthorizations/auth-1": {
                **card,
                "status": "captured",
                "capturedAmount": 250,
                "refunds": {"rf1": {"reference": "r", "amount": 50, "category": "groceries", "refundedAt": REFUNDED}},
            },
            "cardAuthorizations/auth-2": {**card, "status": "authorized", "amount": 99},
        },
    )


def test_my_economy_is_recomputed_from_the_ledgers_records(docs):
    ledger_records(docs)
    booked = insights.ledger_bookings(docs, UID)
    assert sorted((b.tx_id, b.direction, b.amount) for b in booked) == [
        ("auth-1", "out", 250),
        ("p1", "out", 1_000),
        ("p3", "in", 400),
        ("rf1", "out", 50),  # a refund of auth-1, in its month
    ]
    (march,) = insights.recompute_economy(docs, UID).values()
    assert (march.income, march.spent, march.count) == (400, 1_200, 4)


def test_the_kept_figures_equal_a_recomputation_or_the_difference_is_said(docs):
    ledger_records(docs)
    recategorise(docs)  # REMA: restaurants, for the recomputation too
    fresh = insights.recompute_economy(docs, UID)
    assert fresh["2027-03"].spending["restaurants"] == 200  # the refund moved with its merchant
    seed(docs, {f"users/{UID}/economy/2027-02": {"month": "2027-02"}})  # nothing booked in February
    seed(docs, {f"users/{UID}/economy/{m}": fresh[m].to_dict() for m in fresh})
    assert insights.stored_economy(docs, UID) == fresh | {"2027-02": economy.Month("2027-02")}
    assert insights.economy_differences(docs, UID) == []
    seed(docs, {f"users/{UID}/economy/2027-03": {**fresh["2027-03"].to_dict(), "income": 0}})
    (problem,) = insights.economy_differences(docs, UID)
    assert problem.startswith(f"{UID} 2027-03: stored")


async def test_recategorising_a_merchant_named_in_another_script_leaves_another_such_merchants_spending():
    """Both merchants' names are Cyrillic: they had one key ("m:unknown"), so the taxi ride
    recategorised moved the groceries at another shop with it."""
    from typing import Any

    from fjordbank.domain.categories import override_key
    from fjordbank.domain.norway import make_account_number
    from fjordbank.service_layer import economy as economy_use_case
    from tests.support.memory import AsyncMemoryDocuments

    uid, account, taxi, shop = "u1", make_account_number("1234", "56", 7891), "Яндекс Такси", "Пятёрочка"

    def captured(auth_id: str, merchant: str, mcc: str, amount: int) -> dict[str, Any]:
        return {
            "status": "captured",
            "auth_id": auth_id,
            "uid": uid,
            "account_id": account,
            "day": "2026-11-03",
            "amount": amount,
            "merchant_name": merchant,
            "mcc": mcc,
        }

    docs = AsyncMemoryDocuments()
    docs.store.apply([("set", f"accounts/{account}", {"ownerUid": uid}, False)])
    bookings = economy_use_case.card_bookings(
        [captured("taxi-1", taxi, "4121", 25_000), captured("shop-1", shop, "5411", 80_000)]
    )
    await economy_use_case.apply_bookings(docs, bookings)
    month = f"users/{uid}/economy/2026-11"
    assert docs.store.doc(month).data["spending"] == {"groceries": 80_000, "transport": 25_000}
    key = override_key(kind="card", merchant_name=taxi, counterparty_account=None)
    entry = {"direction": "out", "kind": "card", "merchantName": taxi, "merchantKey": key, "category": "transport"}
    docs.store.apply([("set", f"accounts/{account}/transactions/taxi-1", entry, False)])
    insights.recategorise(MemoryDocuments(store=docs.store), uid, account, "taxi-1", "travel")
    assert docs.store.doc(month).data["spending"] == {"groceries": 80_000, "travel": 25_000}


async def test_a_payment_made_in_the_month_after_its_due_date_is_recomputed_in_that_month():
    """Due on Saturday 31 October, paid by the due-payments job on Monday 2 November: the
    feed and my economy book it in November; the recomputation from the ledger's record
    (which kept no request time) put it in October, and `bankctl economy` reported a
    difference for figures that were right."""
    from fjordbank.domain.norway import make_account_number
    from fjordbank.domain.payment_ledger import new_record
    from fjordbank.domain.payments import EXTERNAL, PaymentEvent, PaymentRequested
    from fjordbank.service_layer import economy as economy_use_case
    from fjordbank.service_layer.owners import Owners
    from fjordbank.service_layer.scheduled import released
    from tests.support.memory import AsyncMemoryDocuments

    uid, account = "u1", make_account_number("1234", "56", 7891)
    docs = AsyncMemoryDocuments()
    docs.store.apply([("set", f"accounts/{account}", {"ownerUid": uid}, False)])
    scheduled = PaymentRequested(
        payment_id="p" + "b" * 34,
        uid=uid,
        request_id="req-sched-1",
        kind=EXTERNAL,
        from_account=account,
        to_account=make_account_number("9999", "56", 7893),
        amount=150_000,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2026-10-31",
        body_hash="0" * 64,
        requested_at="2026-10-20T10:00:00+00:00",
    )
    completed = PaymentEvent(released(scheduled, dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)), "completed")
    await economy_use_case.apply_bookings(docs, await economy_use_case.payment_bookings(Owners(docs), [completed]))
    record = {**new_record(completed), "status": "completed"}
    docs.store.apply([("set", f"ledgerPayments/{completed.payment.payment_id}", record, False)])
    sync = MemoryDocuments(store=docs.store)
    assert sorted(insights.stored_economy(sync, uid)) == ["2026-11"]
    assert insights.economy_differences(sync, uid) == []
    # a record from before the request's time was kept: its due date, as before
    legacy = {k: v for k, v in record.items() if k != "requestedAt"}
    assert insights.payment_of(legacy).booking_date == "2026-10-31"


@pytest.mark.parametrize("account_id", ["1" * 2000, "１２３４５６７８９０１", "9710000002"])
def test_an_account_id_of_another_shape_is_no_account_and_never_read(docs, account_id):
    """Found in review (2026-12-06): any all-digit id was read, and one of 2,000 digits made
    Firestore refuse the read (an id is at most 1,500 bytes): the callable answered INTERNAL."""

    class Firestore:
        def __getattr__(self, name):
            return getattr(docs, name)

        def get(self, path):
            if len(path.rsplit("/", 1)[-1].encode()) > 1500:
                raise api_errors.InvalidArgument("document id too long")
            return docs.get(path)

    with pytest.raises(insights.InsightsRefused) as refused_:
        insights.recategorise(Firestore(), UID, account_id, "auth-1", "restaurants", clock=fixed_clock())
    assert refused_.value.code == "unknown_transaction"


def test_two_recategorisations_at_once_leave_every_view_on_the_choice_that_stands(docs, monkeypatch):
    """A (restaurants) chose, then all of B (transport) ran, then A's later steps: the
    choice said transport and the bookings, feed and subscription restaurants (found in
    review, 2026-12-06). Each step after the choice is done again for the choice that stands."""
    real_move = insights._move_items
    first = [True]

    def move_items(d, uid, key, category):
        if first[0]:  # A is between its choice and its moves
            first[0] = False
            insights.recategorise(d, uid, SPENDING, "auth-1", "transport", clock=fixed_clock())  # B, whole
        return real_move(d, uid, key, category)

    monkeypatch.setattr(insights, "_move_items", move_items)
    assert recategorise(docs, "auth-1", "restaurants")["category"] == "transport"  # what stands
    assert data(docs, f"users/{UID}/categoryOverrides/{REMA}")["category"] == "transport"
    assert [data(docs, f"users/{UID}/economyItems/auth-{i}")["category"] for i in (1, 2)] == ["transport"] * 2
    feed = f"accounts/{SPENDING}/transactions"
    assert [data(docs, f"{feed}/auth-{i}")["category"] for i in (1, 2)] == ["transport"] * 2
    assert data(docs, f"users/{UID}/subscriptions/{REMA}")["category"] == "transport"
