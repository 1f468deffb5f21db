"""Pub/Sub: how the run_services hand work to Firebase functions that must run there
(push notifications through FCM). The emulator is used when PUBSUB_EMULATOR_HOST is set
(the client library reads it itself).

A message carries the trace context in its attributes (``traceparent``, ``tracestate``):
the caller's current one unless it passes its own (fjordbank.runtime.tracing)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

# google-cloud-pubsub ships no type information for its hand-written pubsub_v1 client (no
# py.typed there, no stubs on PyPI), so the client is typed as Any
import google.cloud.pubsub_v1 as pubsub_v1  # type: ignore[import-untyped]
from google.api_core import exceptions

from fjordbank.runtime import tracing

log = logging.getLogger(__name__)

# The topic the notifier queues pushes on and the push function is triggered by (the
# function's decorator needs it at import time, so it is a constant, not configuration).
PUSH_TOPIC = "push-notifications"
# Scheduled jobs: Cloud Scheduler publishes {"job": NAME} here in production; locally
# `bankctl jobs run NAME` does.
JOBS_TOPIC = "scheduled-jobs"


class TopicPublisher:
    def __init__(self, project_id: str, topic: str) -> None:
        self.client = pubsub_v1.PublisherClient()
        self.topic_path: str = self.client.topic_path(project_id, topic)

    def ensure_topic(self) -> None:
        """Firebase creates a trigger's topic on deploy; locally nothing may have yet."""
        try:
            self.client.create_topic(name=self.topic_path)
        except exceptions.AlreadyExists:
            pass

    async def publish_json(self, body: dict[str, Any], **attributes: str) -> str:
        data = json.dumps(body, separators=(",", ":")).encode()
        future = self.client.publish(self.topic_path, data, **{**tracing.inject(), **attributes})
        return await asyncio.to_thread(future.result, 30)
