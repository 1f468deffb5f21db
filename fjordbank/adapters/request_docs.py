"""Writes of backend state onto the app's request documents (one rule: only forward), from
the edge (Firebase functions are sync). The notifier's projection of payment events is the
use case fjordbank.service_layer.notifier."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as api_errors
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.transaction import Transaction

from fjordbank.adapters.firestore import request_path
from fjordbank.domain.payments import projection_update


def _stamp(update: dict[str, Any]) -> dict[str, Any]:
    return {
        **update,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        f"timeline.{update['status']}": firestore.SERVER_TIMESTAMP,
    }


def advance_sync(
    db: firestore.Client,
    uid: str,
    request_id: str,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move one request document forward (the edge's writes; Firebase functions are sync)."""
    ref = db.document(request_path(uid, request_id))

    @firestore.transactional
    def run(tx: Transaction) -> bool:
        snap = ref.get(transaction=tx)
        current = snap.to_dict() if snap.exists else None
        update = projection_update(current, status, reason=reason, message=message, extra=extra)
        if update is None:
            return False
        tx.update(ref, _stamp(update))
        return True

    moved: bool = run(db.transaction())
    return moved


def advance_from_sync(
    db: firestore.Client,
    snapshot: DocumentSnapshot[DocumentReference],
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """``advance_sync`` in one round trip when nothing moved the document since
    ``snapshot`` was read (the edge's batched read): the update carries the snapshot's
    update time as its precondition. If something did move it (the notifier projecting a
    later state, a cancel), the write fails and the transaction decides afresh."""
    current = snapshot.to_dict() if snapshot.exists else None
    update = projection_update(current, status, reason=reason, message=message, extra=extra)
    if update is None:
        return False
    if snapshot.exists:
        try:
            snapshot.reference.update(_stamp(update), option=db.write_option(last_update_time=snapshot.update_time))
            return True
        except (api_errors.FailedPrecondition, api_errors.NotFound):
            pass
    uid, request_id = snapshot.reference.parent.parent.id, snapshot.reference.id
    return advance_sync(db, uid, request_id, status, reason=reason, message=message, extra=extra)
