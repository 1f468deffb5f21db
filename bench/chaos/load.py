"""The load of a chaos run, through the app's surface, each workload in its own thread
until ``stop``:

* payments: `bankctl load` batches (customers onboarded through the real path, payments
  written as the app writes them, a share to other banks through clearing);
* cards: authorisations and captures through the card processor's signed API, as a card
  network sends them (``cards``);
* standing orders falling due: orders made with the app's callable, due today, paid by the
  due-payments job, which is queued as Cloud Scheduler queues it (``standing_orders``).

Every customer of the run registers a phone (``DeviceBank``), so each push a payment
causes reaches the FCM sink, where the checks count them (bench/chaos/checks.py).
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import threading
import time
from dataclasses import dataclass, field

from clientkit.push_devices import settings_path


@dataclass
class Run:
    """What a chaos run has seen so far (threads append under ``lock``)."""

    started: float = field(default_factory=time.time)
    faults: list = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)  # payments final so far, once a second
    latencies: list[float] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # epoch (sent, final), as latencies
    request_ids: list[str] = field(default_factory=list)  # every final payment request
    samples: list[dict] = field(default_factory=list)
    workloads: dict[str, dict] = field(default_factory=dict)  # other workloads' own figures
    payers: dict[str, str] = field(default_factory=dict)  # request id -> uid, every final payment request
    statuses: dict[str, str] = field(default_factory=dict)  # request id -> the final status the app saw
    unfinished: dict[str, str] = field(default_factory=dict)  # request id -> uid, sent and never final
    tokens: dict[str, str] = field(default_factory=dict)  # uid -> the push token of its phone (DeviceBank)
    card_auths: list[dict] = field(default_factory=list)  # one per authorisation sent (cards)
    orders: list[dict] = field(default_factory=list)  # one per standing order made (standing_orders)
    current: object | None = None  # the LoadRun in hand, for completions per second
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> int:
        """Payments final so far, the batch in hand's included."""
        with self.lock:
            current = len(self.current.finished) if self.current is not None else 0  # type: ignore[attr-defined]
            return len(self.latencies) + current


def payments(bank, run: Run, stop: threading.Event, batch: dict) -> None:
    """bankctl load batches until ``stop``; every final status's time kept."""
    from bankctl.load import LoadRun
    from bankctl.load import run_load as load_batch

    while not stop.is_set():
        lr = LoadRun(
            payments=batch["payments"],
            customers=batch["customers"],
            concurrency=batch["concurrency"],
            max_amount=50_000,
            external_share=batch["external"] / 100,
            timeout=batch["timeout"],
        )
        started = time.time()
        with run.lock:
            run.current = lr
        try:
            summary = load_batch(bank, lr, log=lambda _m: None)
            error = None
        except Exception as exc:  # noqa: BLE001 - kept as the batch's result, judged below
            summary, error = {}, f"{type(exc).__name__}: {exc}"
        with lr.lock:
            finished = list(lr.finished.items())
            # epoch of each request's start and end (LoadRun keeps monotonic starts)
            offset = time.time() - time.monotonic()
            intervals = [(lr.started[k] + offset, lr.started[k] + offset + s) for k, (_st, _r, s) in finished]
            unfinished = {r: lr.payer[r] for r in lr.started if r not in lr.finished and r in lr.payer}
        with run.lock:
            run.current = None
            run.latencies.extend(s for _key, (_status, _r, s) in finished)
            run.intervals.extend(intervals)
            run.request_ids.extend(k for k, _v in finished)
            run.unfinished.update(unfinished)
            for request_id, (status, _r, _s) in finished:
                if request_id in lr.payer:
                    run.payers[request_id] = lr.payer[request_id]
                    run.statuses[request_id] = status
            run.batches.append(
                {
                    "started": round(started - run.started, 1),
                    "seconds": round(time.time() - started, 1),
                    "statuses": summary.get("statuses", {}),
                    "error": error,
                }
            )
        print(f"chaos: batch {len(run.batches)}: {summary.get('statuses') or error}", flush=True)


def count_completions(run: Run, stop: threading.Event) -> None:
    """Payments final so far, once a second (completions per second for the plot)."""
    while not stop.wait(1.0):
        run.completions.append(run.done())


