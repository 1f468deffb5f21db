"""One contract for the document ports, run on the in-memory fake and on the real emulator.

The service layer's unit tests run on the fake (tests/support/memory.py); what they prove
is worth as much as the fake is like Firestore. Every test here runs twice, once on each
(``docs`` is parametrised), so a difference between them fails here first. The emulator
half uses a project of its own on the stack's Firestore emulator (no trigger listens to
it); the memory half needs nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid

import pytest

from fjordbank.adapters.documents import AsyncFirestoreDocuments, FirestoreDocuments
from fjordbank.adapters.firestore import async_client, sync_client
from fjordbank.service_layer import ports
from fjordbank.service_layer.ports import DELETE_FIELD, SERVER_TIME, Increment, OrderBy, Where
from tests.support.memory import MemoryDocuments

# Writers at once on one document in the contention tests: four contend as surely as eight
# did, and on the emulator (which locks pessimistically) each of those tests took 50 s.
WRITERS = 4


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.stack)])
def backend(request):
    """(blocking documents, a factory of asynchronous ones, a unique collection prefix)."""
    prefix = "c" + uuid.uuid4().hex[:10]
    if request.param == "memory":
        docs = MemoryDocuments()
        return docs, docs.asynchronous, prefix
    request.getfixturevalue("stack")
    project = f"fjb-contract-{uuid.uuid4().hex[:8]}"
    return FirestoreDocuments(sync_client(project)), lambda: AsyncFirestoreDocuments(async_client(project)), prefix


def test_get_missing_and_created(backend):
    docs, _, c = backend
    assert docs.get(f"{c}/a") is None
    batch = docs.batch()
    batch.create(f"{c}/a", {"n": 1, "at": SERVER_TIME, "nested": {"k": [1, "x"]}})
    batch.commit()
    doc = docs.get(f"{c}/a")
    assert doc is not None and doc.id == "a" and doc.path == f"{c}/a"
    assert doc.data["n"] == 1 and doc.data["nested"] == {"k": [1, "x"]}
    # the commit's time (the emulator keeps a server time to the millisecond, its update time finer)
    assert isinstance(doc.data["at"], dt.datetime) and abs(doc.data["at"] - doc.updated) < dt.timedelta(seconds=1)
    assert abs(doc.updated - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_count_counts_what_matches_up_to_its_bound(backend):
    docs, _, c = backend
    assert docs.count(c, where=[Where("s", "==", "a")], up_to=10) == 0
    batch = docs.batch()
    for n in range(5):
        batch.create(f"{c}/d{n}", {"s": "a" if n < 4 else "b"})
    batch.commit()
    assert docs.count(c, where=[Where("s", "==", "a")], up_to=10) == 4
    assert docs.count(c, where=[Where("s", "==", "a")], up_to=3) == 3
    assert docs.count(c, up_to=100) == 5


def test_create_of_existing_fails_and_writes_nothing(backend):
    docs, _, c = backend
    first = docs.batch()
    first.create(f"{c}/a", {"n": 1})
    first.commit()
    batch = docs.batch()
    batch.set(f"{c}/b", {"n": 2})
    batch.create(f"{c}/a", {"n": 3})
    with pytest.raises(ports.AlreadyExists):
        batch.commit()
    assert docs.get(f"{c}/b") is None  # all or nothing
    assert docs.get(f"{c}/a").data == {"n": 1}


def test_update_of_missing_fails(backend):
    docs, _, c = backend
    batch = docs.batch()
    batch.update(f"{c}/nope", {"n": 1})
    with pytest.raises(ports.NotFound):
        batch.commit()


def test_update_merge_increment_delete(backend):
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/a", {"n": 1, "m": {"x": 1, "y": 2}, "gone": True})
    b.commit()
    b = docs.batch()
    b.update(f"{c}/a", {"n": Increment(4), "m.y": 5, "m.z": Increment(2), "gone": DELETE_FIELD})
    b.commit()
    assert docs.get(f"{c}/a").data == {"n": 5, "m": {"x": 1, "y": 5, "z": 2}}
    b = docs.batch()
    b.set(f"{c}/a", {"m": {"w": 1}, "k": "v"}, merge=True)
    b.commit()
    assert docs.get(f"{c}/a").data == {"n": 5, "m": {"x": 1, "y": 5, "z": 2, "w": 1}, "k": "v"}
    b = docs.batch()
    b.set(f"{c}/a", {"only": 1})  # set without merge replaces
    b.commit()
    assert docs.get(f"{c}/a").data == {"only": 1}
    b = docs.batch()
    b.delete(f"{c}/a")
    b.delete(f"{c}/never-was")  # deleting a missing document is no error
    b.commit()
    assert docs.get(f"{c}/a") is None


def test_precondition_on_update_time(backend):
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/a", {"n": 1})
    b.commit()
    seen = docs.get(f"{c}/a").updated
    b = docs.batch()
    b.update(f"{c}/a", {"n": 2}, if_updated=seen)
    b.commit()
    b = docs.batch()
    b.update(f"{c}/a", {"n": 3}, if_updated=seen)  # changed since
    with pytest.raises(ports.Stale):
        b.commit()
    assert docs.get(f"{c}/a").data == {"n": 2}


def test_a_precondition_write_on_the_version_a_commit_returned_and_all_or_nothing(backend):
    """What the ledger, screening and the notifier rely on instead of a transaction: the
    update time a commit returns is the version a later precondition compares against; a
    top-level map in an update replaces the stored one; one failed precondition fails the
    whole batch."""
    docs, _, c = backend
    b = docs.batch()
    b.create(f"{c}/a", {"n": 1, "steps": {"approved": 1}})
    b.create(f"{c}/b", {"n": 1})
    first, _b = b.commit()
    b = docs.batch()
    b.update(f"{c}/a", {"n": 2, "steps": {"credit": 2}}, if_updated=first.updated)
    [second] = b.commit()
    assert docs.get(f"{c}/a").data == {"n": 2, "steps": {"credit": 2}}
    assert second.updated == docs.get(f"{c}/a").updated
    b = docs.batch()
    b.update(f"{c}/b", {"n": 5})
    b.update(f"{c}/a", {"n": 3}, if_updated=first.updated)  # moved since
    with pytest.raises(ports.Stale):
        b.commit()
    assert (docs.get(f"{c}/a").data["n"], docs.get(f"{c}/b").data["n"]) == (2, 1)


def test_a_merged_set_of_increments_makes_a_missing_document(backend):
    """insights' month written without being read: the first batch of a month makes it."""
    docs, _, c = backend
    for amount in (5, 7):
        b = docs.batch()
        b.set(
            f"{c}/m", {"month": "2026-12", "income": Increment(amount), "spending": {"food": Increment(1)}}, merge=True
        )
        b.commit()
    assert docs.get(f"{c}/m").data == {"month": "2026-12", "income": 12, "spending": {"food": 2}}


