"""The messaging contracts: the committed files are the code's, every event round-trips and
validates against its schema, producers and consumers agree on the wire, and the
compatibility rules tell an additive change from one that needs a new version.

`python -m fjordbank.contracts` writes contracts/events/*.schema.json and
contracts/asyncapi.json from fjordbank/topology.py and the event dataclasses
(fjordbank.domain.events, fjordbank.domain.payments.PaymentEvent).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import jsonschema
import pytest

from fjordbank import contracts, topology
from fjordbank.contracts import asyncapi, catalog, compat
from fjordbank.contracts.__main__ import main as contracts_main
from fjordbank.contracts.schema import event_schema
from fjordbank.domain import bookings
from fjordbank.domain.errors import OtherVersion
from fjordbank.domain.events import (
    SUBJECT_TYPES,
    AccountChanged,
    CardAuthorization,
    CardIncremented,
    CardIssued,
    CardRefunded,
    CardUpdated,
    Contract,
    CustomerDecided,
    DeviceChanged,
    ExpireCardHolds,
    IssueCard,
    MalformedEvent,
    decode,
)
from fjordbank.domain.notifications import card_pushes, customer_pushes
from fjordbank.domain.payments import EVENT_VERSION as PAYMENT_VERSION
from fjordbank.domain.payments import PaymentEvent, PaymentRejected, PaymentRequested
from fjordbank.runtime import events as runtime_events
from fjordbank.runtime import steps
from fjordbank.runtime.consumer import Ack, Delivery, Reject, Retry
from fjordbank.service_layer import cards as card_uses
from fjordbank.service_layer.accounts import account_event
from fjordbank.service_layer.card_ledger import CardResult, card_event
from fjordbank.service_layer.onboarding import customer_event
from fjordbank.service_layer.sca import device_event
from fjordbank.service_layer.scheduled import release_expired_holds

ROOT = Path(__file__).parents[2] / "contracts"
AUTH_ID = "ca" + "0" * 32
REFUND_ID = "rf" + "3" * 32
INCREMENT_ID = "in" + "4" * 32
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

PAYMENT = PaymentEvent(
    PaymentRequested(
        payment_id="p" + "0" * 34,
        uid="user_1",
        request_id="req-00001",
        kind="internal",
        from_account="86011117947",
        to_account="12345678903",
        amount=12_345,
        currency="NOK",
        message="Husleie",
        kid=None,
        due_date="2026-11-26",
        body_hash="0" * 64,
        requested_at="2026-11-26T10:00:00+00:00",
    ),
    "completed",
    detail={},  # (what a decoded payment event has for none)
)
AUTHORIZATION = CardAuthorization(
    auth_id=AUTH_ID,
    status="approved",
    reason=None,
    uid="user_1",
    card_id="card_1",
    account_id="12345678903",
    last4="7897",
    amount=12_345,
    currency="NOK",
    merchant_name="Rema 1000",
    mcc="5411",
    merchant_country="NO",
    channel="pos",
    day="2026-11-26",
)
EXAMPLES: dict[type[Any], list[Any]] = {
    PaymentEvent: [
        PAYMENT,
        dataclasses.replace(PAYMENT, status="failed", reason="insufficient_funds", detail={"file": "f1"}),
    ],
    CustomerDecided: [
        CustomerDecided(uid="user_1", status="approved", reason=None, account_id="97100000018"),
        CustomerDecided(uid="user_2", status="rejected", reason="sanctions_match", account_id=None),
    ],
    AccountChanged: [
        AccountChanged(uid="user_1", account_id="97100000018", type="savings"),
        AccountChanged(uid="user_1", account_id="97100000018", type=None),
    ],
    DeviceChanged: [
        DeviceChanged(
            uid="user_1",
            change="added",
            key_id="tablet-key-1",
            approved_by="phone-key-1",
            changed_at="2026-12-05T10:00:00+00:00",
        ),
        DeviceChanged(
            uid="user_1",
            change="reset",
            key_id="new-phone-01",
            approved_by=None,
            changed_at="2026-12-05T10:00:00+00:00",
        ),
    ],
    IssueCard: [IssueCard(uid="user_1", card_id="card_1", account_id="97100000018")],
    ExpireCardHolds: [ExpireCardHolds(as_of="2026-11-26T03:00:00+00:00")],
    CardIssued: [CardIssued(uid="user_1", card_id="card_1", account_id="97100000018", last4="7897")],
    CardUpdated: [
        CardUpdated(uid="user_1", card_id="card_1", status="frozen"),
        CardUpdated(uid="user_1", card_id="card_1", limits={"daily": 100, "online": 0, "abroad": 0}),
        CardUpdated(uid="user_1", card_id="card_1", status="blocked", reason="stolen"),
    ],
    CardAuthorization: [
        AUTHORIZATION,
        dataclasses.replace(
            AUTHORIZATION, status="declined", reason="unknown_card", uid=None, card_id=None, account_id=None, last4=None
        ),
    ],
    CardRefunded: [
        CardRefunded(
            refund_id="rf" + "2" * 32,
            auth_id=AUTH_ID,
            status="refunded",
            uid="user_1",
            card_id="card_1",
            account_id="12345678903",
            last4="7897",
            amount=4_500,
            currency="NOK",
            merchant_name="Rema 1000",
            mcc="5411",
            merchant_country="NO",
            category="groceries",
            day="2026-11-27",
        )
    ],
    CardIncremented: [
        CardIncremented(
            increment_id="in" + "3" * 32,
            auth_id=AUTH_ID,
            status="incremented",
            uid="user_1",
            card_id="card_1",
            account_id="12345678903",
            last4="7897",
            amount=50_000,
            authorized_amount=150_000,
            currency="NOK",
            merchant_name="Scandic Lerkendal",
            mcc="7011",
            merchant_country="NO",
            channel="pos",
            day="2026-11-27",
        )
    ],
}


def committed(path: str) -> Any:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def validator(entry: catalog.Entry) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(committed(entry.path))


def entry_of(cls: type[Any]) -> catalog.Entry:
    return next(e for e in catalog.ENTRIES if e.cls is cls)


def delivery(subject: str, body: object) -> Delivery:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(SimpleNamespace(subject=subject, data=data, headers=None))  # type: ignore[arg-type]


# ---- the committed files are the code's ------------------------------------------------------
@pytest.mark.parametrize("path", sorted(contracts.generate()))
def test_committed_file_is_what_the_code_generates(path: str) -> None:
    expected = contracts.render(contracts.generate()[path])
    target = ROOT / path
    assert target.exists(), f"contracts/{path} is missing: run `{contracts.REGENERATE}` and commit it"
    assert target.read_text(encoding="utf-8") == expected, (
        f"contracts/{path} differs from the code: run `{contracts.REGENERATE}` and commit it"
    )


def test_no_schema_file_is_of_a_contract_the_code_does_not_have() -> None:
    assert contracts.retired() == [], f"remove them, or run `{contracts.REGENERATE}`"


def test_the_check_command_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert contracts_main(["--check"]) == 0, capsys.readouterr().out


def test_the_check_command_names_a_stale_file_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(contracts, "ROOT", tmp_path)
    assert contracts_main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "stale: contracts/events/card_issued.v1.schema.json" in out
    assert contracts.REGENERATE in out


@pytest.mark.parametrize("entry", catalog.ENTRIES, ids=lambda e: e.key)
def test_every_schema_is_a_draft_2020_12_schema(entry: catalog.Entry) -> None:
    schema = committed(entry.path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_customer_and_card_subject_and_every_payment_subject_has_a_contract() -> None:
    subjects = {value for name, value in vars(topology).items() if name.startswith("SUBJECT_")}
    for subject in subjects:
        assert catalog.entry_for(subject).cls in (PaymentEvent, *SUBJECT_TYPES.values())
    assert set(EXAMPLES) == {e.cls for e in catalog.ENTRIES}


# ---- round trips and schemas -----------------------------------------------------------------
@pytest.mark.parametrize(
    "event", [e for examples in EXAMPLES.values() for e in examples], ids=lambda e: type(e).__name__
)
def test_every_event_round_trips_and_validates_against_its_schema(event: Any) -> None:
    wire = json.loads(json.dumps(event.to_json()))
    validator(entry_of(type(event))).validate(wire)
    assert type(event).from_json(wire) == event
    assert not [k for k in _keys(wire) if k != k.lower()], "one wire case: snake_case"


def _keys(value: object) -> list[str]:
    """Every key of a JSON value, nested ones too."""
    if not isinstance(value, dict):
        return []
    return [*value, *(k for v in value.values() for k in _keys(v))]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"v": True}, "version True"),
        ({"v": 0}, "version 0"),
        ({"amount": "12345"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 123.45}, "amount"),
        ({"status": "authorized"}, "status"),
        ({"uid": 7}, "uid"),
    ],
)
def test_a_consumer_refuses_a_malformed_event_or_another_version(change: dict[str, Any], why: str) -> None:
    wire = {**AUTHORIZATION.to_json(), **change}
    with pytest.raises(MalformedEvent, match=why):
        CardAuthorization.from_json(wire)
    assert not validator(entry_of(CardAuthorization)).is_valid(wire)


@pytest.mark.parametrize("version", [2, 7])
def test_an_event_of_another_version_is_another_release_s_not_malformed(version: int) -> None:
    """Another version is another release's: given back for its consumer during a rollout,
    not dead-lettered at once (found in review, 2026-12-07)."""
    wire = {**AUTHORIZATION.to_json(), "v": version}
    with pytest.raises(OtherVersion, match=f"version {version}"):
        CardAuthorization.from_json(wire)
    assert not validator(entry_of(CardAuthorization)).is_valid(wire)
    batch = [delivery(topology.SUBJECT_CARD_ISSUE, {"v": version, "uid": "u", "card_id": "c", "account_id": "a"})]
    decoded, (outcome,) = runtime_events.decode_contracts(batch)
    assert decoded == []
    # not taken for the database failing for all (which holds the rest of its batch back
    # for an hour): a failure of its own, dead-lettered after its tries
    assert (
        isinstance(outcome, Retry)
        and not outcome.transient
        and outcome.delay == runtime_events.OTHER_VERSION_DELAY_SECONDS
    )


def test_a_payment_of_a_later_version_is_given_back_and_one_of_no_version_is_malformed() -> None:
    event = PAYMENT.to_json()
    later = copy.deepcopy(event)
    later["payment"]["v"] = PAYMENT_VERSION + 1
    with pytest.raises(OtherVersion):
        PaymentEvent.from_json(later)
    _, (outcome,) = runtime_events.decode_batch([delivery(PAYMENT.subject, later)])
    assert isinstance(outcome, Retry) and not outcome.transient
    # a later version adds or removes a field, a status: read for its version first, not
    # refused as malformed (found in review, 2026-12-07)
    added, removed, status = copy.deepcopy(later), copy.deepcopy(later), copy.deepcopy(later)
    added["payment"]["purpose_code"] = "SALA"
    del removed["payment"]["kid"]
    status["status"] = "screened_again"
    for wire in (added, removed, status, {**later, "priority": "high"}):
        with pytest.raises(OtherVersion):
            PaymentEvent.from_json(wire)
    for bad in ("banana", True, 0, None):
        wire = copy.deepcopy(event)
        wire["payment"]["v"] = bad
        with pytest.raises(PaymentRejected, match="version"):
            PaymentEvent.from_json(wire)
    for earlier in (1, PAYMENT_VERSION):  # an earlier version's fields are today's, and none (before v)
        wire = copy.deepcopy(event)
        wire["payment"]["v"] = earlier
        assert PaymentEvent.from_json(wire).payment.payment_id == PAYMENT.payment.payment_id
    del wire["payment"]["v"]
    assert PaymentEvent.from_json(wire).payment.v == PAYMENT_VERSION


def test_a_field_with_a_default_factory_is_optional_on_the_wire_as_in_its_schema() -> None:
    @dataclasses.dataclass(frozen=True)
    class Tagged(Contract):
        NAME: ClassVar[str] = "tagged"
        uid: str
        tag: str = dataclasses.field(default_factory=str)

    assert "tag" not in _schema_of(Tagged)["required"]
    assert Tagged.from_json({"v": 1, "uid": "u"}) == Tagged("u", "")


def test_a_required_field_must_be_there_and_an_optional_one_may_not() -> None:
    wire = AUTHORIZATION.to_json()
    del wire["merchant_name"]
    with pytest.raises(MalformedEvent, match="merchant_name"):
        CardAuthorization.from_json(wire)
    update = {"v": 1, "uid": "user_1", "card_id": "card_1", "status": "active"}
    assert CardUpdated.from_json(update) == CardUpdated(uid="user_1", card_id="card_1", status="active")
    for body in (None, [], "x", 1):
        with pytest.raises(MalformedEvent):
            CardUpdated.from_json(body)
    with pytest.raises(MalformedEvent, match="limits"):
        CardUpdated.from_json({**update, "limits": {"daily": "100"}})


def test_an_event_on_a_subject_without_a_contract_is_refused() -> None:
    with pytest.raises(MalformedEvent, match="no customer or card event"):
        decode("cards.somewhere", IssueCard(uid="u", card_id="card_1", account_id="a").to_json())


# ---- producers and consumers agree -----------------------------------------------------------
class Recorder:
    """A publisher that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], str]] = []

    def publish_json(self, subject: str, body: dict[str, Any], *, msg_id: str, stream: str | None = None) -> None:
        self.published.append((subject, body, msg_id))