# ---- phones: every customer of the run can be pushed to -------------------------------------
def _bank_class():
    from bankctl.customers import Bank

    class DeviceBank(Bank):
        """bankctl's Bank whose customers each register a phone when they sign in, as the app
        does (clientkit.push_devices: written as the user, under the rules), so every push
        their payments cause reaches the FCM sink. ``tokens``: uid -> token."""

        def __init__(self, config, tokens: dict[str, str]) -> None:
            super().__init__(config)
            self.tokens = tokens
            self._devices_lock = threading.Lock()

        def session(self, uid, identity=None):
            session = super().session(uid, identity)
            with self._devices_lock:
                known = uid in self.tokens
            if not known:
                token = f"chaos-{secrets.token_hex(12)}"
                with session.errors("registering the phone"):
                    phone = f"chaos-{secrets.token_hex(4)}"
                    session.db.document(settings_path(uid)).set(
                        {"devices": {phone: {"token": token, "platform": "android"}}, "changed": phone}, merge=True
                    )
                with self._devices_lock:
                    self.tokens[uid] = token
            return session

    return DeviceBank


def device_bank(config, run: Run):
    """A bankctl Bank for the run whose customers' push tokens land in ``run.tokens``."""
    return _bank_class()(config, run.tokens)


def _customer(bank, label: str, deposit: int):
    """``label``: letters only (it is the customer's surname: onboarding refuses digits)."""
    made = bank.ensure_customer(
        name=f"Kaos {label.title()}", email=f"chaos-{label}-{secrets.token_hex(6)}@fjordbank.example", deposit=deposit
    )
    if made.status != "approved" or not made.account:
        raise RuntimeError(f"{label} customer is {made.status}")
    return made, bank.session(made.uid)


# ---- cards: authorisations and captures through the card processor's API ---------------------
CARD_PAUSE_S = 1.0  # between two authorisations: a modest rate beside the payments
CARD_DEPOSIT = 5_000_000  # øre per cardholder
OVER_LIMIT = 2_500_000  # øre: above the default daily limit (20 000 NOK): declined


def _active_card(bank, api, customer, card_id: str) -> dict:
    """The card's printed details once the card service shows it active (at most 120 s)."""
    deadline = time.monotonic() + 120
    while not any(k["cardId"] == card_id and k.get("status") == "active" for k in bank.admin.cards_of(customer.uid)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"card {card_id} not active after 120 s")
        time.sleep(0.5)
    return {"cardId": card_id, "account": customer.account, **api.details(card_id)}


def _cardholders(bank, api, holders: int) -> list[dict]:
    """``holders`` customers made through onboarding, each issued a card (``cards_issue``);
    the printed details of each card, once active."""
    made = []
    for i in range(holders):
        customer, session = _customer(bank, f"kortholder{'abcdefgh'[i % 8]}", CARD_DEPOSIT)
        card_id = bank.callables.call("cards_issue", {"accountId": customer.account}, session.identity)["cardId"]
        session.close()
        made.append((customer, card_id))
    return [_active_card(bank, api, customer, card_id) for customer, card_id in made]


def _record_answer(a: dict, answer: dict, seconds: float) -> None:
    """The outcome of authorisation ``a`` from the processor's ``answer`` (call under the
    run's lock): an error or a timeout is no answer; else approved or declined."""
    if answer.get("error"):
        a["outcome"] = "error"
        a["error"] = answer["error"]
    elif answer.get("timedOut"):
        a["outcome"] = "timeout"  # the simulator has reversed it (or raised, above)
        a["reversal"] = "sent"
    elif "authorizationId" not in answer:  # an error answer (e.g. 500 "internal"), no decision
        a["outcome"] = "error"
        a["error"] = answer.get("reason")
    else:
        a["outcome"] = "approved" if answer.get("approved") else "declined"
        a["reason"] = answer.get("reason")
        a["seconds"] = round(seconds, 4)


