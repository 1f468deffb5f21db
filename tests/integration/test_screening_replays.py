"""Screening's recorded decisions on the real emulator (fjordbank/service_layer/screening.py):
a batch of new payments reads no decision (their creates would fail the commit if any had
one), and a batch with a redelivered payment gets its recorded decision, counted once.

On a project of its own on the same emulator: the use case alone, its calls counted."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client
from fjordbank.adapters.firestore_calls import tally
from fjordbank.domain.payments import EXTERNAL, PaymentRequested
from fjordbank.domain.screening import ScreeningPolicy
from fjordbank.service_layer.screening import Screening

pytestmark = pytest.mark.stack


def payment(uid: str, n: int, amount: int = 10_000) -> PaymentRequested:
    return PaymentRequested(
        payment_id=f"p-{uid}-{n}",
        uid=uid,
        request_id=f"r{n:08d}",
        kind=EXTERNAL,
        from_account="97100000028",
        to_account="15030000002",
        amount=amount,
        currency="NOK",
        message=None,
        kid=None,
        due_date=dt.date.today().isoformat(),
        body_hash="h",
        requested_at="",
    )


def test_new_payments_read_no_decision_and_a_redelivered_one_gets_its_recorded_answer(stack):
    async def scenario():
        db = async_client(f"fjb-screen-{uuid.uuid4().hex[:8]}")
        screening = Screening(AsyncFirestoreDocuments(db), ScreeningPolicy())
        uid = "screen-" + uuid.uuid4().hex[:6]
        first = [payment(uid, n) for n in range(5)]
        with tally() as counts:
            results = await screening.screen_batch(first)
        assert [replayed for _d, replayed in results] == [False] * 5
        assert counts["reads"] == 1, counts  # the customer's state only
        again = [first[2], payment(uid, 5)]
        results = await screening.screen_batch(again)
        assert [replayed for _d, replayed in results] == [True, False]
        state = (await db.document(f"screeningCustomers/{uid}").get()).to_dict()
        assert state["dayTotal"] == 6 * 10_000  # the redelivered payment counted once
        # its own payments' only: a stack started from its export shows the export's
        # documents in every project of the emulator, this one's too
        decisions = [s async for s in db.collection("screeningDecisions").stream() if s.id.startswith(f"p-{uid}-")]
        assert len(decisions) == 6

    asyncio.run(scenario())
