"""Unit and property tests for fjordbank.domain.payments (contract v1, lifecycle, events).

Account numbers and KIDs used below are built with the norway helpers and the literals
are asserted against them, so every "valid" example is valid by construction.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank import topology
from fjordbank.domain.iso20022 import is_payment_text_char
from fjordbank.domain.norway import (
    account_check_digit,
    is_valid_account_number,
    is_valid_kid,
    kid_mod10_check,
    kid_mod11_check,
    make_account_number,
)
from fjordbank.domain.payments import (
    BODY_FIELDS,
    CURRENCY,
    MAX_AMOUNT_MINOR,
    MAX_MESSAGE_LENGTH,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    STATUS_RANK,
    TERMINAL,
    PaymentEvent,
    PaymentRejected,
    PaymentRequest,
    PaymentRequested,
    body_hash,
    may_advance,
    parse_request,
    payment_id_for,
    projection_update,
)
from fjordbank.domain.standing_orders import parse_terms

TODAY = date(2025, 6, 2)
REQUEST_ID = "req_0001-abc"

FROM = make_account_number("1234", "56", 7890)  # 12345678903
TO = make_account_number("1234", "56", 7891)  # 12345678911
assert (FROM, TO) == ("12345678903", "12345678911")

KID_BODY = "1234567"
VALID_KID = KID_BODY + kid_mod10_check(KID_BODY)
assert VALID_KID == "12345674"
# a check character that neither MOD10 nor MOD11 accepts
_BAD_CHECK = next(c for c in "0123456789" if c not in (kid_mod10_check(KID_BODY), kid_mod11_check(KID_BODY)))
INVALID_KID = KID_BODY + _BAD_CHECK

# first 10 digits whose MOD11 remainder is 1: no check digit exists
_IMPOSSIBLE_FIRST10 = next(f"1234560{n:03d}" for n in range(1000) if account_check_digit(f"1234560{n:03d}") is None)


def body(**over) -> dict:
    data = {"v": 1, "fromAccount": FROM, "toAccount": TO, "amount": 12_500, "currency": "NOK"}
    for key, value in over.items():
        if value is DELETE:
            data.pop(key, None)
        else:
            data[key] = value
    return data


DELETE = object()


def parse(data: dict, *, request_id: str = REQUEST_ID) -> PaymentRequest:
    return parse_request(data, request_id=request_id, today=TODAY)


def rejection(data: dict, **kwargs) -> str:
    with pytest.raises(PaymentRejected) as excinfo:
        parse(data, **kwargs)
    return excinfo.value.code


# ------------------------------------------------------------- parse_request: accepts


def test_minimal_valid_body_is_accepted_with_defaults():
    request = parse(body())
    assert request == PaymentRequest(
        from_account=FROM, to_account=TO, amount=12_500, currency="NOK", message=None, kid=None, due_date=TODAY
    )


def test_body_with_message_and_due_date_is_accepted():
    request = parse(body(message="Husleie juni", dueDate="2025-06-30"))
    assert request.message == "Husleie juni"
    assert request.kid is None
    assert request.due_date == date(2025, 6, 30)


def test_body_with_kid_and_due_date_today_is_accepted():
    request = parse(body(kid=VALID_KID, dueDate=TODAY.isoformat()))
    assert request.kid == VALID_KID
    assert request.message is None
    assert request.due_date == TODAY


def test_mod11_kid_is_accepted():
    kid = KID_BODY[:-1] + "9"
    kid = kid + kid_mod11_check(kid)
    assert parse(body(kid=kid)).kid == kid


def test_explicit_null_optionals_mean_absent():
    request = parse(body(message=None, kid=None, dueDate=None))
    assert (request.message, request.kid, request.due_date) == (None, None, TODAY)


def test_message_of_exactly_max_length_is_accepted():
    assert parse(body(message="x" * MAX_MESSAGE_LENGTH)).message == "x" * MAX_MESSAGE_LENGTH


def test_amount_at_the_limit_is_accepted():
    assert parse(body(amount=MAX_AMOUNT_MINOR)).amount == MAX_AMOUNT_MINOR


def test_amount_of_one_ore_is_accepted():
    assert parse(body(amount=1)).amount == 1


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("1234.56.78903", FROM),
        ("1234 56 78903", FROM),
        ("  12345678903  ", FROM),
        ("1234\u00a056\u00a078903", FROM),
    ],
)
def test_account_numbers_with_dots_or_spaces_are_normalised(written, normalised):
    request = parse(body(fromAccount=written))
    assert request.from_account == normalised
    request = parse(body(fromAccount=TO, toAccount=written))
    assert request.to_account == normalised


@pytest.mark.parametrize("field", ["status", "statusRank", "paymentId", "bodyHash", "reason"])
def test_fields_only_the_backend_writes_make_a_request_invalid(field):
    assert rejection(body(**{field: "requested"})) == "unknown_field"


# ------------------------------------------------------------- parse_request: refusals

REFUSALS = [
    # unknown / missing fields
    ("unknown_field", body(extra=1)),
    ("unknown_field", body(Amount=1)),
    ("unknown_field", body(from_account=FROM)),
    *[("missing_field", body(**{field: DELETE})) for field in sorted(REQUIRED_FIELDS)],
    ("missing_field", {}),
    # version
    ("unsupported_version", body(v=2)),
    ("unsupported_version", body(v=0)),
    ("unsupported_version", body(v=True)),
    ("unsupported_version", body(v="1")),
    ("unsupported_version", body(v=1.0)),
    ("unsupported_version", body(v=None)),
    # amount
    ("invalid_amount", body(amount=0)),
    ("invalid_amount", body(amount=-1)),
    ("invalid_amount", body(amount=-12_500)),
    ("invalid_amount", body(amount=10.0)),
    ("invalid_amount", body(amount=10.5)),
    ("invalid_amount", body(amount="100")),
    ("invalid_amount", body(amount=True)),
    ("invalid_amount", body(amount=None)),
    ("invalid_amount", body(amount=[100])),
    ("amount_over_limit", body(amount=MAX_AMOUNT_MINOR + 1)),
    ("amount_over_limit", body(amount=10**30)),
    # currency
    ("unsupported_currency", body(currency="EUR")),
    ("unsupported_currency", body(currency="nok")),
    ("unsupported_currency", body(currency=" NOK")),
    ("unsupported_currency", body(currency=None)),
    # accounts
    ("invalid_from_account", body(fromAccount="12345678904")),
    ("invalid_from_account", body(fromAccount=_IMPOSSIBLE_FIRST10 + "0")),
    ("invalid_from_account", body(fromAccount="1234567890")),
    ("invalid_from_account", body(fromAccount="123456789031")),
    ("invalid_from_account", body(fromAccount="1234567890A")),
    ("invalid_from_account", body(fromAccount="NO9312345678903")),
    ("invalid_from_account", body(fromAccount="")),
    ("invalid_from_account", body(fromAccount=12345678903)),
    ("invalid_from_account", body(fromAccount=None)),
    ("invalid_from_account", body(fromAccount=["12345678903"])),
    ("invalid_from_account", body(fromAccount="12.3456.78903")),
    ("invalid_to_account", body(toAccount="12345678912")),
    ("invalid_to_account", body(toAccount="1234567891")),
    ("invalid_to_account", body(toAccount="1234567891x")),
    ("invalid_to_account", body(toAccount=12345678911)),
    ("invalid_to_account", body(toAccount={"n": TO})),
    ("same_account", body(toAccount=FROM)),
    ("same_account", body(toAccount="1234.56.78903")),
    ("same_account", body(fromAccount="1234 56 78903", toAccount="1234.56.78903")),
    # message / kid
    ("kid_and_message", body(kid=VALID_KID, message="hei")),
    ("kid_and_message", body(kid=INVALID_KID, message="")),
    ("invalid_kid", body(kid=INVALID_KID)),
    ("invalid_kid", body(kid="1")),
    ("invalid_kid", body(kid="")),
    ("invalid_kid", body(kid="1234567A")),
    ("invalid_kid", body(kid="1" * 26)),
    ("invalid_kid", body(kid=12345674)),
    ("invalid_kid", body(kid=["12345674"])),
    ("message_too_long", body(message="x" * (MAX_MESSAGE_LENGTH + 1))),
    ("message_too_long", body(message="æ" * (MAX_MESSAGE_LENGTH + 1))),
    ("invalid_message", body(message="")),
    ("invalid_message", body(message="   ")),
    ("invalid_message", body(message=123)),
    ("invalid_message", body(message=["hei"])),
    ("invalid_message", body(message="Husleie mars\nleil. 2B")),  # a file to another bank cannot carry it
    ("invalid_message", body(message="Husleie\tmars")),
    ("invalid_message", body(message="Husleie \ufffe")),
    ("invalid_message", body(message=True)),
    # due date
    ("invalid_due_date", body(dueDate="2025-13-01")),
    ("invalid_due_date", body(dueDate="2025-02-30")),
    ("invalid_due_date", body(dueDate="02.06.2025")),
    ("invalid_due_date", body(dueDate="2025-6-2")),
    ("invalid_due_date", body(dueDate="")),
    ("invalid_due_date", body(dueDate="2025-06-02T00:00:00")),
    ("invalid_due_date", body(dueDate=20250602)),
    ("invalid_due_date", body(dueDate={"seconds": 0})),
    ("due_date_in_past", body(dueDate=(TODAY - timedelta(days=1)).isoformat())),
    ("due_date_in_past", body(dueDate="1999-01-01")),
    ("due_date_too_far", body(dueDate=(TODAY + timedelta(days=367)).isoformat())),
    ("due_date_too_far", body(dueDate="9999-12-31")),  # its booking day would be past year 9999
    # text a bank's pain.001 may not carry (ISO 8859-15 only), or that disguises what it says
    ("invalid_message", body(message="Husleie \U0001f600 desember")),
    ("invalid_message", body(message="\u623f\u79df")),
    ("invalid_message", body(message="abc\u202edcba")),  # a right-to-left override
    ("invalid_message", body(message="linje1\u2028linje2")),
    ("invalid_message", body(message="Hus\u200bleie")),  # zero width
    ("invalid_message", body(message="10\u2075 kr")),  # a superscript 5: flattened it reads 105 kr
    ("invalid_message", body(message="\u2460\u2461")),  # circled digits
    ("invalid_payee_name", body(payeeName="Ola \U0001f3e0 Nordmann")),
    ("invalid_payee_name", body(payeeName="Ola\u00adNordmann")),  # a soft hyphen: a format character
]


def test_latin_text_with_norwegian_letters_is_taken():
    request = parse(body(message="Husleie for desember, leil. 2B: 12 500 € å ø æ Å Ø Æ é ü", payeeName="Bjørn Ærø"))
    assert request.message.startswith("Husleie") and request.payee_name == "Bjørn Ærø"
    assert parse(body(dueDate=(TODAY + timedelta(days=366)).isoformat())).due_date == TODAY + timedelta(days=366)


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("Kari’s leie", "Kari's leie"),  # iOS's smart apostrophe
        ("Husleie – mai", "Husleie - mai"),
        ("“Leie” „Juni“", '"Leie" "Juni"'),
        ("½ leie…", "1/2 leie..."),
        ("Čáhppes Đuolbba ŊŦ", "Cáhppes Duolbba NT"),  # Sami: Č Đ Ŋ Ŧ (á is Latin-9)
        ("ﬁne Ａ", "fine A"),  # a ligature, a full-width letter
        ("Husleie 1\u00bd mnd, 2\u00be", "Husleie 1 1/2 mnd, 2 3/4"),  # not 11/2, 23/4
        ("A\u030ase \u212b", "\u00c5se \u00c5"),  # a letter and its mark apart (macOS), the Angstrom sign
    ],
)
def test_text_a_phone_keyboard_types_is_sent_in_its_latin_form(typed, sent):
    """Smart punctuation (iOS's default) and Sami letters were refused as invalid_message:
    they are written as a bank's conversion to the Latin set writes them."""
    assert parse(body(message=typed, payeeName=typed)).message == sent
    assert parse(body(payeeName=typed)).payee_name == sent


def test_the_length_is_that_of_the_text_sent():
    assert parse(body(message="a" * 137 + "…")).message == "a" * 137 + "..."
    assert rejection(body(message="a" * 138 + "…")) == "message_too_long"


@pytest.mark.parametrize(
    ("code", "data"),
    REFUSALS,
    ids=[f"{code}-{i}" for i, (code, _) in enumerate(REFUSALS)],
)
def test_invalid_body_is_refused_with_exact_reason(code, data):
    assert rejection(data) == code


@pytest.mark.parametrize(
    "request_id",
    ["short", "", "abcdefg", "x" * 65, "abc/defgh", "abc.defgh", "abc defgh", "abcdéfgh", "../../etc"],
)
def test_invalid_request_id_is_refused(request_id):
    assert rejection(body(), request_id=request_id) == "invalid_request_id"


@pytest.mark.parametrize("request_id", ["abcdefgh", "x" * 64, "A-b_C-d_1234", "01234567"])
def test_valid_request_id_is_accepted(request_id):
    parse(body(), request_id=request_id)


def test_request_id_with_trailing_newline_is_refused():
    assert rejection(body(), request_id="abcdefgh\n") == "invalid_request_id"


@pytest.mark.parametrize("due", ["20250630", "2025-W27-1"])
def test_due_date_in_other_iso_forms_is_refused(due):
    assert rejection(body(dueDate=due)) == "invalid_due_date"


def test_accepted_kid_is_never_passed_on_with_whitespace():
    try:
        request = parse(body(kid=f" {VALID_KID} "))
    except PaymentRejected as exc:
        assert exc.code == "invalid_kid"
    else:
        assert request.kid == VALID_KID


def test_non_dict_body_is_refused_as_malformed():
    for data in ([], "body", None, 1):
        with pytest.raises(PaymentRejected) as excinfo:
            parse_request(data, request_id=REQUEST_ID, today=TODAY)
        assert excinfo.value.code == "malformed_request"


def test_rejection_messages_do_not_echo_full_account_numbers():
    for data in (body(fromAccount="12345678904"), body(toAccount="12345678912")):
        with pytest.raises(PaymentRejected) as excinfo:
            parse(data)
        assert "12345678904" not in excinfo.value.message
        assert "12345678912" not in excinfo.value.message


# --------------------------------------------------------------- parse_request fuzz

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(sorted(BODY_FIELDS | {"status", "extra"})) | st.text(max_size=10)

digits = st.text(alphabet="0123456789", max_size=14)
account_like = st.text(alphabet="0123456789 .\u00a0", max_size=16)
plausible = {
    "v": st.sampled_from([1, 0, 2, True, "1", 1.0]),
    "fromAccount": st.sampled_from([FROM, TO, "1234.56.78903"]) | digits | account_like,
    "toAccount": st.sampled_from([TO, FROM, "1234 56 78911"]) | digits | account_like,
    "amount": st.integers(-10, MAX_AMOUNT_MINOR + 10) | st.sampled_from([1.0, True, "1"]),
    "currency": st.sampled_from(["NOK", "EUR", "nok"]),
    "message": st.none() | st.text(max_size=150),
    "kid": st.none() | st.sampled_from([VALID_KID, INVALID_KID]) | st.text(alphabet="0123456789-", max_size=26),
    "dueDate": st.none() | st.dates().map(date.isoformat) | st.text(alphabet="0123456789-W:T", max_size=12),
    "sca": st.none()
    | st.fixed_dictionaries({"keyId": st.sampled_from(["phone-key-1", "x", ""]), "signature": st.text(max_size=210)})
    | st.dictionaries(st.sampled_from(["keyId", "signature", "other"]), st.text(max_size=10)),
    "payeeName": st.none() | st.sampled_from(["Oslo Kommune", " ", "A" * 71, "Tab\there"]) | st.text(max_size=80),
}


def _check_accepted(request: PaymentRequest) -> None:
    """What an accepted request promises, whatever the input was."""
    assert type(request.amount) is int and 0 < request.amount <= MAX_AMOUNT_MINOR
    assert request.currency == CURRENCY
    for account in (request.from_account, request.to_account):
        assert re.fullmatch(r"[0-9]{11}", account) and is_valid_account_number(account)
    assert request.from_account != request.to_account
    assert request.message is None or request.kid is None
    if request.message is not None:
        assert isinstance(request.message, str) and request.message.strip()
        assert len(request.message) <= MAX_MESSAGE_LENGTH
    assert isinstance(request.due_date, date) and TODAY <= request.due_date <= TODAY + timedelta(days=366)
    if request.payee_name is not None:
        assert 0 < len(request.payee_name) <= 70 and request.payee_name.isprintable()
        assert all(map(is_payment_text_char, request.payee_name))
        assert request.payee_name == request.payee_name.strip()
    if request.message is not None:
        assert all(map(is_payment_text_char, request.message))


@settings(max_examples=500, deadline=None)
@given(data=st.dictionaries(field_names, json_values, max_size=10))
def test_parse_request_raises_only_payment_rejected_for_arbitrary_json_dicts(data):
    try:
        request = parse(data)
    except PaymentRejected as exc:
        assert isinstance(exc.code, str) and exc.code
    else:
        _check_accepted(request)


@st.composite
def near_valid_bodies(draw):
    """A valid body with up to three fields replaced (plausibly or arbitrarily) or removed."""
    data = dict(draw(st.sampled_from([body(), body(message="Husleie"), body(kid=VALID_KID, dueDate="2025-06-30")])))
    for name in draw(st.lists(st.sampled_from(sorted(BODY_FIELDS)), max_size=3, unique=True)):
        how = draw(st.sampled_from(["plausible", "plausible", "arbitrary", "remove"]))
        if how == "remove":
            data.pop(name, None)
        else:
            data[name] = draw(plausible[name] if how == "plausible" else json_values)
    return data


@settings(max_examples=1000, deadline=None)
@given(data=near_valid_bodies())
def test_parse_request_raises_only_payment_rejected_for_near_valid_bodies(data):
    try:
        request = parse(data)
    except PaymentRejected as exc:
        assert isinstance(exc.code, str) and exc.code
    else:
        _check_accepted(request)


@settings(max_examples=300, deadline=None)
@given(request_id=st.text(max_size=70))
def test_parse_request_raises_only_payment_rejected_for_arbitrary_request_ids(request_id):
    try:
        parse(body(), request_id=request_id)
    except PaymentRejected as exc:
        assert exc.code == "invalid_request_id"


# ------------------------------------------------------------------- body_hash

FULL_BODY = body(message="Husleie", dueDate="2025-06-30")


def test_body_hash_is_a_sha256_hex_digest():
    assert re.fullmatch(r"[0-9a-f]{64}", body_hash(FULL_BODY))


def test_body_hash_ignores_backend_added_fields():
    processed = {
        **FULL_BODY,
        "status": "completed",
        "statusRank": 9,
        "paymentId": "uid_req",
        "bodyHash": "x",
        "reason": {"code": "c", "message": "m"},
        "timeline": [1, 2],
    }
    assert body_hash(processed) == body_hash(FULL_BODY)


def test_body_hash_ignores_key_order():
    reversed_body = dict(reversed(list(FULL_BODY.items())))
    assert list(reversed_body) != list(FULL_BODY)
    assert body_hash(reversed_body) == body_hash(FULL_BODY)


CHANGES = [
    ("v", 2),
    ("v", True),
    ("fromAccount", "1234.56.78903"),
    ("toAccount", FROM),
    ("amount", 12_501),
    ("amount", 12_500.0),
    ("currency", "EUR"),
    ("message", "Husleie!"),
    ("message", None),
    ("dueDate", "2025-07-01"),
    ("kid", VALID_KID),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[f"{f}={v!r}" for f, v in CHANGES])
def test_body_hash_differs_when_a_body_field_differs(field, value):
    changed = {**FULL_BODY, field: value}  # 1, 1.0 and True are different documents
    assert body_hash(changed) != body_hash(FULL_BODY)


@pytest.mark.parametrize("field", sorted(BODY_FIELDS & set(FULL_BODY)))
def test_body_hash_differs_when_a_body_field_is_removed(field):
    reduced = {k: v for k, v in FULL_BODY.items() if k != field}
    assert body_hash(reduced) != body_hash(FULL_BODY)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(sorted(BODY_FIELDS)),
    value=json_values,
    noise=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in BODY_FIELDS), json_values, max_size=3
    ),
)
def test_body_hash_depends_on_body_fields_only(field, value, noise):
    assert body_hash({**FULL_BODY, **noise}) == body_hash(FULL_BODY)
    old = FULL_BODY.get(field, DELETE)
    same = type(value) is type(old) and value == old  # 1, 1.0 and True are different documents
    changed = {**FULL_BODY, field: value}
    assert (body_hash(changed) == body_hash(FULL_BODY)) is same


