"""A payment to another bank screened by its payee's name against the sanctions list
(fjordbank.domain.payee_screening), in screening's use case (fjordbank.service_layer.screening)
on the in-memory fake, and compliance's decision on a payee (fjordbank.service_layer.payee_alerts).

What the integration test (tests/integration/test_payee_screening.py) shows through the
app's surface, checked here in milliseconds: a name like a listed one refuses the payment
(nothing counted toward the limits) and raises one alert per payee, written once per batch;
a cleared payee is paid again until the list says something new of it; a confirmed one is
a blocked counterparty; a name like no listed one costs no document, and is screened once
per process and list.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json

import pytest

from fjordbank.domain import payee_screening as rules
from fjordbank.domain.payments import EXTERNAL, INTERNAL, PaymentRequested
from fjordbank.domain.rescreening import AlertRefused
from fjordbank.domain.sanctions import ENTERPRISE, SanctionedEntity, SanctionsList
from fjordbank.domain.screening import ScreeningPolicy
from fjordbank.service_layer import payee_alerts
from fjordbank.service_layer import screening as screening_module
from fjordbank.service_layer.screening import Screening, customer_path, payee_alert_path
from tests.support.memory import MemoryDocuments
from tests.support.recording import RecordingDocuments
from tests.support.sanctions import sample_sanctions

NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
PAYER = "97100000028"
OUTSIDE = "15030000002"
OTHER_OUTSIDE = "15030000010"
SOMEONE = "97100000044"  # another customer's account in the bank
LISTED = "Nordkapp Phantom Trading AS"  # an enterprise on the repository's fictional list (990108)
LIKE = "NORDKAPP  phantom trading as"
HONEST = "Hansen Rør AS"
T1, T2, T3 = (NOW + dt.timedelta(hours=h) for h in (1, 2, 3))


def payment(
    uid: str, n: int, *, to: str = OUTSIDE, name: str | None = LISTED, amount: int = 10_000
) -> PaymentRequested:
    return PaymentRequested(
        payment_id=f"p-{uid}-{n}",
        uid=uid,
        request_id=f"r{n:08d}",
        kind=EXTERNAL if to.startswith("1503") else INTERNAL,
        from_account=PAYER,
        to_account=to,
        amount=amount,
        currency="NOK",
        message=None,
        kid=None,
        due_date="2025-03-14",
        body_hash="h",
        requested_at="",
        payee_name=name,
    )


class Lists:
    """The list as the service holds it now; a test may put a new one in."""

    def __init__(self, listed: SanctionsList) -> None:
        self.now = listed
        self.calls = 0

    def __call__(self) -> SanctionsList:
        self.calls += 1
        return self.now


def use_case(listed: SanctionsList | None = None) -> tuple[Screening, RecordingDocuments, Lists]:
    docs = RecordingDocuments()
    docs.store.docs[f"accounts/{SOMEONE}"] = ({"ownerUid": "bob"}, NOW)
    lists = Lists(listed or sample_sanctions())
    return Screening(docs, ScreeningPolicy(), clock=lambda: NOW, sanctions=lists), docs, lists


def officer(docs: RecordingDocuments) -> MemoryDocuments:
    """Compliance's blocking client on the same database."""
    return MemoryDocuments(store=docs.store)


def alert(docs: RecordingDocuments, to: str = OUTSIDE, name: str = LISTED) -> dict:
    found = docs.store.doc(payee_alert_path(rules.payee_key(to, name)))
    assert found is not None
    return found.data


# ---- the rules ------------------------------------------------------------------------------
def test_a_payee_is_its_account_and_its_name_as_screened():
    key = rules.payee_key(OUTSIDE, LISTED)
    assert rules.payee_key("1503.00.00002", LIKE) == key  # the account's dots, the name's case and spaces
    assert rules.payee_key(OTHER_OUTSIDE, LISTED) != key
    assert rules.payee_key(OUTSIDE, "Nordkap Phantom Trading") != key
    assert len(key) == 32 and LISTED.lower() not in key