class _Processor:
    """The card processor's side of the run, keeping its duties as a real one does: an
    authorisation that got no answer is reversed, and a capture that was not answered is
    sent again, each retried until delivered. ``reversals`` and ``captures`` hold the
    authorisations still owed one."""

    def __init__(self, proc, run: Run) -> None:
        self.proc = proc
        self.run = run
        self.reversals: list[dict] = []  # authorisations to reverse (no answer reached the "merchant")
        self.captures: list[dict] = []  # approvals whose capture was not answered

    def retry_pending(self) -> None:
        import requests

        for pending, send in (
            (self.reversals, lambda a: self.proc.reverse(a["reference"])),
            (self.captures, self._capture),
        ):
            for a in list(pending):
                try:
                    status, body = send(a)
                except (requests.RequestException, RuntimeError, ValueError):
                    continue
                if self._delivered(a, pending is self.reversals, status, body):
                    pending.remove(a)

    def drain(self) -> None:
        """After ``stop``: the retries until none is owed, for up to ``DRAIN_S``."""
        deadline = time.monotonic() + DRAIN_S
        while (self.reversals or self.captures) and time.monotonic() < deadline:
            self.retry_pending()
            time.sleep(1)

    def _capture(self, a: dict) -> tuple[int, dict]:
        return self.proc.capture(a["reference"], capture_reference=f"cap-{a['reference']}")

    def _delivered(self, a: dict, reversal: bool, status: int, body: dict) -> bool:
        """Whether the card service answered (200, or 409 with its record's state); else
        (a 5xx while it recovers) the processor sends it again."""
        if status not in (200, 409):
            return False
        with self.run.lock:
            if reversal:
                a["reversal"] = body.get("status") or body.get("reason")
            else:
                a["captured"] = status == 200 and body.get("status") == "captured"
                a["capture_answer"] = body.get("status") or body.get("reason")
        return True

    def purchase(self, card: dict, amount: int) -> None:
        """One authorisation on ``card`` for ``amount``, kept in ``run.card_auths``; a
        reversal owed when it got no answer, a capture sent when it was approved."""
        import requests

        run = self.run
        a = {
            "reference": f"chaos-{secrets.token_hex(10)}",
            "cardId": card["cardId"],
            "amount": amount,
            "at": round(time.time() - run.started, 2),
        }
        with run.lock:
            run.card_auths.append(a)
        started = time.perf_counter()
        try:
            answer = self.proc.authorize(
                pan=card["pan"],
                exp_month=card["exp_month"],
                exp_year=card["exp_year"],
                cvv=card["cvv"],
                amount=amount,
                merchant_name="Chaos Kiosk",
                mcc="5411",
                reference=a["reference"],
            )
        except (requests.RequestException, RuntimeError, ValueError) as exc:  # no answer: the processor reverses it
            answer = {"approved": False, "error": type(exc).__name__}
        seconds = time.perf_counter() - started
        with run.lock:
            _record_answer(a, answer, seconds)
        if a["outcome"] == "error":
            self.reversals.append(a)
        elif a["outcome"] == "approved":
            try:
                status, body = self._capture(a)
            except (requests.RequestException, ValueError):
                status, body = 0, {}
            if not self._delivered(a, False, status, body):
                self.captures.append(a)


def cards(bank, run: Run, stop: threading.Event, *, holders: int = 3, pause: float = CARD_PAUSE_S) -> None:
    """Cardholders made through the app's callables (onboarding, ``cards_issue``), then
    purchases until ``stop``: an authorisation, and a capture for each approval, as the
    card network sends them (the client kit's card network, signed with the shared secret).
    Every eighth is above the card's daily limit and must be declined.

    The processor's duties are kept as a real one keeps them: an authorisation that got no
    answer (the card service killed or hung: a timeout or a broken connection) is reversed,
    and a capture that was not answered is sent again, each retried until delivered (at the
    end for up to ``DRAIN_S``). What each got is in ``run.card_auths``; the figures in
    ``run.workloads["cards"]``; checks.card_findings compares them with the records."""
    w = run.workloads.setdefault("cards", {"holders": 0, "setup_error": None})
    try:
        api = bank.card_network()
        printed = _cardholders(bank, api, holders)
    except Exception as exc:  # noqa: BLE001 - a workload that could not start is a finding
        w["setup_error"] = f"{type(exc).__name__}: {exc}"
        print(f"chaos: cards: setup failed: {w['setup_error']}", flush=True)
        return
    w["holders"] = len(printed)
    processor = _Processor(api.processor, run)
    rnd = random.Random()
    n = 0
    while not stop.is_set():
        card = printed[n % len(printed)]
        processor.purchase(card, OVER_LIMIT if n % 8 == 7 else rnd.randint(100, 5_000))
        processor.retry_pending()
        n += 1
        stop.wait(pause)
    processor.drain()
    with run.lock:
        w.update(card_figures(run.card_auths))
        w["undelivered_reversals"] = [a["reference"] for a in processor.reversals]
        w["undelivered_captures"] = [a["reference"] for a in processor.captures]
    print(f"chaos: cards: { ({k: v for k, v in w.items() if not isinstance(v, list)}) }", flush=True)


