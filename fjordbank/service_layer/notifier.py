"""The notifier's use case: project a batch of payment events onto what the app listens to.

One unit of work per batch (operation ``notifier_project``) reads the state each payment
shows (``paymentViews/{paymentId}``) and which of the app's request documents exist,
`fjordbank.domain.feed.project` decides, and the unit writes the views, the request
documents, the accounts' feed entries (``accounts/{id}/transactions/{paymentId}``), and
queues the pushes. The rules (forward only, a redelivery writes nothing new and pushes
nothing twice) are the domain's; here the documents are read and written.

Round trips per batch, as the bench counts them (bench/docops.py): the payees' owners not
seen before (`fjordbank.service_layer.owners`) and the labels, both outside the unit of
work, then the unit of work's begin, its one read and its commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fjordbank.adapters.firestore import (
    ACCOUNTS,
    CATEGORY_OVERRIDES,
    CUSTOMERS,
    PAYMENT_VIEWS,
    TRANSACTIONS,
    USERS,
    request_path,
)
from fjordbank.domain import feed
from fjordbank.domain.notifications import Push
from fjordbank.domain.payments import INTERNAL, PaymentEvent
from fjordbank.service_layer.owners import Owners
from fjordbank.service_layer.ports import SERVER_TIME, AsyncDocuments, AsyncUnitOfWork, Doc

OPERATION = "notifier_project"  # the unit of work's name in the attempt metrics

# Queues pushes for delivery (the push function sends each dedupe key once). Called inside
# the unit of work, before its commit: a push queued by an attempt that then lost is queued
# again by the next one and delivered once.
QueuePushes = Callable[[list[Push]], Awaitable[None]]


@dataclass(frozen=True)
class Projected:
    event: PaymentEvent
    changed: bool  # the payment moved to this state now (first time)


def view_path(payment_id: str) -> str:
    return f"{PAYMENT_VIEWS}/{payment_id}"


def entry_path(account: str, payment_id: str) -> str:
    return f"{ACCOUNTS}/{account}/{TRANSACTIONS}/{payment_id}"


def override_path(uid: str, key: str) -> str:
    return f"{USERS}/{uid}/{CATEGORY_OVERRIDES}/{key}"


async def project_batch(
    docs: AsyncDocuments, owners: Owners, queue_pushes: QueuePushes, events: list[PaymentEvent]
) -> list[Projected]:
    """Project ``events`` in order: one `Projected` per event. ``paymentViews`` remembers
    the state shown for each payment, so every state is projected once and never
    backwards, whether or not the app made a request document (payments the bank starts
    itself have none; then only the feed and the pushes show it)."""
    payees = await owners.of(sorted({e.payment.to_account for e in events if e.payment.kind == INTERNAL}))
    labels = await read_labels(docs, events, payees)

    async def run(uow: AsyncUnitOfWork) -> list[Projected]:
        views, requests = await _read(uow, events)
        projection = feed.project(events, views=views, requests=requests, labels=labels)
        if projection.pushes:
            await queue_pushes(projection.pushes)
        _write(uow, projection)
        return [Projected(e, changed) for e, changed in zip(events, projection.changed, strict=True)]

    return await docs.transact(run, operation="notifier_project")


async def read_labels(
    docs: AsyncDocuments, events: list[PaymentEvent], owners: Mapping[str, str | None]
) -> feed.Labels:
    """What the feed entries are labelled with, read in one call outside the unit of work:
    the payers' own categories for their payees, the payees' for their payers, and the
    payers' names. Read inside, the same override documents were locked by two
    partitions' projections in opposite order whenever two customers paid each other
    (each payer's choice, then the other's as payee): a deadlock the emulator broke only
    by timing both out, again and again (up to a minute for the pair)."""
    overrides, names = _label_paths(events, owners)
    found = await docs.get_many(list({**overrides, **names}))
    return feed.Labels(owners, _overrides(found, overrides), _payer_names(found, names))


def _label_paths(
    events: list[PaymentEvent], owners: Mapping[str, str | None]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The override documents to read (path -> (uid, key)) and the payers' customer
    documents (path -> uid). Only states that write a feed entry are labelled."""
    entries = [e for e in events if feed.has_entry(e)]
    received = [(payee, e) for e in entries if (payee := owners.get(e.payment.to_account)) and e.status == "completed"]
    chosen = [(e.payment.uid, f"a:{e.payment.to_account}") for e in entries]  # the payer's, for the payee
    chosen += [(payee, f"a:{e.payment.from_account}") for payee, e in received]  # the payee's, for the payer
    overrides = {override_path(uid, key): (uid, key) for uid, key in chosen}
    names = {f"{CUSTOMERS}/{e.payment.uid}": e.payment.uid for _, e in received}
    return overrides, names


def _overrides(found: Mapping[str, Doc | None], paths: Mapping[str, tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(uid, key) -> the customer's own category, where one is chosen."""
    chosen: dict[tuple[str, str], str] = {}
    for path, uid_key in paths.items():
        doc = found.get(path)
        if doc is not None and doc.data.get("category"):
            chosen[uid_key] = doc.data["category"]
    return chosen


def _payer_names(found: Mapping[str, Doc | None], paths: Mapping[str, str]) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for path, uid in paths.items():
        doc = found.get(path)
        names[uid] = doc.data.get("name") if doc is not None else None
    return names


async def _read(
    uow: AsyncUnitOfWork, events: list[PaymentEvent]
) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """The state each payment shows, and which of their request documents exist: only
    documents of this partition's payments, in one read of the unit of work."""
    views = {view_path(e.payment.payment_id): e.payment.payment_id for e in events}
    requests = {
        request_path(e.payment.uid, e.payment.request_id): (e.payment.uid, e.payment.request_id) for e in events
    }
    found = await uow.get_many([*views, *requests])
    shown = {pid: (doc.data if (doc := found.get(path)) is not None else {}) for path, pid in views.items()}
    existing = {key for path, key in requests.items() if found.get(path) is not None}
    return shown, existing


def _write(uow: AsyncUnitOfWork, projection: feed.Projection) -> None:
    """The views, request documents and feed entries the projection changed, each stamped
    with the commit's time."""
    for pid, view in projection.views.items():
        uow.set(view_path(pid), view)
    for (uid, request_id), request in projection.requests.items():
        timeline = {f"timeline.{status}": SERVER_TIME for status in request.timeline}
        uow.update(request_path(uid, request_id), {**request.fields, **timeline, "updatedAt": SERVER_TIME})
    for (account, payment_id), entry in projection.entries.items():
        booked = {"bookedAt": SERVER_TIME} if entry.booked else {}
        uow.set(entry_path(account, payment_id), {**entry.fields, **booked, "updatedAt": SERVER_TIME}, merge=True)
