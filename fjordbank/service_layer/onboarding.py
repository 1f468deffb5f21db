"""Onboarding: an application through the callable, a decision, and an operator's review.

Everything a decision makes is written in one unit of work (fjordbank.service_layer.ports),
so a failure leaves nothing half-made:

  customers/{uid}      what the app shows: status, reason, name, contact, masked id
  kyc/{uid}            the full application and the screening matches (backend only)
  nationalIds/{id}     one customer per identity number (backend only)
  accounts/{number}    the first account, when approved
  outbox/{msgId}       the customers.* event(s), published after the commit

A uid that has applied cannot apply again; an identity number belongs to one customer.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fjordbank import topology
from fjordbank.adapters.firestore import CUSTOMERS, RESCREEN_BASELINE, SANCTIONS_ALERTS
from fjordbank.domain import onboarding as rules
from fjordbank.domain.accounts import DEFAULT_NAMES, SPENDING
from fjordbank.domain.events import CustomerDecided
from fjordbank.domain.norway import mask_national_id, today_in_norway
from fjordbank.domain.rescreening import list_refused
from fjordbank.domain.sanctions import InvalidSanctionsList, SanctionsList
from fjordbank.service_layer import outbox
from fjordbank.service_layer.accounts import claim_number, create_account
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    Clock,
    Documents,
    OrderBy,
    Publisher,
    UnitOfWork,
    Where,
    system_clock,
)

log = logging.getLogger(__name__)
KYC = "kyc"
NATIONAL_IDS = "nationalIds"
SUBJECTS = {
    rules.APPROVED: topology.SUBJECT_CUSTOMER_APPROVED,
    rules.REVIEW: topology.SUBJECT_CUSTOMER_REVIEW,
    rules.REJECTED: topology.SUBJECT_CUSTOMER_REJECTED,
}


def customer_event(uid: str, status: str, reason: str | None, account_id: str | None) -> outbox.Event:
    """No personal data on NATS: the uid, the outcome and the first account."""
    body = CustomerDecided(uid=uid, status=status, reason=reason, account_id=account_id).to_json()
    return outbox.Event(SUBJECTS[status], body, f"customer:{uid}:{status}")


class SanctionsListUnusable(RuntimeError):
    """The deployed sanctions list cannot be screened against: the bank's fault, not the
    applicant's (an internal error to the app, counted as one at the edge), where a
    DomainError of the list answered the applicant INVALID_ARGUMENT and was counted as a
    refusal, which no alert watches (found in review, 2026-12-06)."""


def load_sanctions(path: str, *, docs: Documents) -> SanctionsList:
    """The list onboarding and the rescreen screen against. A file that is not a list (its
    parser refuses it), or a list with no entries, is refused (`SanctionsListUnusable`; a
    file that is not there raises OSError, the bank's error as well): screening against an empty one
    would approve everyone (the services' own reader refuses it too:
    fjordbank.adapters.sanctions_file). So is a list under half the entries the rescreen's
    baseline was screened with (`RESCREEN_BASELINE`, read from ``docs``), unless compliance
    took it there (``acceptShrunk``): the rescreen refuses such a list
    (fjordbank.domain.rescreening.list_refused, the one test for both), and onboarding took
    it, approving the listed persons a truncated file had lost (found in review, 2026-12-07)."""
    try:
        with open(path, "rb") as fh:
            sanctions = SanctionsList.from_xml(fh.read())
    except InvalidSanctionsList as exc:
        raise SanctionsListUnusable(f"the sanctions list {path!r} cannot be used: {exc.message}") from exc
    if not len(sanctions):
        raise SanctionsListUnusable("the sanctions list has no entries: screening against it would pass everyone")
    baseline = docs.get(RESCREEN_BASELINE)
    if (
        refused := list_refused(baseline.data if baseline is not None else {}, sanctions, where=RESCREEN_BASELINE)
    ) is not None:
        log.error(
            "the sanctions list was not loaded: it has too few entries against the rescreen's baseline",
            extra={"entries": len(sanctions), "version": sanctions.version},
        )
        raise SanctionsListUnusable(f"the sanctions list {path!r} cannot be used: {refused}")
    return sanctions


def submit(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    data: object,
    *,
    sanctions: SanctionsList,
    bank_reg: str,
    today: dt.date | None = None,
    allow_synthetic: bool = False,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """Validate, screen and decide an application. Raises `OnboardingRefused` (nothing
    written) for a malformed application, a second application or an identity in use."""
    application = rules.parse_application(
        data, today=today or today_in_norway(clock()), allow_synthetic=allow_synthetic
    )
    decision = rules.decide(application, sanctions)
    nid = application.national_id.number

    def run(uow: UnitOfWork) -> tuple[dict[str, Any], list[outbox.Event]]:
        found = uow.get_many([f"{CUSTOMERS}/{uid}", f"{NATIONAL_IDS}/{nid}"])
        customer, claim = found[f"{CUSTOMERS}/{uid}"], found[f"{NATIONAL_IDS}/{nid}"]
        if customer is not None:
            if claim is not None and claim.data.get("uid") == uid:
                # this application again (its first answer was lost): its decision as it stands
                return _answer(customer.data), []
            raise rules.OnboardingRefused("already_onboarded", "you have already applied")
        if claim is not None:
            raise rules.OnboardingRefused(
                "identity_in_use", "this identity number belongs to another customer; contact the bank", "nationalId"
            )
        number = claim_number(uow, bank_reg) if decision.outcome == rules.APPROVED else None
        # writes only from here on (a unit of work reads first)
        _write_application(uow, uid, application, decision, number)
        told = rules.told(decision)  # never the screening's reason (kept in the kyc record)
        answer = {"status": decision.outcome, "reason": told, "accountId": number}
        return answer, _decided(uow, uid, decision.outcome, told, number, clock)

    answer, events = docs.transact(run, operation="onboarding_submit")
    if not events:
        return answer
    outbox.deliver(docs, publisher, events)
    log.info(
        "onboarding decided",
        extra={"uid": uid, "status": decision.outcome, "reason": decision.reason, "id": mask_national_id(nid)},
    )
    return answer


def _answer(customer: dict[str, Any]) -> dict[str, Any]:
    """What the app is told of a customer's decision (as ``submit`` answers it)."""
    return {
        "status": customer.get("status"),
        "reason": customer.get("reason"),
        "accountId": customer.get("firstAccountId"),
    }


def _write_application(
    uow: UnitOfWork, uid: str, application: rules.Application, decision: rules.Decision, number: str | None
) -> None:
    """The customer's profile, the full application with its screening, and the claim of
    the identity number."""
    nid = application.national_id.number
    now = SERVER_TIME
    uow.create(
        f"{CUSTOMERS}/{uid}",
        {
            "uid": uid,
            "status": decision.outcome,
            "reason": rules.told(decision),
            "name": application.name,
            "email": application.email,
            "phone": application.phone,
            "address": application.address.to_dict(),
            "nationalIdMasked": mask_national_id(nid),
            "firstAccountId": number,
            "appliedAt": now,
            "decidedAt": now if decision.outcome != rules.REVIEW else None,
            "updatedAt": now,
        },
    )
    uow.create(
        f"{KYC}/{uid}",
        {
            "nationalId": nid,
            "idKind": application.national_id.kind,
            "birthDate": application.birth_date.isoformat(),
            "name": application.name,
            "screening": [m._asdict() for m in decision.matches],
            "decision": decision.outcome,
            "reason": decision.reason,
            "appliedAt": now,
        },
    )
    uow.create(f"{NATIONAL_IDS}/{nid}", {"uid": uid, "createdAt": now})


def _decided(
    uow: UnitOfWork,
    uid: str,
    status: str,
    reason: str | None,
    number: str | None,
    clock: Clock,
    *,
    frozen: bool = False,
) -> list[outbox.Event]:
    """The first account (when approved) and the decision's event, staged: the events to
    deliver after the commit, the decision's first."""
    opened = []
    if number is not None:
        opened.append(
            create_account(uow, uid, number, kind=SPENDING, name=DEFAULT_NAMES[SPENDING], frozen=frozen, clock=clock)
        )
    event = customer_event(uid, status, reason, number)
    outbox.stage(uow, event, clock=clock)
    return [event, *opened]


REVIEWS_LISTED = 100  # applications in review listed at once (the oldest first)


def pending_reviews(docs: Documents, limit: int = REVIEWS_LISTED) -> list[dict[str, Any]]:
    """The applications in review, the oldest first (by ``appliedAt``; the index on
    status and appliedAt is in firestore.indexes.json). Unordered, a query gives them by
    customer id: with more than ``limit`` in review, an old application whose id sorted
    late was never listed (found in review, 2026-12-07)."""
    out = []
    in_review = [Where("status", "==", rules.REVIEW)]
    for customer in docs.query(CUSTOMERS, where=in_review, order_by=[OrderBy("appliedAt")], limit=limit):
        kyc = docs.get(f"{KYC}/{customer.id}")
        out.append(
            {
                "uid": customer.id,
                "name": customer.data.get("name"),
                "nationalIdMasked": customer.data.get("nationalIdMasked"),
                "screening": kyc.data.get("screening", []) if kyc is not None else [],
            }
        )
    return out


def release_identity(docs: Documents, uid: str, *, operator: str, reason: object) -> dict[str, Any]:
    """An operator frees the identity number a rejected application claimed, so that the
    number's holder can apply: a number someone else applied with (onboarding has no
    identity proofing yet: SECURITY.md) was held for ever, and its holder refused
    `identity_in_use` (found in review, 2026-12-07: SECURITY.md said an operator releases
    it, and nothing could). Only a rejected application's; the application itself and its
    KYC record stay (the bank keeps them for its retention period), with who released the
    number, when and why. The released uid cannot apply again (its customer document
    stays). Releasing again answers as the first time."""
    if not (isinstance(reason, str) and 3 <= len(reason.strip()) <= 200 and reason.isprintable()):
        raise rules.OnboardingRefused("invalid_reason", "a release needs a reason (3-200 printable characters)")
    if operator == uid:
        raise rules.OnboardingRefused("four_eyes", "an operator does not release their own application's number")

    def run(uow: UnitOfWork) -> bool:
        found = uow.get_many([f"{CUSTOMERS}/{uid}", f"{KYC}/{uid}"])
        customer, kyc = found[f"{CUSTOMERS}/{uid}"], found[f"{KYC}/{uid}"]
        if customer is None or kyc is None:
            raise rules.OnboardingRefused("unknown_customer", "no application from this user")
        if customer.data.get("status") != rules.REJECTED:
            raise rules.OnboardingRefused(
                "not_rejected",
                f"the application is {customer.data.get('status')}: only a rejected one's number is freed",
            )
        claim_path = f"{NATIONAL_IDS}/{kyc.data['nationalId']}"
        claim = uow.get(claim_path)
        if claim is None or claim.data.get("uid") != uid:
            if kyc.data.get("identityReleasedAt") is not None:
                return False  # released before: a retry
            raise rules.OnboardingRefused("not_claimed", "this application holds no identity number")
        uow.delete(claim_path)
        uow.update(
            kyc.path,
            {
                "identityReleasedAt": SERVER_TIME,
                "identityReleasedBy": operator,
                "identityReleaseReason": reason.strip(),
            },
        )
        return True

    released = docs.transact(run, operation="onboarding_release_identity")
    log.warning("identity number released", extra={"uid": uid, "operator": operator, "released": released})
    return {"uid": uid, "released": True}


def decide_review(
    docs: Documents,
    publisher: Publisher,
    uid: str,
    *,
    approve: bool,
    operator: str,
    reason: str | None,
    bank_reg: str,
    clock: Clock = system_clock,
) -> dict[str, Any]:
    """An operator's decision on an application in review, with its reason either way: an
    application in review is a possible sanctions match, and approving one without a word
    of why left the auditor nothing to read (found in review, 2026-12-06)."""
    if not (isinstance(reason, str) and 0 < len(reason.strip()) <= 200 and reason.isprintable()):
        raise rules.OnboardingRefused("invalid_reason", "a decision needs a reason (1-200 characters)")
    final_reason = reason.strip() if not approve else None  # a rejection's, checked above
    # why the operator decided as they did, kept with who did (an approval of a possible
    # sanctions match is the decision an auditor asks about; its why was thrown away). The
    # applicant is told no operator's words, only that they were not approved (as a
    # screening's rejection, rules.told): an application in review is a possible sanctions
    # match, so the operator's reason is the screening's, and it went to the customer's
    # document and the event (found in review, 2026-12-06).
    told = rules.NOT_APPROVED if not approve else None
    note = reason.strip() if isinstance(reason, str) and reason.strip() else None
    if note is not None and not (len(note) <= 200 and note.isprintable()):
        raise rules.OnboardingRefused("invalid_reason", "a reason is 1-200 printable characters")
    if operator == uid:
        # four eyes: an operator who applied could approve their own possible sanctions
        # match (found in review). bankctl's operator is a name, never a uid.
        raise rules.OnboardingRefused("four_eyes", "an operator does not decide their own application")
    status = rules.APPROVED if approve else rules.REJECTED

    def run(uow: UnitOfWork) -> tuple[str | None, list[outbox.Event]]:
        customer = uow.get(f"{CUSTOMERS}/{uid}")
        if customer is None:
            raise rules.OnboardingRefused("unknown_customer", "no application from this user")
        if customer.data.get("status") != rules.REVIEW:
            raise rules.OnboardingRefused(
                "not_in_review", f"the application is {customer.data.get('status')}, not in review"
            )
        # the rescreen may have found them on a new list while they waited (frozen: the
        # first account is frozen too, and listed with what their alert froze, which a
        # clear opens again: fjordbank.service_layer.rescreening)
        frozen = bool(customer.data.get("frozen"))
        alert = uow.get(f"{SANCTIONS_ALERTS}/{uid}") if frozen else None
        number = claim_number(uow, bank_reg) if approve else None
        now = SERVER_TIME
        uow.update(
            customer.path,
            {"status": status, "reason": told, "firstAccountId": number, "decidedAt": now, "updatedAt": now},
        )
        uow.update(
            f"{KYC}/{uid}",
            {"decision": status, "reason": final_reason, "reviewNote": note, "reviewedBy": operator, "reviewedAt": now},
        )
        if alert is not None and number is not None:
            uow.update(alert.path, {"frozenAccounts": sorted({*(alert.data.get("frozenAccounts") or ()), number})})
        elif frozen and number is not None:  # never by the rescreen: it writes both at once
            log.error("a frozen customer without a sanctions alert: their account opens frozen", extra={"uid": uid})
        return number, _decided(uow, uid, status, told, number, clock, frozen=frozen)

    number, events = docs.transact(run, operation="onboarding_review")
    outbox.deliver(docs, publisher, events)
    log.info("onboarding reviewed", extra={"uid": uid, "approved": approve, "operator": operator})
    return {"status": status, "accountId": number}