# ------------------------------------------------------------------ payment ids


def test_payment_id_is_stable_per_user_and_request():
    assert payment_id_for("uid1", "req-00001") == payment_id_for("uid1", "req-00001")
    assert payment_id_for("uid1", "req-00001") != payment_id_for("uid2", "req-00001")
    assert payment_id_for("uid1", "req-00001") != payment_id_for("uid1", "req-00002")


def test_payment_id_is_unique_across_users_whose_uid_contains_underscore():
    assert payment_id_for("a_b", "cdefghij") != payment_id_for("a", "b_cdefghij")


# ----------------------------------------------------- lifecycle: may_advance

# The lifecycle's non-terminal states in order; states in one group are alternatives.
STAGES = [
    ["received"],
    ["scheduled"],
    ["requested"],
    ["approved"],
    ["reserved"],
    ["submitted"],
    ["settled", "returned"],
]
ORDER = [s for stage in STAGES for s in stage]
STAGE = {s: i for i, stage in enumerate(STAGES) for s in stage}


def test_status_ranks_follow_the_lifecycle_and_terminals_share_the_top_rank():
    for state in ORDER:
        assert STATUS_RANK[state] == STATUS_RANK[STAGES[STAGE[state]][0]]
    assert [STATUS_RANK[stage[0]] for stage in STAGES] == sorted({STATUS_RANK[s] for s in ORDER})
    assert TERMINAL == {"completed", "failed", "rejected", "cancelled"}
    assert {STATUS_RANK[s] for s in TERMINAL} == {max(STATUS_RANK.values())}
    assert set(STATUS_RANK) == set(ORDER) | TERMINAL


