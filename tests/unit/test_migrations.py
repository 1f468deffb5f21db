"""fjordbank.service_layer.migrations on the in-memory documents.

What is promised: the economy-choices migration puts every earlier category choice on its
merchant's history (making the history where there is none) and touches nothing that
already says one; running it again changes nothing; it is recorded as done, and a
long-running process sees that within a minute and never reads it again afterwards. Until
then the insights service reads the overrides as before, and after it none.
"""

from __future__ import annotations

import datetime as dt

import pytest

from fjordbank.domain.bookings import Booking
from fjordbank.service_layer import economy, migrations
from fjordbank.service_layer.migrations import ECONOMY_CHOICES, MIGRATIONS, Done
from tests.support.memory import MemoryDocuments
from tests.support.recording import RecordingDocuments
from tests.support.use_cases import NOW, data, fixed_clock, seed

UID = "alice"
NETFLIX, REMA, KIWI = "m:netflix-com", "m:rema-1000", "m:kiwi"


def overrides(docs: MemoryDocuments) -> list:
    return docs.query_group("categoryOverrides")


def legacy(docs: MemoryDocuments) -> None:
    """Choices made before the callable put them on the histories: one merchant with no
    history, one with a history from before the field, one whose history already says it."""
    seed(
        docs,
        {
            f"users/{UID}/categoryOverrides/{NETFLIX}": {"category": "entertainment", "key": NETFLIX},
            f"users/{UID}/categoryOverrides/{REMA}": {"category": "restaurants", "key": REMA},
            f"users/{UID}/merchantHistory/{REMA}": {"key": REMA, "charges": [{"txId": "c1", "date": "2026-11-02"}]},
            f"users/{UID}/categoryOverrides/{KIWI}": {"category": "housing", "key": KIWI},
            f"users/{UID}/merchantHistory/{KIWI}": {"key": KIWI, "charges": [], "chosenCategory": "housing"},
            "elsewhere/x/categoryOverrides/y": {"category": "housing"},  # not a customer's: left alone
        },
    )


def test_every_earlier_choice_is_put_on_its_history_once_and_the_migration_is_recorded() -> None:
    docs = MemoryDocuments(fixed_clock())
    legacy(docs)
    seen: list[tuple[int, int]] = []
    written = migrations.economy_choices(docs, overrides(docs), now=NOW, progress=lambda *a: seen.append(a))
    assert written == 2
    assert data(docs, f"users/{UID}/merchantHistory/{NETFLIX}") == {
        "key": NETFLIX,
        "charges": [],
        "chosenCategory": "entertainment",
    }
    rema = data(docs, f"users/{UID}/merchantHistory/{REMA}")
    assert rema["chosenCategory"] == "restaurants" and rema["charges"] == [{"txId": "c1", "date": "2026-11-02"}]
    # a history that says the category was written by the callable with its override: as it is
    kiwi = docs.get(f"users/{UID}/merchantHistory/{KIWI}")
    assert kiwi is not None and kiwi.data["chosenCategory"] == "housing" and kiwi.updated == NOW
    assert data(docs, MIGRATIONS) == {ECONOMY_CHOICES: {"doneAt": NOW, "documents": 2}}
    assert seen == []  # told every 500 overrides only
    assert migrations.done_in(docs.get(MIGRATIONS), ECONOMY_CHOICES)
    # again: nothing more to write, still done
    assert migrations.economy_choices(docs, overrides(docs), now=NOW) == 0
    assert migrations.done_in(docs.get(MIGRATIONS), ECONOMY_CHOICES)


