"""Onboarding through the app's callable, on the real emulators and NATS cluster.

A signed-in user applies with name, identity number, birth date, address, phone and
e-mail. Valid applications are approved (customer, first account, welcome push), sent to
an operator's review (possible sanctions match) or rejected (sanctions hit); malformed
ones are refused with a reason and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import subprocess
import sys
import time

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.documents import FirestoreDocuments
from fjordbank.adapters.firestore import sync_client
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.config import load_settings
from fjordbank.domain.norway import is_valid_account_number
from fjordbank.errors import PublishError
from fjordbank.service_layer import onboarding, outbox
from tests.support.bank import (
    application,
    callables_for,
    make_national_id,
    refused,
    register_device,
    wait_push,
)
from tests.support.natsclients import connect

pytestmark = pytest.mark.stack
DRAZHENKO_DOB = dt.date(1961, 3, 14)


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


def apply(callables, user, data):
    return callables.call("onboarding_submit", data, user["id_token"])


def nothing_written(admin_db, uid: str, national_id: str) -> None:
    assert not admin_db.document(f"customers/{uid}").get().exists
    assert not admin_db.document(f"kyc/{uid}").get().exists
    assert not admin_db.document(f"nationalIds/{national_id}").get().exists


def stream_messages(stack, subject: str) -> list[dict]:
    """Every message on ``subject`` in its stream (read by the admin identity)."""

    async def read():
        nc = await connect(stack, "admin")
        try:
            js = nc.jetstream()
            sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy="all")
            out = []
            try:
                while True:
                    msg = await sub.next_msg(timeout=5)
                    if msg.data.startswith(b"{"):  # the permission tests publish empty messages
                        out.append(json.loads(msg.data))
                    if msg.metadata.num_pending == 0:
                        break
            except TimeoutError:
                pass  # no message on the subject at all
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def test_a_new_user_is_approved_with_an_account_and_a_welcome_push(stack, auth, as_user, callables, audit):
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = register_device(app, user["uid"])
    data = application()
    status, body = apply(callables, user, data)
    assert status == 200, body
    result = body["result"]
    assert result["status"] == "approved" and result["reason"] is None
    account_id = result["accountId"]
    assert is_valid_account_number(account_id) and account_id.startswith("9710")

    customer = app.get(f"customers/{user['uid']}")[1]
    assert customer["status"] == "approved" and customer["firstAccountId"] == account_id
    assert customer["nationalIdMasked"] == data["nationalId"][:6] + "*****"
    assert data["nationalId"] not in json.dumps(customer)
    account = app.get(f"accounts/{account_id}")[1]
    assert account["ownerUid"] == user["uid"] and account["balance"] == 0 and account["type"] == "spending"
    # the full application is backend-only
    assert app.get(f"kyc/{user['uid']}")[0] == 403

    push = wait_push(stack, token, "Welcome to Fjordbank")
    assert push["data"]["status"] == "approved"
    events = [e for e in stream_messages(stack, "customers.approved") if e["uid"] == user["uid"]]
    assert events == [{"v": 1, "uid": user["uid"], "status": "approved", "reason": None, "account_id": account_id}]
    opened = [
        e
        for e in stream_messages(stack, "customers.account_opened")
        if e["account_id"] == account_id and e["uid"] == user["uid"]
    ]
    assert len(opened) == 1
    audit()


@pytest.mark.parametrize(
    ("kind", "rule_2032"),
    [("dnr", False), ("fnr", True)],
    ids=["d-number", "2032-rule-number"],
)
def test_d_numbers_and_2032_rule_numbers_are_accepted(auth, callables, kind, rule_2032):
    user = auth.sign_up()
    born = dt.date(1985, 10, 30)
    data = application(born=born, nationalId=make_national_id(born, kind=kind, rule_2032=rule_2032))
    status, body = apply(callables, user, data)
    assert status == 200, body
    assert body["result"]["status"] == "approved"


def _day_after(iso: str) -> str:
    return (dt.date.fromisoformat(iso) + dt.timedelta(days=1)).isoformat()


def _with_bad_check_digit(number: str) -> str:
    return number[:10] + str((int(number[10]) + 1) % 10)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: {**d, "nationalId": _with_bad_check_digit(d["nationalId"])}, "invalid_national_id"),
        (lambda d: {**d, "nationalId": "1234567890"}, "invalid_national_id"),
        (lambda d: {**d, "dateOfBirth": _day_after(d["dateOfBirth"])}, "birth_date_mismatch"),
        (
            lambda d: {
                **d,
                "dateOfBirth": "2010-06-06",
                "nationalId": make_national_id(dt.date(2010, 6, 6)),
            },
            "under_18",
        ),
        (lambda d: {**d, "phone": "12345"}, "invalid_phone"),
        (lambda d: {**d, "email": "kari at example"}, "invalid_email"),
        (lambda d: {**d, "name": "Kari"}, "invalid_name"),
        (
            lambda d: {**d, "address": {"street": "Storgata 1", "postalCode": "155", "city": "Oslo"}},
            "invalid_postal_code",
        ),
        (lambda d: {**d, "status": "approved"}, "invalid_request"),  # no mass assignment
        (lambda d: {k: v for k, v in d.items() if k != "email"}, "invalid_request"),
        (lambda d: {**d, "name": "K" * 5000 + " Nordmann"}, "invalid_name"),
    ],
    ids=[
        "check-digit",
        "ten-digits",
        "birth-date-mismatch",
        "under-18",
        "phone",
        "email",
        "one-name",
        "postal-code",
        "unknown-field",
        "missing-field",
        "oversized",
    ],
)
def test_malformed_applications_are_refused_and_leave_nothing(auth, admin_db, callables, change, reason):
    user = auth.sign_up()
    good = application()
    data = change(good)
    expected = "FAILED_PRECONDITION" if reason == "under_18" else "INVALID_ARGUMENT"
    assert refused(apply(callables, user, data)) == (expected, reason)
    nothing_written(admin_db, user["uid"], good["nationalId"])
    # the same user can still apply correctly afterwards
    assert apply(callables, user, good)[1]["result"]["status"] == "approved"


def test_unauthenticated_applications_are_refused(callables):
    status, body = callables.call("onboarding_submit", application(), None)
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"


def test_onboarding_twice_is_refused_and_an_identity_belongs_to_one_customer(auth, admin_db, callables):
    """The same application three times at once (an app retrying a lost answer) is decided
    once: each is answered with that decision (or busy, and then with it), one account is
    opened; another application by the same user is already_onboarded, and the identity
    number belongs to that customer alone."""
    user = auth.sign_up()
    data = application()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: apply(callables, user, data), range(3)))
    answers = []
    for result in results:
        if result[0] != 200 and refused(result) == ("RESOURCE_EXHAUSTED", "busy"):
            result = apply(callables, user, data)  # its transaction lost every attempt to the winner's
        assert result[0] == 200, results
        answers.append(result[1]["result"])
    assert answers[0]["status"] == "approved" and all(a == answers[0] for a in answers), answers
    owned = list(admin_db.collection("accounts").where(filter=FieldFilter("ownerUid", "==", user["uid"])).stream())
    assert [a.id for a in owned] == [answers[0]["accountId"]]  # nothing made twice by the race
    again = application()  # another identity number: another application
    assert refused(apply(callables, user, again)) == ("ALREADY_EXISTS", "already_onboarded")

    other = auth.sign_up()
    assert refused(apply(callables, other, data)) == ("ALREADY_EXISTS", "identity_in_use")
    assert not admin_db.document(f"customers/{other['uid']}").get().exists


def test_a_sanctions_hit_is_rejected_and_only_the_bank_keeps_its_reason(stack, auth, as_user, callables, admin_db):
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = register_device(app, user["uid"])
    data = application(
        name="Borislav Kvetkovich Drazhenko", born=DRAZHENKO_DOB, nationalId=make_national_id(DRAZHENKO_DOB)
    )
    status, body = apply(callables, user, data)
    assert status == 200 and body["result"] == {"status": "rejected", "reason": "not_approved", "accountId": None}
    customer = app.get(f"customers/{user['uid']}")[1]
    assert (customer["status"], customer["reason"]) == ("rejected", "not_approved")
    kyc = admin_db.document(f"kyc/{user['uid']}").get().to_dict()
    assert kyc["reason"] == "sanctions_match" and kyc["screening"][0]["entity_id"] == "990101"
    assert not list(admin_db.collection("accounts").where(filter=FieldFilter("ownerUid", "==", user["uid"])).stream())
    wait_push(stack, token, "Your application")


def test_a_near_miss_goes_to_review_and_an_operator_decides(stack, auth, as_user, callables, audit):
    operator = auth.make_operator()
    near = auth.sign_up()
    app = as_user(near["id_token"])
    token = register_device(app, near["uid"])
    typo = application(
        name="Borislav Kvetkovich Drazhenkko", born=DRAZHENKO_DOB, nationalId=make_national_id(DRAZHENKO_DOB)
    )
    assert apply(callables, near, typo)[1]["result"] == {"status": "review", "reason": None, "accountId": None}
    wait_push(stack, token, "We are checking your application")
    # a customer cannot decide, not even their own review; only operators
    decide = {"uid": near["uid"], "decision": "approve", "reason": "born 1984, not the listed person's year"}
    assert refused(callables.call("onboarding_decide", decide, near["id_token"]))[0] == "PERMISSION_DENIED"
    status, body = callables.call("onboarding_decide", decide, operator["id_token"])
    assert status == 200, body
    account_id = body["result"]["accountId"]
    assert is_valid_account_number(account_id)
    assert app.get(f"customers/{near['uid']}")[1]["status"] == "approved"
    assert app.get(f"accounts/{account_id}")[1]["ownerUid"] == near["uid"]
    wait_push(stack, token, "Welcome to Fjordbank")
    # decided once
    assert refused(callables.call("onboarding_decide", decide, operator["id_token"])) == (
        "FAILED_PRECONDITION",
        "not_in_review",
    )

    other = auth.sign_up()
    other_typo = application(name="Kazimir Volkhantsev", born=dt.date(1969, 1, 30))
    other_typo["nationalId"] = make_national_id(dt.date(1969, 1, 30))
    assert apply(callables, other, other_typo)[1]["result"]["status"] == "review"
    reject = {"uid": other["uid"], "decision": "reject"}
    assert refused(callables.call("onboarding_decide", reject, operator["id_token"])) == (
        "INVALID_ARGUMENT",
        "invalid_reason",
    )
    reject["reason"] = "confirmed match with the EU list"
    assert callables.call("onboarding_decide", reject, operator["id_token"])[1]["result"]["status"] == "rejected"
    audit()


def test_an_event_not_published_waits_in_the_outbox_and_the_relay_sends_it(stack, admin_db):
    """The decision and its event are committed together; NATS away only delays the event."""

    class Down:
        def publish_json(self, *_a, **_k):
            raise PublishError("nats is away")

    uid = "outbox-" + make_national_id(dt.date(1990, 6, 6)) + "-" + str(time.time_ns())
    db = sync_client(stack.s.project_id)
    sanctions = onboarding.load_sanctions(
        str(stack.s.repo / "emulators" / "sanctions" / "eu-fsf-sample.xml"), docs=FirestoreDocuments(db)
    )
    result = onboarding.submit(FirestoreDocuments(db), Down(), uid, application(), sanctions=sanctions, bank_reg="9710")
    assert result["status"] == "approved"
    staged = admin_db.document(f"outbox/customer:{uid}:approved").get()
    assert staged.exists and staged.get("subject") == topology.SUBJECT_CUSTOMER_APPROVED

    settings = load_settings({**stack.nats_env("edge")})
    publisher = SyncPublisher(settings.nats, name="test-relay")
    try:
        counts = outbox.relay(FirestoreDocuments(db), publisher, min_age_seconds=0)
    finally:
        publisher.close()
    assert counts["published"] >= 2  # the decision and the account opening
    assert not admin_db.document(f"outbox/customer:{uid}:approved").get().exists
    assert [e for e in stream_messages(stack, "customers.approved") if e["uid"] == uid]


def bankctl(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", *args], cwd=stack.s.repo, capture_output=True, text=True, timeout=120
    )


def test_an_operator_decides_reviews_with_bankctl(stack, auth, as_user, callables, admin_db):
    users = [auth.sign_up() for _ in range(2)]
    for user in users:
        typo = application(
            name="Borislav Kvetkovich Drazhenkko", born=DRAZHENKO_DOB, nationalId=make_national_id(DRAZHENKO_DOB)
        )
        answer = apply(callables, user, typo)
        assert answer[1].get("result", {}).get("status") == "review", answer
    listed = bankctl(stack, "reviews", "list")
    assert listed.returncode == 0 and all(u["uid"] in listed.stdout for u in users), listed
    assert "990101" in listed.stdout and "*****" in listed.stdout  # the listed entity; masked ids only

    approved = bankctl(stack, "reviews", "approve", users[0]["uid"], "--reason", "another person", "--by", "Kari Ops")
    assert approved.returncode == 0 and "approved, first account 9710" in approved.stdout, approved
    rejected = bankctl(
        stack, "reviews", "reject", users[1]["uid"], "--reason", "confirmed listed person", "--by", "Kari Ops"
    )
    assert rejected.returncode == 0 and "rejected" in rejected.stdout, rejected
    # the applicant is told only that they were not approved; the operator's words are the bank's
    assert as_user(users[1]["id_token"]).get(f"customers/{users[1]['uid']}")[1]["reason"] == "not_approved"

    again = bankctl(stack, "reviews", "approve", users[1]["uid"], "--reason", "second look", "--by", "Kari Ops")
    assert again.returncode == 1, again
    assert again.stderr.strip() == "bankctl: error: not_in_review: the application is rejected, not in review"

    # the number the rejected application holds is freed for its holder (someone else
    # applied with it): held for ever before (found in review, 2026-12-07)
    holder = auth.sign_up()
    same = application(
        name="Borislav Kvetkovich Drazhenkko", born=DRAZHENKO_DOB, nationalId=make_national_id(DRAZHENKO_DOB)
    )
    same["nationalId"] = admin_db.document(f"kyc/{users[1]['uid']}").get().to_dict()["nationalId"]
    assert apply(callables, holder, same)[1]["error"]["details"]["reason"] == "identity_in_use"
    not_rejected = bankctl(stack, "reviews", "release", users[0]["uid"], "--reason", "mistake", "--by", "Kari Ops")
    assert not_rejected.returncode == 1 and "not_rejected" in not_rejected.stderr, not_rejected
    released = bankctl(
        stack, "reviews", "release", users[1]["uid"], "--reason", "holder proved it at the branch", "--by", "Kari Ops"
    )
    assert released.returncode == 0 and "free for its holder" in released.stdout, released
    assert admin_db.document(f"kyc/{users[1]['uid']}").get().to_dict()["identityReleasedBy"] == "bankctl:Kari Ops"
    assert apply(callables, holder, same)[1].get("result", {}).get("status") == "review"
