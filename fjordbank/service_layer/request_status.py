"""The edge's writes of backend state onto the app's request documents (one rule: only
forward, fjordbank.domain.payments.projection_update).

Blocking (Cloud Functions). The notifier projects the later states asynchronously
(the request projector); both only ever move a document forward, so whichever writes
second finds the document at its state or later and leaves it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from fjordbank.domain.payments import projection_update
from fjordbank.service_layer.ports import SERVER_TIME, Doc, Documents, NotFound, Stale, UnitOfWork

OPERATION = "edge_request_status"  # the transaction's name in fjb_firestore_transaction_attempts_total
# On a request "requested" before: {"count", "at"} of the publishes of its payment after the
# first (a delivery of the trigger again, the due-payments job), `mark_republished`.
REPUBLISHED = "republished"


def stamped(update: dict[str, Any]) -> dict[str, Any]:
    """The update with the commit's time as ``updatedAt`` and as the status's timeline entry."""
    return {**update, "updatedAt": SERVER_TIME, f"timeline.{update['status']}": SERVER_TIME}


def advance(
    docs: Documents,
    path: str,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
    unshown_only: bool = False,
) -> bool:
    """Move the request document at ``path`` forward to ``status``, in one unit of work (it
    reads the document's state first). ``unshown_only``: only a document that shows no
    state yet (a refusal the edge decides without knowing whether a first run of its
    trigger showed one). Returns whether it moved."""

    def run(uow: UnitOfWork) -> bool:
        doc = uow.get(path)
        if unshown_only and (doc is None or doc.data.get("status") is not None):
            return False
        update = projection_update(doc.data if doc else None, status, reason=reason, message=message, extra=extra)
        if update is None:
            return False
        uow.update(path, stamped(update))
        return True

    return docs.transact(run, operation="edge_request_status")


def advance_from(
    docs: Documents,
    known: Doc | None,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """``advance`` in one round trip when nothing moved the document since ``known`` was
    read (the edge's batched read; None: there was no document, so nothing to move): the
    update carries the read's update time as its precondition. If something did move it
    (the notifier projecting a later state, a cancel), the write fails and ``advance``
    decides afresh."""
    update = projection_update(known.data if known else None, status, reason=reason, message=message, extra=extra)
    if known is None or update is None:
        return False
    return _write_on(docs, known, update) or advance(
        docs, known.path, status, reason=reason, message=message, extra=extra
    )


def advance_if(
    docs: Documents,
    known: Doc | None,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """``advance_from`` without its second try: one write on the condition that nothing
    moved the document since ``known``. Returns False when something did (or there is no
    document), and then writes nothing; True when it moved, or shows ``status`` or later."""
    if known is None:
        return False
    update = projection_update(known.data, status, reason=reason, message=message, extra=extra)
    return update is None or _write_on(docs, known, update)


def put_back(
    docs: Documents,
    known: Doc,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move the request document back to ``status`` from the state the caller itself
    wrote (``known``, as its write left it): the one exception to "only forward", for a
    state that turned out not to hold (the edge's "requested" when the publish failed), or
    a reason that did not (the edge's refusal, rate_limited once the count it was committed
    with came back over the limit). One write, on the condition that nothing moved the
    document since; if something did, it stays as it is. Returns whether it moved."""
    update = projection_update({}, status, reason=reason, message=message, extra=extra)
    return update is not None and _write_on(docs, known, update)


def _write_on(docs: Documents, known: Doc, update: dict[str, Any]) -> bool:
    """One write of ``update`` (stamped), on the condition that the document is still the
    version ``known``; False (nothing written) when it is not, or is gone."""
    batch = docs.batch()
    batch.update(known.path, stamped(update), if_updated=known.updated)
    try:
        batch.commit()
        return True
    except (Stale, NotFound):
        return False


def republished_count(request: Mapping[str, Any]) -> int:
    """How often the request's payment was published again (0: never, or not noted in a
    shape this reads)."""
    noted = request.get(REPUBLISHED)
    count = noted.get("count") if isinstance(noted, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def mark_republished(docs: Documents, known: Doc, now: dt.datetime) -> Doc | None:
    """Note on a request shown "requested" that its payment is published again, in one
    write on the condition that the document is still the version ``known``. Returns the
    document as the note left it; None (nothing written) when it moved since, or is gone.
    Raises when the store does not answer.

    The edge notes it before it publishes again: the note and the edge's refusal of a
    request it showed "requested" (rate_limited: the commit that showed it found the count
    over the limit) are both written only on the version that commit left, so whichever
    lands first decides, and a request is never shown rejected while its payment is on its
    way. The due-payments job notes it after its publish (the note times its next one): it
    publishes only what has been "requested" for minutes, long after any trigger ended."""
    noted = {"count": republished_count(known.data) + 1, "at": now}
    batch = docs.batch()
    batch.update(known.path, {REPUBLISHED: noted}, if_updated=known.updated)
    try:
        (written,) = batch.commit()
    except (Stale, NotFound):
        return None
    return Doc(known.path, {**known.data, REPUBLISHED: noted}, written.updated or known.updated)
