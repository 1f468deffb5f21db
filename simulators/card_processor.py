"""A card-processor simulator: what the card network sends the card service.

It signs each request with the shared secret and waits at most ``timeout`` seconds for a
decision, as a real processor does. A request that gets no answer in time is treated as
declined ("issuer_timeout", the processor's stand-in decision) and is followed by a
reversal, so a decision the card service made after the timeout holds no money. An answer
of 503 (the issuer's store did not answer) is asked once more; any 5xx after that is
declined in the issuer's stead ("issuer_unavailable") and reversed the same way.

    python -m simulators.card_processor --help
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field

import requests
import urllib3

from fjordbank.domain import signatures

RETRY_WAIT = 0.5  # before an authorisation answered 503 is sent once more (within the merchant's wait)


@dataclass
class CardProcessor:
    url: str  # the card service's API base, e.g. http://127.0.0.1:9110
    secret: bytes
    timeout: float = 2.0  # for a decision; reversals and captures are not customer-facing
    patient_timeout: float = 10.0
    reversal_patience: float = 120.0  # seconds a reversal is tried for before it is reported lost
    session: requests.Session = field(default_factory=requests.Session)

    def _post(self, path: str, body: dict, *, timeout: float | None = None) -> tuple[int, dict]:
        raw = json.dumps(body, separators=(",", ":")).encode()
        header = signatures.sign(self.secret, int(time.time()), raw, path=path)
        resp = self.session.post(
            self.url + path,
            data=raw,
            headers={"Content-Type": "application/json", signatures.HEADER: header},
            timeout=timeout or self.timeout,
        )
        return resp.status_code, resp.json()

    def authorize(
        self,
        *,
        pan: str,
        exp_month: int,
        exp_year: int,
        amount: int,
        cvv: str | None = None,
        merchant_name: str = "Kiwi Grünerløkka",
        mcc: str = "5411",
        merchant_country: str = "NO",
        channel: str = "pos",
        reference: str | None = None,
    ) -> dict:
        """The decision as the merchant sees it: {"approved", "reason", "reference", ...}."""
        reference = reference or "ref-" + secrets.token_hex(8)
        body = {
            "reference": reference,
            "pan": pan,
            "expMonth": exp_month,
            "expYear": exp_year,
            "amount": amount,
            "currency": "NOK",
            "merchantName": merchant_name,
            "mcc": mcc,
            "merchantCountry": merchant_country,
            "channel": channel,
        }
        if cvv is not None:
            body["cvv"] = cvv
        reached = False  # an earlier try reached the card service (it may have decided)
        try:
            status, answer = self._post("/v1/authorizations", body)
            if status == 503:  # "not now": once more, the same reference (answered as decided if it was)
                reached = True  # a 503 can follow a commit whose answer was lost
                time.sleep(RETRY_WAIT)
                status, answer = self._post("/v1/authorizations", body)
        except requests.Timeout:
            self.reverse(reference)
            return {"approved": False, "reason": "issuer_timeout", "reference": reference, "timedOut": True}
        except (requests.RequestException, ValueError) as exc:
            if never_sent(exc) and not reached:
                raise  # the card service was not there: nothing was decided, nothing to reverse
            # no answer to go by (the connection reset after the decision, an answer that is
            # not JSON): declined in the issuer's stead and reversed, as a timeout is, so a
            # decision the issuer did make holds no money
            self.reverse(reference)
            return {"approved": False, "reason": "issuer_unavailable", "reference": reference}
        if status >= 500:  # no decision to go by: declined in the issuer's stead, and reversed
            self.reverse(reference)
            return {"approved": False, "reason": "issuer_unavailable", "reference": reference}
        if status != 200:
            return {"approved": False, "reason": answer.get("error", f"http_{status}"), "reference": reference}
        return {**answer, "reference": reference}

    def capture(
        self, reference: str, amount: int | None = None, capture_reference: str | None = None
    ) -> tuple[int, dict]:
        body: dict = {"reference": reference, "captureReference": capture_reference or capture_reference_for(reference)}
        if amount is not None:
            body["amount"] = amount
        return self._post("/v1/captures", body, timeout=self.patient_timeout)

    def refund(self, original_reference: str, amount: int, reference: str | None = None) -> tuple[int, dict]:
        """The merchant's refund of a captured purchase (its authorisation's reference):
        ``reference`` is the refund's own (a new one by default; a retry sends the same)."""
        body = {
            "reference": reference or "rfd-" + secrets.token_hex(8),
            "originalReference": original_reference,
            "amount": amount,
        }
        return self._post("/v1/refunds", body, timeout=self.patient_timeout)

    def increment(self, original_reference: str, amount: int, reference: str | None = None) -> tuple[int, dict]:
        """The merchant's incremental authorisation (a hotel's extra nights) on the
        authorisation ``original_reference``: ``reference`` is the increment's own (a new one
        by default; a retry sends the same)."""
        body = {
            "reference": reference or "inc-" + secrets.token_hex(8),
            "originalReference": original_reference,
            "amount": amount,
        }
        return self._post("/v1/increments", body, timeout=self.patient_timeout)

    def reverse_part(self, original_reference: str, amount: int, reference: str | None = None) -> tuple[int, dict]:
        """The merchant's partial reversal (a fuel pump's final amount below what it held) of
        ``amount`` øre of the authorisation ``original_reference``: ``reference`` is the
        reversal's own (a new one by default; a retry sends the same)."""
        body = {
            "reference": reference or "rev-" + secrets.token_hex(8),
            "originalReference": original_reference,
            "amount": amount,
        }
        return self._post("/v1/reversals", body, timeout=self.patient_timeout)

    def reverse(self, reference: str) -> tuple[int, dict]:
        """Retried until answered (a reversal must not be lost: a real network stores and
        forwards it until acknowledged), for up to ``reversal_patience`` seconds, waiting
        longer between tries: a card service deploy or restart is outlasted."""
        deadline = time.monotonic() + self.reversal_patience
        wait = 0.2
        while True:
            try:
                status, answer = self._post("/v1/reversals", {"reference": reference}, timeout=self.patient_timeout)
                if status < 500:
                    return status, answer
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() + wait > deadline:
                raise RuntimeError(f"reversal of {reference} not delivered")
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def never_sent(exc: Exception) -> bool:
    """The request never reached the card service (no connection was made)."""
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    return isinstance(getattr(exc.args[0], "reason", exc.args[0]), urllib3.exceptions.NewConnectionError)


