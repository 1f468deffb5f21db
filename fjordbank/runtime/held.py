"""Payments from other banks held for sanctions review, and a compliance officer's decision
on one (fjordbank.service_layer.incoming): ``bankctl held`` on the local stack, and in
production (with the officer's own credentials, which may write ``clearingReturns``)::

    python -m fjordbank.runtime.held --project PROJECT list
    python -m fjordbank.runtime.held --project PROJECT release PAYMENT_ID --by NAME --note WHY
    python -m fjordbank.runtime.held --project PROJECT freeze PAYMENT_ID --by NAME --note WHY

``release`` (a false match): the clearing service credits the payment within seconds, as it
would have been credited (or sends it back when its account is not here). ``freeze`` (a
true match): the money stays with the bank; reporting it to the authorities is the
officer's, outside this system. A payment is decided once, and only once the ledger holds it
in suspense (within seconds of its file's read); who decided and why are kept with it.
``list`` prints one JSON object per payment held (``--status`` for the decided ones, and
``matched_late``: credited before a new list named the payer, for the officer to look at).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from fjordbank.adapters.documents import AsyncFirestoreDocuments
from fjordbank.adapters.firestore import async_client
from fjordbank.runtime.decisions import emulator_mismatch, officer_parser
from fjordbank.service_layer import incoming
from fjordbank.service_layer.ports import AsyncDocuments, Doc

STATUSES = (incoming.HELD, incoming.RELEASE, incoming.RELEASED, incoming.FROZEN, incoming.MATCHED_LATE)
ACTIONS = {"release": incoming.RELEASE, "freeze": incoming.FROZEN}


def row(doc: Doc) -> dict[str, Any]:
    """What an officer decides on: the money, whose it would be, the payer, and the list's
    entries the payer's name resembles."""
    data = doc.data
    return {
        "paymentId": doc.id,
        "status": data.get("status"),
        "amount": data.get("amount"),
        "toAccount": data.get("toAccount"),
        "payerName": data.get("payerName"),
        "matches": data.get("matches") or [],
        "file": data.get("file"),
        "heldAt": data.get("createdAt"),
        "decidedBy": data.get("decidedBy"),
        "note": data.get("note"),
    }


async def listed(docs: AsyncDocuments, status: str = incoming.HELD) -> list[dict[str, Any]]:
    return [row(d) for d in await incoming.held_payments(docs, status=status)]


async def decide(docs: AsyncDocuments, action: str, payment_id: str, *, by: str, note: str) -> dict[str, Any]:
    """Raises `fjordbank.service_layer.incoming.HeldDecisionRefused`."""
    decided = await incoming.decide_held(docs, payment_id, ACTIONS[action], by=by, note=note)
    return {"paymentId": payment_id, "status": decided["status"], "decidedBy": decided["decidedBy"]}


def main(argv: list[str] | None = None) -> int:
    parser = officer_parser(
        "python -m fjordbank.runtime.held",
        __doc__,
        statuses=STATUSES,
        default=incoming.HELD,
        actions=tuple(ACTIONS),
        subject="payment_id",
        what="held payment",
    )
    args = parser.parse_args(argv)
    if (refused := emulator_mismatch(args.project)) is not None:
        print(refused, file=sys.stderr)
        return 2
    docs = AsyncFirestoreDocuments(async_client(args.project))

    async def run() -> int:
        if args.action == "list":
            for item in await listed(docs, args.status):
                print(json.dumps(item, default=str, ensure_ascii=False))
            return 0
        try:
            print(json.dumps(await decide(docs, args.action, args.payment_id, by=args.by, note=args.note)))
        except incoming.HeldDecisionRefused as exc:
            print(f"refused: {exc.message}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
