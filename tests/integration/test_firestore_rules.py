"""firestore.rules against the Firestore emulator: deny by default; a customer reads only
their own documents and writes only what the app may write (create-only payment requests
and device tokens, with strict schemas). The emulator's rule-coverage report is saved to
artifacts/firestore-rules-coverage.html by the session fixture."""

from __future__ import annotations

import time

import pytest

from tests.support.clients import new_account_number, unique
from tests.support.rules import RulesClient, mock_id_token

pytestmark = pytest.mark.stack

ALLOWED, DENIED = (200,), (403,)


@pytest.fixture(scope="module")
def world(stack):
    """Alice's and Bob's documents, written through the admin path."""
    host, project = f"127.0.0.1:{stack.s.emulator_ports['firestore']}", stack.s.project_id
    admin = RulesClient(host, project, "owner")
    alice, bob = unique("alice"), unique("bob")
    acct_a, acct_b = new_account_number(), new_account_number()
    docs = {
        f"users/{alice}": {"name": "Alice"},
        f"users/{bob}": {"name": "Bob"},
        f"accounts/{acct_a}": {"accountId": acct_a, "ownerUid": alice, "balance": 100, "held": 0, "available": 100},
        f"accounts/{acct_b}": {"accountId": acct_b, "ownerUid": bob, "balance": 100, "held": 0, "available": 100},
        f"accounts/{acct_a}/transactions/p1": {"amount": -100, "status": "posted"},
        f"accounts/{acct_b}/transactions/p2": {"amount": -100, "status": "posted"},
        f"users/{alice}/paymentRequests/req-alice-1": {
            "v": 1,
            "fromAccount": acct_a,
            "toAccount": acct_b,
            "amount": 100,
            "currency": "NOK",
            "status": "completed",
        },
        f"users/{alice}/settings/notifications": {
            "payments": True,
            "devices": {"dev1": {"token": "tok-a", "platform": "android"}},
        },
        "postings/p1:transfer": {"paymentId": "p1"},
        "holds/p1": {"holdId": "p1"},
        "ledgerPayments/p1": {"paymentId": "p1"},
        "screeningCustomers/x": {"dayTotal": 0},
        "screeningDecisions/p1": {"approved": True},
        "clearingPayments/p1": {"fileId": "f"},
        "clearingFiles/f": {"status": "written"},
        "paymentViews/p1": {"status": "completed"},
        f"customers/{alice}": {"uid": alice, "status": "approved", "name": "Alice"},
        f"customers/{bob}": {"uid": bob, "status": "approved", "name": "Bob"},
        f"cards/card_{alice}": {"cardId": f"card_{alice}", "ownerUid": alice, "status": "active", "last4": "1234"},
        f"cards/card_{bob}": {"cardId": f"card_{bob}", "ownerUid": bob, "status": "active", "last4": "9876"},
        f"kyc/{alice}": {"nationalId": "01019012345"},
        "nationalIds/01019012345": {"uid": alice},
        "outbox/customer:x:approved": {"subject": "customers.approved"},
        "cardOutbox/ca1:approved": {"subject": "cards.authorized"},
        "cardAuthorizations/ca1": {"status": "approved"},
        "cardSpend/card_x_2026-11-26": {"daily": 0},
        "registry/rules-test": {"next": 1},
        f"users/{alice}/scaKeys/phone-key-1": {"keyId": "phone-key-1", "publicKey": "MFkw"},
        f"rateLimits/{alice}:payments": {"w": {"000000000001": 1}},
        "scaUsed/abc": {"request": "users/x/paymentRequests/y"},
        f"scaEnrolments/{alice}": {"keyId": "phone-key-1"},
        f"users/{alice}/standingOrders/order-0001": {"status": "active", "amount": 100},
        f"users/{alice}/economy/2026-11": {"month": "2026-11", "income": 0},
        f"users/{alice}/subscriptions/m:netflix": {"status": "active", "monthlyCost": 14900},
        f"users/{alice}/categoryOverrides/m:netflix": {"category": "entertainment"},
        f"users/{alice}/economyItems/p1": {"month": "2026-11", "amount": 1},
        f"users/{alice}/merchantHistory/m:netflix": {"charges": []},
        f"sessions/{bob}": {"validAfter": 1},  # the bank ended bob's sessions long ago
        "clearingReturns/in0123456789abcdef0123456789abcd": {"status": "held", "payerName": "X"},
        f"sanctionsAlerts/{alice}": {"status": "frozen", "matches": []},
        "rescreening/0123456789abcdef0123": {"cursor": None},
        "payeeAlerts/0123456789abcdef0123456789abcdef": {"status": "open", "payers": [alice]},
    }
    for path, data in docs.items():
        assert admin.set(path, data) == 200, path

    def client(uid: str | None, *, auth_time: int | None = None) -> RulesClient:
        return RulesClient(host, project, mock_id_token(project, uid, auth_time=auth_time) if uid else None)

    yield {"alice": alice, "bob": bob, "acct_a": acct_a, "acct_b": acct_b, "client": client, "admin": admin}
    # These are not real ledger documents: leave the shared database as the audit expects it.
    for path in docs:
        admin.delete(path)