def test_get_many_one_round_trip_any_order(backend):
    docs, _, c = backend
    b = docs.batch()
    for i in range(3):
        b.set(f"{c}/d{i}", {"i": i})
    b.commit()
    got = docs.get_many([f"{c}/d2", f"{c}/missing", f"{c}/d0"])
    assert list(got) == [f"{c}/d2", f"{c}/missing", f"{c}/d0"]
    assert got[f"{c}/d2"].data == {"i": 2} and got[f"{c}/missing"] is None and got[f"{c}/d0"].data == {"i": 0}


def test_query_filters_orders_limits(backend):
    docs, _, c = backend
    b = docs.batch()
    rows = {"a": {"g": "x", "n": 3, "tags": ["p"]}, "b": {"g": "x", "n": 1}, "c": {"g": "y", "n": 2}, "d": {"g": "x"}}
    for doc_id, data in rows.items():
        b.set(f"{c}/{doc_id}", data)
    b.set(f"{c}/a/sub/s1", {"g": "x", "n": 0})  # a subcollection is not the collection
    b.commit()
    ids = lambda found: [d.id for d in found]  # noqa: E731
    assert ids(docs.query(c)) == ["a", "b", "c", "d"]  # by id
    assert ids(docs.query(c, where=[Where("g", "==", "x")])) == ["a", "b", "d"]
    # an inequality orders by its field (d has no n: left out)
    assert ids(docs.query(c, where=[Where("n", ">=", 2)])) == ["c", "a"]
    assert ids(docs.query(c, order_by=[OrderBy("n")])) == ["b", "c", "a"]  # ordered: without n left out
    assert ids(docs.query(c, order_by=[OrderBy("n", descending=True)], limit=2)) == ["a", "c"]
    assert ids(docs.query(c, where=[Where("g", "in", ["y"])])) == ["c"]
    assert ids(docs.query(c, where=[Where("tags", "array_contains", "p")])) == ["a"]
    assert ids(docs.query(f"{c}/a/sub")) == ["s1"]


