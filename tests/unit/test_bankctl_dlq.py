"""The dead-letter replay's check (fjordbank/runtime/dead_letters.py replay_problem, for
`bankctl dlq replay` and the production module): a dead letter is published again only on
a subject its consumer takes, in the partition its payment's account gives. The letter's
headers are written by whoever may publish on its dlq subject (each service may, on its
own), and the replay publishes as admin: before the check a letter on
dlq.insights-payments naming payments.approved.3 became a payment the ledger would post
without screening, and one naming $JS.API.STREAM.PURGE.PAYMENTS would have emptied the
payments stream."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import nats.errors
import pytest

from fjordbank import topology
from fjordbank.domain.payments import PaymentEvent, PaymentRequested
from fjordbank.runtime.dead_letters import replay_problem

BY, NOTE = "Kari Drift", "the account document is mended (balance restored)"

PAYMENT = PaymentRequested(
    payment_id="uid1_req-0001",
    uid="uid1",
    request_id="req-0001",
    kind="internal",
    from_account="97100000028",
    to_account="97100000036",
    amount=12_500,
    currency="NOK",
    message=None,
    kid=None,
    due_date="2027-05-03",
    body_hash="0" * 64,
    requested_at="2027-05-03T10:00:00+00:00",
)


def letter(status: str) -> tuple[str, bytes]:
    event = PaymentEvent(PAYMENT, status)
    return event.subject, json.dumps(event.to_json()).encode()


def test_a_payment_s_dead_letter_goes_back_to_its_own_partition() -> None:
    subject, data = letter("approved")
    assert replay_problem("dlq.ledger", subject, data) is None
    assert replay_problem(topology.dlq_subject("notifier-customers"), topology.SUBJECT_CUSTOMER_APPROVED, b"{}") is None


@pytest.mark.parametrize(
    ("dead_letter", "original", "problem"),
    [
        ("dlq.insights-payments", "approved", "is not a subject consumer insights-payments takes"),
        ("dlq.ledger", "$JS.API.STREAM.PURGE.PAYMENTS", "is not a subject consumer ledger takes"),
        ("dlq.ledger", None, "does not say where it came from"),
        ("dlq.nobody", "approved", "is no consumer's dead letter subject"),
        ("dlq.ledger-p3", "approved", "is no consumer's dead letter subject"),
    ],
)
def test_a_dead_letter_naming_another_consumer_s_subject_is_refused(dead_letter, original, problem) -> None:
    subject, data = letter("approved")
    named = subject if original == "approved" else original
    assert problem in (replay_problem(dead_letter, named, data) or "")


def test_a_payment_named_for_another_partition_or_unreadable_is_refused() -> None:
    subject, data = letter("approved")
    base, _, n = subject.rpartition(".")
    other = f"{base}.{(int(n) + 1) % topology.PAYMENT_PARTITIONS}"
    assert f"belongs on {subject}" in (replay_problem("dlq.ledger", other, data) or "")
    assert "cannot be read" in (replay_problem("dlq.ledger", subject, b"not json") or "")


# ---- the replay's mark (fjordbank/runtime/dead_letters.py replay, replay_marks) -----------
class _Entry:
    def __init__(self, value: bytes) -> None:
        self.value = value


class _Marks:
    """The replay marks' KV bucket, as nats-py's KeyValue answers."""

    def __init__(self, *, fail_put: int = 0) -> None:
        self.entries: dict[str, bytes] = {}
        self.fail_put = fail_put  # puts that time out before one goes through
        self.puts = 0

    async def get(self, key: str) -> _Entry:
        import nats.js.errors

        if key not in self.entries:
            raise nats.js.errors.KeyNotFoundError
        return _Entry(self.entries[key])

    async def put(self, key: str, value: bytes) -> int:
        self.puts += 1
        if self.puts <= self.fail_put:
            raise TimeoutError("the cluster went away")
        self.entries[key] = value
        return len(self.entries)


class _Subscription:
    """An ordered consumer over the messages given, all of them already on their way when
    it is made (its info shows them delivered, none pending: nats-py's keys() took such a
    bucket for an empty one)."""

    def __init__(self, messages: list) -> None:
        self.messages = list(messages)
        self.sent = len(messages)

    async def consumer_info(self):
        return SimpleNamespace(num_pending=0, delivered=SimpleNamespace(consumer_seq=self.sent))

    async def next_msg(self, timeout):
        if not self.messages:
            raise nats.errors.TimeoutError
        return self.messages.pop(0)

    async def unsubscribe(self) -> None:
        pass


class _Letter:
    def __init__(self, subject: str, data: bytes) -> None:
        self.subject = "dlq.ledger"
        self.headers = {"Fjb-Original-Subject": subject, "traceparent": "00-abc-def-01"}
        self.data = data


class _JetStream:
    def __init__(self, marks: _Marks | None) -> None:
        self.marks = marks
        self.letters = {7: _Letter(*letter("approved"))}
        self.published: list[tuple[str, dict]] = []

    async def get_msg(self, stream: str, sequence: int) -> _Letter:
        import nats.js.errors

        assert stream == topology.STREAM_DLQ
        if sequence not in self.letters:
            raise nats.js.errors.NotFoundError
        return self.letters[sequence]

    async def publish(self, subject: str, data: bytes, headers: dict) -> None:
        self.published.append((subject, headers))

    async def subscribe(self, subject, *, stream, ordered_consumer, deliver_policy):
        """The marks' bucket as its stream holds it (the last value of each key)."""
        bucket = topology.REPLAYED_BUCKET
        assert (subject, stream, ordered_consumer) == (f"$KV.{bucket}.>", f"KV_{bucket}", True)
        assert self.marks is not None
        return _Subscription(
            [SimpleNamespace(subject=f"$KV.{bucket}.{k}", data=v, headers=None) for k, v in self.marks.entries.items()]
        )

    async def stream_info(self, stream: str):
        """The marks' stream as its leader tells it (its messages unnumbered here: no last)."""
        assert stream == f"KV_{topology.REPLAYED_BUCKET}"
        return SimpleNamespace(state=SimpleNamespace(last_seq=0))

    async def key_value(self, bucket: str) -> _Marks:
        import nats.js.errors

        assert bucket == topology.REPLAYED_BUCKET
        if self.marks is None:
            raise nats.js.errors.BucketNotFoundError
        return self.marks


