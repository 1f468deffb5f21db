"""Benchmark: card authorisation decisions against the processor's timeout.

    make bench-cards                 # needs `make up`; results in artifacts/bench/cards.json
    python -m bench.cards --cards 20 --authorizations 1000 --concurrency 8

Cards are issued through the real path (onboarding and cards callables, the card
service's vault); the processor simulator then sends signed authorisations from
``--concurrency`` threads (a mix of approvals and declines: frozen-free cards, amounts
over the daily limit now and then) and measures each decision's round trip. The baseline
in the same run is the floor of the same HTTP path: a request with a bad signature,
refused before any Firestore work. Reported: throughput, p50/p99/max decision time, the
ratio p99 / timeout (must stay well below 1) and p50 / baseline p50.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import statistics
import time
from pathlib import Path

import requests

from devstack import settings as stack_settings
from devstack.stack import Stack

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def issue_cards(stack, n: int) -> list[dict]:
    for key, value in stack.emulator_hosts().items():
        os.environ.setdefault(key, value)
    from fjordbank.adapters.firestore import async_client
    from fjordbank.adapters.ledger_store import FirestoreLedger
    from tests.support.bank import application, callables_for, card_details, wait_card_active
    from tests.support.clients import AuthEmulator, FirestoreAsUser

    auth = AuthEmulator(f"127.0.0.1:{stack.s.emulator_ports['auth']}")
    callables = callables_for(stack)
    loop = asyncio.new_event_loop()  # one loop for the async client's whole life
    ledger = FirestoreLedger(async_client(stack.s.project_id))
    cards = []
    for i in range(n):
        user = auth.sign_up()
        status, body = callables.call("onboarding_submit", application(), user["id_token"])
        assert status == 200 and body["result"]["status"] == "approved", body
        account = body["result"]["accountId"]
        loop.run_until_complete(ledger.deposit(deposit_id=f"bench-{account}", account_id=account, amount=100_000_000))
        card_id = callables.call("cards_issue", {"accountId": account}, user["id_token"])[1]["result"]["cardId"]
        app = FirestoreAsUser(f"127.0.0.1:{stack.s.emulator_ports['firestore']}", stack.s.project_id, user["id_token"])
        wait_card_active(app, card_id)
        cards.append(card_details(stack, card_id))
        print(f"\rissued {i + 1}/{n} cards", end="", flush=True)
    print()
    return cards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--authorizations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=2.0, help="the processor's decision timeout (s)")
    args = parser.parse_args(argv)

    from tests.support.bank import processor

    stack = Stack(stack_settings.load(), progress=lambda _m: None)
    cards = issue_cards(stack, args.cards)
    proc = processor(stack, timeout=args.timeout)

    def one(i: int) -> tuple[float, dict]:
        card = cards[i % len(cards)]
        amount = 2_500_000 if i % 10 == 9 else 1_000 + i % 5_000  # every tenth over the daily limit
        started = time.perf_counter()
        answer = proc.authorize(
            pan=card["pan"], exp_month=card["exp_month"], exp_year=card["exp_year"], cvv=card["cvv"], amount=amount
        )
        return time.perf_counter() - started, answer

    def floor(_i: int) -> float:
        started = time.perf_counter()
        requests.post(f"{stack.card_api_url}/v1/authorizations", data=b"{}", timeout=5)
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        baseline = list(pool.map(floor, range(200)))
        started = time.perf_counter()
        results = list(pool.map(one, range(args.authorizations)))
        elapsed = time.perf_counter() - started
    times = [t for t, _ in results]
    outcomes: dict[str, int] = {}
    for _t, answer in results:
        key = "approved" if answer.get("approved") else str(answer.get("reason"))
        outcomes[key] = outcomes.get(key, 0) + 1
    report = {
        "authorizations": args.authorizations,
        "concurrency": args.concurrency,
        "throughput_per_s": round(args.authorizations / elapsed, 1),
        "decision_p50_ms": round(statistics.median(times) * 1000, 1),
        "decision_p99_ms": round(percentile(times, 0.99) * 1000, 1),
        "decision_max_ms": round(max(times) * 1000, 1),
        "timeout_ms": args.timeout * 1000,
        "p99_over_timeout": round(percentile(times, 0.99) / args.timeout, 3),
        "baseline_p50_ms": round(statistics.median(baseline) * 1000, 1),
        "p50_over_baseline_p50": round(statistics.median(times) / statistics.median(baseline), 1),
        "outcomes": outcomes,
        "timed_out": outcomes.get("issuer_timeout", 0),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "cards.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["timed_out"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
