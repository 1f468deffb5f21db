"""bankctl as an operator runs it: a real subprocess against the running stack."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from clientkit.device import Device
from fjordbank.domain import sca
from tests.support.clients import wait_for

pytestmark = pytest.mark.stack


def bankctl(stack, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankctl", *args],
        cwd=stack.s.repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess, expected: str, code: int = 1) -> None:
    assert result.returncode == code, result
    assert result.stderr.startswith("bankctl: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and expected in result.stderr, result.stderr


def test_top_level_help_lists_every_command(stack):
    result = bankctl(stack, "--help")
    assert result.returncode == 0
    for name in (
        "customers",
        "pay",
        "ledger",
        "balances",
        "reviews",
        "devices",
        "dlq",
        "jobs",
        "audit",
        "load",
        "demo",
    ):
        assert f"    {name}" in result.stdout


def test_errors_are_one_line(stack):
    one_line_error(bankctl(stack, "ledger", f"{uuid.uuid4().hex}@nowhere.example"), "no customer with e-mail")
    one_line_error(bankctl(stack, "pay", f"nobody{uuid.uuid4().hex[:8]}", "12345678903", "10"), "no customer")
    one_line_error(bankctl(stack, "pay", "x", "12345678903", "10.001"), "more than 2 decimals")
    one_line_error(bankctl(stack, "balances", "00000000000"), "no account 00000000000")
    one_line_error(bankctl(stack, "pay"), "required", code=2)
    down = "is the stack up? run `make up`"
    one_line_error(bankctl(stack, "audit", env={"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}), down)
    one_line_error(bankctl(stack, "customers", "create", env={"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1"}), down)
    one_line_error(bankctl(stack, "dlq", "list", env={"FJB_NATS_CLIENT_PORT": "1"}), down)
    one_line_error(bankctl(stack, "jobs", "run", "relay-outbox", env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}), down)
    approve = ["--reason", "another person", "--by", "Kari Ops"]
    one_line_error(bankctl(stack, "reviews", "approve", "a/b", *approve), "is no customer id")  # not a document path
    # another project on the same emulator is an empty ledger, not a sound one
    one_line_error(bankctl(stack, "audit", env={"FJB_PROJECT_ID": "demo-typo"}), "no accounts in project demo-typo")


def test_create_customers_pay_see_it_in_the_ledger_and_audit(stack):
    made = bankctl(stack, "customers", "create", "--count", "2", "--deposit", "2500.50", "--json")
    assert made.returncode == 0, made.stderr
    payer, payee = json.loads(made.stdout)
    assert payer["status"] == payee["status"] == "approved" and payer["deposited"] == 250_050
    assert (stack.s.state_dir / "bankctl" / "devices" / f"{payer['uid']}.json").stat().st_mode & 0o077 == 0

    # a new payee: confirmed on the device; the payee given as a customer (e-mail)
    paid = bankctl(stack, "pay", payer["email"], payee["email"], "125.50", "--message", "Pizza", "--json")
    assert paid.returncode == 0, paid.stderr
    result = json.loads(paid.stdout)
    assert (result["status"], result["amount"], result["toAccount"]) == ("completed", 12_550, payee["account"])

    # the same, but not confirmed: the bank asks for the device and refuses it
    refused = bankctl(stack, "pay", payer["uid"], "15030000002", "10", "--no-sca")
    one_line_error(refused, "payment rejected: sca_required")
    assert "rejected" in refused.stdout
    # more than the account holds (within the new payee's limit for its first day): failed, exit 1
    one_line_error(bankctl(stack, "pay", payer["account"], payee["account"], "3000"), "insufficient_funds")

    ledger = bankctl(stack, "ledger", payer["email"], "--json")
    assert ledger.returncode == 0, ledger.stderr
    (account,) = json.loads(ledger.stdout)["accounts"]
    assert (account["balance"], account["available"]) == (250_050 - 12_550, 250_050 - 12_550)
    newest = account["transactions"][0]
    assert newest["status"] == "cancelled" and newest["amount"] == -300_000  # the failed one, newest first
    assert any(
        t["amount"] == -12_550 and t["message"] == "Pizza" and t["status"] == "posted" for t in account["transactions"]
    )
    text = bankctl(stack, "ledger", payee["account"], "--postings")
    assert text.returncode == 0 and "125,50 kr" in text.stdout and f"opening-{payee['account']}" in text.stdout

    audit = bankctl(stack, "audit")
    assert audit.returncode == 0, audit.stdout


def test_an_operator_reopens_the_enrolment_of_a_customer_who_lost_their_devices(stack, admin_db):
    """`devices reopen` revokes the customer's key (the phone bankctl keeps for them signs
    nothing more) and opens the enrolment for the new device's key, named by its id and
    fingerprint; `devices list` shows it; a reason and a fingerprint are required; the
    customer's notice of the reset is published (not left in the outbox)."""
    made = bankctl(stack, "customers", "create", "--json")
    assert made.returncode == 0, made.stderr
    (customer,) = json.loads(made.stdout)
    uid = customer["uid"]
    listed = json.loads(bankctl(stack, "devices", "list", uid, "--json").stdout)
    assert [k["keyId"] for k in listed["keys"]] == [customer["device_key"]] and listed["reopenedAt"] is None
    new = Device.new(uid, "phone-")
    shown = [
        "--key",
        new.key_id,
        "--fingerprint",
        sca.fingerprint(base64.b64decode(new.public_key)),
        "--by",
        "Kari Ops",
    ]
    one_line_error(bankctl(stack, "devices", "reopen", uid, "--reason", "x", *shown), "invalid_reason")
    bad = ["--key", new.key_id, "--fingerprint", "not-hex", "--by", "Kari Ops"]
    one_line_error(bankctl(stack, "devices", "reopen", uid, "--reason", "BankID", *bad), "invalid_fingerprint")
    one_line_error(bankctl(stack, "devices", "reopen", "a/b", "--reason", "BankID", *shown), "is no customer id")
    reopened = bankctl(stack, "devices", "reopen", uid, "--reason", "BankID at the branch", *shown, "--json")
    assert reopened.returncode == 0, reopened.stderr
    assert json.loads(reopened.stdout)["revoked"] == [customer["device_key"]]
    listed = json.loads(bankctl(stack, "devices", "list", uid, "--json").stdout)
    assert listed["keys"] == [] and listed["revoked"] == [customer["device_key"]]
    assert listed["reopenedAt"] and listed["expectedKey"] == new.key_id
    one_line_error(bankctl(stack, "pay", uid, "15030000002", "10"), "payment rejected: sca_invalid")
    waiting = admin_db.collection("outbox").where(filter=FieldFilter("subject", "==", "customers.device_changed")).get()
    assert [d.id for d in waiting if d.to_dict()["body"]["uid"] == uid] == []


