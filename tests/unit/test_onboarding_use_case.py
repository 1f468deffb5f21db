"""fjordbank.service_layer.onboarding on the in-memory documents: an application decided
(approved with its first account, sent to review, rejected), an operator's review, with a
recording publisher and a fixed clock.

What is promised: a decision writes the customer, the application (kyc), the identity's
claim and (approved) the first account in one unit of work, with its customers.* event (and
the account's) staged there and published after the commit; a uid applies once and an
identity number belongs to one customer; only an application in review is reviewed, never
by its applicant, and a decision needs a reason.
"""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank import topology
from fjordbank.domain.norway import mask_national_id
from fjordbank.domain.onboarding import OnboardingRefused
from fjordbank.domain.sanctions import SanctionsList
from fjordbank.service_layer import onboarding
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import BANK_REG, NOW, RecordingPublisher, data, fixed_clock, paths
from tests.unit.test_onboarding import DRAZHENKO_BORN, KARI_BORN, SAMPLE, application, national_id_for

TODAY = dt.date(2026, 11, 26)
DRAZHENKO = "Borislav Kvetkovich Drazhenko"


@pytest.fixture(scope="module")
def sanctions() -> SanctionsList:
    return SanctionsList.from_xml(SAMPLE.read_bytes())


@pytest.fixture
def docs() -> MemoryDocuments:
    return MemoryDocuments(fixed_clock())


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def submit(docs, publisher, sanctions, uid: str, app: dict) -> dict:
    return onboarding.submit(
        docs, publisher, uid, app, sanctions=sanctions, bank_reg=BANK_REG, today=TODAY, clock=fixed_clock()
    )


def review(docs, publisher, uid: str, *, approve: bool, reason: str | None = "another person") -> dict:
    return onboarding.decide_review(
        docs, publisher, uid, approve=approve, operator="ops:kari", reason=reason, bank_reg=BANK_REG
    )


def refused(call) -> str:
    with pytest.raises(OnboardingRefused) as caught:
        call()
    return caught.value.code


def test_a_clear_application_is_approved_with_its_first_account_and_both_events(docs, publisher, sanctions):
    app = application()
    result = submit(docs, publisher, sanctions, "kari", app)
    assert result["status"] == "approved" and result["reason"] is None
    number = result["accountId"]
    customer = data(docs, "customers/kari")
    assert customer["status"] == "approved" and customer["firstAccountId"] == number
    assert customer["nationalIdMasked"] == mask_national_id(app["nationalId"]) != app["nationalId"]
    assert app["nationalId"] not in str(customer)
    assert customer["decidedAt"] == customer["appliedAt"]  # the commit's time
    assert data(docs, "kyc/kari")["nationalId"] == app["nationalId"]
    assert data(docs, f"nationalIds/{app['nationalId']}")["uid"] == "kari"
    account = data(docs, f"accounts/{number}")
    assert account["ownerUid"] == "kari" and account["type"] == "spending" and account["status"] == "open"
    assert publisher.subjects() == [topology.SUBJECT_CUSTOMER_APPROVED, topology.SUBJECT_ACCOUNT_OPENED]
    assert publisher.stored[0].msg_id == "customer:kari:approved"
    assert publisher.stored[0].body["account_id"] == number
    assert paths(docs, "outbox") == []


def test_while_nats_is_away_the_decision_stands_and_its_events_wait_in_the_outbox(docs, sanctions):
    result = submit(docs, RecordingPublisher(down=True), sanctions, "kari", application())
    assert data(docs, "customers/kari")["status"] == "approved"
    staged = {p: data(docs, p) for p in paths(docs, "outbox")}
    assert set(staged) == {"outbox/customer:kari:approved", f"outbox/{result['accountId']}:account_opened"}
    assert all(s["stagedAt"] == NOW for s in staged.values())


