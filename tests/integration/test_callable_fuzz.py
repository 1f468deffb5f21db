"""Every callable fed malformed, oversized and hostile input (Hypothesis) by a signed-in,
approved customer with a valid App Check token: never a 5xx, never an event on NATS for
a refused call, never money moved. The figures are written to artifacts/fuzz/."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import nats.js.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.bank import application, callables_for
from tests.support.natsclients import connect

pytestmark = pytest.mark.stack

CALLABLES = {
    "onboarding_submit": ["name", "nationalId", "dateOfBirth", "address", "phone", "email"],
    "onboarding_decide": ["uid", "decision", "reason"],
    "accounts_open": ["kind", "name", "requestId"],
    "accounts_rename": ["accountId", "name"],
    "accounts_close": ["accountId"],
    "accounts_payout": ["accountId", "toAccountId"],
    "cards_issue": ["accountId"],
    "cards_freeze": ["cardId", "frozen", "sca"],
    "cards_limits": ["cardId", "limits", "sca"],
    "cards_replace": ["cardId", "reason"],
    "sca_register_key": ["keyId", "publicKey"],
    "sca_add_device": ["keyId", "publicKey", "approval"],
    "sca_revoke_key": ["keyId"],
    "sca_reopen_enrolment": ["uid", "reason", "keyId", "fingerprint"],
    "invoices_scan": ["ocrLine", "fields"],
    "standing_orders_create": [
        "orderId",
        "fromAccount",
        "toAccount",
        "payeeName",
        "amount",
        "message",
        "kid",
        "frequency",
        "startDate",
        "endDate",
        "sca",
    ],
    "standing_orders_update": ["orderId", "amount", "endDate", "nextDue", "sca"],
    "standing_orders_cancel": ["orderId"],
    "payments_cancel_scheduled": ["requestId"],
    "transactions_recategorise": ["accountId", "transactionId", "category"],
    "subscriptions_dismiss": ["merchantKey", "restore"],
}
INT64 = st.integers(-(2**63), 2**63 - 1)
hostile_strings = st.sampled_from(
    [
        "",
        " ",
        "0" * 11,
        "1" * 100_000,  # oversized
        "../../accounts/x",
        "'; DROP TABLE",
        "\u0000",
        "🙂" * 500,
        "card_" + "a" * 200,
        "-1",
        "1e9",
        "true",
        "{}",
        "__proto__",
        "a/b/c",
        "weekly",
        "2099-01-01",
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=200)
    | hostile_strings,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)
FIGURES: Counter = Counter()


def payloads(name: str):
    keys = st.sampled_from([*CALLABLES[name], "uid", "status", "balance", "ownerUid", "admin"])
    as_object = st.dictionaries(keys, json_values, max_size=8)
    return as_object | json_values


class Streams:
    """Last sequence of the streams a callable could publish to (read as the admin), and
    which of the messages published since were the fuzzing customer's: the rest of the
    stack may still be at work for earlier tests (a payment finishing, a partition
    moving), so a sequence that moved is not by itself a publish from refused input."""

    NAMES = ("CUSTOMERS", "CARDS", "PAYMENTS")

    def __init__(self, stack) -> None:
        self.loop = asyncio.new_event_loop()
        self.nc = self.loop.run_until_complete(connect(stack, "admin"))
        self.js = self.nc.jetstream()

    def state(self) -> tuple[int, ...]:
        async def read():
            return tuple([(await self.js.stream_info(s)).state.last_seq for s in self.NAMES])

        return self.loop.run_until_complete(read())

    def published_since(self, before: tuple[int, ...], *marks: str) -> list[str]:
        """The subjects of the messages published since ``before`` that name any of
        ``marks`` (the customer's uid or account) in their subject, headers or body."""

        now = self.state()

        async def read():
            found = []
            for stream, since, until in zip(self.NAMES, before, now, strict=True):
                for seq in range(since + 1, until + 1):
                    try:
                        msg = await self.js.get_msg(stream, seq)
                    except nats.js.errors.NotFoundError:  # gone already (the stream's limits)
                        continue
                    text = msg.subject + json.dumps(msg.headers or {}) + (msg.data or b"").decode(errors="replace")
                    if any(mark in text for mark in marks):
                        found.append(msg.subject)
            return found

        return self.loop.run_until_complete(read())

    def close(self) -> None:
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()


@pytest.fixture(scope="module")
def fuzzer(stack, auth, ledger_admin):
    callables = callables_for(stack)
    user = auth.sign_up()
    status, body = callables.call("onboarding_submit", application(), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved"
    account = body["result"]["accountId"]
    ledger_admin.run(ledger_admin.ledger.deposit(deposit_id=f"fuzz-{account}", account_id=account, amount=10_000))
    streams = Streams(stack)
    yield {"callables": callables, "user": user, "account": account, "streams": streams}
    streams.close()
    out = stack.s.repo / "artifacts" / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    (out / "callables.json").write_text(json.dumps(dict(sorted(FIGURES.items())), indent=2) + "\n")


@pytest.mark.parametrize("name", sorted(CALLABLES))
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_input_never_fails_the_server_publishes_or_moves_money(fuzzer, admin_db, name, data):
    payload = data.draw(payloads(name))
    for action in (
        "onboarding",
        "accounts",
        "cards",
        "invoices",
        "payments",
    ):  # reach past the rate limit on every example
        admin_db.document(f"rateLimits/{fuzzer['user']['uid']}:{action}").delete()
    before = fuzzer["streams"].state()
    status, body = fuzzer["callables"].call(name, payload, fuzzer["user"]["id_token"])
    FIGURES["inputs"] += 1
    FIGURES[f"status_{status}"] += 1
    assert status < 500, (name, payload, body)
    if status == 429:  # the rate limit answered: nothing was looked at
        return
    if status != 200:
        FIGURES["refused"] += 1
        published = fuzzer["streams"].published_since(before, fuzzer["user"]["uid"], fuzzer["account"])
        FIGURES["publishes_from_refused_input"] += int(bool(published))
        assert published == [], (name, payload, body, published)
        assert set(body["error"]) >= {"status", "message"} and "Traceback" not in json.dumps(body)
    account = admin_db.document(f"accounts/{fuzzer['account']}").get().to_dict()
    assert account["balance"] == 10_000 and account["held"] == 0