def test_a_name_like_no_listed_one_is_nothing_and_a_like_one_is_found_by_entry_and_content():
    listed = sample_sanctions()
    assert rules.find(listed, HONEST) is None
    found = rules.find(listed, "Nordkap Phantom Trading")
    assert found is not None
    assert [m["entity_id"] for m in found.matches] == ["990108"]
    assert found.keys[0].startswith("990108:review:")
    nothing = rules.find(listed, "---")  # no letters to screen: reviewed, never let through
    assert nothing is not None and nothing.matches == () and nothing.keys == ("-:review",)


def test_what_refuses_a_payment_an_open_alert_a_confirmed_one_and_a_clearance_of_less_than_the_list_says():
    found = rules.Finding(({"entity_id": "1"},), ("1:review:a",))
    assert rules.refusal(None, None) is None
    assert rules.refusal(None, None, others=[rules.CONFIRMED]) == (rules.BLOCKED, rules.BLOCKED_MESSAGE)
    assert rules.refusal(None, None, others=[rules.OPEN]) == (rules.IN_REVIEW, rules.IN_REVIEW_MESSAGE)
    cleared = {"status": rules.CLEARED, "clearedKeys": ["1:review:a"]}
    assert rules.refusal(found, cleared, others=[rules.OPEN])[0] == rules.IN_REVIEW  # another name is checked
    assert rules.refusal(found, cleared, others=[rules.CLEARED]) is None
    assert rules.refusal(found, None) == (rules.IN_REVIEW, rules.IN_REVIEW_MESSAGE)
    assert rules.refusal(found, {"status": rules.OPEN}) == (rules.IN_REVIEW, rules.IN_REVIEW_MESSAGE)
    assert rules.refusal(found, {"status": rules.CONFIRMED}) == (rules.BLOCKED, rules.BLOCKED_MESSAGE)
    assert rules.refusal(found, {"status": rules.CLEARED, "clearedKeys": ["1:review:a"]}) is None
    changed = rules.Finding(({"entity_id": "1"},), ("1:review:b",))  # the entry changed since
    assert rules.refusal(changed, {"status": rules.CLEARED, "clearedKeys": ["1:review:a"]})[0] == rules.IN_REVIEW


def test_an_alert_is_raised_opened_again_when_cleared_and_written_only_when_it_changes():
    found = rules.Finding(({"entity_id": "1"},), ("1:review:a",))
    new = rules.raised(None, found, to_account="1503.00.00002", name=LISTED, now=T1)
    assert new == {
        "status": rules.OPEN,
        "toAccount": OUTSIDE,
        "payeeName": LISTED,
        "matches": [{"entity_id": "1"}],
        "keys": ["1:review:a"],
        "raisedAt": T1,
    }
    cleared = {**new, "status": rules.CLEARED, "clearedKeys": ["1:review:old"]}
    again = rules.raised(cleared, found, to_account=OUTSIDE, name=LIKE, now=T2)
    assert again == {"status": rules.OPEN, "matches": [{"entity_id": "1"}], "keys": ["1:review:a"], "raisedAt": T2}
    for status in (rules.OPEN, rules.CONFIRMED):  # as it is: not written (who tried is on the decisions)
        assert rules.raised({**new, "status": status}, found, to_account=OUTSIDE, name=LISTED, now=T3) is None
    changed = rules.Finding(({"entity_id": "1"}, {"entity_id": "2"}), ("1:review:a", "2:review:b"))
    assert rules.raised({**new, "status": rules.CONFIRMED}, changed, to_account=OUTSIDE, name=LISTED, now=T3) == {
        "matches": [{"entity_id": "1"}, {"entity_id": "2"}],
        "keys": ["1:review:a", "2:review:b"],
    }


def test_compliance_decides_an_open_alert_once_and_may_clear_a_confirmed_one():
    open_ = {"status": rules.OPEN, "keys": ["1:review:a"], "clearedKeys": ["0:review:z"]}
    assert rules.decided(open_, rules.CLEAR) == {"status": rules.CLEARED, "clearedKeys": ["0:review:z", "1:review:a"]}
    assert rules.decided(open_, rules.CONFIRM) == {"status": rules.CONFIRMED}
    confirmed = {**open_, "status": rules.CONFIRMED}
    assert rules.decided(confirmed, rules.CLEAR)["status"] == rules.CLEARED  # a mistake, or delisted
    for done, action in (
        ({"status": rules.CLEARED}, rules.CLEAR),
        ({"status": rules.CLEARED}, rules.CONFIRM),
        (confirmed, rules.CONFIRM),
        (None, rules.CLEAR),
    ):
        with pytest.raises(AlertRefused) as refused:
            rules.decided(done, action)
        assert refused.value.code == "alert_not_open"
    with pytest.raises(AlertRefused):
        rules.decided(open_, "release")


