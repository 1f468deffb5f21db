"""The last sweep of the test run (named to run last): everything the bank stored, logged
and published, searched for card numbers and security codes, and the services' logs for
identity and full account numbers."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from nats.js.api import DeliverPolicy

from fjordbank.adapters.vault import DEFAULT_DATABASE, decode_keyring, open_vault
from fjordbank.domain.cards import derive_cvv
from tests.support.bank import card_keys
from tests.support.natsclients import connect

pytestmark = pytest.mark.stack


# ---- no card data anywhere ----------------------------------------------------------------
def _all_cards(stack) -> list[tuple[str, str]]:
    """(PAN, CVV) of every card in the vault (its own database in the emulator)."""
    keys = card_keys(stack)
    vault = open_vault(stack.s.project_id, DEFAULT_DATABASE, decode_keyring(keys["vaultKey"], "vault"))
    cvv_keys = decode_keyring(keys["cvvKey"], "cvv")
    out = []
    for entry in vault.entries():
        pan = vault.reveal(entry.card_id)
        out.append((pan, derive_cvv(cvv_keys.key(entry.cvv_key_id), pan, entry.exp_month, entry.exp_year)))
    return out


def _firestore_text(db) -> str:
    """Every document of every collection and subcollection, at any depth, as JSON text.

    One query: a collection group without a collection id is every document of the database
    (a kindless query, which the emulator answers). Walking the collections instead, with a
    subcollection listing for each of a sample of their documents, took about 195 of the
    sweep's 205 s at the end of a full run (22,000 documents: the query takes about 6 s),
    and found the subcollections only of the documents it sampled."""
    snaps = list(db.collection_group("").stream())
    assert any(snap.reference.path.count("/") > 1 for snap in snaps), "the query found no subcollection's documents"
    return "\n".join(json.dumps({"path": snap.reference.path, **(snap.to_dict() or {})}, default=str) for snap in snaps)


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


def _trace_text(stack) -> str:
    """Every span the stack exported (fjordbank.runtime.tracing's file exporter)."""
    return "\n".join(p.read_text(errors="replace") for p in sorted((stack.s.state_dir / "traces").glob("*.jsonl*")))


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
    stores = {
        "firestore": _firestore_text(admin_db),
        "nats": _nats_text(stack),
        "logs": _log_text(stack),
        "traces": _trace_text(stack),
    }
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


def test_no_identity_or_full_account_number_in_the_services_logs(stack, admin_db):
    """Our code's log lines (the services' logs and the functions' lines in the emulator
    log) never carry a customer's identity number or full account number."""
    ids = {snap.get("nationalId") for snap in admin_db.collection("kyc").stream()}
    accounts = {s.id for s in admin_db.collection("accounts").stream() if s.get("kind") == "customer"}
    assert ids and accounts

    def this_run(path) -> str:  # a log file keeps earlier runs of the stack above its last "=== " line
        text = path.read_text(errors="replace")
        return text[text.rfind("\n=== ") :]

    services = [p for p in stack.s.log_dir.glob("*.log") if p.stem in set(stack.s.service_ports)]
    text = "\n".join(this_run(p) for p in services)
    emulator_log = stack.s.log_dir / "emulators.log"
    text += "\n".join(line for line in this_run(emulator_log).splitlines() if line.startswith(">"))
    text += "\n" + _trace_text(stack)  # span names and attributes
    compact = re.sub(r"(?<=\d)[ .](?=\d)", "", text)
    numbers = set(re.findall(r"(?<![0-9A-Za-z])[0-9]{11}(?![0-9A-Za-z])", compact))
    assert not numbers & ids, "an identity number is in the logs"
    assert not numbers & accounts, f"full account numbers in the logs: {sorted(numbers & accounts)[:3]}"