def test_a_possible_sanctions_match_goes_to_review_and_a_hit_is_rejected(docs, publisher, sanctions):
    typo = submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    assert (typo["status"], typo["accountId"]) == ("review", None)
    assert data(docs, "customers/typo")["decidedAt"] is None
    assert data(docs, "kyc/typo")["screening"]  # the matches, for the operator
    other_id = national_id_for(DRAZHENKO_BORN, first_individual=100)
    hit = submit(docs, publisher, sanctions, "hit", application(DRAZHENKO_BORN, name=DRAZHENKO, nationalId=other_id))
    assert hit["status"] == "rejected" and hit["reason"]
    assert paths(docs, "accounts") == []
    assert publisher.subjects() == [topology.SUBJECT_CUSTOMER_REVIEW, topology.SUBJECT_CUSTOMER_REJECTED]


def test_the_applicant_is_never_told_the_screenings_reason(docs, publisher, sanctions):
    """Told "sanctions_match" (or "possible_sanctions_match" in review), a listed person
    could try spellings until one screened clear: the app's documents, the answer and the
    events say only rejected (not_approved) or in review; the bank's kyc record keeps it."""
    typo = submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    other_id = national_id_for(DRAZHENKO_BORN, first_individual=100)
    hit = submit(docs, publisher, sanctions, "hit", application(DRAZHENKO_BORN, name=DRAZHENKO, nationalId=other_id))
    assert (typo["reason"], hit["reason"]) == (None, "not_approved")
    assert data(docs, "customers/typo")["reason"] is None and data(docs, "customers/hit")["reason"] == "not_approved"
    assert [p.body.get("reason") for p in publisher.stored] == [None, "not_approved"]
    assert data(docs, "kyc/typo")["reason"] == "possible_sanctions_match"
    assert data(docs, "kyc/hit")["reason"] == "sanctions_match" and data(docs, "kyc/hit")["screening"]


def test_a_uid_applies_once_and_an_identity_belongs_to_one_customer(docs, publisher, sanctions):
    app = application()
    submit(docs, publisher, sanctions, "kari", app)
    before = len(docs.store.docs)
    assert refused(lambda: submit(docs, publisher, sanctions, "kari", application(born=dt.date(1990, 1, 2)))) == (
        "already_onboarded"
    )
    assert refused(lambda: submit(docs, publisher, sanctions, "someone", app)) == "identity_in_use"
    assert len(docs.store.docs) == before  # nothing written by a refusal
    assert len(publisher.stored) == 2


def test_the_same_application_again_is_answered_with_its_decision_as_it_stands(docs, publisher, sanctions):
    """A retry after a lost answer (the same user, the same identity number): the decision
    is told again, nothing is written and nothing published; any other application by the
    same user is already_onboarded."""
    app = application()
    first = submit(docs, publisher, sanctions, "kari", app)
    before = dict(docs.store.docs)
    assert submit(docs, publisher, sanctions, "kari", app) == first
    assert submit(docs, publisher, sanctions, "kari", {**app, "email": "kari@other.no"}) == first
    assert docs.store.docs == before and len(publisher.stored) == 2
    typo = submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    approved = review(docs, publisher, "typo", approve=True)
    again = application(DRAZHENKO_BORN, name=DRAZHENKO + "k")
    assert typo["status"] == "review"
    assert submit(docs, publisher, sanctions, "typo", again) == {**approved, "reason": None}


def test_a_malformed_application_writes_nothing(docs, publisher, sanctions):
    assert refused(lambda: submit(docs, publisher, sanctions, "kari", application(email="nope"))) == "invalid_email"
    assert docs.store.docs == {} and publisher.stored == []


def test_the_operator_sees_the_applications_in_review_with_their_screening(docs, publisher, sanctions):
    submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    submit(docs, publisher, sanctions, "kari", application())
    (pending,) = onboarding.pending_reviews(docs)
    assert pending["uid"] == "typo" and pending["screening"] == data(docs, "kyc/typo")["screening"]
    assert pending["nationalIdMasked"] == data(docs, "customers/typo")["nationalIdMasked"]


