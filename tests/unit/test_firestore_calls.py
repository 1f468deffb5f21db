"""The Firestore call counter (fjordbank.adapters.firestore_calls), on a real client whose
channel points at a port nobody listens on: a call is counted when it is made, whatever
its answer; the documents are those its request names (a query's come with its results,
tested on the emulator in tests/integration/test_edge_round_trips.py and the bench)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_errors
from google.cloud import firestore

from fjordbank.adapters.firestore import async_client, sync_client
from fjordbank.adapters.firestore_calls import count_query_results, count_request, tally

NOWHERE = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", NOWHERE)


def test_a_sync_batch_get_and_commit_are_counted_with_their_documents():
    db = sync_client("demo-calls")
    with tally() as counts:
        with pytest.raises(api_errors.ServiceUnavailable):
            list(db.get_all([db.document("a/1"), db.document("a/2"), db.document("b/3")], retry=None, timeout=2))
        batch = db.batch()
        batch.set(db.document("a/1"), {"n": firestore.Increment(1)}, merge=True)
        batch.create(db.document("a/2"), {"n": 1})
        with pytest.raises(api_errors.ServiceUnavailable):
            batch.commit(retry=None, timeout=2)
    assert counts["calls:BatchGetDocuments"] == 1 and counts["reads"] == 3
    assert counts["calls:Commit"] == 1 and counts["writes"] == 2
    assert counts["calls"] == 2


async def test_async_calls_are_counted_in_the_task_that_makes_them():
    db = async_client("demo-calls")
    with tally() as counts:
        with pytest.raises(api_errors.ServiceUnavailable):
            await db._firestore_api.commit(
                request={"database": db._database_string, "writes": []}, retry=None, timeout=2
            )
        with pytest.raises(api_errors.ServiceUnavailable):
            async for _snap in db.get_all([db.document("a/1")], retry=None, timeout=2):
                pass
    assert counts["calls"] == 2 and counts["reads"] == 1 and counts["writes"] == 0
    with tally() as outside:
        pass
    assert not outside


def test_a_query_reads_at_least_one_document():
    class Request:
        documents = ()

    with tally() as counts:
        count_request("RunQuery", Request())
        count_query_results("RunQuery", 0)
        count_request("RunQuery", Request())
        count_query_results("RunQuery", 7)
    assert counts["calls"] == 2 and counts["reads"] == 8
