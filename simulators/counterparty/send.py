"""Another bank's customer pays a Fjordbank customer: the clearing house's pacs.008 for it.

    python -m simulators.counterparty.send --channel DIR --to ACCOUNT --amount KR \\
        [--from-name NAME] [--from-account ACCOUNT] [--bank BIC] [--message TEXT | --kid KID] \\
        [--count N] [--transaction-id ID]

Writes one pacs.008 (fjordbank.domain.pacs) with ``--count`` credits into the channel's
``incoming/`` folder, atomically, as the clearing house's transfer service would; the clearing
service reads it within a second and the ledger credits the account (or the bank sends it
back in a pacs.004, which this simulated side takes from the outbox). ``bankctl receive``
does the same on the local stack and waits for the result.

A credit is identified by its bank and transaction id: giving the same ``--transaction-id``
again delivers the same payment again, which the bank credits once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from fjordbank.adapters.clearing_store import ClearingDirs
from fjordbank.domain import pacs
from fjordbank.domain.errors import DomainError
from fjordbank.domain.iso20022 import Party
from fjordbank.domain.money import Money
from fjordbank.domain.norway import today_in_norway

DEFAULT_BANK = "DNBANOKKXXX"  # the paying bank's BIC
DEFAULT_PAYER = "Arbeidsgiver AS"
DEFAULT_PAYER_ACCOUNT = "12032400009"  # an account at the paying bank (MOD11-valid)
CREDITOR_AGENT = "FJORNOKK"  # Fjordbank, as the clearing house addresses it (the stack's FJB_BIC)


@dataclass(frozen=True)
class Credit:
    """What one credit says (amounts in øre)."""

    to_account: str
    amount: int
    payer_name: str = DEFAULT_PAYER
    payer_account: str = DEFAULT_PAYER_ACCOUNT
    bank: str = DEFAULT_BANK
    message: str | None = None
    kid: str | None = None
    transaction_id: str | None = None


def batch_of(credits: list[Credit], *, now: dt.datetime) -> pacs.IncomingBatch:
    """One pacs.008 of ``credits``, each with its own transaction id unless given one."""
    message_id = f"NICS{now.strftime('%Y%m%d%H%M%S')}{secrets.token_hex(6).upper()}"
    transfers = []
    for n, c in enumerate(credits, start=1):
        tx = c.transaction_id or f"{message_id}-{n}"
        transfers.append(
            pacs.IncomingTransfer(
                transaction_id=tx,
                end_to_end_id=tx,
                amount_minor=c.amount,
                settlement_date=today_in_norway(now),
                debtor=Party(c.payer_name, c.payer_account),
                debtor_agent_bic=c.bank,
                creditor_account=c.to_account,
                message=c.message,
                kid=c.kid,
            )
        )
    return pacs.IncomingBatch(message_id, now, tuple(transfers))


def deliver(channel: Path, batch: pacs.IncomingBatch) -> Path:
    """Write ``batch`` into the channel's ``incoming/`` folder; returns the file's path."""
    folder = channel / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{batch.message_id}.xml"
    ClearingDirs.write_atomic(path, pacs.build_pacs008(batch, creditor_agent_bic=CREDITOR_AGENT))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.counterparty.send", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--channel", required=True, type=Path, help="the clearing channel's folder")
    parser.add_argument("--to", required=True, help="the Fjordbank account credited (11 digits, dots allowed)")
    parser.add_argument("--amount", required=True, help="kroner, e.g. 25000 or 1250.50")
    parser.add_argument("--from-name", default=DEFAULT_PAYER, help="the payer's name (default: %(default)s)")
    parser.add_argument(
        "--from-account", default=DEFAULT_PAYER_ACCOUNT, help="the payer's account (default: %(default)s)"
    )
    parser.add_argument("--bank", default=DEFAULT_BANK, help="the paying bank's BIC (default: %(default)s)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--message", help="a message to the payee (at most 140 characters)")
    text.add_argument("--kid", help="a KID")
    parser.add_argument("--count", type=int, default=1, help="how many credits in the file (default: 1)")
    parser.add_argument("--transaction-id", help="the paying bank's id of the credit (one credit only)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.count < 1 or (args.transaction_id and args.count != 1):
        print("--count must be at least 1, and 1 with --transaction-id", file=sys.stderr)
        return 2
    try:
        credit = Credit(
            to_account=args.to.replace(".", "").replace(" ", ""),
            amount=Money.parse_nok(args.amount.replace(",", ".")).minor,
            payer_name=args.from_name,
            payer_account=args.from_account.replace(".", "").replace(" ", ""),
            bank=args.bank,
            message=args.message,
            kid=args.kid,
            transaction_id=args.transaction_id,
        )
        batch = batch_of([credit] * args.count, now=dt.datetime.now(dt.UTC))
    except DomainError as exc:
        print(f"not sent: {exc}", file=sys.stderr)
        return 2
    path = deliver(args.channel, batch)
    for t in batch.transfers:
        print(f"{t.payment_id}  {t.transaction_id}  {t.amount_minor} øre to {t.creditor_account}")
    print(f"delivered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