def test_the_operator_sees_the_oldest_applications_first_whatever_their_ids(docs):
    """Listed by customer id, an application older than a page of others in review never
    showed while they waited (found in review, 2026-12-07)."""
    from tests.support.use_cases import seed

    day = dt.timedelta(days=1)
    seed(docs, {f"customers/a{n:03d}": {"status": "review", "appliedAt": NOW - n * day} for n in range(3)})
    seed(docs, {"customers/zz-oldest": {"status": "review", "appliedAt": NOW - 30 * day}})
    seed(docs, {"customers/aa-approved": {"status": "approved", "appliedAt": NOW - 60 * day}})
    assert [p["uid"] for p in onboarding.pending_reviews(docs, limit=3)] == ["zz-oldest", "a002", "a001"]


def test_an_approved_review_opens_the_first_account_and_tells_the_customer(docs, publisher, sanctions):
    submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    result = review(docs, publisher, "typo", approve=True)
    assert result["status"] == "approved" and result["accountId"]
    assert data(docs, "customers/typo")["firstAccountId"] == result["accountId"]
    assert data(docs, "kyc/typo")["reviewedBy"] == "ops:kari"
    assert data(docs, f"accounts/{result['accountId']}")["ownerUid"] == "typo"
    assert publisher.subjects()[-2:] == [topology.SUBJECT_CUSTOMER_APPROVED, topology.SUBJECT_ACCOUNT_OPENED]
    assert refused(lambda: review(docs, publisher, "typo", approve=False, reason="late")) == "not_in_review"
    assert onboarding.pending_reviews(docs) == []


def test_a_rejection_needs_a_reason_and_opens_nothing(docs, publisher, sanctions):
    submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    assert refused(lambda: review(docs, publisher, "typo", approve=False, reason=None)) == "invalid_reason"
    assert refused(lambda: review(docs, publisher, "typo", approve=False, reason="   ")) == "invalid_reason"
    assert refused(lambda: review(docs, publisher, "typo", approve=False, reason="\ud800")) == "invalid_reason"
    why = "EU FSF entry 1234: Borislav Drazhenko, b. 1961-03-14 Minsk - confirmed"
    result = review(docs, publisher, "typo", approve=False, reason=f"  {why}  ")
    assert result == {"status": "rejected", "accountId": None}
    # the operator's words stay with the bank's record; the applicant (their document, the
    # event) is told only that they were not approved, as for a screening's rejection
    kyc = data(docs, "kyc/typo")
    assert (kyc["reason"], kyc["reviewNote"], kyc["decision"]) == (why, why, "rejected")
    assert data(docs, "customers/typo")["reason"] == "not_approved"
    assert publisher.stored[-1].subject == topology.SUBJECT_CUSTOMER_REJECTED
    assert publisher.stored[-1].body["reason"] == "not_approved" and "Drazhenko" not in str(publisher.stored[-1].body)
    assert paths(docs, "accounts") == []


