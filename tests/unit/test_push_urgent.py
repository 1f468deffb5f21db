"""What a message's retries are kept for when it fails (fjordbank/service_layer/push.py
`urgent_left`): a push left that is not news keeps the message for URGENT_MAX_AGE, whether
FCM refused it or a failure of ours (a read, a bug) stopped the delivery."""

from __future__ import annotations

from fjordbank.service_layer import push


def pushes(*marks: object) -> dict:
    out = []
    for n, news in enumerate(marks):
        raw = {"uid": f"u{n}", "kind": "payments", "dedupeKey": f"k{n}", "title": "t", "body": "b"}
        if news is not None:
            raw["news"] = news
        out.append(raw)
    return {"pushes": out}


def test_a_push_left_that_is_not_news_keeps_the_message():
    assert not push.urgent_left(pushes(True, True))
    assert push.urgent_left(pushes(True, False))
    assert push.urgent_left(pushes(True, None)), "without the mark: not news (older code's pushes)"


def test_pushes_finished_before_do_not_count():
    message = pushes(False, True)
    done = {push.push_id(message["pushes"][0])}
    assert not push.urgent_left(message, done)


def test_a_message_that_is_not_the_notifiers_keeps_its_retries():
    assert push.urgent_left({"something": 1})
    assert push.urgent_left([1, 2])