def _produced() -> list[tuple[str, dict[str, Any]]]:
    """What every producer of a customer or card event or command puts on NATS."""
    record = {
        "authId": AUTH_ID,
        "fingerprint": "f" * 64,
        "reference": "ref-1",
        "amount": 12_345,
        "currency": "NOK",
        "merchantName": "Rema 1000",
        "mcc": "5411",
        "merchantCountry": "NO",
        "channel": "online",
        "cardId": "card_1",
        "ownerUid": "user_1",
        "accountId": "12345678903",
        "last4": "7897",
        "spendDay": "2026-11-26",
    }
    unknown_card = {**record, "cardId": None, "ownerUid": None, "accountId": None, "last4": None}
    decisions = [
        CardResult("approved", None, AUTH_ID, record),
        CardResult("declined", "unknown_card", AUTH_ID, unknown_card),
        CardResult("captured", None, AUTH_ID, {**record, "status": "captured", "capturedAmount": 10_000}),
        CardResult("reversed", None, AUTH_ID, record),
        CardResult("expired", None, AUTH_ID, record),
        CardResult(
            "refunded",
            None,
            AUTH_ID,
            {
                **record,
                "status": "captured",
                "capturedAmount": 10_000,
                "refunds": {
                    REFUND_ID: {"reference": "rfd-1", "amount": 4_000, "category": "groceries", "refundedAt": NOW}
                },
            },
            refund_id=REFUND_ID,
        ),
        CardResult(
            "incremented",
            None,
            AUTH_ID,
            {
                **record,
                "increments": {
                    INCREMENT_ID: {
                        "reference": "inc-1",
                        "amount": 5_000,
                        "status": "approved",
                        "reason": None,
                        "incrementedAt": NOW,
                        "authorizedAmount": 15_000,
                    }
                },
            },
            increment_id=INCREMENT_ID,
        ),
    ]
    staged = [
        *filter(None, (card_event(result) for result in decisions)),
        card_uses._issue_command("user_1", "card_1", "12345678903"),
        card_uses._updated("user_1", "card_1", {"status": "frozen"}),
        card_uses._updated("user_1", "card_1", {"limits": {"daily": 100, "online": 0, "abroad": 0}}),
        card_uses._updated("user_1", "card_1", {"status": "blocked", "reason": "lost"}),
        account_event(topology.SUBJECT_ACCOUNT_OPENED, "user_1", "12345678903", "spending"),
        account_event(topology.SUBJECT_ACCOUNT_CLOSED, "user_1", "12345678903"),
        device_event(
            "user_1", "added", "tablet-key-1", at=dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC), approved_by="p-1"
        ),
        device_event("user_1", "reset", "new-phone-01", at=dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC)),
        customer_event("user_1", "approved", None, "12345678903"),
        customer_event("user_2", "review", "name_match", None),
        customer_event("user_3", "rejected", "sanctions_match", None),
    ]
    jobs = Recorder()
    release_expired_holds(jobs, clock=lambda: dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC))
    return [
        *((event.subject, event.body) for event in staged),
        *((subject, body) for subject, body, _ in jobs.published),
    ]


