"""The push function (functions/main.py ``on_push``) delivers every customer's pushes of a
message whatever an earlier one's device answered: a push FCM could not take for now
(UNAVAILABLE) stopped the loop over the message's groups, the later customers' pushes
were not sent on that try, and once the message was an hour old they were given up with
it. Run in a subprocess, as the functions are loaded for deploy (their module reads its
deploy settings at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import datetime as dt, importlib.util, inspect, json
    from types import SimpleNamespace as NS

    spec = importlib.util.spec_from_file_location("fjb_functions_main", REPO + "/functions/main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)

    from fjordbank.adapters.push import PushResult
    from fjordbank.service_layer import push
    from tests.support.memory import MemoryDocuments
    from tests.support.use_cases import fixed_clock, seed

    class Sender:
        def __init__(self):
            self.sent = []
        def send(self, token, *, title, body, data, collapse_id=None):
            self.sent.append(token)
            if token == "tok-alice":  # FCM cannot take it for now
                return PushResult(token, ok=False, error="HTTP 503", code="UNAVAILABLE")
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

    def event(age):
        tps = ["00-" + c * 32 + "-" + c * 16 + "-01" for c in "12"]
        pushes = [
            {"uid": uid, "kind": "payments", "dedupeKey": f"{uid}:completed", "title": "Payment completed",
             "body": "x", "traceparent": tp}
            for uid, tp in zip(("alice", "bob"), tps)
        ]
        message = NS(json={"pushes": pushes}, attributes={}, publish_time=dt.datetime.now(dt.UTC) - age)
        return NS(data=NS(message=message))

    trigger = inspect.unwrap(main.on_push)
    results = []
    for age in (dt.timedelta(minutes=1), dt.timedelta(hours=2)):
        sender.sent.clear()
        try:
            trigger(event(age))
            results.append({"raised": None, "sent": sorted(sender.sent)})
        except push.PushesNotSent as exc:
            results.append({"raised": exc.outcomes, "sent": sorted(sender.sent)})
    print("RESULT " + json.dumps(results))
    """
)


def test_every_customers_push_of_a_message_is_sent_whatever_an_earlier_device_answered():
    env = {
        **os.environ,
        "FJB_FUNCTIONS_SERVICE_ACCOUNT": "fjb-edge@demo-fjordbank.iam.gserviceaccount.com",
        "FJB_VPC_CONNECTOR": "projects/demo-fjordbank/locations/europe-west1/connectors/fjordbank",
    }
    env.pop("FUNCTIONS_EMULATOR", None)
    proc = subprocess.run(
        [sys.executable, "-c", f"REPO = {str(REPO)!r}\n" + SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    young, old = json.loads(line.removeprefix("RESULT "))
    # within the hour: bob's push is sent, and the message is failed (delivered again) for alice's
    assert young["sent"] == ["tok-alice", "tok-bob"] and young["raised"]
    # after it: alice's is given up (logged), bob's is still sent
    assert old == {"raised": None, "sent": ["tok-alice", "tok-bob"]}
