"""Payments with a later due date wait as "scheduled" and are submitted by the
submit-due-payments job exactly once, however often the job runs."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain.norway import today_in_norway
from tests.support.app import new_customer
from tests.support.bank import job_day, queue_job
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack


def test_a_scheduled_payment_is_submitted_once_on_its_due_date(stack, auth, as_user, ledger_admin, admin_db, audit):
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    tomorrow = (today_in_norway() + dt.timedelta(days=1)).isoformat()
    later = (today_in_norway() + dt.timedelta(days=30)).isoformat()
    due = alice.request_payment(alice.accounts[1], 4_000, dueDate=tomorrow, message="Husleie")
    not_due = alice.request_payment(alice.accounts[1], 1_000, dueDate=later)
    wait_for(lambda: alice.request(due).get("status") == "scheduled", timeout=30, what="scheduled")
    wait_for(lambda: alice.request(not_due).get("status") == "scheduled", timeout=30, what="scheduled")
    assert alice.balance(alice.accounts[0]) == 10_000

    # The due date arrives (the stored payment's date moves to the job's banking day).
    days = job_day()
    admin_db.document(f"users/{alice.uid}/paymentRequests/{due}").update({"payment.due_date": days.day.isoformat()})
    queue_job(stack, "submit-due-payments", 2, now=days.now)

    doc = alice.wait_final(due, timeout=60)
    assert doc["status"] == "completed", doc
    queue_job(stack, "submit-due-payments", 2, wait=True, now=days.now)  # and once more after it completed
    assert alice.balance(alice.accounts[0]) == 6_000
    assert alice.balance(alice.accounts[1]) == 4_000
    assert alice.request(not_due)["status"] == "scheduled"
    audit()


def test_a_request_whose_publish_failed_is_published_by_the_job(stack, auth, as_user, ledger_admin, admin_db, audit):
    """What the edge leaves when NATS refused its publish: status "received", reason
    publish_pending and the payment itself. The job publishes it; it completes once."""
    from tests.support.clients import unique

    alice = new_customer(auth, as_user, ledger_admin, 5_000, 0)
    request_id = unique("pending")
    body = {
        "v": 1,
        "fromAccount": alice.accounts[0],
        "toAccount": alice.accounts[1],
        "amount": 1_500,
        "currency": "NOK",
    }
    payment = alice.internal_payment(request_id, 1_500)
    ref = admin_db.document(f"users/{alice.uid}/paymentRequests/{request_id}")
    pending = {
        **body,
        "status": "received",
        "statusRank": 0,
        "payment": payment.to_json(),
        "reason": {"code": "publish_pending", "message": "NATS was unreachable"},
    }
    # Creating it fires the trigger, which refuses a document carrying backend fields;
    # writing it again is an update (no trigger): the state a failed publish leaves.
    ref.set(pending)
    wait_for(lambda: alice.request(request_id).get("status") == "rejected", timeout=30, what="the trigger")
    ref.set(pending)
    queue_job(stack, "submit-due-payments", 2)
    final = alice.wait_final(request_id, timeout=60)
    assert final["status"] == "completed"
    assert final.get("reason") is None  # the app shows a reason as an error: the waiting one is gone
    assert alice.balance(alice.accounts[0]) == 3_500
    audit()
