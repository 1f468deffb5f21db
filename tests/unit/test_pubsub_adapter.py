"""The Pub/Sub adapter (fjordbank/adapters/pubsub.py): the topic is created on the emulator
only. In production the notifier's service account may publish to the push topic
(roles/pubsub.publisher) but not create it: create_topic answers PERMISSION_DENIED there
even when the topic exists, and the notifier failed its start on it."""

from __future__ import annotations

from typing import ClassVar

import pytest
from google.api_core import exceptions

from fjordbank.adapters import pubsub


class Client:
    """pubsub_v1.PublisherClient as seen by a service allowed to publish only."""

    created: ClassVar[list[str]] = []

    def __init__(self, batch_settings=None) -> None:
        self.batch_settings = batch_settings

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def create_topic(self, name: str) -> None:
        Client.created.append(name)
        raise exceptions.PermissionDenied("pubsub.topics.create denied")


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> pubsub.TopicPublisher:
    Client.created = []
    monkeypatch.setattr(pubsub.pubsub_v1, "PublisherClient", Client)
    return pubsub.TopicPublisher("fjordbank-prod", "pushes")


def test_in_production_the_topic_is_not_created(topic: pubsub.TopicPublisher) -> None:
    topic.ensure_topic({})
    assert Client.created == []


def test_on_the_emulator_the_topic_is_created_and_one_that_exists_is_fine(
    topic: pubsub.TopicPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}

    def exists(name: str) -> None:
        Client.created.append(name)
        raise exceptions.AlreadyExists("exists")

    monkeypatch.setattr(Client, "create_topic", lambda self, name: exists(name))
    topic.ensure_topic(emulator)
    assert Client.created == ["projects/fjordbank-prod/topics/pushes"]
