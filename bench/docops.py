"""Benchmark: Firestore document operations and round trips per payment, per step.

    python -m bench.docops                    # needs `make up`; artifacts/bench/docops.json
    python -m bench.docops --payments 200 --kinds internal external card incoming

Every service's Firestore client counts its calls and the documents they read and write
(fjordbank/adapters/firestore_calls.py, on /metrics as fjb_firestore_calls_total and
fjb_firestore_documents_total). For each payment kind this run sends ``--payments`` of
that kind alone, waits until every service has finished its part (its counters stand
still), and divides each service's change by the payments, less what the service does
when idle (clearing's polls, measured first for the same time). The steps:

- ``app``: the request document the app creates (one write; the app's own cost);
- ``edge``: the payment trigger, run as its use case on a project of its own on the same
  emulator with a recording publisher (the Functions emulator's worker has no /metrics),
  each request counted by ``firestore_calls.tally``;
- every consumer service (screening, ledger, clearing, notifier, insights, cards);
- ``push``: the push function's work (the customers' preferences and devices read) per
  push, measured on a side project like the edge's, times the pushes per payment (the
  run's customers each have a device: what the FCM sink took during the run, counted).

Internal and external payments enter the pipeline as the edge publishes them, each with
the app's request document as the edge leaves it (status ``requested``), so the notifier
shows the payment there, as it does for the app (`app_requests`); a card payment is an
authorisation and its capture from the processor simulator; a payment from another bank
(``incoming``, not in the default kinds) a credit in a pacs.008 the clearing house delivers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import requests

from bench.pipeline import admin_ledger, drive, make_payments, setup_population
from clientkit.push_devices import settings_path
from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank.adapters.firestore import async_client, sync_client
from fjordbank.adapters.firestore_calls import tally

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"
SAMPLE = re.compile(r"^fjb_firestore_(?P<what>calls|documents)_total\{(?P<labels>[^}]*)\} (?P<n>[0-9.e+]+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')
TARGETS = {"internal": 12, "external": 20}  # document operations per payment, end to end (#14)


def service_of(instance: str) -> str:
    return re.sub(r"-\d+$", "", instance)


def scrape(stack: Stack) -> dict[str, dict[str, float]]:
    """service -> {calls, reads, writes} summed over its instances."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0.0, "reads": 0.0, "writes": 0.0})
    for instance, port in stack.s.service_ports.items():
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        counts = out[service_of(instance)]
        for m in SAMPLE.finditer(text):
            labels = dict(LABEL.findall(m["labels"]))
            if m["what"] == "calls":
                counts["calls"] += float(m["n"])
                continue
            op = "reads" if labels.get("op") == "read" else "writes"
            counts[op] += float(m["n"])
            key = f"{op}:{labels.get('collection', '?')}"
            counts[key] = counts.get(key, 0.0) + float(m["n"])
    return dict(out)


def minus(a: dict, b: dict) -> dict[str, dict[str, float]]:
    return {s: {k: a[s][k] - b.get(s, {}).get(k, 0.0) for k in a[s]} for s in a}


def by_collection(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if ":" in k and v}


def settle(stack: Stack, idle: dict[str, dict[str, float]], *, still: float = 3.0, timeout: float = 120) -> dict:
    """Scrape until no service's counters moved (beyond its idle rate) for ``still`` s."""
    last, since, deadline = scrape(stack), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = scrape(stack)
        moved = any(
            now[s]["calls"] - last[s]["calls"] > idle.get(s, {}).get("calls", 0.0) * 1.0 + 0.5 for s in now if s in last
        )
        if moved:
            since = time.monotonic()
        elif time.monotonic() - since >= still:
            return now
        last = now
    return last


def idle_rates(stack: Stack, seconds: float) -> dict[str, dict[str, float]]:
    """What each service does per second with no payment in flight."""
    a = scrape(stack)
    time.sleep(seconds)
    return {s: {k: v / seconds for k, v in d.items()} for s, d in minus(scrape(stack), a).items()}


def per_payment(delta: dict, idle: dict, seconds: float, payments: int) -> dict[str, dict[str, float]]:
    out = {}
    for service, counts in sorted(delta.items()):
        row = {
            k: round(max(0.0, v - idle.get(service, {}).get(k, 0.0) * seconds) / payments, 2) for k, v in counts.items()
        }
        totals = {k: v for k, v in row.items() if ":" not in k}
        if any(totals.values()):
            out[service] = {**totals, "documents_by_collection": by_collection(row)}
    return out