def card_figures(auths: list[dict]) -> dict:
    """decided (an approval or a decline reached the merchant), approved, declined,
    captured, errors (no answer), decision time p50/p99 of the decided ones."""
    from bench.chaos.checks import quantile

    times = [a["seconds"] for a in auths if "seconds" in a]
    outcomes = [a.get("outcome") for a in auths]
    return {
        "authorizations": len(auths),
        "decided": outcomes.count("approved") + outcomes.count("declined"),
        "approved": outcomes.count("approved"),
        "declined": outcomes.count("declined"),
        "captured": sum(1 for a in auths if a.get("captured")),
        "errors": outcomes.count("error") + outcomes.count("timeout"),
        "decision_p50_ms": round(quantile(times, 0.5) * 1000, 1) if times else None,
        "decision_p99_ms": round(quantile(times, 0.99) * 1000, 1) if times else None,
    }


# ---- standing orders falling due -----------------------------------------------------------
ORDER_CYCLE_S = 30.0  # a new order and the job's ticks this often
ORDER_DEPOSIT = 10_000_000  # øre on the payer's account
DRAIN_S = 120.0  # after stop: how long the last orders (and card retries) may take
JOBS = ("submit-due-payments", "submit-due-payments", "relay-outbox")  # two ticks at once, and the relay


def job_messages(job: str, uid: str, now: dt.datetime) -> list[dict]:
    """The job's message as the scheduler sends it, and for the due-payments job also one
    scoped to the payer (emulator only: fjordbank.service_layer.scheduled.job_overrides), so
    the orders made in the run are paid in it: a scoped run neither reads nor writes the
    accounts the last runs paid from (fjordbank.service_layer.settling), which hold a payer's
    next due payment for ten minutes after a run paid from it, longer than the run drains
    (on a banking day, every order after the first failed the check: seen 2026-12-07). On a
    day banks do not settle (the job pays nothing then) the scoped one runs as of noon on
    the next banking day. The plain tick still publishes what other workloads left
    unpublished, and pays the payer's orders too (each due date is claimed once)."""
    from fjordbank.domain.norway import OSLO, is_banking_day, next_banking_day, today_in_norway

    plain = {"job": job}
    if job != "submit-due-payments":
        return [plain]
    today = today_in_norway(now)
    if is_banking_day(today):
        return [plain, {"job": job, "uids": [uid]}]
    at = dt.datetime.combine(next_banking_day(today), dt.time(12), tzinfo=OSLO)
    return [plain, {"job": job, "now": at.astimezone(dt.UTC).isoformat(), "uids": [uid]}]


def _queue_jobs(topic, w: dict, uid: str) -> None:
    """``JOBS`` queued on the scheduled-jobs topic, as Cloud Scheduler queues them; a job
    that could not be queued is counted in ``w`` (the next tick queues it again)."""
    import asyncio

    for message in (m for job in JOBS for m in job_messages(job, uid, dt.datetime.now(dt.UTC))):
        try:
            asyncio.run(topic.publish_json(message))
            w["jobs_queued"] += 1
        except Exception as exc:  # noqa: BLE001 - counted; the next tick queues it again
            w["job_errors"] = w.get("job_errors", 0) + 1
            w["last_job_error"] = f"{type(exc).__name__}: {exc}"[:200]


def _drain_orders(db, run: Run, queue_jobs) -> tuple[list[dict], set[str]]:
    """After ``stop``: ``queue_jobs`` every ten seconds until every order's payment is final
    (at most ``DRAIN_S``). Returns (the orders, the ids of their payments final)."""
    from fjordbank.adapters.firestore import PAYMENT_VIEWS
    from fjordbank.domain.payments import TERMINAL

    deadline = time.monotonic() + DRAIN_S
    while True:
        with run.lock:
            orders = list(run.orders)
        refs = [db.collection(PAYMENT_VIEWS).document(o["paymentId"]) for o in orders]
        try:
            snaps = list(db.get_all(refs)) if refs else []
        except Exception:  # noqa: BLE001 - the next round reads again
            snaps = []
        final = {s.id for s in snaps if s.exists and (s.to_dict() or {}).get("status") in TERMINAL}
        if len(final) >= len(orders) or time.monotonic() > deadline:
            return orders, final
        queue_jobs()
        time.sleep(10)