def capture_reference_for(reference: str) -> str:
    """The capture's own reference for an authorisation's (1-64 characters, as every
    reference): "cap-" and the reference, or for a long one "cap-" and a digest of it."""
    if len(reference) <= 60:
        return "cap-" + reference
    return "cap-" + hashlib.sha256(reference.encode()).hexdigest()[:40]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Send one card authorisation to the card service, as a processor would."
    )
    parser.add_argument("--url", required=True, help="the card service's processor API, e.g. http://127.0.0.1:9110")
    parser.add_argument(
        "--secret-env", default="FJB_CARD_PROCESSOR_SECRET", help="environment variable with the secret"
    )
    parser.add_argument("--pan", required=True)
    parser.add_argument("--exp", required=True, help="MM/YYYY")
    parser.add_argument("--cvv")
    parser.add_argument("--amount", type=int, required=True, help="øre")
    parser.add_argument("--merchant", default="Kiwi Grünerløkka")
    parser.add_argument("--channel", default="pos", choices=["pos", "online", "atm"])
    parser.add_argument("--country", default="NO")
    args = parser.parse_args(argv)
    import os

    month, year = (int(x) for x in args.exp.split("/"))
    processor = CardProcessor(args.url, os.environ[args.secret_env].encode())
    answer = processor.authorize(
        pan=args.pan,
        exp_month=month,
        exp_year=year,
        cvv=args.cvv,
        amount=args.amount,
        merchant_name=args.merchant,
        channel=args.channel,
        merchant_country=args.country,
    )
    print(json.dumps(answer))
    return 0 if answer.get("approved") else 1


if __name__ == "__main__":
    raise SystemExit(main())


def card_as_printed(project_id: str, vault_database: str, vault_key: str, cvv_key: str, card_id: str) -> dict | None:
    """What is printed on a card (PAN, expiry, CVV), read from the vault (the emulator's
    database ``vault_database``) with the card service's keys: how a test or demo plays the
    cardholder. None if the card is not there."""
    from fjordbank.adapters.vault import decode_keyring, open_vault
    from fjordbank.domain.cards import derive_cvv

    vault = open_vault(project_id, vault_database, decode_keyring(vault_key, "vault"))
    entry = vault.by_card(card_id)
    pan = vault.reveal(card_id)
    if entry is None or pan is None:
        return None
    cvv = derive_cvv(decode_keyring(cvv_key, "cvv").key(entry.cvv_key_id), pan, entry.exp_month, entry.exp_year)
    return {"pan": pan, "exp_month": entry.exp_month, "exp_year": entry.exp_year, "cvv": cvv}