def test_query_pages_after_a_document_by_its_path_alone_or_by_an_ordered_field(backend):
    """The rescreen's two walks (fjordbank.service_layer.rescreening): by document id from
    a cursor that is only a path, and by a field's order from the last document of a page."""
    docs, _, c = backend
    b = docs.batch()
    at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    for n, doc_id in enumerate(["a", "b", "c", "d", "e"]):
        b.set(f"{c}/{doc_id}", {"at": at + dt.timedelta(minutes=n % 3)})  # a, d share a time; b, e too
    b.commit()
    ids = lambda found: [d.id for d in found]  # noqa: E731
    cursor = ports.Doc(f"{c}/b", {}, dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    assert ids(docs.query(c, limit=2, start_after=cursor)) == ["c", "d"]
    pages, after = [], None
    while True:
        page = docs.query(c, where=[Where("at", ">=", at)], order_by=[OrderBy("at")], limit=2, start_after=after)
        pages.append(ids(page))
        if len(page) < 2:
            break
        after = page[-1]
    assert pages == [["a", "d"], ["b", "e"], ["c"]]  # a page ends between equal times
    # newest first (the invoice scan's earlier payments): equal times by name, descending too
    pages, after = [], None
    while True:
        page = docs.query(c, order_by=[OrderBy("at", descending=True)], limit=2, start_after=after)
        pages.append(ids(page))
        if len(page) < 2:
            break
        after = page[-1]
    assert pages == [["c", "e"], ["b", "d"], ["a"]]


def test_unit_of_work_reads_then_writes_atomically(backend):
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/acct", {"balance": 100})
    b.commit()

    def move(uow):
        acct = uow.get(f"{c}/acct")
        uow.update(f"{c}/acct", {"balance": acct.data["balance"] - 30})
        uow.create(f"{c}/posting-1", {"amount": 30})
        return acct.data["balance"]

    assert docs.transact(move, operation="contract_move") == 100
    assert docs.get(f"{c}/acct").data == {"balance": 70}
    with pytest.raises(ports.AlreadyExists):  # the same posting again: nothing is written
        docs.transact(move, operation="contract_move")
    assert docs.get(f"{c}/acct").data == {"balance": 70}


def test_unit_of_work_reads_before_it_writes(backend):
    docs, _, c = backend

    def bad(uow):
        uow.set(f"{c}/a", {"n": 1})
        uow.get(f"{c}/b")

    with pytest.raises(ports.ReadAfterWrite):
        docs.transact(bad, operation="contract_bad")
    assert docs.get(f"{c}/a") is None


def test_unit_of_work_error_writes_nothing(backend):
    docs, _, c = backend

    def fails(uow):
        uow.get(f"{c}/a")
        uow.set(f"{c}/a", {"n": 1})
        raise LookupError("the use case's own refusal")

    with pytest.raises(LookupError):
        docs.transact(fails, operation="contract_fails")
    assert docs.get(f"{c}/a") is None


def test_concurrent_units_of_work_lose_no_update(backend):
    """Four writers each add 1 five times to one document through read-modify-write:
    every add lands once (a lost race runs the function again)."""
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/counter", {"n": 0})
    b.commit()

    def add(uow):
        n = uow.get(f"{c}/counter").data["n"]
        uow.update(f"{c}/counter", {"n": n + 1})

    def writer():
        for _ in range(5):
            try:
                docs.transact(add, operation="contract_add")
            except ports.Contention:
                errors.append("contention")

    errors: list[str] = []
    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert docs.get(f"{c}/counter").data["n"] + len(errors) == WRITERS * 5


async def test_async_flavour_interleaved(backend):
    """The asynchronous ports: two units of work interleaved on one document; the one whose
    read went stale runs again, so both adds land."""
    _, make_async, c = backend
    adocs = make_async()
    b = adocs.batch()
    b.set(f"{c}/counter", {"n": 0})
    await b.commit()
    runs = 0

    async def add(uow):
        nonlocal runs
        runs += 1
        n = (await uow.get(f"{c}/counter")).data["n"]
        await asyncio.sleep(0.05)  # the other unit of work reads the same version meanwhile
        uow.update(f"{c}/counter", {"n": n + 1})
        return n

    await asyncio.gather(adocs.transact(add, operation="contract_add"), adocs.transact(add, operation="contract_add"))
    assert (await adocs.get(f"{c}/counter")).data["n"] == 2
    assert runs >= 2
    found = await adocs.query(c, where=[Where("n", "==", 2)])
    assert [d.id for d in found] == ["counter"]
    many = await adocs.get_many([f"{c}/counter", f"{c}/none"])
    assert many[f"{c}/none"] is None and many[f"{c}/counter"].data == {"n": 2}


async def test_a_batch_commit_returns_what_each_write_computed(backend):
    """Each write's update time (none for a delete) and its Increment's and SERVER_TIME's
    results by dotted field path, in the order the writes were added: the rate limit
    reads its counts from them in the round trip that counts."""
    docs, make_async, c = backend
    b = docs.batch()
    b.set(f"{c}/a", {"w": {"000000000006": 3}})
    b.set(f"{c}/u", {"n": 1})
    b.commit()
    b = docs.batch()
    b.set(f"{c}/a", {"w": {"000000000007": Increment(1), "000000000006": Increment(0)}, "at": SERVER_TIME}, merge=True)
    b.create(f"{c}/b", {"k": 1})
    b.update(f"{c}/u", {"n": Increment(5), "m.k": Increment(2)})
    b.delete(f"{c}/gone")
    counted, created, updated, deleted = b.commit()
    assert [w.path for w in (counted, created, updated, deleted)] == [f"{c}/a", f"{c}/b", f"{c}/u", f"{c}/gone"]
    assert set(counted.computed) == {"w.000000000007", "w.000000000006", "at"}
    assert counted.computed["w.000000000007"] == 1 and counted.computed["w.000000000006"] == 3
    assert abs(counted.computed["at"] - counted.updated) < dt.timedelta(seconds=1)
    assert counted.updated == docs.get(f"{c}/a").updated
    assert created.computed == {} and isinstance(created.updated, dt.datetime)
    assert updated.computed == {"n": 6, "m.k": 2} and deleted.updated is None and deleted.computed == {}
    adocs = make_async()
    ab = adocs.batch()
    ab.set(f"{c}/a", {"w": {"000000000007": Increment(1)}}, merge=True)
    (again,) = await ab.commit()
    assert again.computed == {"w.000000000007": 2}


def test_unit_of_work_query_is_read_in_it(backend):
    """A unit of work that finds its document by a query: four writers each add 1 five
    times, and every add lands once (a query's result is read in the unit of work like a
    get); a query after a write is a bug of the use case."""
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/counter", {"name": "visits", "n": 0})
    b.set(f"{c}/other", {"name": "other", "n": 0})
    b.commit()

    def add(uow):
        (found,) = uow.query(c, where=[Where("name", "==", "visits")])
        uow.update(found.path, {"n": found.data["n"] + 1})

    def writer():
        for _ in range(5):
            try:
                docs.transact(add, operation="contract_query_add")
            except ports.Contention:
                errors.append("contention")

    errors: list[str] = []
    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert docs.get(f"{c}/counter").data["n"] + len(errors) == WRITERS * 5
    assert docs.get(f"{c}/other").data["n"] == 0

    def bad(uow):
        uow.set(f"{c}/late", {"n": 1})
        uow.query(c, where=[Where("name", "==", "visits")])

    with pytest.raises(ports.ReadAfterWrite):
        docs.transact(bad, operation="contract_bad")
    assert docs.get(f"{c}/late") is None


def test_query_group_finds_every_collection_of_the_name(backend):
    docs, _, c = backend
    group = f"{c}items"
    b = docs.batch()
    b.set(f"{c}/a/{group}/1", {"n": 1, "g": "x"})
    b.set(f"{c}/b/{group}/2", {"n": 2, "g": "x"})
    b.set(f"{group}/3", {"n": 3, "g": "x"})  # a top-level collection of the name is one of them
    b.set(f"{c}/a/{group}x/4", {"n": 4, "g": "x"})  # another name
    b.set(f"{c}/a/{group}/5", {"n": 5, "g": "y"})
    b.commit()
    found = docs.query_group(group, where=[Where("g", "==", "x")])
    assert sorted(d.path for d in found) == sorted([f"{c}/a/{group}/1", f"{c}/b/{group}/2", f"{group}/3"])
    ordered = docs.query_group(group, where=[Where("g", "==", "x")], order_by=[OrderBy("n", descending=True)], limit=2)
    assert [d.id for d in ordered] == ["3", "2"]
    assert [d.id for d in docs.query_group(group, where=[Where("n", "in", [5])])] == ["5"]


def test_query_group_pages_after_a_document(backend):
    """A cursor after a document of the page before: by its values as read (the same date
    for many documents), then by its path; a document that changed since is not met again."""
    docs, _, c = backend
    group = f"{c}orders"
    b = docs.batch()
    for uid, oid, due in [
        ("u1", "a", "2027-03-10"),
        ("u1", "b", "2027-03-10"),
        ("u2", "a", "2027-03-10"),
        ("u2", "b", "2027-03-09"),
        ("u10", "a", "2027-03-10"),
        ("u1-x", "a", "2027-03-10"),
    ]:
        b.set(f"{c}/{uid}/{group}/{oid}", {"s": "active", "due": due})
    b.set(f"{c}/u3/{group}/a", {"s": "ended", "due": "2027-03-01"})
    b.commit()
    where = [Where("s", "==", "active"), Where("due", "<=", "2027-03-10")]
    seen, after = [], None
    while True:
        page = docs.query_group(group, where=where, limit=2, start_after=after)
        seen += [d.path for d in page]
        if len(page) < 2:
            break
        after = page[-1]
        if len(seen) == 2:  # the job moves a document it handled on: it leaves the query
            moved = docs.batch()
            moved.update(page[0].path, {"due": "2027-04-10"})
            moved.commit()
    assert len(seen) == len(set(seen)) == 6
    # the earliest date first, then by the document's name segment by segment ("u1" < "u1-x" < "u10")
    assert seen == [
        f"{c}/u2/{group}/b",
        f"{c}/u1/{group}/a",
        f"{c}/u1/{group}/b",
        f"{c}/u1-x/{group}/a",
        f"{c}/u10/{group}/a",
        f"{c}/u2/{group}/a",
    ]


async def test_query_group_asynchronous(backend):
    docs, make_async, c = backend
    group = f"{c}items"
    b = docs.batch()
    b.set(f"{c}/a/{group}/1", {"n": 1})
    b.set(f"{c}/b/{group}/2", {"n": 2})
    b.commit()
    found = await make_async().query_group(group, where=[Where("n", ">=", 2)])
    assert [d.path for d in found] == [f"{c}/b/{group}/2"]


def test_query_at_reads_the_documents_as_they_were(backend):
    docs, _, c = backend
    b = docs.batch()
    b.set(f"{c}/kept", {"n": 1})
    b.set(f"{c}/deleted", {"n": 1})
    b.commit()
    then = docs.get(f"{c}/kept").updated
    b = docs.batch()
    b.update(f"{c}/kept", {"n": 2})
    b.delete(f"{c}/deleted")
    b.set(f"{c}/added", {"n": 1})
    b.commit()
    old = docs.query_at(c, then)
    assert [(d.id, d.data) for d in old] == [("deleted", {"n": 1}), ("kept", {"n": 1})]
    assert all(d.updated == then for d in old)
    assert [(d.id, d.data) for d in docs.query(c)] == [("added", {"n": 1}), ("kept", {"n": 2})]
    assert [d.id for d in docs.query_at(c, then, where=[Where("n", "==", 1)], limit=1)] == ["deleted"]


async def test_query_at_asynchronous(backend):
    docs, make_async, c = backend
    b = docs.batch()
    b.set(f"{c}/a", {"n": 1})
    b.commit()
    then = docs.get(f"{c}/a").updated
    b = docs.batch()
    b.update(f"{c}/a", {"n": 2})
    b.commit()
    assert [d.data for d in await make_async().query_at(c, then)] == [{"n": 1}]


async def test_async_unit_of_work_query(backend):
    _, make_async, c = backend
    adocs = make_async()
    b = adocs.batch()
    b.set(f"{c}/a", {"name": "visits", "n": 0})
    await b.commit()

    async def add(uow):
        (found,) = await uow.query(c, where=[Where("name", "==", "visits")])
        uow.update(found.path, {"n": found.data["n"] + 1})

    await adocs.transact(add, operation="contract_query_add")
    assert (await adocs.get(f"{c}/a")).data["n"] == 1