@pytest.mark.parametrize(("subject", "body"), _produced(), ids=lambda v: v if isinstance(v, str) else "")
def test_what_a_producer_publishes_its_consumers_decode(subject: str, body: dict[str, Any]) -> None:
    wire = json.loads(json.dumps(body))
    validator(catalog.entry_for(subject)).validate(wire)
    event = decode(subject, wire)
    assert event.to_json() == wire
    [(position, decoded)], outcomes = runtime_events.decode_contracts([delivery(subject, wire)])
    assert (position, decoded, outcomes) == (0, event, [None])


def test_every_customer_and_card_subject_has_a_producer_here() -> None:
    assert {subject for subject, _ in _produced()} == set(SUBJECT_TYPES) - {topology.SUBJECT_CARD_ISSUED}


def test_the_consumers_dead_letter_what_is_no_event_of_their_contract() -> None:
    camel_case = {"v": 1, "uid": "user_1", "cardId": "card_1", "accountId": "12345678903"}  # the old wire case
    batch = [
        delivery(topology.SUBJECT_CARD_ISSUE, IssueCard(uid="u", card_id="card_1", account_id="a").to_json()),
        delivery(topology.SUBJECT_CARD_ISSUE, camel_case),
        delivery(topology.SUBJECT_CARD_ISSUE, b"not json"),
        delivery(topology.SUBJECT_CARD_ISSUE, b"\xff"),
        delivery(topology.SUBJECT_CARD_ISSUE, [1, 2]),
    ]
    decoded, outcomes = runtime_events.decode_contracts(batch)
    assert [i for i, _ in decoded] == [0]
    assert outcomes[0] is None
    assert all(isinstance(o, Reject) and o.reason.startswith("malformed cards.commands.issue") for o in outcomes[1:])