def test_load_prints_a_summary_and_audits(stack):
    result = bankctl(stack, "load", "--payments", "20", "--customers", "3", "--concurrency", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "load: 20 payments from 3 customers" in out
    assert "completed                20" in out
    assert "payments/s" in out and "p50" in out and "p95" in out and "p99" in out
    assert "ledger audit: ok" in out
    assert "setup (onboarding the customers, 3 at a time)" in out  # min(4, -c, -m) onboardings at once
    assert "setup: 3/3 customers onboarded" in result.stderr
    assert "load: 20/20 final" in result.stderr  # plain progress lines when stderr is not a terminal


def test_load_setup_onboards_at_most_four_customers_at_once(stack):
    result = bankctl(stack, "load", "-n", "12", "-m", "6", "-c", "40", "--external", "30", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert (summary["setupConcurrency"], summary["concurrency"]) == (4, 40)
    assert summary["final"] == 12 and "error" not in summary["statuses"], summary["statuses"]
    assert "Traceback" not in result.stderr and "setup: 6/6 customers onboarded" in result.stderr


def test_demo_seeds_customers_with_a_history_and_is_idempotent(stack):
    tag = uuid.uuid4().hex[:10]
    first = bankctl(stack, "demo", "--tag", tag, "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    made = json.loads(first.stdout)
    assert made["problems"] == []
    assert len(made["customers"]) == 3 and all(c["email"].endswith("@fjordbank.example") for c in made["customers"])
    assert {"salary", "rent", "bill with KID", "transfer", "card purchase", "streaming charge"} <= set(made["made"])
    assert made["made"]["scheduled payment"] == 1 and len(made["merchants"]) >= 8

    again = bankctl(stack, "demo", "--tag", tag)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "made: nothing new" in again.stdout and "password fjordbank-demo" in again.stdout

    ingrid = made["customers"][0]
    ledger = json.loads(bankctl(stack, "ledger", ingrid["email"], "--json").stdout)
    # the current account (account numbers are drawn at random: the savings account may sort first)
    current = next(a for a in ledger["accounts"] if a.get("type") != "savings")
    feed = current["transactions"]
    categories = {t.get("category") for t in feed}
    assert {"income", "bills", "groceries", "subscriptions"} <= categories, categories
    assert any(t.get("kid") for t in feed) and any(t.get("mcc") == "4899" for t in feed)
    assert bankctl(stack, "audit").returncode == 0

    # the months before this one: my economy has them, Netflix is found as a subscription, and
    # the figures equal a recomputation from the ledger
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.adapters.firestore import sync_client
    from fjordbank.service_layer.insights import economy_differences, stored_economy

    db = sync_client(stack.s.project_id)
    docs = FirestoreDocuments(db)
    assert made["made"]["past card purchase"] > 100
    wait_for(
        lambda: db.document(f"users/{ingrid['uid']}/subscriptions/m:netflix").get().exists,
        timeout=60,
        what="Netflix to be found as a subscription",
    )
    wait_for(lambda: economy_differences(docs, ingrid["uid"]) == [], timeout=60, what="my economy to catch up")
    assert len(stored_economy(docs, ingrid["uid"])) >= 6
    shown = bankctl(stack, "economy", ingrid["email"], "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["equalsRecomputation"] is True and len(report["months"]) == 6
    assert report["months"][-1]["change"]["previousMonth"] == report["months"][-2]["month"]


def test_migrate_puts_an_earlier_category_choice_on_its_history_and_is_recorded(stack, admin_db):
    # `up` ran the migrations; a choice made by an earlier version (its override only, no
    # history) is what a state brought back from an export holds
    up = admin_db.document("ops/migrations").get().to_dict() or {}
    assert up["economyChoices"]["doneAt"] is not None
    uid = f"legacy-{uuid.uuid4().hex[:12]}"
    admin_db.document(f"users/{uid}/categoryOverrides/m:netflix-com").set(
        {"category": "entertainment", "key": "m:netflix-com"}
    )
    # done already: not run again (each up and deploy streamed every choice again)
    skipped = bankctl(stack, "migrate")
    assert skipped.returncode == 0 and skipped.stdout.startswith("economyChoices: done before"), skipped
    assert admin_db.document(f"users/{uid}/merchantHistory/m:netflix-com").get().to_dict() is None
    first = bankctl(stack, "migrate", "--force", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["economyChoices"]["written"] >= 1
    history = admin_db.document(f"users/{uid}/merchantHistory/m:netflix-com").get().to_dict()
    assert history == {"key": "m:netflix-com", "charges": [], "chosenCategory": "entertainment"}
    record = admin_db.document("ops/migrations").get().to_dict()["economyChoices"]
    assert record["doneAt"] == up["economyChoices"]["doneAt"] and record["lastRunAt"] is not None
    again = bankctl(stack, "migrate", "--force")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("economyChoices: done, 0 documents written")
    assert admin_db.document(f"users/{uid}/merchantHistory/m:netflix-com").get().to_dict() == history


def test_migrate_gives_a_subscription_written_before_lapses_after_its_day(stack, admin_db):
    # a subscription that ended before the insights service wrote lapsesAfter gets no charge
    # to write it: it stayed counted for ever (found in review, 2026-12-07)
    uid = f"legacy-{uuid.uuid4().hex[:12]}"
    old = admin_db.document(f"users/{uid}/subscriptions/m:spotify")
    old.set({"interval": "monthly", "lastDate": "2024-12-15", "amount": 10900, "status": "active"})
    ran = bankctl(stack, "migrate", "--force", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["subscriptionLapses"]["written"] >= 1
    assert old.get().to_dict()["lapsesAfter"] == "2025-02-18"