def standing_orders(bank, run: Run, stop: threading.Event, *, cycle: float = ORDER_CYCLE_S) -> None:
    """A payer and a payee made through onboarding; then, every ``cycle`` seconds until
    ``stop``, a new monthly standing order starting today (``standing_orders_create`` as the
    app calls it, confirmed with the payer's device key; every third to another bank) and
    the due-payments job queued on the scheduled-jobs topic as Cloud Scheduler does it, twice
    at once (overlapping ticks) with the outbox relay. The job runs in the Functions emulator
    (``on_scheduled_job``) like any scheduled run. After ``stop`` the job is queued until
    every order's payment is final (at most ``DRAIN_S``).

    The payer pays nothing else, so checks.standing_order_findings can require its balance
    to be the deposit less each order's amount exactly once. An order made near midnight
    (Europe/Oslo) may fall due tomorrow instead: runs are not meant to span midnight."""
    from bankctl.config import apply_environ
    from bankctl.load import other_bank_account
    from fjordbank.adapters.pubsub import JOBS_TOPIC, TopicPublisher
    from fjordbank.domain import standing_orders as rules
    from fjordbank.domain.norway import today_in_norway
    from fjordbank.domain.payments import payment_id_for

    w = run.workloads.setdefault("standing_orders", {"setup_error": None})
    try:
        apply_environ(bank.config)
        topic = TopicPublisher(bank.config.project_id, JOBS_TOPIC)
        topic.ensure_topic()
        payer, session = _customer(bank, "payer", ORDER_DEPOSIT)
        payee, payee_session = _customer(bank, "payee", 0)
        payee_session.close()
    except Exception as exc:  # noqa: BLE001 - a workload that could not start is a finding
        w["setup_error"] = f"{type(exc).__name__}: {exc}"
        print(f"chaos: standing orders: setup failed: {w['setup_error']}", flush=True)
        return
    w.update(payer=payer.account, payee=payee.account, deposit=ORDER_DEPOSIT, payee_deposit=0, jobs_queued=0)
    rnd = random.Random()

    def make_order(n: int) -> None:
        today = today_in_norway()
        external = n % 3 == 2
        to_account = other_bank_account(rnd) if external else payee.account
        amount = rnd.randint(1_000, 90_000)
        order_id = f"chaos-{secrets.token_hex(8)}"
        body = {
            "orderId": order_id,
            "fromAccount": payer.account,
            "toAccount": to_account,
            "amount": amount,
            "message": f"chaos {n + 1}",
            "frequency": "monthly",
            "startDate": today.isoformat(),
            "sca": session.device.confirm_order(
                order_id,
                amount,
                "NOK",
                to_account,
                "monthly",
                today.isoformat(),
                from_account=payer.account,
                end_date=None,
            ),
        }
        order = {
            "orderId": order_id,
            "uid": payer.uid,
            "fromAccount": payer.account,
            "toAccount": to_account,
            "amount": amount,
            "kind": "external" if external else "internal",
            "day": today.isoformat(),
            "paymentId": payment_id_for(payer.uid, rules.occurrence_request_id(order_id, today)),
            "requestId": rules.occurrence_request_id(order_id, today),
            "at": round(time.time() - run.started, 2),
        }
        try:
            bank.callables.call("standing_orders_create", body, session.identity)
        except Exception as exc:  # noqa: BLE001 - made or not? the order document says
            exists = bank.admin.db.document(f"users/{payer.uid}/standingOrders/{order_id}").get().exists
            if not exists:
                w["create_errors"] = w.get("create_errors", 0) + 1
                w["last_create_error"] = f"{type(exc).__name__}: {exc}"[:200]
                return
        with run.lock:
            run.orders.append(order)

    n = 0
    while True:
        try:
            make_order(n)
        except Exception as exc:  # noqa: BLE001 - e.g. Firestore unreachable for the check: counted
            w["create_errors"] = w.get("create_errors", 0) + 1
            w["last_create_error"] = f"{type(exc).__name__}: {exc}"[:200]
        n += 1
        _queue_jobs(topic, w, payer.uid)
        if stop.wait(cycle):
            break
    # the last orders: queue the job until every payment is final
    orders, final = _drain_orders(bank.admin.db, run, lambda: _queue_jobs(topic, w, payer.uid))
    session.close()
    w.update(orders=len(orders), paid_final=len(final))
    print(f"chaos: standing orders: {len(orders)} made, {len(final)} final, {w['jobs_queued']} jobs queued", flush=True)
