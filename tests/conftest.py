"""Session fixtures: the real stack (emulators, 3-node NATS cluster, services) started once.

If `make up` already runs the stack, the tests use it and leave it running; otherwise the
fixture starts it and stops it in `finally`. Tests make unique ids instead of wiping data.
The stack's scheduler (devstack/scheduler.py) is paused for the session (Stack.jobs_by_hand):
the tests run each scheduled job at their own instants (`bankctl jobs run --now`), and a run
by the real clock in between would take their due payments and their outbox.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clientkit.admin import LedgerSession
from clientkit.auth import Auth
from devstack import settings as stack_settings
from devstack.stack import Stack
from tests.support.clients import FirestoreAsUser, Users, endpoints_of, new_account_number

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stack():
    """The running stack, or one started for this session. A stack that runs with a part
    down (a test that kills a service, another session's run) is completed with `up`
    (idempotent) and left running: only a stack this session started from nothing is
    stopped at the end, so one session never takes down a stack another one uses."""
    st = Stack(stack_settings.load(), progress=lambda msg: print(msg, flush=True))
    st.jobs_by_hand()
    rows = st.status()
    running = any(row.state == "ready" for row in rows if row.component in ("emulators", "nats-1"))
    try:
        if not all(row.state == "ready" for row in rows):
            st.up()
        for key, value in st.emulator_hosts().items():
            os.environ[key] = value
        yield st
    finally:
        save_rules_coverage(st)
        if not running:
            _STARTED.append(st)  # stopped when the session finishes (pytest_sessionfinish)


# A stack this session started, stopped in pytest_sessionfinish rather than in the fixture's
# teardown: that teardown runs inside the last test's teardown, under its 300 s timeout
# (pyproject.toml), and stopping a stack after the whole suite (the emulators export their
# data on exit, up to 120 s) once took longer than that, failing a run whose tests had all
# passed.
_STARTED: list[Stack] = []


def pytest_sessionfinish(session, exitstatus):
    while _STARTED:
        _STARTED.pop().down()


def save_rules_coverage(st) -> None:
    """The emulator's rule-coverage report of this session, kept as a test artifact."""
    import requests

    base = f"http://127.0.0.1:{st.s.emulator_ports['firestore']}/emulator/v1/projects/{st.s.project_id}"
    out = REPO / "artifacts"
    try:
        html = requests.get(f"{base}:ruleCoverage.html", timeout=30)
        data = requests.get(f"{base}:ruleCoverage", timeout=30)
    except requests.RequestException:
        return
    if html.ok:
        out.mkdir(exist_ok=True)
        (out / "firestore-rules-coverage.html").write_text(html.text)
    if data.ok:
        out.mkdir(exist_ok=True)
        (out / "firestore-rules-coverage.json").write_text(data.text)


@pytest.fixture(scope="session")
def admin_db(stack):
    from fjordbank.adapters.firestore import sync_client

    return sync_client(stack.s.project_id)


@pytest.fixture(scope="session")
def auth(stack):
    return Users(Auth(endpoints_of(stack)))


@pytest.fixture(scope="session")
def as_user(stack):
    host = endpoints_of(stack).firestore_host

    def make(id_token: str | None) -> FirestoreAsUser:
        return FirestoreAsUser(host, stack.s.project_id, id_token)

    return make


@pytest.fixture(scope="session")
def ledger_admin(stack):
    """The ledger's admin path (open accounts, deposits; ``run`` awaits on its ``ledger``),
    driven from sync tests: the client kit's LedgerSession."""
    admin = LedgerSession(stack.s.project_id, endpoints_of(stack).firestore_host)
    yield admin
    admin.close()


@pytest.fixture
def audit(admin_db):
    """Call after a scenario: the ledger invariants must hold."""
    from fjordbank.adapters.documents import FirestoreDocuments
    from fjordbank.service_layer.audit import audit_ledger

    def check():
        report = audit_ledger(FirestoreDocuments(admin_db))
        assert report.ok, report.render()
        return report

    return check


@pytest.fixture
def broken_account(admin_db):
    """``make(owner_uid)``: a customer account document without its amounts (the ledger
    fails on every delivery touching it), and ``mend(number)``, what an operator writes. A
    test that fails before it mends the account leaves it mended at teardown: left
    unreadable, it was a finding of every later test's audit, one failure shown as dozens."""
    made: list[str] = []

    def make(owner_uid: str) -> str:
        number = new_account_number()
        fields = {"accountId": number, "ownerUid": owner_uid, "status": "open", "currency": "NOK", "kind": "customer"}
        admin_db.document(f"accounts/{number}").set(fields)
        made.append(number)
        return number

    def mend(number: str) -> None:
        admin_db.document(f"accounts/{number}").update({"balance": 0, "held": 0, "available": 0})

    yield make, mend
    for number in made:
        if "balance" not in (admin_db.document(f"accounts/{number}").get().to_dict() or {"balance": 0}):
            mend(number)