@pytest.mark.parametrize("new", sorted(STATUS_RANK))
def test_anything_may_be_shown_on_a_document_without_status(new):
    assert may_advance(None, new) is True


@pytest.mark.parametrize("current", sorted(TERMINAL))
@pytest.mark.parametrize("new", sorted(STATUS_RANK))
def test_nothing_moves_a_request_out_of_a_terminal_state(current, new):
    assert may_advance(current, new) is False


@pytest.mark.parametrize("current", ORDER)
@pytest.mark.parametrize("new", sorted(STATUS_RANK))
def test_non_terminal_request_moves_only_forward(current, new):
    expected = True if new in TERMINAL else STAGE[new] > STAGE[current]
    assert may_advance(current, new) is expected


def test_same_state_is_not_an_advance():
    for state in STATUS_RANK:
        assert may_advance(state, state) is False


# ------------------------------------------------ lifecycle: projection_update


def test_projection_update_for_missing_document_is_none():
    assert projection_update(None, "completed") is None


def test_projection_update_moves_forward_with_rank():
    assert projection_update({"status": "requested"}, "completed") == {"status": "completed", "statusRank": 9}


def test_projection_update_on_fresh_document_without_status():
    assert projection_update({"amount": 1}, "requested") == {
        "status": "requested",
        "statusRank": STATUS_RANK["requested"],
    }


