"""Writes of backend state onto the app's request documents (one rule: only forward)."""

from __future__ import annotations

from google.cloud import firestore
from google.cloud.firestore_v1.async_transaction import async_transactional

from fjordbank.adapters.firestore import request_path
from fjordbank.domain.payments import projection_update


def _stamp(update: dict) -> dict:
    return {
        **update,
        "updatedAt": firestore.SERVER_TIMESTAMP,
        f"timeline.{update['status']}": firestore.SERVER_TIMESTAMP,
    }


class RequestProjector:
    """Async (run_services)."""

    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    async def advance(self, uid: str, request_id: str, status: str, **kwargs) -> bool:
        ref = self.db.document(request_path(uid, request_id))

        @async_transactional
        async def run(tx) -> bool:
            snap = await ref.get(transaction=tx)
            update = projection_update(snap.to_dict() if snap.exists else None, status, **kwargs)
            if update is None:
                return False
            tx.update(ref, _stamp(update))
            return True

        return await run(self.db.transaction())


def advance_sync(db: firestore.Client, uid: str, request_id: str, status: str, **kwargs) -> bool:
    """Sync twin of `RequestProjector.advance` for Firebase functions (Flask handlers)."""
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
