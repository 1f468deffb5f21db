"""The card service's use cases: issue a card's number, and decide, hold, capture, refund,
reverse and expire card authorisations.

Each is written against the ports (fjordbank.service_layer.ports): it loads what it needs
in one unit of work, decides with a pure function of the domain
(`fjordbank.domain.card_authorization` for an authorisation,
`fjordbank.domain.card_settlement` for a capture, reversal or expiry) and saves everything
the decision changes together, so a decision and its hold can never be apart:

  cardAuthorizations/{authId}          the processor's request (no PAN), decision, capture
  (on the record: hold)                the funds held (kind "card"; approved before
                                       2026-12-02: holds/{authId})
  accounts/{id}                        balance, held, available
  (on the record: postings)            the capture's posting, account -> card scheme
                                       ({authId}:card-capture; captures before 2026-12-02:
                                       postings/{authId}:card-capture)
  cardSpend/{cardId}_{day}             authorised today, by daily/online/abroad
  accounts/{id}/transactions/{authId}  the app's feed entry: pending -> posted | cancelled
  (on the record: increments)          the merchant's incremental authorisations (more
                                       held on the same hold), by increment id
  (on the record: refunds)             a captured purchase's refunds, by refund id, each
                                       with its posting, card scheme -> account, in postings
  accounts/{id}/transactions/{refundId} a refund's own feed entry (money in)
  cardCaptureRefusals/{hash}           a capture the bank refused (`note_refused_capture`):
                                       the scheme settles it all the same, so it is the
                                       reconciliation's to clear (backend only)
  cardRefundRefusals/{hash}            a refund the bank refused (`note_refused_refund`):
                                       likewise, the customer's money to give back

``authId`` derives from the processor's reference: a retried request finds its record and
gets the same answer; a different request with a used reference is declined.

Round trips are the processor's decision time (its timeout is 2 s, our objective 500 ms at
the 99th percentile): an authorisation reads the record, the card and the day's spend in
one read, the account and the customer's category for the merchant in a second one only
when the card allows the request, and commits; nothing else.

Each decision's event (cards.authorized / declined / captured / reversed / expired /
refunded / incremented) follows
on NATS for the notifier and insights (`card_event`), through the card service's own
transactional outbox (`fjordbank.service_layer.outbox.CARD_OUTBOX`: only the card
service's NATS identity may publish these subjects): the event is committed with the
decision, published after it and then removed, so neither NATS away nor a crash between
the commit and the publish loses it (`relay`, which the service runs every
`RELAY_SECONDS`, publishes what was left). A card's issue likewise (cards.issued).

`CardLedger` needs the documents only; `CardNumbers` adds the card vault, the one place a
card's number lives (issuing a card, finding the card of a request's number).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import hmac
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fjordbank import topology
from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CARD_AUTHORIZATIONS,
    CARD_SPEND,
    CARDS,
    CATEGORY_OVERRIDES,
    HOLDS,
    TRANSACTIONS,
    USERS,
)
from fjordbank.domain import card_authorization as decision
from fjordbank.domain import card_settlement as settlement
from fjordbank.domain import cards as rules
from fjordbank.domain.categories import override_key
from fjordbank.domain.events import CardAuthorization, CardIncremented, CardIssued, CardRefunded, IssueCard
from fjordbank.domain.keyring import Keyring
from fjordbank.domain.ledger import Account, Book, Hold, card_scheme_account, carries_hold, record_postings
from fjordbank.domain.norway import today_in_norway
from fjordbank.runtime.consumer import Ack, Outcome, Reject, Retry
from fjordbank.service_layer import outbox
from fjordbank.service_layer.ledger import account_from_doc, write_book
from fjordbank.service_layer.ports import (
    SERVER_TIME,
    AsyncDocuments,
    AsyncPublisher,
    AsyncUnitOfWork,
    Clock,
    Contention,
    Doc,
    Increment,
    Stale,
    Where,
    Writes,
    system_clock,
)

log = logging.getLogger("cards")

CAPTURE_REFUSALS = "cardCaptureRefusals"
REFUND_REFUSALS = "cardRefundRefusals"
# On an authorisation's record: the captures and refunds of it refused, so the one posted
# on a retry closes its refusal ("posted") in its own commit: left "open", a reconciliation
# clearing the open ones posted it a second time (found in review, 2026-12-06). At most
# REFUSED_KEPT of each; a refusal of an authorisation not known yet has no record to be on.
REFUSED = {CAPTURE_REFUSALS: "refusedCaptures", REFUND_REFUSALS: "refusedRefunds"}
REFUSED_KEPT = 20


async def _close_refusal(
    uow: AsyncUnitOfWork, record: dict[str, Any] | None, collection: str, reference: str, operation_ref: str
) -> None:
    """A capture or refund posted now that was refused before (named on its record): its
    refusal is closed in the same commit (read before the commit's writes), "posted", for
    the reconciliation not to post it again; one the reconciliation cleared already stays
    "cleared" and says it was posted after (``postedAfterClearing``: posted twice, once by
    hand), and is logged."""
    if operation_ref not in ((record or {}).get(REFUSED[collection]) or ()):
        return
    path = refusal_path(collection, reference, operation_ref)
    found = _data(await uow.get(path))
    if found is None:  # named, its own document never written (its create failed)
        return
    if found.get("status") == "cleared":
        log.error(
            "a card operation the reconciliation cleared was posted by a retry",
            extra={"collection": collection, "reference": reference, "operation": operation_ref},
        )
        uow.update(path, {"postedAfterClearing": True, "postedAt": SERVER_TIME})
        return
    uow.update(path, {"status": "posted", "postedAt": SERVER_TIME})


def _posted(
    record: dict[str, Any], collection: str, auth_id: str, operation_ref: str, amount: int | None, reason: str | None
) -> bool:
    """Whether the record has posted this capture or refund already, for this amount: a
    refusal of its reference with another amount (``reference_reused``) is money the scheme
    settles that nobody posted, and stays open (taken for posted, it was hidden from the
    reconciliation and the metric: found in review, 2026-12-06)."""
    if reason == "reference_reused":
        return False
    if collection == CAPTURE_REFUSALS:
        same = amount is None or record.get("capturedAmount") == amount
        return record.get("status") == "captured" and record.get("captureRef") == operation_ref and same
    given = (record.get(settlement.REFUNDS) or {}).get(settlement.refund_id(auth_id, operation_ref))
    return given is not None and given.get("amount") == amount


def refusal_path(collection: str, reference: str, operation_ref: str) -> str:
    """The refused capture's or refund's document (`CardLedger.note_refused_capture`)."""
    key = hashlib.sha256(f"{reference}\n{operation_ref}".encode()).hexdigest()[:32]  # (as kept since 2026-12-05)
    return f"{collection}/{key}"


EXPIRE_BATCH = 500  # holds read and released per page of the job's run
# A run takes page after page while it finds a full one (one page per run let a day's
# expiries outgrow the job), and stops once it has spent this long, checked after each hold:
# the rest is the next run's, the release-expired-holds job an hour later (Cloud Scheduler
# at minute 7, terraform/modules/topology; the job publishes cards.commands.expire-holds),
# or at once with `bankctl jobs run release-expired-holds`. A run is one command of the
# card service's batch (card issues beside it; one run however many expire-holds commands
# the batch has: run_services/cards.py CardService.command), which the consumer cuts off at
# HANDLER_DEADLINE_SECONDS (120 s, fjordbank/runtime/consumer.py) and gives back as failed.
# The budget was those same 120 s, checked between pages only: a backlog's run overran it
# by up to a page, was cut off mid-page, counted a failure toward the dead letter each
# time, and the issues in its batch waited (found in review, 2026-12-06). Half the
# deadline: past its budget a run only finishes the hold in hand (one transaction, each
# call bounded at 1.5 s: run_services/cards.py STORE_CALL_DEADLINE_SECONDS) and announces
# its page (NATS away: three publishes of 2 s), seconds; the other half is the batch's
# other commands' (an issue is a vault write and a few round trips).
EXPIRE_BUDGET_SECONDS = 60.0
RELAY_SECONDS = 30.0  # how often the service publishes the events its outbox still holds


# ---- the answer and its event --------------------------------------------------------------
@dataclass(frozen=True)
class CardResult:
    """What the processor is answered and what is announced on NATS."""

    # approved | declined | captured | refunded | reversed | expired | refused; an
    # increment's: incremented | declined (with ``increment_id``) | refused
    status: str
    reason: str | None
    auth_id: str
    record: dict[str, Any] = field(default_factory=dict)  # the authorisation record (no PAN)
    replayed: bool = False
    refund_id: str | None = None  # a refund's (the record lists it in ``refunds``)
    increment_id: str | None = None  # an increment's (the record lists it in ``increments``)
    reversal_id: str | None = None  # a partial reversal's (the record lists it in ``reversals``)
    silent: bool = False  # nothing to announce (settlement.Settlement.silent)

    @property
    def approved(self) -> bool:
        return self.status in ("approved", "incremented")

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {"authorizationId": self.auth_id, "status": self.status, "reason": self.reason}
        if self.status == "captured" and self.record.get("capturedAmount") is not None:
            body["capturedAmount"] = self.record["capturedAmount"]
        if self.status == "refunded" and self.refund_id:
            body["refundId"] = self.refund_id
            body["refundedAmount"] = self.record[settlement.REFUNDS][self.refund_id]["amount"]
            body["refundedTotal"] = settlement.refunded_total(self.record)
        if self.increment_id:
            body["incrementId"] = self.increment_id
            given = (self.record.get(settlement.INCREMENTS) or {}).get(self.increment_id) or {}
            if self.reason != "reference_reused" and "authorizedAmount" in given:
                body["authorizedAmount"] = given["authorizedAmount"]  # as it was answered
            elif self.record:
                body["authorizedAmount"] = settlement.authorized_total(self.record)
        if self.reversal_id and self.status == "reversed":
            given = self.record[settlement.REVERSALS][self.reversal_id]
            body |= {
                "reversalId": self.reversal_id,
                "reversedAmount": given["amount"],
                "heldAmount": given["heldAmount"],
            }
        return body


EVENT_SUBJECTS = {
    "approved": topology.SUBJECT_CARD_AUTHORIZED,
    "declined": topology.SUBJECT_CARD_DECLINED,
    "captured": topology.SUBJECT_CARD_CAPTURED,
    "reversed": topology.SUBJECT_CARD_REVERSED,
    "expired": topology.SUBJECT_CARD_EXPIRED,
    "refunded": topology.SUBJECT_CARD_REFUNDED,
}


def card_event(result: CardResult) -> outbox.Event | None:
    """The event announcing a decision (subject, body, message id): never a PAN or CVV.
    None for a replayed answer, a refusal, a silent change (a reversal after the expiry) or a
    reversal that preceded its authorisation."""
    if result.replayed or result.silent or not result.record.get("fingerprint"):
        return None
    if result.increment_id:  # an increment's decision: only an approval is announced
        return _increment_event(result) if result.status == "incremented" else None
    if result.reversal_id and result.record.get("status") != "reversed":
        return None  # a partial reversal: the pending feed entry shows what is left, no push
    subject = EVENT_SUBJECTS.get(result.status)
    if subject is None:
        return None
    r = result.record
    if result.status == "refunded":
        return _refund_event(result)
    event = CardAuthorization(
        auth_id=result.auth_id,
        status=result.status,
        reason=result.reason,
        uid=r.get("ownerUid"),
        card_id=r.get("cardId"),
        account_id=r.get("accountId"),
        last4=r.get("last4"),
        # a decided authorisation's record always has the request's fields and its day
        # captured: what was; reversed or expired: all that was held (increments too)
        amount=(
            r["capturedAmount"]
            if result.status == "captured"
            else settlement.authorized_total(r)
            if result.status in settlement.RELEASED
            else r["amount"]
        ),
        currency=r["currency"],
        merchant_name=r["merchantName"],
        mcc=r["mcc"],
        merchant_country=r["merchantCountry"],
        channel=r["channel"],
        day=r["spendDay"],  # the purchase's date in Norway (its booking date)
        late=result.status == "captured" and bool(r.get("lateCapture")),
    )
    return outbox.Event(subject, event.to_json(), f"{result.auth_id}:{result.status}")


def _purchase(r: dict[str, Any]) -> dict[str, Any]:
    """What a refund's or an increment's event tells of the purchase (its record's)."""
    return {
        "uid": r["ownerUid"],
        "card_id": r.get("cardId"),
        "account_id": r["accountId"],
        "last4": r.get("last4"),
        "currency": r["currency"],
        "merchant_name": r["merchantName"],
        "mcc": r["mcc"],
        "merchant_country": r["merchantCountry"],
    }


def _refund_event(result: CardResult) -> outbox.Event:
    """cards.refunded, one per refund (its message id names the refund)."""
    r = result.record
    refund = r[settlement.REFUNDS][result.refund_id]
    event = CardRefunded(
        refund_id=str(result.refund_id),
        auth_id=result.auth_id,
        status="refunded",
        amount=refund["amount"],
        category=refund.get("category"),
        day=settlement.refund_day(refund),
        **_purchase(r),
    )
    return outbox.Event(
        topology.SUBJECT_CARD_REFUNDED, event.to_json(), f"{result.auth_id}:refunded:{result.refund_id}"
    )


def _increment_event(result: CardResult) -> outbox.Event:
    """cards.incremented, one per approved increment (its message id names it)."""
    r = result.record
    given = r[settlement.INCREMENTS][result.increment_id]
    event = CardIncremented(
        increment_id=str(result.increment_id),
        auth_id=result.auth_id,
        status="incremented",
        amount=given["amount"],
        authorized_amount=given["authorizedAmount"],  # what the processor was answered
        channel=r["channel"],
        day=r["spendDay"],
        **_purchase(r),
    )
    return outbox.Event(
        topology.SUBJECT_CARD_INCREMENTED, event.to_json(), f"{result.auth_id}:incremented:{result.increment_id}"
    )


# ---- where things are ----------------------------------------------------------------------
def authorization_path(auth_id: str) -> str:
    return f"{CARD_AUTHORIZATIONS}/{auth_id}"


def spend_path(card_id: str | None, day: str | None) -> str:
    return f"{CARD_SPEND}/{card_id}_{day}"


def choice_path(owner_uid: str | None, merchant_name: str | None) -> str:
    """The customer's own category for the merchant (read in the same unit of work)."""
    key = override_key(kind="card", merchant_name=merchant_name, counterparty_account=None)
    return f"{USERS}/{owner_uid or '-'}/{CATEGORY_OVERRIDES}/{key}"


def _data(doc: Doc | None) -> dict[str, Any] | None:
    return None if doc is None else doc.data


def write_feed(uow: Writes, record: dict[str, Any], entry: dict[str, Any] | None, *, merge: bool = False) -> None:
    """The account's feed entry of the authorisation ``record`` (none for an unknown card);
    ``merge``: into the entry there (a capture's or release's, which leave its category)."""
    if entry is not None:
        path = f"{ACCOUNTS}/{record['accountId']}/{TRANSACTIONS}/{record['authId']}"
        uow.set(path, {**entry, "updatedAt": SERVER_TIME}, merge=merge)


# ---- the ledger's use cases ----------------------------------------------------------------
class CardLedger:
    """Authorise, capture, reverse and expire, each one unit of work (its ``operation`` is
    the transaction metrics' name: cards_authorize, cards_capture, cards_refund,
    cards_increment, cards_release)."""

    def __init__(
        self,
        docs: AsyncDocuments,
        events: AsyncPublisher,
        *,
        clock: Clock = system_clock,
        hold_days: int = rules.HOLD_DAYS,
    ) -> None:
        self.docs = docs
        self.events = events
        self.clock = clock
        self.hold_days = hold_days
        self._pending: set[asyncio.Task[None]] = set()

    def _stage(self, uow: Writes, result: CardResult) -> CardResult:
        """The decision's event (if it has one) into the outbox, in the decision's unit of work."""
        event = card_event(result)
        if event is not None:
            outbox.stage(uow, event, clock=self.clock, collection=outbox.CARD_OUTBOX)
        return result

    async def announce(self, *results: CardResult) -> None:
        """Publish the decisions' events staged with them (`_stage`), and remove them from
        the outbox; what cannot be published now waits there for the relay."""
        events = [event for result in results if (event := card_event(result)) is not None]
        if events:
            await outbox.deliver_async(self.docs, self.events, events, collection=outbox.CARD_OUTBOX)

    def announce_later(self, result: CardResult) -> None:
        """`announce` in the background: the processor's answer does not wait for NATS. With
        NATS away a publish waits for its timeout (2 s) before the event is left to the
        relay; a capture, refund, increment or reversal waited for that before it was
        answered, and held one of the card API's connections as long (found in review,
        2026-12-06), where an authorisation's event already followed its answer. The event
        is in the outbox since the decision's commit: a publish that fails, or a process
        that stops first, leaves it there for `relay`."""
        task = asyncio.create_task(self.announce(result))
        self._pending.add(task)  # keep a reference until it is done
        task.add_done_callback(self._announced)

    def _announced(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a decision's event was not announced; the relay publishes it", exc_info=error)

    async def announced(self) -> None:
        """Wait for the events announced in the background so far."""
        await asyncio.gather(*self._pending)

    async def relay(self) -> dict[str, int]:
        """Publish the events whose first publish failed (NATS away, or the service gone
        between a decision's commit and its publish)."""
        return await outbox.relay_async(self.docs, self.events, collection=outbox.CARD_OUTBOX, clock=self.clock)

    # ---- authorise --------------------------------------------------------------------------
    async def authorize(
        self, req: rules.AuthorizationRequest, card_id: str | None, *, cvv_ok: bool | None
    ) -> CardResult:
        """Decide the request and write the decision with its hold, in one unit of work.
        Not announced here: the caller announces it (`announce_later`) when it has answered."""
        now = self.clock()
        attempt = decision.Attempt(
            request=req,
            auth_id=rules.authorization_id(req.reference),
            card_id=card_id,
            day=today_in_norway(now).isoformat(),
            now=now,
            cvv_ok=cvv_ok,
            hold_days=self.hold_days,
        )

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            return self._stage(uow, await self._authorize(uow, attempt))

        return await self.docs.transact(run, operation="cards_authorize")

    async def _authorize(self, uow: AsyncUnitOfWork, attempt: decision.Attempt) -> CardResult:
        auth = authorization_path(attempt.auth_id)
        card_path = f"{CARDS}/{attempt.card_id}" if attempt.card_id else None
        day_spend = spend_path(attempt.card_id, attempt.day)
        got = await uow.get_many([auth, card_path, day_spend] if card_path else [auth])
        previous = _data(got[auth])
        if previous is not None:
            answer = decision.answer_again(attempt, previous)
            return CardResult(answer.status, answer.reason, attempt.auth_id, answer.record, answer.replayed)
        card = _data(got.get(card_path)) if card_path else None
        spend = _data(got.get(day_spend)) or {}
        account, choice = None, None
        if card is not None and decision.check_card(attempt, card, spend) is None:
            account, choice = await self._account_and_choice(uow, card, attempt.request.merchant_name)
        decided = decision.authorize(attempt, card, spend, account)
        self._save_authorization(uow, attempt, decided, choice)
        return CardResult(decided.status, decided.reason, attempt.auth_id, decided.record)

    @staticmethod
    def _save_authorization(
        uow: AsyncUnitOfWork,
        attempt: decision.Attempt,
        decided: decision.Authorization,
        choice: dict[str, Any] | None,
    ) -> None:
        """Write the decision: its record, the day's spend, the card frozen, and for an
        approval the hold with the pending feed entry."""
        uow.set(authorization_path(attempt.auth_id), decided.record)
        if decided.spend is not None:
            uow.set(spend_path(attempt.card_id, attempt.day), decided.spend)
        if attempt.card_id and decided.card_update is not None:
            uow.update(f"{CARDS}/{attempt.card_id}", decided.card_update)
        if decided.book is not None:  # its hold is on the record
            write_book(uow, decided.book, carried={attempt.auth_id})
            entry = decision.feed_entry(decided.record, "pending", -attempt.request.amount, choice)
            write_feed(uow, decided.record, entry)

    @staticmethod
    async def _account_and_choice(
        uow: AsyncUnitOfWork, card: dict[str, Any], merchant_name: str
    ) -> tuple[Account | None, dict[str, Any] | None]:
        """The card's account (None: gone) and its owner's category for the merchant."""
        account_path = f"{ACCOUNTS}/{card['accountId']}"
        choice = choice_path(card.get("ownerUid"), merchant_name)
        got = await uow.get_many([account_path, choice])
        account = _data(got[account_path])
        return (account_from_doc(account) if account is not None else None), _data(got[choice])

    # ---- capture, reverse, expire -----------------------------------------------------------
    async def capture(self, reference: str, *, capture_ref: str, amount: int | None) -> CardResult:
        """Post the authorisation (all of it or less: a partial capture releases the rest);
        its event follows in the background (`announce_later`)."""
        auth_id = rules.authorization_id(reference)
        now = self.clock()

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            record, held = await self._load(uow, auth_id, with_scheme=True)
            settled = settlement.capture(auth_id, record, held, capture_ref=capture_ref, amount=amount, now=now)
            if settled.status == "captured" and not settled.replayed:
                await _close_refusal(uow, record, CAPTURE_REFUSALS, reference, capture_ref)
            return self._stage(uow, self._save(uow, auth_id, settled))

        result = await self.docs.transact(run, operation="cards_capture")
        self.announce_later(result)
        return result

    async def note_refused_capture(
        self, reference: str, *, capture_ref: str, amount: int | None, reason: str | None
    ) -> bool:
        """Keep a refused capture for the reconciliation: the card scheme settles a
        merchant's capture whatever the issuer answered, so the bank owes the scheme what it
        did not post, and a refusal left no trace but a log line (noticed 2026-12-05). One
        document per capture, made "open" once; the processor's retries count on it
        (``refusals``) and never open again one the reconciliation has cleared. Returns
        whether this capture's refusal is new; a write that fails is logged and the answer
        stands (False)."""
        fields = {"reference": reference, "captureReference": capture_ref}
        return await self._note_refused(CAPTURE_REFUSALS, fields, capture_ref, amount=amount, reason=reason)

    async def note_refused_refund(self, reference: str, *, refund_ref: str, amount: int, reason: str | None) -> bool:
        """Keep a refused refund for the reconciliation, as a refused capture is: the scheme
        clears a merchant's refund whatever the issuer answered, so the bank holds money the
        customer is owed, and a refusal (a refund before its capture, after the purchase was
        reversed or the account closed, more than was captured) left no trace but a log line:
        the customer was never credited (found in review, 2026-12-06)."""
        fields = {"reference": reference, "refundReference": refund_ref}
        return await self._note_refused(REFUND_REFUSALS, fields, refund_ref, amount=amount, reason=reason)

    async def _note_refused(
        self, collection: str, fields: dict[str, str], operation_ref: str, *, amount: int | None, reason: str | None
    ) -> bool:
        """One document per refused operation (``fields``: its references), "open" once;
        the retries counted on it, one the reconciliation cleared never opened again; and
        the operation named on its authorisation's record, when there is one (`REFUSED`).
        In one unit of work with the record: a retry that posted the operation meanwhile
        (the processor retries while the refusal is being kept) makes it "posted", not
        open, where a separate write left it open beside its posting (found in review,
        2026-12-06). Returns whether this refusal is new and open; a failure is logged and
        the processor's answer stands (False)."""
        reference = fields["reference"]
        auth_id, field = rules.authorization_id(reference), REFUSED[collection]
        path, record_path = refusal_path(collection, reference, operation_ref), authorization_path(auth_id)

        async def run(uow: AsyncUnitOfWork) -> bool:
            got = await uow.get_many([path, record_path])
            kept, record = _data(got[path]), _data(got[record_path])
            posted = record is not None and _posted(record, collection, auth_id, operation_ref, amount, reason)
            if kept is not None:
                uow.update(path, {"refusals": Increment(1), "lastAt": SERVER_TIME})
                return False
            uow.create(
                path,
                {
                    **fields,
                    "authId": auth_id,
                    "amount": amount,
                    "reason": reason,
                    "status": "posted" if posted else "open",  # open: the reconciliation's to clear
                    "refusals": 1,
                    "firstAt": SERVER_TIME,
                    "lastAt": SERVER_TIME,
                    **({"postedAt": SERVER_TIME} if posted else {}),
                },
            )
            named = list((record or {}).get(field) or ())
            if record is not None and not posted and operation_ref not in named:
                if len(named) >= REFUSED_KEPT:
                    log.error(
                        "refused card operation not named on its record (too many): a retry that posts it "
                        "leaves its refusal open",
                        extra={"collection": collection, "reference": reference, "operation": operation_ref},
                    )
                else:
                    uow.update(record_path, {field: [*named, operation_ref]})
            return not posted

        try:
            return await self.docs.transact(run, operation="cards_refused")
        except Exception as exc:  # noqa: BLE001 - the processor's answer stands; the log line keeps it
            log.error(
                "refused card operation not recorded", extra={"collection": collection, **fields, "error": repr(exc)}
            )
            return False

    async def refund(self, reference: str, *, refund_ref: str, amount: int) -> CardResult:
        """Give ``amount`` of the captured purchase ``reference`` back to its account (the
        merchant's refund, under the processor's own ``refund_ref``), with its own feed
        entry in the purchase's category; its event follows in the background."""
        auth_id = rules.authorization_id(reference)
        now = self.clock()

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            record = _data(await uow.get(authorization_path(auth_id)))
            book, category = None, None
            if record is not None and record.get("status") == "captured" and record.get("accountId"):
                ids = (record["accountId"], card_scheme_account(auth_id))
                paths = {a: f"{ACCOUNTS}/{a}" for a in ids}
                purchase = f"{ACCOUNTS}/{record['accountId']}/{TRANSACTIONS}/{auth_id}"
                got = await uow.get_many([*paths.values(), purchase])
                book = Book({a: account_from_doc(doc.data) for a, p in paths.items() if (doc := got[p]) is not None})
                category = (_data(got[purchase]) or {}).get("category")
            settled = settlement.refund(
                auth_id, record, book, reference=refund_ref, amount=amount, category=category, now=now
            )
            if settled.status == "refunded" and not settled.replayed:
                await _close_refusal(uow, record, REFUND_REFUSALS, reference, refund_ref)
            if settled.store and settled.refund_id:
                entry = settlement.refund_entry(settled.record, settled.refund_id)
                if entry is not None:
                    path = f"{ACCOUNTS}/{settled.record['accountId']}/{TRANSACTIONS}/{settled.refund_id}"
                    uow.set(path, {**entry, "updatedAt": SERVER_TIME})
            return self._stage(uow, self._save(uow, auth_id, settled))

        result = await self.docs.transact(run, operation="cards_refund")
        self.announce_later(result)
        return result

    async def increment(self, reference: str, *, increment_ref: str, amount: int) -> CardResult:
        """Hold ``amount`` more on the authorisation ``reference`` (the merchant's
        incremental authorisation, under the processor's own ``increment_ref``), decided on
        the card and the funds in one unit of work; an approval's event follows in the
        background."""
        auth_id = rules.authorization_id(reference)
        now = self.clock()

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            record, held = await self._load(uow, auth_id, with_scheme=False, with_card=True)
            settled = settlement.increment(
                auth_id, record, held, reference=increment_ref, amount=amount, now=now, hold_days=self.hold_days
            )
            return self._stage(uow, self._save(uow, auth_id, settled))

        result = await self.docs.transact(run, operation="cards_increment")
        self.announce_later(result)
        return result

    async def reverse(self, reference: str, *, unanswered: bool = False) -> CardResult:
        """Release the hold of an authorisation the processor cancels (its event follows in
        the background). A reversal that arrives before its authorisation (a timed-out
        request) is recorded, so the late authorisation is declined and holds nothing.
        ``unanswered``: the card service's own, for an approval whose answer the processor
        did not take; the same request sent again is then declined (settlement.NOT_ANSWERED)."""
        result = await self._release(
            rules.authorization_id(reference), reference=reference, status="reversed", unanswered=unanswered
        )
        self.announce_later(result)
        return result

    async def reduce(self, reference: str, *, reversal_ref: str, amount: int) -> CardResult:
        """The merchant's partial reversal of ``amount`` of the authorisation ``reference``
        (under the processor's own ``reversal_ref``): so much of the hold given back, in one
        unit of work; announced only when it gave back all that was left (cards.reversed)."""
        auth_id = rules.authorization_id(reference)
        now = self.clock()

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            record, held = await self._load(uow, auth_id, with_scheme=False)
            settled = settlement.reduce(auth_id, record, held, reference=reversal_ref, amount=amount, now=now)
            return self._stage(uow, self._save(uow, auth_id, settled))

        result = await self.docs.transact(run, operation="cards_reduce")
        self.announce_later(result)
        return result

    async def expire_holds(
        self, *, limit: int = EXPIRE_BATCH, budget: float = EXPIRE_BUDGET_SECONDS
    ) -> list[CardResult]:
        """Release every card hold past its expiry (the scheduled job), and announce each,
        a page of ``limit`` at a time while the pages come full, until ``budget`` seconds
        are spent (looked at after each hold: at least one is released, and the rest is
        left to the next run). Returns the holds released now (one released before is not
        again)."""
        ends = time.monotonic() + budget
        released: list[CardResult] = []
        while True:
            page, found, cut = await self._expire_page(limit, ends)
            released += page
            spent = cut or time.monotonic() >= ends
            if found < limit or not page or spent:
                break
        log.info("expired card holds released", extra={"released": len(released)})
        if cut or (spent and found == limit):
            log.info("card holds left for the next run: the run's time is spent", extra={"budget": budget})
        return released

    async def _expire_page(self, limit: int, ends: float) -> tuple[list[CardResult], int, bool]:
        """One page: the holds the authorisations' records keep, then those of the holds
        collection (authorisations approved before 2026-12-02), up to the time ``ends``
        (`time.monotonic`). Returns those released, how many were found, and whether the
        time ended it before the page's last."""
        now = self.clock()
        due = await self.docs.query(
            CARD_AUTHORIZATIONS,
            where=[Where("hold.status", "==", "active"), Where("hold.expiresAt", "<=", now.isoformat())],
            limit=limit,
        )
        if len(due) < limit:
            due += await self.docs.query(
                HOLDS,
                where=[
                    Where("kind", "==", "card"),
                    Where("status", "==", "active"),
                    Where("expiresAt", "<=", now.isoformat()),
                ],
                limit=limit - len(due),
            )
        released: list[CardResult] = []
        failed: Exception | None = None
        cut = False
        for n, hold in enumerate(due):
            if n and time.monotonic() >= ends:  # the rest of the page is the next run's
                cut = True
                break
            try:
                result = await self._release(hold.id, reference=None, status="expired", now=now)
            except Exception as exc:  # one hold that cannot be released must not keep the rest held
                log.exception("a card hold could not be expired; left for the next run", extra={"auth_id": hold.id})
                failed = exc
                continue
            if result.status == "expired" and not result.replayed:
                released.append(result)
        await self.announce(*released)  # together: NATS away costs three timeouts, not one per hold
        if failed is not None and not released:
            raise failed  # none released: the datastore, not one hold (the job is retried)
        return released, len(due), cut

    async def _release(
        self,
        auth_id: str,
        *,
        reference: str | None,
        status: str,
        now: dt.datetime | None = None,
        unanswered: bool = False,
    ) -> CardResult:
        when = now or self.clock()

        async def run(uow: AsyncUnitOfWork) -> CardResult:
            record, held = await self._load(uow, auth_id, with_scheme=False)
            settled = settlement.release(
                auth_id, record, held, reference=reference, status=status, now=when, unanswered=unanswered
            )
            return self._stage(uow, self._save(uow, auth_id, settled))

        return await self.docs.transact(run, operation="cards_release")

    async def _load(
        self, uow: AsyncUnitOfWork, auth_id: str, *, with_scheme: bool, with_card: bool = False
    ) -> tuple[dict[str, Any] | None, settlement.Held | None]:
        """The authorisation record, and with its hold a Book over the account (and the
        card scheme's shard for a capture), the day's spend and (``with_card``, for an
        increment) the card. Not the customer's category for the merchant: the feed entry
        keeps the one the authorisation labelled it with."""
        record = _data(await uow.get(authorization_path(auth_id)))
        if record is None:
            return None, None
        hold_doc = record["hold"] if carries_hold(record) else await self._hold_before(uow, auth_id, record)
        if hold_doc is None:
            return record, None
        hold = Hold.from_dict(hold_doc)
        ids = [hold.account_id] + ([card_scheme_account(auth_id)] if with_scheme else [])
        account_paths = {a: f"{ACCOUNTS}/{a}" for a in ids}
        day_spend = spend_path(record.get("cardId"), record.get("spendDay"))
        card = f"{CARDS}/{record['cardId']}" if with_card and record.get("cardId") else None
        got = await uow.get_many([*account_paths.values(), day_spend, *([card] if card else [])])
        accounts = {a: account_from_doc(doc.data) for a, p in account_paths.items() if (doc := got[p]) is not None}
        book = Book(accounts, holds={auth_id: hold})
        return record, settlement.Held(hold, book, _data(got[day_spend]), _data(got[card]) if card else None)

    @staticmethod
    async def _hold_before(uow: AsyncUnitOfWork, auth_id: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """The hold of an authorisation approved before holds moved onto the record (its
        document in the holds collection); None for a record that never held funds."""
        if record.get("status") not in ("approved", "expired"):  # declined, captured, reversed
            return None
        return _data(await uow.get(f"{HOLDS}/{auth_id}"))

    @staticmethod
    def _save(uow: AsyncUnitOfWork, auth_id: str, settled: settlement.Settlement) -> CardResult:
        """Write what a capture or release changed (nothing for a refusal or a replay)."""
        if settled.store:
            uow.set(authorization_path(auth_id), settled.record)
        if settled.spend is not None:
            uow.set(spend_path(settled.record.get("cardId"), settled.record.get("spendDay")), settled.spend)
        if settled.book is not None:  # a capture's posting is on the record, and so is the hold
            write_book(
                uow,
                settled.book,
                carried={auth_id} if carries_hold(settled.record) else (),
                on_records={p["postingId"] for p in record_postings(settled.record)},
            )
        write_feed(uow, settled.record, settled.feed, merge=True)
        return CardResult(
            settled.status,
            settled.reason,
            auth_id,
            settled.record,
            settled.replayed,
            settled.refund_id,
            settled.increment_id,
            settled.reversal_id,
            settled.silent,
        )


# ---- the card vault's use cases ------------------------------------------------------------
class VaultEntry(Protocol):
    """A card in the vault: its token and what is printed on it, never its number."""

    @property
    def token(self) -> str: ...

    @property
    def card_id(self) -> str: ...

    @property
    def exp_month(self) -> int: ...

    @property
    def exp_year(self) -> int: ...

    @property
    def cvv_key_id(self) -> str: ...


class Vault(Protocol):
    """The card vault (fjordbank.adapters.vault.CardVault): blocking, called off the loop."""

    def find(self, pan: str) -> VaultEntry | None: ...

    def store(
        self,
        card_id: str,
        make_pan: Callable[[], str],
        exp_month: int,
        exp_year: int,
        attempts: int = ...,
        *,
        cvv_key_id: str,
    ) -> tuple[VaultEntry, str | None]: ...

    def reveal(self, card_id: str) -> str | None: ...


class CardNumbers:
    """What needs a card's number: issuing it (cards.commands.issue), and authorising a
    processor's request by it (the vault finds the card; the CVV is derived and compared,
    never stored)."""

    def __init__(
        self,
        ledger: CardLedger,
        vault: Vault,
        *,
        cvv_key: bytes | Keyring,
        card_bin: str,
    ) -> None:
        """``cvv_key``: the CVV keyring (``FJB_CVV_KEY``): a card's CVV is derived with the
        key its vault entry names, a new card's with the current one."""
        self.ledger = ledger
        self.vault = vault
        self.cvv_keys = cvv_key if isinstance(cvv_key, Keyring) else Keyring.single(cvv_key)
        self.card_bin = card_bin
        # One decision at a time per card in this process: concurrent authorisations of one
        # card queue here (a few ms each) instead of contending for the same account and
        # spend documents in the database, where aborted transactions back off for seconds.
        self._card_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _card_lock(self, card_id: str) -> asyncio.Lock:
        lock = self._card_locks.get(card_id)
        if lock is None:
            lock = self._card_locks[card_id] = asyncio.Lock()
        return lock

    # ---- the processor's authorisation ------------------------------------------------------
    async def authorize(self, req: rules.AuthorizationRequest) -> CardResult:
        """Decide a processor's request; its event follows in the background (the
        processor's answer does not wait for NATS: `announced` waits for it)."""
        entry = await asyncio.to_thread(self.vault.find, req.pan)
        cvv_ok = None
        if entry is not None and req.cvv is not None:
            expected = rules.derive_cvv(self.cvv_keys.key(entry.cvv_key_id), req.pan, entry.exp_month, entry.exp_year)
            cvv_ok = hmac.compare_digest(expected, req.cvv)
        if entry is None:  # unknown card numbers (card testing) need no queue: nothing is shared
            result = await self.ledger.authorize(req, None, cvv_ok=cvv_ok)
        else:
            async with self._card_lock(entry.card_id):
                result = await self.ledger.authorize(req, entry.card_id, cvv_ok=cvv_ok)
        self.ledger.announce_later(result)
        return result

    async def announced(self) -> None:
        """Wait for the events of the decisions made so far (the ledger's, in the background)."""
        await self.ledger.announced()

    # ---- issuing ----------------------------------------------------------------------------
    async def issue(self, command: IssueCard) -> Outcome:
        """Draw the card's number from the bank's BIN into the vault and turn the app's card
        document "active" with only the last four digits and the expiry. Idempotent: a
        redelivered command finds the number drawn and the card active."""
        card_id = command.card_id
        if not card_id.startswith("card_"):
            return Reject("issue command without a card id")
        card = await self.ledger.docs.get(f"{CARDS}/{card_id}")
        if card is None:
            return Retry("card document not visible yet")
        if card.data.get("status") != rules.ISSUING:
            return Ack()  # issued already (a redelivery) or blocked before it was made
        account = await self.ledger.docs.get(f"{ACCOUNTS}/{card.data['accountId']}")
        if account is None or account.data.get("status") != "open":
            # ordered as its account was closed (the close blocks the cards it reads) or
            # frozen: no number is drawn for it, and the card says why
            frozen = account is not None and account.data.get("status") == "frozen"
            return await self._blocked_unissued(card, "account_frozen" if frozen else "account_closed")
        entry, pan = await self._number(card_id)
        issued = outbox.Event(
            topology.SUBJECT_CARD_ISSUED,
            CardIssued(
                uid=card.data["ownerUid"], card_id=card_id, account_id=card.data["accountId"], last4=pan[-4:]
            ).to_json(),
            f"{card_id}:issued",
        )
        try:
            await self._activate(card, pan, entry, issued)
        except (Stale, Contention) as exc:  # changed meanwhile (blocked): re-read on redelivery
            return Retry(f"card changed while issuing: {type(exc).__name__}", transient=True)
        await outbox.deliver_async(self.ledger.docs, self.ledger.events, [issued], collection=outbox.CARD_OUTBOX)
        log.info("card issued", extra={"card_id": card_id, "token": entry.token})
        return Ack()

    async def _blocked_unissued(self, card: Doc, reason: str) -> Outcome:
        batch = self.ledger.docs.batch()
        fields = {"status": rules.BLOCKED, "blockedReason": reason, "updatedAt": SERVER_TIME}
        batch.update(card.path, fields, if_updated=card.updated)
        try:
            await batch.commit()
        except (Stale, Contention) as exc:
            return Retry(f"card changed while blocking it: {type(exc).__name__}", transient=True)
        log.info("card not issued", extra={"card_id": card.data.get("cardId"), "reason": reason})
        return Ack()

    async def _number(self, card_id: str) -> tuple[VaultEntry, str]:
        """The card's vault entry and number: drawn now, or by an earlier delivery."""
        exp_month, exp_year = rules.expiry_for(today_in_norway(self.ledger.clock()))  # the month in Norway
        entry, pan = await asyncio.to_thread(
            functools.partial(self.vault.store, cvv_key_id=self.cvv_keys.current),
            card_id,
            lambda: rules.make_pan(self.card_bin),
            exp_month,
            exp_year,
        )
        if pan is None:  # made by an earlier delivery of this command
            pan = await asyncio.to_thread(self.vault.reveal, card_id)
        if pan is None:
            raise LookupError(f"card {card_id} has a vault entry without a number")
        return entry, pan

    async def _activate(self, card: Doc, pan: str, entry: VaultEntry, issued: outbox.Event) -> None:
        """The card document active, if it has not changed since it was read, with the event
        that says so staged in the outbox (one commit)."""
        batch = self.ledger.docs.batch()
        fields = {
            "status": rules.ACTIVE,
            "last4": pan[-4:],
            "bin": pan[:6],
            "expMonth": entry.exp_month,
            "expYear": entry.exp_year,
            "issuedAt": SERVER_TIME,
            "updatedAt": SERVER_TIME,
        }
        batch.update(card.path, fields, if_updated=card.updated)
        outbox.stage(batch, issued, clock=self.ledger.clock, collection=outbox.CARD_OUTBOX)
        await batch.commit()