def test_projection_update_carries_reason_and_extra_fields():
    update = projection_update(
        {"status": "requested"}, "failed", reason="insufficient_funds", message="too low", extra={"paymentId": "p"}
    )
    assert update == {
        "status": "failed",
        "statusRank": 9,
        "reason": {"code": "insufficient_funds", "message": "too low"},
        "paymentId": "p",
    }


def test_projection_update_clears_the_waiting_reason_of_received_only():
    pending = {"status": "received", "reason": {"code": "publish_pending", "message": "m"}}
    assert projection_update(pending, "requested")["reason"] is None
    assert projection_update(pending, "rejected", reason="invalid_kid")["reason"]["code"] == "invalid_kid"
    returned = {"status": "returned", "reason": {"code": "account_closed", "message": "m"}}
    assert "reason" not in projection_update(returned, "completed")  # a reason that explains stays


def test_projection_update_reason_message_defaults_to_code():
    update = projection_update({"status": "received"}, "rejected", reason="invalid_kid")
    assert update["reason"] == {"code": "invalid_kid", "message": "invalid_kid"}


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("requested", "requested"),
        ("settled", "requested"),
        ("completed", "failed"),
        ("failed", "completed"),
        ("rejected", "requested"),
        ("completed", "completed"),
    ],
)
def test_projection_update_is_none_when_document_shows_this_or_a_later_state(current, new):
    assert projection_update({"status": current}, new, reason="x") is None


