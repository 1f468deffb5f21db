"""A payment request as the app writes it: users/{uid}/paymentRequests/{id}, contract v1.

The request id is the idempotency key; the phone confirms exactly this payment when the
app asks it to (strong customer authentication, `clientkit.device`).
"""

from __future__ import annotations

from typing import Any

from clientkit.device import Device


def payment_request(
    request_id: str,
    *,
    from_account: str,
    to_account: str,
    amount: int,
    currency: str = "NOK",
    fields: dict[str, Any] | None = None,
    device: Device | None = None,
) -> dict:
    """The request document: ``fields`` are its other fields as the contract names them
    (message, kid, dueDate, ...; a test may also override a field or give its own ``sca``);
    confirmed on ``device`` unless the fields carry ``sca`` already."""
    body: dict[str, Any] = {
        "v": 1,
        "fromAccount": from_account,
        "toAccount": to_account,
        "amount": amount,
        "currency": currency,
        **(fields or {}),
    }
    if device is not None and "sca" not in body:
        body["sca"] = device.confirm(request_id, amount, currency, to_account)
    return body


def optional_fields(
    *, message: str | None = None, kid: str | None = None, due_date: str | None = None, payee_name: str | None = None
) -> dict:
    """The optional fields that are given, by their names in the contract."""
    named = {"message": message, "kid": kid, "dueDate": due_date, "payeeName": payee_name}
    return {k: v for k, v in named.items() if v is not None}