def test_why_an_application_in_review_was_approved_is_kept_with_who_approved_it(docs, publisher, sanctions):
    """An approval of a possible sanctions match threw its reason away (found in review):
    kept on the KYC record beside the operator; the customer is told no reason."""
    submit(docs, publisher, sanctions, "typo", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    assert refused(lambda: review(docs, publisher, "typo", approve=True, reason="x" * 201)) == "invalid_reason"
    # no reason, or blank: refused, as a rejection's is (an approval's was let through)
    assert refused(lambda: review(docs, publisher, "typo", approve=True, reason=None)) == "invalid_reason"
    assert refused(lambda: review(docs, publisher, "typo", approve=True, reason="  ")) == "invalid_reason"
    why = "passport checked: born in Bergen, not the listed person"
    assert review(docs, publisher, "typo", approve=True, reason=f"  {why} ")["status"] == "approved"
    kyc = data(docs, "kyc/typo")
    assert (kyc["reviewNote"], kyc["reviewedBy"], kyc["reason"]) == (why, "ops:kari", None)
    assert data(docs, "customers/typo")["reason"] is None


def test_an_operator_does_not_decide_their_own_application(docs, publisher, sanctions):
    """Four eyes: an operator who applied (the callable's operator is their uid) could
    approve their own possible sanctions match (found in review). Another operator may."""
    submit(docs, publisher, sanctions, "ops-kari", application(DRAZHENKO_BORN, name=DRAZHENKO + "k"))
    for approve in (True, False):
        own = refused(
            lambda approve=approve: onboarding.decide_review(
                docs, publisher, "ops-kari", approve=approve, operator="ops-kari", reason="not him", bank_reg=BANK_REG
            )
        )
        assert own == "four_eyes"
    assert data(docs, "customers/ops-kari")["status"] == "review" and paths(docs, "accounts") == []
    assert review(docs, publisher, "ops-kari", approve=True)["status"] == "approved"


def test_a_review_of_nobodys_application_is_refused(docs, publisher):
    assert refused(lambda: review(docs, publisher, "ghost", approve=True)) == "unknown_customer"


def test_the_identity_numbers_of_two_applicants_are_told_apart(docs, publisher, sanctions):
    first = submit(docs, publisher, sanctions, "kari", application())
    other = application(born=KARI_BORN, nationalId=national_id_for(KARI_BORN, first_individual=100))
    second = submit(docs, publisher, sanctions, "kari2", other)
    assert first["accountId"] != second["accountId"]
    assert len(paths(docs, "nationalIds")) == 2


def test_an_operator_frees_a_rejected_applications_identity_number_for_its_holder(docs, publisher, sanctions):
    """A number someone else applied with (no identity proofing yet) was held for ever by
    the rejected application, and its holder refused identity_in_use; SECURITY.md said an
    operator releases it, and nothing could (found in review, 2026-12-07)."""
    app = application()
    submit(docs, publisher, sanctions, "u-impostor", app)
    batch = docs.batch()  # rejected (by an operator's review, or the screening)
    batch.set("customers/u-impostor", {**data(docs, "customers/u-impostor"), "status": "rejected"})
    batch.commit()
    assert refused(lambda: submit(docs, publisher, sanctions, "u-kari", app)) == "identity_in_use"
    # only with a reason, never by the applicant, only a rejected application's
    for reason, operator in ((" ", "op-1"), ("ok", "op-1"), ("identity checked", "u-impostor")):
        assert refused(
            lambda r=reason, o=operator: onboarding.release_identity(docs, "u-impostor", operator=o, reason=r)
        ) in ("invalid_reason", "four_eyes")
    assert refused(lambda: onboarding.release_identity(docs, "u-nobody", operator="op-1", reason="BankID")) == (
        "unknown_customer"
    )
    answer = onboarding.release_identity(docs, "u-impostor", operator="op-1", reason="holder proved it at the branch")
    assert answer == {"uid": "u-impostor", "released": True}
    kyc = data(docs, "kyc/u-impostor")
    assert (kyc["identityReleasedBy"], kyc["identityReleaseReason"]) == ("op-1", "holder proved it at the branch")
    assert kyc["nationalId"] == app["nationalId"]  # the record stays, for the retention period
    assert onboarding.release_identity(docs, "u-impostor", operator="op-1", reason="again")["released"]  # a retry
    assert submit(docs, publisher, sanctions, "u-kari", app)["status"] == "approved"
    # the released user cannot apply again, and an approved application's number is never freed
    assert refused(lambda: submit(docs, publisher, sanctions, "u-impostor", app)) == "already_onboarded"
    assert refused(lambda: onboarding.release_identity(docs, "u-kari", operator="op-1", reason="mistake")) == (
        "not_rejected"
    )
    assert data(docs, f"nationalIds/{app['nationalId']}")["uid"] == "u-kari"