@given(st.lists(st.sampled_from(sorted(STATUS_RANK)), max_size=12))
def test_projection_never_goes_backwards_whatever_the_delivery_order(statuses):
    doc: dict = {}
    history = []
    for status in statuses:
        update = projection_update(doc, status)
        if update is not None:
            doc.update(update)
            history.append(doc["statusRank"])
    assert history == sorted(history)
    assert len(history) == len(set(history))
    terminals = [s for s in statuses if s in TERMINAL]
    if terminals:
        assert doc["status"] == terminals[0]


# --------------------------------------------------------------------- events


def event(**over) -> PaymentRequested:
    data = dict(
        payment_id="uid1_req-0001",
        uid="uid1",
        request_id="req-0001",
        kind="internal",
        from_account=FROM,
        to_account=TO,
        amount=12_500,
        currency="NOK",
        message="Husleie",
        kid=None,
        due_date="2025-06-02",
        body_hash="0" * 64,
        requested_at="2025-06-02T10:00:00+00:00",
    )
    data.update(over)
    return PaymentRequested(**data)


@pytest.mark.parametrize(
    ("due", "requested_at", "booked"),
    [
        # an immediate payment is made at once, on a Saturday too
        ("2027-05-01", "2027-05-01T09:00:00+00:00", "2027-05-01"),
        # one scheduled in the app for Saturday 1 May is made on Monday 3 May
        ("2027-05-01", "2027-04-20T09:00:00+00:00", "2027-05-03"),
        # rent due Thursday 31 December is made on Monday 4 January: January's
        ("2026-12-31", "2026-12-01T09:00:00+00:00", "2027-01-04"),
        # a standing order's payment, requested by the job on the banking day it pays
        ("2027-05-01", "2027-05-03T04:15:00+00:00", "2027-05-03"),
        # a day in Norway: 23:30 UTC on 31 December is 1 January there
        ("2027-01-01", "2026-12-31T23:30:00Z", "2027-01-01"),
        # a requested_at of another shape: the due date, as before
        ("2027-05-01", "yesterday", "2027-05-01"),
    ],
)
def test_a_payment_is_booked_on_the_day_it_is_made(due: str, requested_at: str, booked: str) -> None:
    """The feed's date and the month in my economy: a scheduled payment made on the next
    banking day was shown and booked on its due date (rent due 31 December in December)."""
    assert event(due_date=due, requested_at=requested_at).booking_date == booked


