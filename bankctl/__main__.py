"""bankctl: operate a Fjordbank stack.

Every command talks to the stack that the environment names (by default the local one
from `make up`; see bankctl/config.py for the variables). Errors are one line on stderr
(`bankctl: error: ...`) with exit code 1 (2 for a wrong command line), never a traceback:
a part of the stack that does not answer is named with its address and the step bankctl
was at. FJB_HTTP_TIMEOUT (seconds, default 60) is how long bankctl waits for an answer
over HTTP. `bankctl COMMAND --help` describes each command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import logging
import os
import sys
import threading

from bankctl import commands, errors
from bankctl.customers import DEFAULT_PASSWORD
from fjordbank.errors import ConfigError
from simulators.counterparty.send import DEFAULT_PAYER, DEFAULT_PAYER_ACCOUNT


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: `bankctl: error: <command>: ... (see --help)`."""

    def error(self, message: str):
        command = self.prog.removeprefix("bankctl").strip()
        where = f"{command}: " if command else ""
        print(f"bankctl: error: {where}{message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _due_date(text: str) -> str:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None
    if len(text) != 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _doc(fn) -> str:
    return inspect.cleandoc(fn.__doc__ or "")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="bankctl", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, fn, help_text: str, parent=sub, **kw) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=_doc(fn) or help_text, formatter_class=fmt, **kw)
        p.set_defaults(run=fn)
        return p

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    # customers and what they do
    customers = sub.add_parser(
        "customers",
        help="create demo customers through the real onboarding path, list customers",
        description="Create customers through the real onboarding path, or list them.",
    )
    customers_sub = customers.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    create = command(
        "create",
        commands.customers_create,
        "onboard new customers (Auth, device key, application, deposit)",
        customers_sub,
    )
    create.add_argument("--name", help="full name (default: a generated Norwegian name)")
    create.add_argument("--email", help="sign-in e-mail (default: a new unique address); an existing one is completed")
    create.add_argument("--password", default=DEFAULT_PASSWORD, help="sign-in password (default: %(default)s)")
    create.add_argument(
        "--deposit",
        default="10000",
        metavar="KR",
        help="opening deposit in kroner, e.g. 2500.50 (default: %(default)s)",
    )
    create.add_argument("--count", type=_positive_int, default=1, help="how many customers (default: 1)")
    json_flag(create)
    listing = command("list", commands.customers_list, "customers, newest application first", customers_sub)
    listing.add_argument("--limit", type=_positive_int, default=50, help="at most this many (default: %(default)s)")
    json_flag(listing)

    pay = command("pay", commands.pay, "pay as a customer (through the app's surface) and wait for the result")
    pay.add_argument("customer", metavar="CUSTOMER", help="the payer: uid, e-mail or one of their account numbers")
    pay.add_argument(
        "to", metavar="TO", help="payee account number (11 digits, dots allowed) or a customer (uid, e-mail)"
    )
    pay.add_argument("amount", metavar="AMOUNT", help="kroner, e.g. 125.50 or 125,50 (at most 2 decimals)")
    pay.add_argument(
        "--from", dest="from_account", metavar="ACCOUNT", help="the payer's account (default: their first)"
    )
    text = pay.add_mutually_exclusive_group()
    text.add_argument("--message", help="a message to the payee (at most 140 characters)")
    text.add_argument("--kid", help="a KID (customer reference, MOD10 or MOD11)")
    pay.add_argument(
        "--payee-name", metavar="NAME", help="the payee's name, as the app lets the customer type it (1-70 characters)"
    )
    pay.add_argument("--due", type=_due_date, metavar="YYYY-MM-DD", help="a later due date: the payment is scheduled")
    pay.add_argument("--request-id", help="the idempotency key (default: a new one)")
    pay.add_argument("--no-sca", action="store_true", help="do not confirm on the device even where the bank asks")
    pay.add_argument("--no-wait", action="store_true", help="return once the request is written")
    pay.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for the final status (default: %(default)s)"
    )
    json_flag(pay)

    receive = command("receive", commands.receive, "money from another bank to an account (the local stack)")
    receive.add_argument("to", metavar="TO", help="the account credited (11 digits) or a customer (uid, e-mail)")
    receive.add_argument("amount", metavar="AMOUNT", help="kroner, e.g. 25000 or 1250,50")
    receive.add_argument("--from-name", default=DEFAULT_PAYER, help="the payer's name (default: %(default)s)")
    receive.add_argument("--from-account", default=DEFAULT_PAYER_ACCOUNT, help="the payer's account at the other bank")
    received_text = receive.add_mutually_exclusive_group()
    received_text.add_argument("--message", help="the payer's message (at most 140 characters)")
    received_text.add_argument("--kid", help="a KID")
    receive.add_argument("--no-wait", action="store_true", help="return once the file is delivered")
    receive.add_argument("--timeout", type=float, default=60, help="seconds to wait (default: %(default)s)")
    json_flag(receive)

    ledger = command("ledger", commands.ledger, "a customer's accounts, balances and transactions, newest first")
    ledger.add_argument("customer", metavar="CUSTOMER", help="uid, e-mail or one of their account numbers")
    ledger.add_argument(
        "--limit", type=_positive_int, default=20, help="transactions per account (default: %(default)s)"
    )
    ledger.add_argument("--postings", action="store_true", help="also the ledger's postings (scans all postings)")
    json_flag(ledger)

    economy = command("economy", commands.economy, "a customer's my economy per month, checked against the ledger")
    economy.add_argument("customer", metavar="CUSTOMER", help="uid, e-mail or one of their account numbers")
    economy.add_argument(
        "--months", type=_positive_int, default=6, help="the latest months shown (default: %(default)s)"
    )
    json_flag(economy)

    balances = command("balances", commands.balances, "an account's balance, holds and available amount")
    balances.add_argument("accounts", nargs="+", metavar="ACCOUNT")
    json_flag(balances)

    # operations
    reviews = sub.add_parser(
        "reviews", help="onboarding applications in manual review", description=_doc(commands.reviews)
    )
    reviews_sub = reviews.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    rlist = command("list", commands.reviews, "applications waiting for a decision", reviews_sub)
    json_flag(rlist)
    approve = command("approve", commands.reviews, "approve: the customer and a first account are made", reviews_sub)
    approve.add_argument("uid")
    approve.add_argument("--reason", required=True, help="why (kept with who approved it; the customer is not told)")
    approve.add_argument("--by", required=True, help="who decides (kept with the decision)")
    reject = command(
        "reject", commands.reviews, "reject: the customer is told only that they were not approved", reviews_sub
    )
    reject.add_argument("uid")
    reject.add_argument("--reason", required=True, help="why (kept with who rejected it; the customer is not told)")
    reject.add_argument("--by", required=True, help="who decides (kept with the decision)")
    release = command(
        "release",
        commands.reviews,
        "free the identity number a rejected application holds, for the number's holder to apply",
        reviews_sub,
    )
    release.add_argument("uid")
    release.add_argument("--reason", required=True, help="what proved the holder (kept with who released it)")
    release.add_argument("--by", required=True, help="who releases (kept with the release)")

    devices = sub.add_parser(
        "devices", help="a customer's device keys (strong customer authentication)", description=_doc(commands.devices)
    )
    devices_sub = devices.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    dev_list = command("list", commands.devices, "the customer's device keys and those revoked", devices_sub)
    dev_list.add_argument("uid")
    json_flag(dev_list)
    reopen = command(
        "reopen", commands.devices, "revoke every key and let the new device shown enrol for 30 minutes", devices_sub
    )
    reopen.add_argument("uid")
    reopen.add_argument("--reason", required=True, help="what proved the customer's identity (kept with the record)")
    reopen.add_argument("--by", required=True, help="who decides (kept with the record)")
    reopen.add_argument("--key", required=True, metavar="KEY_ID", help="the new device's key id, as it shows it")
    reopen.add_argument(
        "--fingerprint", required=True, help="the 16 hex digits the new device shows (dashes and case optional)"
    )
    json_flag(reopen)

    dlq = sub.add_parser("dlq", help="inspect and replay dead-lettered messages", description=_doc(commands.dlq))
    dlq_sub = dlq.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    dlq_list = command("list", commands.dlq, "every dead-lettered message with its reason", dlq_sub)
    dlq_list.add_argument("--consumer", help="only this consumer's dead letters")
    json_flag(dlq_list)
    dlq_replay = command("replay", commands.dlq_replay, "publish a dead letter again on its original subject", dlq_sub)
    dlq_replay.add_argument("sequence", type=int, help="the DLQ stream sequence shown by `dlq list`")
    dlq_replay.add_argument("--again", action="store_true", help="publish a letter replayed before once more")
    dlq_replay.add_argument("--by", required=True, help="who asks for the replay (kept with its mark and logged)")
    dlq_replay.add_argument("--note", required=True, help="why: the cause and how it was mended")

    held = sub.add_parser(
        "held",
        help="payments from other banks held for sanctions review; release or freeze one",
        description=_doc(commands.held),
    )
    held_sub = held.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    held_list = command("list", commands.held, "the payments held, with what the payer's name resembles", held_sub)
    held_list.add_argument(
        "--status", choices=("held", "release", "released", "frozen", "matched_late"), default="held"
    )
    json_flag(held_list)
    for action, what in (("release", "a false match: credit it"), ("freeze", "a true match: the money stays frozen")):
        decide = command(action, commands.held_decide, f"{what} (decided once)", held_sub)
        decide.add_argument("payment_id", metavar="PAYMENT_ID", help="as `held list` shows it")
        decide.add_argument("--by", required=True, help="who decides (kept with the decision)")
        decide.add_argument("--note", required=True, help="why (kept with the decision)")
        decide.add_argument("--no-wait", action="store_true", help="return once the decision is recorded")
        decide.add_argument("--timeout", type=float, default=60, help="seconds to wait (default: %(default)s)")
        json_flag(decide)

    sanctions = sub.add_parser(
        "sanctions",
        help="customers the sanctions list names since they were taken on; freeze or clear one",
        description=_doc(commands.sanctions),
    )
    sanctions_sub = sanctions.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    sanctions_list = command("list", commands.sanctions, "the alerts, with the list's entries found", sanctions_sub)
    sanctions_list.add_argument("--status", choices=("open", "frozen", "cleared"), default="open")
    json_flag(sanctions_list)
    for action, what in (
        ("freeze", "it is the listed person: freeze their accounts"),
        ("clear", "not the listed person (or delisted): lift it"),
    ):
        decide = command(action, commands.sanctions_decide, what, sanctions_sub)
        decide.add_argument("customer", metavar="CUSTOMER", help="a uid or an e-mail")
        decide.add_argument("--by", required=True, help="who decides (kept with the decision)")
        decide.add_argument("--note", required=True, help="why (kept with the decision)")
        decide.add_argument(
            "--seen",
            required=action == "clear",  # lifting a hit found while the officer looked: never unseen
            help="the version `list` showed: refused if the alert was written since",
        )
        json_flag(decide)

    payees = sub.add_parser(
        "payees",
        help="payees at other banks whose name is like a listed one; clear or confirm one",
        description=_doc(commands.payees),
    )
    payees_sub = payees.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    payees_list = command("list", commands.payees, "the payee alerts, with the list's entries found", payees_sub)
    payees_list.add_argument("--status", choices=("open", "cleared", "confirmed"), default="open")
    json_flag(payees_list)
    for action, what in (
        ("clear", "not the listed party (an open alert, or a confirmed one by mistake): payments to it pass"),
        ("confirm", "the listed party: every payment to it refused"),
        ("lift", "a confirmed party delisted: payments pass while the list does not name it"),
    ):
        decide = command(action, commands.payees_decide, what, payees_sub)
        decide.add_argument("key", metavar="KEY", help="as `payees list` shows it")
        decide.add_argument("--by", required=True, help="who decides (kept with the decision)")
        decide.add_argument("--note", required=True, help="why (kept with the decision)")
        decide.add_argument(
            "--seen",
            required=action in ("clear", "lift"),  # lifting a hit found while the officer looked: never unseen
            help="the version `list` showed: refused if the alert was written since",
        )
        json_flag(decide)

    jobs = sub.add_parser(
        "jobs", help="run a scheduled job now (as Cloud Scheduler would)", description=_doc(commands.run_job)
    )
    jobs_sub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    jobs_run = command("run", commands.run_job, "queue one job now", jobs_sub)
    jobs_run.add_argument("job", choices=commands.JOB_NAMES)
    jobs_run.add_argument(
        "--now",
        metavar="INSTANT",
        help="the job's clock, e.g. 2027-03-28T01:30:00Z (the emulator only; production refuses it)",
    )
    jobs_run.add_argument(
        "--customer",
        action="append",
        metavar="UID",
        help="only this customer's due payments and standing orders (repeat; the emulator only)",
    )
    json_flag(command("list", commands.list_jobs, "the jobs there are", jobs_sub))

    trace = command("trace", commands.trace, "one payment's timeline: its steps, retries and where it is now")
    trace.add_argument(
        "id", metavar="PAYMENT|REQUEST", help="a payment id (p + 34 hex digits), a request id, or UID/REQUEST_ID"
    )
    json_flag(trace)

    audit = command("audit", commands.audit, "check every money invariant over the whole ledger")
    json_flag(audit)
    migrate = command("migrate", commands.migrate, "bring documents of earlier versions up to this one")
    migrate.add_argument("--force", action="store_true", help="run the migrations done before again (idempotent)")
    json_flag(migrate)

    load = command(
        "load",
        commands.load,
        "generate payments from new customers and measure them, then audit",
        epilog="The setup onboards the customers at most 4 at a time (fewer if --concurrency is lower): "
        "the Functions emulator runs one call at a time.",
    )
    load.add_argument(
        "--payments", "-n", type=_positive_int, default=200, help="payments to make (default: %(default)s)"
    )
    load.add_argument(
        "--customers",
        "-m",
        type=_positive_int,
        default=10,
        help="new customers paying each other (default: %(default)s)",
    )
    load.add_argument(
        "--concurrency",
        "-c",
        type=_positive_int,
        default=16,
        help="at most this many unfinished at once (default: %(default)s)",
    )
    load.add_argument(
        "--max-amount", default="500", metavar="KR", help="amounts are 1 kr to this (default: %(default)s)"
    )
    load.add_argument(
        "--external",
        type=float,
        default=0,
        metavar="PCT",
        help="percent paid to other banks, through clearing (default: 0)",
    )
    load.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for the last final status (default: %(default)s)"
    )
    load.add_argument("--no-audit", action="store_true", help="skip the ledger audit at the end")
    json_flag(load)

    demo = command("demo", commands.demo, "seed demo customers with a realistic history (idempotent)")
    demo.add_argument("--tag", default="demo", help="another separate set of demo customers (default: %(default)s)")
    demo.add_argument("--password", default=DEFAULT_PASSWORD, help="the demo users' password (default: %(default)s)")
    json_flag(demo)
    return parser