def request_body(w, **over):
    return {"v": 1, "fromAccount": w["acct_a"], "toAccount": w["acct_b"], "amount": 100, "currency": "NOK", **over}


# ---- reads: the owner only -------------------------------------------------------------
OWNED_READS = [
    "users/{alice}",
    "users/{alice}/paymentRequests/req-alice-1",
    "accounts/{acct_a}",
    "accounts/{acct_a}/transactions/p1",
    "users/{alice}/settings/notifications",
    "customers/{alice}",
    "cards/card_{alice}",
    "users/{alice}/scaKeys/phone-key-1",
    "users/{alice}/standingOrders/order-0001",
    "users/{alice}/economy/2026-11",
    "users/{alice}/subscriptions/m:netflix",
    "users/{alice}/categoryOverrides/m:netflix",
]


@pytest.mark.parametrize("path", OWNED_READS)
def test_owner_reads_own_documents(world, path):
    assert world["client"](world["alice"]).get(path.format(**world)) in ALLOWED


@pytest.mark.parametrize("path", OWNED_READS)
def test_another_user_cannot_read_them(world, path):
    assert world["client"](world["bob"]).get(path.format(**world)) in DENIED


@pytest.mark.parametrize("path", OWNED_READS)
def test_unauthenticated_cannot_read_them(world, path):
    assert world["client"](None).get(path.format(**world)) in DENIED


@pytest.mark.parametrize(
    "collection",
    [
        "users/{alice}/paymentRequests",
        "accounts/{acct_a}/transactions",
        "users/{alice}/standingOrders",
        "users/{alice}/economy",
        "users/{alice}/subscriptions",
    ],
)
def test_the_apps_list_queries_are_allowed_for_the_owner_only(world, collection):
    assert world["client"](world["alice"]).list(collection.format(**world)) in ALLOWED
    assert world["client"](world["bob"]).list(collection.format(**world)) in DENIED


BACKEND_ONLY = [
    "postings/p1:transfer",
    "holds/p1",
    "ledgerPayments/p1",
    "screeningCustomers/x",
    "screeningDecisions/p1",
    "clearingPayments/p1",
    "clearingFiles/f",
    "paymentViews/p1",
    "kyc/{alice}",
    "nationalIds/01019012345",
    "outbox/customer:x:approved",
    "cardOutbox/ca1:approved",
    "cardAuthorizations/ca1",
    "cardSpend/card_x_2026-11-26",
    "registry/rules-test",
    "rateLimits/{alice}:payments",
    "scaUsed/abc",
    "scaEnrolments/{alice}",
    "users/{alice}/economyItems/p1",
    "users/{alice}/merchantHistory/m:netflix",
    "sessions/{bob}",
    "clearingReturns/in0123456789abcdef0123456789abcd",
    "sanctionsAlerts/{alice}",
    "rescreening/0123456789abcdef0123",
    "payeeAlerts/0123456789abcdef0123456789abcdef",
]


@pytest.mark.parametrize("path", BACKEND_ONLY)
def test_backend_documents_are_unreadable_and_unwritable_by_clients(world, path):
    alice = world["client"](world["alice"])
    path = path.format(**world)
    assert alice.get(path) in DENIED
    assert alice.set(path, {"x": 1}) in DENIED
    assert alice.delete(path) in DENIED


