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


def dlq(args) -> int:
    """Show each dead-lettered message with its consumer, reason and deliveries."""
    from fjordbank import topology
    from fjordbank.adapters import nats_conn
    from fjordbank.config import load_settings

    stack = _stack()
    settings = load_settings({**os.environ, **stack.nats_env("admin")})
    subject = topology.dlq_subject(args.consumer) if args.consumer else "dlq.>"

    async def read() -> list:
        nc = await nats_conn.connect(settings.nats, name="bankctl", max_reconnect_attempts=2)
        try:
            sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
            out = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=1)
                except Exception:  # noqa: BLE001 - nats' TimeoutError: nothing more
                    return out
                out.append(msg)
        finally:
            await nc.close()

    try:
        messages = asyncio.run(read())
    except OSError as exc:
        raise CommandError(f"cannot reach NATS: {exc}") from exc
    for msg in messages:
        h = msg.headers or {}
        print(
            f"#{msg.metadata.sequence.stream} {msg.subject} from {h.get('Fjb-Original-Subject')} "
            f"seq {h.get('Fjb-Original-Sequence')} after {h.get('Fjb-Deliveries')} deliveries: {h.get('Fjb-Reason')}"
        )
    print(f"{len(messages)} dead-lettered message(s)")
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
