"""Narrow seams between the use cases on the document ports and those still on Firestore's client.

accounts, cards, onboarding, standing orders, the scheduled jobs, insights, push and the
audit take the ports (fjordbank.service_layer.ports). A few things they call take
Firestore's client still: the outbox's stage, deliver and relay, the edge's account check
and submit of a payment, and sca's check of a payment's signature. Until those take the
ports themselves, they meet the converted use cases here, in one of two ways:

- ``stage``, ``deliver`` and ``check_accounts`` are the outbox's and the edge's own, on the
  ports: the same documents, the same writes, the same round trips (each ``deliver``
  delete is one commit, as ``outbox.deliver``'s), and the decisions are theirs
  (``outbox.kind_of``, ``edge.account_verdict``);
- the others (``Unported``) the caller binds to its Firestore client (``on_firestore``),
  and a unit test passes fakes.

When outbox, edge and sca take the ports, this module goes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.cloud import firestore

from fjordbank.adapters.firestore import ACCOUNTS
from fjordbank.domain.payments import PaymentRequested
from fjordbank.errors import PublishError
from fjordbank.service_layer import edge, outbox, sca
from fjordbank.service_layer.ports import Clock, Documents, Publisher, Writes, system_clock

log = logging.getLogger(__name__)


def outbox_path(event: outbox.Event) -> str:
    return f"{outbox.OUTBOX}/{event.msg_id}"


def stage(writes: Writes, event: outbox.Event, clock: Clock = system_clock) -> None:
    """``outbox.stage``: write the event in the caller's unit of work (after its reads).
    ``stagedAt`` is the machine's time, which the relay's cutoff is measured against (a
    scheduled job's clock may be set ahead on the emulator: not this one)."""
    writes.set(
        outbox_path(event),
        {"subject": event.subject, "kind": outbox.kind_of(event.subject), "body": event.body, "stagedAt": clock()},
    )


def deliver(docs: Documents, publisher: Publisher, events: Sequence[outbox.Event]) -> int:
    """``outbox.deliver``: publish committed events, each one published removed from the
    outbox (one commit each). Returns how many were published (the rest wait for the relay)."""
    published = 0
    for event in events:
        try:
            publisher.publish_json(event.subject, event.body, msg_id=event.msg_id)
        except PublishError:
            log.warning("event left in the outbox", extra={"subject": event.subject, "msg_id": event.msg_id})
            continue
        batch = docs.batch()
        batch.delete(outbox_path(event))
        batch.commit()
        published += 1
    return published


def check_accounts(
    docs: Documents, uid: str, from_account: str, to_account: str, bank_regs: tuple[str, ...]
) -> tuple[str, bool]:
    """``edge.check_accounts``: ownership and state, read one account after the other (the
    payee's only when the payer's is the caller's). Returns the payment kind and whether
    the payee is the payer's own account; raises `PaymentRejected`."""
    source = docs.get(f"{ACCOUNTS}/{from_account}")
    if source is None or source.data.get("ownerUid") != uid:
        return edge.account_verdict(uid, None if source is None else source.data, to_account, None, bank_regs)
    target = docs.get(f"{ACCOUNTS}/{to_account}") if to_account[:4] in bank_regs else None
    return edge.account_verdict(uid, source.data, to_account, None if target is None else target.data, bank_regs)


class ScaCheck(Protocol):
    """``sca.check_payment`` bound to its client: raises `PaymentRejected` unless the payment
    needs no SCA or carries a valid, unused signature over exactly its values."""

    def __call__(
        self,
        uid: str,
        *,
        request_path: str,
        request_id: str,
        amount: int,
        currency: str,
        to_account: str,
        own_payee: bool,
        sca: dict[str, Any] | None,
        threshold: int,
    ) -> None: ...


Submit = Callable[[PaymentRequested], None]  # edge.submit bound to its client and publisher
Relay = Callable[[], dict[str, int]]  # outbox.relay bound to its client and publisher


@dataclass(frozen=True)
class Unported:
    """What the converted use cases call that still takes Firestore's client, bound to it."""

    check_sca: ScaCheck
    submit: Submit
    relay: Relay


def on_firestore(db: firestore.Client, publisher: Publisher) -> Unported:
    """The seams bound to the Firestore client and the publisher of a process."""
    return Unported(
        check_sca=functools.partial(sca.check_payment, db),
        submit=functools.partial(edge.submit, db, publisher),
        relay=functools.partial(outbox.relay, db, publisher),
    )