# ---- screening's use case ---------------------------------------------------------------------
def tried(docs: RecordingDocuments, account: str = OUTSIDE) -> tuple[int, set[str]]:
    attempts, payers = payee_alerts.tried(officer(docs), account)
    return attempts, set(payers)


async def test_a_listed_payee_refuses_the_payment_counts_nothing_and_raises_one_alert_per_payee_per_batch():
    uses, docs, _lists = use_case()
    results = await uses.screen_batch([payment("alice", 1), payment("alice", 2, name=LIKE), payment("bob", 1)])
    assert [(d.approved, d.reason) for d, _ in results] == [(False, rules.IN_REVIEW)] * 3
    assert all(d.message == rules.IN_REVIEW_MESSAGE for d, _ in results)
    assert all("sanction" not in (d.message or "") for d, _ in results)  # the customer is not told why
    [writes] = [w for kind, w in docs.calls if kind == "commit"]
    key = rules.payee_key(OUTSIDE, LISTED)
    assert writes.count(("create", payee_alert_path(key))) == 1  # one write for three refusals
    data = alert(docs)
    assert data["status"] == rules.OPEN and data["payeeName"] == LISTED and data["toAccount"] == OUTSIDE
    assert [m["entity_id"] for m in data["matches"]] == ["990108"]
    assert tried(docs) == (3, {"alice", "bob"})  # who tried: on the decisions
    state = docs.store.doc(customer_path("alice"))
    assert state is not None and state.data["dayTotal"] == 0  # a refusal counts toward no limit
    # the next batch reads the alert with the customers' states, in one read, and leaves it
    docs.forget()
    await uses.screen_batch([payment("carol", 1)])
    assert [paths for kind, paths in docs.calls if kind == "get_many"] == [
        [customer_path("carol"), payee_alert_path(key)]
    ]
    [writes] = [w for kind, w in docs.calls if kind == "commit"]
    assert not any(path.startswith("payeeAlerts/") for _kind, path in writes)  # not a document every batch writes
    assert tried(docs) == (4, {"alice", "bob", "carol"})


async def test_an_open_payee_refuses_its_account_under_any_name_in_this_process_and_then_in_every_one(monkeypatch):
    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])  # raises the alert
    results = await uses.screen_batch([payment("alice", 2, name=HONEST), payment("alice", 3, name=None)])
    assert [d.reason for d, _ in results] == [rules.IN_REVIEW, rules.IN_REVIEW]  # this process knew at once
    assert docs.store.doc(payee_alert_path(rules.payee_key(OUTSIDE, HONEST))) is None  # no alert on that name
    assert tried(docs) == (3, {"alice"})
    other = Screening(docs, ScreeningPolicy(), clock=lambda: NOW, sanctions=Lists(sample_sanctions()))
    [(elsewhere, _)] = await other.screen_batch([payment("bob", 1, name=HONEST)])  # reads the alerted accounts
    assert elsewhere.reason == rules.IN_REVIEW
    [(paid, _)] = await other.screen_batch([payment("bob", 2, to=OTHER_OUTSIDE, name=HONEST)])
    assert paid.approved
    # cleared: the payee's own alert is read in the batch, so no stale account list refuses it
    key = rules.payee_key(OUTSIDE, LISTED)
    payee_alerts.decide(officer(docs), key, rules.CLEAR, by="Compliance Kari", note="not the listed party")
    [(again, _)] = await other.screen_batch([payment("bob", 3)])
    assert again.approved


async def test_a_burst_to_an_account_is_refused_whole_whatever_the_order_of_its_names():
    for order in ((LISTED, HONEST, None), (HONEST, None, LISTED)):
        uses, docs, _lists = use_case()
        results = await uses.screen_batch([payment("alice", n, name=name) for n, name in enumerate(order)])
        assert [d.reason for d, _ in results] == [rules.IN_REVIEW] * 3, order
        assert tried(docs) == (3, {"alice"})


