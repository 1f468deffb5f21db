"""Many requests at once through the app's surface: never a bare 5xx.

Contention, rate limits and a database that does not answer in time are refusals with a
reason the app can act on (429 RESOURCE_EXHAUSTED ``rate_limited`` or ``busy`` with
``retryAfter``); a business rule says its own reason (e.g. ``too_many_accounts``). And a
request that succeeded leaves no ERROR in the logs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjordbank.domain import sca
from fjordbank.domain.giro import amount_check_digit
from fjordbank.domain.norway import kid_mod10_check, today_in_norway
from fjordbank.domain.ratelimit import LIMITS
from fjordbank.service_layer import ratelimits
from tests.support.bank import application, callables_for
from tests.support.cards import new_cardholder
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack
PAYEE = "15030000037"
GIRO = f"{'2024110' + kid_mod10_check('2024110')} # 849 00 {amount_check_digit('849', '00')} > {PAYEE}#"


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


def _at_once(calls: list) -> list[tuple[int, dict, float]]:
    """Run every ``call()`` at the same moment; (status, body, seconds) of each."""

    def timed(call):
        start = time.monotonic()
        status, body = call()
        return status, body, time.monotonic() - start

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(timed, calls))


def _reason(body: dict) -> str | None:
    return ((body.get("error") or {}).get("details") or {}).get("reason")


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _report(name: str, results: list) -> dict:
    codes: dict[str, int] = {}
    for status, body, _s in results:
        key = str(status) if status == 200 else f"{status} {_reason(body)}"
        codes[key] = codes.get(key, 0) + 1
    seconds = [s for _st, _b, s in results]
    figures = {
        "callable": name,
        "codes": codes,
        "p50_s": round(_p(seconds, 0.5), 2),
        "p99_s": round(_p(seconds, 0.99), 2),
    }
    print(json.dumps(figures))  # the closing note's figures (pytest -s)
    return figures


def test_fifty_concurrent_onboardings_are_all_approved_with_distinct_account_numbers(auth, callables):
    users = [auth.sign_up() for _ in range(50)]
    results = _at_once(
        [lambda u=u: callables.call("onboarding_submit", application(), u["id_token"], timeout=120) for u in users]
    )
    _report("onboarding_submit x50 users", results)
    assert all(status == 200 for status, _b, _s in results), [(s, b) for s, b, _t in results if s != 200][:3]
    decisions = [body["result"] for _s, body, _t in results]
    assert all(d["status"] == "approved" for d in decisions), decisions
    numbers = [d["accountId"] for d in decisions]
    assert len(set(numbers)) == 50 and all(n.startswith("9710") for n in numbers)


def _one_user_calls(holder, newcomer) -> dict[str, tuple[dict, dict, set[str]]]:
    """Per callable: the caller, a valid request body, and the business refusals that 30
    copies of it may rightly get besides 200 and 429 (the first call changes the state the
    others see: one device key, one application, at most 5 accounts)."""
    key = sca.public_key_b64(ec.generate_private_key(ec.SECP256R1()))
    return {
        "invoices_scan": (holder.user, {"ocrLine": GIRO}, set()),
        "accounts_rename": (holder.user, {"accountId": holder.account, "name": "Hverdag"}, set()),
        "accounts_open": (holder.user, {"kind": "savings"}, {"too_many_accounts"}),
        "cards_freeze": (holder.user, {"cardId": holder.card_id, "frozen": True}, set()),
        "cards_limits": (
            holder.user,
            {"cardId": holder.card_id, "limits": {"daily": 500_000, "online": 200_000, "abroad": 100_000}},
            set(),
        ),
        "cards_issue": (holder.user, {"accountId": holder.account}, {"too_many_cards"}),
        "cards_replace": (holder.user, {"cardId": holder.card_id, "reason": "lost"}, {"card_not_active"}),
        "accounts_close": (holder.user, {"accountId": holder.account}, {"account_not_empty"}),
        "standing_orders_cancel": (holder.user, {"orderId": "no-such-order-1"}, {"unknown_order"}),
        "payments_cancel_scheduled": (holder.user, {"requestId": "no-such-request-1"}, {"unknown_request"}),
        "subscriptions_dismiss": (holder.user, {"merchantKey": "netflix"}, {"unknown_subscription"}),
        "transactions_recategorise": (
            holder.user,
            {"accountId": holder.account, "transactionId": "pay-no-such-1", "category": "groceries"},
            {"unknown_transaction"},
        ),
        "standing_orders_create": (  # a new payee: confirmed on the device, or refused
            holder.user,
            {
                "orderId": "order-at-once-1",
                "fromAccount": holder.account,
                "toAccount": PAYEE,
                "amount": 10_000,
                "frequency": "monthly",
                "startDate": (today_in_norway() + dt.timedelta(days=1)).isoformat(),
            },
            {"sca_required"},
        ),
        "standing_orders_update": (holder.user, {"orderId": "no-such-order-1", "amount": 500}, {"unknown_order"}),
        "sca_register_key": (newcomer, {"keyId": "phone-one", "publicKey": key}, {"sca_key_exists"}),
        "sca_revoke_key": (holder.user, {"keyId": "no-such-key-1"}, {"unknown_device_key"}),
        "sca_add_device": (  # no device of the holder's signed it
            holder.user,
            {"keyId": "tablet-one", "publicKey": key, "approval": {"keyId": "no-such-key-1", "signature": "AAAA"}},
            {"sca_invalid"},
        ),
        "onboarding_submit": (newcomer, application(), {"already_onboarded"}),
    }


def test_thirty_concurrent_calls_of_each_callable_by_one_user_answer_only_200_or_429(
    stack, auth, as_user, ledger_admin, admin_db, callables
):
    holder = new_cardholder(stack, auth, as_user, callables, ledger_admin)
    newcomer = auth.sign_up()
    for name, (user, data, business) in _one_user_calls(holder, newcomer).items():
        for action in LIMITS:  # each callable starts with the whole of its limit
            admin_db.document(f"{ratelimits.RATE_LIMITS}/{ratelimits.document_id(user['uid'], action)}").delete()
        call = functools.partial(callables.call, name, data, user["id_token"], timeout=120)
        results = _at_once([call] * 30)
        figures = _report(name, results)
        for status, body, _s in results:
            assert status < 500, (name, status, body)  # never a bare 5xx
            assert status in (200, 429) or _reason(body) in business, (name, status, body)
            if status == 429:
                assert _reason(body) in ("rate_limited", "busy") and body["error"]["details"]["retryAfter"] >= 1
        # the request did its work once, or it was refused for its business reason
        assert "200" in figures["codes"] or any(_reason(b) in business for _s, b, _t in results), figures


def test_the_rate_limit_holds_under_concurrency(auth, callables):
    """40 scans at once by one user: exactly the limit's capacity gets through."""
    user = auth.sign_up()
    results = _at_once([lambda: callables.call("invoices_scan", {"ocrLine": GIRO}, user["id_token"])] * 40)
    ok = sum(1 for status, _b, _s in results if status == 200)
    limited = [_reason(b) for status, b, _s in results if status == 429]
    assert ok == LIMITS["invoices"].capacity and limited == ["rate_limited"] * (40 - ok)
    assert statistics.median(s for _st, _b, s in results) < 60


def test_a_successful_callable_logs_no_error(stack, auth, callables):
    """No ERROR (nor the SDK's 'verification failed' warning) for a request that succeeded:
    App Check's debug tokens are verified by the SDK against the stack's secret, never by
    asking Google's key service without credentials."""
    log = stack.s.log_dir / "emulators.log"
    start = log.stat().st_size
    user = auth.sign_up()
    for _ in range(3):
        status, body = callables.call("invoices_scan", {"ocrLine": GIRO}, user["id_token"])
        assert status == 200, body

    def new_lines() -> list[str]:
        with log.open("rb") as fh:
            fh.seek(start)
            return fh.read().decode(errors="replace").splitlines()

    finished = 'Finished "europe-west1-invoices_scan"'
    lines = wait_for(lambda: (ls := new_lines()) and sum(finished in line for line in ls) >= 3 and ls, what="logs")
    bad = [line for line in lines if "ERROR" in line or "verification failed" in line]
    assert not bad, bad
