"""fjordbank.service_layer.push on the in-memory documents: queued pushes delivered to the
customers' devices, with a fake FCM sender.

What is promised: every push a customer wants reaches each of their devices, and a push
handed over twice (Pub/Sub delivers at least once, the notifier may queue it twice) carries
the same collapse id both times, so the device shows it once; nothing is written per push;
the customer's preferences decide per kind; a token FCM reports as unregistered is deleted;
a malformed push in a batch is counted and skipped. A message of many pushes reads the
preferences in one round trip and each customer's devices once.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from fjordbank.adapters.push import PushResult
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.round_trips import RoundTrips
from tests.support.use_cases import NOW, data, fixed_clock, seed

UID = "alice"


class Sender:
    """A fake FCM: each token's answer; what was sent, in order: (token, title, collapse id)."""

    def __init__(self, **answers: PushResult) -> None:
        self.answers, self.sent = answers, []  # list.append is atomic: the sends run in threads

    def send(self, token: str, *, title: str, body: str, data: dict, collapse_id: str | None = None) -> PushResult:
        self.sent.append((token, title, collapse_id))
        return self.answers.get(token) or PushResult(token, ok=True, message_id="m")


@pytest.fixture
def docs() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    seed(
        docs,
        {f"users/{UID}/settings/notifications": {"devices": {"phone": phone("tok-phone"), "tablet": phone("tok-tab")}}},
    )
    return docs


def phone(token: str) -> dict:
    return {"token": token, "platform": "ios"}


def devices(docs: MemoryDocuments, uid: str = UID) -> dict:
    return (data(docs, push.settings_path(uid)) or {}).get("devices", {})


def a_push(key: str = "payment-1:completed", kind: str = "payments", uid: str = UID) -> dict:
    return {"uid": uid, "kind": kind, "dedupeKey": key, "title": "Betaling fullført", "body": "1 000 kr til Bob"}


def deliver(docs, sender, *pushes: dict) -> dict[str, int]:
    return push.deliver_batch(docs, sender, {"pushes": list(pushes)})


def test_a_push_goes_to_every_device_and_twice_handed_over_it_collapses_into_one(docs):
    sender = Sender()
    commits = docs.store.commits
    assert deliver(docs, sender, a_push()) == {"sent": 1}
    assert deliver(docs, sender, a_push()) == {"sent": 1}  # Pub/Sub again, or queued again
    ids = {c for _, _, c in sender.sent}
    assert sorted(t for t, _, _ in sender.sent) == ["tok-phone", "tok-phone", "tok-tab", "tok-tab"]
    assert ids == {push.collapse_id("payment-1:completed")} and len(next(iter(ids))) == 32
    assert push.collapse_id("payment-1:received") not in ids  # another push is another notification
    assert docs.store.commits == commits  # nothing written per push


