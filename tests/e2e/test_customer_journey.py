"""A new customer's first day, through the app's surface only (Auth, Firestore under the
rules, callables) and the card network's simulator; then a search of everything the bank
stored, logged and published for card numbers and security codes."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from nats.js.api import DeliverPolicy

from fjordbank.adapters.vault import CardVault, decode_key
from fjordbank.domain.cards import derive_cvv
from tests.support.app import new_customer
from tests.support.bank import (
    application,
    callables_for,
    card_details,
    card_keys,
    processor,
    pushes,
    register_device,
    wait_card_active,
    wait_push,
)
from tests.support.natsclients import connect

pytestmark = pytest.mark.stack


def test_sign_up_to_an_approved_customer_with_an_account_a_card_and_pushes(stack, auth, as_user, ledger_admin, audit):
    callables = callables_for(stack)
    # 1. sign up (Auth) and register this phone for pushes; keep marketing off
    user = auth.sign_up()
    app = as_user(user["id_token"])
    token = register_device(app, user["uid"])
    prefs = app.create(f"users/{user['uid']}/settings", "notifications", {"marketing": False, "card": True})
    assert prefs.status_code == 200, prefs.text

    # 2. onboarding: approved, first account opened, welcome push
    status, body = callables.call("onboarding_submit", application(name="Ingrid Alvhild Fjeldstad"), user["id_token"])
    assert status == 200 and body["result"]["status"] == "approved", body
    account = body["result"]["accountId"]
    wait_push(stack, token, "Welcome to Fjordbank")
    assert app.get(f"customers/{user['uid']}")[1]["status"] == "approved"

    # 3. a second account for savings, renamed
    status, body = callables.call("accounts_open", {"kind": "savings"}, user["id_token"])
    assert status == 200, body
    savings = body["result"]["accountId"]
    assert callables.call("accounts_rename", {"accountId": savings, "name": "Ferie"}, user["id_token"])[0] == 200

    # 4. a friend sends money: the new customer is told
    friend = new_customer(auth, as_user, ledger_admin, 50_000)
    request_id = friend.request_payment(account, 30_000, message="Velkommen!")
    assert friend.wait_final(request_id)["status"] == "completed"
    wait_push(stack, token, "Money received")
    assert app.get(f"accounts/{account}")[1]["balance"] == 30_000

    # 5. a virtual card, used in a shop; the purchase holds, the capture posts
    status, body = callables.call("cards_issue", {"accountId": account}, user["id_token"])
    assert status == 200, body
    card_id = body["result"]["cardId"]
    card = wait_card_active(app, card_id)
    details = card_details(stack, card_id)
    assert card["last4"] == details["pan"][-4:]
    answer = processor(stack).authorize(
        pan=details["pan"],
        exp_month=details["exp_month"],
        exp_year=details["exp_year"],
        cvv=details["cvv"],
        amount=12_900,
        merchant_name="Narvesen Oslo S",
        mcc="5994",
    )
    assert answer["approved"] is True
    assert wait_push(stack, token, "Card purchase")["data"]["cardId"] == card_id
    assert processor(stack).capture(answer["reference"])[0] == 200
    acct = app.get(f"accounts/{account}")[1]
    assert (acct["balance"], acct["held"], acct["available"]) == (17_100, 0, 17_100)
    feed = app.get(f"accounts/{account}/transactions/{answer['authorizationId']}")[1]
    assert feed["status"] == "posted" and feed["merchantName"] == "Narvesen Oslo S"

    # every push was delivered once
    titles = [m["message"]["notification"]["title"] for m in pushes(stack, token)]
    assert sorted(titles) == sorted(["Welcome to Fjordbank", "Money received", "Card purchase"]), titles
    audit()


# ---- no card data anywhere ----------------------------------------------------------------
def _all_cards(stack) -> list[tuple[str, str]]:
    """(PAN, CVV) of every card in the vault."""
    keys = card_keys(stack)
    vault = CardVault(str(stack.s.state_dir / "vault" / "cards.db"), decode_key(keys["vaultKey"], "vault"))
    cvv_key = decode_key(keys["cvvKey"], "cvv")
    try:
        rows = vault._db.execute("SELECT card_id, exp_month, exp_year FROM cards").fetchall()
        out = []
        for card_id, month, year in rows:
            pan = vault.reveal(card_id)
            out.append((pan, derive_cvv(cvv_key, pan, month, year)))
        return out
    finally:
        vault.close()


def _firestore_text(db) -> str:
    """Every document of every collection and subcollection, as JSON text."""
    chunks: list[str] = []
    seen_groups: set[str] = set()

    def walk(collection, depth: int) -> None:
        for i, snap in enumerate(collection.stream()):
            chunks.append(json.dumps({"path": snap.reference.path, **(snap.to_dict() or {})}, default=str))
            if depth < 2 and i < 200:  # subcollection names, from a sample of each collection
                for sub in snap.reference.collections():
                    seen_groups.add(sub.id)

    for collection in db.collections():
        walk(collection, 0)
    for group in sorted(seen_groups):
        for snap in db.collection_group(group).stream():
            chunks.append(json.dumps({"path": snap.reference.path, **(snap.to_dict() or {})}, default=str))
    return "\n".join(chunks)


def _nats_text(stack) -> str:
    """Every message in every stream, read with one ordered consumer per stream."""

    async def read() -> list[str]:
        nc = await connect(stack, "admin")
        js = nc.jetstream()
        out = []
        try:
            for stream in ("PAYMENTS", "CUSTOMERS", "CARDS", "DLQ"):
                info = await js.stream_info(stream)
                if info.state.messages == 0:
                    continue
                sub = await js.subscribe(
                    info.config.subjects[0], stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
                )
                while True:
                    msg = await sub.next_msg(timeout=5)
                    out.append(f"{msg.subject} {msg.headers} {msg.data.decode(errors='replace')}")
                    if msg.metadata.num_pending == 0:
                        break
                await sub.unsubscribe()
        finally:
            await nc.close()
        return out

    return "\n".join(asyncio.run(read()))


def _log_text(stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(stack.s.log_dir.glob("*.log")))


def leaks(text: str, cards: list[tuple[str, str]]) -> list[str]:
    """What in ``text`` is card data: a full PAN (also grouped with spaces or dashes), a
    CVV under a cvv key, or a field named pan/cvv/cardNumber. One pass per pattern."""
    found = []
    digit_runs = set(re.findall(r"\d+", re.sub(r"(?<=\d)[ \-](?=\d)", "", text)))
    pans = {pan for pan, _ in cards}
    windows = {run[i : i + 16] for run in digit_runs if len(run) >= 16 for i in range(len(run) - 15)}
    found += [f"PAN {pan[:6]}...{pan[-4:]}" for pan in sorted(pans & windows)]
    cvv_values = set(re.findall(r"""cvv['"]?\s*[:=]\s*['"]?(\d{3})\b""", text, re.IGNORECASE))
    if cvv_values & {cvv for _, cvv in cards}:
        found.append("a CVV")
    if re.search(r"""['"](pan|cvv|cardNumber)['"]\s*:""", text, re.IGNORECASE):
        found.append("a card-data field")
    return found


def test_no_card_number_or_security_code_in_firestore_logs_or_nats(stack, admin_db):
    cards = _all_cards(stack)
    assert cards, "the card tests issue cards before this search"
    stores = {"firestore": _firestore_text(admin_db), "nats": _nats_text(stack), "logs": _log_text(stack)}
    for name, text in stores.items():
        assert text, name
        assert leaks(text, cards) == [], f"card data in {name}"


def test_the_search_finds_a_planted_leak():
    cards = [("4992100000000001", "123")]
    assert leaks('{"detail": "4992 1000 0000 0001"}', cards) == ["PAN 499210...0001"]
    assert leaks("{'cvv': '123'}", cards) == ["a CVV", "a card-data field"]
    assert leaks("cvv=123 ok", cards) == ["a CVV"]
    assert leaks('{"pan": "x"}', cards) == ["a card-data field"]
    assert leaks('{"message": "card 499210******0001 approved", "amount": 123}', cards) == []