def test_the_notifier_pushes_a_card_decision_an_onboarding_result_and_a_device_change_as_published() -> None:
    event = card_event(
        CardResult(
            "declined",
            "card_frozen",
            AUTH_ID,
            {
                "fingerprint": "f",
                "amount": 12_345,
                "currency": "NOK",
                "merchantName": "Rema 1000",
                "mcc": "5411",
                "merchantCountry": "NO",
                "channel": "pos",
                "cardId": "card_1",
                "ownerUid": "user_1",
                "accountId": "12345678903",
                "last4": "7897",
                "spendDay": "2026-11-26",
            },
        )
    )
    assert event is not None
    [push] = card_pushes(decode(event.subject, event.body).to_json())
    assert (push.uid, push.title, push.dedupe_key) == ("user_1", "Card purchase declined", f"{AUTH_ID}:declined")
    assert push.data == {
        "authorizationId": AUTH_ID,
        "cardId": "card_1",
        "status": "declined",
        "merchantName": "Rema 1000",
    }
    assert push.body.endswith("kr: the card is frozen")  # the merchant in the data only (SECURITY.md)
    staged = customer_event("user_1", "approved", None, "12345678903")
    [welcome] = customer_pushes(decode(staged.subject, staged.body).to_json())
    assert welcome.dedupe_key == "customer:user_1:approved"
    at = dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC)
    added = device_event("user_1", "added", "tablet-key-1", at=at, approved_by="phone-key-1")
    [notice] = customer_pushes(decode(added.subject, added.body).to_json())
    assert (notice.uid, notice.kind, notice.dedupe_key) == (
        "user_1",
        "security",
        "device:user_1:added:tablet-key-1:2026-12-05T10:00:00+00:00",
    )
    assert notice.data == {"change": "added", "keyId": "tablet-key-1"}


