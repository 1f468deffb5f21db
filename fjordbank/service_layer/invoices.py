"""Invoice scanning (the ``invoices_scan`` callable): a giro read into a payment draft
(fjordbank.domain.giro), told with the customer's earlier payments of the same invoice.

Nothing is stored or paid: the app shows the draft, and the customer pays it as any
payment request. One query (the customer's requests to the draft's account with its KID,
newest first; another page while the ones read did not pay) when the draft has a KID;
none without.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fjordbank.adapters.firestore import PAYMENT_REQUESTS, USERS
from fjordbank.domain import giro
from fjordbank.service_layer.ports import Doc, Documents, OrderBy, Where

# The newest matching requests are read a page at a time until `giro.SHOWN_EARLIER` that
# paid are found, or `READ_EARLIER_MOST` were read: the states that did not pay are passed
# over, and a bill tried ten times without funds hid the payment made before them (found
# in review). A request not yet stamped by the bank (no ``updatedAt``: the payment trigger
# has not run, well under a second after the app stored it) is not found by the ordered
# query, and is not told.
READ_EARLIER_PAGE = 10
READ_EARLIER_MOST = 100


def scan(docs: Documents, uid: str, data: dict[str, Any], *, today: dt.date) -> dict[str, Any]:
    """The draft of ``data`` (``ocrLine`` or ``fields``, one of them, checked by the
    caller) as the app shows it, with ``paidBefore``: the earlier payments of the same
    invoice (fjordbank.domain.giro.earlier_payments), [] when none or no KID."""
    if "ocrLine" in data:
        draft = giro.parse_ocr_line(data["ocrLine"])
    else:
        draft = giro.parse_fields(data["fields"], today=today)
    return {**draft.to_json(), "paidBefore": giro.earlier_payments(draft, _earlier(docs, uid, draft))}


def _earlier(docs: Documents, uid: str, draft: giro.PaymentDraft) -> list[tuple[str, dict[str, Any]]]:
    if draft.kid is None:
        return []
    read: list[Doc] = []
    page: list[Doc] = []
    while len(read) < READ_EARLIER_MOST:
        page = docs.query(
            f"{USERS}/{uid}/{PAYMENT_REQUESTS}",
            where=[Where("kid", "==", draft.kid), Where("toAccount", "==", draft.to_account)],
            order_by=[OrderBy("updatedAt", descending=True)],
            limit=READ_EARLIER_PAGE,
            start_after=page[-1] if page else None,
        )
        read += page
        found = [(doc.id, doc.data) for doc in read]
        if len(page) < READ_EARLIER_PAGE or len(giro.earlier_payments(draft, found)) >= giro.SHOWN_EARLIER:
            return found
    return [(doc.id, doc.data) for doc in read]
