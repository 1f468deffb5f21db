"""The devices FCM reports as unregistered are removed by a commit per customer (found in
review, 2026-12-07): in one commit for the whole message, each document on the condition
that it is the version read, one customer changing their settings during the sends (a
preference, a device) kept the dead tokens of every other customer of the message too.
The one whose document changed keeps theirs until their next push.
"""

from __future__ import annotations

from fjordbank.adapters.push import PushResult
from fjordbank.service_layer import push
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import data, fixed_clock, seed
from tests.unit.test_push_use_case import Sender, a_push, phone


def gone(token: str) -> PushResult:
    return PushResult(token, ok=False, unregistered=True, error="HTTP 404", code="UNREGISTERED")


def devices(docs: MemoryDocuments, uid: str) -> list[str]:
    return sorted((data(docs, push.settings_path(uid)) or {}).get("devices", {}))


def test_one_customers_edit_during_the_sends_leaves_only_their_own_dead_tokens():
    docs = MemoryDocuments(fixed_clock())
    seed(
        docs,
        {
            push.settings_path(uid): {"devices": {"phone": phone(f"tok-{uid}"), "old": phone(f"tok-{uid}-dead")}}
            for uid in ("alice", "bob", "carol")
        },
    )

    class BobEdits(Sender):
        """Bob turns a preference off in the app while the message's sends run."""

        def send(self, token: str, **kwargs: object) -> PushResult:
            if token == "tok-bob":
                edit = docs.batch()
                edit.update(push.settings_path("bob"), {"marketing": False})
                edit.commit()
            return super().send(token, **kwargs)

    dead = {f"tok-{uid}-dead": gone(f"tok-{uid}-dead") for uid in ("alice", "bob", "carol")}
    pushes = [a_push(f"p-{uid}:completed", uid=uid) for uid in ("alice", "bob", "carol")]
    commits = docs.store.commits
    assert push.deliver_batch(docs, BobEdits(**dead), {"pushes": pushes}) == {"sent": 3}
    assert devices(docs, "alice") == ["phone"] and devices(docs, "carol") == ["phone"]
    assert devices(docs, "bob") == ["old", "phone"]  # his edit is kept; the dead token waits for his next push
    assert data(docs, push.settings_path("bob"))["marketing"] is False
    assert docs.store.commits == commits + 1 + 2  # bob's edit, then alice's and carol's removals

    # bob's next push removes it
    assert push.deliver_batch(docs, Sender(**dead), {"pushes": [a_push("p-bob-2:completed", uid="bob")]}) == {"sent": 1}
    assert devices(docs, "bob") == ["phone"]


def test_nothing_is_written_when_no_token_is_gone():
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {push.settings_path("alice"): {"devices": {"phone": phone("tok-alice")}}})
    commits = docs.store.commits
    assert push.deliver_batch(docs, Sender(), {"pushes": [a_push(uid="alice")]}) == {"sent": 1}
    assert docs.store.commits == commits