def test_the_notifier_service_reads_the_card_events(monkeypatch: pytest.MonkeyPatch) -> None:
    from run_services.notifier import NotifierHandler

    queued: list[dict[str, Any]] = []

    class Topic:
        async def publish_json(self, body: dict[str, Any], **_attributes: str) -> str:
            queued.extend(body["pushes"])
            return "1"

    handler = NotifierHandler(SimpleNamespace(), Topic())  # type: ignore[arg-type]
    newer = {**AUTHORIZATION.to_json(), "network": "visa"}  # a field this code does not know yet
    batch = [delivery(topology.SUBJECT_CARD_AUTHORIZED, newer), delivery(topology.SUBJECT_CARD_AUTHORIZED, b"{}")]
    outcomes = asyncio.run(handler.pushes_of(card_pushes)(batch))
    assert isinstance(outcomes[0], Ack) and isinstance(outcomes[1], Reject)
    assert [(p["uid"], p["dedupeKey"]) for p in queued] == [("user_1", f"{AUTH_ID}:approved")]


def test_insights_books_a_published_capture() -> None:
    event = card_event(
        CardResult(
            "captured",
            None,
            AUTH_ID,
            {
                "fingerprint": "f",
                "amount": 12_345,
                "capturedAmount": 10_000,
                "currency": "NOK",
                "merchantName": "KIWI 123",
                "mcc": "5411",
                "merchantCountry": "NO",
                "channel": "pos",
                "cardId": "card_1",
                "ownerUid": "user_1",
                "accountId": "12345678903",
                "last4": "7897",
                "spendDay": "2026-11-26",
            },
        )
    )
    assert event is not None
    [booking] = bookings.from_card_capture(decode(event.subject, event.body).to_json())
    assert (booking.uid, booking.tx_id, booking.account_id, booking.date, booking.amount) == (
        "user_1",
        AUTH_ID,
        "12345678903",
        "2026-11-26",
        10_000,
    )


def test_the_card_service_takes_its_commands_by_type() -> None:
    from run_services.cards import CardService

    taken: list[object] = []

    class Service:
        async def issue(self, command: IssueCard) -> Ack:
            taken.append(command)
            return Ack()

        async def expire_holds(self) -> Ack:
            taken.append("expire")
            return Ack()

    issue = IssueCard(uid="user_1", card_id="card_1", account_id="12345678903")
    batch = [
        delivery(topology.SUBJECT_CARD_ISSUE, issue.to_json()),
        delivery(topology.SUBJECT_CARD_EXPIRE_HOLDS, ExpireCardHolds(as_of="2026-11-26T03:00:00+00:00").to_json()),
        delivery(topology.SUBJECT_CARD_ISSUED, CardIssued("user_1", "card_1", "12345678903", "7897").to_json()),
    ]
    service = Service()
    handle = steps.contract_step(lambda step: CardService.command(service, step))  # type: ignore[arg-type]
    outcomes = asyncio.run(handle(batch))
    assert taken == [issue, "expire"]
    assert isinstance(outcomes[0], Ack) and isinstance(outcomes[1], Ack)
    assert isinstance(outcomes[2], Reject) and "no command cards.issued" in outcomes[2].reason


