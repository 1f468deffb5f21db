"""Every reason code the code gives is in the catalogue (fjordbank/domain/reasons.py), the
catalogue lists none the code no longer gives, and the README's table is the catalogue's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fjordbank.domain import reasons

REPO = Path(__file__).resolve().parents[2]
SHAPE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$|^busy$|^returned$")
# Where reasons are made: the domain, the use cases, the adapters and the functions. The
# simulators and the runtime give none to a customer.
SOURCES = [
    *(p for p in (REPO / "fjordbank").rglob("*.py") if not {"simulators", "runtime"} & set(p.parts)),
    REPO / "functions" / "main.py",
]
SOURCES = [p for p in SOURCES if "functions/fjordbank" not in p.as_posix()]
# Snake-case strings passed to calls there that are not reasons.
NOT_REASONS = {
    "creditor_account",  # a field set in fjordbank.domain.pacs
    "fjb_clearing_files_set_aside_total",  # a metric's name (fjordbank.adapters.clearing_store)
    "entity_id",  # a screening match's field (fjordbank.domain.rescreening)
    "array_contains",  # a query operator (fjordbank.service_layer.ports.Where)
    "auth_time",  # an ID token's claim (functions/main.py, fjordbank.service_layer.sessions)
    "valid_after",  # SessionEnded's attribute, read by functions/main.py's _refused
    "blocked_accounts",  # a key of the counterparty rules
    "connect_timeout",  # NATS client options
    "max_reconnect_attempts",
    "max_outstanding_pings",
    "ping_interval",
    "reconnect_time_wait",
    "created_at",  # field names
    "account_id",  # (the events' fields, read from their wire form: fjordbank.domain.events)
    "from_account",  # (a payment request's, the due-payments job's lane key: fjordbank.service_layer.scheduled)
    "auth_id",
    "card_id",
    "merchant_name",
    "refund_id",
    "increment_id",
    "key_id",
    "changed_at",
    "authorized_amount",
    "original_payment_information_id",
    "retry_after",
    "http_response",  # attributes firebase_admin's errors carry (fjordbank.adapters.push)
    "status_code",
}
# Reasons made by an f-string or an expression the scan cannot read: onboarding's
# ``invalid_{field}`` and the ledger's default for a return without a code.
DYNAMIC = {
    "invalid_street",
    "invalid_city",
    "returned",
    # card_settlement: f"authorization_{record['status']}" (test_every_authorisation_state_refused_is_catalogued)
    "authorization_approved",
    "authorization_captured",
    "authorization_reversed",
    "authorization_declined",
}


def _strings(node: ast.AST) -> list[str]:
    """String constants a node passes on: a call's arguments, a return value, a class's
    ``code = ...`` and a dict's ``"reason": ...``."""
    values: list[ast.AST] = []
    if isinstance(node, ast.Call):
        values = [*node.args, *(k.value for k in node.keywords if k.arg in ("reason", "code"))]
    elif isinstance(node, ast.Return) and node.value is not None:
        values = [node.value]
    elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
        values = [node.value]
    elif isinstance(node, ast.Dict):
        values = [
            v
            for k, v in zip(node.keys, node.values, strict=True)
            if isinstance(k, ast.Constant) and k.value == "reason"
        ]
    return [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]


def codes_in_the_code() -> set[str]:
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            found |= {s for s in _strings(node) if SHAPE.match(s)}
    return found - NOT_REASONS


def test_every_reason_the_code_gives_is_in_the_catalogue():
    missing = codes_in_the_code() - set(reasons.BY_CODE) - reasons.INTERNAL
    assert not missing, f"add these to fjordbank/domain/reasons.py: {sorted(missing)}"


def test_the_catalogue_lists_no_reason_the_code_no_longer_gives():
    stale = set(reasons.BY_CODE) - codes_in_the_code() - DYNAMIC
    assert not stale, f"no longer given by the code: {sorted(stale)}"
    assert not set(reasons.BY_CODE) & reasons.INTERNAL


def test_each_reason_once_with_a_place_and_a_meaning():
    codes = [r.code for r in reasons.REASONS]
    assert len(codes) == len(set(codes))
    places = {reasons.CALLABLE, reasons.PAYMENT, reasons.CARD, reasons.ONBOARDING}
    for reason in reasons.REASONS:
        assert reason.where and set(reason.where) <= places and reason.meaning, reason


def test_the_readme_table_is_the_catalogue():
    readme = (REPO / "README.md").read_text()
    begin, end = "<!-- reasons: begin (python -m fjordbank.domain.reasons) -->\n", "<!-- reasons: end -->"
    assert begin in readme and end in readme, "the README's reasons table is missing"
    table = readme[readme.index(begin) + len(begin) : readme.index(end)]
    assert table == reasons.markdown_table(), "run: python -m fjordbank.domain.reasons and paste it into README.md"


def test_callable_statuses():
    assert reasons.callable_status("invalid_kid") == "INVALID_ARGUMENT"
    assert reasons.callable_status("unknown_account") == "NOT_FOUND"
    assert reasons.callable_status("rate_limited") == reasons.callable_status("busy") == "RESOURCE_EXHAUSTED"
    assert reasons.callable_status("account_closed") == "FAILED_PRECONDITION"


def test_every_authorisation_state_refused_is_catalogued():
    """card_settlement refuses with ``authorization_<the record's status>``: each state a
    record can be in is a catalogued reason (found in review, 2026-12-06: only expired was)."""
    from fjordbank.domain import card_authorization

    states = {"approved", "captured", "reversed", "declined", "expired"}
    assert states <= set(card_authorization.RECORD_STATUSES)
    assert {f"authorization_{s}" for s in card_authorization.RECORD_STATUSES} <= set(reasons.BY_CODE)
