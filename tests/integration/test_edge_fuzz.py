"""Defence in depth: the payment trigger fed malformed, oversized and hostile documents
(written through the admin path, as if the rules had a hole) refuses every one with a
reason code, never crashes, never publishes and never moves money."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.app import new_customer
from tests.support.clients import unique, wait_for

pytestmark = pytest.mark.stack

# What Firestore can store at all: int64 integers, non-empty field names without "__",
# no array directly inside an array.
INT64 = st.integers(-(2**63), 2**63 - 1)
KEYS = st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith("__"))
json_values = st.recursive(
    st.none() | st.booleans() | INT64 | st.text(max_size=300),
    lambda children: (
        st.lists(children.filter(lambda x: not isinstance(x, list)), max_size=4)
        | st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=12,
)
hostile_strings = st.sampled_from(
    ["", " ", "0" * 11, "1" * 5000, "../../accounts/x", "'; DROP TABLE", "\u0000", "🙂" * 50, "-1", "1e9"]
)


def bodies(account: str):
    field = st.sampled_from(
        [
            "v",
            "fromAccount",
            "toAccount",
            "amount",
            "currency",
            "message",
            "kid",
            "dueDate",
            "status",
            "paymentId",
            "uid",
            "constructor",
        ]
    )
    value = json_values | hostile_strings | INT64 | st.just(account)
    return st.dictionaries(field, value, max_size=9)


@pytest.fixture(scope="module")
def victim(stack, auth, as_user, ledger_admin):
    return new_customer(auth, as_user, ledger_admin, 1_000)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_payment_documents_are_refused_with_a_reason_and_move_no_money(stack, admin_db, victim, data):
    body = data.draw(bodies(victim.accounts[0]))
    body["hostile"] = True  # never a valid contract-v1 body, whatever else was drawn
    request_id = unique("fuzz")
    admin_db.document(f"users/{victim.uid}/paymentRequests/{request_id}").set(body)
    # the hostile body may carry its own "status": wait for the edge's verdict itself
    doc = wait_for(
        lambda: (d := victim.request(request_id)) and d.get("status") == "rejected" and d,
        timeout=30,
        what="the trigger's verdict",
    )
    assert doc["status"] == "rejected", (body, doc)
    assert isinstance(doc["reason"]["code"], str) and doc["reason"]["code"].islower()
    assert "Traceback" not in str(doc)
    assert victim.balance() == 1_000
