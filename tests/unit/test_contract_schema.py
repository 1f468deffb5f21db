"""The shared contract file and the backend's validator agree (the app validates with the
file, the backend with parse_request: a body one accepts the other must not refuse for
a reason the schema could have seen)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.domain.payments import PaymentRejected, parse_request

SCHEMA = json.loads((Path(__file__).parents[2] / "contracts" / "payment_request.v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
TODAY = date(2026, 11, 26)
# Reasons that need more than the schema can know (check digits, calendar, today).
SEMANTIC = {
    "invalid_from_account",
    "invalid_to_account",
    "invalid_kid",
    "invalid_due_date",
    "due_date_in_past",
    "same_account",
    "invalid_message",
}

BASE = {"v": 1, "fromAccount": "86011117947", "toAccount": "12345678903", "amount": 100, "currency": "NOK"}


def test_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("extra", [{}, {"message": "Husleie"}, {"kid": "1234567890003"}, {"dueDate": "2026-12-01"}])
def test_valid_bodies_pass_both(extra):
    body = {**BASE, **extra}
    try:
        parse_request(body, request_id="req-12345678", today=TODAY)
        backend_ok = True
    except PaymentRejected as exc:
        backend_ok = exc.code in SEMANTIC
    assert backend_ok
    assert VALIDATOR.is_valid(body)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**9),
    st.text(max_size=30),
    st.sampled_from(["86011117947", "12345678903", "NOK", "1234567890003", "2026-12-01"]),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*BASE, "message", "kid", "dueDate", "extra"]), values, max_size=8))
def test_schema_refusals_are_backend_refusals(body):
    """Whatever the schema refuses, the backend refuses too (never looser than the contract)."""
    if VALIDATOR.is_valid(body):
        return
    with pytest.raises(PaymentRejected):
        parse_request(body, request_id="req-12345678", today=TODAY)
