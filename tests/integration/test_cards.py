"""Cards end to end on the real stack: ordered through the app's callables, issued by the
card service into its vault, used through the card-processor simulator's signed API.

Each decision is checked in the read model (card, account balances, the feed), in the
push the customer gets, and with the ledger audit.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest
import requests

from fjordbank.domain.cards import authorization_id, is_valid_pan
from fjordbank.domain.norway import today_in_norway
from fjordbank.domain.signatures import HEADER
from tests.support.bank import (
    callables_for,
    card_details,
    processor,
    pushes,
    refused,
    wait_card_active,
    wait_push,
)
from tests.support.cards import buy, limits_of, new_cardholder
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def callables(stack):
    return callables_for(stack)


@pytest.fixture(scope="module")
def proc(stack):
    return processor(stack)


@pytest.fixture
def holder(stack, auth, as_user, callables, ledger_admin):
    return new_cardholder(stack, auth, as_user, callables, ledger_admin)


def test_an_issued_card_shows_only_last_four_and_expiry(stack, holder):
    doc = holder.app.get(f"cards/{holder.card_id}")[1]
    pan = holder.card["pan"]
    assert is_valid_pan(pan) and pan.startswith("499210")
    assert doc["last4"] == pan[-4:] and doc["status"] == "active" and doc["accountId"] == holder.account
    today = today_in_norway()  # the card is valid through its month in Norway
    assert (doc["expMonth"], doc["expYear"]) == (today.month, today.year + 4)
    assert pan not in str(doc) and "cvv" not in {k.lower() for k in doc}


def test_approved_authorisation_holds_then_a_partial_capture_posts(stack, holder, proc, audit, admin_db):
    answer = buy(proc, holder, 25_000, merchant_name="Rema 1000 Majorstuen")
    assert answer["approved"] is True and answer["reason"] is None
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 25_000, 75_000)
    feed = holder.app.get(f"accounts/{holder.account}/transactions/{answer['authorizationId']}")[1]
    assert feed["status"] == "pending" and feed["amount"] == -25_000 and feed["merchantName"] == "Rema 1000 Majorstuen"
    assert feed["category"] == "groceries"  # MCC 5411
    push = wait_push(stack, holder.token, "Card purchase")
    # the merchant in the data only, not on the lock screen (SECURITY.md)
    assert "Rema 1000" not in push["notification"]["body"] and push["data"]["merchantName"] == "Rema 1000 Majorstuen"
    audit()

    status, captured = proc.capture(answer["reference"], amount=19_990)
    assert status == 200 and captured["status"] == "captured" and captured["capturedAmount"] == 19_990
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (80_010, 0, 80_010)
    feed = holder.app.get(f"accounts/{holder.account}/transactions/{answer['authorizationId']}")[1]
    assert feed["status"] == "posted" and feed["amount"] == -19_990
    # the same capture again is a no-op; another capture is refused
    assert proc.capture(answer["reference"], amount=19_990) == (200, captured)
    assert proc.capture(answer["reference"], amount=10, capture_reference="other")[0] == 409
    assert holder.account_doc()["balance"] == 80_010
    # the refused one is kept for the reconciliation (the scheme settles it all the same)
    kept = [d.to_dict() for d in admin_db.collection("cardCaptureRefusals").stream()]
    assert any(
        (k["reference"], k["captureReference"], k["amount"], k["reason"])
        == (answer["reference"], "other", 10, "already_captured")
        for k in kept
    ), kept
    audit()


def test_declines_frozen_over_limits_and_insufficient_funds(stack, holder, proc, callables, audit):
    tok = holder.user["id_token"]
    assert callables.call("cards_freeze", {"cardId": holder.card_id, "frozen": True}, tok)[0] == 200
    assert buy(proc, holder, 1_000)["reason"] == "card_frozen"
    # unfreezing needs the phone's confirmation: a session alone (a stolen password) is refused
    unfreeze = {"cardId": holder.card_id, "frozen": False}
    assert refused(callables.call("cards_freeze", unfreeze, tok)) == ("FAILED_PRECONDITION", "sca_required")
    assert buy(proc, holder, 1_000)["reason"] == "card_frozen"
    confirmation = holder.device.confirm_card_unfreeze(holder.card_id)
    assert callables.call("cards_freeze", {**unfreeze, "sca": confirmation}, tok)[0] == 200
    # frozen again, the same confirmation unfreezes nothing
    assert callables.call("cards_freeze", {"cardId": holder.card_id, "frozen": True}, tok)[0] == 200
    assert refused(callables.call("cards_freeze", {**unfreeze, "sca": confirmation}, tok)) == (
        "FAILED_PRECONDITION",
        "sca_reused",
    )
    unfreeze["sca"] = holder.device.confirm_card_unfreeze(holder.card_id)
    assert callables.call("cards_freeze", unfreeze, tok)[0] == 200
    # a virtual card takes no cash: an ATM has no chip or PIN of it to verify
    assert buy(proc, holder, 1_000, channel="atm", cvv=None)["reason"] == "atm_not_supported"
    limits = {"daily": 60_000, "online": 20_000, "abroad": 10_000}
    status, body = callables.call("cards_limits", {"cardId": holder.card_id, "limits": limits}, tok)
    assert status == 200 and body["result"]["limits"] == limits
    assert buy(proc, holder, 70_000)["reason"] == "over_daily_limit"
    assert buy(proc, holder, 25_000, channel="online")["reason"] == "over_online_limit"
    assert (
        buy(proc, holder, 15_000, merchant_country="SE", merchant_name="ICA Kvantum")["reason"] == "over_abroad_limit"
    )
    assert (
        buy(proc, holder, 1_000, cvv="000" if holder.card["cvv"] != "000" else "001", channel="online")["reason"]
        == "cvv_mismatch"
    )
    limits = {"daily": 10_000_000, "online": 5_000_000, "abroad": 5_000_000}
    raise_them = {"cardId": holder.card_id, "limits": limits}
    assert refused(callables.call("cards_limits", raise_them, tok)) == ("FAILED_PRECONDITION", "sca_required")
    assert limits_of(holder) == {"daily": 60_000, "online": 20_000, "abroad": 10_000}
    # confirmed from other limits than the card's: not what the customer saw
    wrong = holder.device.confirm_card_limits(holder.card_id, {"daily": 0, "online": 0, "abroad": 0}, limits)
    assert refused(callables.call("cards_limits", {**raise_them, "sca": wrong}, tok)) == (
        "FAILED_PRECONDITION",
        "sca_invalid",
    )
    raise_them["sca"] = holder.device.confirm_card_limits(holder.card_id, limits_of(holder), limits)
    assert callables.call("cards_limits", raise_them, tok)[0] == 200
    declined = buy(proc, holder, 100_001)
    assert declined["approved"] is False and declined["reason"] == "insufficient_funds"
    push = wait_push(stack, holder.token, "Card purchase declined")
    assert push["data"]["status"] == "declined"
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"]) == (100_000, 0)  # no decline holds anything
    # invalid limits are refused and change nothing
    assert refused(callables.call("cards_limits", {"cardId": holder.card_id, "limits": {"daily": -1}}, tok)) == (
        "INVALID_ARGUMENT",
        "invalid_limits",
    )
    audit()


def test_an_event_left_in_the_card_service_s_outbox_is_published_by_the_service(stack, holder, admin_db):
    """What a decision leaves when NATS did not take its event, or the service died between
    its commit and its publish: the service publishes it with its own identity (the
    relay-outbox job, which runs as the edge, may not) and removes it."""
    from fjordbank.service_layer.card_ledger import RELAY_SECONDS, CardResult, card_event
    from fjordbank.service_layer.outbox import CARD_OUTBOX

    auth_id = authorization_id(unique("outbox-ref"))
    record = {
        "fingerprint": "f",
        "ownerUid": holder.user["uid"],
        "cardId": holder.card_id,
        "accountId": holder.account,
        "last4": "0000",
        "amount": 4_200,
        "currency": "NOK",
        "merchantName": "Outbox Kiosk",
        "mcc": "5411",
        "merchantCountry": "NO",
        "channel": "pos",
        "spendDay": today_in_norway().isoformat(),
    }
    event = card_event(CardResult("declined", "card_frozen", auth_id, record))
    assert event is not None
    staged = admin_db.document(f"{CARD_OUTBOX}/{event.msg_id}")
    staged.set(
        {
            "subject": event.subject,
            "kind": "cards",
            "body": event.body,
            "stagedAt": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        }
    )
    wait_for(lambda: not staged.get().exists, timeout=3 * RELAY_SECONDS, what="the card service to relay its outbox")
    push = wait_push(stack, holder.token, "Card purchase declined")
    assert push["data"]["status"] == "declined"


def test_authorisations_are_idempotent_by_the_processors_reference(holder, proc, audit):
    reference = unique("pos-terminal-1-")
    first = buy(proc, holder, 5_000, reference=reference)
    again = buy(proc, holder, 5_000, reference=reference)
    assert first["approved"] and again == first
    assert holder.account_doc()["held"] == 5_000
    other = buy(proc, holder, 9_000, reference=reference)
    assert other["approved"] is False and other["reason"] == "duplicate_reference"
    assert holder.account_doc()["held"] == 5_000
    # after the capture, a retry of the authorisation still gets its approval (and holds nothing)
    assert proc.capture(reference)[0] == 200
    assert buy(proc, holder, 5_000, reference=reference) == first
    assert holder.account_doc()["held"] == 0
    audit()


def test_a_reversal_releases_and_an_expired_hold_is_released_by_the_job(stack, holder, proc, admin_db, audit):
    first = buy(proc, holder, 7_000)
    status, body = proc.reverse(first["reference"])
    assert status == 200 and body["status"] == "reversed"
    assert proc.reverse(first["reference"])[0] == 200  # again: the same answer
    assert holder.account_doc()["held"] == 0
    # the cancellation is told beside the purchase (a collapse id of its own: a shared one
    # would show whichever send landed last)
    cancelled = wait_push(stack, holder.token, "Card purchase cancelled")
    purchase = wait_for(
        lambda: next(
            (
                m["message"]
                for m in pushes(stack, holder.token)
                if m["message"]["notification"]["title"] == "Card purchase"
                and m["message"]["data"]["authorizationId"] == cancelled["data"]["authorizationId"]
            ),
            None,
        ),
        what="the purchase's push",
    )
    assert cancelled["android"]["notification"]["tag"] != purchase["android"]["notification"]["tag"]

    second = buy(proc, holder, 8_000)
    assert holder.account_doc()["held"] == 8_000
    # time passes: the hold's expiry (on the authorisation's record) is moved into the past
    # (as seven days would)
    record = admin_db.document(f"cardAuthorizations/{second['authorizationId']}")
    assert not admin_db.document(f"holds/{second['authorizationId']}").get().exists
    record.update({"hold.expiresAt": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()})
    for _ in range(2):  # the job twice releases once
        subprocess.run(
            [sys.executable, "-m", "bankctl", "jobs", "run", "release-expired-holds"],
            cwd=stack.s.repo,
            check=True,
            capture_output=True,
        )
    wait_for(lambda: holder.account_doc()["held"] == 0, timeout=60, what="the expired hold to be released")
    expired = admin_db.document(f"cardAuthorizations/{second['authorizationId']}").get()
    assert expired.get("status") == "expired" and expired.get("hold")["status"] == "released"
    feed = holder.app.get(f"accounts/{holder.account}/transactions/{second['authorizationId']}")[1]
    assert feed["status"] == "cancelled"
    # a late capture (the scheme settles it anyway) is posted from the available balance
    status, late = proc.capture(second["reference"], amount=6_000)
    assert status == 200 and late["status"] == "captured" and late["capturedAmount"] == 6_000
    assert holder.account_doc()["balance"] == 94_000
    assert admin_db.document(f"cardAuthorizations/{second['authorizationId']}").get().get("lateCapture") is True
    # told the reservation ended, the holder is told of the charge too
    ended = wait_push(stack, holder.token, "Reservation ended")
    charged = wait_push(stack, holder.token, "Card purchase charged")
    assert ended["data"]["authorizationId"] == charged["data"]["authorizationId"] == second["authorizationId"]
    # a reversed authorisation is never captured
    assert proc.capture(first["reference"])[0] == 409
    audit()


def test_a_lost_card_is_blocked_and_replaced(stack, holder, proc, callables, audit):
    tok = holder.user["id_token"]
    status, body = callables.call("cards_replace", {"cardId": holder.card_id, "reason": "lost"}, tok)
    assert status == 200, body
    new_id = body["result"]["cardId"]
    assert holder.app.get(f"cards/{holder.card_id}")[1]["status"] == "blocked"
    assert buy(proc, holder, 1_000)["reason"] == "card_blocked"
    new = wait_card_active(holder.app, new_id)
    assert new["replaces"] == holder.card_id
    details = card_details(stack, new_id)
    assert details["pan"] != holder.card["pan"]
    holder.card, holder.card_id = details, new_id
    assert buy(proc, holder, 1_000)["approved"] is True
    # a blocked card stays blocked
    assert refused(callables.call("cards_freeze", {"cardId": body["result"]["cardId"] + "x", "frozen": False}, tok))[
        1
    ] == ("unknown_card")
    audit()


def test_the_processor_api_refuses_unsigned_and_forged_requests(stack, holder, proc):
    url = f"{stack.card_api_url}/v1/authorizations"
    body = b'{"reference":"x"}'
    assert requests.post(url, data=body, timeout=5).status_code == 401
    forged = {HEADER: f"t={int(time.time())},v1=" + "0" * 64}
    assert requests.post(url, data=body, headers=forged, timeout=5).status_code == 401
    from fjordbank.domain.signatures import sign

    stale = {HEADER: sign(b"wrong-secret", int(time.time()), body, path="/v1/authorizations")}
    assert requests.post(url, data=body, headers=stale, timeout=5).status_code == 401
    secret = proc.secret
    elsewhere = {HEADER: sign(secret, int(time.time()), body, path="/v1/reversals")}
    assert requests.post(url, data=body, headers=elsewhere, timeout=5).status_code == 401  # signed for another endpoint
    signed = {HEADER: sign(secret, int(time.time()), body, path="/v1/authorizations")}
    assert requests.post(url, data=body, headers=signed, timeout=5).status_code == 400  # past the signature: invalid


def test_a_reversal_that_overtakes_its_timed_out_authorisation_leaves_nothing_held(holder, proc, admin_db, audit):
    """The processor timed out and reversed; the authorisation itself arrives later."""
    reference = unique("late-")
    status, body = proc.reverse(reference)
    assert status == 200 and body["status"] == "reversed" and body["reason"] == "reversed_before_authorization"
    late = buy(proc, holder, 3_000, reference=reference)
    assert late["approved"] is False and late["reason"] == "reversed_before_authorization"
    assert holder.account_doc()["held"] == 0
    assert not admin_db.document(f"holds/{authorization_id(reference)}").get().exists
    assert "hold" not in admin_db.document(f"cardAuthorizations/{authorization_id(reference)}").get().to_dict()
    audit()


def test_nobody_touches_another_customers_card(stack, auth, as_user, callables, ledger_admin, holder):
    mallory = new_cardholder(stack, auth, as_user, callables, ledger_admin, funds=0)
    tok = mallory.user["id_token"]
    for name, data in [
        ("cards_freeze", {"cardId": holder.card_id, "frozen": True}),
        ("cards_limits", {"cardId": holder.card_id, "limits": {"daily": 0}}),
        ("cards_replace", {"cardId": holder.card_id, "reason": "stolen"}),
    ]:
        assert refused(callables.call(name, data, tok)) == ("NOT_FOUND", "unknown_card"), name
    assert refused(callables.call("cards_issue", {"accountId": holder.account}, tok)) == (
        "NOT_FOUND",
        "unknown_account",
    )
    assert mallory.app.get(f"cards/{holder.card_id}")[0] == 403
    assert holder.app.get(f"cards/{holder.card_id}")[1]["status"] == "active"
    # a signed-up user who is not a customer gets no card
    stranger = auth.sign_up()
    assert refused(callables.call("cards_issue", {"accountId": holder.account}, stranger["id_token"]))[1] in (
        "not_a_customer",
        "unknown_account",
    )


def test_guessing_the_security_code_freezes_the_card(holder, proc, callables):
    from fjordbank.domain.cards import MAX_FAILED_CHECKS

    wrong = "000" if holder.card["cvv"] != "000" else "001"
    answers = [buy(proc, holder, 1_000, cvv=wrong, channel="online") for _ in range(MAX_FAILED_CHECKS)]
    assert [a["reason"] for a in answers] == ["cvv_mismatch"] * MAX_FAILED_CHECKS
    card = holder.app.get(f"cards/{holder.card_id}")[1]
    assert card["status"] == "frozen" and card["frozenReason"] == "too_many_failed_checks"
    assert buy(proc, holder, 1_000, channel="online")["reason"] == "card_frozen"  # even with the right code
    # the customer, in the app, says it was them, confirmed on the phone
    unfreeze = {"cardId": holder.card_id, "frozen": False, "sca": holder.device.confirm_card_unfreeze(holder.card_id)}
    assert callables.call("cards_freeze", unfreeze, holder.user["id_token"])[0] == 200
    assert buy(proc, holder, 1_000, channel="online")["approved"] is True


def test_a_merchant_s_refund_is_money_back_in_the_feed_the_push_and_my_economy(stack, holder, proc, audit, admin_db):
    answer = buy(proc, holder, 40_000, merchant_name="Elkjøp Lade", mcc="5732")
    assert proc.capture(answer["reference"])[0] == 200
    auth_id = answer["authorizationId"]
    month = f"users/{holder.uid}/economy/{today_in_norway().isoformat()[:7]}"
    wait_for(lambda: (holder.app.get(month)[1] or {}).get("spent") == 40_000, timeout=60, what="the purchase booked")

    status, refunded = proc.refund(answer["reference"], 15_000, reference="rfd-" + answer["reference"])
    assert (status, refunded["status"], refunded["refundedAmount"], refunded["refundedTotal"]) == (
        200,
        "refunded",
        15_000,
        15_000,
    )
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (75_000, 0, 75_000)
    entry = holder.app.get(f"accounts/{holder.account}/transactions/{refunded['refundId']}")[1]
    assert (entry["kind"], entry["direction"], entry["amount"], entry["status"]) == (
        "card_refund",
        "in",
        15_000,
        "posted",
    )
    assert (entry["refundOf"], entry["merchantName"]) == (auth_id, "Elkjøp Lade")
    purchase = holder.app.get(f"accounts/{holder.account}/transactions/{auth_id}")[1]
    assert entry["category"] == purchase["category"]
    push = wait_push(stack, holder.token, "Refund")
    assert "Elkjøp Lade" not in push["notification"]["body"] and push["data"]["merchantName"] == "Elkjøp Lade"
    assert push["data"]["refundId"] == refunded["refundId"]
    # my economy: the refund takes its amount off the purchase's category
    spent = wait_for(
        lambda: (m := holder.app.get(month)[1] or {}).get("spent") == 25_000 and m,
        timeout=60,
        what="the refund booked",
    )
    assert spent["spending"] == {purchase["category"]: 25_000}
    # a retry is answered as before; more than what is left of the capture is refused
    assert proc.refund(answer["reference"], 15_000, reference="rfd-" + answer["reference"]) == (200, refunded)
    status, over = proc.refund(answer["reference"], 25_001, reference="rfd-over-" + answer["reference"])
    assert (status, over["reason"]) == (409, "refund_exceeds_capture")
    assert holder.account_doc()["balance"] == 75_000
    # the refused one is kept for the reconciliation (the scheme clears it all the same)
    kept = [d.to_dict() for d in admin_db.collection("cardRefundRefusals").stream()]
    assert any(
        (k["reference"], k["refundReference"], k["amount"], k["reason"], k["status"])
        == (answer["reference"], "rfd-over-" + answer["reference"], 25_001, "refund_exceeds_capture", "open")
        for k in kept
    ), kept
    audit()


def test_a_hotel_s_incremental_authorisation_holds_more_and_the_capture_takes_it(stack, holder, proc, audit):
    answer = buy(proc, holder, 30_000, merchant_name="Scandic Lerkendal", mcc="7011")
    auth_id = answer["authorizationId"]
    status, more = proc.increment(answer["reference"], 20_000, reference="inc-" + answer["reference"])
    assert (status, more["approved"], more["status"], more["authorizedAmount"]) == (200, True, "approved", 50_000)
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 50_000, 50_000)
    entry = holder.app.get(f"accounts/{holder.account}/transactions/{auth_id}")[1]
    assert (entry["status"], entry["amount"]) == ("pending", -50_000)
    push = wait_push(stack, holder.token, "Reservation increased")
    assert "Scandic" not in push["notification"]["body"] and push["data"]["merchantName"] == "Scandic Lerkendal"
    assert push["data"]["incrementId"] == more["incrementId"]
    # a retry is answered as before; more than the account has is declined and holds nothing
    assert proc.increment(answer["reference"], 20_000, reference="inc-" + answer["reference"]) == (200, more)
    status, poor = proc.increment(answer["reference"], 50_001)
    assert (status, poor["approved"], poor["reason"]) == (200, False, "insufficient_funds")
    assert holder.account_doc()["held"] == 50_000
    audit()
    status, captured = proc.capture(answer["reference"], amount=48_000)
    assert (status, captured["capturedAmount"]) == (200, 48_000)
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (52_000, 0, 52_000)
    audit()


def test_a_refund_to_an_account_closed_since_is_paid_out_to_an_open_one(stack, holder, proc, callables, audit):
    """Closing blocks the account's card; the merchant's refund still lands there (the
    scheme settles it), and the customer moves it to an open account."""
    tok = holder.user["id_token"]
    answer = buy(proc, holder, 100_000, merchant_name="Elkjøp Lade", mcc="5732")
    assert proc.capture(answer["reference"])[0] == 200
    status, body = callables.call("accounts_open", {"kind": "savings"}, tok)
    assert status == 200, body
    savings = body["result"]["accountId"]
    assert callables.call("accounts_close", {"accountId": holder.account}, tok)[0] == 200
    card = wait_for(
        lambda: (c := holder.app.get(f"cards/{holder.card_id}")[1]) and c.get("status") == "blocked" and c,
        timeout=10,
        what="the card blocked",
    )
    assert card["blockedReason"] == "account_closed"
    assert buy(proc, holder, 1_000)["reason"] == "card_blocked"
    assert proc.refund(answer["reference"], 40_000)[0] == 200
    assert (holder.account_doc()["status"], holder.account_doc()["balance"]) == ("closed", 40_000)
    status, body = callables.call("accounts_payout", {"accountId": holder.account, "toAccountId": savings}, tok)
    assert status == 200 and body["result"]["amount"] == 40_000, body
    assert holder.account_doc()["balance"] == 0
    target = holder.app.get(f"accounts/{savings}")[1]
    assert (target["balance"], target["available"]) == (40_000, 40_000)
    entry = holder.app.get(f"accounts/{savings}/transactions/{body['result']['payoutId']}")[1]
    assert (entry["kind"], entry["amount"], entry["counterpartyAccount"]) == ("payout", 40_000, holder.account)
    # again, as a retry after a lost answer: the payout made, nothing moved again
    status, again = callables.call("accounts_payout", {"accountId": holder.account, "toAccountId": savings}, tok)
    assert status == 200 and again["result"] == {**body["result"], "repeated": True}, again
    assert holder.app.get(f"accounts/{savings}")[1]["balance"] == 40_000
    audit()


def test_a_fuel_pump_s_partial_reversal_gives_back_what_was_not_pumped(stack, holder, proc, audit):
    """750 kr held at the pump, 300 kr pumped: 450 kr back at once (the pending entry
    shows 300), then the capture of 300; more than is held is refused."""
    answer = buy(proc, holder, 75_000, merchant_name="Circle K Sluppen", mcc="5542")
    auth_id, reversal = answer["authorizationId"], "rev-" + answer["reference"]
    status, part = proc.reverse_part(answer["reference"], 45_000, reference=reversal)
    assert (status, part["status"], part["reversedAmount"], part["heldAmount"]) == (200, "reversed", 45_000, 30_000)
    assert proc.reverse_part(answer["reference"], 45_000, reference=reversal) == (200, part)  # a retry
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (100_000, 30_000, 70_000)
    entry = holder.app.get(f"accounts/{holder.account}/transactions/{auth_id}")[1]
    assert (entry["status"], entry["amount"]) == ("pending", -30_000)
    status, over = proc.reverse_part(answer["reference"], 30_001)
    assert (status, over["reason"]) == (409, "reversal_over_hold")
    audit()
    status, captured = proc.capture(answer["reference"])  # all that is left
    assert (status, captured["capturedAmount"]) == (200, 30_000)
    acct = holder.account_doc()
    assert (acct["balance"], acct["held"], acct["available"]) == (70_000, 0, 70_000)
    audit()
