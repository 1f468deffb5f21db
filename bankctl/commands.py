"""The commands of bankctl (thin: each calls the shared package)."""

from __future__ import annotations

import asyncio
import json
import os

from devstack import settings as stack_settings
from devstack.stack import Stack
from fjordbank.service_layer.scheduled import JOBS

JOB_NAMES = JOBS  # the scheduled jobs `bankctl jobs run` can start


class CommandError(Exception):
    """A failure to report as one line."""


def _stack() -> Stack:
    stack = Stack(stack_settings.load(), progress=lambda _msg: None)
    for key, value in stack.emulator_hosts().items():
        os.environ.setdefault(key, value)
    return stack


def audit(args) -> int:
    """Check conservation, balances against the replay of postings, holds, available
    balances and that every completed payment is posted exactly once. Exit 1 on any problem."""
    from google.api_core import exceptions

    from fjordbank.adapters.firestore import sync_client
    from fjordbank.service_layer.audit import audit_ledger

    stack = _stack()
    try:
        report = audit_ledger(sync_client(stack.s.project_id))
    except exceptions.GoogleAPICallError as exc:
        raise CommandError(f"cannot read the ledger: {exc.message}") from exc
    except exceptions.RetryError as exc:
        raise CommandError("cannot reach Firestore (is the stack up? `make up`)") from exc
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "accounts": report.accounts,
                    "postings": report.postings,
                    "payments": report.payments,
                    "holds": report.holds,
                    "totalBalance": report.total_balance,
                    "problems": report.problems,
                },
                indent=2,
            )
        )
    else:
        print(report.render())
    return 0 if report.ok else 1


def _admin_nats():
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    settings = load_settings({**os.environ, **_stack().nats_env("admin")})
    return nats_conn.connect(settings.nats, name="bankctl", max_reconnect_attempts=2)


def _nats(coro_fn):
    """Run ``coro_fn(nc)`` with an admin connection; one-line errors when NATS is away."""

    async def run():
        nc = await _admin_nats()
        try:
            return await coro_fn(nc)
        finally:
            await nc.close()

    try:
        return asyncio.run(run())
    except OSError as exc:
        raise CommandError(f"cannot reach NATS (is the stack up? `make up`): {exc}") from exc


def dlq(args) -> int:
    """Show each dead-lettered message with its consumer, reason and deliveries."""
    from fjordbank import topology

    subject = topology.dlq_subject(args.consumer) if args.consumer else "dlq.>"

    async def read(nc) -> list:
        sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
        out = []
        while True:
            try:
                out.append(await sub.next_msg(timeout=1))
            except Exception:  # noqa: BLE001 - nats' TimeoutError: nothing more
                return out

    messages = _nats(read)
    for msg in messages:
        h = msg.headers or {}
        print(
            f"#{msg.metadata.sequence.stream} {msg.subject} from {h.get('Fjb-Original-Subject')} "
            f"seq {h.get('Fjb-Original-Sequence')} after {h.get('Fjb-Deliveries')} deliveries: {h.get('Fjb-Reason')}"
        )
    print(f"{len(messages)} dead-lettered message(s)")
    return 0


def dlq_replay(args) -> int:
    """Publish a dead-lettered message again on the subject it came from, once its cause is
    mended. Safe to repeat: every service answers a step it has applied from its records."""
    import nats.js.errors

    from fjordbank import topology

    async def replay(nc) -> str:
        js = nc.jetstream()
        try:
            msg = await js.get_msg(topology.STREAM_DLQ, args.sequence)
        except nats.js.errors.NotFoundError as exc:
            raise CommandError(f"no dead letter #{args.sequence}") from exc
        subject = (msg.headers or {}).get("Fjb-Original-Subject")
        if not subject:
            raise CommandError(f"dead letter #{args.sequence} does not say where it came from")
        await js.publish(subject, msg.data, headers={"Nats-Msg-Id": f"replay:{topology.STREAM_DLQ}:{args.sequence}"})
        return subject

    subject = _nats(replay)
    print(f"replayed dead letter #{args.sequence} on {subject}")
    return 0


def balances(args) -> int:
    """Balance, held and available amount of each account, in kroner."""
    from fjordbank.adapters.firestore import ACCOUNTS, sync_client
    from fjordbank.domain.money import Money

    db = sync_client(_stack().s.project_id)
    for account in args.accounts:
        snap = db.collection(ACCOUNTS).document(account).get()
        if not snap.exists:
            raise CommandError(f"no account {account}")
        d = snap.to_dict()
        print(
            f"{account}  {d.get('status', '?'):<6}  balance {Money.nok(d['balance']).format_nok():>16}  "
            f"held {Money.nok(d.get('held', 0)).format_nok():>14}  "
            f"available {Money.nok(d.get('available', 0)).format_nok():>16}"
        )
    return 0


def run_job(args) -> int:
    """Publish {"job": NAME} on the scheduled-jobs topic: the on_scheduled_job function runs it
    (in production Cloud Scheduler publishes the same message on its schedule)."""
    from google.api_core import exceptions

    from fjordbank.adapters.pubsub import JOBS_TOPIC, TopicPublisher

    stack = _stack()
    topic = TopicPublisher(stack.s.project_id, JOBS_TOPIC)
    try:
        topic.ensure_topic()
        message_id = asyncio.run(topic.publish_json({"job": args.job}))
    except (exceptions.GoogleAPICallError, exceptions.RetryError, TimeoutError) as exc:
        raise CommandError(f"cannot reach Pub/Sub (is the stack up? `make up`): {exc}") from exc
    print(f"queued job {args.job} (message {message_id})")
    return 0


def reviews(args) -> int:
    """Onboarding applications waiting for an operator: list them, approve or reject one.
    Approving opens the customer's first account; both push the result to the customer."""
    from google.api_core import exceptions

    from fjordbank.adapters.firestore import sync_client
    from fjordbank.adapters.publisher import SyncPublisher
    from fjordbank.config import load_settings
    from fjordbank.domain.onboarding import OnboardingRefused
    from fjordbank.errors import PublishError
    from fjordbank.service_layer import onboarding

    stack = _stack()
    db = sync_client(stack.s.project_id)
    try:
        if args.action == "list":
            pending = onboarding.pending_reviews(db)
            for item in pending:
                matches = ", ".join(f"{m['entity_id']} ({m['alias']}, {m['score']:.2f})" for m in item["screening"])
                print(f"{item['uid']}  {item['name']}  {item['nationalIdMasked']}  possible match: {matches or '-'}")
            print(f"{len(pending)} application(s) in review")
            return 0
        settings = load_settings({**os.environ, **stack.nats_env("admin")})
        publisher = SyncPublisher(settings.nats, name="bankctl")
        try:
            result = onboarding.decide_review(
                db,
                publisher,
                args.uid,
                approve=args.action == "approve",
                operator=f"bankctl:{os.environ.get('USER', 'operator')}",
                reason=args.reason,
                bank_reg=settings.bank_regs[0],
            )
        finally:
            publisher.close()
    except OnboardingRefused as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from exc
    except PublishError as exc:
        raise CommandError(f"decided, but the event waits in the outbox (NATS unreachable): {exc}") from exc
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as exc:
        raise CommandError("cannot reach Firestore (is the stack up? `make up`)") from exc
    account = f", first account {result['accountId']}" if result.get("accountId") else ""
    print(f"{args.uid}: {result['status']}{account}")
    return 0
