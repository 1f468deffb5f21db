"""Which pushes may be dropped when late (found in review, 2026-12-06): the domain marks a
push as news (`Push.news`), and only news is not pushed once older than
`fjordbank.service_layer.push.NEWS_MAX_AGE`. A payment not completed, a rejection, a card
declined, the onboarding result and a security notice are never dropped for being late."""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.adapters.push import PushResult
from fjordbank.domain.notifications import (
    card_pushes,
    device_pushes,
    onboarding_pushes,
    payment_pushes,
)
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import NOW, fixed_clock, seed
from tests.unit.test_notifications import event
from tests.unit.test_notifications_cards import card_event

UID = "alice"


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, token: str, *, title: str, body: str, data: dict, collapse_id: str | None = None) -> PushResult:
        self.sent.append((token, title))
        return PushResult(token, ok=True, message_id="m")


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    for uid in ("alice", "bob", "user_1"):
        seed(docs, {push.settings_path(uid): {"devices": {"phone": {"token": f"tok-{uid}", "platform": "ios"}}}})
    return docs


def test_the_domain_marks_news_and_what_the_customer_must_know_however_late():
    completed, received = payment_pushes(event("completed"), payee_uid="bob")
    [failed] = payment_pushes(event("failed", "insufficient_funds"), payee_uid="bob")
    [rejected] = payment_pushes(event("rejected", "over_daily_limit"), payee_uid="bob")
    assert (completed.news, received.news, failed.news, rejected.news) == (True, True, False, False)
    card = {
        status: card_pushes(card_event(status=status, late=True, reason="card_frozen", refund_id="r1"))[0].news
        for status in ("approved", "captured", "reversed", "expired", "refunded", "incremented", "declined")
    }
    assert card == {s: s != "declined" for s in card}
    for status in ("approved", "review", "rejected"):
        [result] = onboarding_pushes({"uid": UID, "status": status})
        assert result.news is False
    [notice] = device_pushes({"uid": UID, "change": "added", "key_id": "k1", "changed_at": "2026-12-05T10:00:00+00:00"})
    assert notice.news is False
    assert completed.to_json()["news"] is True and failed.to_json()["news"] is False  # carried on the queue


def _late(p, minutes: float = 61) -> dict:
    return {**p.to_json(), push.QUEUED_AT: (NOW - dt.timedelta(minutes=minutes)).isoformat()}


def test_a_late_failure_or_onboarding_result_is_sent_and_only_late_news_is_dropped(docs):
    """The review's repro: a standing order's "Payment not completed" and the onboarding
    result queued 61 minutes before delivery were dropped as news."""
    [failed] = payment_pushes(event("failed", "insufficient_funds"), payee_uid=None)
    [welcome] = onboarding_pushes({"uid": UID, "status": "approved"})
    [declined] = card_pushes(card_event(status="declined", reason="card_frozen"))
    completed, received = payment_pushes(event("completed"), payee_uid="bob")
    pushes = [_late(failed), _late(welcome), _late(declined), _late(completed), _late(received, 600)]
    statuses: list = [None] * len(pushes)
    sender = Sender()
    outcomes = push.deliver_batch(docs, sender, {"pushes": pushes}, statuses=statuses, now=NOW)
    assert statuses == ["sent", "sent", "sent", "too_late", "too_late"]
    assert outcomes == {"sent": 3, "too_late": 2}
    assert sorted(t for _, t in sender.sent) == [
        "Card purchase declined",
        "Payment not completed",
        "Welcome to Fjordbank",
    ]


def test_a_late_push_queued_without_the_mark_is_sent(docs):
    """A push queued by code older than the mark (no ``news`` field) is sent however late,
    whatever its kind: it may be a failure the customer must act on."""
    [completed] = payment_pushes(event("completed"), payee_uid=None)
    old = {k: v for k, v in _late(completed, 180).items() if k != "news"}
    assert push.deliver_batch(docs, Sender(), {"pushes": [old]}, now=NOW) == {"sent": 1}


def test_the_runbook_names_the_log_line_of_news_given_up_as_late(docs, caplog):
    """A news push FCM could not take, tried again until its event is over an hour old, is
    finished by the late cut-off ("late pushes not sent"), not by the function's give-up
    ("pushes given up"): the runbook sent the reader to the give-up line only (found in
    review, 2026-12-06)."""
    from pathlib import Path

    [completed] = payment_pushes(event("completed"), payee_uid=None)
    with caplog.at_level("WARNING", logger=push.__name__):
        assert push.deliver_batch(docs, Sender(), {"pushes": [_late(completed, 60.5)]}, now=NOW) == {"too_late": 1}
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    runbook = (Path(__file__).parents[2] / "docs/runbooks/FjbPushFailuresHigh.md").read_text(encoding="utf-8")
    mend = runbook.split("## Mend", 1)[1].split("## ", 1)[0]
    assert "pushes given up" in mend
    assert line.split(":", 1)[0] in mend  # "late pushes not sent"


def _entries(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _entries(value)


def test_the_metrics_catalogue_lists_every_push_kind():
    """monitoring/metrics.yaml's fjb_push_results lacked `security` (found in review, 2026-12-06)."""
    from pathlib import Path

    import yaml

    from fjordbank.domain.notifications import ALWAYS_ON, DEFAULT_PREFERENCES

    catalogue = yaml.safe_load((Path(__file__).parents[2] / "monitoring/metrics.yaml").read_text(encoding="utf-8"))
    [metric] = [e for e in _entries(catalogue) if e.get("log_metric") == "fjb_push_results"]
    assert set(metric["label_values"]["kind"]) == set(DEFAULT_PREFERENCES) | ALWAYS_ON