def test_payment_requested_round_trips_through_json():
    e = event()
    data = e.to_json()
    assert data["v"] == 3  # the payment event's contract (payments.EVENT_VERSION)
    assert set(data) == {f.name for f in dataclasses.fields(PaymentRequested)}
    assert PaymentRequested.from_json(data) == e


@given(
    amount=st.integers(1, MAX_AMOUNT_MINOR),
    message=st.none() | st.text(max_size=140),
    kid=st.none() | st.text(max_size=25),
)
def test_payment_requested_round_trip_property(amount, message, kid):
    e = event(amount=amount, message=message, kid=kid)
    assert PaymentRequested.from_json(e.to_json()) == e


def test_payment_requested_from_json_refuses_unknown_fields():
    data = {**event().to_json(), "admin": True}
    with pytest.raises(PaymentRejected) as excinfo:
        PaymentRequested.from_json(data)
    assert excinfo.value.code == "malformed_event"


@pytest.mark.parametrize("amount", [0, -1, 10.0, 1.5, True, "100", None], ids=repr)
def test_payment_requested_from_json_refuses_non_positive_or_non_int_amounts(amount):
    data = {**event().to_json(), "amount": amount}
    with pytest.raises(PaymentRejected) as excinfo:
        PaymentRequested.from_json(data)
    assert excinfo.value.code == "malformed_event"


