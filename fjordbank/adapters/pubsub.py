"""Pub/Sub: how the run_services hand work to Firebase functions that must run there
(push notifications through FCM). The emulator is used when PUBSUB_EMULATOR_HOST is set
(the client library reads it itself).

A message carries the trace context in its attributes (``traceparent``, ``tracestate``):
the caller's current one unless it passes its own (fjordbank.runtime.tracing)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

# google-cloud-pubsub ships no type information for its hand-written pubsub_v1 client (no
# py.typed there, no stubs on PyPI), so the client is typed as Any
import google.cloud.pubsub_v1 as pubsub_v1  # type: ignore[import-untyped]
from google.api_core import exceptions
from opentelemetry.context import Context

from fjordbank.domain.notifications import Push
from fjordbank.runtime import tracing

log = logging.getLogger(__name__)

# The topic the notifier queues pushes on and the push function is triggered by (the
# function's decorator needs it at import time, so it is a constant, not configuration).
PUSH_TOPIC = "push-notifications"
# Scheduled jobs: Cloud Scheduler publishes {"job": NAME} here in production; locally
# `bankctl jobs run NAME` does.
JOBS_TOPIC = "scheduled-jobs"


# Each message is sent as soon as it is published: the callers batch already (PushQueue puts
# up to PUSH_BATCH pushes in one message), so the client's own batching only added its wait
# (10 ms by default) and a timer thread per message.
UNBATCHED = pubsub_v1.types.BatchSettings(max_messages=1, max_latency=float("inf"))


class TopicPublisher:
    def __init__(self, project_id: str, topic: str) -> None:
        self.client = pubsub_v1.PublisherClient(batch_settings=UNBATCHED)
        self.topic_path: str = self.client.topic_path(project_id, topic)

    def ensure_topic(self, env: Mapping[str, str] = os.environ) -> None:
        """On the Pub/Sub emulator, create the topic (nothing may have yet). In production
        Firebase creates a trigger's topic on deploy and the services may only publish to it
        (roles/pubsub.publisher): creating it there is refused, even when it exists
        (PERMISSION_DENIED, not ALREADY_EXISTS), and the notifier never started."""
        if not env.get("PUBSUB_EMULATOR_HOST"):
            return
        try:
            self.client.create_topic(name=self.topic_path)
        except exceptions.AlreadyExists:
            pass

    async def publish_json(self, body: dict[str, Any], **attributes: str) -> str:
        return await asyncio.to_thread(self.publish_json_now, body, **attributes)

    def publish_json_now(self, body: dict[str, Any], **attributes: str) -> str:
        """The same, blocking (a function's own thread): the message id once stored."""
        data = json.dumps(body, separators=(",", ":")).encode()
        future = self.client.publish(self.topic_path, data, **{**tracing.inject(), **attributes})
        message_id: str = future.result(30)
        return message_id


PUSH_BATCH = 100  # pushes per Pub/Sub message


class JsonTopic(Protocol):
    async def publish_json(self, body: dict[str, Any], **attributes: str) -> str: ...


class PushQueue:
    """Queues pushes for the push function (the notifier's
    fjordbank.service_layer.notifier.QueuePushes): one Pub/Sub message per PUSH_BATCH
    pushes, so one function invocation serves many. Each push carries the time its event
    entered the stream (``queuedAt``, UTC: the caller's ``entered``, the event's JetStream
    timestamp), no later than this process's clock, or that clock's time for a push whose
    event's time is not known; by it the push function sends no news older than its limit
    (fjordbank.service_layer.push.NEWS_MAX_AGE). Until 2026-12 it was the time the push was
    queued, so a backlog at the notifier or a batch's commit tried again pushed hours-old
    news with a fresh stamp (found in review, 2026-12-06). A dead letter replayed is a new
    message in the stream, but carries its first time (fjordbank.runtime.dead_letters.
    ORIGINAL_TIME, the caller's Delivery.entered; for a letter from before the header, the
    time it was dead-lettered): its news is as late as it is."""

    def __init__(self, topic: JsonTopic, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.topic = topic
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    async def __call__(
        self,
        pushes: list[Push],
        contexts: Sequence[Context | None] | None = None,
        entered: Sequence[dt.datetime | None] | None = None,
    ) -> None:
        """Each push carries the ``traceparent`` of the message it came from (``contexts``,
        by default its payment's in the batch in hand), the message's attributes the first
        one, so the push function continues each payment's trace. ``entered``: per push, when
        its event entered the stream (None: not known)."""
        items = []
        now = self.clock().astimezone(dt.UTC)
        for n, p in enumerate(pushes):
            ctx = contexts[n] if contexts is not None else tracing.parent_of((p.data or {}).get("paymentId"))
            traceparent = tracing.traceparent_of(ctx)
            at = entered[n] if entered is not None else None
            queued = {"queuedAt": min(at.astimezone(dt.UTC), now).isoformat() if at is not None else now.isoformat()}
            items.append({**p.to_json(), **queued, **({"traceparent": traceparent} if traceparent else {})})
        chunks = [items[i : i + PUSH_BATCH] for i in range(0, len(items), PUSH_BATCH)]
        await asyncio.gather(*(self.topic.publish_json({"pushes": c}, **_first_trace(c)) for c in chunks))


def _first_trace(items: list[dict[str, Any]]) -> dict[str, str]:
    first = next((item["traceparent"] for item in items if item.get("traceparent")), None)
    return {"traceparent": first} if first else {}
