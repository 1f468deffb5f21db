"""Writes of backend state onto the app's request documents (one rule: only forward)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CATEGORY_OVERRIDES,
    CUSTOMERS,
    PAYMENT_VIEWS,
    TRANSACTIONS,
    async_transactional,
    fields_of,
    request_path,
    user_doc,
)
from fjordbank.adapters.owners import Owners
from fjordbank.domain import feed
from fjordbank.domain.notifications import Push
from fjordbank.domain.payments import PaymentEvent


@dataclass(frozen=True)
class Projected:
    event: PaymentEvent
    changed: bool  # the request document moved to this state now (first time)


class RequestProjector:
    """Projects a batch of payment events in one transaction (the notifier's work):
    the request documents, the accounts' transaction lists, and the pushes to queue. What
    is written is decided by `fjordbank.domain.feed.project`; here, it is read and written."""

    def __init__(self, db: firestore.AsyncClient, queue_pushes: Callable[[list[Push]], Awaitable[None]]) -> None:
        self.db = db
        self.queue_pushes = queue_pushes
        self.owners = Owners(db)  # the payees' owners (fjordbank.adapters.owners)

    async def labels(
        self, events: list[PaymentEvent], owners: dict[str, str | None]
    ) -> tuple[dict[tuple[str, str], str], dict[str, str | None]]:
        """What the feed entries are labelled with, read in one call outside the transaction:
        the payers' own categories for their payees, the payees' for their payers, and the
        payers' names. Read inside, the same override documents were locked by two
        partitions' projections in opposite order whenever two customers paid each other
        (each payer's choice, then the other's as payee): a deadlock the emulator broke only
        by timing both out, again and again (up to a minute for the pair)."""
        db = self.db
        # only states that write a feed entry are labelled (the others need no read)
        events = [e for e in events if feed.has_entry(e)]
        refs = [user_doc(db, e.payment.uid, CATEGORY_OVERRIDES, f"a:{e.payment.to_account}") for e in events]
        received = [
            (payee, e) for e in events if (payee := owners.get(e.payment.to_account)) and e.status == "completed"
        ]
        refs += [user_doc(db, payee, CATEGORY_OVERRIDES, f"a:{e.payment.from_account}") for payee, e in received]
        refs += [db.collection(CUSTOMERS).document(e.payment.uid) for _, e in received]
        overrides: dict[tuple[str, str], str] = {}
        payer_names: dict[str, str | None] = {}
        async for snap in db.get_all(list({r.path: r for r in refs}.values())):
            data = (snap.to_dict() or {}) if snap.exists else {}
            if snap.reference.parent.id == CUSTOMERS:
                payer_names[snap.id] = data.get("name")
            elif data.get("category"):
                overrides[(snap.reference.parent.parent.id, snap.id)] = data["category"]
        return overrides, payer_names

    async def project_batch(self, events: list[PaymentEvent]) -> list[Projected]:
        """``paymentViews/{paymentId}`` remembers the state shown for each payment, so
        every state is projected once and never backwards, whether or not the app made a
        request document (payments the bank starts itself have none; then only the feed
        and the pushes show it)."""
        db = self.db
        owners = await self.owners.of(sorted({e.payment.to_account for e in events if e.payment.kind == "internal"}))
        overrides, payer_names = await self.labels(events, owners)
        labels = feed.Labels(owners, overrides, payer_names)

        @async_transactional(operation="notifier_project")
        async def run(tx: AsyncTransaction) -> list[Projected]:
            views, requests = await self._read(tx, events)
            projection = feed.project(events, views=views, requests=requests, labels=labels)
            if projection.pushes:  # queued before the commit: the push function delivers each key once
                await self.queue_pushes(projection.pushes)
            self._write(tx, projection)
            return [Projected(e, changed) for e, changed in zip(events, projection.changed, strict=True)]

        return await run(db.transaction())

    async def _read(
        self, tx: AsyncTransaction, events: list[PaymentEvent]
    ) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
        """The state each payment shows, and which of their request documents exist: only
        documents of this partition's payments in the transaction (views, requests)."""
        db = self.db
        views = {e.payment.payment_id: db.collection(PAYMENT_VIEWS).document(e.payment.payment_id) for e in events}
        request_refs = [db.document(request_path(e.payment.uid, e.payment.request_id)) for e in events]
        requests = {
            request_path(e.payment.uid, e.payment.request_id): (e.payment.uid, e.payment.request_id) for e in events
        }
        shown: dict[str, dict[str, Any]] = {}
        existing: set[tuple[str, str]] = set()
        async for snap in db.get_all([*views.values(), *request_refs], transaction=tx):
            if snap.reference.parent.id == PAYMENT_VIEWS:
                shown[snap.id] = fields_of(snap)
            elif snap.exists:
                existing.add(requests[snap.reference.path])
        return shown, existing

    def _write(self, tx: AsyncTransaction, projection: feed.Projection) -> None:
        db = self.db
        now = firestore.SERVER_TIMESTAMP
        for pid, view in projection.views.items():
            tx.set(db.collection(PAYMENT_VIEWS).document(pid), view)
        for (uid, request_id), request in projection.requests.items():
            timeline = {f"timeline.{status}": now for status in request.timeline}
            tx.update(db.document(request_path(uid, request_id)), {**request.fields, **timeline, "updatedAt": now})
        for (account, payment_id), entry in projection.entries.items():
            ref = db.collection(ACCOUNTS).document(account).collection(TRANSACTIONS).document(payment_id)
            booked = {"bookedAt": now} if entry.booked else {}
            tx.set(ref, {**entry.fields, **booked, "updatedAt": now}, merge=True)