@pytest.mark.parametrize(
    "change",
    [
        {"amount": MAX_AMOUNT_MINOR + 1},
        {"amount": 10**16},
        {"from_account": 97100000028},
        {"to_account": "1234"},
        {"to_account": None},
        {"uid": 5},
        {"message": ["x"]},
        {"payee_name": {"a": 1}},
        {"due_date": "2026-13-45"},
        {"due_date": "tomorrow"},
        {"due_date": None},
    ],
    ids=repr,
)
def test_payment_requested_from_json_refuses_fields_no_consumer_can_read(change):
    """A message no consumer can process is refused when decoded (and dead-lettered at
    once), not failed in every batch until its deliveries run out."""
    with pytest.raises(PaymentRejected) as excinfo:
        PaymentRequested.from_json({**event().to_json(), **change})
    assert excinfo.value.code == "malformed_event"


@pytest.mark.parametrize(
    "change", [{"detail": "x"}, {"detail": ["x"]}, {"reason": {"code": 1}}, {"message": 5}], ids=repr
)
def test_payment_event_from_json_refuses_a_detail_or_reason_of_another_shape(change):
    body = {"payment": event().to_json(), "status": "approved", "reason": None, "message": None, "detail": {}}
    with pytest.raises(PaymentRejected) as excinfo:
        PaymentEvent.from_json({**body, **change})
    assert excinfo.value.code == "malformed_event"