def test_an_unregistered_token_is_deleted_and_the_others_still_get_it(docs):
    gone = PushResult("tok-tab", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    sender = Sender(**{"tok-tab": gone})
    assert deliver(docs, sender, a_push(), a_push("payment-2:completed")) == {"sent": 2}
    assert devices(docs) == {"phone": phone("tok-phone")}
    assert sorted(t for t, _, _ in sender.sent) == ["tok-phone", "tok-phone", "tok-tab", "tok-tab"]


def test_a_kind_the_customer_turned_off_is_not_pushed_and_marketing_is_off_unless_chosen(docs):
    path = push.settings_path(UID)
    seed(docs, {path: {**data(docs, path), "payments": False}})  # beside the devices, in the same document
    sender = Sender()
    assert deliver(docs, sender, a_push()) == {"muted": 1}
    assert deliver(docs, sender, a_push("offer-1", kind="marketing")) == {"muted": 1}
    assert deliver(docs, sender, a_push("card-1", kind="card")) == {"sent": 1}
    assert {c for _, _, c in sender.sent} == {push.collapse_id("card-1")}
    assert push.preferences(docs, "nobody")["marketing"] is False


def test_a_security_notice_is_pushed_whatever_the_settings_say(docs):
    path = push.settings_path(UID)
    every_kind_off = dict.fromkeys(["payments", "incoming", "card", "onboarding", "marketing", "security"], False)
    seed(docs, {path: {**data(docs, path), **every_kind_off}})
    sender = Sender()
    assert deliver(docs, sender, a_push("device:alice:added:tablet-key-1", kind="security")) == {"sent": 1}
    assert deliver(docs, sender, a_push()) == {"muted": 1}
    assert push.preferences(docs, UID)["security"] is True


def test_a_customer_without_devices_gets_no_push(docs):
    refused = PushResult("tok-phone", ok=False, error="HTTP 400", code="INVALID_ARGUMENT")
    assert deliver(docs, Sender(), a_push(uid="carol")) == {"no_devices": 1}
    seed(docs, {push.settings_path(UID): {"devices": {"phone": phone("tok-phone"), "tablet": {}}}})  # no token: skipped
    assert deliver(docs, Sender(**{"tok-phone": refused}), a_push("payment-2:completed")) == {"no_devices": 1}


@pytest.mark.parametrize(
    "code", ["UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED", "TRANSPORT_ERROR", "HTTP_503", "HTTP_429"]
)
def test_a_push_fcm_could_not_take_for_now_fails_the_message_so_it_comes_again(docs, code):
    """At least once: a push no device took because FCM said "not now" raises once the
    rest is done (the unregistered token removed), so Pub/Sub delivers the message again;
    the push sent already goes again then and shows once (its collapse id). (FCM answers
    alice's phone after bob's send was made: an answer that FCM takes nothing more for now
    holds back the sends not started, test_push_fcm_retries.py.)"""
    seed(docs, {"users/bob/settings/notifications": {"devices": {"phone": phone("tok-bob")}}})
    later = PushResult("tok-phone", ok=False, error="not now", code=code)
    gone = PushResult("tok-tab", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    bob_sent = threading.Event()

    class AfterBob(Sender):
        def send(self, token: str, **kwargs: Any) -> PushResult:
            if token == "tok-phone":
                bob_sent.wait(5)
            result = super().send(token, **kwargs)
            if token == "tok-bob":
                bob_sent.set()
            return result

    sender = AfterBob(**{"tok-phone": later, "tok-tab": gone})
    with pytest.raises(push.PushesNotSent) as raised:
        deliver(docs, sender, a_push(), a_push("payment-9:completed", uid="bob"))
    assert raised.value.outcomes == {"not_sent": 1, "sent": 1}
    assert devices(docs) == {"phone": phone("tok-phone")}
    assert deliver(docs, Sender(), a_push(), a_push("payment-9:completed", uid="bob")) == {"sent": 2}


def test_a_push_that_reached_one_device_is_sent_though_another_could_not_take_it(docs):
    later = PushResult("tok-tab", ok=False, error="not now", code="UNAVAILABLE")
    assert deliver(docs, Sender(**{"tok-tab": later}), a_push()) == {"sent": 1}


def test_a_push_whose_data_fcm_would_refuse_is_malformed_and_the_others_are_sent(docs):
    seed(docs, {"users/bob/settings/notifications": {"devices": {"phone": phone("tok-bob")}}})
    reserved = {**a_push("payment-1:completed"), "data": {"from": "x"}}  # a key FCM reserves
    nested = {**a_push("payment-2:completed"), "data": {"paymentId": {"a": 1}}}
    not_a_map = {**a_push("payment-3:completed"), "data": ["paymentId"]}
    sender = Sender()
    assert deliver(docs, sender, reserved, nested, not_a_map, a_push("payment-4:completed", uid="bob")) == {
        "malformed": 3,
        "sent": 1,
    }
    assert [t for t, _, _ in sender.sent] == ["tok-bob"]


def test_malformed_pushes_in_a_batch_are_counted_and_skipped(docs):
    batch = {
        "pushes": [
            a_push(),
            {"uid": UID},
            {**a_push("x"), "dedupeKey": 5},
            {**a_push("y"), "uid": "a/b"},  # never a document path
            "junk",
            a_push("payment-3:completed"),
        ]
    }
    assert push.deliver_batch(docs, Sender(), batch) == {"sent": 2, "malformed": 4}
    assert push.deliver_batch(docs, Sender(), "not a message") == {}
    assert push.deliver_batch(docs, Sender(), {"pushes": []}) == {}


def test_a_message_of_many_pushes_reads_the_preferences_once_and_each_customers_devices_once(docs, monkeypatch):
    monkeypatch.setattr(push, "WORKERS", 1)  # the counter is not made for threads
    seed(
        docs,
        {
            push.settings_path("bob"): {"devices": {"phone": phone("tok-bob")}},
            "users/bob/settings/notifications": {"payments": 0},
        },
    )
    counted = RoundTrips(docs)
    pushes = [a_push(f"p{i}:completed") for i in range(5)] + [a_push(f"b{i}:completed", uid="bob") for i in range(3)]
    pushes += [a_push(f"c{i}:received", kind="incoming", uid="carol") for i in range(2)]
    assert deliver(counted, Sender(), *pushes) == {"sent": 5, "muted": 3, "no_devices": 2}
    # the preferences and devices of all three in one read, and no query
    assert counted.counts == {"BatchGetDocuments": 1}


def test_an_entry_of_another_shape_is_skipped_and_a_device_the_app_added_meanwhile_is_kept(docs):
    odd = {"phone": phone("tok-phone"), "junk": "x", "nameless": {"platform": "ios"}, "empty": {"token": ""}}
    seed(docs, {push.settings_path(UID): {"devices": odd}})
    sender = Sender()
    assert deliver(docs, sender, a_push()) == {"sent": 1}
    assert [t for t, _, _ in sender.sent] == ["tok-phone"]

    class AppAddsAPhone(MemoryDocuments):
        """The app registers a phone between the push function's read and its removal."""

        def batch(self):
            seed(docs, {push.settings_path(UID): {"devices": {"old": phone("tok-old"), "new": phone("tok-new")}}})
            return super().batch()

    seed(docs, {push.settings_path(UID): {"devices": {"old": phone("tok-old")}}})
    racing = AppAddsAPhone(fixed_clock(), store=docs.store)
    gone = PushResult("tok-old", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    assert deliver(racing, Sender(**{"tok-old": gone}), a_push("p9:completed")) == {"no_devices": 1}
    assert set(devices(docs)) == {"old", "new"}  # nothing removed: the next push to it removes it


# ---- found in review (2026-12-05): a timed-out or throttled send is "not now" --------------
_ALICE_PHONE = {"users/alice/settings/notifications": {"devices": {"phone": {"token": "tok-phone", "platform": "ios"}}}}
_PUSH = {"uid": "alice", "kind": "payments", "dedupeKey": "p1:completed", "title": "Payment completed", "body": "x"}


def _alice() -> MemoryDocuments:
    docs = MemoryDocuments(fixed_clock())
    seed(docs, _ALICE_PHONE)
    return docs


def test_a_send_that_timed_out_in_firebase_admin_is_tried_again_not_dropped(monkeypatch):
    """firebase_admin reports a request that timed out (and a 504) as DeadlineExceededError:
    its code was not "not now", so the push was counted no_devices and lost."""
    import requests
    from firebase_admin import _utils, messaging

    from fjordbank.adapters.push import FirebaseAdminSender

    def timed_out(message, dry_run=False, app=None):
        raise _utils.handle_requests_error(requests.exceptions.ReadTimeout("read timed out"))

    monkeypatch.setattr(messaging, "send", timed_out)
    with pytest.raises(push.PushesNotSent):
        push.deliver_batch(_alice(), FirebaseAdminSender("demo-fjordbank", app=object()), {"pushes": [dict(_PUSH)]})


class _Answer:
    def __init__(self, status: int, payload: dict) -> None:
        self.status_code, self._payload, self.ok = status, payload, 200 <= status < 300

    def json(self) -> dict:
        return self._payload


class _Session:
    def __init__(self, answer: _Answer) -> None:
        self.answer = answer

    def post(self, *args, **kwargs) -> _Answer:
        return self.answer


@pytest.mark.parametrize(
    ("status", "grpc"), [(504, "DEADLINE_EXCEEDED"), (429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")]
)
def test_a_gateway_timeout_or_throttle_without_fcm_detail_is_tried_again(status, grpc):
    from fjordbank.adapters.push import FcmHttpSender

    answer = _Answer(status, {"error": {"code": status, "message": "x", "status": grpc}})
    sender = FcmHttpSender("demo-fjordbank", "http://sink", session=_Session(answer))
    with pytest.raises(push.PushesNotSent):
        push.deliver_batch(_alice(), sender, {"pushes": [dict(_PUSH)]})


def _gateway_error(status: int):
    import requests

    answer = requests.Response()
    answer.status_code, answer._content = status, b"<html><body>Gateway</body></html>"
    answer.headers["Content-Type"] = "text/html"
    return requests.HTTPError(f"{status} Server Error", response=answer)


@pytest.mark.parametrize("failure", ["504", "502", "cut"])
def test_a_gateway_error_firebase_admin_calls_unknown_is_tried_again(monkeypatch, failure):
    """firebase_admin knows nine HTTP statuses: a 502 or 504 with an HTML body, or a
    connection cut mid-answer, is its UnknownError (UNKNOWN), which was taken for "never"."""
    import requests
    from firebase_admin import messaging

    from fjordbank.adapters.push import FirebaseAdminSender

    error = (
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
        if failure == "cut"
        else _gateway_error(int(failure))
    )

    def failing(message, dry_run=False, app=None):
        raise messaging._MessagingService._handle_fcm_error(None, error)  # what send raises for it

    monkeypatch.setattr(messaging, "send", failing)
    with pytest.raises(push.PushesNotSent):
        push.deliver_batch(_alice(), FirebaseAdminSender("demo-fjordbank", app=object()), {"pushes": [dict(_PUSH)]})


def test_no_send_is_started_past_the_runs_budget_and_those_not_started_come_again(docs):
    """Cut by its platform's timeout, a run recorded nothing: every push sent again at each
    delivery, and never given up (found in review, 2026-12-06). Past the budget the sends
    not started are not sent for now, recorded with the rest."""
    seed(docs, {"users/bob/settings/notifications": {"devices": {"phone": phone("tok-bob")}}})
    sender = Sender()
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(docs, sender, {"pushes": [a_push(), a_push("p-9:completed", uid="bob")]}, budget_s=-1)
    assert raised.value.outcomes == {"not_sent": 2} and sender.sent == [] and raised.value.done == set()
    assert push.deliver_batch(docs, sender, {"pushes": [a_push()]}, budget_s=60) == {"sent": 1}


def test_a_sender_that_raises_is_a_push_not_sent_for_now(docs):
    """No FCM answer at all (the credentials' token refresh failing): it escaped the
    message's delivery whole (found in review, 2026-12-06)."""

    class Raising(Sender):
        def send(self, token, **kwargs):
            raise RuntimeError("could not refresh the access token")

    with pytest.raises(push.PushesNotSent) as raised:
        deliver(docs, Raising(), a_push())
    assert raised.value.outcomes == {"not_sent": 1}


# ---- found in review (2026-12-06): a first delivery hours late was still sent -------------
def _queued(minutes_ago: float) -> str:
    return (NOW - dt.timedelta(minutes=minutes_ago)).isoformat()


def test_news_queued_longer_ago_than_the_cut_off_is_not_pushed_but_a_security_notice_is(docs, caplog):
    """A backlog on the push topic delivered "Money received" hours after the fact. News older
    than `NEWS_MAX_AGE` by the time the notifier queued it is counted and logged, not sent
    (the feed shows it), and finished: a retry does not send it either. A security notice is
    sent however late (a stranger's device is worth knowing about late too), even one marked
    news. Only a push the domain marked as news is dropped (tests/unit/test_push_news.py)."""
    sender = Sender()
    old, fresh = push.NEWS_MAX_AGE.total_seconds() / 60 + 1, push.NEWS_MAX_AGE.total_seconds() / 60 - 1
    pushes = [
        {**a_push("payment-1:received", kind="incoming"), "queuedAt": _queued(180), "news": True},
        {**a_push("card-1:approved", kind="card"), "queuedAt": _queued(old), "news": True},
        {**a_push("payment-2:completed"), "queuedAt": _queued(fresh), "news": True},
        {**a_push("device:alice:added:k1", kind="security"), "queuedAt": _queued(180), "news": True},
        {**a_push("payment-3:completed"), "news": True},  # queued before pushes carried their time: sent
    ]
    statuses: list = [None] * len(pushes)
    with caplog.at_level("WARNING", logger=push.__name__):
        outcomes = push.deliver_batch(docs, sender, {"pushes": pushes}, statuses=statuses, now=NOW)
    assert outcomes == {"too_late": 2, "sent": 3}
    assert statuses == ["too_late", "too_late", "sent", "sent", "sent"]
    sent = {c for _, _, c in sender.sent}
    assert sent == {
        push.collapse_id(k) for k in ("payment-2:completed", "device:alice:added:k1", "payment-3:completed")
    }
    [line] = [r for r in caplog.records if r.getMessage().startswith("late pushes not sent")]
    assert line.kinds == {"incoming": 1, "card": 1}


def test_a_push_too_late_counts_as_finished_and_a_future_or_unreadable_time_is_sent(docs):
    late = {**a_push("payment-1:received", kind="incoming"), "queuedAt": _queued(24 * 60), "news": True}
    bad = PushResult("tok-tab", ok=False, error="not now", code="UNAVAILABLE")
    with pytest.raises(push.PushesNotSent) as raised:
        push.deliver_batch(
            docs,
            Sender(**{"tok-phone": bad, "tok-tab": bad}),
            {"pushes": [late, a_push("payment-2:completed")]},
            now=NOW,
        )
    assert raised.value.outcomes == {"too_late": 1, "not_sent": 1}
    assert raised.value.done == {push.push_id(late)}  # the retry does not try it again
    ahead = {**a_push("payment-3:completed"), "queuedAt": (NOW + dt.timedelta(minutes=5)).isoformat()}
    junk = {**a_push("payment-4:completed"), "queuedAt": "yesterday"}
    naive = {**a_push("payment-5:completed"), "queuedAt": "2020-01-01T00:00:00"}  # no zone: not ours, sent
    assert push.deliver_batch(docs, Sender(), {"pushes": [ahead, junk, naive]}, now=NOW) == {"sent": 3}


def test_the_queue_stamps_each_push_with_the_time_it_was_queued():
    import asyncio

    from fjordbank.adapters.pubsub import PushQueue
    from fjordbank.domain.notifications import Push

    published: list[dict] = []

    class Topic:
        async def publish_json(self, body: dict, **_attributes: str) -> str:
            published.append(body)
            return "1"

    pushes = [Push(UID, "payments", "t", "b", {}, f"p{i}:completed") for i in range(2)]
    asyncio.run(PushQueue(Topic(), clock=fixed_clock(NOW))(pushes))
    [message] = published
    assert [p["queuedAt"] for p in message["pushes"]] == [NOW.isoformat()] * 2
    assert dt.datetime.fromisoformat(NOW.isoformat()).utcoffset() == dt.timedelta(0)


# ---- found in review (2026-12-06): two device ids with one token got a push twice --------
def test_one_token_under_two_device_ids_gets_a_push_once_and_is_removed_from_both(docs):
    """An app that registered again under a new device id left its token under the old id
    too: each push went to that token twice (sounding twice). A token is sent to once per
    push (a send names a token, not a device), the signed-in devices' tokens first; its
    holders are every entry with it, signed-out ones included, so FCM's unregistered answer
    for it removes every device holding it."""
    seed(
        docs,
        {
            push.settings_path(UID): {
                "devices": {"phone-b": phone("tok-phone"), "phone-a": phone("tok-phone"), "tablet": phone("tok-tab")},
                "signedOutDevices": {"old": phone("tok-phone"), "older": phone("tok-gone")},
            }
        },
    )
    sender = Sender()
    assert deliver(docs, sender, a_push()) == {"sent": 1}
    assert sorted(t for t, _, _ in sender.sent) == ["tok-phone", "tok-tab"]
    sender.sent.clear()
    assert deliver(docs, sender, a_push("device:alice:added:k1", kind="security")) == {"sent": 1}
    assert sorted(t for t, _, _ in sender.sent) == ["tok-gone", "tok-phone", "tok-tab"]
    assert push.targets(docs.get(push.settings_path(UID)), "security") == [
        ("tok-phone", (("devices", "phone-a"), ("devices", "phone-b"), ("signedOutDevices", "old"))),
        ("tok-tab", (("devices", "tablet"),)),
        ("tok-gone", (("signedOutDevices", "older"),)),
    ]
    gone = PushResult("tok-phone", ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")
    sender = Sender(**{"tok-phone": gone})
    assert deliver(docs, sender, a_push("device:alice:added:k2", kind="security")) == {"sent": 1}
    assert [t for t, _, _ in sender.sent].count("tok-phone") == 1
    assert devices(docs) == {"tablet": phone("tok-tab")}
    assert data(docs, push.settings_path(UID))["signedOutDevices"] == {"older": phone("tok-gone")}