async def test_a_choice_the_previous_callable_made_while_the_new_insights_ran_is_carried_and_applied() -> None:
    """A deploy brings up the insights service before the recategorise callable: the new
    service wrote None for the customer's category on a merchant's first history, the
    previous callable then kept the customer's choice on the override only, and both the
    insights service (before the migration) and the migration took None for a category said:
    the choice was ignored for good (found in review, 2026-12-07)."""
    docs = MemoryDocuments(fixed_clock())
    booking = docs.asynchronous()

    def charge(tx: str, day: str) -> Booking:
        return Booking(UID, tx, "1" * 11, day, 12_900, "out", "card", merchant_name="NETFLIX.COM", mcc="4899")

    history = f"users/{UID}/merchantHistory/{NETFLIX}"
    await economy.apply_bookings(booking, [charge("c1", "2026-12-02")])
    assert data(docs, history)["chosenCategory"] is None
    seed(docs, {f"users/{UID}/categoryOverrides/{NETFLIX}": {"category": "entertainment", "key": NETFLIX}})
    assert migrations.economy_choices(docs, overrides(docs), now=NOW) == 1
    assert data(docs, history)["chosenCategory"] == "entertainment"
    # the next charges, before the service sees the migration done and after
    await economy.apply_bookings(booking, [charge("c2", "2027-01-02")])
    await economy.apply_bookings(booking, [charge("c3", "2027-02-02")], choices_on_histories=True)
    for month in ("2027-01", "2027-02"):
        assert data(docs, f"users/{UID}/economy/{month}")["spending"] == {"entertainment": 12_900}


async def test_a_choice_changed_on_the_override_alone_during_a_deploy_wins_over_the_history_s() -> None:
    """The new insights service carried a customer's earlier choice to the history; the
    previous callable, still serving during the deploy, then changed the choice on the
    override only. The migration took the history's category for the customer's and left
    it: the month showed the earlier category for good (found in review, 2026-12-07)."""
    docs = MemoryDocuments(fixed_clock())
    booking = docs.asynchronous()

    def charge(tx: str, day: str) -> Booking:
        return Booking(UID, tx, "1" * 11, day, 12_900, "out", "card", merchant_name="NETFLIX.COM", mcc="4899")

    override, history = f"users/{UID}/categoryOverrides/{NETFLIX}", f"users/{UID}/merchantHistory/{NETFLIX}"
    seed(docs, {override: {"category": "entertainment", "key": NETFLIX}})  # chosen long ago
    await economy.apply_bookings(booking, [charge("c1", "2026-12-02")])  # the new service carries it
    assert data(docs, history)["chosenCategory"] == "entertainment"
    seed(docs, {override: {"category": "shopping", "key": NETFLIX}})  # the previous callable: the override only
    assert migrations.economy_choices(docs, overrides(docs), now=NOW) == 1
    assert data(docs, history)["chosenCategory"] == "shopping"
    await economy.apply_bookings(booking, [charge("c2", "2027-01-02")], choices_on_histories=True)
    assert data(docs, f"users/{UID}/economy/2027-01")["spending"] == {"shopping": 12_900}


def test_progress_is_told_every_500_overrides() -> None:
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {f"users/u{i}/categoryOverrides/{NETFLIX}": {"category": "entertainment"} for i in range(1001)})
    seen: list[tuple[int, int]] = []
    assert migrations.economy_choices(docs, overrides(docs), now=NOW, progress=lambda *a: seen.append(a)) == 1001
    assert seen == [(500, 500), (1000, 1000)]


def test_an_override_gone_meanwhile_writes_nothing() -> None:
    docs = MemoryDocuments(fixed_clock())
    legacy(docs)
    [netflix] = [d for d in overrides(docs) if d.id == NETFLIX]
    batch = docs.batch()
    batch.delete(netflix.path)
    batch.commit()
    assert not migrations.carry_choice(docs, netflix)
    assert docs.get(f"users/{UID}/merchantHistory/{NETFLIX}") is None


