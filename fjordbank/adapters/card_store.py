"""Card authorisations in the Firestore ledger: decide, hold, capture, reverse, expire.

Each operation is one Firestore transaction that reads the authorisation record, the card,
the account(s), the hold and the card's spend of the day, decides with
`fjordbank.domain.card_authorization` (an authorisation) or `fjordbank.domain.ledger.Book`,
and writes everything it changes together, so a decision and its hold can never be apart:

  cardAuthorizations/{authId}          the processor's request (no PAN), decision, capture
  holds/{authId}                       the funds held (kind "card")
  accounts/{id}                        balance, held, available
  postings/{authId}:card-capture       the captured amount, account -> card scheme
  cardSpend/{cardId}_{day}             authorised today, by daily/online/abroad
  accounts/{id}/transactions/{authId}  the app's feed entry: pending -> posted | cancelled

``authId`` derives from the processor's reference: a retried request finds its record and
gets the same answer; a different request with a used reference is declined.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction
from google.cloud.firestore_v1.async_document import AsyncDocumentReference
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CARDS,
    CATEGORY_OVERRIDES,
    HOLDS,
    TRANSACTIONS,
    async_transactional,
    fields_of,
    user_doc,
)
from fjordbank.adapters.ledger_store import account_from_doc, write_book
from fjordbank.domain import card_authorization as decision
from fjordbank.domain import cards as rules
from fjordbank.domain.categories import override_key
from fjordbank.domain.events import CardAuthorization
from fjordbank.domain.ledger import Account, Book, Declined, Hold, Posting, card_scheme_account
from fjordbank.domain.norway import today_in_norway

CARD_AUTHORIZATIONS = "cardAuthorizations"
CARD_SPEND = "cardSpend"
CAPTURE_STEP = "card-capture"


@dataclass(frozen=True)
class CardResult:
    """What the processor is answered and what is announced on NATS."""

    status: str  # approved | declined | captured | reversed | expired | refused
    reason: str | None
    auth_id: str
    record: dict[str, Any] = field(default_factory=dict)  # the authorisation record (no PAN)
    replayed: bool = False

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    def answer(self) -> dict[str, Any]:
        body = {"authorizationId": self.auth_id, "status": self.status, "reason": self.reason}
        if self.status == "captured" and self.record.get("capturedAmount") is not None:
            body["capturedAmount"] = self.record["capturedAmount"]
        return body


EVENT_SUBJECTS = {
    "approved": topology.SUBJECT_CARD_AUTHORIZED,
    "declined": topology.SUBJECT_CARD_DECLINED,
    "captured": topology.SUBJECT_CARD_CAPTURED,
    "reversed": topology.SUBJECT_CARD_REVERSED,
    "expired": topology.SUBJECT_CARD_EXPIRED,
}


def card_event(result: CardResult) -> tuple[str, dict[str, Any], str] | None:
    """The event announcing a decision (subject, body, message id): never a PAN or CVV.
    None for a replayed answer, a refusal, or a reversal that preceded its authorisation."""
    subject = EVENT_SUBJECTS.get(result.status)
    if subject is None or result.replayed or not result.record.get("fingerprint"):
        return None
    r = result.record
    event = CardAuthorization(
        auth_id=result.auth_id,
        status=result.status,
        reason=result.reason,
        uid=r.get("ownerUid"),
        card_id=r.get("cardId"),
        account_id=r.get("accountId"),
        last4=r.get("last4"),
        # a decided authorisation's record always has the request's fields and its day
        amount=r["capturedAmount"] if result.status == "captured" else r["amount"],
        currency=r["currency"],
        merchant_name=r["merchantName"],
        mcc=r["mcc"],
        merchant_country=r["merchantCountry"],
        channel=r["channel"],
        day=r["spendDay"],  # the purchase's date in Norway (its booking date)
    )
    return subject, event.to_json(), f"{result.auth_id}:{result.status}"


class CardLedger:
    def __init__(self, db: firestore.AsyncClient, *, hold_days: int = rules.HOLD_DAYS) -> None:
        self.db = db
        self.hold_days = hold_days

    def _doc(self, collection: str, doc_id: str) -> AsyncDocumentReference:
        return self.db.collection(collection).document(doc_id)

    async def _get(self, tx: AsyncTransaction, refs: list[AsyncDocumentReference]) -> dict[str, dict[str, Any]]:
        found = {}
        async for snap in self.db.get_all(refs, transaction=tx):
            if snap.exists:
                found[snap.reference.path] = fields_of(snap)
        return found

    # ---- authorise ----------------------------------------------------------------------
    async def authorize(
        self, req: rules.AuthorizationRequest, card_id: str | None, *, cvv_ok: bool | None, now: dt.datetime
    ) -> CardResult:
        """Decide the request (fjordbank.domain.card_authorization) and write the decision
        with its hold, in one transaction."""
        attempt = decision.Attempt(
            request=req,
            auth_id=rules.authorization_id(req.reference),
            card_id=card_id,
            day=today_in_norway(now).isoformat(),
            now=now,
            cvv_ok=cvv_ok,
            hold_days=self.hold_days,
        )

        @async_transactional(operation="cards_authorize")
        async def run(tx: AsyncTransaction) -> CardResult:
            auth_ref = self._doc(CARD_AUTHORIZATIONS, attempt.auth_id)
            card_ref = self._doc(CARDS, card_id) if card_id else None
            spend_ref = self._doc(CARD_SPEND, f"{card_id}_{attempt.day}")
            got = await self._get(tx, [auth_ref, card_ref, spend_ref] if card_ref else [auth_ref])
            previous = got.get(auth_ref.path)
            if previous is not None:
                answer = decision.answer_again(attempt, previous)
                return CardResult(answer.status, answer.reason, attempt.auth_id, answer.record, answer.replayed)
            card = got.get(card_ref.path) if card_ref else None
            spend = got.get(spend_ref.path) or {}
            account, choice = None, None
            if card is not None and decision.check_card(attempt, card, spend) is None:
                account, choice = await self._account_and_choice(tx, card, req.merchant_name)
            decided = decision.authorize(attempt, card, spend, account)
            tx.set(auth_ref, decided.record)
            if decided.spend is not None:
                tx.set(spend_ref, decided.spend)
            if card_ref is not None and decided.card_update is not None:
                tx.update(card_ref, decided.card_update)
            if decided.book is not None:
                write_book(tx, self.db, decided.book)
                self._feed(tx, decided.record, "pending", -req.amount, choice)
            return CardResult(decided.status, decided.reason, attempt.auth_id, decided.record)

        return await run(self.db.transaction())

    async def _account_and_choice(
        self, tx: AsyncTransaction, card: dict[str, Any], merchant_name: str
    ) -> tuple[Account | None, dict[str, Any] | None]:
        """The card's account (None: gone) and its owner's category for the merchant."""
        account_ref = self._doc(ACCOUNTS, card["accountId"])
        choice_ref = self._choice_ref(card.get("ownerUid"), merchant_name)
        got = await self._get(tx, [account_ref, choice_ref])
        account = got.get(account_ref.path)
        return (account_from_doc(account) if account is not None else None), got.get(choice_ref.path)

    # ---- capture, reverse, expire -------------------------------------------------------
    async def capture(self, reference: str, *, capture_ref: str, amount: int | None, now: dt.datetime) -> CardResult:
        """Post the authorisation (all of it or less: a partial capture releases the rest)."""
        auth_id = rules.authorization_id(reference)

        @async_transactional(operation="cards_capture")
        async def run(tx: AsyncTransaction) -> CardResult:
            record, held = await self._load(tx, auth_id, with_scheme=True)
            if record is None:
                return CardResult("refused", "unknown_authorization", auth_id)
            if record["status"] == "captured":
                if record.get("captureRef") == capture_ref:
                    return CardResult("captured", None, auth_id, record, replayed=True)
                return CardResult("refused", "already_captured", auth_id, record)
            scheme = card_scheme_account(auth_id)
            late = held is not None and record["status"] == "expired" and held.hold.status == "released"
            active = held is not None and record["status"] == "approved" and held.hold.status == "active"
            if held is None or not (late or active):
                return CardResult("refused", f"authorization_{record['status']}", auth_id, record)
            hold, book = held.hold, held.book
            captured = amount if amount is not None else hold.amount
            try:
                if late:
                    # A late capture (hotels, car rental): the scheme settles it whatever our
                    # hold did, so it is posted from the available balance, and flagged.
                    book.apply(
                        Posting.transfer(auth_id, CAPTURE_STEP, hold.account_id, scheme, captured, hold.currency)
                    )
                else:
                    book.capture(auth_id, step=CAPTURE_STEP, credit=scheme, amount=amount)
            except Declined as exc:
                return CardResult("refused", exc.code, auth_id, record)
            record = {
                **record,
                "status": "captured",
                "capturedAmount": captured,
                "captureRef": capture_ref,
                "updatedAt": now,
            }
            if late:
                record["lateCapture"] = True
            tx.set(self._doc(CARD_AUTHORIZATIONS, auth_id), record)
            if not late and captured < hold.amount:
                self._unspend(tx, record, held.spend, hold.amount - captured)
            write_book(tx, self.db, book)
            self._feed(tx, record, "posted", -captured, held.choice)
            return CardResult("captured", None, auth_id, record)

        return await run(self.db.transaction())

    async def reverse(self, reference: str, *, now: dt.datetime, status: str = "reversed") -> CardResult:
        """Release the hold of an authorisation the processor cancels (or that expired).
        A reversal that arrives before its authorisation (a timed-out request) is recorded,
        so the late authorisation is answered "reversed" and holds nothing."""
        auth_id = rules.authorization_id(reference)
        return await self._release(auth_id, reference=reference, now=now, status=status)

    async def _release(self, auth_id: str, *, reference: str | None, now: dt.datetime, status: str) -> CardResult:
        @async_transactional(operation="cards_release")
        async def run(tx: AsyncTransaction) -> CardResult:
            record, held = await self._load(tx, auth_id, with_scheme=False)
            if record is None:
                record = {
                    "authId": auth_id,
                    "reference": reference,
                    "fingerprint": None,
                    "status": status,
                    "reason": "reversed_before_authorization",
                    "createdAt": now,
                    "updatedAt": now,
                }
                tx.set(self._doc(CARD_AUTHORIZATIONS, auth_id), record)
                return CardResult(status, record["reason"], auth_id, record)
            if record["status"] in ("reversed", "expired"):
                return CardResult(record["status"], record.get("reason"), auth_id, record, replayed=True)
            if record["status"] != "approved" or held is None or held.hold.status != "active":
                return CardResult("refused", f"authorization_{record['status']}", auth_id, record)
            held.book.release(auth_id)
            self._unspend(tx, record, held.spend, held.hold.amount)
            record = {**record, "status": status, "updatedAt": now}
            tx.set(self._doc(CARD_AUTHORIZATIONS, auth_id), record)
            write_book(tx, self.db, held.book)
            self._feed(tx, record, "cancelled", -held.hold.amount, held.choice)
            return CardResult(status, None, auth_id, record)

        return await run(self.db.transaction())

    async def expire(self, *, now: dt.datetime, limit: int = 500) -> list[CardResult]:
        """Release every card hold past its expiry (the scheduled job)."""
        query = (
            self.db.collection(HOLDS)
            .where(filter=FieldFilter("kind", "==", "card"))
            .where(filter=FieldFilter("status", "==", "active"))
            .where(filter=FieldFilter("expiresAt", "<=", now.isoformat()))
            .limit(limit)
        )
        results: list[CardResult] = []
        async for snap in query.stream():
            result = await self._release(snap.id, reference=None, now=now, status="expired")
            if result.status == "expired" and not result.replayed:
                results.append(result)
        return results

    # ---- helpers ------------------------------------------------------------------------
    async def _load(
        self, tx: AsyncTransaction, auth_id: str, *, with_scheme: bool
    ) -> tuple[dict[str, Any] | None, _Held | None]:
        """The authorisation record, and with its hold a Book over the account (and the
        card scheme's account for a capture)."""
        auth_ref = self._doc(CARD_AUTHORIZATIONS, auth_id)
        hold_ref = self._doc(HOLDS, auth_id)
        got = await self._get(tx, [auth_ref, hold_ref])
        record = got.get(auth_ref.path)
        hold = Hold.from_dict(got[hold_ref.path]) if hold_ref.path in got else None
        if record is None or hold is None:
            return record, None
        ids = [hold.account_id] + ([card_scheme_account(auth_id)] if with_scheme else [])
        refs = [self._doc(ACCOUNTS, a) for a in ids]
        spend_ref = self._doc(CARD_SPEND, f"{record.get('cardId')}_{record.get('spendDay')}")
        choice_ref = self._choice_ref(record.get("ownerUid"), record.get("merchantName"))
        got = await self._get(tx, [*refs, spend_ref, choice_ref])
        accounts = {
            a: account_from_doc(got[self._doc(ACCOUNTS, a).path]) for a in ids if self._doc(ACCOUNTS, a).path in got
        }
        book = Book(accounts, holds={auth_id: hold})
        return record, _Held(hold, book, got.get(spend_ref.path), got.get(choice_ref.path))

    def _choice_ref(self, owner_uid: str | None, merchant_name: str | None) -> AsyncDocumentReference:
        """The customer's own category for the merchant (read in the same transaction)."""
        key = override_key(kind="card", merchant_name=merchant_name, counterparty_account=None)
        return user_doc(self.db, owner_uid or "-", CATEGORY_OVERRIDES, key)

    def _unspend(
        self, tx: AsyncTransaction, record: dict[str, Any], spend_doc: dict[str, Any] | None, amount: int
    ) -> None:
        """Give back ``amount`` of the day's spend (a reversal, expiry or smaller capture)."""
        if spend_doc is None:
            return
        spend = rules.Spend.from_dict(spend_doc)
        spend.count(
            amount,
            channel=record.get("channel", "pos"),
            merchant_country=record.get("merchantCountry", rules.HOME_COUNTRY),
            sign=-1,
        )
        ref = self._doc(CARD_SPEND, f"{record.get('cardId')}_{record.get('spendDay')}")
        tx.set(ref, {**spend_doc, **spend.to_dict()})

    def _feed(
        self, tx: AsyncTransaction, record: dict[str, Any], status: str, amount: int, choice: dict[str, Any] | None
    ) -> None:
        entry = decision.feed_entry(record, status, amount, choice)
        if entry is None:
            return
        ref = self._doc(ACCOUNTS, record["accountId"]).collection(TRANSACTIONS).document(record["authId"])
        tx.set(ref, {**entry, "updatedAt": firestore.SERVER_TIMESTAMP})


@dataclass(frozen=True)
class _Held:
    """What a capture or release reads beside the authorisation record, when it holds funds."""

    hold: Hold
    book: Book  # over the hold's account (and the card scheme's, for a capture)
    spend: dict[str, Any] | None  # the card's spend of the authorisation's day
    choice: dict[str, Any] | None  # the customer's category for the merchant