# ---- versions: additive changes and breaking ones --------------------------------------------
@dataclasses.dataclass(frozen=True)
class CardIssuedNext(CardIssued):
    """The next revision of card_issued: one optional field more (an additive change)."""

    network: str | None = None


def _schema_of(cls: type[Any], name: str = "card_issued") -> dict[str, Any]:
    return event_schema(catalog.Entry(name, 1, cls))


def test_a_v1_consumer_reads_an_event_that_only_adds_a_field() -> None:
    newer = CardIssuedNext(uid="user_1", card_id="card_1", account_id="97100000018", last4="7897", network="visa")
    wire = newer.to_json()
    validator(entry_of(CardIssued)).validate(wire)  # the committed v1 contract takes it
    assert CardIssued.from_json(wire) == CardIssued("user_1", "card_1", "97100000018", "7897")
    assert compat.breaking_changes(committed(entry_of(CardIssued).path), _schema_of(CardIssuedNext)) == []
    # ...and a consumer of the new revision reads the v1 events still in the stream
    older = CardIssued("user_1", "card_1", "97100000018", "7897").to_json()
    assert CardIssuedNext.from_json(older).network is None


def _without(schema: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    target = changed
    *parents, name = path.split(".")
    for parent in parents:
        target = target["properties"][parent]
    del target["properties"][name]
    target["required"] = [r for r in target["required"] if r != name]
    return changed


def _renamed(schema: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    changed = _without(schema, old)
    changed["properties"][new] = schema["properties"][old]
    changed["required"].append(new)
    return changed


def _retyped(schema: dict[str, Any], path: str, value: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    target = changed
    *parents, name = path.split(".")
    for parent in parents:
        target = target["properties"][parent]
    target["properties"][name] = value
    return changed


def _with(schema: dict[str, Any], name: str, value: dict[str, Any], *, required: bool) -> dict[str, Any]:
    changed = copy.deepcopy(schema)
    changed["properties"][name] = value
    if required:
        changed["required"].append(name)
    return changed


CARD_ISSUED = committed("events/card_issued.v1.schema.json")
AUTHORIZATION_SCHEMA = committed("events/card_authorization.v1.schema.json")
PAYMENT_SCHEMA = committed("events/payment.v1.schema.json")
BREAKING = {
    "removed": (CARD_ISSUED, _without(CARD_ISSUED, "last4"), "last4: removed or renamed"),
    "renamed": (CARD_ISSUED, _renamed(CARD_ISSUED, "card_id", "card"), "card_id: removed or renamed"),
    "retyped": (
        AUTHORIZATION_SCHEMA,
        _retyped(AUTHORIZATION_SCHEMA, "amount", {"type": "string"}),
        "amount: changed from {'type': ['integer']} to {'type': ['string']}",
    ),
    "made nullable": (
        AUTHORIZATION_SCHEMA,
        _retyped(AUTHORIZATION_SCHEMA, "amount", {"type": ["integer", "null"]}),
        "amount: changed",
    ),
    "new status": (
        AUTHORIZATION_SCHEMA,
        _retyped(
            AUTHORIZATION_SCHEMA,
            "status",
            {"type": "string", "enum": [*AUTHORIZATION_SCHEMA["properties"]["status"]["enum"], "refunded"]},
        ),
        "status: changed",
    ),
    "required added": (
        CARD_ISSUED,
        _with(CARD_ISSUED, "network", {"type": "string"}, required=True),
        "network: added as required",
    ),
    "made optional": (
        CARD_ISSUED,
        {**CARD_ISSUED, "required": [r for r in CARD_ISSUED["required"] if r != "last4"]},
        "last4: no longer required",
    ),
    "nested retyped": (
        PAYMENT_SCHEMA,
        _retyped(PAYMENT_SCHEMA, "payment.amount", {"type": "string"}),
        "payment.amount: changed",
    ),
    "added to a closed contract": (
        PAYMENT_SCHEMA,
        _with(PAYMENT_SCHEMA, "channel", {"type": ["string", "null"]}, required=False),
        "channel: added, but consumers of the old schema refuse fields they do not know",
    ),
    "closed": (CARD_ISSUED, {**CARD_ISSUED, "additionalProperties": False}, "now refuses unknown fields"),
    # found in review, 2026-12-07: neither was flagged
    "optional removed from a closed contract": (
        PAYMENT_SCHEMA,
        _without(PAYMENT_SCHEMA, "payment.payee_name"),
        "payment.payee_name: removed, but the new schema refuses fields it does not know",
    ),
    "made required": (
        _with(CARD_ISSUED, "network", {"type": ["string", "null"]}, required=False),
        _with(CARD_ISSUED, "network", {"type": ["string", "null"]}, required=True),
        "network: now required, but older events may not have it",
    ),
    "new version": (
        CARD_ISSUED,
        _retyped(CARD_ISSUED, "v", {"const": 2}),
        "v: changed from {'const': 1} to {'const': 2}",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKING))
def test_a_breaking_change_needs_a_new_version(case: str) -> None:
    old, new, why = BREAKING[case]
    problems = compat.breaking_changes(old, new)
    assert compat.needs_new_version(old, new)
    assert any(why in p for p in problems), problems


def test_a_breaking_change_in_a_dataclass_is_detected() -> None:
    @dataclasses.dataclass(frozen=True)
    class Renamed(Contract):
        uid: str
        card: str  # was card_id
        account_id: str
        last4: str

    @dataclasses.dataclass(frozen=True)
    class Retyped(Contract):
        uid: str
        card_id: str
        account_id: str
        last4: int  # was str

    assert "card_id: removed or renamed" in " ".join(compat.breaking_changes(CARD_ISSUED, _schema_of(Renamed)))
    assert "last4: changed" in " ".join(compat.breaking_changes(CARD_ISSUED, _schema_of(Retyped)))
    # and a v1 consumer indeed cannot read them
    with pytest.raises(MalformedEvent):
        CardIssued.from_json(Renamed("user_1", "card_1", "97100000018", "7897").to_json())
    with pytest.raises(MalformedEvent):
        CardIssued.from_json(Retyped("user_1", "card_1", "97100000018", 7897).to_json())


@pytest.mark.parametrize(
    "new",
    [
        _with(CARD_ISSUED, "network", {"type": ["string", "null"]}, required=False),
        {**CARD_ISSUED, "description": "reworded"},
        _retyped(CARD_ISSUED, "last4", {"type": "string", "description": "now described"}),
        _without(_with(CARD_ISSUED, "extra", {"type": "string"}, required=False), "extra"),
    ],
)
def test_an_additive_or_cosmetic_change_is_compatible(new: dict[str, Any]) -> None:
    assert compat.breaking_changes(CARD_ISSUED, new) == []
    assert compat.breaking_changes(CARD_ISSUED, CARD_ISSUED) == []


def test_the_generator_refuses_to_overwrite_a_version_with_a_breaking_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "events").mkdir()
    path = "events/card_issued.v1.schema.json"
    (tmp_path / path).write_text((ROOT / path).read_text(encoding="utf-8"), encoding="utf-8")
    generated = contracts.generate()
    monkeypatch.setattr(contracts, "generate", lambda: {**generated, path: _without(CARD_ISSUED, "last4")})
    with pytest.raises(ValueError, match=r"last4: removed or renamed.*|VERSION"):
        contracts.write(tmp_path)
    assert (tmp_path / path).read_text(encoding="utf-8") == (ROOT / path).read_text(encoding="utf-8")
    assert not (tmp_path / contracts.ASYNCAPI).exists()  # nothing written


def test_a_subject_dropped_from_the_topology_is_refused_until_it_is_retired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renamed subject passed the check (found in review, 2026-12-07): the streams hold
    its messages and the last release publishes there, and no consumer reads it."""
    (tmp_path / contracts.ASYNCAPI).write_text((ROOT / contracts.ASYNCAPI).read_text(encoding="utf-8"))
    generated = contracts.generate()
    renamed = copy.deepcopy(generated[contracts.ASYNCAPI])
    channel = next(k for k, c in renamed["channels"].items() if c["address"] == "cards.captured")
    renamed["channels"][channel]["address"] = "cards.captured.v2"
    monkeypatch.setattr(contracts, "generate", lambda: {**generated, contracts.ASYNCAPI: renamed})
    with pytest.raises(ValueError, match=r"cards\.captured: no longer a subject of the topology"):
        contracts.write(tmp_path)
    monkeypatch.setattr(topology, "RETIRED_SUBJECTS", ("cards.captured",))
    assert contracts.breaking(tmp_path) == {}


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=contracts.ROOT.parent, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def test_no_version_of_a_schema_ever_committed_is_changed_in_a_breaking_way() -> None:
    """The generator compares with the file as it is in the working tree, so a schema file
    edited by hand, or deleted and generated again, let a breaking change through (found
    in review, 2026-12-07). Every version of each schema file in the repository's history
    is compared with the file as it is now."""
    log = _git("log", "--format=commit %H", "--name-only", "--", "contracts/events")
    if log is None:
        pytest.skip("not a git clone (an archive): the schema files' history is not here to compare with")
    if (_git("rev-parse", "--is-shallow-repository") or "").strip() == "true":
        # a clone of one commit compared each file with itself and passed (found in review,
        # 2026-12-07): the CI fetches the whole history (.github/workflows/ci.yml)
        pytest.skip("a shallow clone: its history is cut (clone with the whole history, fetch-depth 0)")
    commit, checked, problems = "", 0, []
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.removeprefix("commit ")
            continue
        path = contracts.ROOT.parent / line.strip()
        if not line.strip() or not path.exists():
            continue  # a file the code no longer has is test_no_schema_file_is_of_a_contract_the_code_does_not_have's
        then = _git("show", f"{commit}:{line.strip()}")
        if then is None:
            continue  # deleted in that commit
        checked += 1
        now = json.loads(path.read_text(encoding="utf-8"))
        problems += [f"{line.strip()} since {commit[:10]}: {p}" for p in compat.breaking_changes(json.loads(then), now)]
    if not checked:
        pytest.skip("no commit of the schema files in this clone's history (a shallow clone)")
    assert problems == []


def test_the_generator_writes_an_additive_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "events").mkdir()
    path = "events/card_issued.v1.schema.json"
    (tmp_path / path).write_text((ROOT / path).read_text(encoding="utf-8"), encoding="utf-8")
    generated = contracts.generate()
    newer = _schema_of(CardIssuedNext)
    monkeypatch.setattr(contracts, "generate", lambda: {**generated, path: newer})
    assert path in contracts.write(tmp_path)
    assert json.loads((tmp_path / path).read_text(encoding="utf-8")) == newer


def test_an_older_version_file_is_kept_and_an_unknown_one_is_flagged(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "card_issued.v0.schema.json").write_text("{}")
    (tmp_path / "events" / "card_issued.v2.schema.json").write_text("{}")
    (tmp_path / "events" / "nothing.v1.schema.json").write_text("{}")
    assert contracts.retired(tmp_path) == ["events/card_issued.v2.schema.json", "events/nothing.v1.schema.json"]


# ---- the AsyncAPI document -------------------------------------------------------------------
DOC = committed(contracts.ASYNCAPI)


def _resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = DOC
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def test_asyncapi_is_a_3_0_document() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert DOC["defaultContentType"] == "application/json"
    assert set(DOC) >= {"channels", "operations", "components"}


def test_asyncapi_has_a_channel_for_every_subject() -> None:
    addresses = {channel["address"] for channel in DOC["channels"].values()}
    for name, subject in vars(topology).items():
        if name.startswith("SUBJECT_"):
            expected = f"{subject}.{{partition}}" if subject.startswith("payments.") else subject
            assert expected in addresses, subject
    assert "dlq.{consumer}" in addresses
    for channel_id, channel in DOC["channels"].items():
        assert channel_id.replace("-", "_").replace("_", "").isalnum()
        assert channel["x-stream"] in {s.name for s in topology.STREAMS}
        for parameter in channel.get("parameters", {}):
            assert f"{{{parameter}}}" in channel["address"]
        for message in channel["messages"].values():
            assert _resolve(message["$ref"])["payload"] is not None


def test_asyncapi_has_every_stream_and_consumer() -> None:
    assert [s["name"] for s in DOC["x-streams"]] == [s.name for s in topology.STREAMS]
    operations = DOC["operations"]
    for spec in topology.CONSUMERS:
        for subject in spec.filter_subjects:
            operation = operations[f"{spec.durable}_receives_{asyncapi.channel_id(subject)}"]
            assert operation["action"] == "receive"
            assert operation["x-jetstream"]["stream"] == spec.stream
            assert operation["x-jetstream"]["max_deliver"] == spec.max_deliver
    for ident in topology.IDENTITIES:
        for subject in ident.publishes:
            assert (
                operations[f"{ident.name}_sends_{asyncapi.channel_id(subject.removesuffix('.*'))}"]["action"] == "send"
            )


def test_asyncapi_operations_reference_their_channels_and_messages() -> None:
    for operation_id, operation in DOC["operations"].items():
        assert operation["action"] in ("send", "receive"), operation_id
        channel_ref = operation["channel"]["$ref"]
        channel = _resolve(channel_ref)
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), operation_id
            assert _resolve(message["$ref"]) in channel["messages"].values()


def test_asyncapi_messages_reference_the_committed_schemas() -> None:
    messages = DOC["components"]["messages"]
    assert set(messages) == {e.key for e in catalog.ENTRIES} | {"dead_letter"}
    for entry in catalog.ENTRIES:
        message = messages[entry.key]
        assert message["payload"] == {"$ref": entry.path}
        assert (ROOT / entry.path).exists()
        assert message["contentType"] == "application/json"
        assert _resolve(message["headers"]["$ref"])["type"] == "object"
