"""bankctl: operate a Fjordbank stack.

Every command talks to the stack that the environment names (by default the local one
from `make up`). Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bankctl import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bankctl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    audit = sub.add_parser(
        "audit", help="check every money invariant over the whole ledger", description=commands.audit.__doc__
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.set_defaults(run=commands.audit)
    dlq = sub.add_parser("dlq", help="inspect and replay dead-lettered messages", description=commands.dlq.__doc__)
    dlq_sub = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="every dead-lettered message with its reason")
    dlq_list.add_argument("--consumer", help="only this consumer's dead letters")
    dlq_list.set_defaults(run=commands.dlq)
    dlq_replay = dlq_sub.add_parser(
        "replay", help="publish a dead letter again on its original subject", description=commands.dlq_replay.__doc__
    )
    dlq_replay.add_argument("sequence", type=int, help="the DLQ stream sequence shown by `dlq list`")
    dlq_replay.set_defaults(run=commands.dlq_replay)
    balances = sub.add_parser(
        "balances", help="an account's balance, holds and available amount", description=commands.balances.__doc__
    )
    balances.add_argument("accounts", nargs="+", metavar="ACCOUNT")
    balances.set_defaults(run=commands.balances)
    jobs = sub.add_parser(
        "jobs", help="run a scheduled job now (as Cloud Scheduler would)", description=commands.run_job.__doc__
    )
    jobs.add_argument("action", choices=["run"])
    jobs.add_argument("job", choices=commands.JOB_NAMES)
    jobs.set_defaults(run=commands.run_job)
    reviews = sub.add_parser(
        "reviews", help="onboarding applications in manual review", description=commands.reviews.__doc__
    )
    reviews_sub = reviews.add_subparsers(dest="action", required=True, metavar="ACTION")
    reviews_sub.add_parser("list", help="applications waiting for a decision").set_defaults(run=commands.reviews)
    approve = reviews_sub.add_parser("approve", help="approve: the customer and a first account are made")
    approve.add_argument("uid")
    approve.set_defaults(run=commands.reviews, reason=None)
    reject = reviews_sub.add_parser("reject", help="reject with a reason the customer sees")
    reject.add_argument("uid")
    reject.add_argument("--reason", required=True)
    reject.set_defaults(run=commands.reviews)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # TLS EOF chatter from nats-py
    try:
        return args.run(args)
    except commands.CommandError as exc:
        print(f"bankctl {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
