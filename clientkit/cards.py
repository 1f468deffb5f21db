"""The card network's side, on the local stack: the operator (or a test) plays the
cardholder and the merchant.

The card processor simulator (simulators/card_processor.py) sends the card service
authorisations and captures signed with the shared secret; what is printed on a card (its
number, expiry and CVV) is read from the card service's vault with the card service's keys,
as only the cardholder knows it. The secrets are the stack's (its card secrets file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clientkit.errors import CARDS, KitError, StackUnreachable, talking_to
from fjordbank.adapters.vault import DEFAULT_DATABASE
from simulators.card_processor import CardProcessor, capture_reference_for, card_as_printed


class CardNetwork:
    def __init__(
        self,
        card_api_url: str,
        secrets_file: Path,
        project_id: str,
        timeout: float = 5.0,
        vault_database: str = DEFAULT_DATABASE,
    ) -> None:
        """``timeout``: how long the processor waits for a decision (then: issuer_timeout);
        the vault is read in the emulator's database ``vault_database`` of ``project_id``."""
        self.card_api_url, self.project_id, self.vault_database = card_api_url, project_id, vault_database
        try:
            self.keys = json.loads(secrets_file.read_text())
        except (OSError, ValueError):
            raise KitError(f"no card secrets in {secrets_file} (is the stack up? run `make up`)") from None
        self.processor = CardProcessor(card_api_url, self.keys["processorSecret"].encode(), timeout=timeout)
        self.processor_timeout = max(self.processor.timeout, self.processor.patient_timeout)

    def details(self, card_id: str) -> dict:
        """What is printed on the card (read from the vault with the card service's keys)."""
        printed = card_as_printed(
            self.project_id, self.vault_database, self.keys["vaultKey"], self.keys["cvvKey"], card_id
        )
        if printed is None:
            raise KitError(f"card {card_id} is not in the vault")
        return printed

    def purchase(self, card: dict, *, reference: str, amount: int, merchant: str, mcc: str, **kw: Any) -> dict:
        """Authorise and capture one purchase (idempotent by ``reference``: a retry of a
        captured one is answered with its status "captured")."""
        with talking_to(CARDS, self.card_api_url, timeout=self.processor_timeout):
            return self._purchase(card, reference=reference, amount=amount, merchant=merchant, mcc=mcc, **kw)

    def _purchase(self, card: dict, *, reference: str, amount: int, merchant: str, mcc: str, **kw: Any) -> dict:
        try:
            answer = self.processor.authorize(
                pan=card["pan"],
                exp_month=card["exp_month"],
                exp_year=card["exp_year"],
                cvv=card["cvv"],
                amount=amount,
                merchant_name=merchant,
                mcc=mcc,
                reference=reference,
                **kw,
            )
            if answer.get("approved") or answer.get("status") == "authorized":
                status, _body = self.processor.capture(reference, capture_reference=capture_reference_for(reference))
                answer["captured"] = status == 200
        except RuntimeError as exc:  # its reversal after a timeout was not delivered
            raise StackUnreachable(CARDS, self.card_api_url, f"did not answer: {exc}") from None
        return answer
