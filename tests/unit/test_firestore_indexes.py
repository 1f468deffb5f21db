"""firestore.indexes.json against the queries in the code.

The emulator enforces no index, so nothing but this test sees a production query lose the
index it needs. Two promises:

* every composite index a query needs is declared (the ops sweep's own test checks its two;
  here the jobs' and services' compound queries);
* no single-field index exemption (a fieldOverride with no indexes) takes away a field that
  some query filters or orders on. Exemptions keep the collections written per payment under
  Firestore's 500 writes/s for an index over steadily increasing values (timestamps, ISO
  times of now) and cut the index entries of large maps (docs/capacity.md, section 5).

Which query reads which collection is found in the source, conservatively: a module's
query fields (every ``Where``/``OrderBy``/``FieldFilter`` and ``.order_by``/``.where``/
``orderBy``/``where`` with a literal field) count against every collection the module names.
A false alarm is possible (then name the query's collection more narrowly); a missed query
is not, as long as fields are written as literals where the query is built.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path

import fjordbank.adapters.firestore as fs
from fjordbank.service_layer import incoming, outbox, push, ratelimits, rescreening, sca

REPO = Path(__file__).resolve().parents[2]
PYTHON = ("fjordbank", "functions/main.py", "bankctl", "clientkit", "bench", "devstack", "scripts")
JAVASCRIPT = ("web/src",)
QUERY_CALLS = {"Where", "OrderBy", "FieldFilter", "order_by", "where", "_oldest"}

# Collections whose documents only the backend reads (firestore.rules gives clients none of
# them): an exemption there is checked against every query there is. An exemption on a
# collection the app reads also needs the app's queries, which are those of web/src and the
# README's feed filters (category, status, kind, by bookedAt): none of them use the fields
# exempted there (timestamps the app sorts by client-side, or never).
BACKEND_ONLY = {
    fs.LEDGER_PAYMENTS,
    fs.CARD_AUTHORIZATIONS,
    fs.SCREENING_DECISIONS,
    fs.SCREENING_CUSTOMERS,
    fs.CLEARING_PAYMENTS,
    fs.CLEARING_FILES,
    incoming.RETURNS,
    fs.SANCTIONS_ALERTS,
    fs.PAYEE_ALERTS,
    rescreening.RESCREENING,
    fs.OPS,
    outbox.OUTBOX,
    outbox.CARD_OUTBOX,
    ratelimits.RATE_LIMITS,
    fs.MERCHANT_HISTORY,
    "scaUsed",
    push.RETRIES,
}
APP_READ = {fs.ACCOUNTS, fs.TRANSACTIONS, fs.PAYMENT_REQUESTS}


def _config() -> dict:
    return json.loads((REPO / "firestore.indexes.json").read_text())


def _exemptions() -> set[tuple[str, str]]:
    return {(o["collectionGroup"], o["fieldPath"]) for o in _config()["fieldOverrides"] if not o["indexes"]}


def _constants() -> dict[str, str]:
    """Module-level string constants that name a collection (NAME -> value), every module."""
    found: dict[str, str] = {}
    for path in (REPO / "fjordbank").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.isupper():
                        found.setdefault(target.id, node.value.value)
    return found


def _python_files() -> list[Path]:
    out: list[Path] = []
    for root in PYTHON:
        path = REPO / root
        out += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "node_modules" not in p.parts)
    return out


def _module_queries(tree: ast.AST, constants: dict[str, str]) -> tuple[set[str], set[str]]:
    """(the collections the module names, the fields its queries filter or order on)."""
    named: set[str] = set()
    fields: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in constants:
            named.add(constants[node.id])
        elif isinstance(node, ast.Attribute) and node.attr in constants:
            named.add(constants[node.attr])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named.update(part for part in node.value.split("/") if part)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in QUERY_CALLS:  # the field comes first (a time field second to _oldest)
                for arg in node.args[:2] if name == "_oldest" else node.args[:1]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        fields.add(arg.value)
    return named, fields


def queried_fields() -> dict[str, set[str]]:
    """collection -> the fields some module that names it queries."""
    constants = _constants()
    by_collection: dict[str, set[str]] = defaultdict(set)
    for path in _python_files():
        named, fields = _module_queries(ast.parse(path.read_text()), constants)
        for collection in named:
            by_collection[collection] |= fields
    js_field = re.compile(r"""\b(?:where|orderBy)\(\s*["']([\w.]+)["']""")
    for root in JAVASCRIPT:
        for path in sorted((REPO / root).rglob("*.js")):
            text = path.read_text()
            fields = set(js_field.findall(text))
            for collection in set(re.findall(r"""["'`]([A-Za-z]+)["'`]""", text)):
                by_collection[collection] |= fields
    return by_collection


def _overlaps(exempt: str, queried: str) -> bool:
    """Exempting a map exempts its subfields; a query on a map's subfield needs its index."""
    return queried == exempt or queried.startswith(exempt + ".") or exempt.startswith(queried + ".")


def test_no_exemption_takes_an_index_a_query_uses():
    queried = queried_fields()
    clashes = sorted(
        (group, field, q) for group, field in _exemptions() for q in queried.get(group, ()) if _overlaps(field, q)
    )
    assert clashes == [], f"exempted fields that a query filters or orders on: {clashes}"


def test_the_scanner_sees_the_queries_it_guards():
    """The check above is only as good as what it finds: known queries must show."""
    queried = queried_fields()
    assert {"uid", "status", "toAccount"} <= queried[fs.LEDGER_PAYMENTS]
    assert {"hold.status", "hold.expiresAt"} <= queried[fs.CARD_AUTHORIZATIONS]
    assert {"stagedAt"} <= queried[outbox.CARD_OUTBOX]
    assert {"status", "updatedAt", "payment.due_date", "kid", "toAccount"} <= queried[fs.PAYMENT_REQUESTS]
    assert {"ownerUid"} <= queried[fs.ACCOUNTS]
    assert {"bookedAt", "merchantKey"} <= queried[fs.TRANSACTIONS]
    # an exemption that clashes is caught
    assert any(_overlaps("hold", q) for q in queried[fs.CARD_AUTHORIZATIONS])


def test_exemptions_cover_the_timestamps_written_per_payment():
    """docs/capacity.md, section 5: the collections written once or more per payment carry
    no single-field index over a time of the write, and their growing maps are not indexed."""
    exempt = _exemptions()
    per_payment = {
        (fs.LEDGER_PAYMENTS, "updatedAt"),
        (fs.LEDGER_PAYMENTS, "postings"),  # each step's postedAt, and the entries
        (fs.LEDGER_PAYMENTS, "hold"),  # expiresAt: now + 5 days
        (fs.CARD_AUTHORIZATIONS, "createdAt"),
        (fs.CARD_AUTHORIZATIONS, "updatedAt"),
        (fs.CARD_AUTHORIZATIONS, "postings"),
        (fs.CARD_AUTHORIZATIONS, "refunds"),
        (fs.CARD_AUTHORIZATIONS, "increments"),  # each incrementedAt, declined ones too
        (fs.CARD_AUTHORIZATIONS, "reversals"),  # each partial reversal's reversedAt
        (fs.SCREENING_DECISIONS, "decidedAt"),
        (fs.SCREENING_CUSTOMERS, "payees"),
        (fs.CLEARING_PAYMENTS, "claimedAt"),
        (fs.CLEARING_FILES, "traces"),
        (fs.CLEARING_FILES, "answers"),
        (sca.SCA_USED, "usedAt"),
        (ratelimits.RATE_LIMITS, "w"),
        (fs.ACCOUNTS, "updatedAt"),
    }
    assert per_payment <= exempt


def test_exemptions_are_on_collections_whose_readers_are_known():
    """An exemption on a collection the app queries must be one the app's queries (web/src,
    the README's feed filters) do not need; anything else is backend-only."""
    groups = {group for group, _ in _exemptions()} - {ratelimits.RATE_LIMITS}
    assert groups <= BACKEND_ONLY | APP_READ, groups - BACKEND_ONLY - APP_READ
    feed_filters = {"category", "status", "kind", "bookedAt"}
    assert not {field for group, field in _exemptions() if group == fs.TRANSACTIONS} & feed_filters


def test_compound_queries_have_their_composite_indexes():
    """Production refuses a query with an equality and a range (or two equalities on
    different fields) without a composite index; the emulator answers it."""
    have = {
        (i["collectionGroup"], i["queryScope"], tuple(f["fieldPath"] for f in i["fields"]))
        for i in _config()["indexes"]
    }
    need = {
        (fs.PAYMENT_REQUESTS, "COLLECTION_GROUP", ("status", "payment.due_date")),  # due-payments job
        (fs.PAYMENT_REQUESTS, "COLLECTION_GROUP", ("status", "updatedAt")),  # stuck requests
        (fs.PAYMENT_REQUESTS, "COLLECTION", ("kid", "toAccount", "updatedAt")),  # the invoice paid before
        (fs.STANDING_ORDERS, "COLLECTION_GROUP", ("status", "nextDue")),  # standing orders due
        (fs.CARD_AUTHORIZATIONS, "COLLECTION", ("hold.status", "hold.expiresAt")),  # expired card holds
        (fs.HOLDS, "COLLECTION", ("kind", "status", "expiresAt")),  # expired card holds from before
        (fs.LEDGER_PAYMENTS, "COLLECTION", ("uid", "status")),  # closing an account, ledger bookings
        (outbox.OUTBOX, "COLLECTION", ("kind", "stagedAt")),  # the ops sweep's oldest per kind
        (outbox.OUTBOX, "COLLECTION", ("failures", "stagedAt")),  # the relay's first pass: never tried
        (outbox.CARD_OUTBOX, "COLLECTION", ("failures", "stagedAt")),
        (fs.SANCTIONS_ALERTS, "COLLECTION", ("status", "raisedAt")),  # alerts by status, oldest first
    }
    assert need <= have, need - have


def test_records_kept_for_a_while_have_a_ttl_policy():
    """A push message's retry record is deleted by Firestore's TTL once its message is past
    retrying (fjordbank.service_layer.push): firebase deploy turns this override into the policy."""
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in _config()["fieldOverrides"] if o.get("ttl") is True}
    assert (push.RETRIES, "expiresAt") in ttl
