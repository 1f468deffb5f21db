"""Text is masked before it is cut (found in review, 2026-12-07): a span value cut to
`tracing.MAX_REASON` first kept 15 of a card number's 16 digits across the cut, too few to
be masked and enough for Luhn to give the last; and a dead letter's reason header was kept
unmasked in the DLQ stream while the log line about it was masked."""

from __future__ import annotations

import asyncio
import types

import pytest

from fjordbank.domain.cards import make_pan
from fjordbank.runtime import consumer, tracing
from fjordbank.runtime.consumer import ConsumerService, Delivery
from fjordbank.runtime.redact import redact

ACCOUNT = "12345678903"  # a valid account number
NATIONAL_ID = "15068510004"


@pytest.mark.parametrize("secret", [make_pan("457123", "123456789"), ACCOUNT])
@pytest.mark.parametrize("kept", [3, 10, 15])
def test_a_number_across_the_cut_of_a_span_value_is_masked(secret: str, kept: int) -> None:
    head = "x" * (tracing.MAX_REASON - kept) + "accounts/"
    text = head[-tracing.MAX_REASON :] + secret + " and more"
    cleaned = tracing.clean(text)
    assert len(cleaned) <= tracing.MAX_REASON
    shown = cleaned.rsplit("accounts/", 1)[-1]
    assert shown == redact(secret)[: len(shown)]  # as masked (a card's first six and last four), cut
    assert tracing.clean(RuntimeError(text)) == cleaned


def test_a_dead_letters_reason_header_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    published: dict[str, dict[str, str]] = {}

    async def publish(_js, _subject, _data, headers=None):
        published["headers"] = headers
        return types.SimpleNamespace(seq=7)

    monkeypatch.setattr(consumer.jetstream_publish, "publish", publish)
    svc = ConsumerService.__new__(ConsumerService)
    svc.spec = consumer.topology.CONSUMERS[0]
    svc.jetstream = lambda: None
    meta = types.SimpleNamespace(num_delivered=6, sequence=types.SimpleNamespace(stream=42), timestamp=None)
    msg = types.SimpleNamespace(subject="x", data=b"{}", headers={}, metadata=meta)
    reason = f"AlreadyExists: 409 Document already exists: documents/nationalIds/{NATIONAL_ID}"
    asyncio.run(svc.dead_letter(Delivery(msg), reason, svc.spec))
    header = published["headers"]["Fjb-Reason"]
    assert NATIONAL_ID not in header and header.endswith("0004")