async def test_done_is_read_at_most_once_a_minute_until_it_says_so_then_never_again() -> None:
    docs = RecordingDocuments()
    now = [0.0]
    done = Done(docs, ECONOMY_CHOICES, clock=lambda: now[0])
    assert not await done()
    now[0] = 30.0
    assert not await done()
    assert gets(docs) == 1  # not read again within the minute
    docs.store.apply([("set", MIGRATIONS, {ECONOMY_CHOICES: {"doneAt": NOW, "documents": 0}}, False)])
    now[0] = 59.0
    assert not await done()  # not seen yet
    now[0] = 60.0
    assert await done()
    now[0] = 1_000.0
    assert await done()
    assert gets(docs) == 2


def test_a_record_of_another_migration_is_not_this_one() -> None:
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {MIGRATIONS: {"other": {"doneAt": NOW}, ECONOMY_CHOICES: {"doneAt": None}}})
    assert not migrations.done_in(docs.get(MIGRATIONS), ECONOMY_CHOICES)
    assert not migrations.done_in(None, ECONOMY_CHOICES)


async def test_once_done_a_first_charge_to_a_merchant_reads_its_history_only() -> None:
    docs = RecordingDocuments()

    def charge(tx: str, merchant: str) -> Booking:
        return Booking(UID, tx, "1" * 11, "2026-11-02", 12_900, "out", "card", merchant_name=merchant, mcc="4899")

    await economy.apply_bookings(docs, [charge("c1", "NETFLIX.COM")])  # before: its override is read too
    await economy.apply_bookings(docs, [charge("c2", "SPOTIFY")], choices_on_histories=True)
    first, second = docs.units
    assert [sorted({p.split("/")[2] for p in r}) for r in first.reads] == [["merchantHistory"], ["categoryOverrides"]]
    assert [sorted({p.split("/")[2] for p in r}) for r in second.reads] == [["merchantHistory"]]


def gets(docs: RecordingDocuments) -> int:
    return sum(1 for call in docs.calls if call[0] == "get")


def test_many_workers_carry_each_choice_once_and_a_failure_records_nothing() -> None:
    docs = MemoryDocuments(fixed_clock())
    seed(docs, {f"users/u{i}/categoryOverrides/{NETFLIX}": {"category": "entertainment"} for i in range(300)})
    seen: list[tuple[int, int]] = []
    assert (
        migrations.economy_choices(docs, overrides(docs), now=NOW, progress=lambda *a: seen.append(a), workers=8) == 300
    )
    assert all(data(docs, f"users/u{i}/merchantHistory/{NETFLIX}") for i in range(300))

    class Broken(MemoryDocuments):
        def transact(self, fn, *, operation):  # type: ignore[no-untyped-def]
            raise RuntimeError("the database went away")

    broken = Broken(fixed_clock())
    seed(broken, {f"users/u1/categoryOverrides/{NETFLIX}": {"category": "entertainment"}})
    with pytest.raises(RuntimeError):
        migrations.economy_choices(broken, overrides(broken), now=NOW, workers=4)
    assert broken.get(MIGRATIONS) is None  # not recorded as done: run again


def test_the_production_migration_refuses_a_leaked_emulator_address(monkeypatch, capsys) -> None:
    """With FIRESTORE_EMULATOR_HOST set the client talks to the emulator whatever project
    it is given: a deploy would report its migration done and leave the project's documents
    as they were."""
    from fjordbank.runtime import migrate

    ran: list[object] = []
    monkeypatch.setattr(migrate, "run", lambda *a, **k: ran.append(a) or {})
    monkeypatch.setattr(migrate, "sync_client", lambda project: project)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    assert migrate.main(["--project", "fjordbank-prod"]) == 2
    assert "would migrate the emulator, not fjordbank-prod" in capsys.readouterr().err
    assert ran == []
    assert migrate.main(["--project", "demo-fjordbank"]) == 0  # a demo project is the emulator's
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")
    assert migrate.main(["--project", "fjordbank-prod"]) == 0
    assert len(ran) == 2