def give_devices(project_id: str, uids: list[str]) -> None:
    """One phone per customer, as the app registers it (clientkit.push_devices)."""
    db = sync_client(project_id)
    for start in range(0, len(uids), 400):
        batch = db.batch()
        for uid in uids[start : start + 400]:
            phone = {"token": f"bench-{uid}", "platform": "ios"}
            batch.set(
                db.document(settings_path(uid)),
                {"devices": {"bench-phone": phone}, "changed": "bench-phone"},
                merge=True,
            )
        batch.commit()


def sink_seq(stack: Stack) -> int:
    """The FCM sink's last sequence number (0 when it took nothing yet)."""
    records = requests.get(f"{stack.fcm_sink_url}/sink/messages", params={"since": 0}, timeout=30).json()
    return max((r["seq"] for r in records), default=0)


def pushes_delivered(
    stack: Stack, since: int, *, still: float = 3.0, none_for: float = 30.0, timeout: float = 120
) -> int:
    """The pushes the FCM sink took after sequence number ``since``, once their count stood
    still for ``still`` seconds, or 0 once none came for ``none_for`` seconds. The push
    function works behind the notifier, and the Functions emulator runs one invocation at a
    time: after the through-app phase the first push of a kind can come more than
    ``still`` seconds after its last payment (a run counted 0 pushes, and no push reads)."""
    last, at, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = requests.get(f"{stack.fcm_sink_url}/sink/messages", params={"since": since}, timeout=30).json()
        if len(got) != last:
            last, at = len(got), time.monotonic()
        elif time.monotonic() - at >= (still if last else none_for):
            break
        time.sleep(1.0)
    return last


def push_delivery(project_id: str, pushes: int = 20) -> dict:
    """The push function's Firestore work per push (service_layer.push.deliver_batch, on a
    project of its own, to a customer with one device and default preferences), each push
    a message of its own: in a message of many, one read serves every customer in it."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.push import PushResult
    from fjordbank.service_layer import push

    class Sink:
        def send(self, token, *, title, body, data, collapse_id=None):
            return PushResult(token, ok=True, message_id="m")

    db = sync_client(f"{project_id}-push-{uuid.uuid4().hex[:6]}")
    uid = "bench-push"
    db.document(settings_path(uid)).set(
        {"devices": {"phone": {"token": "t" * 40, "platform": "ios"}}, "changed": "phone"}
    )
    docs = FirestoreDocuments(db)
    total: dict[str, float] = defaultdict(float)
    for i in range(pushes):
        item = {"uid": uid, "kind": "payments", "dedupeKey": f"k-{uuid.uuid4().hex}-{i}", "title": "t", "body": "b"}
        with tally() as counts:
            push.deliver_batch(docs, Sink(), {"pushes": [item]})
        for key in ("calls", "reads", "writes"):
            total[key] += counts[key]
    return {k: v / pushes for k, v in total.items()}


async def pipeline_kind(stack: Stack, kind: str, payments: int, idle: dict) -> tuple[dict, dict]:
    db = async_client(stack.s.project_id)
    pop = await setup_population(db, admin_ledger(db), max(20, payments // 5), "9710")
    batch = make_payments(pop, payments, random.Random(7), 0.0, 1.0 if kind == "external" else 0.0)
    await asyncio.to_thread(give_devices, stack.s.project_id, pop.uids)
    await app_requests(stack, db, batch)
    pushed = await asyncio.to_thread(sink_seq, stack)
    before, started = settle(stack, idle), time.monotonic()
    tracker = await drive(stack, batch, rate=None, timeout=300, on_request=True, owners=pop.owners)
    steps, seconds, per_payer = await asyncio.to_thread(steps_since, stack, idle, before, started, pushed, payments)
    statuses = [v[1] for v in tracker.done.values()]
    outcome = {
        "payments": payments,
        "completed": statuses.count("completed"),
        "seconds": round(seconds, 1),
        "pushes_per_payment": round(per_payer, 2),
    }
    return steps, outcome


def steps_since(
    stack: Stack, idle: dict, before: dict, started: float, pushed: int, payments: int
) -> tuple[dict, float, float]:
    """What each step did per payment since ``before`` (read once the stack stands still
    again), the push function's share included: (steps, seconds, pushes per payment)."""
    after = settle(stack, idle)
    seconds = time.monotonic() - started
    per_payer = pushes_delivered(stack, pushed) / payments
    steps = per_payment(minus(after, before), idle, seconds, payments)
    each = push_delivery(stack.s.project_id)
    steps["push"] = {k: round(v * per_payer, 2) for k, v in each.items()}
    return steps, seconds, per_payer


