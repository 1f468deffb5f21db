"""Where one use case calls another: the collaborators a use case takes as arguments, so
its unit tests can pass fakes (a standing order's signature check, the due-payments job's
submit of a payment, the outbox relay).

``Collaborators`` binds them to a process's documents and publisher (``bound``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fjordbank.domain.payments import PaymentRequested
from fjordbank.service_layer import edge, outbox, sca
from fjordbank.service_layer.ports import Documents, Publisher


class ScaCheck(Protocol):
    """``sca.check_payment`` bound to the documents: raises `PaymentRejected` unless the payment
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
        challenge: bytes | None = None,
    ) -> None: ...


Submit = Callable[[PaymentRequested], None]  # edge.submit bound to documents and publisher
Relay = Callable[[], dict[str, int]]  # outbox.relay bound to documents and publisher


@dataclass(frozen=True)
class Collaborators:
    """Other use cases a use case calls, bound to a process's documents and publisher."""

    check_sca: ScaCheck
    submit: Submit
    relay: Relay


def bound(docs: Documents, publisher: Publisher) -> Collaborators:
    """The collaborators on a process's documents and publisher."""
    return Collaborators(
        check_sca=functools.partial(sca.check_payment, docs),
        submit=functools.partial(edge.submit, docs, publisher),
        relay=functools.partial(outbox.relay, docs, publisher),
    )