async def test_a_batch_in_flight_beside_one_that_raised_an_alert_knows_it(monkeypatch):
    uses, docs, _lists = use_case()
    gate = asyncio.Event()
    commit = docs.batch

    def slow_batch():  # the first batch's commit waits: the second is decided meanwhile
        batch = commit()
        real = batch.commit

        async def waiting():
            if not gate.is_set():
                await gate.wait()
            return await real()

        batch.commit = waiting  # type: ignore[method-assign]
        return batch

    docs.batch = slow_batch  # type: ignore[method-assign]
    first = asyncio.create_task(uses.screen_batch([payment("alice", 1)]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(uses.screen_batch([payment("alice", 2, name=HONEST)]))
    await asyncio.sleep(0.05)
    gate.set()
    [(a, _)], [(b, _)] = await first, await second
    assert (a.reason, b.reason) == (rules.IN_REVIEW, rules.IN_REVIEW)


async def test_what_this_process_raised_outlives_a_read_begun_before_its_commit(monkeypatch):
    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    query = docs.query

    async def before_the_commit(collection, **kwargs):  # a read that began before the alert was committed
        return [] if collection == "payeeAlerts" else await query(collection, **kwargs)

    docs.query = before_the_commit  # type: ignore[method-assign]
    monkeypatch.setattr(screening_module, "ACCOUNTS_SECONDS", 0.0)
    [(refused, _)] = await uses.screen_batch([payment("alice", 2, name=HONEST)])
    assert refused.reason == rules.IN_REVIEW


async def test_an_alert_on_a_name_the_list_no_longer_names_still_holds_its_account(monkeypatch):
    for decision, reason in ((None, rules.IN_REVIEW), (rules.CONFIRM, rules.BLOCKED)):
        uses, docs, lists = use_case()
        await uses.screen_batch([payment("alice", 1)])
        if decision:
            payee_alerts.decide(officer(docs), rules.payee_key(OUTSIDE, LISTED), decision, by="Kari", note="listed")
        lists.now = SanctionsList([e for e in sample_sanctions().entries if e.entity_id != "990108"])
        monkeypatch.setattr(screening_module, "ACCOUNTS_SECONDS", 0.0)
        results = await uses.screen_batch([payment("bob", 1), payment("bob", 2, name=HONEST)])
        assert [d.reason for d, _ in results] == [reason, reason]  # until compliance clears it


async def test_a_redelivered_approval_keeps_its_decision_and_leaves_no_refusal_behind():
    """Approved under an older list, delivered again beside a new payment once the new list
    names the payee: the replay keeps its decision (the payment was made), and the first
    attempt's refusal of it (before the decisions were read) blocks nothing after."""
    old = SanctionsList([e for e in sample_sanctions().entries if e.entity_id != "990108"])
    uses, docs, lists = use_case(old)
    [(first, _)] = await uses.screen_batch([payment("alice", 1)])
    assert first.approved
    lists.now = sample_sanctions()
    results = await uses.screen_batch([payment("alice", 1), payment("alice", 2, name=HONEST)])
    assert [(d.approved, replayed) for d, replayed in results] == [(True, True), (True, False)]
    assert not any(p.startswith("payeeAlerts/") for p in docs.store.docs) and uses._raised == {}


async def test_a_batch_that_gives_up_takes_back_the_alerts_it_decided(monkeypatch):
    uses, docs, _lists = use_case()
    real = docs.batch

    def failing():
        batch = real()

        async def stale():
            raise screening_module.Stale("a customer moved")

        batch.commit = stale  # type: ignore[method-assign]
        return batch

    docs.batch = failing  # type: ignore[method-assign]
    with pytest.raises(screening_module.Contention):
        await uses.screen_batch([payment("alice", 1)])
    assert uses._raised == {}  # no alert was raised: nothing refuses the account
    docs.batch = real  # type: ignore[method-assign]
    [(paid, _)] = await uses.screen_batch([payment("alice", 2, to=OUTSIDE, name=HONEST)])
    assert paid.approved


async def test_the_alerts_are_read_again_by_what_changed_since_and_a_cleared_one_lets_its_account_go(monkeypatch):
    uses, docs, _lists = use_case()
    monkeypatch.setattr(screening_module, "ACCOUNTS_SECONDS", 0.0)
    monkeypatch.setattr(screening_module, "RAISED_SECONDS", 0.0)
    await uses.screen_batch([payment("alice", 1)])  # raised here
    other = Screening(docs, ScreeningPolicy(), clock=lambda: NOW, sanctions=Lists(sample_sanctions()))
    [(refused, _)] = await other.screen_batch([payment("bob", 1, name=HONEST)])  # the first read: every open one
    assert refused.reason == rules.IN_REVIEW
    queries = []
    query = docs.query

    async def counted(collection, **kwargs):
        found = await query(collection, **kwargs)
        if collection == "payeeAlerts":
            queries.append((kwargs.get("where"), len(found)))
        return found

    docs.query = counted  # type: ignore[method-assign]
    key = rules.payee_key(OUTSIDE, LISTED)
    payee_alerts.decide(officer(docs), key, rules.CLEAR, by="Compliance Kari", note="not the listed party")
    [(paid, _)] = await other.screen_batch([payment("bob", 2, name=HONEST)])
    assert paid.approved  # the clearance read, the account let go
    [(where, n)] = queries
    assert where[0].field == "updatedAt" and n == 1  # what changed since, not every alert


async def test_a_cleared_payee_refused_for_another_alert_on_its_account_stays_cleared():
    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    key = rules.payee_key(OUTSIDE, LISTED)
    payee_alerts.decide(officer(docs), key, rules.CLEAR, by="Compliance Kari", note="not the listed party")
    other = "Borislav Drazhenko"  # another listed-like name for the same account: an open alert
    results = await uses.screen_batch([payment("bob", 1, name=other), payment("bob", 2)])
    assert [d.reason for d, _ in results] == [rules.IN_REVIEW, rules.IN_REVIEW]
    assert alert(docs)["status"] == rules.CLEARED  # refused for the other one, not opened again
    assert alert(docs, name=other)["status"] == rules.OPEN


async def test_a_name_like_no_listed_one_an_internal_payee_and_no_name_cost_no_document():
    uses, docs, _lists = use_case()
    batch = [
        payment("alice", 1, name=HONEST),
        payment("alice", 2, name=None),
        payment("alice", 3, to=SOMEONE, name=LISTED),  # a customer here: screened as one, not by this name
    ]
    results = await uses.screen_batch(batch)
    assert [d.approved for d, _ in results] == [True, True, True]
    assert not any(p.startswith("payeeAlerts/") for kind, paths in docs.calls if kind == "get_many" for p in paths)
    assert not any(p.startswith("payeeAlerts/") for p in docs.store.docs)


async def test_a_cleared_payee_is_paid_until_the_list_says_something_new_of_it():
    uses, docs, lists = use_case()
    [(first, _)] = await uses.screen_batch([payment("alice", 1)])
    assert first.reason == rules.IN_REVIEW
    key = rules.payee_key(OUTSIDE, LISTED)
    decided = payee_alerts.decide(officer(docs), key, rules.CLEAR, by="Compliance Kari", note="not the listed party")
    assert decided["status"] == rules.CLEARED and decided["decisions"][-1]["by"] == "Compliance Kari"
    [(paid, _)] = await uses.screen_batch([payment("alice", 2, name=LIKE)])
    assert paid.approved  # although this process saw the alert open: its own alert is read fresh
    assert tried(docs) == (1, {"alice"})  # a payment that passes adds nothing
    # a new list whose entry for the enterprise changed (a new alias): refused, the alert open again
    entry = lists.now.entry("990108")
    assert entry is not None
    changed = dataclasses.replace(entry, names=(*entry.names, "Nordkapp Shadow Trading"))
    lists.now = SanctionsList([changed])
    [(again, _)] = await uses.screen_batch([payment("alice", 3)])
    assert again.reason == rules.IN_REVIEW
    assert alert(docs)["status"] == rules.OPEN and alert(docs)["raisedAt"] == NOW


async def test_a_confirmed_payee_is_a_blocked_counterparty_under_any_name_until_cleared():
    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    key = rules.payee_key(OUTSIDE, LISTED)
    payee_alerts.decide(officer(docs), key, rules.CONFIRM, by="Compliance Kari", note="the listed enterprise")
    other = Screening(docs, ScreeningPolicy(), clock=lambda: NOW, sanctions=Lists(sample_sanctions()))
    results = await other.screen_batch(
        [
            payment("bob", 1),
            payment("bob", 2, name=HONEST),
            payment("bob", 3, name=None),
            payment("bob", 4, to=OTHER_OUTSIDE),
        ]
    )
    assert [(d.reason, d.message) for d, _ in results[:3]] == [(rules.BLOCKED, rules.BLOCKED_MESSAGE)] * 3
    assert results[3][0].reason == rules.IN_REVIEW  # another account: another payee
    assert alert(docs)["status"] == rules.CONFIRMED
    assert tried(docs) == (4, {"alice", "bob"})
    with pytest.raises(AlertRefused) as twice:
        payee_alerts.decide(officer(docs), key, rules.CONFIRM, by="Compliance Kari", note="again")
    assert twice.value.code == "alert_not_open"
    payee_alerts.decide(officer(docs), key, rules.CLEAR, by="Compliance Kari", note="a mistake: another party")
    [(paid, _)] = await uses.screen_batch([payment("alice", 2)])
    assert paid.approved


async def test_a_policy_blocked_account_is_no_payees_refusal():
    uses, docs, _lists = use_case()
    uses.policy = ScreeningPolicy(blocked_accounts=frozenset({OUTSIDE}))
    [(refused, _)] = await uses.screen_batch([payment("alice", 1)])
    assert refused.reason == "blocked_counterparty"
    assert not any(p.startswith("payeeAlerts/") for p in docs.store.docs) and tried(docs) == (0, set())


async def test_a_decision_made_while_a_batch_is_decided_has_the_batch_decided_again():
    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    key = rules.payee_key(OUTSIDE, LISTED)
    read = docs.get_many

    async def then_compliance_decides(paths):  # the batch read the alert open; compliance confirms it
        found = await read(paths)
        if payee_alert_path(key) in paths and found[payee_alert_path(key)].data["status"] == rules.OPEN:
            payee_alerts.decide(officer(docs), key, rules.CONFIRM, by="Compliance Kari", note="the listed party")
        return found

    docs.get_many = then_compliance_decides  # type: ignore[method-assign]
    uses.known.clear()
    changed = rules.Finding(({"entity_id": "x"},), ("x:review:new",))  # the list says more: the alert is written
    real = uses.payee_findings

    async def more(payments):
        return {pid: (k, changed) for pid, (k, _f) in (await real(payments)).items()}

    uses.payee_findings = more  # type: ignore[method-assign]
    [(decision, _)] = await uses.screen_batch([payment("alice", 2)])
    assert decision.reason == rules.BLOCKED  # decided again on the confirmed alert, not on the open one
    assert alert(docs)["status"] == rules.CONFIRMED and alert(docs)["keys"] == ["x:review:new"]


async def test_a_name_is_screened_once_per_process_and_list_and_always_when_the_memory_is_full(monkeypatch):
    uses, _docs, lists = use_case()
    screened: list[str] = []
    find = rules.find

    def counted(listed, name):
        screened.append(name)
        return find(listed, name)

    monkeypatch.setattr(rules, "find", counted)
    await uses.screen_batch([payment("alice", 1, name=HONEST), payment("alice", 2, name=HONEST)])
    await uses.screen_batch([payment("alice", 3, name=HONEST)])
    assert screened == [HONEST]
    lists.now = SanctionsList(list(sample_sanctions().entries))  # a new list (another object): again
    await uses.screen_batch([payment("alice", 4, name=HONEST)])
    assert screened == [HONEST, HONEST]
    monkeypatch.setattr(screening_module, "NAMES", 2)  # full: forgotten, and this batch's screened again
    results = await uses.screen_batch(
        [payment("bob", 0, to=OTHER_OUTSIDE, name="A Ltd"), payment("bob", 1, name=LISTED)]
    )
    assert [d.reason for d, _ in results] == [None, rules.IN_REVIEW]


async def test_a_batch_screened_against_the_old_list_teaches_the_new_lists_names_nothing(monkeypatch):
    """Two batches of a partition in flight across a new list: the first finds its names
    against the list it started with, and the new list's names are found against it."""
    old = SanctionsList([SanctionedEntity("E0", ("Somebody Else Ltd",), (), (), "p", ENTERPRISE)])
    new = SanctionsList([*old.entries, SanctionedEntity("E1", ("Fjellvind Shipping Ltd",), (), (), "p", ENTERPRISE)])
    uses, _docs, lists = use_case(old)
    await uses.screen_batch([payment("warm", 0, name="Known AS")])
    gate = asyncio.Event()
    real = asyncio.to_thread

    async def slow_finding(fn, *args):
        if fn is not lists:  # the names' screening, not the list's read
            await gate.wait()
        return await real(fn, *args)

    monkeypatch.setattr(screening_module.asyncio, "to_thread", slow_finding)
    first = asyncio.create_task(
        uses.screen_batch([payment("alice", 1, name="Known AS"), payment("alice", 2, name="Fjellvind Shipping Ltd")])
    )
    await asyncio.sleep(0.05)
    lists.now = new
    second = asyncio.create_task(uses.screen_batch([payment("bob", 1, name="Hansen Ror AS")]))
    await asyncio.sleep(0.05)
    gate.set()
    a, b = await first, await second
    assert [d.approved for d, _ in a] == [True, True]  # the old list does not name it
    assert b[0][0].approved
    [(c, _)] = await uses.screen_batch([payment("carol", 1, name="Fjellvind Shipping Ltd")])
    assert c.reason == rules.IN_REVIEW  # the new list does


async def test_an_enterprise_listed_by_a_name_only_is_found():
    listed = SanctionsList(
        [SanctionedEntity("E1", ("Fjellvind Shipping Ltd",), (), (), "prog", ENTERPRISE)],
    )
    uses, _docs, _lists = use_case(listed)
    [(decision, _)] = await uses.screen_batch([payment("alice", 1, name="Fjellvind Shipping Ltd.")])
    assert decision.reason == rules.IN_REVIEW


def test_a_decision_needs_who_why_and_a_key():
    docs = MemoryDocuments()
    with pytest.raises(AlertRefused):
        payee_alerts.decide(docs, "0" * 32, rules.CLEAR, by="", note="why not")
    with pytest.raises(AlertRefused) as bad:
        payee_alerts.decide(docs, "payeeAlerts/../x", rules.CLEAR, by="Kari", note="why not")
    assert "32 hex digits" in bad.value.message
    with pytest.raises(AlertRefused) as missing:
        payee_alerts.decide(docs, "0" * 32, rules.CLEAR, by="Kari", note="why not")
    assert missing.value.code == "alert_not_open"
    with pytest.raises(AlertRefused):
        payee_alerts.alerts(docs, status="frozen")


async def test_the_officers_command_line_lists_decides_and_refuses(monkeypatch, capsys):
    import fjordbank.adapters.documents as documents
    import fjordbank.adapters.firestore as firestore
    from fjordbank.runtime import payee_alerts as command

    uses, docs, _lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    monkeypatch.setattr(firestore, "sync_client", lambda project: project)
    monkeypatch.setattr(documents, "FirestoreDocuments", lambda _client: officer(docs))
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    assert command.main(["--project", "demo-bank", "list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    listed = json.loads(line)
    assert listed["status"] == rules.OPEN and listed["attempts"] == 1 and listed["payers"] == ["alice"]
    key = listed["key"]
    assert command.main(["--project", "demo-bank", "confirm", key, "--by", "Kari", "--note", "the listed one"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == rules.CONFIRMED
    assert command.main(["--project", "demo-bank", "confirm", key, "--by", "Kari", "--note", "again"]) == 1
    assert "refused" in capsys.readouterr().err
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    assert command.main(["--project", "bank", "list"]) == 2  # the emulator's address set for a real project


async def test_an_alert_whose_commit_answer_was_lost_still_refuses_its_account_in_this_process():
    """The commit landed and its answer was lost (a deadline): the registration was taken
    back, the batch tried again was a replay that raised nothing, and this process paid the
    account under another name until it next read the alerts (found in review)."""

    class LostAnswer(TimeoutError):
        pass

    uses, docs, _lists = use_case()
    real = docs.batch
    lose = {"next": True}

    def landing_then_lost():
        batch = real()
        commit = batch.commit

        async def lost():
            written = await commit()
            if lose["next"]:
                lose["next"] = False
                raise LostAnswer("deadline exceeded")
            return written

        batch.commit = lost  # type: ignore[method-assign]
        return batch

    docs.batch = landing_then_lost  # type: ignore[method-assign]
    first = [payment("alice", 1)]
    with pytest.raises(LostAnswer):
        await uses.screen_batch(first)
    [(again, replayed)] = await uses.screen_batch(first)
    assert replayed and again.reason == rules.IN_REVIEW
    [(paid, _)] = await uses.screen_batch([payment("alice", 2, name=HONEST)])
    assert paid.reason == rules.IN_REVIEW


async def test_a_decision_on_a_payee_alert_as_listed_is_refused_when_a_new_list_reopened_it_since():
    from fjordbank.runtime import payee_alerts as officer_tool

    uses, docs, lists = use_case()
    await uses.screen_batch([payment("alice", 1)])
    key = rules.payee_key(OUTSIDE, LISTED)
    [looked] = officer_tool.listed(officer(docs))
    officer_tool.decide(officer(docs), rules.CLEAR, key, by="Compliance Kari", note="not the listed party")
    entry = lists.now.entry("990108")
    assert entry is not None
    lists.now = SanctionsList([dataclasses.replace(entry, names=(*entry.names, "Nordkapp Shadow Trading"))])
    await uses.screen_batch([payment("alice", 3)])  # reopened by the new list
    with pytest.raises(AlertRefused) as refused:
        officer_tool.decide(
            officer(docs), rules.CLEAR, key, by="Kari", note="still another party", seen=looked["version"]
        )
    assert refused.value.code == "alert_changed" and alert(docs)["status"] == rules.OPEN
    [now] = officer_tool.listed(officer(docs))
    done = officer_tool.decide(
        officer(docs), rules.CLEAR, key, by="Kari", note="still another party", seen=now["version"]
    )
    assert done["status"] == rules.CLEARED


async def test_a_confirmed_party_lifted_when_delisted_is_refused_again_when_listed_again(monkeypatch):
    """`clear` was the only way to lift a confirmed payee, and it decided the party's entries
    for good: delisted, lifted, then listed again exactly as before, the party was paid with
    no alert (found in review, 2026-12-06). `lift` decides nothing."""
    monkeypatch.setattr(screening_module, "ACCOUNTS_SECONDS", 0.0)  # the instance reads the decisions at once
    monkeypatch.setattr(screening_module, "RAISED_SECONDS", -1.0)  # and forgets what it raised
    uses, docs, lists = use_case()
    full = lists.now
    await uses.screen_batch([payment("alice", 1)])
    key = rules.payee_key(OUTSIDE, LISTED)
    payee_alerts.decide(officer(docs), key, rules.CONFIRM, by="Compliance Kari", note="the listed enterprise")
    lists.now = SanctionsList([e for e in full.entries if e.entity_id != "990108"])  # delisted
    payee_alerts.decide(officer(docs), key, rules.LIFT, by="Compliance Kari", note="delisted on the 3rd")
    assert alert(docs)["status"] == rules.CLEARED and alert(docs)["clearedKeys"] == []
    uses.known.clear()
    [(paid, _)] = await uses.screen_batch([payment("alice", 2)])
    assert paid.approved  # while the list does not name it
    lists.now = SanctionsList(list(full.entries))  # listed again, as before
    [(again, _)] = await uses.screen_batch([payment("bob", 3)])
    assert again.reason == rules.IN_REVIEW and alert(docs)["status"] == rules.OPEN
    with pytest.raises(AlertRefused, match="not for lift"):  # only a confirmed one is lifted
        payee_alerts.decide(officer(docs), key, rules.LIFT, by="Compliance Kari", note="again")


def test_lift_is_taken_on_a_confirmed_alert_alone_and_forgets_earlier_clears():
    assert rules.decided({"status": rules.CONFIRMED, "keys": ["a"], "clearedKeys": ["b"]}, rules.LIFT) == {
        "status": rules.CLEARED,
        "clearedKeys": [],
    }
    for status in (rules.OPEN, rules.CLEARED, None):
        with pytest.raises(AlertRefused):
            rules.decided({"status": status} if status else None, rules.LIFT)