@pytest.mark.parametrize(
    "collection", ["accounts", "postings", "ledgerPayments", "holds", "users", "customers", "cards", "kyc"]
)
def test_nobody_lists_whole_collections(world, collection):
    assert world["client"](world["alice"]).list(collection) in DENIED


# ---- writes: balances, statuses, other people's things -------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"balance": 10**9},
        {"available": 10**9},
        {"held": 0},
        {"ownerUid": "me"},
        {"status": "closed"},
        {"overdraftLimit": 10**9},
    ],
)
def test_no_client_writes_an_account(world, fields):
    alice = world["client"](world["alice"])
    assert alice.update(f"accounts/{world['acct_a']}", fields) in DENIED


def test_no_client_creates_or_deletes_accounts_or_transactions(world):
    alice = world["client"](world["alice"])
    assert alice.create("accounts", new_account_number(), {"ownerUid": world["alice"], "balance": 10**9}) in DENIED
    assert alice.delete(f"accounts/{world['acct_a']}") in DENIED
    assert alice.create(f"accounts/{world['acct_a']}/transactions", "fake", {"amount": 10**9}) in DENIED


def test_owner_creates_a_valid_payment_request(world):
    alice = world["client"](world["alice"])
    request_id = unique("req")
    assert alice.create(f"users/{world['alice']}/paymentRequests", request_id, request_body(world)) in ALLOWED
    signed = request_body(world, sca={"keyId": "phone-key-1", "signature": "sig"})
    assert alice.create(f"users/{world['alice']}/paymentRequests", unique("req"), signed) in ALLOWED


@pytest.mark.parametrize(
    "over",
    [
        {"status": "completed"},  # backend field
        {"statusRank": 9},
        {"paymentId": "p"},
        {"amount": 0},
        {"amount": -5},
        {"amount": 1.5},
        {"amount": "100"},
        {"amount": 100_000_001},
        {"currency": "EUR"},
        {"v": 2},
        {"fromAccount": "1234"},
        {"toAccount": "not-digits!"},
        {"message": "x" * 141},
        {"kid": "12a"},
        {"message": "hei", "kid": "12345"},
        {"dueDate": "tomorrow"},
        {"extra": True},
        {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"},  # the backend's (it writes the trace id)
        {"traceparent": 42},
        {"traceparent": "x" * 129},
        {"sca": {"keyId": "__abcdef__", "signature": "sig"}},  # an id Firestore reserves: no key has it
        {"sca": {"keyId": "short", "signature": "sig"}},
    ],
)
def test_malformed_or_privileged_payment_requests_are_refused(world, over):
    alice = world["client"](world["alice"])
    assert alice.create(f"users/{world['alice']}/paymentRequests", unique("req"), request_body(world, **over)) in DENIED


@pytest.mark.parametrize(
    "traceparent",
    ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "not a trace context"],
)
def test_the_app_may_send_its_trace_context(world, traceparent):
    """Any short string: the edge uses it only when it is a valid W3C traceparent and
    otherwise starts a new trace (a malformed one is never a refusal)."""
    alice = world["client"](world["alice"])
    body = request_body(world, traceparent=traceparent)
    assert alice.create(f"users/{world['alice']}/paymentRequests", unique("req"), body) in ALLOWED


def test_a_payment_request_needs_every_required_field(world):
    alice = world["client"](world["alice"])
    for field in ("v", "fromAccount", "toAccount", "amount", "currency"):
        body = request_body(world)
        del body[field]
        assert alice.create(f"users/{world['alice']}/paymentRequests", unique("req"), body) in DENIED, field


def test_request_ids_must_be_well_formed(world):
    alice = world["client"](world["alice"])
    assert alice.create(f"users/{world['alice']}/paymentRequests", "short", request_body(world)) in DENIED
    # the bank's own ids (a standing order's payments): a document there would be taken for
    # the payment's record (found in review, 2026-12-06)
    assert (
        alice.create(f"users/{world['alice']}/paymentRequests", "so-order0001-20270115", request_body(world)) in DENIED
    )


