"""Card service: the card vault, the card processor's API, card holds and captures.

* Consumes ``cards.commands.issue``: draws a PAN from the bank's BIN into the vault and
  turns the app's card document "active" with only the last four digits and expiry.
* Consumes ``cards.commands.expire-holds`` (the scheduled job): releases card holds past
  their expiry.
* Publishes what its outbox still holds (events NATS did not take) every RELAY_SECONDS.
* Serves the card processor on FJB_CARD_API_PORT: POST /v1/authorizations, /v1/captures,
  /v1/refunds, /v1/increments and /v1/reversals, each signed with the shared secret (fjordbank.domain.signatures).
  A decision is one unit of work (fjordbank.service_layer.card_ledger), answered at once;
  its event (cards.authorized / declined / captured / refunded / incremented / reversed / expired) follows on NATS
  for the notifier.

This module is the wiring: the use cases are in fjordbank.service_layer.card_ledger; here
are the HTTP handlers (signature, parsing, the answer's status code), the decision metrics
and the composition (Firestore, the vault, JetStream).

No PAN or CVV is ever logged, written to Firestore or published: requests are logged by
their processor reference and the authorisation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator

from google.cloud import firestore
from prometheus_client import Counter, Histogram

from fjordbank.adapters import faults
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client, is_transient
from fjordbank.adapters.publisher import AsyncJetStreamPublisher
from fjordbank.adapters.vault import CardVault, decode_keyring, open_vault
from fjordbank.config import Settings, load_settings
from fjordbank.domain import cards as rules
from fjordbank.domain import signatures
from fjordbank.domain.events import Contract, ExpireCardHolds, IssueCard
from fjordbank.domain.keyring import Keyring
from fjordbank.errors import ConfigError
from fjordbank.runtime import steps
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome
from fjordbank.runtime.http import TIMED_OUT, Exchange, JsonApiServer
from fjordbank.service_layer.card_ledger import RELAY_SECONDS, CardLedger, CardNumbers, CardResult
from fjordbank.service_layer.ledger import Ledger
from fjordbank.service_layer.recent import Recent

log = logging.getLogger("cards")

AUTHORIZATIONS = "/v1/authorizations"
SETTLEMENTS = ("/v1/captures", "/v1/refunds", "/v1/increments", "/v1/reversals")
# The processor waits this long for a decision, then declines in the issuer's stead (and
# sends a reversal): an approval decided later was never the merchant's answer.
AUTHORIZATION_DEADLINE_SECONDS = 2.0
# How long a processor's request is worked on before it is answered 503 "retry" (its
# handler cut off: fjordbank/runtime/http.py). Nothing bounded it, and a store that did not
# answer held the request for the Firestore client's own waits, a minute or more (found in
# review, 2026-12-06). An authorisation: the processor's 2 s less 0.2 s for the answer's
# way back, so the 503 arrives while the processor still listens. What a cut-off
# authorisation decided is released as a late approval is (`CardService.unanswered`).
AUTHORIZATION_TIMEOUT_SECONDS = 1.8
# A capture, refund, increment or reversal: the processor waits longer for these (they are
# not at the till; simulators/card_processor.py gives them 10 s), and a retry is answered
# from the record the first attempt left, whatever it got to (captureRef, the refund's,
# increment's and partial reversal's ids, a reversal's status).
SETTLEMENT_TIMEOUT_SECONDS = 8.0
# Every call of the service's Firestore client waits at most this long, its retries
# included (fjordbank.adapters.firestore.bound_waits). Under the authorisation's
# timeout, so a store that does not answer fails the call (transient: `_answered`) before
# the timeout has to end the request; and it bounds what no request's timeout does: the
# release of an approval not had (`unanswered`), a cut-off transaction's rollback, and the
# commands' and the relay's calls (a page of up to 500 holds or events is one query; the
# relay's and the expiry's have BACKGROUND_QUERY_DEADLINE_SECONDS): one the store does not
# answer in time fails transiently and is tried again, where it held the
# consumer's handler for the client's own 60 to 300 s.
STORE_CALL_DEADLINE_SECONDS = 1.5
# How long a query of the service's background work may take: the outbox relay's and the
# hold expiry's pages (up to 500 documents each). A query is one call, its whole stream
# bounded by the call's deadline, and at 1.5 s a page that a slow store delivers steadily
# but not within 1.5 s failed every round, the same page asked again (found in review,
# 2026-12-06). Their queries have this longer deadline, on the same client (not a client of
# their own: each call but a query keeps STORE_CALL_DEADLINE_SECONDS, so a hold's release
# stays one transaction of 1.5 s calls), and the request path keeps 1.5 s for everything.
# Rather than halving the page after a DeadlineExceeded: a page is what a run takes at a
# time, and a smaller one does not help a store that answers the first document late. At
# most 15 s: an expiry run (EXPIRE_BUDGET_SECONDS, 60 s, fjordbank/service_layer/card_ledger.py)
# may start its last page just before its budget is spent: two queries (30 s), one hold's
# transaction (three 1.5 s calls and a rollback of at most 5 s) and its announcements (6 s)
# then end by 106 s, within the consumer's 120 s handler deadline.
BACKGROUND_QUERY_DEADLINE_SECONDS = 15.0

# The card processor API's decisions (monitoring/metrics.yaml, source `cards`): one per
# authorisation decided now (an answer repeated from the record of the same reference is
# not a new decision); the time covers every authorisation answered (the SLO: 99% within
# 500 ms), from the request's body being read to the answer. A malformed request (400)
# is no decision and is in neither.
DECISIONS = Counter(
    "fjb_card_decisions_total", "Card authorisations decided, by decision and reason", ["decision", "reason"]
)
INCREMENTS = Counter("fjb_card_increments_total", "Incremental authorisations decided, by decision", ["decision"])
CAPTURE_REFUSALS = Counter(
    "fjb_card_capture_refusals_total",
    "Captures the bank refused (the scheme settles them: reconcile), by reason",
    ["reason"],
)
REFUND_REFUSALS = Counter(
    "fjb_card_refund_refusals_total",
    "Refunds the bank refused (the scheme clears them: the customer is owed them, reconcile), by reason",
    ["reason"],
)
UNANSWERED = Counter(
    "fjb_card_approvals_released_total",
    "Approvals released at once because the processor may not have had them, by why",
    ["why"],
)
DECISION_SECONDS = Histogram(
    "fjb_card_decision_seconds",
    "Time to decide one card authorisation in the card processor API",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class CardService:
    def __init__(self, settings: Settings, db: firestore.AsyncClient, vault: CardVault, cvv_key: Keyring) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.cvv_key = cvv_key
        self.secret = settings.card_processor_secret.encode()
        self.ledger: CardLedger | None = None  # made when NATS is connected (on_connect)
        # the relay's and the expiry's: its queries given BACKGROUND_QUERY_DEADLINE_SECONDS
        self.background: CardLedger | None = None
        self.numbers: CardNumbers | None = None
        self.delivered = Delivered()  # the approvals the processor had (`answered`)
        self.references = References()  # one decision or release of a reference at a time
        self._handle = steps.contract_step(self.command)

    async def on_connect(self, js) -> None:
        """Compose the use cases (before any command or request is taken)."""
        publisher = AsyncJetStreamPublisher(js)
        self.ledger = CardLedger(AsyncFirestoreDocuments(self.db), publisher)
        self.background = CardLedger(background_documents(self.db), publisher)
        self.numbers = CardNumbers(self.ledger, self.vault, cvv_key=self.cvv_key, card_bin=self.settings.card_bin)
        await Ledger(AsyncFirestoreDocuments(self.db)).ensure_internal_accounts()

    # ---- commands from NATS -------------------------------------------------------------
    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        return await self._handle(batch)

    async def command(self, step: steps.Step[Contract]) -> None:
        expired: Outcome | None = None
        for i, command in step.items:
            if isinstance(command, IssueCard):
                step.decide(i, await self.issue(command))
            elif isinstance(command, ExpireCardHolds):
                # Once per batch: each expire-holds command had a run of its own, each with
                # the run's budget (EXPIRE_BUDGET_SECONDS, half the consumer's handler
                # deadline), so two in one batch (the hourly job and a `bankctl jobs run`, or
                # a redelivery) overran the deadline together and the batch was cut off
                # (found in review, 2026-12-06). A second is answered as the first: a run
                # releases every hold due, and releasing is idempotent.
                if expired is None:
                    expired = await self.expire_holds()
                step.decide(i, expired)
            else:
                step.reject(i, f"no command {step.batch[i].subject}")

    async def issue(self, command: IssueCard) -> Outcome:
        return await self.numbers.issue(command)

    async def expire_holds(self) -> Outcome:
        await self.background.expire_holds()
        return Ack()

    async def relay_outbox(self, stop: asyncio.Event) -> None:
        """The decisions' events NATS did not take at once, every RELAY_SECONDS (a
        background task: the relay-outbox job runs as the edge, which may not publish them)."""
        while not stop.is_set():
            try:
                await self.background.relay()
            except Exception as exc:  # the store away: the next round tries again
                if not is_transient(exc):
                    raise
                log.warning("card outbox not relayed", extra={"error": type(exc).__name__})
            try:
                await asyncio.wait_for(stop.wait(), RELAY_SECONDS)
            except TimeoutError:
                pass

    # ---- the processor's API ------------------------------------------------------------
    def routes(self) -> dict:
        handlers = (self.authorize, self.capture, self.refund, self.increment, self.reverse)
        return {
            path: self._signed(path, handler)
            for path, handler in zip((AUTHORIZATIONS, *SETTLEMENTS), handlers, strict=True)
        }

    def _signed(self, path: str, handler):
        """``handler`` behind the signature check, for POSTs to ``path`` (the route's own
        path is what the signature must cover, so a request signed for one route is
        refused by the others)."""

        async def checked(headers: dict[str, str], body: bytes) -> tuple[int, dict]:
            try:
                header = headers.get(signatures.HEADER.lower())
                signatures.verify(self.secret, header, body, path=path, now=time.time())
            except signatures.BadSignature as exc:
                log.warning("unsigned or badly signed processor request refused", extra={"error": str(exc)})
                return 401, {"error": "bad_signature", "reason": exc.why}  # never the expected signature
            try:
                data = parse_json(body)
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
                return 400, {"error": "invalid_json"}
            return await _answered(path, handler, data)

        return checked

    async def authorize(self, data: object) -> tuple[int, dict]:
        started = time.perf_counter()
        try:
            req = rules.parse_authorization(data)
        except rules.CardRefused as exc:
            return 400, {"error": exc.code, "message": str(exc)}  # never echoes the PAN
        async with self.references.one_at_a_time(req.reference):  # not while its hold is being released
            result = await self.numbers.authorize(req)  # its event follows, the answer does not wait
            if result.approved:
                self.references.approving(req.reference)
        DECISION_SECONDS.observe(time.perf_counter() - started)
        if not result.replayed:
            DECISIONS.labels("approved" if result.approved else "declined", result.reason or "none").inc()
        log.info(
            "authorisation decided",
            extra={
                "reference": req.reference,
                "auth_id": result.auth_id,
                "status": result.status,
                "reason": result.reason,
            },
        )
        return 200, {**result.answer(), "approved": result.approved}

    def answered(self, exchange: Exchange) -> None:
        """An approval the processor had in time: kept in mind (`Delivered`)."""
        if (reference := _approval(exchange)) is not None:
            self.references.approved(reference)
            self.delivered.put(reference, True)

    async def unanswered(self, exchange: Exchange, why: str) -> None:
        """An approval the processor may never have had (its answer not written, or decided
        after the processor's deadline, when it has declined in the issuer's stead): the
        hold is released at once through the reversal path, as the processor's own
        reversal would (idempotent: whichever comes second changes nothing). The customer,
        told "declined" at the till, tries again, and the money is there. Not when the
        processor had this approval in time before (`Delivered`): a signed request sent
        again within its window is answered as decided, and whoever sent it could break
        the connection to have a purchase's hold released under the merchant.

        An authorisation cut off at its timeout (TIMED_OUT, answered 503) may have committed
        an approval before it was stopped, or may yet (a commit sent whose answer never
        came): it goes the same way, by its reference, as the processor's reversal of a
        request it timed out does. What it committed is released; nothing committed, the
        reversal is recorded first and the request, sent again, is declined and holds
        nothing, so an approval that lands late holds no money either. None of it was
        counted as on its way (`References.approving`): the handler never answered."""
        if why == TIMED_OUT:
            if (reference := _authorization(exchange)) is None:
                return
            if _approval(exchange) is not None:
                # the handler answered an approval all the same after its cut (the server
                # puts that answer on the exchange): it was counted as on its way
                # (`References.approving`) and never reached the processor
                self.references.approved(reference)
        else:
            if (reference := _approval(exchange)) is None:
                return
            self.references.approved(reference)
        # One at a time with the reference's decisions: a request of it decided while the
        # hold is being released was answered "approved" from the record not yet released
        # (the processor then had an approval whose hold was gone); now it waits, and is
        # answered from the released record (declined).
        async with self.references.one_at_a_time(reference):
            if self.delivered.get(reference):
                log.warning(
                    "an approval answered again and not had: the processor had it before, kept",
                    extra={"reference": reference, "why": why},
                )
                return
            if self.references.in_flight(reference):
                log.warning(
                    "an approval answered again and not had: another answer of it is on its way, kept",
                    extra={"reference": reference, "why": why},
                )
                return
            result = await self.ledger.reverse(reference, unanswered=True)
        if why == TIMED_OUT and not _released_approval(result):
            log.info(
                "an authorisation cut off at its timeout left no hold to release",
                extra={"reference": reference, "status": result.status, "reason": result.reason},
            )
            return
        UNANSWERED.labels(why).inc()
        log.warning(
            "approval the processor may not have had: released",
            extra={"reference": reference, "why": why, "seconds": round(exchange.seconds, 3), "status": result.status},
        )

    def release_not_done(self, exchange: Exchange, why: str) -> None:
        """`unanswered` cut short by the service's stop: the hold it was to release stays
        until the processor's reversal or the hold's expiry (days). Said with the
        authorisation's reference (never the request: it carries the card number), so the
        operators know which hold waits (found in review, 2026-12-06)."""
        reference = _authorization(exchange) if why == TIMED_OUT else _approval(exchange)
        if reference is not None:
            log.error(
                "a release of an approval the processor may not have had was not done: the service stopped",
                extra={"reference": reference, "why": why},
            )

    async def capture(self, data: object) -> tuple[int, dict]:
        if not isinstance(data, dict) or set(data) - {"reference", "captureReference", "amount"}:
            return 400, {"error": "invalid_request"}
        reference, capture_ref, amount = data.get("reference"), data.get("captureReference"), data.get("amount")
        if not rules.is_reference(reference) or not rules.is_reference(capture_ref):
            return 400, {"error": "invalid_request"}
        # at most what an authorisation may ask: an amount past Firestore's 64-bit integers
        # was refused, and its refusal was never kept for the reconciliation (the write of it
        # failed too: found in review, 2026-12-07)
        if amount is not None and (type(amount) is not int or not 0 < amount <= rules.MAX_AMOUNT):
            return 400, {"error": "invalid_amount"}
        result = await self.ledger.capture(reference, capture_ref=capture_ref, amount=amount)
        log.info("capture", extra={"auth_id": result.auth_id, "status": result.status, "reason": result.reason})
        if result.status != "captured":
            # the scheme settles it all the same: the reconciliation's to clear
            log.warning(
                "capture refused: the card scheme settles it anyway, kept for the reconciliation",
                extra={"auth_id": result.auth_id, "reason": result.reason, "amount": amount},
            )
            if await self.ledger.note_refused_capture(
                reference, capture_ref=capture_ref, amount=amount, reason=result.reason
            ):
                CAPTURE_REFUSALS.labels(result.reason or "none").inc()  # each capture once, not its retries
        return (200 if result.status == "captured" else 409), result.answer()

    async def refund(self, data: object) -> tuple[int, dict]:
        """A merchant's refund of a captured purchase: ``originalReference`` is the
        purchase's authorisation reference, ``reference`` the refund's own (a retry sends
        the same), ``amount`` øre. 200 refunded (again, for a retry), 409 refused with its
        reason (not captured, more than captured in all, the reference with another amount)."""
        if not isinstance(data, dict) or set(data) != {"reference", "originalReference", "amount"}:
            return 400, {"error": "invalid_request"}
        reference, original, amount = data["reference"], data["originalReference"], data["amount"]
        if not rules.is_reference(reference) or not rules.is_reference(original):
            return 400, {"error": "invalid_request"}
        if type(amount) is not int or not 0 < amount <= rules.MAX_AMOUNT:  # as a capture's
            return 400, {"error": "invalid_amount"}
        result = await self.ledger.refund(original, refund_ref=reference, amount=amount)
        log.info(
            "refund",
            extra={
                "auth_id": result.auth_id,
                "refund_id": result.refund_id,
                "status": result.status,
                "reason": result.reason,
            },
        )
        if result.status != "refunded":
            # the scheme clears it anyway: the customer is owed it, the reconciliation's to credit
            log.warning(
                "refund refused: the card scheme clears it anyway, kept for the reconciliation",
                extra={"auth_id": result.auth_id, "reason": result.reason, "amount": amount},
            )
            if await self.ledger.note_refused_refund(
                original, refund_ref=reference, amount=amount, reason=result.reason
            ):
                REFUND_REFUSALS.labels(result.reason or "none").inc()  # each refund once, not its retries
        return (200 if result.status == "refunded" else 409), result.answer()

    async def increment(self, data: object) -> tuple[int, dict]:
        """A merchant's incremental authorisation (a hotel's extra nights): ``originalReference``
        is the authorisation's reference, ``reference`` the increment's own (a retry sends the
        same), ``amount`` the øre to hold more. Answered like an authorisation: 200 with
        ``approved`` and, declined, its reason (the card, its limits, the funds, or an
        authorisation no longer holding); 400 for a malformed body."""
        if not isinstance(data, dict) or set(data) != {"reference", "originalReference", "amount"}:
            return 400, {"error": "invalid_request"}
        reference, original, amount = data["reference"], data["originalReference"], data["amount"]
        if not rules.is_reference(reference) or not rules.is_reference(original):
            return 400, {"error": "invalid_request"}
        if type(amount) is not int or not 0 < amount <= rules.MAX_AMOUNT:
            return 400, {"error": "invalid_amount"}
        result = await self.ledger.increment(original, increment_ref=reference, amount=amount)
        if not result.replayed:
            INCREMENTS.labels("approved" if result.approved else "declined").inc()
        log.info(
            "increment",
            extra={
                "auth_id": result.auth_id,
                "increment_id": result.increment_id,
                "status": result.status,
                "reason": result.reason,
            },
        )
        status = "approved" if result.approved else "declined"
        return 200, {**result.answer(), "status": status, "approved": result.approved}

    async def reverse(self, data: object) -> tuple[int, dict]:
        """A reversal: of the whole authorisation (``{"reference"}``), or a partial one
        (``{"reference", "originalReference", "amount"}``: its own reference, the
        authorisation's, the øre given back)."""
        if isinstance(data, dict) and set(data) == {"reference", "originalReference", "amount"}:
            return await self._reduce(data["reference"], data["originalReference"], data["amount"])
        if not isinstance(data, dict) or set(data) != {"reference"} or not rules.is_reference(data["reference"]):
            return 400, {"error": "invalid_request"}
        result = await self.ledger.reverse(data["reference"])
        log.info("reversal", extra={"auth_id": result.auth_id, "status": result.status, "reason": result.reason})
        return (200 if result.status == "reversed" else 409), result.answer()

    async def _reduce(self, reference: object, original: object, amount: object) -> tuple[int, dict]:
        if not rules.is_reference(reference) or not rules.is_reference(original):
            return 400, {"error": "invalid_request"}
        if type(amount) is not int or not 0 < amount <= rules.MAX_AMOUNT:
            return 400, {"error": "invalid_amount"}
        result = await self.ledger.reduce(original, reversal_ref=reference, amount=amount)
        log.info(
            "partial reversal",
            extra={"auth_id": result.auth_id, "status": result.status, "reason": result.reason, "amount": amount},
        )
        return (200 if result.status == "reversed" else 409), result.answer()


# Approvals the processor had in time, by reference (a process remembers this many).
DELIVERED = 50_000


class References:
    """The references being decided or released (one at a time each), and how many
    approvals of each were answered and not yet known to be had or not: a copy's lost
    answer does not release a hold whose other approval may reach the processor."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # reference -> (lock, [users])
        self._answering: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, reference: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(reference, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[reference]

    def approving(self, reference: str) -> None:
        """An approval of ``reference`` is being answered."""
        self._answering[reference] = self._answering.get(reference, 0) + 1

    def approved(self, reference: str) -> None:
        """An approval's answer was had, or not: it is no longer on its way."""
        left = self._answering.get(reference, 0) - 1
        if left > 0:
            self._answering[reference] = left
        else:
            self._answering.pop(reference, None)

    def in_flight(self, reference: str) -> int:
        return self._answering.get(reference, 0)


class Delivered(Recent[str, bool]):
    """The references whose approval the processor had in time. A process started since
    knows none: a request sent again then, its answer not had, releases the hold as a
    lost answer does (the signature's window is minutes; the card service runs alone)."""

    def __init__(self, size: int = DELIVERED) -> None:
        super().__init__(size)


def _approval(exchange: Exchange) -> str | None:
    """The reference of an authorisation the exchange approved, else None."""
    if exchange.status != 200 or not (exchange.answer or {}).get("approved"):
        return None
    return _authorization(exchange)


def _authorization(exchange: Exchange) -> str | None:
    """The reference of the exchange's authorisation request, else None (another route's,
    or a body that names none: the handler refused it before deciding anything)."""
    if exchange.path != AUTHORIZATIONS:
        return None
    try:
        data = parse_json(exchange.body)
    except (ValueError, RecursionError):
        return None
    reference = data.get("reference") if isinstance(data, dict) else None
    return reference if rules.is_reference(reference) else None


def _released_approval(result: CardResult) -> bool:
    """Whether a release gave back an approval's hold now (not a declined record, not one
    released before, not a reversal recorded ahead of its authorisation)."""
    return result.status == "reversed" and not result.replayed and bool(result.record.get("fingerprint"))


def parse_json(body: bytes) -> object:
    """A request body as JSON, read one way only: UTF-8 (json.loads would take UTF-16 and
    UTF-32 too), a key given twice refused (else the last one counted, and one signed body
    said two amounts to two readers), NaN and Infinity refused. Raises ValueError."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        found = dict(items)
        if len(found) != len(items):
            raise ValueError("a key is given twice")
        return found

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(body.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)


async def _answered(path: str, handler, data: object) -> tuple[int, dict]:
    """The handler's answer; a store that does not answer (a call past
    STORE_CALL_DEADLINE_SECONDS) or a transaction that lost to contention is tried once
    more, then answered 503 with Retry-After: the processor sends the request again under
    the same reference, which the card service answers as decided (a commit that went
    through but whose answer was lost is found then). A 500 was taken for a decline while
    the hold stayed on the customer's money. Both tries together are bounded by the route's
    timeout (`processor_api`), which answers 503 as well."""
    for attempt in (1, 2):
        try:
            return await handler(data)
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cut off at the route's timeout (the caller has its 503) while a commit was
                # in flight: the client's rollback failed and its error replaced the
                # CancelledError. Taken for a store error, the handler ran again, no longer
                # cancelled nor bounded, and what the first try committed was told "late"
                # with a 503 and never released (found in review, 2026-12-06). The cancel
                # goes on: the server tells the hook TIMED_OUT, which releases by reference.
                raise asyncio.CancelledError from exc
            if not is_transient(exc):
                raise
            log.warning(
                "processor request not answered yet",
                extra={"path": path, "attempt": attempt, "error": type(exc).__name__},
            )
    return 503, {"error": "unavailable", "retryable": True}


def refuse_an_empty_vault_with_cards(settings: Settings, vault: CardVault) -> None:
    """Stop the start when the vault is empty while the bank has active cards: their numbers
    are elsewhere (an environment moved from the file vault of before 2026-12-06 without
    terraform/modules/card_vault/README.md's steps, or a vault database replaced), and every
    purchase with them would be declined as an unknown card (found in review, 2026-12-06)."""
    if not vault.is_empty():
        return
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.firestore import CARDS, sync_client
    from fjordbank.service_layer.ports import Where

    active = FirestoreDocuments(sync_client(settings.project_id)).count(
        CARDS, where=[Where("status", "==", "active")], up_to=1
    )
    if active:
        raise ConfigError(
            f"the card vault (Firestore database {settings.vault_database!r}) is empty while the bank has active "
            "cards: their numbers are elsewhere; move them into the vault first "
            "(terraform/modules/card_vault/README.md)"
        )


def card_store(project_id: str) -> firestore.AsyncClient:
    """The service's Firestore client, each call bounded (STORE_CALL_DEADLINE_SECONDS)."""
    return async_client(project_id, faults=faults.for_service("cards"), deadline=STORE_CALL_DEADLINE_SECONDS)


def background_documents(db: firestore.AsyncClient) -> AsyncFirestoreDocuments:
    """The documents of the service's background work (the outbox relay, the hold expiry):
    its queries given BACKGROUND_QUERY_DEADLINE_SECONDS."""
    return AsyncFirestoreDocuments(db, query_deadline=BACKGROUND_QUERY_DEADLINE_SECONDS)


def processor_api(settings: Settings, service: CardService) -> JsonApiServer:
    """The card processor's API: on the probes' port when it is that port (a container's one
    port: Cloud Run, Knative), else on its own; on the address the settings give the
    service's HTTP (0.0.0.0 in a container: it was 127.0.0.1, which no processor could
    reach). Each route bounded by its timeout, the approvals not had released."""
    shared = settings.card_api_port == settings.http_port
    timeouts = {AUTHORIZATIONS: AUTHORIZATION_TIMEOUT_SECONDS} | dict.fromkeys(SETTLEMENTS, SETTLEMENT_TIMEOUT_SECONDS)
    return JsonApiServer(
        settings.http_host,
        None if shared else settings.card_api_port,
        service.routes(),
        unanswered=service.unanswered,
        answered=service.answered,
        not_told=service.release_not_done,
        deadlines={AUTHORIZATIONS: AUTHORIZATION_DEADLINE_SECONDS},
        timeouts=timeouts,
    )


def reseal(settings: Settings) -> int:
    """``python -m run_services.cards reseal``: seal every card of the vault under the
    current key of ``FJB_VAULT_KEY`` (a rotation's last step before the earlier key leaves
    the ring: terraform/modules/card_vault/README.md), as a job with the card service's
    image and identity, the only one that reaches the vault. Tells its progress; returns
    how many cards are left under another key (the job exits 1 while any is: run it again
    before the earlier key leaves the ring)."""
    vault = open_vault(
        settings.project_id, settings.vault_database, decode_keyring(settings.vault_key, "FJB_VAULT_KEY")
    )
    vault.check()

    def told(seen: int, sealed: int) -> None:
        log.info("resealing the card vault", extra={"seen": seen, "sealed": sealed, "key": vault.keys.current})

    sealed, left = vault.reseal(progress=told)
    log.info("card vault resealed", extra={"sealed": sealed, "left": left, "key": vault.keys.current})
    return left


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings(identity="cards")
    if args == ["reseal"]:
        if reseal(settings):
            raise SystemExit(1)
        return
    if args:
        raise SystemExit("usage: python -m run_services.cards [reseal]")
    vault = open_vault(
        settings.project_id, settings.vault_database, decode_keyring(settings.vault_key, "FJB_VAULT_KEY")
    )
    cvv_keys = decode_keyring(settings.cvv_key, "FJB_CVV_KEY")
    # a vault database that does not exist or answer, or keyrings that do not open its
    # cards, stop the start here
    vault.check(cvv_keys)
    refuse_an_empty_vault_with_cards(settings, vault)
    service = CardService(settings, card_store(settings.project_id), vault, cvv_keys)
    background = [service.relay_outbox]
    api = processor_api(settings, service) if settings.card_api_port else None
    if api is not None:
        background.append(api.serve)
    ConsumerService(
        durable="cards",
        settings=settings,
        handler=service,
        batch_size=50,
        on_connect=service.on_connect,
        background=background,
        api=api if api is not None and api.port is None else None,
    ).run()


if __name__ == "__main__":
    main()
