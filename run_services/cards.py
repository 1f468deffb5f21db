"""Card service: the card vault, the card processor's API, card holds and captures.

* Consumes ``cards.commands.issue``: draws a PAN from the bank's BIN into the vault and
  turns the app's card document "active" with only the last four digits and expiry.
* Consumes ``cards.commands.expire-holds`` (the scheduled job): releases card holds past
  their expiry.
* Serves the card processor on FJB_CARD_API_PORT: POST /v1/authorizations, /v1/captures
  and /v1/reversals, each signed with the shared secret (fjordbank.domain.signatures).
  A decision is one Firestore transaction (fjordbank.adapters.card_store), answered at
  once; its event (cards.authorized / declined / captured / reversed / expired) follows on
  NATS for the notifier.

No PAN or CVV is ever logged, written to Firestore or published: requests are logged by
their processor reference and the authorisation id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import time
import weakref

import nats.errors
from google.api_core.exceptions import Aborted, FailedPrecondition
from google.cloud import firestore
from prometheus_client import Counter, Histogram

from fjordbank import topology
from fjordbank.adapters import faults
from fjordbank.adapters.card_store import CARDS, CardLedger, CardResult, card_event
from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.vault import CardVault, decode_key
from fjordbank.config import Settings, load_settings
from fjordbank.domain import cards as rules
from fjordbank.domain import signatures
from fjordbank.domain.events import CardIssued, ExpireCardHolds, IssueCard
from fjordbank.runtime import events
from fjordbank.runtime.consumer import Ack, ConsumerService, Delivery, Outcome, Reject, Retry
from fjordbank.runtime.http import JsonApiServer
from fjordbank.service_layer.ledger import Ledger

log = logging.getLogger("cards")

# The card processor API's decisions (monitoring/metrics.yaml, source `cards`): one per
# authorisation decided now (an answer repeated from the record of the same reference is
# not a new decision); the time covers every authorisation answered (the SLO: 99% within
# 500 ms), from the request's body being read to the answer. A malformed request (400)
# is no decision and is in neither.
DECISIONS = Counter(
    "fjb_card_decisions_total", "Card authorisations decided, by decision and reason", ["decision", "reason"]
)
DECISION_SECONDS = Histogram(
    "fjb_card_decision_seconds",
    "Time to decide one card authorisation in the card processor API",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class CardService:
    def __init__(self, settings: Settings, db: firestore.AsyncClient, vault: CardVault, cvv_key: bytes) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.cvv_key = cvv_key
        self.secret = settings.card_processor_secret.encode()
        self.ledger = CardLedger(db)
        self.js = None
        # One decision at a time per card in this process: concurrent authorisations of one
        # card queue here (a few ms each) instead of contending for the same account and
        # spend documents in Firestore, where aborted transactions back off for seconds.
        self._card_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._pending: set[asyncio.Task] = set()

    def _card_lock(self, card_id: str | None) -> asyncio.Lock:
        key = card_id or "unknown"
        lock = self._card_locks.get(key)
        if lock is None:
            lock = self._card_locks[key] = asyncio.Lock()
        return lock

    async def on_connect(self, js) -> None:
        self.js = js
        await Ledger(AsyncFirestoreDocuments(self.db)).ensure_internal_accounts()

    # ---- commands from NATS -------------------------------------------------------------
    async def __call__(self, batch: list[Delivery]) -> list[Outcome]:
        commands, outcomes = events.decode_contracts(batch)
        for i, command in commands:
            if isinstance(command, IssueCard):
                outcomes[i] = await self.issue(command)
            elif isinstance(command, ExpireCardHolds):
                outcomes[i] = await self.expire_holds()
            else:
                outcomes[i] = Reject(f"no command {batch[i].subject}")
        return outcomes  # type: ignore[return-value]

    async def issue(self, command: IssueCard) -> Outcome:
        card_id = command.card_id
        if not card_id.startswith("card_"):
            return Reject("issue command without a card id")
        ref = self.db.collection(CARDS).document(card_id)
        snap = await ref.get()
        if not snap.exists:
            return Retry("card document not visible yet")
        if snap.get("status") != rules.ISSUING:
            return Ack()  # issued already (a redelivery) or blocked before it was made
        exp_month, exp_year = rules.expiry_for(dt.datetime.now(dt.UTC).date())
        entry, pan = await asyncio.to_thread(
            self.vault.store, card_id, lambda: rules.make_pan(self.settings.card_bin), exp_month, exp_year
        )
        if pan is None:  # made by an earlier delivery of this command
            pan = await asyncio.to_thread(self.vault.reveal, card_id)
        fields = {
            "status": rules.ACTIVE,
            "last4": pan[-4:],
            "bin": pan[:6],
            "expMonth": entry.exp_month,
            "expYear": entry.exp_year,
            "issuedAt": firestore.SERVER_TIMESTAMP,
            "updatedAt": firestore.SERVER_TIMESTAMP,
        }
        try:
            await ref.update(fields, option=self.db.write_option(last_update_time=snap.update_time))
        except (FailedPrecondition, Aborted) as exc:  # changed meanwhile (blocked): re-read on redelivery
            return Retry(f"card changed while issuing: {type(exc).__name__}")
        await self._publish(
            topology.SUBJECT_CARD_ISSUED,
            CardIssued(
                uid=snap.get("ownerUid"), card_id=card_id, account_id=snap.get("accountId"), last4=pan[-4:]
            ).to_json(),
            f"{card_id}:issued",
        )
        log.info("card issued", extra={"card_id": card_id, "token": entry.token})
        return Ack()

    async def expire_holds(self) -> Outcome:
        results = await self.ledger.expire(now=dt.datetime.now(dt.UTC))
        for result in results:
            await self._announce(result)
        log.info("expired card holds released", extra={"released": len(results)})
        return Ack()

    # ---- the processor's API ------------------------------------------------------------
    def routes(self) -> dict:
        return {
            "/v1/authorizations": self._signed(self.authorize),
            "/v1/captures": self._signed(self.capture),
            "/v1/reversals": self._signed(self.reverse),
        }

    def _signed(self, handler):
        async def checked(headers: dict[str, str], body: bytes) -> tuple[int, dict]:
            try:
                signatures.verify(self.secret, headers.get(signatures.HEADER.lower()), body, now=time.time())
            except signatures.BadSignature as exc:
                log.warning("unsigned or badly signed processor request refused", extra={"error": str(exc)})
                return 401, {"error": "bad_signature"}
            try:
                data = json.loads(body)
            except ValueError:
                return 400, {"error": "invalid_json"}
            return await handler(data)

        return checked

    async def authorize(self, data: object) -> tuple[int, dict]:
        started = time.perf_counter()
        try:
            req = rules.parse_authorization(data)
        except rules.CardRefused as exc:
            return 400, {"error": exc.code, "message": str(exc)}  # never echoes the PAN
        entry = await asyncio.to_thread(self.vault.find, req.pan)
        cvv_ok = None
        if entry is not None and req.cvv is not None:
            expected = rules.derive_cvv(self.cvv_key, req.pan, entry.exp_month, entry.exp_year)
            cvv_ok = hmac.compare_digest(expected, req.cvv)
        card_id = entry.card_id if entry else None
        if card_id is None:  # unknown card numbers (card testing) need no queue: nothing is shared
            result = await self.ledger.authorize(req, None, cvv_ok=cvv_ok, now=dt.datetime.now(dt.UTC))
        else:
            async with self._card_lock(card_id):
                result = await self.ledger.authorize(req, card_id, cvv_ok=cvv_ok, now=dt.datetime.now(dt.UTC))
        self._announce_later(result)  # the processor's answer does not wait for NATS
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

    async def capture(self, data: object) -> tuple[int, dict]:
        if not isinstance(data, dict) or set(data) - {"reference", "captureReference", "amount"}:
            return 400, {"error": "invalid_request"}
        reference, capture_ref, amount = data.get("reference"), data.get("captureReference"), data.get("amount")
        if not isinstance(reference, str) or not isinstance(capture_ref, str) or not 0 < len(capture_ref) <= 64:
            return 400, {"error": "invalid_request"}
        if amount is not None and (type(amount) is not int or amount <= 0):
            return 400, {"error": "invalid_amount"}
        result = await self.ledger.capture(
            reference, capture_ref=capture_ref, amount=amount, now=dt.datetime.now(dt.UTC)
        )
        await self._announce(result)
        log.info("capture", extra={"auth_id": result.auth_id, "status": result.status, "reason": result.reason})
        return (200 if result.status == "captured" else 409), result.answer()

    async def reverse(self, data: object) -> tuple[int, dict]:
        if not isinstance(data, dict) or set(data) != {"reference"} or not isinstance(data["reference"], str):
            return 400, {"error": "invalid_request"}
        result = await self.ledger.reverse(data["reference"], now=dt.datetime.now(dt.UTC))
        await self._announce(result)
        log.info("reversal", extra={"auth_id": result.auth_id, "status": result.status, "reason": result.reason})
        return (200 if result.status == "reversed" else 409), result.answer()

    # ---- events -------------------------------------------------------------------------
    def _announce_later(self, result: CardResult) -> None:
        task = asyncio.create_task(self._announce(result))
        self._pending.add(task)  # keep a reference until it is done
        task.add_done_callback(self._pending.discard)

    async def _announce(self, result: CardResult) -> None:
        event = card_event(result)
        if event is not None:
            await self._publish(*event)

    async def _publish(self, subject: str, body: dict, msg_id: str) -> None:
        """The decision is committed already: an event that cannot be published is logged
        (the push is lost, not the money)."""
        try:
            await self.js.publish(
                subject, json.dumps(body, separators=(",", ":")).encode(), headers={"Nats-Msg-Id": msg_id}, timeout=2
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.error("card event not published", extra={"subject": subject, "msg_id": msg_id, "error": repr(exc)})


def main() -> None:
    settings = load_settings(identity="cards")
    vault = CardVault(settings.vault_path, decode_key(settings.vault_key, "FJB_VAULT_KEY"))
    service = CardService(
        settings,
        async_client(settings.project_id, faults=faults.for_service("cards")),
        vault,
        decode_key(settings.cvv_key, "FJB_CVV_KEY"),
    )
    background = []
    if settings.card_api_port:
        api = JsonApiServer("127.0.0.1", settings.card_api_port, service.routes())
        background.append(api.serve)
    ConsumerService(
        durable="cards",
        settings=settings,
        handler=service,
        batch_size=50,
        on_connect=service.on_connect,
        background=background,
    ).run()


if __name__ == "__main__":
    main()
