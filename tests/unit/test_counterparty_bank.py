"""The simulated other banks as the stack's `counterparty` component (simulators/counterparty/bank.py,
devstack/counterparty.py): each outbox file answered into the inbox by the rules and moved to
sent/, the chaos run's `counterparty` fault obeyed only when it names this component, an
unreadable file left alone, /healthz, and the component started, answering and stopped with
nothing left behind, in a state folder of its own (no running stack is touched)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devstack import counterparty as component
from devstack import settings as stack_settings
from devstack.healthz import serve_health
from devstack.stack import Stack
from devstack.supervisor import Supervisor, marked_pids
from fjordbank.adapters import faults
from fjordbank.adapters.faults import FaultSwitch
from fjordbank.domain import iso20022
from fjordbank.domain.norway import make_account_number
from simulators.counterparty import rules_from_json
from simulators.counterparty.answers import FAULT, MAX_HOLD
from simulators.counterparty.bank import NAME, CounterpartyBank, main

REPO = Path(__file__).resolve().parents[2]
RULES = json.loads((REPO / "emulators" / "counterparty.json").read_text())
OPEN = "15030000002"  # another bank's account the rules settle
CLOSED = RULES["closed_accounts"][0]  # answered AC04


def pain001(file_id: str, *accounts: str) -> bytes:
    transfers = tuple(
        iso20022.CreditTransfer(
            end_to_end_id=f"e2e-{file_id}-{i}",
            amount_minor=1_000 + i,
            debtor=iso20022.Party("Kari Nordmann", make_account_number("9710", "05", 3)),
            creditor=iso20022.Party("Mottaker", account),
            requested_execution_date=dt.date(2026, 11, 30),
        )
        for i, account in enumerate(accounts)
    )
    return iso20022.build_pain001(
        iso20022.PaymentBatch(file_id, dt.datetime.now(dt.UTC), "Fjordbank ASA", "FJORNOKK", transfers)
    )


def bank(tmp_path: Path, switch: FaultSwitch | None = None) -> CounterpartyBank:
    root = tmp_path / "clearing"
    return CounterpartyBank(root / "outbox", root / "inbox", root / "sent", rules_from_json(RULES), switch)


def test_each_outbox_file_is_answered_by_the_rules_into_the_inbox_and_moved_to_sent(tmp_path):
    b = bank(tmp_path)
    (b.outbox / "FJB1.xml").write_bytes(pain001("FJB1", OPEN, CLOSED))
    assert b.one_pass() == 1
    assert not list(b.outbox.iterdir()) and [p.name for p in b.sent.iterdir()] == ["FJB1.xml"]
    assert [p.name for p in b.inbox.iterdir()] == ["FJB1-status.xml"]
    report = iso20022.parse_pain002((b.inbox / "FJB1-status.xml").read_bytes())
    assert report.original_message_id == "FJB1" and report.message_id == "SIM1"
    assert [(s.status, s.reason_code) for s in report.statuses] == [("ACSC", None), ("RJCT", "AC04")]
    assert b.one_pass() == 0 and b.answered == 1  # nothing answered twice


def switch_with(tmp_path: Path, **entry) -> FaultSwitch:
    path = tmp_path / "chaos" / "faults.json"
    faults.write(path, {FAULT: {"until": time.time() + 60, "duplicate_rate": 1.0, **entry}})
    return FaultSwitch(path, NAME, poll_seconds=0)


def answers_after_passes(b: CounterpartyBank, files: int) -> list[str]:
    for i in range(files):
        (b.outbox / f"FJB{i}.xml").write_bytes(pain001(f"FJB{i}", OPEN))
    for _ in range(MAX_HOLD + 2):
        b.one_pass()
    return sorted(p.name for p in b.inbox.iterdir())


def test_the_chaos_runs_counterparty_fault_for_this_component_sends_answers_twice(tmp_path):
    b = bank(tmp_path, switch_with(tmp_path, services=[NAME], reorder=True))
    names = answers_after_passes(b, 3)
    assert names == sorted([f"FJB{i}-status.xml" for i in range(3)] + [f"FJB{i}-status-dup.xml" for i in range(3)])
    assert not list(b.outbox.iterdir())


def test_a_fault_entry_for_another_service_leaves_the_answers_alone(tmp_path):
    b = bank(tmp_path, switch_with(tmp_path, services=["clearing"]))
    assert answers_after_passes(b, 3) == [f"FJB{i}-status.xml" for i in range(3)]


def test_an_unreadable_outbox_file_stays_unanswered_and_the_others_are_answered(tmp_path, caplog):
    b = bank(tmp_path)
    (b.outbox / "FJB0.xml").write_bytes(b"<not-a-payment-file/>")
    (b.outbox / "FJB1.xml").write_bytes(pain001("FJB1", OPEN))
    b.one_pass()
    b.one_pass()
    assert [p.name for p in b.inbox.iterdir()] == ["FJB1-status.xml"]
    assert [p.name for p in b.outbox.iterdir()] == ["FJB0.xml"]
    said = [r.getMessage() for r in caplog.records if "not answered" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("outbox file not answered: FJB0.xml: not a pain.001")  # once


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_healthz_answers_once_passes_come(tmp_path):
    b = bank(tmp_path)
    server = serve_health(b, 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        assert get(url) == (503, {"ok": False, "answered": 0, "held": 0, "returns": 0})
        b.one_pass()
        assert get(url) == (200, {"ok": True, "answered": 0, "held": 0, "returns": 0})
    finally:
        server.shutdown()
        server.server_close()


def test_unusable_rules_stop_the_process_with_the_reason(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"closed_accounts": ["12345678901"]}')  # fails MOD11
    args = ["--outbox", str(tmp_path / "o"), "--inbox", str(tmp_path / "i"), "--rules", str(rules)]
    with pytest.raises(SystemExit, match=r"--rules .*rules.json: closed_accounts"):
        main(args)


# ---- the stack's component ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def stack(tmp_path) -> Stack:
    # a state folder and port of its own: a running stack's files and ports are not this test's
    env = {"FJB_STATE_DIR": str(tmp_path / "state"), "FJB_COUNTERPARTY_PORT": str(free_port())}
    return Stack(stack_settings.load(env), progress=lambda _m: None)


def test_the_component_answers_the_clearing_services_channel_with_the_chaos_faults_file(stack):
    names = [c.name for c in stack.components()]
    assert NAME in names and names.index(NAME) < names.index("clearing")
    comp = stack.component(NAME)
    channel = stack.s.clearing_dir
    assert comp.argv[1:3] == ["-m", "simulators.counterparty"]
    args = dict(zip(comp.argv[3::2], comp.argv[4::2], strict=True))
    assert args == {
        "--outbox": str(channel / "outbox"),
        "--inbox": str(channel / "inbox"),
        "--sent": str(channel / "sent"),
        "--rules": str(REPO / "emulators" / "counterparty.json"),
        "--faults-file": str(stack.faults_file),
        "--port": str(stack.s.counterparty_port),
    }
    clearing = stack.component("clearing")
    assert clearing.env["FJB_CLEARING_DIR"] == str(channel)  # the service's channel is the one answered
    assert "FJB_CLEARING_DIR" not in stack.component("ledger").env


def test_the_component_starts_answers_and_stops_leaving_no_process(stack):
    sup = Supervisor(stack.s.run_dir, stack.s.log_dir)
    comp = component.component(stack)
    _pid, reused = sup.start(comp, {"PATH": "/usr/bin:/bin"})
    try:
        assert not reused and comp.ready()
        outbox = stack.s.clearing_dir / "outbox"
        (outbox / "FJB7.xml").write_bytes(pain001("FJB7", OPEN))
        answer = stack.s.clearing_dir / "inbox" / "FJB7-status.xml"
        deadline = time.monotonic() + 20
        while not answer.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer.exists(), sup.log_file(NAME).read_text()
        assert (stack.s.clearing_dir / "sent" / "FJB7.xml").exists()
    finally:
        assert sup.stop(NAME, comp.stop_timeout)
    assert sup.pid(NAME) is None and marked_pids(sup.marker(NAME)) == []
    assert not comp.ready()


def test_a_return_the_bank_sends_is_taken_into_sent_and_never_answered(tmp_path):
    """A payment from another bank Fjordbank could not credit comes back as a pacs.004 in the
    outbox (``RET-...``): taken into sent/ and counted; never read as a pain.001."""
    from fjordbank.domain import pacs

    b = bank(tmp_path)
    returned = pacs.PaymentReturn(
        return_id="RT1",
        original_message_id="NICS1",
        original_end_to_end_id="E2E1",
        original_transaction_id="TX1",
        amount_minor=2_500,
        original_settlement_date=dt.date(2026, 11, 30),
        settlement_date=dt.date(2026, 11, 30),
        instructing_agent_bic="FJORNOKK",
        instructed_agent_bic="DNBANOKKXXX",
        reason_code="AC04",
    )
    name = "RET-in0123.xml"
    (b.outbox / name).write_bytes(pacs.build_pacs004(pacs.ReturnBatch("RT1", dt.datetime.now(dt.UTC), (returned,))))
    (b.outbox / "RET-bad.xml").write_bytes(b"<Document/>")
    b.one_pass()
    assert (b.sent / name).exists() and not (b.outbox / name).exists()
    assert list(b.inbox.iterdir()) == [] and b.returns == 1
    assert (b.outbox / "RET-bad.xml").exists() and "RET-bad.xml" in b.refused  # left, said once
