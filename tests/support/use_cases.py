"""What the unit tests of the service layer's use cases share, besides the document fake
(tests/support/memory.py): a publisher that records what it is given, a fixed clock, valid
account numbers and a way to put documents in place.

The publisher behaves as JetStream does towards the use cases: a message id it has stored
is stored once (the stream's duplicate window), and while it is ``down`` every publish
raises PublishError and stores nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain.accounts import POSITIONS, number_at
from fjordbank.errors import PublishError
from tests.support.memory import MemoryDocuments

NOW = dt.datetime(2027, 3, 10, 9, 30, tzinfo=dt.UTC)  # a Wednesday morning in Oslo
BANK_REG = "9710"


def fixed_clock(now: dt.datetime = NOW):
    """A clock that always says ``now``."""
    return lambda: now


@dataclass
class Published:
    subject: str
    body: dict[str, Any]
    msg_id: str
    stream: str | None = None


@dataclass
class RecordingPublisher:
    """fjordbank.service_layer.ports.Publisher that keeps what it stored (once per msg_id)."""

    down: bool = False
    stored: list[Published] = field(default_factory=list)
    attempts: int = 0

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        self.attempts += 1
        if self.down:
            raise PublishError(f"{subject}: NATS is away")
        if msg_id not in {p.msg_id for p in self.stored}:
            self.stored.append(Published(subject, body, msg_id, stream))

    def subjects(self) -> list[str]:
        return [p.subject for p in self.stored]

    def on(self, subject: str) -> list[dict[str, Any]]:
        return [p.body for p in self.stored if p.subject == subject]


def drawn(bank_reg: str = BANK_REG) -> Iterator[tuple[int, str]]:
    """The draws that give a valid customer account number of ``bank_reg``, in order:
    (position, number)."""
    for position in range(POSITIONS):
        number = number_at(bank_reg, position)
        if number is not None:
            yield position, number


def account_numbers(bank_reg: str = BANK_REG) -> Iterator[str]:
    """Valid customer account numbers of ``bank_reg``, in order."""
    return (number for _position, number in drawn(bank_reg))


def seed(docs: MemoryDocuments, documents: Mapping[str, Mapping[str, Any]]) -> None:
    """Put ``documents`` (path -> data) in place, in one commit."""
    batch = docs.batch()
    for path, data in documents.items():
        batch.set(path, data)
    batch.commit()


def data(docs: MemoryDocuments, path: str) -> dict[str, Any] | None:
    """A document's data (None: there is none)."""
    doc = docs.get(path)
    return None if doc is None else doc.data


def paths(docs: MemoryDocuments, collection: str) -> list[str]:
    """The documents of a collection, by path."""
    return [d.path for d in docs.query(collection)]


def customer_account(uid: str, account_id: str, *, balance: int = 0, status: str = "open", **more: Any) -> dict:
    """An account document as accounts.create_account writes it (with a balance)."""
    return {
        "accountId": account_id,
        "ownerUid": uid,
        "name": "Brukskonto",
        "type": "spending",
        "kind": "customer",
        "currency": "NOK",
        "balance": balance,
        "held": 0,
        "available": balance,
        "overdraftLimit": 0,
        "status": status,
        **more,
    }