async def test_a_replay_is_marked_and_a_second_one_must_be_asked_for() -> None:
    """An operator could not tell a letter dealt with from one waiting (`dlq list` showed
    both alike), and a second replay after the duplicate window went out unasked."""
    from fjordbank.runtime.dead_letters import ReplayRefused, replay, replay_marks

    js = _JetStream(_Marks())
    assert await replay_marks(js) == {}  # type: ignore[arg-type]
    subject, marked = await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert marked and js.published == [(subject, {"traceparent": "00-abc-def-01", "Nats-Msg-Id": "replay:DLQ:7"})]
    marks = await replay_marks(js)  # type: ignore[arg-type]
    assert marks[7]["times"] == 1 and marks[7]["subject"] == subject and marks[7]["at"]
    assert (marks[7]["by"], marks[7]["note"]) == (BY, NOTE)

    with pytest.raises(ReplayRefused, match=r"replayed already \(1 time\(s\).*--again"):
        await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert len(js.published) == 1

    await replay(js, 7, by=BY, note=NOTE, again=True)  # type: ignore[arg-type]
    assert js.published[-1][1]["Nats-Msg-Id"] == "replay:DLQ:7:2"  # not dropped as the first one's duplicate
    assert (await replay_marks(js))[7]["times"] == 2  # type: ignore[arg-type]


async def test_a_replay_carries_its_letter_s_first_time() -> None:
    """So the notifier's news in a letter replayed days later is as late as it is
    (fjordbank.runtime.consumer.Delivery.entered), not pushed as fresh."""
    from fjordbank.runtime.dead_letters import ORIGINAL_TIME, replay

    js = _JetStream(_Marks())
    js.letters[7].headers[ORIGINAL_TIME] = "2026-12-03T10:00:00+00:00"
    js.letters[7].headers["Fjb-Reason"] = "KeyError"
    js.letters[7].time = dt.datetime(2026, 12, 3, 10, 0, 5, tzinfo=dt.UTC)  # when it entered the DLQ
    await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert js.published[0][1] == {
        "traceparent": "00-abc-def-01",
        ORIGINAL_TIME: "2026-12-03T10:00:00+00:00",
        "Nats-Msg-Id": "replay:DLQ:7",
    }
    # a letter from before the header: the time it entered the DLQ (its message's was earlier)
    js = _JetStream(_Marks())
    js.letters[7].time = dt.datetime(2026, 12, 3, 10, 0, 5, tzinfo=dt.UTC)
    await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert js.published[0][1][ORIGINAL_TIME] == "2026-12-03T10:00:05+00:00"
    # one whose header says later than that: not believed
    js = _JetStream(_Marks())
    js.letters[7].headers[ORIGINAL_TIME] = "2026-12-05T10:00:00+00:00"
    js.letters[7].time = dt.datetime(2026, 12, 3, 10, 0, 5, tzinfo=dt.UTC)
    await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert js.published[0][1][ORIGINAL_TIME] == "2026-12-03T10:00:05+00:00"


