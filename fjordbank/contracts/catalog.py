"""Which contract each subject carries: the payment event and the customer and card events.

The schemas, the AsyncAPI document and the consumers' decoding all start from here, so a
subject in the topology without a contract fails the generator rather than going
undocumented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fjordbank.domain import events, payments


@dataclass(frozen=True)
class Entry:
    """One contract in one version: its dataclass and how its schema is made.

    ``closed``: its consumers refuse fields they do not know (the payment events'
    `PaymentEvent.from_json` does), so the schema says ``additionalProperties: false``
    and even an added field is a breaking change. ``refine``: what a schema cannot read
    off the annotations, by dotted property path (the payment's status values)."""

    name: str
    version: int
    cls: type[Any]
    closed: bool = False
    refine: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Its id in the AsyncAPI document's components."""
        return f"{self.name}_v{self.version}"

    @property
    def path(self) -> str:
        """Its schema file, relative to contracts/."""
        return f"events/{self.name}.v{self.version}.schema.json"

    @property
    def versioned(self) -> bool:
        """A `events.Contract` carries ``v`` at its top; the payment event carries it in its payment."""
        return issubclass(self.cls, events.Contract)


PAYMENT = Entry(
    "payment",
    payments.EVENT_VERSION,
    payments.PaymentEvent,
    closed=True,
    refine={
        "status": {"enum": sorted(set(payments.STATUS_RANK) | payments.LEDGER_LEGS | payments.INCOMING_STEPS)},
        "payment.kind": {"enum": list(payments.KINDS)},
    },
)


def _contract_entries() -> tuple[Entry, ...]:
    kinds = dict.fromkeys(events.SUBJECT_TYPES.values())  # each once, in the order of the subjects
    return tuple(Entry(kind.NAME, kind.VERSION, kind) for kind in kinds)


ENTRIES: tuple[Entry, ...] = (PAYMENT, *_contract_entries())


def entry_for(subject: str) -> Entry:
    """The contract of a subject (without its partition). Raises KeyError for a subject
    no contract is declared for."""
    if subject.startswith("payments."):
        return PAYMENT
    kind = events.SUBJECT_TYPES[subject]
    return next(e for e in ENTRIES if e.cls is kind)