def test_a_migration_done_is_not_run_again_unless_asked_and_its_record_keeps_when_it_was_done() -> None:
    """Every deploy and every local up streamed every choice again and overwrote the record
    with the later run's time and its 0 documents (found in review, 2026-12-06)."""
    docs = MemoryDocuments(fixed_clock())
    legacy(docs)
    assert migrations.to_run(docs, ECONOMY_CHOICES)
    assert migrations.economy_choices(docs, overrides(docs), now=NOW) == 2
    assert not migrations.to_run(docs, ECONOMY_CHOICES)
    assert migrations.to_run(docs, ECONOMY_CHOICES, force=True)
    later = NOW + dt.timedelta(days=3)
    assert migrations.economy_choices(docs, overrides(docs), now=later) == 0  # forced: nothing more to write
    assert data(docs, MIGRATIONS) == {ECONOMY_CHOICES: {"doneAt": NOW, "documents": 2, "lastRunAt": later}}


def test_every_subscription_without_its_lapse_is_given_the_day_its_interval_and_last_charge_say() -> None:
    """A subscription that ended before the insights service wrote ``lapsesAfter`` gets no
    charge to write it: it stayed counted in the month's total for ever (found in review,
    2026-12-07)."""
    from fjordbank.service_layer.migrations import SUBSCRIPTION_LAPSES

    docs = MemoryDocuments(fixed_clock())
    seed(
        docs,
        {
            f"users/{UID}/subscriptions/{NETFLIX}": {"interval": "monthly", "lastDate": "2024-12-15", "amount": 14900},
            f"users/{UID}/subscriptions/m:aftenposten": {"interval": "weekly", "lastDate": "2026-03-05"},
            f"users/{UID}/subscriptions/{KIWI}": {"interval": "monthly", "lastDate": "2026-11-02", "lapsesAfter": "x"},
            f"users/{UID}/subscriptions/m:broken": {"interval": "yearly", "lastDate": "2026-11-02"},
            "elsewhere/x/subscriptions/y": {"interval": "monthly", "lastDate": "2026-11-02"},
        },
    )
    written = migrations.subscription_lapses(docs, docs.query_group("subscriptions"), now=NOW)
    assert written == 2
    assert data(docs, f"users/{UID}/subscriptions/{NETFLIX}") == {
        "interval": "monthly",
        "lastDate": "2024-12-15",
        "amount": 14900,
        "lapsesAfter": "2025-02-18",  # 15 February, a charge missed, three days late at most
    }
    assert data(docs, f"users/{UID}/subscriptions/m:aftenposten")["lapsesAfter"] == "2026-03-20"
    assert data(docs, f"users/{UID}/subscriptions/{KIWI}")["lapsesAfter"] == "x"  # written since: left
    assert "lapsesAfter" not in data(docs, f"users/{UID}/subscriptions/m:broken")
    assert "lapsesAfter" not in data(docs, "elsewhere/x/subscriptions/y")
    assert migrations.done_in(docs.get(MIGRATIONS), SUBSCRIPTION_LAPSES)
    assert migrations.subscription_lapses(docs, docs.query_group("subscriptions"), now=NOW) == 0


def test_a_subscription_whose_last_charge_no_day_can_follow_is_left_and_the_migration_still_done() -> None:
    """A last charge on 9999-12-31 raised OverflowError: the migration failed, never recorded
    done, and every deploy's migrate step with it (found in review, 2026-12-07)."""
    from fjordbank.service_layer.migrations import SUBSCRIPTION_LAPSES

    docs = MemoryDocuments(fixed_clock())
    seed(docs, {f"users/{UID}/subscriptions/{NETFLIX}": {"interval": "monthly", "lastDate": "9999-12-31"}})
    assert migrations.subscription_lapses(docs, docs.query_group("subscriptions"), now=NOW) == 0
    assert migrations.done_in(docs.get(MIGRATIONS), SUBSCRIPTION_LAPSES)
