"""The push function (functions/main.py ``on_push``) delivers every customer's pushes of a
message whatever an earlier one's device answered: a push FCM could not take for now
(UNAVAILABLE) stopped the loop over the message's groups, the later customers' pushes
were not sent on that try, and once the message was an hour old they were given up with
it. A delivery of the message again sends only the pushes not finished before. Run in a
subprocess, as the functions are loaded for deploy (their module reads its deploy
settings at import)."""

from __future__ import annotations

import textwrap

from tests.support import functions_main

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, inspect, json
    from types import SimpleNamespace as NS

    from fjordbank.adapters.push import PushResult
    from fjordbank.service_layer import push
    from tests.support.memory import MemoryDocuments
    from tests.support.use_cases import fixed_clock, seed

    class Sender:
        def __init__(self):
            self.sent = []
            # FCM cannot take these for now (INTERNAL: after an answer that it takes nothing
            # more for now, UNAVAILABLE say, the sends not started are held back on purpose:
            # test_push_fcm_retries.py)
            self.away = {"tok-alice"}
            self.broken = set()  # sending to these raises (no FCM answer at all)
        def send(self, token, *, title, body, data, collapse_id=None):
            self.sent.append(token)
            if token in self.broken:
                raise RuntimeError("the credentials' token could not be refreshed")
            if token in self.away:
                return PushResult(token, ok=False, error="HTTP 500", code="INTERNAL")
            return PushResult(token, ok=True, message_id="m")

    docs = MemoryDocuments(fixed_clock())
    seed(docs, {
        f"users/{uid}/settings/notifications": {"devices": {"phone": {"token": f"tok-{uid}", "platform": "ios"}}}
        for uid in ("alice", "bob")
    })
    main.deps = lambda: (None, None, NS(project_id="demo-fjordbank", fcm_sink_url=None))
    main.docs = lambda: docs
    sender = Sender()
    main._deps["push_sender"] = sender

    def event(age, message_id, news=True):
        tps = ["00-" + c * 32 + "-" + c * 16 + "-01" for c in "12"]
        pushes = [
            {"uid": uid, "kind": "payments", "dedupeKey": f"{uid}:completed", "title": "Payment completed",
             "body": "x", "traceparent": tp, "news": news}
            for uid, tp in zip(("alice", "bob"), tps)
        ]
        message = NS(json={"pushes": pushes}, attributes={}, publish_time=dt.datetime.now(dt.UTC) - age,
                     message_id=message_id)
        return NS(data=NS(message=message))

    trigger = inspect.unwrap(main.on_push)

    def deliver(age, message_id, news=True):
        sender.sent.clear()
        try:
            trigger(event(age, message_id, news))
            raised = None
        except push.PushesNotSent as exc:
            raised = exc.outcomes
        record = docs.get(push.retry_path(message_id))
        recorded = None if record is None else len(record.data["done"])
        return {"raised": raised, "sent": sorted(sender.sent), "recorded": recorded}

    reads = []  # the settings reads of a delivery: one for the message, whatever its traces
    read_many = docs.get_many
    docs.get_many = lambda paths: reads.append(sorted(paths)) or read_many(paths)
    results = {
        # a first delivery: bob's sent, alice's not; the record keeps bob's for the retry
        "first": deliver(dt.timedelta(seconds=1), "1001"),
        "first_reads": len(reads),
        # Pub/Sub's retry of the same message, alice's device still away: bob's not sent again
        "retry": deliver(dt.timedelta(seconds=40), "1001"),
    }
    sender.away.clear()
    results["last"] = deliver(dt.timedelta(minutes=3), "1001")  # alice's device back: hers only, record gone
    sender.away.add("tok-alice")
    results["late"] = deliver(dt.timedelta(hours=2), "2002")  # past the hour: given up, bob's sent
    # not news (a payment that failed, a security notice): retried for most of a day
    results["urgent_late"] = deliver(dt.timedelta(hours=2), "2003", news=False)
    results["urgent_later"] = deliver(dt.timedelta(hours=23, minutes=30), "2003", news=False)
    # a send that raises (no FCM answer): not now, recorded like one, bob's not sent again
    sender.away.clear()
    sender.broken.add("tok-alice")
    results["raising"] = deliver(dt.timedelta(seconds=1), "3003")
    results["raising_retry"] = deliver(dt.timedelta(seconds=40), "3003")
    results["raising_late"] = deliver(dt.timedelta(hours=2), "3003")  # given up after the hour
    # a failure of ours (the settings read): tried again, given up after the hour
    kept = docs.get_many
    def failing(paths):
        raise RuntimeError("firestore away")
    docs.get_many = failing
    class NotJson:  # a message whose data is not JSON: the SDK's json raises
        message_id, attributes, publish_time = "5005", {}, dt.datetime.now(dt.UTC)
        @property
        def json(self):
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
    trigger(NS(data=NS(message=NotJson())))  # dropped (logged), not raised: a retry would not mend it
    results["not_json"] = "dropped"
    results["ours"] = deliver(dt.timedelta(seconds=1), "4004")
    results["ours_late"] = deliver(dt.timedelta(hours=2), "4004")
    results["ours_urgent_late"] = deliver(dt.timedelta(hours=2), "4005", news=False)  # not news: kept
    docs.get_many = kept
    # the retry record's read failing (a retry: the record is read first): tried again,
    # given up after the hour (it escaped the give-up, retried for a day: found in review)
    sender.broken.clear()
    sender.away = {"tok-alice"}
    deliver(dt.timedelta(seconds=1), "6006")  # bob's sent and recorded, alice's not
    get = docs.get
    def away(path):
        raise RuntimeError("firestore away")
    docs.get = away
    outcomes = []
    for age in (dt.timedelta(seconds=40), dt.timedelta(hours=2)):
        try:
            trigger(event(age, "6006"))
            outcomes.append(None)
        except push.PushesNotSent as exc:
            outcomes.append(exc.outcomes)
    docs.get = get
    results["record_read_fails"] = outcomes
    record = docs.get(push.retry_path("6006"))
    results["record_kept"] = None if record is None else len(record.data["done"])
    print("RESULT " + json.dumps(results))
    """
)


def test_every_customers_push_of_a_message_is_sent_whatever_an_earlier_device_answered():
    got = functions_main.result(SCRIPT)
    # within the hour: bob's push is sent, and the message is failed (delivered again) for alice's
    assert got["first"] == {"raised": {"not_sent": 1, "sent": 1}, "sent": ["tok-alice", "tok-bob"], "recorded": 1}
    # the two payments' pushes (each in its own trace) in one delivery: one read of the
    # settings; delivered one trace at a time, a slow FCM cut the run at its timeout after a
    # few payments (found in review, 2026-12-06)
    assert got["first_reads"] == 1
    # a delivery again sends only what is left: each other customer of the message got the
    # push again at every retry, for an hour (found in review, 2026-12-06)
    assert got["retry"] == {"raised": {"sent_before": 1, "not_sent": 1}, "sent": ["tok-alice"], "recorded": 1}
    assert got["last"] == {"raised": None, "sent": ["tok-alice"], "recorded": None}
    # after the hour: alice's is given up (logged), bob's is still sent
    assert got["late"] == {"raised": None, "sent": ["tok-alice", "tok-bob"], "recorded": None}
    # a push left that is not news is retried past the hour (a security notice refused once in
    # a backlog got one try: found in review, 2026-12-06), and given up within the day
    assert got["urgent_late"] == {"raised": {"not_sent": 1, "sent": 1}, "sent": ["tok-alice", "tok-bob"], "recorded": 1}
    assert got["urgent_later"] == {"raised": None, "sent": ["tok-alice"], "recorded": 1}
    # a send that raised instead of answering (the credentials' token refresh failing) failed
    # the whole message: nothing recorded, every push sent again at each retry, never given
    # up (found in review, 2026-12-06); now it is one FCM could not take for now
    assert got["raising"] == {"raised": {"not_sent": 1, "sent": 1}, "sent": ["tok-alice", "tok-bob"], "recorded": 1}
    assert got["raising_retry"] == {"raised": {"sent_before": 1, "not_sent": 1}, "sent": ["tok-alice"], "recorded": 1}
    assert got["raising_late"]["raised"] is None  # given up after the hour
    # a failure of ours (the settings read) is tried again, and given up after the hour
    assert got["ours"] == {"raised": {"error": 2}, "sent": [], "recorded": 0}
    assert got["ours_late"]["raised"] is None
    # ... unless a push left is not news: a security notice was given up after the hour when
    # the settings read failed (found in review, 2026-12-06)
    assert got["ours_urgent_late"]["raised"] == {"error": 2}
    assert got["not_json"] == "dropped"
    assert got["record_read_fails"] == [{"error": 1}, None]
    # the record unread is not written over: bob's push is not sent again (found in review)
    assert got["record_kept"] == 1