def incoming_kind(stack: Stack, payments: int, idle: dict) -> tuple[dict, dict]:
    """Payments from other banks: the clearing house's pacs.008 files (100 credits each) to
    the population's accounts, dropped into the clearing channel as the other banks deliver
    them (simulators.counterparty.send); done when every credit's ledger record is final.
    No app step and no edge: nobody here asked for them."""
    from simulators.counterparty import send

    async def population():
        db = async_client(stack.s.project_id)
        return await setup_population(db, admin_ledger(db), max(20, payments // 5), "9710")

    pop = asyncio.run(population())
    give_devices(stack.s.project_id, pop.uids)
    accounts = [account for _uid, account in pop.payers]
    credits = [send.Credit(accounts[i % len(accounts)], 10_000 + i) for i in range(payments)]
    pushed = sink_seq(stack)
    before, started = settle(stack, idle), time.monotonic()
    now = dt.datetime.now(dt.UTC)
    ids = []
    for start in range(0, payments, 100):
        batch = send.batch_of(credits[start : start + 100], now=now)
        send.deliver(stack.s.clearing_dir, batch)
        ids += [t.payment_id for t in batch.transfers]
    db = sync_client(stack.s.project_id)
    deadline = time.monotonic() + 300
    done: dict[str, str] = {}
    while len(done) < len(ids) and time.monotonic() < deadline:
        for start in range(0, len(ids), 300):
            wanted = [i for i in ids[start : start + 300] if i not in done]
            for snap in db.get_all([db.document(f"ledgerPayments/{i}") for i in wanted]):
                status = (snap.to_dict() or {}).get("status") if snap.exists else None
                if status in ("completed", "unapplied"):
                    done[snap.id] = status
        time.sleep(0.5)
    steps, seconds, per_payer = steps_since(stack, idle, before, started, pushed, payments)
    statuses = list(done.values())
    outcome = {
        "payments": payments,
        "completed": statuses.count("completed"),
        "seconds": round(seconds, 1),
        "pushes_per_payment": round(per_payer, 2),
    }
    return steps, outcome


def background_triggers(stack: Stack, *, on: bool) -> None:
    """The Functions emulator's Firestore and Pub/Sub triggers on or off, through the emulator
    hub (what the rules-unit-testing kit's withFunctionTriggersDisabled calls)."""
    verb = "enableBackgroundTriggers" if on else "disableBackgroundTriggers"
    hub = stack.s.emulator_ports["hub"]
    requests.put(f"http://127.0.0.1:{hub}/functions/{verb}", timeout=60).raise_for_status()


async def app_requests(stack: Stack, db, payments) -> None:
    """The app's request documents of ``payments`` as the edge leaves them (requested, with
    the payment's id), written with the background triggers off so the edge does not run
    for them: the edge's work is counted on its own project (`edge_kind`), and the app's
    write is the ``app`` step."""
    await asyncio.to_thread(background_triggers, stack, on=False)
    try:
        for start in range(0, len(payments), 400):
            batch = db.batch()
            for p in payments[start : start + 400]:
                batch.set(
                    db.document(f"users/{p.uid}/paymentRequests/{p.request_id}"),
                    {
                        "fromAccount": p.from_account,
                        "toAccount": p.to_account,
                        "amount": p.amount,
                        "currency": p.currency,
                        "dueDate": p.due_date,
                        "status": "requested",
                        "statusRank": 2,
                        "paymentId": p.payment_id,
                    },
                )
            await batch.commit()
    finally:
        await asyncio.to_thread(background_triggers, stack, on=True)


def card_kind(stack: Stack, payments: int, idle: dict) -> tuple[dict, dict]:
    from bankctl import config as bankctl_config
    from bankctl.customers import Bank
    from bench.cards import issue_cards

    bank = Bank(bankctl_config.load())
    network = bank.card_network()  # the card network's side, through the client kit
    cards = issue_cards(bank, network, 2)
    give_devices(stack.s.project_id, [card["uid"] for card in cards])
    proc = network.processor
    pushed = sink_seq(stack)
    before, started = settle(stack, idle), time.monotonic()
    captured = 0
    for i in range(payments):
        card = cards[i % len(cards)]
        answer = proc.authorize(
            pan=card["pan"], exp_month=card["exp_month"], exp_year=card["exp_year"], cvv=card["cvv"], amount=1_000 + i
        )
        if answer.get("approved"):
            status, _body = proc.capture(answer["reference"])
            captured += status == 200
    steps, _seconds, per_payer = steps_since(stack, idle, before, started, pushed, payments)
    return steps, {"payments": payments, "captured": captured, "pushes_per_payment": round(per_payer, 2)}


def edge_kind(kind: str, payments: int, bank_regs: tuple[str, ...], project_id: str) -> dict:
    """The payment trigger's use case on a project no trigger listens to (see module doc)."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer import edge

    class Recorder:
        def publish_json(self, *_a, **_k):
            return None

    db = sync_client(f"{project_id}-edge-{uuid.uuid4().hex[:6]}")
    uid = "bench-edge"
    payer, payee, outside = "97100000028", "97100000036", "15030000002"
    db.document(f"accounts/{payer}").set({"ownerUid": uid, "status": "open", "currency": "NOK"})
    db.document(f"accounts/{payee}").set({"ownerUid": "other", "status": "open", "currency": "NOK"})
    db.document(f"screeningCustomers/{uid}").set({"payees": [payee, outside]})
    to = outside if kind == "external" else payee
    total: dict[str, float] = defaultdict(float)
    now = dt.datetime.now(dt.UTC)
    for i in range(payments):
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        body = {"v": 1, "fromAccount": payer, "toAccount": to, "amount": 1_000 + i, "currency": "NOK"}
        created = db.document(f"users/{uid}/paymentRequests/{request_id}").create(body).update_time
        # spread over time as a customer's payments are (the rate limit is not what this counts)
        at = now - dt.timedelta(hours=i)
        with tally() as counts:
            status = edge.handle_payment_request(
                FirestoreDocuments(db),
                Recorder(),
                uid=uid,
                request_id=request_id,
                body=body,
                bank_regs=bank_regs,
                clock=lambda at=at: at,
                created=created,  # the trigger's creation snapshot
            )
        assert status in ("requested", "scheduled"), status
        for key in ("calls", "reads", "writes"):
            total[key] += counts[key]
    return {k: round(v / payments, 2) for k, v in total.items()}


def summarise(steps: dict[str, dict[str, float]]) -> dict:
    return {
        "documents": round(sum(s["reads"] + s["writes"] for s in steps.values()), 2),
        "reads": round(sum(s["reads"] for s in steps.values()), 2),
        "writes": round(sum(s["writes"] for s in steps.values()), 2),
        "round_trips": round(sum(s["calls"] for s in steps.values()), 2),
    }


def measure(stack: Stack, kinds: list[str], payments: int, idle_seconds: float = 10.0) -> dict:
    from fjordbank.config import load_settings

    for key, value in stack.emulator_hosts().items():
        os.environ[key] = value
    bank_regs = load_settings({**os.environ, **stack.nats_env("edge")}).bank_regs
    print(f"idle: {idle_seconds:.0f} s with no payments ...", flush=True)
    idle = idle_rates(stack, idle_seconds)
    result: dict = {"idle_per_s": idle, "kinds": {}}
    for kind in kinds:
        print(f"{kind}: {payments} payments ...", flush=True)
        if kind == "card":
            steps, outcome = card_kind(stack, payments, idle)
        elif kind == "incoming":
            steps, outcome = incoming_kind(stack, payments, idle)
        else:
            steps, outcome = asyncio.run(pipeline_kind(stack, kind, payments, idle))
            steps = {
                "app": {"calls": 1.0, "reads": 0.0, "writes": 1.0},
                "edge": edge_kind(kind, min(payments, 50), bank_regs, stack.s.project_id),
                **steps,
            }
        entry = {"outcome": outcome, "per_step": steps, "total": summarise(steps)}
        if kind in TARGETS:
            entry["target_documents"] = TARGETS[kind]
        result["kinds"][kind] = entry
        print(f"  {json.dumps(entry)}", flush=True)
    return result


def draw_steps(ax, kinds: dict) -> None:
    """Documents read + written per payment, a bar per kind stacked by step (``kinds``:
    `measure`'s "kinds")."""
    names = list(kinds)
    steps = sorted({s for k in names for s in kinds[k]["per_step"]})
    bottom = [0.0] * len(names)
    for step in steps:
        vals = [
            kinds[k]["per_step"].get(step, {}).get("reads", 0) + kinds[k]["per_step"].get(step, {}).get("writes", 0)
            for k in names
        ]
        ax.bar(names, vals, bottom=bottom, label=step)
        bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
    ax.set_ylabel("documents read + written per payment")
    ax.set_title("Firestore documents per payment, by step")
    ax.legend(fontsize=8)


def plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    draw_steps(ax, result["kinds"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.docops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--payments", type=int, default=200)
    kinds = ["internal", "external", "card", "incoming"]
    parser.add_argument("--kinds", nargs="+", default=kinds[:3], choices=kinds)
    parser.add_argument("--out", type=Path, default=ARTIFACTS / "docops.json")
    args = parser.parse_args(argv)
    stack = Stack(stack_settings.load(), progress=lambda _m: None)
    if not all(r.state == "ready" for r in stack.status()):
        raise SystemExit("the stack is not running: start it with `make up` (or make up-detached)")
    stack.jobs_by_hand()
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.docops", *(sys.argv[1:] if argv is None else argv)]),
        **measure(stack, args.kinds, args.payments),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(args.out.with_suffix(".png"), result)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