def test_nobody_creates_requests_under_another_user(world):
    bob = world["client"](world["bob"])
    assert bob.create(f"users/{world['alice']}/paymentRequests", unique("req"), request_body(world)) in DENIED
    assert (
        world["client"](None).create(f"users/{world['alice']}/paymentRequests", unique("req"), request_body(world))
        in DENIED
    )


def test_requests_cannot_be_changed_or_deleted_by_the_client(world):
    alice = world["client"](world["alice"])
    path = f"users/{world['alice']}/paymentRequests/req-alice-1"
    assert alice.update(path, {"amount": 1}) in DENIED
    assert alice.update(path, {"status": "requested"}) in DENIED
    assert alice.delete(path) in DENIED


def test_device_tokens_are_written_one_device_at_a_time_by_their_owner_only(world):
    """The devices' rules in full: tests/integration/test_push.py."""
    alice, bob = world["client"](world["alice"]), world["client"](world["bob"])
    path = f"users/{world['alice']}/settings/notifications"
    phone = {"devices": {"dev2": {"token": "t" * 20, "platform": "ios"}}, "changed": "dev2"}
    assert alice.app.merge(path, phone, ["devices.`dev2`", "changed"]).status_code in ALLOWED
    assert bob.app.merge(path, phone, ["devices.`dev2`", "changed"]).status_code in DENIED
    assert alice.set(path, {"payments": True, "devices": {}, "changed": "dev1"}) in DENIED  # dev1 and dev2 at once
    assert alice.set(path, {"payments": True}) in DENIED  # the preferences alone, the devices dropped
    assert alice.app.merge(path, {"marketing": True}, ["marketing"]).status_code in ALLOWED  # devices kept
    assert alice.delete(path) in DENIED


def test_the_devices_the_bank_signed_out_are_the_banks_and_a_device_registers_again_beside_them(world):
    """After the bank ended the sessions (fjordbank/service_layer/sessions.py) the devices
    are in signedOutDevices, which gets the security notices only: the app cannot write
    it (a stolen session could take a device off the notices, or put one back on every
    push), and a device signed in again registers in devices as before."""
    admin, carol = world["admin"], unique("carol")
    path = f"users/{carol}/settings/notifications"
    lost = {"lost": {"token": "tok-lost", "platform": "ios"}}
    assert admin.set(path, {"payments": True, "signedOutDevices": lost}) == 200
    client = world["client"](carol)
    again = {"devices": {"tablet": {"token": "t" * 20, "platform": "web"}}, "changed": "tablet"}
    assert client.app.merge(path, again, ["devices.`tablet`", "changed"]).status_code in ALLOWED
    assert client.app.merge(path, {"marketing": True}, ["marketing"]).status_code in ALLOWED  # kept beside
    for change in ({"signedOutDevices": {}}, {"signedOutDevices": {**lost, "x": {"token": "t", "platform": "ios"}}}):
        assert client.app.merge(path, change, list(change)).status_code in DENIED
    assert client.app.merge(path, {}, ["signedOutDevices.`lost`"]).status_code in DENIED  # one taken off
    assert client.set(path, {"payments": True, **again}) in DENIED  # dropping the map is a change of it too


def test_users_cannot_write_their_own_profile_document(world):
    alice = world["client"](world["alice"])
    assert alice.set(f"users/{world['alice']}", {"name": "Mallory", "kyc": "approved"}) in DENIED


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("customers/{alice}", {"status": "approved"}),
        ("customers/{alice}", {"name": "Mallory"}),
        ("cards/card_{alice}", {"status": "active"}),
        ("cards/card_{alice}", {"limits": {"daily": 10**9}}),
        ("cards/card_{alice}", {"ownerUid": "{bob}"}),
    ],
)
def test_no_client_writes_its_customer_record_or_cards(world, path, fields):
    alice = world["client"](world["alice"])
    fields = {k: (v.format(**world) if isinstance(v, str) else v) for k, v in fields.items()}
    assert alice.update(path.format(**world), fields) in DENIED
    assert alice.delete(path.format(**world)) in DENIED


