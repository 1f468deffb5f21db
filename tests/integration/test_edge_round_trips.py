"""The payment trigger's Firestore work, counted on the real emulator (#14: at most three
round trips for a valid request; it takes two: one batched read, one commit of the
rate-limit count, the signature's use and the status, on the condition that the request
document is as the trigger's creation snapshot says; then JetStream's publish).

The documents live in a project of their own on the same emulator: the Functions emulator
fires the real trigger only for the stack's project, so here the use case alone runs
(``edge.handle_payment_request``, with a publisher that records) and every call it makes
is counted by the client's interceptor (fjordbank.adapters.firestore_calls).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjordbank.adapters.documents import FirestoreDocuments
from fjordbank.adapters.firestore import sync_client
from fjordbank.adapters.firestore_calls import tally
from fjordbank.domain import sca
from fjordbank.service_layer import edge
from fjordbank.service_layer import sca as scas

pytestmark = pytest.mark.stack

BANK_REGS = ("9710",)
PAYER_ACCOUNT, PAYEE_ACCOUNT, EXTERNAL_ACCOUNT = "97100000028", "97100000036", "15030000002"


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict, str]] = []

    def publish_json(self, subject: str, body: dict, *, msg_id: str, stream: str | None = None):
        self.published.append((subject, body, msg_id))


@pytest.fixture
def side(stack):
    """A client of a project no trigger listens to, with one customer, two accounts, a
    device key and one payee paid before."""
    db = sync_client(f"fjb-edge-{uuid.uuid4().hex[:8]}")
    uid = "edge-" + uuid.uuid4().hex[:8]
    key = ec.generate_private_key(ec.SECP256R1())
    for number, owner in ((PAYER_ACCOUNT, uid), (PAYEE_ACCOUNT, "someone-else")):
        db.document(f"accounts/{number}").set({"ownerUid": owner, "status": "open", "currency": "NOK"})
    db.document(f"screeningCustomers/{uid}").set({"payees": [PAYEE_ACCOUNT, EXTERNAL_ACCOUNT]})
    db.document(f"users/{uid}/scaKeys/phone-key-1").set({"keyId": "phone-key-1", "publicKey": sca.public_key_b64(key)})
    return db, uid, key


def create(db, uid: str, to: str, amount: int, *, key=None) -> tuple[str, dict]:
    request_id = "req-" + uuid.uuid4().hex[:12]
    body = {"v": 1, "fromAccount": PAYER_ACCOUNT, "toAccount": to, "amount": amount, "currency": "NOK"}
    if key is not None:
        body["sca"] = {
            "keyId": "phone-key-1",
            "signature": sca.sign(key, sca.challenge(request_id, amount, "NOK", to)),
        }
    CREATED[request_id] = db.document(f"users/{uid}/paymentRequests/{request_id}").create(body).update_time
    return request_id, body


CREATED: dict[str, dt.datetime] = {}  # request id -> its creation's update time (the trigger's snapshot)


def handle(db, uid: str, request_id: str, body: dict, publisher=None, *, snapshot: bool = True) -> tuple[str, dict]:
    """The trigger's call: with the creation snapshot's update time (``snapshot`` False:
    without, so the edge reads the document)."""
    docs = FirestoreDocuments(db)
    with tally() as counts:
        status = edge.handle_payment_request(
            docs,
            publisher or Recorder(),
            uid=uid,
            request_id=request_id,
            body=body,
            bank_regs=BANK_REGS,
            created=CREATED.get(request_id) if snapshot else None,
        )
    return status, dict(counts)


@pytest.mark.parametrize(
    ("to", "signed"),
    [(PAYEE_ACCOUNT, False), (EXTERNAL_ACCOUNT, False), (PAYEE_ACCOUNT, True)],
    ids=["internal", "external", "signed"],
)
def test_a_valid_payment_request_takes_two_round_trips(side, to, signed):
    db, uid, key = side
    request_id, body = create(db, uid, to, 12_300, key=key if signed else None)
    publisher = Recorder()
    status, counts = handle(db, uid, request_id, body, publisher)
    assert status == "requested"
    assert len(publisher.published) == 1
    assert counts["calls"] == 2, counts
    assert counts["calls:BatchGetDocuments"] == 1 and counts["calls:Commit"] == 1, counts
    doc = db.document(f"users/{uid}/paymentRequests/{request_id}").get().to_dict()
    assert doc["status"] == "requested" and publisher.published[0][2] == f"{doc['paymentId']}:requested"
    if signed:  # the signature's use is recorded in the same commit as the rate-limit count
        used = db.document(scas.used_path(body["sca"])).get().to_dict()
        assert used["request"] == f"users/{uid}/paymentRequests/{request_id}" and used["uid"] == uid


def test_a_signature_is_not_accepted_for_a_second_request(side):
    db, uid, key = side
    first, body = create(db, uid, PAYEE_ACCOUNT, 12_300, key=key)
    assert handle(db, uid, first, body)[0] == "requested"
    second = "req-" + uuid.uuid4().hex[:12]
    db.document(f"users/{uid}/paymentRequests/{second}").create(body)  # the same signature again
    assert handle(db, uid, second, body)[0] == "rejected"
    doc = db.document(f"users/{uid}/paymentRequests/{second}").get().to_dict()
    assert doc["reason"]["code"] in ("sca_invalid", "sca_reused")  # signed for the first request id


def test_a_state_the_notifier_shows_at_once_is_never_overwritten(side):
    """The status is written before the publish: the notifier's later state stays, and
    the edge writes nothing after the publish."""
    db, uid, _key = side
    request_id, body = create(db, uid, PAYEE_ACCOUNT, 12_300)
    ref = db.document(f"users/{uid}/paymentRequests/{request_id}")

    class ProjectsFirst(Recorder):
        def publish_json(self, subject, body, *, msg_id, stream=None):
            super().publish_json(subject, body, msg_id=msg_id, stream=stream)
            ref.update({"status": "completed", "paymentId": msg_id.split(":")[0], "updatedAt": dt.datetime.now(dt.UTC)})

    status, counts = handle(db, uid, request_id, body, ProjectsFirst())
    assert status == "requested"
    assert ref.get().to_dict()["status"] == "completed"
    # the edge's read and commit, and the "notifier's" update in the publish: nothing after it
    assert counts["calls"] == 3 and counts["calls:Commit"] == 2, counts


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "read"])
def test_a_redelivered_trigger_counts_nothing_and_publishes_the_same_message(side, snapshot):
    """Its commit on the creation's version fails on the real emulator as a whole (the
    count too); the request is read, found "requested", noted as published again (one
    write on the version read: a refusal by the rate limit lands only on that version
    too) and published again with the same message id (JetStream keeps one)."""
    db, uid, _key = side
    request_id, body = create(db, uid, PAYEE_ACCOUNT, 12_300)
    first = Recorder()
    assert handle(db, uid, request_id, body, first)[0] == "requested"
    limits = db.document(f"rateLimits/{uid}:payments").get().to_dict()["w"]
    again = Recorder()
    status, counts = handle(db, uid, request_id, body, again, snapshot=snapshot)
    assert status == "requested"
    assert [m[2] for m in again.published] == [m[2] for m in first.published]
    assert db.document(f"rateLimits/{uid}:payments").get().to_dict()["w"] == limits
    assert counts.get("calls:Commit", 0) == (2 if snapshot else 1), counts  # the failed commit, the note
    noted = db.document(f"users/{uid}/paymentRequests/{request_id}").get().to_dict()["republished"]
    assert noted["count"] == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": -5}, "invalid_amount"),
        ({"toAccount": "97100000044"}, "unknown_to_account"),
        ({"fromAccount": PAYEE_ACCOUNT, "toAccount": EXTERNAL_ACCOUNT}, "unknown_account"),
    ],
)
def test_refusals_keep_their_reasons(side, change, code):
    db, uid, _key = side
    request_id, body = create(db, uid, PAYEE_ACCOUNT, 12_300)
    body = {**body, **change}
    status, _counts = handle(db, uid, request_id, body)
    assert status == "rejected"
    assert db.document(f"users/{uid}/paymentRequests/{request_id}").get().to_dict()["reason"]["code"] == code


def test_refusals_count_against_the_rate_limit(side):
    """Probing account numbers (unknown_to_account) is rate limited like paying: every
    refusal counts, and past the limit the answer is rate_limited."""
    from fjordbank.domain.ratelimit import LIMITS

    db, uid, _key = side
    codes = []
    for _ in range(LIMITS["payments"].capacity + 1):
        request_id, body = create(db, uid, "97100000044", 12_300)  # no such account
        assert handle(db, uid, request_id, body)[0] == "rejected"
        codes.append(db.document(f"users/{uid}/paymentRequests/{request_id}").get().to_dict()["reason"]["code"])
    assert set(codes[:-1]) == {"unknown_to_account"} and codes[-1] == "rate_limited"
