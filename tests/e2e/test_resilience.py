"""The skeleton survives what a cluster must: a lost node, and duplicate deliveries."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from devstack.supervisor import http_ok
from fjordbank import topology
from fjordbank.domain.feed import PROJECTED
from fjordbank.domain.payments import PaymentEvent
from tests.support import natsclients
from tests.support.app import new_customer
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


def _stream_leader(stack) -> str:
    async def leader() -> str:
        nc = await natsclients.connect(stack, "admin")
        try:
            info = await nc.jetstream().stream_info(topology.STREAM_PAYMENTS)
            return info.cluster.leader
        finally:
            await nc.close()

    return asyncio.run(leader())


def _stream_current_on(stack, node) -> bool:
    """The restarted node has caught up: it reports the stream replica as current."""
    import requests

    url = f"http://127.0.0.1:{node.monitor_port}/jsz?streams=true&raft=true"
    try:
        data = requests.get(url, timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    names = {s["name"] for a in data.get("account_details", []) for s in a.get("stream_detail", [])}
    return topology.STREAM_PAYMENTS in names and http_ok(f"http://127.0.0.1:{node.monitor_port}/healthz")


def test_payment_completes_with_the_stream_leader_killed_and_the_node_rejoins(
    stack, auth, as_user, ledger_admin, audit
):
    alice = new_customer(auth, as_user, ledger_admin, 50_000, 0)
    leader = _stream_leader(stack)
    node = next(n for n in stack.s.nats_nodes if n.name == leader)

    stack.sup.kill(leader)  # kill -9, no lame duck
    try:
        assert not http_ok(f"http://127.0.0.1:{node.monitor_port}/varz")
        request_id = alice.request_payment(alice.accounts[1], 7_500)
        doc = alice.wait_final(request_id, timeout=90)
        assert doc["status"] == "completed", doc
        assert alice.balance(alice.accounts[1]) == 7_500
        assert _stream_leader(stack) != leader
    finally:
        stack.restart(leader)
    wait_for(lambda: _stream_current_on(stack, node), timeout=60, what=f"{leader} to rejoin")
    audit()


def test_duplicate_deliveries_post_once(stack, auth, as_user, ledger_admin, admin_db, audit):
    """The same payment published three times, past JetStream's duplicate detection
    (different message ids), is posted once (its debit and its credit); every copy gets
    the same verdict."""
    alice = new_customer(auth, as_user, ledger_admin, 10_000, 0)
    request_id = unique("dup")
    # A request document exists so verdicts can be projected. Its creation runs the edge,
    # which refuses it (a status is the backend's to write) and leaves it "rejected"; the
    # payment is then published behind the edge's back. The document's status never moves
    # back from that, so the notifier's own record on it (projectedStatus) tells completion.
    admin_db.document(f"users/{alice.uid}/paymentRequests/{request_id}").set(
        {
            "v": 1,
            "fromAccount": alice.accounts[0],
            "toAccount": alice.accounts[1],
            "amount": 4_000,
            "currency": "NOK",
            "status": "requested",
            "statusRank": 1,
        }
    )
    payment = alice.internal_payment(request_id, 4_000)

    async def publish_three_times():
        nc = await natsclients.connect(stack, "edge")
        try:
            js = nc.jetstream()
            for copy in range(3):
                await js.publish(
                    PaymentEvent(payment, "requested").subject,  # payments.requested.<payer's partition>
                    json.dumps(PaymentEvent(payment, "requested").to_json()).encode(),
                    headers={"Nats-Msg-Id": f"{payment.payment_id}-copy{copy}"},
                )
        finally:
            await nc.close()

    asyncio.run(publish_three_times())
    wait_for(lambda: alice.request(request_id).get(PROJECTED) == "completed", timeout=60, what="completion")
    time.sleep(1.0)  # let every copy be processed
    assert alice.balance(alice.accounts[0]) == 6_000
    assert alice.balance(alice.accounts[1]) == 4_000
    record = admin_db.collection("ledgerPayments").document(payment.payment_id).get().to_dict()
    query = admin_db.collection("postings").where(filter=FieldFilter("paymentId", "==", payment.payment_id))
    assert list(query.stream()) == []  # a payment's postings are kept on its record
    # once each: the debit in the payer's partition, the credit in the payee's
    kept = sorted(p["postingId"] for p in record["postings"].values())
    assert kept == record["postingIds"][::-1] == [f"{payment.payment_id}:credit", f"{payment.payment_id}:debit"]
    audit()
