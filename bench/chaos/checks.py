"""What a chaos run checks afterwards; each failed check is a finding (a line of text)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

from bench.chaos.load import Run
from bench.soak import loaded_functions, verdict
from devstack.stack import Stack
from fjordbank import topology

NOT_FINAL = ("not final (timeout)", "not sent")


async def _nats_state(stack: Stack) -> dict:
    """Per consumer: pending and unacknowledged; the DLQ stream's message count."""
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    settings = load_settings({**os.environ, **stack.nats_env("admin")})
    nc = await nats_conn.connect(settings.nats, name="chaos-check", max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        consumers = {}
        for spec in topology.DURABLES:  # every partition's durable
            info = await js.consumer_info(spec.stream, spec.durable)
            consumers[spec.durable] = {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
        dlq = (await js.stream_info(topology.STREAM_DLQ)).state.messages
        return {"consumers": consumers, "dlq": dlq}
    finally:
        await nc.close()


def nats_state(stack: Stack) -> dict:
    return asyncio.run(_nats_state(stack))


def wait_drained(stack: Stack, deadline_s: float) -> dict:
    end = time.monotonic() + deadline_s
    while True:
        state = nats_state(stack)
        busy = {k: v for k, v in state["consumers"].items() if v["pending"] or v["ack_pending"]}
        if not busy or time.monotonic() > end:
            return state
        time.sleep(1)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def load_findings(run: Run) -> list[str]:
    findings = []
    for b in run.batches:
        if b["error"]:
            findings.append(f"load batch at +{b['started']}s failed: {b['error']}")
        bad = {k: v for k, v in b["statuses"].items() if k in NOT_FINAL}
        if bad:
            findings.append(f"load batch at +{b['started']}s: payments not final: {bad}")
    if not run.latencies:
        findings.append("no payment finished")
    return findings


def stack_findings(run: Run, *, before: dict, after: dict, audit, stack: Stack, max_workers: int) -> list[str]:
    findings = []
    if not audit.ok:
        findings.append(f"the ledger audit found {len(audit.problems)} problem(s), e.g. {audit.problems[:2]}")
    if after["dlq"] != before["dlq"]:
        findings.append(f"the dead-letter stream grew from {before['dlq']} to {after['dlq']} messages")
    busy = {k: v for k, v in after["consumers"].items() if v["pending"] or v["ack_pending"]}
    if busy:
        findings.append(f"consumers not drained: {busy}")
    not_ready = [f"{r.component} ({r.state})" for r in stack.status() if r.state != "ready"]
    if not_ready:
        findings.append(f"components not ready afterwards: {', '.join(not_ready)}")
    for fault in run.faults:
        if fault.error:
            findings.append(f"{fault.kind} {fault.targets} at +{fault.start}s: {fault.error}")
    # processes and memory (bench.soak's verdict): the workers' bound and memory growth;
    # a killed component's restart changes its process count for a moment, so not that
    functions = loaded_functions(stack.sup.log_file("emulators"))
    findings += [
        f
        for f in verdict(run.samples, max_workers=max_workers, functions=functions, max_growth=0.5)
        if "processes grew" not in f
    ]
    return findings


def outage_windows(run: Run) -> list[tuple[float, float]]:
    """Epoch windows in which the other bank could not be reached (a ``clearing-down``
    fault's ``detail["window"]``): an external payment in flight then waits for the channel
    by design, however well the bank does."""
    faults = [f for f in run.faults if f.kind == "clearing-down" and (f.detail or {}).get("window")]
    return [(f.detail["window"][0], f.detail["window"][1]) for f in faults]


def latencies_outside_outages(run: Run) -> list[float]:
    """Time to final of the payments not in flight during a clearing outage (internal ones
    in flight then are left out too: LoadRun does not say which payment went where)."""
    windows = outage_windows(run)
    return [
        s
        for s, (sent, final) in zip(run.latencies, run.intervals, strict=False)
        if not any(sent < end and final > start for start, end in windows)
    ]


def _epoch(ts) -> float | None:
    """Seconds since the epoch of a Firestore timestamp (a datetime, or the protobuf
    Timestamp a snapshot's create_time may be); None for anything else."""
    if hasattr(ts, "timestamp"):
        return ts.timestamp()
    if hasattr(ts, "ToDatetime"):
        return ts.ToDatetime(tzinfo=dt.UTC).timestamp()
    return None


def slowest(db, run: Run, n: int = 20) -> list[dict]:
    """The ``n`` slowest payments to final of the p99 goal's population (none in flight
    during a clearing outage: `latencies_outside_outages`), each with where its time went
    (the request's timeline, seconds after the app created it) and the faults under way
    meanwhile: what explains the tail of time to final."""
    from fjordbank.adapters.firestore import request_path

    windows = outage_windows(run)
    timed = [
        (s, (sent, final), r)
        for s, (sent, final), r in zip(run.latencies, run.intervals, run.request_ids, strict=False)
        if not any(sent < end and final > start for start, end in windows)
    ]
    picked = sorted(timed, key=lambda x: x[0], reverse=True)[:n]
    refs = [db.document(request_path(run.payers[r], r)) for _s, _i, r in picked if r in run.payers]
    snaps = {s.id: s for s in db.get_all(refs) if s.exists} if refs else {}
    out = []
    for seconds, (sent, final), request_id in picked:
        snap = snaps.get(request_id)
        created = _epoch(snap.create_time) if snap is not None else None
        steps = ((snap.to_dict() or {}).get("timeline") or {}) if snap is not None else {}
        at = {k: _epoch(v) for k, v in steps.items()}
        timeline = {
            k: round(v - created, 2)
            for k, v in sorted(at.items(), key=lambda kv: kv[1] or 0)
            if created is not None and v is not None
        }
        during = [
            f"{f.kind} {','.join(f.targets)}"
            for f in run.faults
            if run.started + f.start < final and run.started + (f.end or f.start + f.seconds) > sent
        ]
        out.append(
            {
                "request": request_id,
                "sent_s": round(sent - run.started, 1),
                "seconds": round(seconds, 2),
                "timeline": timeline,
                "faults": during,
            }
        )
    return out


def latency_findings(run: Run, max_p99: float) -> list[str]:
    """The p99 goal, on the payments no clearing outage held (all of them without one)."""
    p99 = quantile(latencies_outside_outages(run), 0.99)
    if max_p99 and p99 is not None and p99 > max_p99:
        return [f"time to final p99 {p99}s is above {max_p99}s (payments not held by a clearing outage)"]
    return []


# ---- the run's own payments, cards and standing orders (read once, checked as plain data) -----
FEED_STATUS = {"completed": "posted", "failed": "cancelled"}  # the payer's entry of a final payment
PUSHED = ("completed", "failed", "rejected")  # final states that push (fjordbank.domain.notifications)


def _get_all(db, refs: list) -> dict[str, dict | None]:
    """path -> document (None: missing), 300 references a call."""
    out: dict[str, dict | None] = {}
    for i in range(0, len(refs), 300):
        for snap in db.get_all(refs[i : i + 300]):
            out[snap.reference.path] = (snap.to_dict() or {}) if snap.exists else None
    return out


def collect_payments(db, run: Run) -> list[dict]:
    """Every final payment of the run as the checks see it: what was asked (the request
    document, or the standing order), the state the notifier showed (``view``), the
    ledger's record, the payee's owner and the feed entries of both accounts."""
    from fjordbank.adapters.firestore import (
        ACCOUNTS,
        LEDGER_PAYMENTS,
        PAYMENT_VIEWS,
        TRANSACTIONS,
        request_path,
    )
    from fjordbank.domain.payments import TERMINAL, payment_id_for

    with run.lock:
        asked = [(rid, uid) for rid, uid in run.payers.items() if run.statuses.get(rid) in TERMINAL]
        orders = list(run.orders)
    requests_ = _get_all(db, [db.document(request_path(uid, rid)) for rid, uid in asked])
    payments = []
    for rid, uid in asked:
        doc = requests_.get(request_path(uid, rid)) or {}
        payments.append(
            {
                "paymentId": payment_id_for(uid, rid),
                "uid": uid,
                "requestId": rid,
                "fromAccount": doc.get("fromAccount"),
                "toAccount": doc.get("toAccount"),
                "amount": doc.get("amount"),
                "status": doc.get("status"),
                # The notifier keeps its record of a payment the app asked for on the
                # request document (fjordbank.domain.feed.PROJECTED), not in a view.
                "view": doc.get("projectedStatus"),
            }
        )
    for o in orders:
        payments.append(
            {
                "paymentId": o["paymentId"],
                "uid": o["uid"],
                "requestId": o["requestId"],
                "fromAccount": o["fromAccount"],
                "toAccount": o["toAccount"],
                "amount": o["amount"],
                "status": None,  # no request document: the bank starts it; the view tells
                "orderId": o["orderId"],
            }
        )
    views = _get_all(db, [db.collection(PAYMENT_VIEWS).document(p["paymentId"]) for p in payments])
    ledger = _get_all(db, [db.collection(LEDGER_PAYMENTS).document(p["paymentId"]) for p in payments])
    accounts = _get_all(db, [db.collection(ACCOUNTS).document(a) for a in {p["toAccount"] for p in payments} if a])
    entry_refs = [
        db.collection(ACCOUNTS).document(a).collection(TRANSACTIONS).document(p["paymentId"])
        for p in payments
        for a in (p["fromAccount"], p["toAccount"])
        if a
    ]
    entries = _get_all(db, entry_refs)
    for p in payments:
        view = views.get(f"{PAYMENT_VIEWS}/{p['paymentId']}")
        if view is not None or p.get("view") is None:
            p["view"] = view.get("status") if view else None
        if p["status"] is None:
            p["status"] = p["view"]
        p["ledger"] = ledger.get(f"{LEDGER_PAYMENTS}/{p['paymentId']}")
        payee = accounts.get(f"{ACCOUNTS}/{p['toAccount']}")
        p["payeeUid"] = payee.get("ownerUid") if payee else None
        p["entries"] = {
            a: entries.get(f"{ACCOUNTS}/{a}/{TRANSACTIONS}/{p['paymentId']}")
            for a in (p["fromAccount"], p["toAccount"])
            if a and entries.get(f"{ACCOUNTS}/{a}/{TRANSACTIONS}/{p['paymentId']}") is not None
        }
    return payments


def _some(items: list[str], n: int = 3) -> str:
    return "; ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def lost_findings(db, run: Run) -> list[str]:
    """The payment requests of the run that never became final, by name and with the state
    they were left in (a consumer that loses a message leaves its payment there)."""
    from fjordbank.adapters.firestore import request_path

    with run.lock:
        stuck = dict(run.unfinished)
    if not stuck:
        return []
    docs = _get_all(db, [db.document(request_path(uid, rid)) for rid, uid in stuck.items()])
    where = [
        f"{rid} at {(docs.get(request_path(uid, rid)) or {}).get('status', 'no document')!r}"
        for rid, uid in sorted(stuck.items())
    ]
    return [f"{len(where)} payment request(s) never final (lost?): {_some(where, 5)}"]


def expected_entries(p: dict) -> dict[str, dict]:
    """account -> the feed entry the notifier must show for a final payment ``p``
    (fjordbank.domain.notifications.transaction_entries): the payer's entry for a
    completed (posted) or failed (cancelled) payment, and the payee's when an internal
    payment to an account with an owner completed. A payment rejected by screening or at
    the edge, or cancelled before its due date, has none."""
    status = FEED_STATUS.get(p["status"])
    if status is None:
        return {}
    out = {p["fromAccount"]: {"amount": -p["amount"], "status": status, "counterpartyAccount": p["toAccount"]}}
    if p["status"] == "completed" and p.get("payeeUid"):
        out[p["toAccount"]] = {"amount": p["amount"], "status": "posted", "counterpartyAccount": p["fromAccount"]}
    return out


def _entry_problems(p: dict) -> list[str]:
    """How the feed of final payment ``p`` differs from what it must show: a view that
    disagrees with the request, and each entry missing, extra or unequal to its payment."""
    pid = p["paymentId"]
    wrong: list[str] = []
    if p.get("view") is not None and p["view"] != p["status"]:
        wrong.append(f"{pid}: the request shows {p['status']!r}, the notifier's view {p['view']!r}")
    want = expected_entries(p)
    got = p.get("entries") or {}
    for account in sorted(set(want) | set(got)):
        w, g = want.get(account), got.get(account)
        if w is None:
            wrong.append(f"{pid} ({p['status']}): an entry on {account} that should not be there")
        elif g is None:
            wrong.append(f"{pid} ({p['status']}): no entry on {account}")
        else:
            diff = {k: (g.get(k), v) for k, v in w.items() if g.get(k) != v}
            if diff:
                wrong.append(f"{pid} on {account}: " + ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in diff.items()))
    return wrong


def _ledger_problems(p: dict) -> list[str]:
    """How the ledger's record of payment ``p`` disagrees with it: other accounts or amount,
    not completed for a completed payment, booked for a rejected or cancelled one."""
    pid = p["paymentId"]
    ledger: list[str] = []
    rec = p.get("ledger")
    if rec is not None:
        same = (rec.get("fromAccount"), rec.get("toAccount"), rec.get("amount")) == (
            p["fromAccount"],
            p["toAccount"],
            p["amount"],
        )
        if not same:
            ledger.append(f"{pid}: the ledger booked another payment than asked")
    booked = rec.get("status") if rec else None
    if (p["status"] == "completed" and booked != "completed") or (
        p["status"] in ("rejected", "cancelled") and rec is not None
    ):
        ledger.append(f"{pid}: shows {p['status']!r}, the ledger's record is {booked!r}")
    elif p["status"] == "failed" and booked not in (None, "failed"):
        ledger.append(f"{pid}: shows 'failed', the ledger's record is {booked!r}")
    return ledger


def feed_findings(payments: list[dict]) -> list[str]:
    """Every feed entry of the run's final payments equal to its payment (amount, status,
    counterparty), none missing and none for a payment that shows none; and the ledger's
    record of each payment agreeing with it (the same accounts and amount, completed for a
    completed payment, nothing booked for a rejected one)."""
    wrong: list[str] = []
    ledger: list[str] = []
    for p in payments:
        wrong += _entry_problems(p)
        ledger += _ledger_problems(p)
    findings = []
    if wrong:
        findings.append(f"{len(wrong)} feed entr(y/ies) not equal to their payment: {_some(wrong)}")
    if ledger:
        findings.append(f"{len(ledger)} payment(s) the ledger disagrees with: {_some(ledger)}")
    return findings


def expected_pushes(payments: list[dict], tokens: dict[str, str]) -> set[tuple[str, str, str]]:
    """(token, payment id, status) of each push the run's final payments must cause once:
    the payer's for completed, failed or rejected (when the payment reached the notifier:
    a request refused at the edge is shown on its document, not pushed), and the payee's
    "received" for an internal payment completed to another customer."""
    out = set()
    for p in payments:
        if p.get("view") not in PUSHED or p["view"] != p["status"]:
            continue
        if p["uid"] in tokens:
            out.add((tokens[p["uid"]], p["paymentId"], p["view"]))
        payee = p.get("payeeUid")
        if p["view"] == "completed" and payee and payee != p["uid"] and payee in tokens:
            out.add((tokens[payee], p["paymentId"], "received"))
    return out


Sent = dict[tuple[str, str, str], list[str | None]]  # (token, payment id, status) -> each send's collapse id


def pushes_of(messages: list[dict], tokens: dict[str, str]) -> Sent:
    """(token, payment id, status) -> the collapse id of each time the FCM sink got it (the
    run's phones only; fjordbank.service_layer.push.collapse_id)."""
    mine = set(tokens.values())
    sent: Sent = {}
    for record in messages:
        m = record.get("message") or {}
        data = m.get("data") or {}
        if m.get("token") in mine and data.get("paymentId"):
            key = (m["token"], data["paymentId"], data.get("status", ""))
            sent.setdefault(key, []).append(((m.get("android") or {}).get("notification") or {}).get("tag"))
    return sent


def push_findings(expected: set[tuple[str, str, str]], sent: Sent) -> list[str]:
    """Each push shown exactly once: none missing, none shown twice, none for a state not
    reached. Delivery is at least once (fjordbank.service_layer.push): a push sent again
    under the same collapse id replaces itself on the phone; sent under another, or with
    none, it shows twice."""
    missing = sorted(f"{pid} {status}" for _t, pid, status in expected if not sent.get((_t, pid, status)))
    twice = sorted(
        f"{pid} {status} x{len(ids)}"
        for (_t, pid, status), ids in sent.items()
        if len(ids) > 1 and (len(set(ids)) > 1 or None in ids)
    )
    stray = sorted(f"{pid} {status}" for key in sent if key not in expected for _t, pid, status in [key])
    findings = []
    if missing:
        findings.append(f"{len(missing)} push(es) never sent: {_some(missing)}")
    if twice:
        findings.append(f"{len(twice)} push(es) shown more than once: {_some(twice)}")
    if stray:
        findings.append(f"{len(stray)} push(es) for a state the payment does not show: {_some(stray)}")
    return findings


def sink_messages(stack: Stack) -> list[dict]:
    """What the local FCM sink recorded (its store file, one JSON line per message)."""
    import json

    path = stack.s.state_dir / "fcm-sink.jsonl"
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(entry, dict) and entry.get("kind") == "message":
            out.append(entry)
    return out


def wait_pushes(stack: Stack, expected: set, tokens: dict[str, str], deadline_s: float) -> Sent:
    """What the sink got once every expected push has arrived, or at the deadline (pushes
    go through Pub/Sub and the push function after the notifier's commit)."""
    end = time.monotonic() + deadline_s
    while True:
        sent = pushes_of(sink_messages(stack), tokens)
        if all(sent.get(k) for k in expected) or time.monotonic() > end:
            return sent
        time.sleep(2)


def standing_order_findings(
    orders: list[dict], docs: dict[str, dict | None], payments: dict[str, dict], w: dict, balances: dict
) -> list[str]:
    """Each standing order of the run paid exactly once on its due date: one run for the
    day, submitted, its payment completed and booked once (the ledger's one posting), and
    the payer's balance its deposit less each order's amount once (the payee's, the
    internal ones' sum): a second payment of a due date, under any id, shows there."""
    if w.get("setup_error"):
        return [f"standing orders: the workload did not start: {w['setup_error']}"]
    if not orders:
        return [f"standing orders: none was made ({w.get('last_create_error')})"]
    wrong = []
    paid = received = 0
    for o in orders:
        doc = docs.get(o["orderId"])
        if doc is None:
            wrong.append(f"{o['orderId']}: no order document")
            continue
        runs = [r for r in doc.get("runs") or [] if r.get("date") == o["day"]]
        if len(runs) != 1:
            wrong.append(f"{o['orderId']}: {len(runs)} runs on {o['day']}")
        elif runs[0].get("status") != "submitted":
            wrong.append(f"{o['orderId']}: its run on {o['day']} {runs[0].get('status')} ({runs[0].get('reason')})")
        p = payments.get(o["paymentId"]) or {}
        rec = p.get("ledger") or {}
        if p.get("view") != "completed":
            wrong.append(f"{o['orderId']}: its payment is {p.get('view') or 'not seen'!r}, not completed")
        steps = ["debit", "credit"] if o["kind"] == "internal" else ["settle"]
        if rec.get("status") == "completed":
            paid += o["amount"]
            received += o["amount"] if o["kind"] == "internal" else 0
            if rec.get("postingIds") != [f"{o['paymentId']}:{s}" for s in steps]:
                wrong.append(f"{o['orderId']}: booked as {rec.get('postingIds')}")
    findings = [f"{len(wrong)} standing order(s) not paid exactly once: {_some(wrong)}"] if wrong else []
    payer, payee = w.get("payer"), w.get("payee")
    if orders and payer in balances and balances[payer] != w["deposit"] - paid:
        findings.append(
            f"standing orders: the payer's balance is {balances[payer]}, not {w['deposit'] - paid} "
            f"(deposit {w['deposit']} less {paid} paid once)"
        )
    if orders and payee in balances and balances[payee] != w.get("payee_deposit", 0) + received:
        findings.append(f"standing orders: the payee's balance is {balances[payee]}, not {received} received once")
    return findings


def _auth_problem(a: dict, rec: dict | None) -> str | None:
    """What is wrong with card authorisation ``a`` given its record ``rec``, or None when
    it was decided to the end."""
    state = rec.get("status") if rec else None
    ref, outcome = a["reference"], a.get("outcome")
    if outcome == "approved":
        if not a.get("captured"):
            return f"{ref}: approved, capture answered {a.get('capture_answer')!r}"
        if state != "captured" or rec.get("capturedAmount") != a["amount"]:
            return f"{ref}: captured, its record is {state!r}"
    elif outcome == "declined":
        if state != "declined":
            return f"{ref}: declined ({a.get('reason')}), its record is {state!r}"
    elif outcome in ("error", "timeout"):
        if not a.get("reversal"):
            return f"{ref}: no answer, and its reversal was not delivered"
        if state not in (None, "reversed", "declined"):
            return f"{ref}: no answer and reversed, its record is {state!r}"
    elif outcome is None:
        return f"{ref}: sent, the run never saw its outcome"
    return None


def card_findings(auths: list[dict], records: dict[str, dict | None], w: dict) -> list[str]:
    """Card authorisations all decided: every approval captured (its record "captured",
    for its amount), every decline recorded as declined, every one without an answer
    reversed (no record, or "reversed", or the decline it got): no hold left behind
    ("approved" at the end) and no retry of the processor's left undelivered."""
    if w.get("setup_error"):
        return [f"cards: the workload did not start: {w['setup_error']}"]
    wrong = [problem for a in auths if (problem := _auth_problem(a, records.get(a["reference"])))]
    if not auths:
        return ["cards: no authorisation was sent"]
    if not any(a.get("outcome") in ("approved", "declined") for a in auths):
        wrong.append("no authorisation was decided")
    return [f"{len(wrong)} card authorisation(s) not decided to the end: {_some(wrong)}"] if wrong else []


def workload_findings(stack: Stack, db, run: Run, *, push_wait_s: float = 90.0) -> tuple[list[str], dict]:
    """The checks of the run's own payments, pushes, feed, standing orders and cards (after
    the consumers have drained). Returns (findings, figures for the result)."""
    from fjordbank.adapters.firestore import ACCOUNTS, CARD_AUTHORIZATIONS, STANDING_ORDERS, user_doc
    from fjordbank.domain.cards import authorization_id

    payments = collect_payments(db, run)
    with run.lock:
        tokens = dict(run.tokens)
        orders = list(run.orders)
        auths = [dict(a) for a in run.card_auths]
    expected = expected_pushes(payments, tokens)
    sent = wait_pushes(stack, expected, tokens, push_wait_s)
    by_pid = {p["paymentId"]: p for p in payments}
    docs = _get_all(db, [user_doc(db, o["uid"], STANDING_ORDERS, o["orderId"]) for o in orders])
    order_docs = {o["orderId"]: docs.get(f"users/{o['uid']}/{STANDING_ORDERS}/{o['orderId']}") for o in orders}
    so = run.workloads.get("standing_orders", {})
    accounts = [a for a in (so.get("payer"), so.get("payee")) if a]
    balances = {
        path.rsplit("/", 1)[1]: doc.get("balance")
        for path, doc in _get_all(db, [db.collection(ACCOUNTS).document(a) for a in accounts]).items()
        if doc
    }
    cards_w = run.workloads.get("cards", {})
    records = _get_all(
        db, [db.collection(CARD_AUTHORIZATIONS).document(authorization_id(a["reference"])) for a in auths]
    )
    by_ref = {a["reference"]: records.get(f"{CARD_AUTHORIZATIONS}/{authorization_id(a['reference'])}") for a in auths}
    findings = (
        lost_findings(db, run)
        + push_findings(expected, sent)
        + feed_findings(payments)
        + (
            standing_order_findings(orders, order_docs, by_pid, so, balances)
            if "standing_orders" in run.workloads
            else []
        )
        + (card_findings(auths, by_ref, cards_w) if "cards" in run.workloads else [])
    )
    undelivered = cards_w.get("undelivered_reversals", []) + cards_w.get("undelivered_captures", [])
    if undelivered:
        findings.append(f"cards: {len(undelivered)} reversal(s)/capture(s) never delivered: {_some(undelivered)}")
    figures = {
        "payments_checked": len(payments),
        "pushes_expected": len(expected),
        "pushes_seen": sum(1 for k in expected if sent.get(k)),
        "pushes_sent_again": sum(len(ids) - 1 for ids in sent.values()),  # same collapse id: shown once
    }
    return findings, figures
