"""Benchmark: card authorisation decisions against the processor's timeout.

    make bench-cards                 # needs `make up`; results in artifacts/bench/cards.json
    python -m bench.cards --cards 20 --authorizations 1000 --concurrency 8

Cards are issued through the real path (onboarding and cards callables, the card
service's vault), made by bankctl's operator paths (bankctl.customers) and the client kit's
card network (clientkit.cards);
the processor simulator (simulators/card_processor.py) then sends signed authorisations from
``--concurrency`` threads (a mix of approvals and declines: frozen-free cards, amounts
over the daily limit now and then) and measures each decision's round trip. The baseline
in the same run is the floor of the same HTTP path: a request with a bad signature,
refused before any Firestore work. Reported: throughput, p50/p99/max decision time, the
ratio p99 / timeout (must stay well below 1) and p50 / baseline p50.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import time
import uuid
from pathlib import Path

import requests

from bankctl import config as bankctl_config
from bankctl.customers import Bank
from clientkit.cards import CardNetwork

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def issue_card(bank: Bank, cards: CardNetwork, i: int) -> dict:
    """One customer (the operator's path: bankctl), funded, with an active virtual card;
    returns what is printed on the card."""
    email = f"bench-cards-{uuid.uuid4().hex[:12]}@example.no"
    made = bank.ensure_customer(name="Kari Nordmann", email=email, deposit=100_000_000)
    if not made.account:
        raise SystemExit(f"customer {i} was not approved ({made.status})")
    identity = bank.auth.sign_in(made.email, made.password)
    card_id = bank.callables.call("cards_issue", {"accountId": made.account}, identity)["cardId"]
    deadline = time.monotonic() + 60
    while not any(k["cardId"] == card_id and k.get("status") == "active" for k in bank.admin.cards_of(made.uid)):
        if time.monotonic() > deadline:
            raise SystemExit(f"card {card_id} not active after 60 s")
        time.sleep(0.2)
    return {**cards.details(card_id), "uid": made.uid}


def issue_cards(bank: Bank, cards: CardNetwork, n: int) -> list[dict]:
    issued = []
    for i in range(n):
        issued.append(issue_card(bank, cards, i))
        print(f"\rissued {i + 1}/{n} cards", end="", flush=True)
    print()
    return issued


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--authorizations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=2.0, help="the processor's decision timeout (s)")
    args = parser.parse_args(argv)

    config = bankctl_config.load()
    stack = config.stack
    bank = Bank(config)
    card_service = bank.card_network(timeout=args.timeout)
    cards = issue_cards(bank, card_service, args.cards)
    proc = card_service.processor

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
