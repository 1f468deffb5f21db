"""Screening's use case (fjordbank.service_layer.screening) on the in-memory fake.

What tests/integration/test_screening_replays.py and test_payment_pipeline.py promise,
checked in milliseconds: a batch of new payments reads no decision (only the customers'
states); each decision is recorded once and a redelivered payment gets its recorded
decision, counted toward the limits once; a batch is decided in order, so limits hold
however many payments race; each customer is written once per batch; the payees' owners
are read outside the unit of work, once per process.
"""

from __future__ import annotations

import copy
import datetime as dt

from fjordbank.domain.payments import EXTERNAL, INTERNAL, PaymentRequested
from fjordbank.domain.screening import Screened, ScreeningPolicy
from fjordbank.service_layer.screening import Screening, customer_path, decision_path
from tests.support.recording import RecordingDocuments

NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
PAYER = "97100000028"
OWN = "97100000036"  # the payer's other account
SOMEONE = "97100000044"  # another customer's account in the bank
OUTSIDE = "15030000002"
BLOCKED = "12345678903"


def payment(uid: str, n: int, amount: int = 10_000, to_account: str = OUTSIDE) -> PaymentRequested:
    return PaymentRequested(
        payment_id=f"p-{uid}-{n}",
        uid=uid,
        request_id=f"r{n:08d}",
        kind=EXTERNAL if to_account == OUTSIDE else INTERNAL,
        from_account=PAYER,
        to_account=to_account,
        amount=amount,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2025-03-14",
        body_hash="h",
        requested_at="",
    )


def reads(docs: RecordingDocuments) -> list[list[str]]:
    return [paths for kind, paths in docs.calls if kind == "get_many"]


def screening(policy: ScreeningPolicy | None = None) -> tuple[Screening, RecordingDocuments]:
    docs = RecordingDocuments()
    docs.store.docs[f"accounts/{OWN}"] = ({"ownerUid": "alice"}, NOW)
    docs.store.docs[f"accounts/{SOMEONE}"] = ({"ownerUid": "bob"}, NOW)
    return Screening(docs, policy or ScreeningPolicy(blocked_accounts=frozenset({BLOCKED})), clock=lambda: NOW), docs


async def test_new_payments_read_no_decision_and_a_redelivered_one_gets_its_recorded_answer():
    uses, docs = screening()
    first = [payment("alice", n) for n in range(5)]
    results = await uses.screen_batch(first)
    assert [replayed for _d, replayed in results] == [False] * 5
    assert docs.units == []  # no transaction
    assert reads(docs) == [[customer_path("alice")]]  # the state only (external payments: no owner to read)
    docs.forget()
    results = await uses.screen_batch([first[2], payment("alice", 5)])
    assert [replayed for _d, replayed in results] == [True, False]
    state = await docs.get(customer_path("alice"))
    assert state is not None and state.data["dayTotal"] == 6 * 10_000  # the redelivered payment counted once
    assert len(await docs.query("screeningDecisions")) == 6
    # the second batch: its first commit (alice known: no read) failed on the recorded
    # decision, then it read her state and the decisions
    assert [kind for kind, _ in docs.calls[:3]] == ["commit", "get_many", "commit"]
    assert len(reads(docs)[0]) == 1 + 2


async def test_a_decision_is_recorded_once_with_its_payment_and_a_replay_changes_nothing():
    uses, docs = screening()
    p = payment("alice", 1, to_account=BLOCKED)
    [(decision, replayed)] = await uses.screen_batch([p])
    assert decision == Screened(False, "blocked_counterparty", "payments to this account are not allowed")
    assert not replayed
    record = await docs.get(decision_path(p.payment_id))
    assert record is not None
    assert {k: record.data[k] for k in ("approved", "reason", "uid", "amount")} == {
        "approved": False,
        "reason": "blocked_counterparty",
        "uid": "alice",
        "amount": 10_000,
    }
    before = copy.deepcopy(docs.store.docs)
    assert await uses.screen_batch([p]) == [(decision, True)]
    assert docs.store.docs == before


