"""What screening the customers again costs in CPU (fjordbank.service_layer.rescreening):
Norwegian-style customer names screened against a list of the EU's size, whole, and against
the entries a list update changes (the delta every walk after the first screens by), in one
run on this machine, so the figure that matters is the ratio::

    make bench-rescreen              # no stack needed; artifacts/bench/rescreen.{json,png}

The EU's real list is not in the repository (a free login fetches it): the list here is
synthetic and seeded, 5,000 persons with 4 aliases of 2-4 tokens each, a quarter of the
tokens common ones ("Mohammad", "Ali", "Ivanov" ...) as in the real list, where a common
token makes a name's candidates many. The customers' names are a Norwegian first and last
name, some of them common in the list too. Each is screened as the walk screens it
(fjordbank.domain.rescreening.screen_customer).

The same run times the payees' screening (fjordbank.domain.payee_screening.find: a payment
to another bank's payee name against the whole list, persons and enterprises, by name
only): half the names a person's, half a Norwegian company's ("Berg Rør AS"), each as the
screening service screens a name it has not seen before (it keeps every name's finding per
list, so a payee paid again costs a dictionary lookup).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

from fjordbank.domain import payee_screening
from fjordbank.domain import rescreening as rules
from fjordbank.domain.sanctions import SanctionedEntity, SanctionsList

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"
COMMON = [
    "Mohammad",
    "Ali",
    "Ahmed",
    "Hassan",
    "Abdul",
    "Al",
    "Vladimir",
    "Alexander",
    "Sergei",
    "Ivanov",
    "Kim",
    "Lee",
]
FIRST = ["Kari", "Ola", "Per", "Anne", "Ingrid", "Lars", "Nora", "Jonas", "Sofie", "Emil", "Mohammad", "Ali", "Ahmed"]
LAST = [
    "Nordmann",
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Jensen",
    "Hassan",
    "Khan",
]


def synthetic_list(entries: int, rng: random.Random) -> list[SanctionedEntity]:
    vocab = ["".join(rng.choice("aeioubdfghklmnrstvz") for _ in range(rng.randint(3, 9))).title() for _ in range(3000)]

    def name() -> str:
        return " ".join(
            rng.choice(COMMON) if rng.random() < 0.25 else rng.choice(vocab) for _ in range(rng.randint(2, 4))
        )

    born = dt.date(1950, 1, 1)
    return [
        SanctionedEntity(str(i), tuple(name() for _ in range(4)), (born + dt.timedelta(days=i * 7),), (), None)
        for i in range(entries)
    ]


def rate(customers: list[dict], sanctions: SanctionsList) -> float:
    """Customers screened per second (CPU of this process)."""
    started = time.process_time()
    for kyc in customers:
        rules.screen_customer(kyc, sanctions, frozenset())
    return len(customers) / max(time.process_time() - started, 1e-9)


TRADES = ["Rør", "Bygg", "Elektro", "Transport", "Regnskap", "Eiendom", "Maskin", "Consulting"]


def payee_rate(names: list[str], sanctions: SanctionsList) -> float:
    """Payee names screened per second (CPU of this process), none seen before."""
    started = time.process_time()
    for name in names:
        payee_screening.find(sanctions, name)
    return len(names) / max(time.process_time() - started, 1e-9)


def measure(entries: int, changed: int, customers: int, seed: int) -> dict:
    rng = random.Random(seed)
    listed = synthetic_list(entries, rng)
    whole = SanctionsList(listed)
    delta = whole.since(SanctionsList(listed[:-changed]).entry_keys())
    names = [
        {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "birthDate": "1990-01-01", "idKind": "fnr"}
        for _ in range(customers)
    ]
    whole_rate = rate(names[: max(customers // 10, 100)], whole)  # slow: a tenth is enough to time
    delta_rate = rate(names, delta)
    payees = [
        f"{rng.choice(FIRST)} {rng.choice(LAST)}" if n % 2 else f"{rng.choice(LAST)} {rng.choice(TRADES)} AS"
        for n in range(max(customers // 10, 100))
    ]
    payees_rate = payee_rate(payees, whole)
    return {
        "list_entries": entries,
        "changed_entries": len(delta),
        "customers_screened_per_s_whole_list": round(whole_rate),
        "customers_screened_per_s_by_changes": round(delta_rate),
        "ratio_by_changes_to_whole": round(delta_rate / whole_rate, 1),
        "cpu_hours_per_million_customers_whole_list": round(1_000_000 / whole_rate / 3600, 2),
        "cpu_seconds_per_million_customers_by_changes": round(1_000_000 / delta_rate, 1),
        "payee_names_screened_per_s_whole_list": round(payees_rate),
        "cpu_ms_per_new_payee_name": round(1000 / payees_rate, 2),
    }


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [
        f"customers, whole list ({result['list_entries']})",
        f"customers, by changes ({result['changed_entries']})",
        "payee names, whole list",
    ]
    values = [
        result["customers_screened_per_s_whole_list"],
        result["customers_screened_per_s_by_changes"],
        result["payee_names_screened_per_s_whole_list"],
    ]
    ax.bar(labels, values, color=["tab:blue", "tab:blue", "tab:orange"])
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("names screened per CPU second (log)")
    ax.set_title(f"Rescreening one customer: {result['ratio_by_changes_to_whole']}x faster by the changes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rescreen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=5000, help="the list's persons (default: %(default)s)")
    parser.add_argument("--changed", type=int, default=20, help="entries a list update adds (default: %(default)s)")
    parser.add_argument("--customers", type=int, default=20000, help="names screened (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "rescreen.json")
    args = parser.parse_args(argv)
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.rescreen", *(sys.argv[1:] if argv is None else argv)]),
        **measure(args.entries, args.changed, args.customers, args.seed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(args.out.with_suffix(".png"), result)
    print(json.dumps(result, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
