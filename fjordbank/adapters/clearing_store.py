"""Clearing state in Firestore and the file exchange with the clearing house.

  clearingPayments/{paymentId}  which file carried the payment (a payment goes out once)
  clearingFiles/{fileId}        the file's payments and state: created -> written -> answered

Files are exchanged through directories (in production a transfer service such as SFTP
moves them): pain.001 files are written to ``outbox/``, pain.002 answers arrive in
``inbox/`` and are moved to ``processed/`` once handled. Writes are atomic (a temporary
file renamed into place), so the other side never reads half a file.

The bank's side of the exchange is ``ClearingDirs.deliver`` (a pain.001 out),
``answers`` and ``read_answer`` (pain.002s in): the channel. When the channel is down they
raise ``ConnectionError`` (``ClearingChannelDown`` when a chaos run asks for the outage with
the ``clearing_channel_down`` fault, fjordbank.adapters.faults; emulator only), as a
transfer service that cannot be reached would; the clearing service then keeps the files
for later (run_services/clearing.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from google.api_core.exceptions import NotFound
from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction
from google.cloud.firestore_v1.base_query import FieldFilter

from fjordbank.adapters.faults import FaultSwitch
from fjordbank.adapters.firestore import CLEARING_FILES, CLEARING_PAYMENTS, async_transactional, fields_of
from fjordbank.domain.payments import PaymentRequested

CHANNEL_DOWN = "clearing_channel_down"  # the fault's name in the faults file


class ClearingChannelDown(ConnectionError):
    """The file exchange with the clearing house cannot be reached (an injected outage)."""


class ClearingDirs:
    def __init__(self, root: str | Path, faults: FaultSwitch | None = None) -> None:
        self.root = Path(root)
        self.faults = faults
        self.outbox, self.inbox, self.processed, self.sent = (
            self.root / name for name in ("outbox", "inbox", "processed", "sent")
        )
        for d in (self.outbox, self.inbox, self.processed, self.sent):
            d.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def write_atomic(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # ---- the channel: the bank's side of the exchange -----------------------------------
    def _channel(self) -> None:
        if self.faults is not None and self.faults.active(CHANNEL_DOWN) is not None:
            raise ClearingChannelDown("the clearing channel is down (injected by a chaos run)")

    def deliver(self, name: str, data: bytes) -> None:
        """Send a pain.001 file to the clearing house (here: into the outbox)."""
        self._channel()
        self.write_atomic(self.outbox / name, data)

    def answers(self) -> list[Path]:
        """The pain.002 answers waiting, by name (a file id starts with its time)."""
        self._channel()
        return sorted(self.inbox.glob("*.xml"))

    def read_answer(self, path: Path) -> bytes:
        self._channel()
        return path.read_bytes()


class FirestoreClearing:
    def __init__(self, db: firestore.AsyncClient) -> None:
        self.db = db

    async def claim(
        self, payments: list[PaymentRequested], file_id: str, *, traces: Mapping[str, str | None] | None = None
    ) -> tuple[list[PaymentRequested], dict[str, str]]:
        """Put the payments not yet in a file into ``file_id`` (recorded before the file is
        written). Returns (the new payments, payment id -> file id of every payment).
        ``traces``: payment id -> the W3C traceparent its answer continues (kept with it)."""
        db = self.db

        @async_transactional(operation="clearing")
        async def run(tx: AsyncTransaction) -> tuple[list[PaymentRequested], dict[str, str]]:
            refs = [db.collection(CLEARING_PAYMENTS).document(p.payment_id) for p in payments]
            existing: dict[str, str] = {
                s.id: fields_of(s)["fileId"] async for s in db.get_all(refs, transaction=tx) if s.exists
            }
            new = [p for p in payments if p.payment_id not in existing]
            if new:
                for p in new:
                    tx.create(
                        db.collection(CLEARING_PAYMENTS).document(p.payment_id),
                        {
                            "fileId": file_id,
                            "payment": p.to_json(),
                            "status": "submitted",
                            "traceparent": (traces or {}).get(p.payment_id),
                        },
                    )
                tx.create(
                    db.collection(CLEARING_FILES).document(file_id),
                    {
                        "status": "created",
                        "paymentIds": [p.payment_id for p in new],
                        "payments": [p.to_json() for p in new],
                        "count": len(new),
                        "controlSum": sum(p.amount for p in new),
                        "createdAt": firestore.SERVER_TIMESTAMP,
                    },
                )
            return new, {**existing, **{p.payment_id: file_id for p in new}}

        return await run(db.transaction())

    async def mark_file(self, file_id: str, status: str) -> bool:
        """False when the bank has no record of the file."""
        try:
            await (
                self.db.collection(CLEARING_FILES)
                .document(file_id)
                .update({"status": status, "updatedAt": firestore.SERVER_TIMESTAMP})
            )
        except NotFound:
            return False
        return True

    async def unwritten_files(self) -> list[tuple[str, list[PaymentRequested]]]:
        """Files recorded but never written (a crash between the two): to write again."""
        query = self.db.collection(CLEARING_FILES).where(filter=FieldFilter("status", "==", "created"))
        return [
            (snap.id, [PaymentRequested.from_json(p) for p in fields_of(snap)["payments"]])
            async for snap in query.stream()
        ]

    async def answered_records(
        self, file_id: str, payment_ids: list[str]
    ) -> tuple[bool, dict[str, tuple[PaymentRequested, str | None]]]:
        """What an answer file needs, in one read: whether the bank has a record of the file
        it answers, and each payment sent out with the traceparent ``claim`` kept with it
        (payments without a record are left out)."""
        refs = [self.db.collection(CLEARING_FILES).document(file_id)]
        refs += [self.db.collection(CLEARING_PAYMENTS).document(p) for p in dict.fromkeys(payment_ids)]
        known_file = False
        found: dict[str, tuple[PaymentRequested, str | None]] = {}
        async for snap in self.db.get_all(refs):
            if not snap.exists:
                continue
            if snap.reference.parent.id == CLEARING_FILES:
                known_file = True
            else:
                data = fields_of(snap)
                found[snap.id] = (PaymentRequested.from_json(data["payment"]), data.get("traceparent"))
        return known_file, found

    async def mark_answered(self, file_id: str | None, marks: list[tuple[str, str, str | None]]) -> None:
        """One commit: each (payment id, status, reason) on its record, and the file answered
        (``file_id``; None: a file the bank has no record of). Every record must exist
        (`answered_records` found it)."""
        batch = self.db.batch()
        for payment_id, status, reason in marks:
            batch.update(
                self.db.collection(CLEARING_PAYMENTS).document(payment_id),
                {"status": status, "reason": reason, "updatedAt": firestore.SERVER_TIMESTAMP},
            )
        if file_id is not None:
            batch.update(
                self.db.collection(CLEARING_FILES).document(file_id),
                {"status": "answered", "updatedAt": firestore.SERVER_TIMESTAMP},
            )
        if marks or file_id is not None:
            await batch.commit()