def test_nobody_creates_a_customer_record_or_a_card(world):
    alice = world["client"](world["alice"])
    assert alice.create("customers", unique("c"), {"uid": world["alice"], "status": "approved"}) in DENIED
    assert alice.create("cards", "card_" + unique("x"), {"ownerUid": world["alice"], "status": "active"}) in DENIED


def test_notification_preferences_are_booleans_of_known_kinds_for_the_owner_only(world):
    alice = world["client"](world["alice"])
    path = f"users/{world['alice']}/settings/notifications"  # beside alice's devices: merges, as the app writes

    def merge(client, fields: dict) -> int:
        return client.app.merge(path, fields, list(fields)).status_code

    assert merge(alice, {"payments": True, "marketing": False}) in ALLOWED
    assert merge(alice, {"payments": "yes"}) in DENIED
    assert merge(alice, {"payments": True, "admin": True}) in DENIED
    assert alice.set(f"users/{world['alice']}/settings/other", {"payments": True}) in DENIED
    assert merge(world["client"](world["bob"]), {"marketing": True}) in DENIED
    assert world["client"](None).set(path, {"marketing": True}) in DENIED
    assert alice.delete(path) in DENIED


def test_device_keys_are_read_only_for_their_owner(world):
    """Only the sca_register_key callable writes keys: a stolen session cannot swap them."""
    alice = world["client"](world["alice"])
    keys = f"users/{world['alice']}/scaKeys"
    assert alice.set(f"{keys}/phone-key-1", {"keyId": "phone-key-1", "publicKey": "attacker"}) in DENIED
    assert alice.create(keys, "phone-key-2", {"keyId": "phone-key-2", "publicKey": "MFkw"}) in DENIED
    assert alice.delete(f"{keys}/phone-key-1") in DENIED
    assert world["client"](world["bob"]).get(f"{keys}/phone-key-1") in DENIED


@pytest.mark.parametrize(
    "path",
    [
        "users/{alice}/standingOrders/order-0001",
        "users/{alice}/economy/2026-11",
        "users/{alice}/subscriptions/m:netflix",
        "users/{alice}/categoryOverrides/m:netflix",
    ],
)
def test_the_customers_read_model_is_changed_only_through_callables(world, path):
    """An order's amount, a month's figures, a subscription's status or a category: the
    owner reads them but cannot write them (the callables check what a change may be)."""
    alice = world["client"](world["alice"])
    path = path.format(**world)
    assert alice.set(path, {"status": "cancelled", "amount": 1, "income": 10**9, "category": "x"}) in DENIED
    assert alice.delete(path) in DENIED


# ---- a session the bank ended --------------------------------------------------------------
def test_a_session_the_bank_ended_is_refused_at_once_and_a_new_sign_in_is_taken(world):
    """A lost phone removed with sign-out (or the bank's reset): sessions/{uid} says from
    when tokens are taken again, and a token signed in before it (a refreshed one keeps its
    auth_time) reads and writes nothing, though it has not expired; one signed in after
    it does both (fjordbank/service_layer/sessions.py)."""
    ended_at = int(time.time()) - 60
    admin = world["admin"]
    assert admin.set(f"sessions/{world['alice']}", {"validAfter": ended_at}) == 200
    try:
        lost = world["client"](world["alice"], auth_time=ended_at - 1)
        again = world["client"](world["alice"], auth_time=ended_at)
        for path in OWNED_READS:
            assert lost.get(path.format(**world)) in DENIED, path
            assert again.get(path.format(**world)) == 200, path
        assert lost.list(f"accounts/{world['acct_a']}/transactions") in DENIED
        assert again.list(f"accounts/{world['acct_a']}/transactions") == 200
        requests = f"users/{world['alice']}/paymentRequests"
        assert lost.create(requests, unique("req-lost"), request_body(world)) in DENIED
        assert again.create(requests, unique("req-again"), request_body(world)) == 200
        assert lost.update(f"users/{world['alice']}/settings/notifications", {"payments": False}) in DENIED
        assert again.update(f"users/{world['alice']}/settings/notifications", {"payments": True}) == 200
    finally:
        admin.delete(f"sessions/{world['alice']}")