async def test_a_replay_whose_mark_cannot_be_written_is_published_and_said(caplog, monkeypatch) -> None:
    from fjordbank.runtime import dead_letters

    monkeypatch.setattr(dead_letters, "MARK_PAUSE", 0.0)
    js = _JetStream(_Marks(fail_put=dead_letters.MARK_TRIES))
    done = await dead_letters.replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert done == (js.published[0][0], False) and js.marks.puts == dead_letters.MARK_TRIES  # type: ignore[union-attr]
    assert "dead letter replayed but not marked" in caplog.text
    assert "its mark could not be written, so `dlq list` shows it as not replayed" in done.said(7)


async def test_a_replay_mark_that_times_out_once_is_written_again(monkeypatch) -> None:
    """A put that timed out while the cluster was busy left a replayed letter listed as
    waiting (seen in CI, 2026-12-06): the mark is tried again."""
    from fjordbank.runtime import dead_letters

    monkeypatch.setattr(dead_letters, "MARK_PAUSE", 0.0)
    js = _JetStream(_Marks(fail_put=dead_letters.MARK_TRIES - 1))
    done = await dead_letters.replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert done.marked and done.said(7) == f"replayed dead letter #7 on {done.subject}"
    assert (await dead_letters.replay_marks(js))[7]["by"] == BY  # type: ignore[arg-type]


async def test_a_replay_without_the_marks_bucket_is_refused_before_it_publishes() -> None:
    from fjordbank.runtime.dead_letters import ReplayRefused, replay

    js = _JetStream(None)
    with pytest.raises(ReplayRefused, match="dead-letters-replayed is missing"):
        await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert js.published == []
    with pytest.raises(ReplayRefused, match="no dead letter #8"):
        await replay(js, 8, by=BY, note=NOTE)  # type: ignore[arg-type]


def test_the_marks_live_as_long_as_the_letters_on_file_and_replicated() -> None:
    from nats.js.api import StorageType

    from fjordbank.adapters.jetstream import replayed_config

    config = replayed_config()
    dlq = next(s for s in topology.STREAMS if s.name == topology.STREAM_DLQ)
    assert config.bucket == topology.REPLAYED_BUCKET and config.ttl == dlq.max_age_seconds
    assert config.storage == StorageType.FILE and config.replicas == 3 and config.history == 1


async def test_a_replay_names_who_asks_and_why_and_is_logged(caplog) -> None:
    """A replay can make a payment move: before, nothing said who had asked for it or why
    (found in review, 2026-12-06)."""
    from fjordbank.runtime.dead_letters import ReplayRefused, replay

    js = _JetStream(_Marks())
    for by, note in (("", NOTE), (BY, "  "), (BY, "x" * 501)):
        with pytest.raises(ReplayRefused, match="--by"):
            await replay(js, 7, by=by, note=note)  # type: ignore[arg-type]
    assert js.published == []
    with caplog.at_level("WARNING", logger="dead_letters"):
        await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    (line,) = [r for r in caplog.records if r.getMessage() == "dead letter replayed"]
    assert (line.by, line.note, line.sequence) == (BY, NOTE, 7)


async def test_a_replay_that_jetstream_takes_for_a_duplicate_says_so_and_marks_nothing() -> None:
    """Two operators at once, or a retry within the duplicate window: the second was told
    "replayed" though JetStream dropped it, and its mark overwrote the first's."""
    from fjordbank.runtime.dead_letters import ReplayRefused, replay, replay_marks

    class Duplicate(_JetStream):
        async def publish(self, subject, data, headers):
            await super().publish(subject, data, headers)
            return SimpleNamespace(duplicate=True)

    js = Duplicate(_Marks())
    with pytest.raises(ReplayRefused, match="being replayed already"):
        await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert await replay_marks(js) == {}  # type: ignore[arg-type]


