"""Standing orders and scheduled payments on the real stack: made, changed and cancelled
through the app's callables, paid by the due-payments job exactly once per due date (the
job through Pub/Sub and the function, and the same job in process where a test must know
it has finished), waiting for funds during the due date and failing with a push after it.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from fjordbank.adapters.documents import FirestoreDocuments
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.config import load_settings
from fjordbank.domain import standing_orders as rules
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.payments import payment_id_for
from fjordbank.service_layer import scheduled, seams, settling
from tests.support.app import new_customer
from tests.support.bank import JobDay, callables_for, job_day, queue_job, refused, register_device, wait_push
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture
def days() -> JobDay:
    """Today in Norway as the test starts, and the banking day the job runs on (a constant
    of the module went stale when a run crossed midnight, Oslo time; on a weekend or a
    holiday the job pays nothing, so it runs as of the banking day before)."""
    return job_day()


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


@pytest.fixture(scope="module")
def job_in_process(stack, admin_db):
    settings = load_settings(stack.nats_env("edge"))
    publisher = SyncPublisher(settings.nats, name="test-scheduler")

    def run(now: dt.datetime, uids: tuple[str, ...] | None) -> dict:
        collaborators = seams.bound(FirestoreDocuments(admin_db), publisher)
        return scheduled.submit_due_payments(
            FirestoreDocuments(admin_db),
            publisher,
            submit=collaborators.submit,
            bank_regs=settings.bank_regs,
            clock=lambda: now,
            uids=uids,
        )

    yield run
    publisher.close()


@pytest.fixture
def run_job(job_in_process, days, monkeypatch):
    """The due-payments job in this process (the function runs the same code), at the
    test's job day, ``after`` its time (a run later that day), scoped to the ``customer``
    (the emulator's ``uids``), as the job's runs these tests queue are: a run over the
    whole bank takes the run lease, and one that found it taken by a run queued earlier
    and still at work (here, or by an earlier test that did not wait for its runs) did
    nothing ({"busy": 1}), and the test's next check failed (on a stack the tiers had run
    on). The runs over the whole bank and their lease: tests/integration/test_scheduled_payments.py
    and tests/unit/test_scheduled_use_case.py. A payment that waited for
    funds rests a minute here before a run decides it again (RETRY_WAIT, 30 minutes in the
    bank: a run 30 minutes on could be the next day's)."""
    monkeypatch.setattr(rules, "RETRY_WAIT", dt.timedelta(minutes=1))

    def run(customer, after: dt.timedelta = dt.timedelta(0)) -> dict:
        result = job_in_process(days.now + after, (customer.uid,))
        assert "busy" not in result, result  # a scoped run takes no lease
        return result

    return run


def order_body(customer, amount: int, *, frequency: str = "monthly", **extra) -> dict:
    return {
        "orderId": unique("order"),
        "fromAccount": customer.accounts[0],
        "toAccount": customer.accounts[1],
        "amount": amount,
        "frequency": frequency,
        "startDate": (today_in_norway() + dt.timedelta(days=1)).isoformat(),
        **extra,
    }


def order(admin_db, customer, order_id: str) -> dict:
    return admin_db.document(f"users/{customer.uid}/standingOrders/{order_id}").get().to_dict()


def fall_due(admin_db, customer, order_id: str, day: dt.date) -> None:
    """The order's next due date is ``day`` (as if time had passed)."""
    admin_db.document(f"users/{customer.uid}/standingOrders/{order_id}").update({"nextDue": day.isoformat()})


def test_a_standing_order_runs_once_per_due_date_and_not_after_cancellation(
    days, stack, auth, as_user, ledger_admin, admin_db, callables, run_job, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 100_000, 0)
    body = order_body(alice, 10_000, message="Sparing")
    status, answer = callables.call("standing_orders_create", body, alice.id_token)
    assert status == 200, answer
    assert answer["result"]["status"] == "active" and answer["result"]["nextDue"] == days.tomorrow.isoformat()
    # the order id is the idempotency key: the same body again is the same order, another is refused
    assert callables.call("standing_orders_create", body, alice.id_token) == (status, answer)
    assert refused(callables.call("standing_orders_create", {**body, "amount": 1}, alice.id_token)) == (
        "FAILED_PRECONDITION",
        "order_exists",
    )
    order_id = body["orderId"]
    run_job(alice)
    assert alice.balance(alice.accounts[1]) == 0  # not due yet

    fall_due(admin_db, alice, order_id, days.day)
    queue_job(stack, "submit-due-payments", 2, now=days.now, customers=(alice.uid,))  # two ticks at once ...
    with ThreadPoolExecutor(2) as pool:  # ... and two more runs racing them in this process
        list(pool.map(lambda _: run_job(alice), range(2)))
    wait_for(lambda: alice.balance(alice.accounts[1]) == 10_000, timeout=60, what="the due date to be paid")
    done = order(admin_db, alice, order_id)
    assert [r["date"] for r in done["runs"]] == [days.day.isoformat()]
    assert done["lastRun"]["status"] == "submitted"
    assert done["nextDue"] == rules.add_months(days.day, 1, anchor_day=days.tomorrow.day).isoformat()
    payment_id = payment_id_for(alice.uid, rules.occurrence_request_id(order_id, days.day))
    wait_for(
        lambda: (
            (e := alice.app.get(f"accounts/{alice.accounts[0]}/transactions/{payment_id}")[1])
            and e["status"] == "posted"
        ),
        what="the feed entry",
    )
    queue_job(stack, "submit-due-payments", 2, wait=True, now=days.now, customers=(alice.uid,))
    run_job(alice)
    assert alice.balance(alice.accounts[1]) == 10_000  # once per due date

    status, answer = callables.call("standing_orders_cancel", {"orderId": order_id}, alice.id_token)
    assert status == 200 and answer["result"]["status"] == "cancelled", answer
    fall_due(admin_db, alice, order_id, days.day)  # its next date comes
    run_job(alice)
    assert alice.balance(alice.accounts[1]) == 10_000  # not after cancellation
    assert len(order(admin_db, alice, order_id)["runs"]) == 1
    assert refused(callables.call("standing_orders_update", {"orderId": order_id, "amount": 5}, alice.id_token)) == (
        "FAILED_PRECONDITION",
        "order_not_active",
    )
    audit()


def test_insufficient_funds_waits_then_fails_with_a_push_once_its_days_of_tries_passed(
    days, stack, auth, as_user, ledger_admin, admin_db, callables, run_job, audit
):
    bob = new_customer(auth, as_user, ledger_admin, 5_000, 0)
    token = register_device(bob.app, bob.uid)
    body = order_body(bob, 8_000, frequency="weekly")
    assert callables.call("standing_orders_create", body, bob.id_token)[0] == 200
    order_id = body["orderId"]

    fall_due(admin_db, bob, order_id, days.day)
    run_job(bob)
    assert run_job(bob)["standingOrders"]["skipped"] >= 1  # tried a moment ago: it rests
    run_job(bob, after=dt.timedelta(minutes=2))
    waiting = order(admin_db, bob, order_id)
    assert waiting["nextDue"] == days.day.isoformat() and waiting["waiting"]["attempts"] == 2
    assert waiting["waiting"]["reason"] == "insufficient_funds" and not waiting.get("runs")
    assert bob.balance(bob.accounts[0]) == 5_000

    # money arrives later that day: the next run pays it
    ledger_admin.run(ledger_admin.ledger.deposit(deposit_id=unique("salary"), account_id=bob.accounts[0], amount=5_000))
    run_job(bob, after=dt.timedelta(minutes=4))
    wait_for(lambda: bob.balance(bob.accounts[1]) == 8_000, timeout=60, what="the covered payment")
    assert order(admin_db, bob, order_id)["nextDue"] == (days.day + dt.timedelta(days=7)).isoformat()

    # a due date whose days of tries passed without money enough (4 banking days): it fails,
    # the customer is told, the order goes on
    fall_due(admin_db, bob, order_id, days.tried_out)
    # a run once the payment before has settled (a run within SETTLE of the one that paid
    # from the account leaves it to a later run: fjordbank/service_layer/settling.py)
    run_job(bob, after=dt.timedelta(minutes=5) + settling.SETTLE)
    failed = order(admin_db, bob, order_id)
    assert failed["lastRun"] == {
        "date": days.tried_out.isoformat(),
        "paymentId": payment_id_for(bob.uid, rules.occurrence_request_id(order_id, days.tried_out)),
        "status": "failed",
        "reason": "insufficient_funds",
    }
    assert failed["nextDue"] == (days.tried_out + dt.timedelta(days=7)).isoformat() and failed["status"] == "active"
    push = wait_push(stack, token, "Payment not completed")
    assert "not enough money" in push["notification"]["body"]
    assert bob.balance(bob.accounts[0]) == 2_000 and bob.balance(bob.accounts[1]) == 8_000
    audit()


def test_changes_before_a_run_apply_and_an_order_ends_on_its_end_date(
    days, auth, as_user, ledger_admin, admin_db, callables, run_job, audit
):
    carol = new_customer(auth, as_user, ledger_admin, 100_000, 0)
    end = days.tomorrow + dt.timedelta(days=40)
    body = order_body(carol, 10_000, endDate=end.isoformat())
    assert callables.call("standing_orders_create", body, carol.id_token)[0] == 200
    order_id = body["orderId"]
    status, answer = callables.call("standing_orders_update", {"orderId": order_id, "amount": 12_500}, carol.id_token)
    assert status == 200 and answer["result"]["amount"] == 12_500, answer
    assert refused(
        callables.call(
            "standing_orders_update", {"orderId": order_id, "endDate": days.today.isoformat()}, carol.id_token
        )
    ) == ("FAILED_PRECONDITION", "end_before_start")
    assert refused(
        callables.call("standing_orders_update", {"orderId": order_id, "nextDue": "2020-01-01"}, carol.id_token)
    ) == ("FAILED_PRECONDITION", "next_due_in_past")
    fall_due(admin_db, carol, order_id, days.day)
    admin_db.document(f"users/{carol.uid}/standingOrders/{order_id}").update({"endDate": days.day.isoformat()})
    run_job(carol)
    wait_for(lambda: carol.balance(carol.accounts[1]) == 12_500, timeout=60, what="the changed amount")
    ended = order(admin_db, carol, order_id)
    assert ended["status"] == "ended" and ended["nextDue"] is None
    # input the bank refuses, with the reason
    for bad, reason in (
        ({"frequency": "daily"}, "invalid_frequency"),
        ({"startDate": "2020-01-01"}, "start_date_in_past"),
        ({"endDate": days.today.isoformat()}, "end_before_start"),
        ({"amount": 0}, "invalid_amount"),
        ({"toAccount": "12345678900"}, "invalid_to_account"),
    ):
        wrong = {**order_body(carol, 100), **bad}
        assert refused(callables.call("standing_orders_create", wrong, carol.id_token))[1] == reason
    someone = new_customer(auth, as_user, ledger_admin, 0)
    assert refused(callables.call("standing_orders_cancel", {"orderId": order_id}, someone.id_token)) == (
        "NOT_FOUND",
        "unknown_order",
    )
    audit()


def test_a_scheduled_payment_can_be_cancelled_and_an_uncovered_one_fails_after_its_days_of_tries(
    days, stack, auth, as_user, ledger_admin, admin_db, callables, run_job, audit
):
    dan = new_customer(auth, as_user, ledger_admin, 3_000, 0)
    token = register_device(dan.app, dan.uid)
    later = dan.request_payment(dan.accounts[1], 1_000, dueDate=(days.today + dt.timedelta(days=9)).isoformat())
    big = dan.request_payment(dan.accounts[1], 9_000, dueDate=days.tomorrow.isoformat())
    for request_id in (later, big):
        wait_for(lambda r=request_id: dan.request(r).get("status") == "scheduled", what="scheduled")

    status, answer = callables.call("payments_cancel_scheduled", {"requestId": later}, dan.id_token)
    assert status == 200 and answer["result"]["status"] == "cancelled", answer
    admin_db.document(f"users/{dan.uid}/paymentRequests/{later}").update({"payment.due_date": days.day.isoformat()})

    admin_db.document(f"users/{dan.uid}/paymentRequests/{big}").update({"payment.due_date": days.day.isoformat()})
    run_job(dan)
    assert dan.request(big)["status"] == "scheduled" and dan.request(big)["waiting"]["attempts"] == 1
    admin_db.document(f"users/{dan.uid}/paymentRequests/{big}").update({"payment.due_date": days.tried_out.isoformat()})
    run_job(dan)
    doc = dan.wait_final(big)
    assert doc["status"] == "failed" and doc["reason"]["code"] == "insufficient_funds"
    wait_push(stack, token, "Payment not completed")
    assert dan.request(later)["status"] == "cancelled"
    assert dan.balance(dan.accounts[0]) == 3_000 and dan.balance(dan.accounts[1]) == 0
    assert refused(callables.call("payments_cancel_scheduled", {"requestId": big}, dan.id_token)) == (
        "FAILED_PRECONDITION",
        "not_scheduled",
    )
    audit()
