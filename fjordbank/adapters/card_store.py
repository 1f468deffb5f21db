"""Card authorisations in the Firestore ledger: decide, hold, capture, reverse, expire.

Each operation is one Firestore transaction that reads the authorisation record, the card,
the account(s), the hold and the card's spend of the day, decides with
`fjordbank.domain.cards` and `fjordbank.domain.ledger.Book`, and writes everything it
changes together, so a decision and its hold can never be apart:

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

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank import topology
from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CARDS,
    CATEGORY_OVERRIDES,
    HOLDS,
    TRANSACTIONS,
    async_transactional,
    user_doc,
)
from fjordbank.adapters.ledger_store import account_from_doc, write_book
from fjordbank.domain import cards as rules
from fjordbank.domain.categories import categorise, override_key
from fjordbank.domain.ledger import Book, Declined, Hold, Posting, card_scheme_account
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
    record: dict = field(default_factory=dict)  # the authorisation record (no PAN)
    replayed: bool = False

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    def answer(self) -> dict:
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


def card_event(result: CardResult) -> tuple[str, dict, str] | None:
    """The event announcing a decision (subject, body, message id): never a PAN or CVV.
    None for a replayed answer, a refusal, or a reversal that preceded its authorisation."""
    subject = EVENT_SUBJECTS.get(result.status)
    if subject is None or result.replayed or not result.record.get("fingerprint"):
        return None
    r = result.record
    body = {
        "v": 1,
        "authId": result.auth_id,
        "status": result.status,
        "reason": result.reason,
        "uid": r.get("ownerUid"),
        "cardId": r.get("cardId"),
        "accountId": r.get("accountId"),
        "last4": r.get("last4"),
        "amount": r.get("capturedAmount") if result.status == "captured" else r.get("amount"),
        "currency": r.get("currency"),
        "merchantName": r.get("merchantName"),
        "mcc": r.get("mcc"),
        "merchantCountry": r.get("merchantCountry"),
        "channel": r.get("channel"),
        "day": r.get("spendDay"),  # the purchase's date in Norway (its booking date)
    }
    return subject, body, f"{result.auth_id}:{result.status}"


class CardLedger:
    def __init__(self, db: firestore.AsyncClient, *, hold_days: int = rules.HOLD_DAYS) -> None:
        self.db = db
        self.hold_days = hold_days

    def _doc(self, collection: str, doc_id: str):
        return self.db.collection(collection).document(doc_id)

    async def _get(self, tx, refs) -> dict[str, dict]:
        found = {}
        async for snap in self.db.get_all(refs, transaction=tx):
            if snap.exists:
                found[snap.reference.path] = snap.to_dict()
        return found

    # ---- authorise ----------------------------------------------------------------------
    async def authorize(
        self, req: rules.AuthorizationRequest, card_id: str | None, *, cvv_ok: bool | None, now: dt.datetime
    ) -> CardResult:
        auth_id = rules.authorization_id(req.reference)
        fingerprint = req.fingerprint(card_id)
        day = today_in_norway(now).isoformat()

        spend_ref = self._doc(CARD_SPEND, f"{card_id}_{day}")

        @async_transactional(operation="cards_authorize")
        async def run(tx) -> CardResult:
            auth_ref = self._doc(CARD_AUTHORIZATIONS, auth_id)
            refs = [auth_ref]
            if card_id:
                refs += [self._doc(CARDS, card_id), spend_ref]
            got = await self._get(tx, refs)
            previous = got.get(auth_ref.path)
            if previous is not None:
                if previous.get("fingerprint") is None:  # the processor reversed it before it arrived
                    return CardResult("declined", "reversed_before_authorization", auth_id, previous, replayed=True)
                if previous.get("fingerprint") == fingerprint:
                    # the same request again gets the same decision, whatever happened to
                    # the authorisation since (captured, reversed, expired)
                    decision = "declined" if previous["status"] == "declined" else "approved"
                    return CardResult(decision, previous.get("reason"), auth_id, previous, replayed=True)
                return CardResult("declined", "duplicate_reference", auth_id)  # not stored: the reference is taken
            card_doc = got.get(self._doc(CARDS, card_id).path) if card_id else None
            record = {
                "authId": auth_id,
                "fingerprint": fingerprint,
                **req.public(),
                "cardId": card_id,
                "ownerUid": (card_doc or {}).get("ownerUid"),
                "accountId": (card_doc or {}).get("accountId"),
                "last4": (card_doc or {}).get("last4"),
                "spendDay": day,
                "createdAt": now,
                "updatedAt": now,
            }
            reason = "unknown_card" if card_doc is None else None
            choice = None
            spend_doc = got.get(spend_ref.path) or {}
            spend = rules.Spend.from_dict(spend_doc)
            book = None
            if reason is None:
                reason = rules.decide(rules.CardState.from_doc(card_doc), req, spend, today=now.date(), cvv_ok=cvv_ok)
            if reason is None:
                account_ref = self._doc(ACCOUNTS, card_doc["accountId"])
                choice_ref = self._choice_ref(record)
                got_more = await self._get(tx, [account_ref, choice_ref])
                account_doc = got_more.get(account_ref.path)
                choice = got_more.get(choice_ref.path)
                if account_doc is None:
                    reason = "account_closed"
                else:
                    book = Book({account_doc["accountId"]: account_from_doc(account_doc)}, holds={})
                    try:
                        book.hold(
                            hold_id=auth_id,
                            payer_uid=card_doc["ownerUid"],
                            account_id=card_doc["accountId"],
                            amount=req.amount,
                            currency=req.currency,
                            expires_at=(now + dt.timedelta(days=self.hold_days)).isoformat(),
                            kind="card",
                        )
                    except Declined as exc:
                        reason, book = exc.code, None
            status = "declined" if reason else "approved"
            record.update(status=status, reason=reason)
            tx.set(auth_ref, record)
            if reason in rules.CHECK_FAILURES:
                # Guessing an expiry or CVV takes many tries: count them per card and day,
                # and freeze the card at the limit (the customer unfreezes it in the app).
                failed = int(spend_doc.get("failedChecks", 0)) + 1
                tx.set(spend_ref, {**spend_doc, "cardId": card_id, "day": day, "failedChecks": failed})
                if failed >= rules.MAX_FAILED_CHECKS:
                    tx.update(
                        self._doc(CARDS, card_id),
                        {"status": rules.FROZEN, "frozenReason": "too_many_failed_checks", "updatedAt": now},
                    )
            if book is not None:
                spend.add(req)
                tx.set(spend_ref, {**spend_doc, **spend.to_dict(), "cardId": card_id, "day": day})
                write_book(tx, self.db, book)
                self._feed(tx, record, "pending", -req.amount, choice)
            return CardResult(status, reason, auth_id, record)

        return await run(self.db.transaction())

    # ---- capture, reverse, expire -------------------------------------------------------
    async def capture(self, reference: str, *, capture_ref: str, amount: int | None, now: dt.datetime) -> CardResult:
        """Post the authorisation (all of it or less: a partial capture releases the rest)."""
        auth_id = rules.authorization_id(reference)

        @async_transactional(operation="cards_capture")
        async def run(tx) -> CardResult:
            record, hold, book, spend_doc, choice = await self._load(tx, auth_id, with_scheme=True)
            if record is None:
                return CardResult("refused", "unknown_authorization", auth_id)
            if record["status"] == "captured":
                if record.get("captureRef") == capture_ref:
                    return CardResult("captured", None, auth_id, record, replayed=True)
                return CardResult("refused", "already_captured", auth_id, record)
            scheme = card_scheme_account(auth_id)
            late = record["status"] == "expired" and hold is not None and hold.status == "released"
            if not late and (record["status"] != "approved" or hold is None or hold.status != "active"):
                return CardResult("refused", f"authorization_{record['status']}", auth_id, record)
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
                self._unspend(tx, record, spend_doc, hold.amount - captured)
            write_book(tx, self.db, book)
            self._feed(tx, record, "posted", -captured, choice)
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
        async def run(tx) -> CardResult:
            record, hold, book, spend_doc, choice = await self._load(tx, auth_id, with_scheme=False)
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
            if record["status"] != "approved" or hold is None or hold.status != "active":
                return CardResult("refused", f"authorization_{record['status']}", auth_id, record)
            book.release(auth_id)
            self._unspend(tx, record, spend_doc, hold.amount)
            record = {**record, "status": status, "updatedAt": now}
            tx.set(self._doc(CARD_AUTHORIZATIONS, auth_id), record)
            write_book(tx, self.db, book)
            self._feed(tx, record, "cancelled", -hold.amount, choice)
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
        results = []
        async for snap in query.stream():
            result = await self._release(snap.id, reference=None, now=now, status="expired")
            if result.status == "expired" and not result.replayed:
                results.append(result)
        return results

    # ---- helpers ------------------------------------------------------------------------
    async def _load(self, tx, auth_id: str, *, with_scheme: bool):
        """The authorisation record, its hold and a Book over the account (and the card
        scheme's account for a capture)."""
        auth_ref = self._doc(CARD_AUTHORIZATIONS, auth_id)
        hold_ref = self._doc(HOLDS, auth_id)
        got = await self._get(tx, [auth_ref, hold_ref])
        record = got.get(auth_ref.path)
        hold = Hold.from_dict(got[hold_ref.path]) if hold_ref.path in got else None
        if record is None or hold is None:
            return record, hold, None, None, None
        ids = [hold.account_id] + ([card_scheme_account(auth_id)] if with_scheme else [])
        refs = [self._doc(ACCOUNTS, a) for a in ids]
        spend_ref = self._doc(CARD_SPEND, f"{record.get('cardId')}_{record.get('spendDay')}")
        choice_ref = self._choice_ref(record)
        got = await self._get(tx, [*refs, spend_ref, choice_ref])
        accounts = {
            a: account_from_doc(got[self._doc(ACCOUNTS, a).path]) for a in ids if self._doc(ACCOUNTS, a).path in got
        }
        book = Book(accounts, holds={auth_id: hold})
        return record, hold, book, got.get(spend_ref.path), got.get(choice_ref.path)

    def _choice_ref(self, record: dict):
        """The customer's own category for the merchant (read in the same transaction)."""
        key = override_key(kind="card", merchant_name=record.get("merchantName"), counterparty_account=None)
        return user_doc(self.db, record.get("ownerUid") or "-", CATEGORY_OVERRIDES, key)

    def _unspend(self, tx, record: dict, spend_doc: dict | None, amount: int) -> None:
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

    def _feed(self, tx, record: dict, status: str, amount: int, choice: dict | None) -> None:
        if not record.get("accountId"):
            return
        key = override_key(kind="card", merchant_name=record.get("merchantName"), counterparty_account=None)
        overrides = {key: choice["category"]} if choice and choice.get("category") else None
        tx.set(
            self.db.collection(ACCOUNTS)
            .document(record["accountId"])
            .collection(TRANSACTIONS)
            .document(record["authId"]),
            {
                "authorizationId": record["authId"],
                "kind": "card",
                "amount": amount,
                "currency": record.get("currency", "NOK"),
                "direction": "out",
                "status": status,
                "merchantName": record.get("merchantName"),
                "mcc": record.get("mcc"),
                "merchantCountry": record.get("merchantCountry"),
                "category": categorise(
                    direction="out",
                    kind="card",
                    mcc=record.get("mcc"),
                    merchant_name=record.get("merchantName"),
                    overrides=overrides,
                ),
                "merchantKey": key,
                "date": record.get("spendDay"),
                "bookedAt": record.get("createdAt"),
                "cardId": record.get("cardId"),
                "cardLast4": record.get("last4"),
                "createdAt": record.get("createdAt"),
                "updatedAt": firestore.SERVER_TIMESTAMP,
            },
        )
