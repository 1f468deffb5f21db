"""Screening state in Firestore: one document per customer, one decision per payment.

One transaction per batch reads the customers it needs, decides the batch in order, and
writes each customer once and each payment's decision (the payees' owners, to see whether
a payee is the customer's own account, are read outside it, once per process). A payment
screened before (redelivery, crash before the ack) gets its recorded decision, and counts
toward the limits only once: its decision's create fails the commit, and the batch is
decided again reading the decisions (so the usual batch reads no decision at all).
"""

from __future__ import annotations

import datetime as dt

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction

from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import SCREENING_CUSTOMERS, SCREENING_DECISIONS, async_transactional
from fjordbank.domain.payments import INTERNAL, PaymentRequested
from fjordbank.domain.screening import CustomerState, Screened, ScreeningPolicy, screen
from fjordbank.service_layer.owners import Owners


class FirestoreScreening:
    def __init__(self, db: firestore.AsyncClient, policy: ScreeningPolicy) -> None:
        self.db = db
        self.policy = policy
        self.owners = Owners(AsyncFirestoreDocuments(db))

    async def screen_batch(
        self, payments: list[PaymentRequested], *, now: dt.datetime | None = None
    ) -> list[tuple[Screened, bool]]:
        """[(decision, replayed)] in the order of ``payments``."""
        now = now or dt.datetime.now(dt.UTC)
        db = self.db
        # the payees' owners outside the transaction (read there, they locked the payees'
        # accounts against the ledger's credits), and once per process
        owners = await self.owners.of(sorted({p.to_account for p in payments if p.kind == INTERNAL}))

        @async_transactional(operation="screening")
        async def run(tx: AsyncTransaction, replays: bool) -> list[tuple[Screened, bool]]:
            uids = sorted({p.uid for p in payments})
            pids = sorted({p.payment_id for p in payments}) if replays else []
            refs = [db.collection(SCREENING_CUSTOMERS).document(u) for u in uids]
            refs += [db.collection(SCREENING_DECISIONS).document(p) for p in pids]
            states: dict[str, CustomerState] = {u: CustomerState() for u in uids}
            decided: dict[str, Screened] = {}
            async for snap in db.get_all(refs, transaction=tx):
                collection = snap.reference.parent.id
                data = snap.to_dict() if snap.exists else None
                if collection == SCREENING_CUSTOMERS:
                    states[snap.id] = CustomerState.from_dict(data)
                elif collection == SCREENING_DECISIONS and data is not None:
                    decided[snap.id] = Screened(data["approved"], data.get("reason"), data.get("message"))
            results: list[tuple[Screened, bool]] = []
            new: dict[str, tuple[PaymentRequested, Screened]] = {}
            for p in payments:
                if p.payment_id in decided:
                    results.append((decided[p.payment_id], True))
                    continue
                own = p.kind == INTERNAL and owners.get(p.to_account) == p.uid
                decision = screen(self.policy, states[p.uid], p, own_payee=own, now=now)
                decided[p.payment_id] = decision
                new[p.payment_id] = (p, decision)
                results.append((decision, False))
            for uid in {p.uid for p, _ in new.values()}:
                tx.set(db.collection(SCREENING_CUSTOMERS).document(uid), states[uid].to_dict())
            for pid, (p, decision) in new.items():
                tx.create(
                    db.collection(SCREENING_DECISIONS).document(pid),
                    {**decision.to_dict(), "uid": p.uid, "amount": p.amount, "decidedAt": firestore.SERVER_TIMESTAMP},
                )
            return results

        # First without reading the decisions: a payment seen for the first time (nearly
        # every one) has none, and creating its decision fails the commit if it had one.
        # Then (a redelivery in the batch) once more, reading them.
        try:
            return await run(db.transaction(), False)
        except AlreadyExists:
            return await run(db.transaction(), True)
