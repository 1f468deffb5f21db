"""The payment trigger's use case (fjordbank.service_layer.edge) on the in-memory ports:
what it publishes, what the request document shows, what it counts against the rate
limit, and how many round trips it takes (the emulator's count of the same promise:
tests/integration/test_edge_round_trips.py, two for a valid request: the batched read and
one commit that counts it and shows it "requested", on the condition that the document is
as the trigger's creation snapshot says; a redelivery's commit fails as a whole and the
request is read and found handled).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.api_core import exceptions as api_errors
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fjordbank import topology
from fjordbank.config import load_settings
from fjordbank.domain import sca as sca_rules
from fjordbank.domain.errors import DomainError
from fjordbank.domain.payments import PaymentEvent, PaymentRejected, PaymentRequested, payment_id_for, told_owners
from fjordbank.domain.ratelimit import LIMITS, window
from fjordbank.errors import PublishError
from fjordbank.runtime import tracing
from fjordbank.service_layer import edge, insights, ratelimits, request_status, sca, standing_orders
from fjordbank.service_layer.ports import Doc
from tests.support.memory import MemoryBatch, MemoryDocuments
from tests.support.round_trips import RecordingPublisher, RoundTrips

UID = "u1"
BANK_REGS = ("9710",)
PAYER, OWN, PAYEE, CLOSED, EXTERNAL = "97100000028", "97100000044", "97100000036", "97100000052", "15030000002"
UNKNOWN = "97100000060"  # a Fjordbank number with no account
NEW_PAYEE = "15030000010"  # at another bank, never paid before
NOW = dt.datetime(2027, 3, 10, 10, 0, 20, tzinfo=dt.UTC)  # a third into a minute's window
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


class Bank:
    """One customer on the in-memory ports: an open account, an own second one, a payee
    at Fjordbank (someone else's), a closed account, a device key, and one payee paid before."""

    def __init__(self) -> None:
        self.memory = MemoryDocuments(lambda: NOW)
        self.docs = RoundTrips(self.memory)
        self.publisher = RecordingPublisher()
        self.created: dict[str, dt.datetime] = {}  # request id -> its creation's update time
        b = self.memory.batch()
        b.set(f"accounts/{PAYER}", {"ownerUid": UID, "status": "open", "currency": "NOK"})
        b.set(f"accounts/{OWN}", {"ownerUid": UID, "status": "open", "currency": "NOK"})
        b.set(f"accounts/{PAYEE}", {"ownerUid": "someone-else", "status": "open", "currency": "NOK"})
        b.set(f"accounts/{CLOSED}", {"ownerUid": UID, "status": "closed", "currency": "NOK"})
        b.set(f"screeningCustomers/{UID}", {"payees": [PAYEE, EXTERNAL]})
        b.set(f"users/{UID}/scaKeys/phone-key-1", {"keyId": "phone-key-1", "publicKey": sca_rules.public_key_b64(KEY)})
        b.commit()

    def create(self, to: str = PAYEE, amount: int = 12_300, *, key=None, **fields) -> tuple[str, dict]:
        """The app's request document (its creation, as the trigger sees it)."""
        request_id = "req-" + uuid.uuid4().hex[:12]
        body = {"v": 1, "fromAccount": PAYER, "toAccount": to, "amount": amount, "currency": "NOK", **fields}
        if key is not None:
            body["sca"] = {"keyId": "phone-key-1", "signature": self.sign(key, request_id, amount, to)}
        b = self.memory.batch()
        b.create(self.path(request_id), body)
        (written,) = b.commit()
        self.created[request_id] = written.updated
        return request_id, body

    @staticmethod
    def sign(key, request_id: str, amount: int, to: str) -> str:
        return sca_rules.sign(key, sca_rules.challenge(request_id, amount, "NOK", to))

    @staticmethod
    def path(request_id: str) -> str:
        return f"users/{UID}/paymentRequests/{request_id}"

    def handle(self, request_id: str, body: dict, *, docs=None, now: dt.datetime = NOW, snapshot=True) -> str:
        """The trigger's call (with the creation snapshot's update time; ``snapshot`` False:
        without it, so the edge reads the document)."""
        self.docs.reset()
        return edge.handle_payment_request(
            docs or self.docs,
            self.publisher,
            uid=UID,
            request_id=request_id,
            body=body,
            bank_regs=BANK_REGS,
            clock=lambda: now,
            created=self.created.get(request_id) if snapshot else None,
        )

    def request(self, request_id: str) -> dict:
        doc = self.memory.get(self.path(request_id))
        assert doc is not None
        return doc.data

    def counted(self, now: dt.datetime = NOW) -> int:
        """This window's count of the customer's payment requests."""
        doc = self.memory.get(ratelimits.document_path(UID, "payments"))
        index = window(LIMITS["payments"], now.timestamp()).index
        return 0 if doc is None else doc.data["w"].get(ratelimits.window_key(index), 0)


@pytest.fixture
def bank() -> Bank:
    return Bank()


# ---- valid payments: published once, two round trips -------------------------------------
@pytest.mark.parametrize(
    ("to", "signed", "kind"),
    [(PAYEE, False, "internal"), (EXTERNAL, False, "external"), (PAYEE, True, "internal"), (OWN, False, "internal")],
    ids=["internal", "external", "signed", "own-account"],
)
@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_valid_payment_is_published_once_and_shown_requested_in_two_round_trips(bank, to, signed, kind, snapshot):
    request_id, body = bank.create(to, key=KEY if signed else None)
    assert bank.handle(request_id, body, snapshot=snapshot) == "requested"
    (published,) = bank.publisher.published
    payment_id = payment_id_for(UID, request_id)
    assert published.subject == topology.payment_subject("requested", PAYER) == "payments.requested.3"
    assert published.msg_id == f"{payment_id}:requested" and published.stream == topology.STREAM_PAYMENTS
    payment = published.body["payment"]
    assert payment["kind"] == kind and payment["amount"] == 12_300 and payment["to_account"] == to
    assert published.body["status"] == "requested"
    shown = bank.request(request_id)
    assert shown["status"] == "requested" and shown["paymentId"] == payment_id and shown["bodyHash"]
    assert shown["timeline"]["requested"] == shown["updatedAt"]  # the commit's time
    # one batched read (the request document too when the trigger did not say how it was
    # created), one commit: the count, the signature's use and the status
    assert bank.docs.counts == {"BatchGetDocuments": 1, "Commit": 1}, bank.docs.counts
    assert bank.counted() == 1
    # an internal payment's event tells its payee, as the edge read the account
    payee = {PAYEE: "someone-else", OWN: UID}.get(to)
    assert published.body["detail"] == {"onRequest": True, **({"payeeUid": payee} if payee else {})}
    event = PaymentEvent.from_json(published.body)
    assert told_owners([event]) == ({to: payee} if payee else {})
    if signed:  # the signature's use, in the commit that counted
        used = bank.memory.get(sca.used_path(body["sca"]))
        assert used is not None and used.data["request"] == bank.path(request_id) and used.data["uid"] == UID


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_redelivered_trigger_counts_nothing_and_publishes_the_same_message_again(bank, snapshot):
    """Its commit (on the creation's version) fails as a whole, so nothing is counted; the
    request is read and found "requested", noted as published again (one write, on the
    version read) and published again unchecked: the same message id (JetStream keeps one),
    in case the first run ended before its publish."""
    request_id, body = bank.create()
    assert bank.handle(request_id, body) == "requested"
    assert bank.handle(request_id, body, snapshot=snapshot) == "requested"
    first, again = bank.publisher.published
    assert first.msg_id == again.msg_id and first.body["payment"]["payment_id"] == again.body["payment"]["payment_id"]
    assert again.body["detail"] == first.body["detail"]  # the payee told as before
    reads = {True: {"BatchGetDocuments": 2, "Commit": 2}, False: {"BatchGetDocuments": 1, "Commit": 1}}[snapshot]
    assert bank.docs.counts == reads, bank.docs.counts
    assert bank.counted() == 1
    shown = bank.request(request_id)
    assert shown["status"] == "requested" and shown[request_status.REPUBLISHED] == {"count": 1, "at": NOW}


def test_a_redelivered_trigger_publishes_the_payment_as_the_first_run_kept_it(bank):
    """Rebuilt with the redelivery's time, a trigger delivered again after midnight moved
    the payment's booking date: on the last day of a month, the payee's income was counted
    in two months of "my economy" (found in review, 2026-12-06)."""
    request_id, body = bank.create()
    assert bank.handle(request_id, body) == "requested"
    assert bank.handle(request_id, body, now=NOW + dt.timedelta(minutes=5)) == "requested"
    first, again = bank.publisher.published
    assert again.body["payment"] == first.body["payment"] == bank.request(request_id)["payment"]


@pytest.mark.parametrize("final", ["completed", "rejected"])
def test_a_redelivered_trigger_of_a_request_shown_later_publishes_nothing(bank, final):
    request_id, body = bank.create()
    assert bank.handle(request_id, body) == "requested"
    b = bank.memory.batch()
    b.update(bank.path(request_id), {"status": final, "statusRank": 9})
    b.commit()
    assert bank.handle(request_id, body) == final
    assert len(bank.publisher.published) == 1 and bank.counted() == 1


def test_a_redelivery_of_a_refused_invalid_request_is_not_counted_again(bank):
    """The refusal and its count are one commit on the creation's version: a redelivery's
    fails whole (nothing counted), and the request is read and found handled."""
    request_id, body = bank.create(amount=-5)
    assert bank.handle(request_id, body) == "rejected"
    assert bank.docs.counts == {"Commit": 1}
    assert bank.handle(request_id, body) == "rejected"
    assert bank.docs.counts == {"Commit": 1, "BatchGetDocuments": 1} and bank.counted() == 1


def test_a_payment_due_later_is_scheduled_not_published(bank):
    request_id, body = bank.create(dueDate="2027-04-01")
    assert bank.handle(request_id, body) == "scheduled"
    assert bank.publisher.published == []
    shown = bank.request(request_id)
    assert shown["status"] == "scheduled" and shown["payment"]["due_date"] == "2027-04-01"
    # and one count of the customer's payments waiting already (edge.MAX_SCHEDULED)
    assert bank.docs.counts == {"BatchGetDocuments": 1, "RunAggregationQuery": 1, "Commit": 1}


def test_a_customer_has_at_most_so_many_payments_waiting_for_their_due_dates(bank, monkeypatch):
    """One customer's thousands of scheduled payments the account could not cover took the
    due-payments job's time from everyone else's (found in review, 2026-12-06)."""
    monkeypatch.setattr(edge, "MAX_SCHEDULED", 2)
    for _ in range(2):
        assert bank.handle(*bank.create(dueDate="2027-04-01")) == "scheduled"
    request_id, body = bank.create(dueDate="2027-04-01")
    assert bank.handle(request_id, body) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "too_many_scheduled"
    assert bank.handle(*bank.create()) == "requested"  # a payment made now is not counted, nor counts


def test_each_round_trip_is_a_span_of_the_payments_trace():
    """The trace shows where the trigger's time goes: its read, its commit, its publish."""
    tracing.reset_for_tests()
    exporter = InMemorySpanExporter()
    tracing.setup("edge", load_settings({}), processor=SimpleSpanProcessor(exporter))
    try:
        bank = Bank()
        request_id, body = bank.create()
        with tracing.span("edge on_payment_request"):
            assert bank.handle(request_id, body) == "requested"
        spans = {s.name: s for s in exporter.get_finished_spans()}
    finally:
        tracing.reset_for_tests()
    root = spans["edge on_payment_request"].context.span_id
    for name in ("firestore edge_read", "firestore edge_commit", "edge submit"):
        assert spans[name].parent.span_id == root, name
    assert spans["firestore edge_read"].attributes["fjb.documents"] == 3  # both accounts, the known payees
    assert spans["firestore edge_read"].end_time <= spans["firestore edge_commit"].start_time
    assert spans["firestore edge_commit"].end_time <= spans["publish payments.requested"].start_time


def test_the_apps_traceparent_is_not_part_of_the_payment(bank):
    request_id, body = bank.create()
    body = {**body, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    assert bank.handle(request_id, body) == "requested"
    assert "traceparent" not in bank.publisher.published[0].body["payment"]


# ---- refusals: their reasons, each counted against the rate limit ------------------------
def other_accounts_payment(bank: Bank) -> tuple[str, dict]:
    request_id, body = bank.create(EXTERNAL)
    return request_id, {**body, "fromAccount": PAYEE}


def unknown_from_account(bank: Bank) -> tuple[str, dict]:
    request_id, body = bank.create()
    return request_id, {**body, "fromAccount": UNKNOWN}


def closed_from_account(bank: Bank) -> tuple[str, dict]:
    request_id, body = bank.create()
    return request_id, {**body, "fromAccount": CLOSED}


def reused_signature(bank: Bank) -> tuple[str, dict]:
    first, body = bank.create(key=KEY)
    assert bank.handle(first, body) == "requested"
    request_id, _ = bank.create()
    return request_id, body  # the first request's signature on another request


def signed_by_another_key(bank: Bank) -> tuple[str, dict]:
    return bank.create(key=OTHER_KEY)


def signed_for_another_amount(bank: Bank) -> tuple[str, dict]:
    request_id, body = bank.create(key=KEY)
    return request_id, {**body, "amount": 99_900}


def unregistered_key(bank: Bank) -> tuple[str, dict]:
    request_id, body = bank.create(key=KEY)
    return request_id, {**body, "sca": {**body["sca"], "keyId": "another-key"}}


def out_of_range_signature(bank: Bank) -> tuple[str, dict]:
    """s all ones, above P-256's order: its identity raised OverflowError, and the trigger
    failed without a status."""
    request_id, body = bank.create(key=KEY)
    signature = base64.b64encode(b"\x01" * 32 + b"\xff" * 32).decode()
    return request_id, {**body, "sca": {**body["sca"], "signature": signature}}


REFUSALS = {
    "unknown_account": unknown_from_account,
    "not_owner": other_accounts_payment,
    "account_closed": closed_from_account,
    "unknown_to_account": lambda bank: bank.create(UNKNOWN),
    "to_account_closed": lambda bank: bank.create(CLOSED),
    "sca_required_new_payee": lambda bank: bank.create(NEW_PAYEE),
    "sca_required_amount": lambda bank: bank.create(amount=500_001),
    "sca_invalid_key": signed_by_another_key,
    "sca_invalid_values": signed_for_another_amount,
    "sca_invalid_unregistered": unregistered_key,
    "sca_invalid_out_of_range": out_of_range_signature,
    "sca_reused": reused_signature,
    "invalid_amount": lambda bank: bank.create(amount=-5),
    "same_account": lambda bank: bank.create(PAYER),
}
CODES = {
    "not_owner": "unknown_account",  # the same answer for someone else's account
    "sca_required_new_payee": "sca_required",
    "sca_required_amount": "sca_required",
    "sca_invalid_key": "sca_invalid",
    "sca_invalid_values": "sca_invalid",
    "sca_invalid_unregistered": "sca_invalid",
    "sca_invalid_out_of_range": "sca_invalid",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_shows_its_reason_publishes_nothing_and_counts(bank, case):
    request_id, body = REFUSALS[case](bank)
    published, counted = len(bank.publisher.published), bank.counted()
    assert bank.handle(request_id, body) == "rejected"
    shown = bank.request(request_id)
    assert shown["status"] == "rejected" and shown["reason"]["code"] == CODES.get(case, case)
    assert shown["reason"]["message"]
    assert len(bank.publisher.published) == published
    assert bank.counted() == counted + 1


def test_a_request_id_of_the_kind_the_bank_makes_for_a_standing_order_is_refused(bank):
    """A standing order's due date is paid under the request id so-<order>-<date>: an app's
    request with such an id would have that payment's id, so it is not the app's to take."""
    request_id = "so-order-0001-20270310"
    body = {"v": 1, "fromAccount": PAYER, "toAccount": PAYEE, "amount": 12_300, "currency": "NOK"}
    b = bank.memory.batch()
    b.create(bank.path(request_id), body)
    b.commit()
    assert bank.handle(request_id, body, snapshot=False) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "invalid_request_id"
    assert bank.publisher.published == []


def test_past_the_limit_refusals_are_told_to_wait(bank):
    """Probing account numbers is rate limited like paying: every refusal counts, and past
    the limit the answer is rate_limited."""
    codes = []
    for _ in range(LIMITS["payments"].capacity + 1):
        request_id, body = bank.create(UNKNOWN)
        assert bank.handle(request_id, body) == "rejected"
        codes.append(bank.request(request_id)["reason"]["code"])
    assert set(codes[:-1]) == {"unknown_to_account"} and codes[-1] == "rate_limited"


def test_past_the_limit_a_valid_payment_is_refused_and_not_published(bank):
    for _ in range(LIMITS["payments"].capacity):
        request_id, body = bank.create()
        assert bank.handle(request_id, body) == "requested"
    request_id, body = bank.create()
    assert bank.handle(request_id, body) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "rate_limited"
    assert len(bank.publisher.published) == LIMITS["payments"].capacity
    # the next window's share of the previous one's count has waned enough by its end
    later = NOW + dt.timedelta(seconds=100)
    request_id, body = bank.create()
    assert bank.handle(request_id, body, now=later) == "requested"


# ---- the signature's use, raced ----------------------------------------------------------
class ClaimsAfterTheRead:
    """The ports, where another delivery records the signature's use between the batched
    read and the commit (for ``request``)."""

    def __init__(self, bank: Bank, used: str, request: str) -> None:
        self.bank, self.used, self.request = bank, used, request

    def __getattr__(self, name):
        return getattr(self.bank.docs, name)

    def get_many(self, paths):
        found = self.bank.docs.get_many(paths)
        b = self.bank.memory.batch()
        b.create(self.used, sca.used_record(UID, self.request))
        b.commit()
        return found


def test_a_signature_recorded_since_the_read_by_another_request_is_refused(bank):
    request_id, body = bank.create(key=KEY)
    racer = ClaimsAfterTheRead(bank, sca.used_path(body["sca"]), bank.path("req-another-one"))
    assert bank.handle(request_id, body, docs=racer) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "sca_reused"
    assert bank.publisher.published == [] and bank.counted() == 1


def test_a_signature_recorded_since_the_read_by_the_same_request_goes_on(bank):
    """Two deliveries of one request at once: the one that loses the create counts and
    publishes (the same payment id: JetStream keeps one)."""
    request_id, body = bank.create(key=KEY)
    racer = ClaimsAfterTheRead(bank, sca.used_path(body["sca"]), bank.path(request_id))
    assert bank.handle(request_id, body, docs=racer) == "requested"
    assert len(bank.publisher.published) == 1 and bank.counted() == 1


# ---- the status write ------------------------------------------------------------------
class ProjectsOnPublish(RecordingPublisher):
    """JetStream acks, and the notifier writes its state on the request document at once."""

    def __init__(self, bank: Bank, fields: dict) -> None:
        super().__init__()
        self.bank, self.fields = bank, fields

    def publish_json(self, subject, body, *, msg_id, stream=None):
        super().publish_json(subject, body, msg_id=msg_id, stream=stream)
        b = self.bank.memory.batch()
        b.update(Bank.path(body["payment"]["request_id"]), self.fields)
        b.commit()


def test_nothing_is_written_after_the_publish(bank):
    """The status was shown by the commit before the publish: a later state the notifier
    writes at once is never followed by the edge's write."""
    request_id, body = bank.create()
    bank.publisher = ProjectsOnPublish(bank, {"status": "completed", "statusRank": 9})
    assert bank.handle(request_id, body) == "requested"
    assert bank.request(request_id)["status"] == "completed"
    assert bank.docs.counts == {"BatchGetDocuments": 1, "Commit": 1}


class TouchesAfterTheRead:
    """The ports, where something writes the request document (no state) once, between a
    batched read and the commit: after the first read without the request document (the
    snapshot's path: its version is no longer the creation's), or with ``any_read`` after
    the first read at all (a delivery at the same time, on the path that reads)."""

    def __init__(self, bank: Bank, request: str, *, any_read: bool = False) -> None:
        self.bank, self.request, self.any_read, self.touched = bank, request, any_read, False

    def __getattr__(self, name):
        return getattr(self.bank.docs, name)

    def get_many(self, paths):
        found = self.bank.docs.get_many(paths)
        if not self.touched and (self.any_read or self.request not in paths):
            self.touched = True
            b = self.bank.memory.batch()
            b.update(self.request, {"note": "touched"})
            b.commit()
        return found


def test_a_document_moved_since_its_creation_is_read_and_decided_once(bank):
    request_id, body = bank.create()
    docs = TouchesAfterTheRead(bank, bank.path(request_id))
    assert bank.handle(request_id, body, docs=docs) == "requested"
    shown = bank.request(request_id)
    assert shown["status"] == "requested" and shown["note"] == "touched"
    assert len(bank.publisher.published) == 1 and bank.counted() == 1  # the failed commit counted nothing
    assert bank.docs.counts == {"BatchGetDocuments": 2, "Commit": 2}


def test_a_document_moved_between_the_read_and_the_commit_is_read_again(bank):
    request_id, body = bank.create()
    docs = TouchesAfterTheRead(bank, bank.path(request_id), any_read=True)
    assert bank.handle(request_id, body, docs=docs, snapshot=False) == "requested"
    assert bank.request(request_id)["status"] == "requested"
    assert len(bank.publisher.published) == 1 and bank.counted() == 1


# ---- publish failures, transient errors --------------------------------------------------
@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_publish_failure_is_recorded_on_the_document_and_raised(bank, snapshot):
    request_id, body = bank.create()
    bank.publisher.fail = True
    with pytest.raises(PublishError):
        bank.handle(request_id, body, snapshot=snapshot)
    shown = bank.request(request_id)
    # back from the commit's "requested": it was never published
    assert shown["status"] == "received" and shown["reason"]["code"] == "publish_pending"
    # the customer's words, not the publisher's error (subjects, ids, the exception: found
    # in review, 2026-12-06, where it read as a failure and invited paying twice)
    assert shown["reason"]["message"] == edge.PUBLISH_PENDING_MESSAGE
    assert shown["statusRank"] == 0
    assert shown["payment"]["request_id"] == request_id  # what the due-payments job publishes again
    # the job's submit (no read before: a unit of work for the status) publishes it
    bank.publisher.fail = False
    bank.docs.reset()
    payment = PaymentRequested.from_json(shown["payment"])
    edge.submit(bank.docs, bank.publisher, payment)
    assert bank.request(request_id)["status"] == "requested"
    assert [p.msg_id for p in bank.publisher.published] == [PaymentEvent(payment, "requested").msg_id]
    assert bank.docs.counts == {"BeginTransaction": 1, "BatchGetDocuments": 1, "Commit": 1}


class PublishedButFailed(ProjectsOnPublish):
    """JetStream stored the message (the notifier shows its state) but its ack was lost."""

    def publish_json(self, subject, body, *, msg_id, stream=None):
        super().publish_json(subject, body, msg_id=msg_id, stream=stream)
        raise PublishError("no ack in time")


def test_a_publish_failure_after_the_notifier_showed_the_payment_leaves_the_document(bank):
    request_id, body = bank.create()
    bank.publisher = PublishedButFailed(bank, {"status": "completed", "statusRank": 9})
    with pytest.raises(PublishError):
        bank.handle(request_id, body)
    shown = bank.request(request_id)
    assert shown["status"] == "completed" and "reason" not in shown


class Unavailable:
    """The ports, where the database does not answer the batched read in time."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank

    def __getattr__(self, name):
        return getattr(self.bank.docs, name)

    def get_many(self, paths):
        raise api_errors.DeadlineExceeded("slow")


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_database_that_does_not_answer_is_busy_and_nothing_is_published(bank, snapshot):
    request_id, body = bank.create()
    assert bank.handle(request_id, body, docs=Unavailable(bank), snapshot=snapshot) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "busy"
    assert bank.publisher.published == [] and bank.counted() == 0


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_busy_is_never_written_over_a_state_a_first_run_showed(bank, snapshot):
    """A redelivered trigger that finds the database slow: the first run showed
    "requested" (and published), so no refusal may replace it."""
    request_id, body = bank.create()
    assert bank.handle(request_id, body) == "requested"
    assert bank.handle(request_id, body, docs=Unavailable(bank), snapshot=snapshot) == "requested"
    assert bank.request(request_id)["status"] == "requested"


class LostCommitAnswer:
    """The ports, where the commit is applied but its answer never arrives."""

    def __init__(self, bank: Bank) -> None:
        self.bank, self.lost = bank, False

    def __getattr__(self, name):
        return getattr(self.bank.docs, name)

    def batch(self):
        real, outer = self.bank.docs.batch(), self

        class Batch:
            def __getattr__(self, name):
                return getattr(real, name)

            def commit(self):
                written = real.commit()
                if not outer.lost:
                    outer.lost = True
                    raise api_errors.DeadlineExceeded("the answer was lost")
                return written

        return Batch()


def test_a_commit_whose_answer_was_lost_is_published_not_refused(bank):
    """The commit showed "requested" and counted, but the run saw a timeout: the busy
    refusal on the creation's version fails, the document is read, and the payment is
    published (not left "requested" and never sent)."""
    request_id, body = bank.create()
    assert bank.handle(request_id, body, docs=LostCommitAnswer(bank)) == "requested"
    assert bank.request(request_id)["status"] == "requested"
    assert len(bank.publisher.published) == 1 and bank.counted() == 1


def test_a_commit_whose_answer_was_lost_is_published_on_the_read_path_too(bank):
    """Without the creation's version (the edge read the document): the busy refusal finds
    the document showing a state and writes nothing, and the request is then answered from
    what it shows: published, where it was answered rejected and left for the due-payments
    job's stuck check ten minutes later."""
    request_id, body = bank.create()
    assert bank.handle(request_id, body, docs=LostCommitAnswer(bank), snapshot=False) == "requested"
    assert bank.request(request_id)["status"] == "requested"
    assert len(bank.publisher.published) == 1 and bank.counted() == 1


@pytest.mark.parametrize("to", [UNKNOWN, NEW_PAYEE], ids=["on-the-accounts", "for-sca"])
def test_a_redelivery_of_a_request_refused_after_its_read_is_not_counted_again(bank, to):
    request_id, body = bank.create(to)
    assert bank.handle(request_id, body) == "rejected"
    assert bank.handle(request_id, body) == "rejected"  # the same trigger, delivered again
    assert bank.counted() == 1


def test_a_payment_due_the_day_it_was_made_is_not_refused_for_a_trigger_after_midnight(bank):
    """Made at 23:59:59 in Oslo for that day, its trigger run two seconds later: "today"
    is the day it was made (the creation's time), not the trigger's."""
    made = dt.datetime(2027, 3, 10, 22, 59, 59, tzinfo=dt.UTC)  # 23:59:59 on the 10th in Oslo
    request_id, body = bank.create(dueDate="2027-03-10")
    doc = bank.memory.get(bank.path(request_id))
    bank.memory.store.docs[bank.path(request_id)] = (doc.data, made)
    bank.created[request_id] = made
    assert bank.handle(request_id, body, now=made + dt.timedelta(seconds=2)) == "requested"
    assert len(bank.publisher.published) == 1


class CommitHook:
    """The ports, with ``hook`` called with each commit's writes before it lands (it may
    raise, as a store that does not answer, or write something else first)."""

    def __init__(self, bank: Bank, hook) -> None:
        self.bank, self.hook = bank, hook

    def __getattr__(self, name):
        return getattr(self.bank.memory, name)

    def batch(self):
        outer = self

        class Batch(MemoryBatch):
            def commit(self):
                outer.hook(self.writes)
                return super().commit()

        return Batch(self.bank.memory.store)


def failing_commits(bank: Bank, match, times: int) -> CommitHook:
    """The next ``times`` commits whose writes ``match`` fail as a store that does not
    answer for a moment."""
    left = [times]

    def hook(writes) -> None:
        if left[0] and match(writes):
            left[0] -= 1
            raise api_errors.ServiceUnavailable("unavailable")

    return CommitHook(bank, hook)


def the_refusal(writes) -> bool:
    return any(data.get("status") == "rejected" for _op, _path, data, _opts in writes)


@pytest.mark.parametrize("to", [UNKNOWN, PAYER], ids=["refused-on-the-accounts", "invalid"])
def test_a_refusal_the_store_was_too_busy_to_take_is_written_again_and_counted_once(bank, to):
    """A refusal and its count are one commit: when the store does not answer it, it is
    tried again (a trigger is not run again: a refusal not written leaves no answer)."""
    request_id, body = bank.create(to)
    assert bank.handle(request_id, body, docs=failing_commits(bank, the_refusal, 2)) == "rejected"
    assert bank.request(request_id)["reason"]["code"] in ("unknown_to_account", "same_account")
    assert bank.counted() == 1 and bank.publisher.published == []


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_refusal_by_a_second_delivery_never_replaces_what_the_first_one_showed(bank, snapshot):
    """Two deliveries of one trigger decide apart (here: the second refuses, as one run
    after midnight would refuse a payment due the day before): the first showed
    "requested" and published, so the second's refusal, decided on the version before
    that, writes and counts nothing, and it answers what the document shows. Before, its
    refusal fell back to a write over whatever the document showed: a payment on its way
    shown rejected for good."""
    request_id, body = bank.create()
    stale = bank.memory.get(bank.path(request_id))
    assert bank.handle(request_id, body) == "requested"
    counted = bank.counted()
    refused = {**body, "amount": -5}  # (the snapshot the second delivery decided on)
    if snapshot:
        assert bank.handle(request_id, refused) == "requested"
    else:
        got = edge._refuse_invalid(
            bank.docs,
            bank.path(request_id),
            refused,
            PaymentRejected("invalid_amount", "amount must be positive"),
            uid=UID,
            request_id=request_id,
            now=NOW,
            known=edge.Seen(stale),
        )
        assert got == "requested"
    shown = bank.request(request_id)
    assert shown["status"] == "requested" and "reason" not in shown
    assert bank.counted() == counted and len(bank.publisher.published) == 1


def test_a_refusal_by_the_rate_limit_is_written_again_until_it_lands(bank, monkeypatch):
    """The commit that counted it showed the request "requested" (with the payment the
    due-payments job would publish): the rate limit's refusal is written again when the
    store does not answer, so the request ends rejected and is never published."""
    monkeypatch.setattr(edge, "REFUSAL_WAITS", (0, 0, 0))
    for _ in range(LIMITS["payments"].capacity):
        bank.handle(*bank.create())
    request_id, body = bank.create()
    assert bank.handle(request_id, body, docs=failing_commits(bank, the_refusal, 3)) == "rejected"
    assert bank.request(request_id)["status"] == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "rate_limited"
    assert len(bank.publisher.published) == LIMITS["payments"].capacity
    request_id, body = bank.create()
    with pytest.raises(api_errors.ServiceUnavailable):  # past the waits: raised (and logged), not swallowed
        bank.handle(request_id, body, docs=failing_commits(bank, the_refusal, 4))


def interleaved(bank: Bank, match, before) -> CommitHook:
    """``before`` runs once just before the first commit whose writes ``match`` (another
    delivery of the trigger, or its other run's write, in between)."""
    pending = [before]

    def hook(writes) -> None:
        if pending[0] is not None and match(writes):
            run, pending[0] = pending[0], None
            run()

    return CommitHook(bank, hook)


def the_note(writes) -> bool:
    return any(request_status.REPUBLISHED in data for _op, _path, data, _opts in writes)


def over_the_limit(bank: Bank) -> None:
    for _ in range(LIMITS["payments"].capacity):
        bank.handle(*bank.create())
    bank.publisher.published.clear()


def test_a_request_over_the_rate_limit_published_again_by_another_delivery_stands(bank):
    """The commit that counted it showed it "requested"; before its refusal, a second
    delivery of the trigger read it so, noted it and published it again. The refusal then
    finds the document moved and gives way: the request shows "requested", as the payment
    on its way (found in review, 2026-12-06: it was shown rejected while the payment went
    through)."""
    over_the_limit(bank)
    request_id, body = bank.create()

    def second_delivery() -> None:
        assert bank.handle(request_id, body, snapshot=False) == "requested"

    first = interleaved(bank, the_refusal, second_delivery)
    assert bank.handle(request_id, body, docs=first) == "requested"
    shown = bank.request(request_id)
    assert shown["status"] == "requested" and "reason" not in shown
    assert shown[request_status.REPUBLISHED]["count"] == 1
    (published,) = bank.publisher.published  # the second delivery's; the first published nothing
    assert published.body["payment"]["request_id"] == request_id


def test_a_request_refused_by_the_rate_limit_is_not_published_by_a_delivery_that_read_it_requested(bank):
    """The other order: the second delivery read it "requested", the first's refusal landed
    before the note. The note finds it moved; the document read again shows it rejected,
    and nothing is published."""
    over_the_limit(bank)
    request_id, body = bank.create()
    # the first run, step by step: its commit counts it and shows it "requested" ...
    request = edge.parse_request(body, request_id=request_id, today=NOW.date())
    reads = edge._read(bank.docs, bank.path(request_id), UID, request, BANK_REGS)
    call = edge._Call(UID, request_id, body, BANK_REGS, edge.DEFAULT_SCA_THRESHOLD, NOW)
    payment = edge._payment(UID, request_id, request, "internal", body, NOW)
    show = edge._Show(edge.Seen(reads["request"], created=True), "requested", payment)
    seen, over = edge._count_and_claim(bank.docs, UID, request_id, request, reads, show, own_payee=False, call=call)
    assert over is not None and bank.request(request_id)["status"] == "requested"

    # ... a second delivery reads it "requested", and the first's refusal lands before its note
    def the_first_runs_refusal() -> None:
        assert edge._refuse(bank.docs, UID, request_id, over, seen, now=NOW) == "rejected"

    second = interleaved(bank, the_note, the_first_runs_refusal)
    assert bank.handle(request_id, body, snapshot=False, docs=second) == "rejected"
    shown = bank.request(request_id)
    assert shown["status"] == "rejected" and shown["reason"]["code"] == "rate_limited"
    assert request_status.REPUBLISHED not in shown and bank.publisher.published == []


def test_a_trigger_delivered_late_never_pays_and_answers_what_the_request_shows(bank):
    """The platform delivers a failed trigger again, for up to a day: a request the first
    runs never answered is refused busy (the app asks again), not paid long after it was
    asked; one they answered is answered from what it shows."""
    late = NOW + edge.LATE + dt.timedelta(seconds=1)
    request_id, body = bank.create()
    assert bank.handle(request_id, body, now=late) == "rejected"
    shown = bank.request(request_id)
    assert shown["reason"]["code"] == "busy" and bank.publisher.published == [] and bank.counted(late) == 0
    answered, answered_body = bank.create()
    assert bank.handle(answered, answered_body) == "requested"
    assert bank.handle(answered, answered_body, now=late) == "requested"
    assert len(bank.publisher.published) == 1  # not published again
    on_time = NOW + edge.LATE - dt.timedelta(seconds=1)
    fresh, fresh_body = bank.create()
    assert bank.handle(fresh, fresh_body, now=on_time) == "requested"


def test_a_bug_is_not_answered_as_busy(bank):
    class Broken(Unavailable):
        def get_many(self, paths):
            raise KeyError("a bug")

    request_id, body = bank.create()
    with pytest.raises(KeyError):
        bank.handle(request_id, body, docs=Broken(bank))


# ---- the pieces other use cases share ----------------------------------------------------
def test_check_accounts_reads_the_two_accounts(bank):
    assert edge.check_accounts(bank.docs, UID, PAYER, OWN, BANK_REGS) == ("internal", True)
    assert edge.check_accounts(bank.docs, UID, PAYER, PAYEE, BANK_REGS) == ("internal", False)
    assert edge.check_accounts(bank.docs, UID, PAYER, EXTERNAL, BANK_REGS) == ("external", False)
    with pytest.raises(Exception, match="no such account of yours"):
        edge.check_accounts(bank.docs, UID, PAYEE, PAYER, BANK_REGS)
    with pytest.raises(Exception, match="no account with this number"):
        edge.check_accounts(bank.docs, UID, PAYER, UNKNOWN, BANK_REGS)


def test_a_request_document_only_moves_forward(bank):
    request_id, _ = bank.create()
    path = bank.path(request_id)
    assert request_status.advance(bank.docs, path, "requested")
    assert not request_status.advance(bank.docs, path, "received")  # an earlier state
    assert not request_status.advance(bank.docs, f"users/{UID}/paymentRequests/none", "requested")
    known = bank.memory.get(path)
    assert request_status.advance_from(bank.docs, known, "completed")
    assert not request_status.advance_from(bank.docs, known, "completed")  # shown already
    assert not request_status.advance_from(bank.docs, None, "completed")  # no document read
    assert bank.request(request_id)["status"] == "completed"
    stale = Doc(path, {"status": "requested"}, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert not request_status.advance_from(bank.docs, stale, "failed")  # the unit of work saw "completed"


# ---- ids Firestore reserves (found in review, 2026-12-05) ------------------------------------
RESERVED = "__abcdef__"  # took every id pattern ([A-Za-z0-9_-]{8,64}) and the rules' keyId check


def test_a_payment_request_signed_with_a_key_id_firestore_reserves_is_refused_and_counted():
    """The key's document path made Firestore answer INVALID_ARGUMENT: the trigger raised,
    the request was never answered and never counted against the rate limit."""
    bank = Bank()
    request_id, body = bank.create(PAYEE, 900_000)
    body = {**body, "sca": {"keyId": RESERVED, "signature": "A" * 86 + "=="}}
    assert bank.handle(request_id, body) == "rejected"
    assert bank.request(request_id)["reason"]["code"] == "invalid_sca"
    assert bank.counted() == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda d: sca.revoke_key(d, None, UID, key_id=RESERVED),
        lambda d: standing_orders.cancel(d, UID, "__order1__"),
        lambda d: standing_orders.cancel_scheduled(d, UID, RESERVED),
        lambda d: insights.recategorise(d, UID, PAYER, "__x__", "groceries"),
    ],
    ids=["sca_revoke_key", "standing_orders_cancel", "payments_cancel_scheduled", "transactions_recategorise"],
)
def test_a_callable_refuses_an_id_firestore_reserves_with_its_reason(call):
    bank = Bank()
    with pytest.raises(DomainError):  # a refusal with its reason code, never INTERNAL
        call(bank.memory)


class _SlowReadThenFailingRefusal(CommitHook):
    """The batched read times out; the next ``times`` refusals the store does not take."""

    def __init__(self, bank: Bank, times: int) -> None:
        def hook(writes) -> None:  # the refusal's one write (on the creation's version)
            if self.times and the_refusal(writes):
                self.times -= 1
                raise api_errors.ServiceUnavailable("unavailable")

        super().__init__(bank, hook)
        self.times = times

    def get_many(self, paths):
        raise api_errors.DeadlineExceeded("slow")

    def transact(self, fn, *, operation):  # the read path's refusal is a unit of work
        if self.times:
            self.times -= 1
            raise api_errors.ServiceUnavailable("unavailable")
        return self.bank.memory.transact(fn, operation=operation)


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_busy_refusal_the_store_did_not_take_at_once_is_written_again(monkeypatch, snapshot):
    """Found in review (2026-12-05): the busy refusal was written once, where every other
    refusal is tried again; a store still unavailable for it left the request with no
    status, which nothing looks at again (the trigger is not run again)."""
    monkeypatch.setattr(edge, "REFUSAL_WAITS", (0, 0, 0))
    bank = Bank()
    request_id, body = bank.create()
    docs = _SlowReadThenFailingRefusal(bank, 1)
    assert bank.handle(request_id, body, docs=docs, snapshot=snapshot) == "rejected"
    shown = bank.request(request_id)
    assert shown["status"] == "rejected" and shown["reason"]["code"] == "busy"
