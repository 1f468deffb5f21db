"""The platform pieces every service and function stands on: the edge's publisher, the
consumer runtime's probes and metrics, and a clean stop on SIGTERM."""

from __future__ import annotations

import pytest
import requests

from fjordbank import topology
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.config import load_settings
from fjordbank.errors import PublishError
from tests.support.clients import unique

pytestmark = pytest.mark.stack


def test_publisher_waits_for_the_jetstream_ack_and_dedupes_by_message_id(stack):
    settings = load_settings(stack.nats_env("edge"))
    publisher = SyncPublisher(settings.nats, name="test-edge")
    try:
        msg_id = unique("dup-check")
        body = {"not": "a payment"}  # the screening service dead-letters it as malformed
        first = publisher.publish_json(f"{topology.SUBJECT_PAYMENT_REQUESTED}.0", body, msg_id=msg_id)
        again = publisher.publish_json(f"{topology.SUBJECT_PAYMENT_REQUESTED}.0", body, msg_id=msg_id)
        assert first.stream == topology.STREAM_PAYMENTS and not first.duplicate
        assert again.duplicate and again.seq == first.seq
    finally:
        publisher.close()


def test_publisher_turns_an_unreachable_cluster_into_a_retryable_error(stack):
    env = {**stack.nats_env("edge"), "FJB_NATS_URLS": "tls://127.0.0.1:1"}
    publisher = SyncPublisher(load_settings(env).nats, name="test-edge-down", timeout=2)
    with pytest.raises(PublishError):
        publisher.publish_json(f"{topology.SUBJECT_PAYMENT_REQUESTED}.0", {"x": 1}, msg_id=unique("down"))


@pytest.mark.parametrize("service", topology.SERVICES)
def test_every_service_answers_its_probes_and_exposes_its_metrics(stack, service):
    base = f"http://127.0.0.1:{stack.s.service_ports[service]}"
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    for name in (
        "fjb_messages_processed_total",
        "fjb_processing_seconds",
        "fjb_consumer_lag",
        "fjb_messages_redelivered_total",
        "fjb_messages_failed_total",
    ):
        assert name in metrics, name


def test_sigterm_drains_and_exits_cleanly(stack):
    log = stack.sup.log_file("notifier")
    earlier = log.read_text()
    before = earlier.count('"message": "stopped"')
    stack.sup.stop("notifier", timeout=20)  # SIGTERM, then SIGKILL only after 20 s
    try:
        text = log.read_text()
        assert text.count('"message": "stopped"') == before + 1
        # what the stop wrote (not what earlier tests made it log, e.g. injected faults)
        assert "Traceback" not in text[len(earlier) :]
    finally:
        stack.restart("notifier")