def test_payment_requested_from_json_refuses_missing_fields():
    data = event().to_json()
    del data["amount"]
    # the ledger consumer treats ValueError/TypeError/DomainError as a malformed message
    with pytest.raises((PaymentRejected, TypeError, ValueError)):
        PaymentRequested.from_json(data)


def test_payment_event_round_trips_through_json():
    out = PaymentEvent(event(), "failed", reason="insufficient_funds", message="too low", detail={"k": "v"})
    assert PaymentEvent.from_json(out.to_json()) == out
    # the payer's partition last (fjordbank.topology PARTITIONS)
    assert out.subject == f"payments.failed.{topology.partition_of(out.payment.from_account)}"
    assert out.msg_id == f"{out.payment.payment_id}:failed"


@pytest.mark.parametrize("status", ["nonsense", None, 1])
def test_payment_event_refuses_unknown_status(status):
    data = {**PaymentEvent(event(), "approved").to_json(), "status": status}
    with pytest.raises(PaymentRejected):
        PaymentEvent.from_json(data)


def test_payment_requested_refuses_unknown_kind():
    with pytest.raises(PaymentRejected):
        PaymentRequested.from_json({**event().to_json(), "kind": "teleport"})


def test_optional_fields_are_the_body_fields_that_are_not_required():
    assert OPTIONAL_FIELDS == BODY_FIELDS - REQUIRED_FIELDS == {"message", "kid", "dueDate", "sca", "payeeName"}


# ------------------------------------------- one KID rule for payments and standing orders


def test_a_mod11_kid_ending_in_dash_is_accepted():
    dash_body = next(f"{n:07d}" for n in range(10_000) if kid_mod11_check(f"{n:07d}") == "-")
    assert parse(body(kid=dash_body + "-")).kid == dash_body + "-"


@settings(max_examples=60)
@given(
    kid_body=st.from_regex(r"[0-9]{1,24}", fullmatch=True),
    mod11=st.booleans(),
    corrupt=st.booleans(),
    delta=st.integers(1, 9),
)
def test_a_standing_order_takes_exactly_the_kids_a_payment_takes(kid_body, mod11, corrupt, delta):
    kid = kid_body + (kid_mod11_check(kid_body) if mod11 else kid_mod10_check(kid_body))
    if corrupt:  # the check character changed: a digit by delta, a '-' into a digit
        kid = kid[:-1] + (str(delta) if kid[-1] == "-" else str((int(kid[-1]) + delta) % 10))
    order = {"orderId": "order-0001", "fromAccount": FROM, "toAccount": TO, "amount": 100, "kid": kid}
    order |= {"frequency": "monthly", "startDate": TODAY.isoformat()}
    outcomes = []
    for check in (lambda: parse(body(amount=100, kid=kid)), lambda: parse_terms(order, today=TODAY).payment):
        try:
            outcomes.append(check().kid)
        except PaymentRejected as exc:
            outcomes.append(exc.code)
    assert outcomes[0] == outcomes[1] == (kid if is_valid_kid(kid) else "invalid_kid")
