"""Accounts through the app's callables: opened from the bank's registry range (valid,
unique MOD11 numbers) by approved customers only, up to a limit; renamed; closed only at
zero balance with no holds; nobody touches another customer's account."""

from __future__ import annotations

import concurrent.futures

import pytest

from fjordbank.domain.accounts import MAX_OPEN_ACCOUNTS
from fjordbank.domain.norway import is_valid_account_number
from tests.support.bank import callables_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


@pytest.fixture
def customer(auth, admin_db):
    user = auth.sign_up()
    admin_db.document(f"customers/{user['uid']}").set({"status": "approved"})  # onboarding is #4
    return user


def refused(result: tuple[int, dict]) -> tuple[str, str]:
    status, body = result
    assert status >= 400 and "error" in body, body
    return body["error"]["status"], (body["error"].get("details") or {}).get("reason")


def test_an_approved_customer_opens_accounts_with_valid_unique_numbers(callables, customer, as_user, audit):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda k: callables.call("accounts_open", {"kind": k}, customer["id_token"]),
                ["spending", "savings", "savings"],
            )
        )
    numbers = [body["result"]["accountId"] for status, body in results if status == 200]
    assert len(numbers) == 3 and len(set(numbers)) == 3
    assert all(is_valid_account_number(n) and n.startswith("9710") for n in numbers)
    doc = as_user(customer["id_token"]).get(f"accounts/{numbers[0]}")[1]
    assert doc["balance"] == 0 and doc["status"] == "open" and doc["name"] in ("Brukskonto", "Sparekonto")
    audit()


def test_the_number_of_open_accounts_is_limited(callables, customer):
    for _ in range(MAX_OPEN_ACCOUNTS):
        assert callables.call("accounts_open", {"kind": "savings"}, customer["id_token"])[0] == 200
    assert refused(callables.call("accounts_open", {"kind": "savings"}, customer["id_token"])) == (
        "FAILED_PRECONDITION",
        "too_many_accounts",
    )


def test_who_is_not_an_approved_customer_opens_nothing(callables, auth):
    stranger = auth.sign_up()
    assert refused(callables.call("accounts_open", {"kind": "spending"}, stranger["id_token"])) == (
        "PERMISSION_DENIED",
        "not_a_customer",
    )
    assert refused(callables.call("accounts_open", {"kind": "spending"}, None))[0] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "gold"},
        {"kind": "savings", "name": ""},
        {"kind": "savings", "name": "x" * 41},
        {"kind": "savings", "ownerUid": "me"},
        {"kind": "savings", "balance": 10**9},
        ["savings"],
        "savings",
    ],
)
def test_malformed_requests_are_refused_with_a_reason(callables, customer, data):
    status, reason = refused(callables.call("accounts_open", data, customer["id_token"]))
    assert status == "INVALID_ARGUMENT" and reason in ("invalid_kind", "invalid_name", "invalid_request")


def test_rename_and_close_only_your_own_and_only_when_empty(
    callables, customer, auth, admin_db, ledger_admin, as_user, audit
):
    token = customer["id_token"]
    number = callables.call("accounts_open", {"kind": "spending", "name": "Hverdag"}, token)[1]["result"]["accountId"]
    assert callables.call("accounts_rename", {"accountId": number, "name": "Mat og drikke"}, token)[0] == 200
    assert as_user(token).get(f"accounts/{number}")[1]["name"] == "Mat og drikke"

    mallory = auth.sign_up()
    admin_db.document(f"customers/{mallory['uid']}").set({"status": "approved"})
    assert refused(callables.call("accounts_rename", {"accountId": number, "name": "Mine"}, mallory["id_token"])) == (
        "NOT_FOUND",
        "unknown_account",
    )
    assert refused(callables.call("accounts_close", {"accountId": number}, mallory["id_token"])) == (
        "NOT_FOUND",
        "unknown_account",
    )

    ledger_admin.run(ledger_admin.ledger.ensure_internal_accounts())
    ledger_admin.run(ledger_admin.ledger.deposit(deposit_id=f"t-{number}", account_id=number, amount=500))
    assert refused(callables.call("accounts_close", {"accountId": number}, token)) == (
        "FAILED_PRECONDITION",
        "account_not_empty",
    )

    empty = callables.call("accounts_open", {"kind": "savings"}, token)[1]["result"]["accountId"]
    assert callables.call("accounts_close", {"accountId": empty}, token)[0] == 200
    assert as_user(token).get(f"accounts/{empty}")[1]["status"] == "closed"
    # again, as a retry after a lost answer: answered as the close was
    assert callables.call("accounts_close", {"accountId": empty}, token)[0] == 200
    audit()
