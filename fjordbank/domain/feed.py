"""The notifier's projection of payment events, free of I/O: the state each payment shows,
the app's request documents, the accounts' feed entries and the pushes.

The notifier projects a batch of events in one transaction (fjordbank.service_layer.notifier):
it reads the state each payment shows, `project` decides, and the commit writes. A payment
the app asked for keeps the notifier's record on the app's request document: ``PROJECTED``,
the last state the notifier projected (the document's ``status`` is the app's to read, and
the edge and the scheduler write it too). Only a payment the bank started itself (no
request document) keeps a view of its own, ``paymentViews/{paymentId}``. The rules:

* a payment moves only forward (`fjordbank.domain.payments.projection_update`): an event
  of a state shown already, or of an earlier one, writes nothing, whether it is redelivered
  or arrives after a later one; in a batch the events apply in order, each against the
  state the ones before it left;
* a request document is updated only when the app made one (payments the bank starts itself
  have none: the feed and the pushes show them), and never created: that is the app's; its
  ``status`` only ever moves forward: a state the document shows already or passed (the
  scheduler failed a payment it could not pay, and the notifier then tells the customer)
  leaves its status and timeline as they are;
* a payment's feed entries (`fjordbank.domain.notifications.transaction_entries`) are booked
  (stamped ``bookedAt``, what the app pages its feed by) when they first appear: from the
  first state with an entry (`FIRST_ENTRY_RANK`), judged by what the payment showed before
  the batch; after that an entry is written again only when the status it shows changes
  (an external payment's reserved, submitted and settled all show "pending": written once);
* the pushes are those of the states reached (`fjordbank.domain.notifications.payment_pushes`);
* the states nobody consumes because the next service answers them at once
  (`fjordbank.domain.payments.UNSHOWN`: approved, reserved, settled, returned) reach the
  timeline with the state after them, at the time they were published.

Timestamps are the writer's: the projection says which fields get one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain.notifications import ENTRY_STATUS, Push, payment_pushes, transaction_entries
from fjordbank.domain.payments import STATUS_RANK, WAITING, PaymentEvent, passed_at, projection_update

# The first state with a feed entry: "reserved" for a payment to another bank (reaching the
# notifier with "submitted": fjordbank.domain.payments.UNSHOWN); an internal payment's first
# entry is "completed" (or "failed"), both later.
FIRST_ENTRY_RANK = STATUS_RANK["reserved"]
NOT_SHOWN = -1  # the rank of a payment that shows no state yet
PROJECTED = "projectedStatus"  # on a request document: the state the notifier last projected
STATUS_FIELDS = frozenset({"status", "statusRank", "reason"})
ENTRY_STATE_FIELDS = frozenset({"status", "reason"})  # what a later state changes on a feed entry


def books_entry(event: PaymentEvent, shown_before: str | None) -> bool:
    """Whether ``event`` makes its payment's feed entries appear, the payment having shown
    ``shown_before`` (the notifier's record) before its batch: only those are labelled."""
    return has_entry(event) and STATUS_RANK.get(shown_before or "", NOT_SHOWN) < FIRST_ENTRY_RANK


def has_entry(event: PaymentEvent) -> bool:
    """Whether the event's state writes a feed entry (only those are labelled)."""
    return STATUS_RANK.get(event.status, 0) >= FIRST_ENTRY_RANK


@dataclass(frozen=True)
class Labels:
    """What the feed entries are labelled with (read before the transaction)."""

    owners: Mapping[str, str | None] = field(default_factory=dict)  # account -> its owner's uid
    overrides: dict[tuple[str, str], str] = field(default_factory=dict)  # (uid, key) -> own category
    payer_names: Mapping[str, str | None] = field(default_factory=dict)  # payer's uid -> name


@dataclass
class RequestUpdate:
    """The fields to update on one request document, and the states its timeline reached
    (each stamped with the time of the commit: ``timeline.<status>``), and those it passed
    unshown on the way, with the time their producer stamped (``passed``)."""

    fields: dict[str, Any] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    rank: int = NOT_SHOWN  # the rank of the status the document shows after the update
    passed: dict[str, dt.datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedEntry:
    fields: dict[str, Any]  # the entry (merged into the account's transaction document)
    booked: bool  # appears now for the first time: stamp ``bookedAt``


@dataclass
class Projection:
    """What a batch writes."""

    changed: list[bool] = field(default_factory=list)  # per event: it moved its payment now
    shown: dict[str, dict[str, Any]] = field(default_factory=dict)  # paymentId -> the state it shows now (moved)
    # paymentId -> the state it shows now, for payments without a request document (those
    # with one show it there: ``requests``)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[tuple[str, str], RequestUpdate] = field(default_factory=dict)  # (uid, requestId) ->
    entries: dict[tuple[str, str], FeedEntry] = field(default_factory=dict)  # (account, paymentId) -> latest
    pushes: list[Push] = field(default_factory=list)


def project(
    events: list[PaymentEvent],
    *,
    views: Mapping[str, Mapping[str, Any]],
    requests: Mapping[tuple[str, str], int],
    labels: Labels,
) -> Projection:
    """Project ``events`` in order. ``views``: paymentId -> the state the notifier projected
    before the batch (``{"status": ...}`` from the request document's ``PROJECTED``, or
    its view document when the app made no request; absent: none); ``requests``: (uid,
    requestId) -> the rank of the status each existing request document shows."""
    shown = {e.payment.payment_id: _state(views.get(e.payment.payment_id)) for e in events}
    shown_before = {pid: view.get("statusRank", NOT_SHOWN) for pid, view in shown.items()}
    projection = Projection()
    for event in events:
        pid = event.payment.payment_id
        update = projection_update(
            shown[pid], event.status, reason=event.reason, message=event.message, extra={"paymentId": pid}
        )
        projection.changed.append(update is not None)
        if update is None:
            continue
        before = shown[pid].get("status")
        shown[pid] = {**shown[pid], **update}
        projection.shown[pid] = _state(shown[pid])
        if (event.payment.uid, event.payment.request_id) not in requests:
            projection.views[pid] = projection.shown[pid]
        booked = shown_before[pid] < FIRST_ENTRY_RANK
        # an entry that showed this status already (and was booked) is not written again
        unchanged = not booked and ENTRY_STATUS.get(str(before)) == ENTRY_STATUS.get(event.status)
        _reached(projection, event, update, requests, labels, booked=booked, entries=not unchanged)
    return projection


def _passed_since(event: PaymentEvent, shown: int, reached: int) -> dict[str, dt.datetime]:
    """The states ``event`` passed unshown (`fjordbank.domain.payments.passed_at`) between
    the rank a document shows and the one it reaches now: its timeline's entries for them."""
    return {status: at for status, at in passed_at(event).items() if shown < STATUS_RANK[status] < reached}


def _state(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The state a document shows (its ``status`` and ``statusRank``), {} when none."""
    status = (doc or {}).get("status")
    return {"status": status, "statusRank": STATUS_RANK[status]} if status in STATUS_RANK else {}


def _reached(
    projection: Projection,
    event: PaymentEvent,
    update: dict[str, Any],
    requests: Mapping[tuple[str, str], int],
    labels: Labels,
    *,
    booked: bool,
    entries: bool = True,
) -> None:
    """What a payment reaching ``event.status`` writes besides its view (``entries``: its
    feed entries too)."""
    p = event.payment
    key = (p.uid, p.request_id)
    if key in requests:  # never create one: that is the app's (and fires the edge)
        request = projection.requests.setdefault(key, RequestUpdate(rank=requests[key]))
        if update["statusRank"] > request.rank:
            request.passed.update(_passed_since(event, request.rank, update["statusRank"]))
            request.fields.update(update)
            if request.rank in (STATUS_RANK[WAITING], NOT_SHOWN) and "reason" not in update:
                # publish_pending, left by the edge on a document showing "received" (or one
                # not read: the notifier's guessed version): not an error once it moved on
                request.fields["reason"] = None
            request.rank = update["statusRank"]
            request.timeline.append(event.status)
        else:  # the document shows this state or a later one already: its status stays
            request.fields.update({k: v for k, v in update.items() if k not in STATUS_FIELDS})
        request.fields[PROJECTED] = event.status
    payee = labels.owners.get(p.to_account) if p.kind == "internal" else None
    if entries:
        written = transaction_entries(
            event, payee_uid=payee, overrides=labels.overrides, payer_name=labels.payer_names.get(p.uid)
        )
        for account, entry in written.items():
            # an entry there already changes its status only: its labels stay as they were
            # written or relabelled (the customer's recategorisation), and are not read again
            fields = entry if booked else {k: v for k, v in entry.items() if k in ENTRY_STATE_FIELDS}
            projection.entries[(account, p.payment_id)] = FeedEntry(fields, booked)
    projection.pushes += payment_pushes(event, payee_uid=payee)