NOISY_LOGGERS = ("asyncio", "fjordbank.adapters.nats_conn", "nats", "google", "grpc", "urllib3")


def _quiet() -> None:
    """A failure is reported as one line by bankctl itself; the clients' own logs (NATS
    reconnect attempts, TLS EOF chatter, a listener's stream ending) would only repeat it,
    with their tracebacks. So would a thread that a transport error ended (bankctl's own
    workers hand their errors to the main thread)."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    default_hook = threading.excepthook
    if getattr(default_hook, "bankctl", False):
        return

    from google.api_core.exceptions import Cancelled

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and errors.transport_error(args.exc_value) is not None:
            return
        if isinstance(args.exc_value, Cancelled):  # a Firestore listener's stream ended as the CLI closed it
            return
        default_hook(args)

    hook.bankctl = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _report(error: BaseException | str) -> int:
    line = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    print(f"bankctl: error: {line}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _quiet()
        from bankctl import config

        args.config = config.load()
        errors.know_stack(args.config.addresses())
        return args.run(args)
    except KeyboardInterrupt:
        print("bankctl: interrupted", file=sys.stderr, flush=True)
        return 130
    except SystemExit as exc:  # a configuration value the stack's settings refused
        if isinstance(exc.code, str):
            return _report(exc.code)
        raise
    except ConfigError as exc:  # e.g. the NATS certificates this state directory lacks
        return _report(f"configuration: {exc}")
    except Exception as exc:
        error = errors.transport_error(exc)  # a CommandError, or a transport error no step caught
        if error is None:
            raise
        return _report(error)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        # Do not wait for worker threads still blocked on a part of the stack that does not answer.
        os._exit(code)
    sys.exit(code)
