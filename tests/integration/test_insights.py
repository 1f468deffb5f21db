"""My economy, subscriptions and recategorisation on the real stack.

Payments through the app's documents, card purchases through the card processor's API,
the insights service consuming what NATS carries. The must-show: the figures it maintains
equal a full recomputation from the ledger's records, also after a replay of every event
of these customers, and after the customer recategorised a merchant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace

import pytest

from fjordbank.adapters.documents import AsyncFirestoreDocuments, FirestoreDocuments
from fjordbank.adapters.firestore import async_client
from fjordbank.domain.bookings import Booking
from fjordbank.domain.norway import today_in_norway
from fjordbank.runtime.consumer import Delivery
from fjordbank.service_layer.economy import apply_bookings
from fjordbank.service_layer.insights import economy_differences, stored_economy
from run_services.insights import InsightsHandler
from tests.support import natsclients
from tests.support.app import new_customer
from tests.support.bank import callables_for, refused
from tests.support.cards import buy, new_cardholder
from tests.support.clients import unique, wait_for
from tests.unit.test_subscriptions import generate_year

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


def month_doc(app, uid: str) -> dict:
    return app.get(f"users/{uid}/economy/{today_in_norway().isoformat()[:7]}")[1] or {}


def purchase(proc, holder, amount: int, merchant: str, mcc: str) -> str:
    answer = buy(proc, holder, amount, merchant_name=merchant, mcc=mcc)
    assert answer["approved"], answer
    status, body = proc.capture(answer["reference"])
    assert status == 200, body
    return answer["authorizationId"]


async def replay_events(stack, uids: set[str]) -> int:
    """Every payments.completed and cards.captured event of these customers, read from
    the streams again and given to the insights handler a second time."""
    nc = await natsclients.connect(stack, "admin")
    handler = InsightsHandler(AsyncFirestoreDocuments(async_client(stack.s.project_id)))
    replayed = 0
    try:
        js = nc.jetstream()
        for stream, subject, handle in (
            ("PAYMENTS", "payments.completed.*", handler.payments),
            ("CARDS", "cards.captured", handler.cards),
        ):
            sub = await js.pull_subscribe(subject, stream=stream)
            while True:
                try:
                    msgs = await sub.fetch(500, timeout=2)
                except Exception:  # nats TimeoutError: at the stream's end, or a slow fetch
                    if (await sub.consumer_info()).num_pending == 0:
                        break  # read to its end
                    continue
                ours = []
                for m in msgs:
                    try:
                        body = json.loads(m.data)
                    except ValueError:
                        continue  # the permission tests publish empty messages
                    owner = (body.get("payment") or {}).get("uid") or body.get("uid")
                    if owner in uids:  # (a payment to one of them was made by one of them here)
                        ours.append(Delivery(SimpleNamespace(subject=m.subject, data=m.data)))
                    await m.ack()
                if ours:
                    await handle(ours)
                    replayed += len(ours)
            await sub.unsubscribe()
    finally:
        await nc.close()
    return replayed


def test_my_economy_follows_payments_and_card_purchases_and_equals_a_recomputation(
    stack, auth, as_user, callables, ledger_admin, admin_db, proc_for_insights, audit
):
    alice = new_cardholder(stack, auth, as_user, callables, ledger_admin, funds=1_000_000)
    bob = new_customer(auth, as_user, ledger_admin, 2_000_000, 0)  # a current and a savings account

    salary = bob.request_payment(alice.account, 300_000, message="Lønn")
    own = bob.request_payment(bob.accounts[1], 50_000, from_account=bob.accounts[0])
    assert bob.wait_final(salary)["status"] == "completed"
    assert bob.wait_final(own)["status"] == "completed"
    rema = purchase(proc_for_insights, alice, 45_000, "REMA 1000 MAJORSTUEN", "5411")
    netflix = purchase(proc_for_insights, alice, 12_900, "NETFLIX.COM", "4899")
    purchase(proc_for_insights, alice, 89_000, "Egon Karl Johan", "5812")

    figures = wait_for(
        lambda: (d := month_doc(alice.app, alice.uid)) and d.get("count") == 4 and d,
        timeout=60,
        what="alice's month to count four bookings",
    )
    assert figures["income"] == 300_000
    assert figures["spending"] == {"groceries": 45_000, "subscriptions": 12_900, "restaurants": 89_000}
    assert figures["spent"] == 146_900 and figures["savings"] == 300_000 - 146_900
    bob_month = wait_for(lambda: (d := month_doc(bob.app, bob.uid)) and d.get("count") == 1 and d, what="bob's month")
    assert bob_month["spending"] == {"transfers": 300_000}  # the transfer to his own savings is not spending
    assert bob_month["income"] == 0

    # The feed is paged by booking time, newest first; each entry has its category and merchant key.
    feed = alice.app.get(f"accounts/{alice.account}/transactions/{rema}")[1]
    assert feed["category"] == "groceries" and feed["merchantKey"] == "m:rema-1000-majorstuen" and feed["bookedAt"]
    entries = admin_db.collection(f"accounts/{alice.account}/transactions")
    newest_first = entries.order_by("bookedAt", direction="DESCENDING")
    pages, cursor = [], None
    while True:
        page = list((newest_first.start_after(cursor) if cursor else newest_first).limit(2).stream())
        if not page:
            break
        pages.append([s.id for s in page])
        cursor = page[-1]
    ids = [i for page in pages for i in page]
    assert len(ids) == 4 and len(pages) == 2  # the salary and three purchases
    assert ids[-1] == bob.request(salary)["paymentId"] and ids[-2] == rema  # the oldest last
    times = [entries.document(i).get().get("bookedAt") for i in ids]
    assert times == sorted(times, reverse=True)

    # Netflix is entertainment to Alice: it moves, in the month and in the feed, and sticks.
    status, body = callables.call(
        "transactions_recategorise",
        {"accountId": alice.account, "transactionId": netflix, "category": "entertainment"},
        alice.user["id_token"],
    )
    assert status == 200 and body["result"]["bookingsMoved"] == 1, body
    figures = month_doc(alice.app, alice.uid)
    assert figures["spending"] == {"groceries": 45_000, "entertainment": 12_900, "restaurants": 89_000}
    assert alice.app.get(f"accounts/{alice.account}/transactions/{netflix}")[1]["category"] == "entertainment"
    again = purchase(proc_for_insights, alice, 12_900, "Netflix.com", "4899")
    assert alice.app.get(f"accounts/{alice.account}/transactions/{again}")[1]["category"] == "entertainment"
    wait_for(lambda: month_doc(alice.app, alice.uid).get("count") == 5, what="the second Netflix charge")
    assert month_doc(alice.app, alice.uid)["spending"]["entertainment"] == 25_800

    # Refusals: someone else's transaction, a category that does not exist, income.
    assert refused(
        callables.call(
            "transactions_recategorise",
            {"accountId": alice.account, "transactionId": netflix, "category": "travel"},
            bob.id_token,
        )
    ) == ("NOT_FOUND", "unknown_transaction")
    assert refused(
        callables.call(
            "transactions_recategorise",
            {"accountId": alice.account, "transactionId": netflix, "category": "yachts"},
            alice.user["id_token"],
        )
    ) == ("INVALID_ARGUMENT", "invalid_category")
    salary_id = bob.request(salary)["paymentId"]
    assert (
        refused(
            callables.call(
                "transactions_recategorise",
                {"accountId": alice.account, "transactionId": salary_id, "category": "travel"},
                alice.user["id_token"],
            )
        )[1]
        == "not_spending"
    )

    # The maintained figures equal a recomputation from the ledger's records ...
    for uid in (alice.uid, bob.uid):
        assert economy_differences(FirestoreDocuments(admin_db), uid) == []
    before = {uid: stored_economy(FirestoreDocuments(admin_db), uid) for uid in (alice.uid, bob.uid)}
    # ... and still do after every event of these customers is delivered again.
    replayed = asyncio.run(replay_events(stack, {alice.uid, bob.uid}))
    assert replayed >= 6
    for uid in (alice.uid, bob.uid):
        assert economy_differences(FirestoreDocuments(admin_db), uid) == []
        after = stored_economy(FirestoreDocuments(admin_db), uid)
        assert {m: v.figures() for m, v in after.items()} == {m: v.figures() for m, v in before[uid].items()}
    audit()


@pytest.fixture(scope="module")
def proc_for_insights(stack):
    from tests.support.bank import processor

    return processor(stack)


def test_a_year_of_charges_lists_exactly_the_subscriptions_and_a_dismissal_sticks(stack, auth, callables, admin_db):
    """The insights use case on the real Firestore, fed a generated year (the card service
    cannot backdate purchases): the subscriptions listed are the recurring ones."""
    user = auth.sign_up()
    uid = user["uid"]
    charges, expected = generate_year(7)
    payees = {"a:gym": "12345678903", "a:electricity": "86011117947"}  # paid by payment, not card

    def key(merchant: str) -> str:
        return f"a:{payees[merchant]}" if merchant in payees else f"m:{merchant}"

    booked = []
    for merchant, items in charges.items():
        for c in items:
            where = (
                {"kind": "payment", "counterparty_account": payees[merchant]}
                if merchant in payees
                else {"kind": "card", "merchant_name": merchant.upper(), "mcc": "5999"}
            )
            booked.append(Booking(uid, unique("tx"), "97100000001", c.date.isoformat(), c.amount, "out", **where))
    booked.sort(key=lambda b: b.date)

    async def feed() -> None:
        docs = AsyncFirestoreDocuments(async_client(stack.s.project_id))
        for start in range(0, len(booked), 50):  # as the service does: batches, in booking order
            await apply_bookings(docs, booked[start : start + 50])

    asyncio.run(feed())
    subs = {s.id: s.to_dict() for s in admin_db.collection(f"users/{uid}/subscriptions").stream()}
    assert set(subs) == {key(m) for m in expected}
    netflix = subs["m:netflix"]
    assert (netflix["interval"], netflix["amount"], netflix["monthlyCost"]) == ("monthly", 14900, 14900)
    assert netflix["status"] == "active" and netflix["nextExpected"] > netflix["lastDate"]
    assert subs["m:aftenposten"]["interval"] == "weekly"

    status, body = callables.call("subscriptions_dismiss", {"merchantKey": "m:aftenposten"}, user["id_token"])
    assert status == 200 and body["result"]["status"] == "dismissed", body
    more = Booking(uid, unique("tx"), "97100000001", "2026-11-30", 4900, "out", "card", merchant_name="AFTENPOSTEN")
    asyncio.run(apply_bookings(AsyncFirestoreDocuments(async_client(stack.s.project_id)), [more]))
    assert admin_db.document(f"users/{uid}/subscriptions/m:aftenposten").get().get("status") == "dismissed"
    assert refused(callables.call("subscriptions_dismiss", {"merchantKey": "m:nothing"}, user["id_token"])) == (
        "NOT_FOUND",
        "unknown_subscription",
    )
    # a restore that is no boolean was taken as a dismissal, the opposite (found in review, 2026-12-07)
    for restore in ("true", 1, "false"):
        asked = {"merchantKey": "m:netflix", "restore": restore}
        assert refused(callables.call("subscriptions_dismiss", asked, user["id_token"])) == (
            "INVALID_ARGUMENT",
            "invalid_request",
        )
    assert admin_db.document(f"users/{uid}/subscriptions/m:netflix").get().get("status") == "active"
    # the figures of that year are in my economy too, one document per month
    months = stored_economy(FirestoreDocuments(admin_db), uid)
    assert sorted(months)[0] == "2025-12" and len(months) == 12
    assert sum(m.spent for m in months.values()) == sum(c.amount for items in charges.values() for c in items) + 4900
    assert dt.date.fromisoformat(netflix["lastDate"]).month in (10, 11)