def test_the_production_replay_with_nats_away_says_so_in_one_line(monkeypatch, capsys) -> None:
    from fjordbank.adapters import nats_conn
    from fjordbank.runtime import dead_letters

    async def away(*_a, **_k):
        raise nats.errors.NoServersError

    monkeypatch.setattr(nats_conn, "connect", away)
    assert dead_letters.main(["replay", "7", "--by", BY, "--note", NOTE]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dead_letters: NATS did not answer at ") and len(err.strip().splitlines()) == 1


# ---- two letters of one message ---------------------------------------------------------
# Dead letters carry no message id (another service could publish first with a predictable
# one: fjordbank.runtime.consumer ConsumerService.dead_letter), so a dead-lettering tried
# again after its letter was stored (its answer lost, or the message's term) stores another.
def _two_letters_of_one_message() -> _JetStream:
    js = _JetStream(_Marks())
    for seq in (7, 8):
        js.letters[seq] = _Letter(*letter("approved"))
        js.letters[seq].headers["Fjb-Original-Sequence"] = "1234"
    js.letters[9] = _Letter(*letter("approved"))
    js.letters[9].headers["Fjb-Original-Sequence"] = "1240"  # another message
    return js


def test_a_letter_is_of_its_consumer_s_message_as_its_subject_says() -> None:
    from fjordbank.runtime.dead_letters import message_of

    assert message_of("dlq.ledger", {"Fjb-Original-Sequence": "1234"}) == "ledger.1234"
    assert message_of("dlq.notifier-cards", {"Fjb-Original-Sequence": "5"}) == "notifier-cards.5"
    for subject, sequence in (("dlq.ledger", "x"), ("dlq.ledger", ""), ("dlq.a.b", "5"), ("ledger", "5")):
        assert message_of(subject, {"Fjb-Original-Sequence": sequence}) is None
    assert message_of("dlq.ledger", {}) is None


async def test_a_replay_of_one_letter_marks_the_other_letters_of_its_message() -> None:
    from fjordbank.runtime.dead_letters import ReplayRefused, read_marks, replay

    js = _two_letters_of_one_message()
    await replay(js, 7, by=BY, note=NOTE)  # type: ignore[arg-type]
    with pytest.raises(ReplayRefused, match=r"#8 was replayed already \(as dead letter #7, another letter of its"):
        await replay(js, 8, by=BY, note=NOTE)  # type: ignore[arg-type]
    assert len(js.published) == 1
    marks = await read_marks(js)  # type: ignore[arg-type]
    assert marks.of(8, "ledger.1234") == marks.of(7, "ledger.1234") and marks.of(9, "ledger.1240") is None
    # another message's letter: its own first replay
    await replay(js, 9, by=BY, note=NOTE)  # type: ignore[arg-type]
    await replay(js, 8, by=BY, note=NOTE, again=True)  # type: ignore[arg-type]
    assert js.published[-1][1]["Nats-Msg-Id"] == "replay:DLQ:8:2"
    marks = await read_marks(js)  # type: ignore[arg-type]
    assert marks.of(7, "ledger.1234")["times"] == 1 and marks.of(8, "ledger.1234")["times"] == 2  # type: ignore[index]


def test_the_dlq_list_counts_a_message_with_two_letters_once(monkeypatch, capsys) -> None:
    from bankctl import commands
    from fjordbank.runtime.dead_letters import Marks

    js = _two_letters_of_one_message()

    def listed(seq: int) -> SimpleNamespace:
        got = js.letters[seq]
        return SimpleNamespace(
            subject=got.subject, headers=got.headers, metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq))
        )

    def list_with(marks: Marks, *, as_json: bool = False) -> str:
        monkeypatch.setattr(commands, "_nats", lambda _config, _read: ([listed(7), listed(8), listed(9)], marks))
        assert commands.dlq(SimpleNamespace(consumer=None, json=as_json, config=None)) == 0
        return capsys.readouterr().out

    out = list_with(Marks({}, {}))
    assert "#8 dlq.ledger" in out and "(another letter of #7's message)" in out
    assert out.splitlines()[-1] == "2 dead-lettered message(s), 2 not replayed; 1 more letter(s) of one of them"
    mark = {"times": 1, "at": "2026-12-07T10:00:00+00:00", "by": BY, "note": NOTE, "letter": 7}
    out = list_with(Marks({7: mark}, {"ledger.1234": mark}))
    assert sum("[replayed 1x" in line for line in out.splitlines()) == 2  # the letter replayed and its copy
    assert out.splitlines()[-1].startswith("2 dead-lettered message(s), 1 not replayed")
    rows = json.loads(list_with(Marks({}, {}), as_json=True))
    assert [r["letterOf"] for r in rows] == [None, 7, None]
