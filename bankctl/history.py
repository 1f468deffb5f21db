"""Card purchases made in the past, for demo and test data (never a production path).

A card purchase is dated by the card service's clock, so a fresh customer has no history
for "my economy" to compare or for subscription detection to find. This books purchases
on past days through the card ledger's own code (`CardLedger.authorize` and `capture` with
the clock set to that day), which announces each capture as the card service does, so the
records, postings, feed entries, monthly figures and subscriptions are exactly those of a
purchase made then. No push is sent (no authorisation event is announced).

The caller needs the card's id from the vault (the PAN never passes through here) and a
NATS connection allowed to publish ``cards.captured`` (the operator's admin identity).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fjordbank.domain.cards import AuthorizationRequest
from fjordbank.domain.norway import OSLO
from fjordbank.service_layer.card_ledger import CardLedger, card_event
from fjordbank.service_layer.outbox import CARD_OUTBOX
from fjordbank.service_layer.ports import AsyncDocuments, AsyncPublisher


@dataclass(frozen=True)
class PastPurchase:
    reference: str  # the processor's reference: booking the same one again changes nothing
    day: dt.date
    amount: int  # øre
    merchant_name: str
    mcc: str
    channel: str = "pos"


async def book(
    docs: AsyncDocuments,
    events: AsyncPublisher,
    card_id: str,
    pan: str,
    expiry: tuple[int, int],
    purchase: PastPurchase,
) -> str:
    """Authorise and capture one purchase on its day (noon in Oslo). Returns "booked",
    "already" (this reference was booked before) or the reason it was declined."""
    when = dt.datetime.combine(purchase.day, dt.time(12), tzinfo=OSLO).astimezone(dt.UTC)
    ledger = CardLedger(docs, events, clock=lambda: when)
    request = AuthorizationRequest(
        reference=purchase.reference,
        pan=pan,
        exp_month=expiry[0],
        exp_year=expiry[1],
        amount=purchase.amount,
        currency="NOK",
        merchant_name=purchase.merchant_name,
        mcc=purchase.mcc,
        merchant_country="NO",
        channel=purchase.channel,
        cvv=None,
    )
    decided = await ledger.authorize(request, card_id, cvv_ok=True)  # as if the CVV was checked
    # not announced: the authorisation staged its event in the card outbox (the card service
    # delivers it after its answer), which the outbox relay then published, a push per
    # backdated purchase (found in review, 2026-12-06)
    if (staged := card_event(decided)) is not None:
        unstage = docs.batch()
        unstage.delete(f"{CARD_OUTBOX}/{staged.msg_id}")
        await unstage.commit()
    if decided.status != "approved":
        return decided.reason or decided.status
    if decided.replayed and decided.record.get("status") == "captured":
        return "already"
    captured = await ledger.capture(purchase.reference, capture_ref=f"cap-{purchase.reference}", amount=None)
    await ledger.announced()  # its event follows the capture's answer: here, before the booking is done
    return "booked" if captured.status == "captured" else captured.reason or captured.status
