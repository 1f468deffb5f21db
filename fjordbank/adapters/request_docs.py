"""Writes of backend state onto the app's request documents (one rule: only forward)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.api_core import exceptions as api_errors
from google.cloud import firestore

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CATEGORY_OVERRIDES,
    CUSTOMERS,
    PAYMENT_VIEWS,
    TRANSACTIONS,
    async_transactional,
    request_path,
    user_doc,
)
from fjordbank.adapters.owners import Owners
from fjordbank.domain.notifications import Push, payment_pushes, transaction_entries
from fjordbank.domain.payments import STATUS_RANK, PaymentEvent, projection_update

# The first state with a feed entry: "reserved" for a payment to another bank; an internal
# payment's first entry is "completed" (or "failed"), both later.
FIRST_ENTRY_RANK = STATUS_RANK["reserved"]


def _stamp(update: dict) -> dict:
    return {
        **update,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        f"timeline.{update['status']}": firestore.SERVER_TIMESTAMP,
    }


@dataclass(frozen=True)
class Projected:
    event: PaymentEvent
    changed: bool  # the request document moved to this state now (first time)


class RequestProjector:
    """Projects a batch of payment events in one transaction (the notifier's work):
    the request documents, the accounts' transaction lists, and the pushes to queue."""

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
        events = [e for e in events if STATUS_RANK.get(e.status, 0) >= FIRST_ENTRY_RANK]
        refs = [user_doc(db, e.payment.uid, CATEGORY_OVERRIDES, f"a:{e.payment.to_account}") for e in events]
        received = [e for e in events if owners.get(e.payment.to_account) and e.status == "completed"]
        refs += [
            user_doc(db, owners[e.payment.to_account], CATEGORY_OVERRIDES, f"a:{e.payment.from_account}")
            for e in received
        ]
        refs += [db.collection(CUSTOMERS).document(e.payment.uid) for e in received]
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

        @async_transactional(operation="notifier_project")
        async def run(tx) -> list[Projected]:
            # only documents of this partition's payments in the transaction: views, requests
            views = {e.payment.payment_id: db.collection(PAYMENT_VIEWS).document(e.payment.payment_id) for e in events}
            request_refs = [db.document(request_path(e.payment.uid, e.payment.request_id)) for e in events]
            shown: dict[str, dict] = {}
            existing_requests: set[str] = set()
            async for snap in db.get_all([*views.values(), *request_refs], transaction=tx):
                if snap.reference.parent.id == PAYMENT_VIEWS:
                    shown[snap.id] = snap.to_dict() if snap.exists else {}
                elif snap.exists:
                    existing_requests.add(snap.reference.path)
            # the state each payment showed before this batch: its feed entries are booked
            # (``bookedAt``, what the app pages the feed by) when they first appear
            shown_before = {pid: (view or {}).get("statusRank", -1) for pid, view in shown.items()}
            requests: dict[str, dict] = {}
            entries: dict[tuple[str, str], dict] = {}
            pushes: list[Push] = []
            results: list[Projected] = []
            for event in events:
                p = event.payment
                update = projection_update(
                    shown[p.payment_id],
                    event.status,
                    reason=event.reason,
                    message=event.message,
                    extra={"paymentId": p.payment_id},
                )
                results.append(Projected(event, update is not None))
                if update is None:
                    continue
                shown[p.payment_id] = {**shown[p.payment_id], **update}
                path = request_path(p.uid, p.request_id)
                if path in existing_requests:  # never create one: that is the app's (and fires the edge)
                    request = requests.setdefault(path, {})
                    request.update(update)
                    request[f"timeline.{event.status}"] = firestore.SERVER_TIMESTAMP
                payee = owners.get(p.to_account) if p.kind == "internal" else None
                entries_now = transaction_entries(
                    event, payee_uid=payee, overrides=overrides, payer_name=payer_names.get(p.uid)
                )
                for account, entry in entries_now.items():
                    if shown_before[p.payment_id] < FIRST_ENTRY_RANK:
                        entry["bookedAt"] = firestore.SERVER_TIMESTAMP
                    entries[(account, p.payment_id)] = entry
                pushes += payment_pushes(event, payee_uid=payee)
            if pushes:  # queued before the commit: the push function delivers each key once
                await self.queue_pushes(pushes)
            for pid in {r.event.payment.payment_id for r in results if r.changed}:
                tx.set(views[pid], {"status": shown[pid]["status"], "statusRank": shown[pid]["statusRank"]})
            for path, fields in requests.items():
                tx.update(db.document(path), {**fields, "updatedAt": firestore.SERVER_TIMESTAMP})
            for (account, payment_id), entry in entries.items():
                ref = db.collection(ACCOUNTS).document(account).collection(TRANSACTIONS).document(payment_id)
                tx.set(ref, {**entry, "updatedAt": firestore.SERVER_TIMESTAMP}, merge=True)
            return results

        return await run(db.transaction())


def advance_sync(db: firestore.Client, uid: str, request_id: str, status: str, **kwargs) -> bool:
    """Move one request document forward (the edge's writes; Firebase functions are sync)."""
    ref = db.document(request_path(uid, request_id))

    @firestore.transactional
    def run(tx) -> bool:
        snap = ref.get(transaction=tx)
        update = projection_update(snap.to_dict() if snap.exists else None, status, **kwargs)
        if update is None:
            return False
        tx.update(ref, _stamp(update))
        return True

    return run(db.transaction())


def advance_from_sync(db: firestore.Client, snapshot, status: str, **kwargs) -> bool:
    """``advance_sync`` in one round trip when nothing moved the document since
    ``snapshot`` was read (the edge's batched read): the update carries the snapshot's
    update time as its precondition. If something did move it (the notifier projecting a
    later state, a cancel), the write fails and the transaction decides afresh."""
    current = snapshot.to_dict() if snapshot.exists else None
    update = projection_update(current, status, **kwargs)
    if update is None:
        return False
    if snapshot.exists:
        try:
            snapshot.reference.update(_stamp(update), option=db.write_option(last_update_time=snapshot.update_time))
            return True
        except (api_errors.FailedPrecondition, api_errors.NotFound):
            pass
    uid, request_id = snapshot.reference.parent.parent.id, snapshot.reference.id
    return advance_sync(db, uid, request_id, status, **kwargs)