async def test_a_batch_is_decided_in_order_so_the_daily_limit_holds_and_the_customer_is_written_once():
    uses, docs = screening(ScreeningPolicy(daily_limit=50_000))
    results = await uses.screen_batch([payment("alice", n) for n in range(8)])
    assert [d.reason for d, _r in results] == [None] * 5 + ["over_daily_limit"] * 3
    [writes] = [w for kind, w in docs.calls if kind == "commit"]
    assert writes.count(("create", customer_path("alice"))) == 1  # new: created, once
    created = sorted(p for k, p in writes if k == "create" and p.startswith("screeningDecisions/"))
    assert created == sorted(decision_path(f"p-alice-{n}") for n in range(8))
    state = await docs.get(customer_path("alice"))
    assert state is not None and state.data["dayTotal"] == 50_000


async def test_customers_in_one_batch_are_decided_each_on_their_own_limits():
    uses, _docs = screening(ScreeningPolicy(daily_limit=20_000))
    batch = [payment(uid, n) for n in range(3) for uid in ("alice", "bob")]
    results = await uses.screen_batch(batch)
    assert [(p.uid, d.approved) for p, (d, _r) in zip(batch, results, strict=True)] == [
        ("alice", True),
        ("bob", True),
        ("alice", True),
        ("bob", True),
        ("alice", False),
        ("bob", False),
    ]


async def test_the_customers_own_account_is_never_a_new_payee_and_owners_are_read_once_outside():
    uses, docs = screening(ScreeningPolicy(new_payee_limit=1_000))
    own, other = payment("alice", 1, 5_000, OWN), payment("alice", 2, 5_000, SOMEONE)
    results = await uses.screen_batch([own, other])
    assert [d.reason for d, _r in results] == [None, "new_payee_limit"]
    assert reads(docs) == [[f"accounts/{OWN}", f"accounts/{SOMEONE}"], [customer_path("alice")]]
    docs.forget()
    await uses.screen_batch([payment("alice", 3, 5_000, OWN)])
    assert reads(docs) == []  # known owners, and alice's state known: one commit
    assert [kind for kind, _ in docs.calls] == ["commit"]


async def test_owners_the_events_tell_are_not_read():
    uses, docs = screening(ScreeningPolicy(new_payee_limit=1_000))
    own, other = payment("alice", 1, 5_000, OWN), payment("alice", 2, 5_000, SOMEONE)
    results = await uses.screen_batch([own, other], told={OWN: "alice", SOMEONE: "bob"})
    assert [d.reason for d, _r in results] == [None, "new_payee_limit"]  # the own account told, too
    assert reads(docs) == [[customer_path("alice")]]


async def test_an_approved_payee_is_known_once_its_new_payee_window_is_over():
    uses, _docs = screening(ScreeningPolicy(new_payee_limit=1_000))
    first = await uses.screen_batch([payment("alice", 1, 900)])
    again = await uses.screen_batch([payment("alice", 2, 5_000)])  # within the window: 5 900 in all
    assert first[0][0].approved and again[0][0].reason == "new_payee_limit"
    uses.clock = lambda: NOW + dt.timedelta(days=1)
    later = await uses.screen_batch([payment("alice", 3, 5_000)])
    assert later[0][0].approved


async def test_a_customer_another_writer_moved_fails_the_commit_and_the_batch_is_decided_on_the_new_state():
    uses, docs = screening(ScreeningPolicy(daily_limit=30_000))
    await uses.screen_batch([payment("alice", 1)])  # alice known: 10,000 today
    data, _v = docs.store.docs[customer_path("alice")]
    docs.store.apply([("set", customer_path("alice"), {**data, "dayTotal": 25_000}, False)])  # another instance
    docs.forget()
    [(decision, _replayed)] = await uses.screen_batch([payment("alice", 2)])
    assert decision.reason == "over_daily_limit"  # decided on 25,000, not the 10,000 it knew
    assert [kind for kind, _ in docs.calls] == ["commit", "get_many", "commit"]
