"""The adapter's batch reads (fjordbank.adapters.documents.doc_of) give the very document the
Firestore client's snapshot gives (`_parse_batch_get`, then `to_doc`): the same data,
value for value, and the same update time, of the same class, which the writes'
preconditions send back (fjordbank.adapters.firestore_writes)."""

from __future__ import annotations

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_client import _parse_batch_get
from google.cloud.firestore_v1.types import firestore as firestore_types
from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.adapters import firestore_writes
from fjordbank.adapters.documents import doc_of, to_doc
from tests.unit.test_firestore_writes import values

DB = firestore.Client(project="p", credentials=AnonymousCredentials())
PATH = "ledgerPayments/p-1"
NAME = DB.document(PATH)._document_path
documents = st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=6)


def response(data: dict, seconds: int, nanos: int):
    """A BatchGetDocumentsResponse that found ``data``, as the server sends it."""
    pb = firestore_types.BatchGetDocumentsResponse.pb()()
    pb.found.CopyFrom(firestore_writes.create(NAME, data).update)
    pb.found.update_time.seconds, pb.found.update_time.nanos = seconds, nanos
    pb.found.create_time.seconds = seconds
    pb.read_time.seconds = seconds + 1
    return pb


@settings(max_examples=300, deadline=None)
@given(documents, st.integers(0, 2**33), st.integers(0, 999_999_999))
def test_a_document_read_is_the_clients(data, seconds, nanos):
    pb = response(data, seconds, nanos)
    theirs = to_doc(_parse_batch_get(firestore_types.BatchGetDocumentsResponse.wrap(pb), {NAME: DB.document(PATH)}, DB))
    mine = doc_of(pb, {NAME: PATH}, DB)
    assert mine == theirs
    assert type(mine.updated) is type(theirs.updated)
    assert mine.updated.nanosecond == theirs.updated.nanosecond  # what a precondition sends back


def test_a_missing_document_is_none():
    pb = firestore_types.BatchGetDocumentsResponse.pb()(missing=NAME)
    assert doc_of(pb, {NAME: PATH}, DB) is None
