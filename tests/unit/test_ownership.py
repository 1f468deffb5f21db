"""Partition leases (fjordbank/runtime/ownership.py) on an in-memory KV bucket that behaves
as NATS's does for what the leases use: revisions, create-if-absent, compare-and-set
updates, delete markers, and expiry of every entry LEASE_SECONDS after its last write.

What is promised: instances share the partitions fairly, a killed instance's partitions
move to the others once its leases expire, a hung instance stops before its leases can be
taken and drops them when it resumes, a restarted instance with the same name takes its
leases back at once, and at no moment do two instances work on one partition."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import nats.js.errors
import pytest

from fjordbank import topology
from fjordbank.runtime.ownership import Ownership, fair_share

PREFIX = f"$KV.{topology.OWNERS_BUCKET}."


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Entry:
    value: bytes | None  # None: a delete marker
    revision: int
    written: float


@dataclass
class FakeKV:
    clock: Clock
    ttl: float = topology.LEASE_SECONDS
    seq: int = 0
    late_answer: float = 0.0  # the next lease renewal's answer comes back this long after its write
    failing_deletes: int = 0  # the next this many deletes get no answer
    entries: dict[str, Entry] = field(default_factory=dict)

    def _live(self, key: str) -> Entry | None:
        e = self.entries.get(key)
        if e is not None and self.clock() - e.written >= self.ttl:
            del self.entries[key]
            return None
        return e

    def _write(self, key: str, value: bytes | None) -> int:
        self.seq += 1
        self.entries[key] = Entry(value, self.seq, self.clock())
        return self.seq

    async def put(self, key, value):
        return self._write(key, value)

    async def create(self, key, value):
        e = self._live(key)
        if e is not None and e.value is not None:
            raise nats.js.errors.KeyWrongLastSequenceError()
        return self._write(key, value)

    async def update(self, key, value, last=None):
        e = self._live(key)
        if e is None or e.revision != last:
            raise nats.js.errors.KeyWrongLastSequenceError()
        revision = self._write(key, value)
        if self.late_answer and ".members." not in key:
            self.clock.now += self.late_answer
            self.late_answer = 0.0
        return revision

    async def get(self, key):
        e = self._live(key)
        if e is None or e.value is None:
            raise nats.js.errors.KeyNotFoundError()
        return type("E", (), {"value": e.value, "revision": e.revision})()

    async def delete(self, key, last=None):
        if self.failing_deletes:
            self.failing_deletes -= 1
            raise TimeoutError("no answer")
        e = self._live(key)
        if last is not None and (e is None or e.revision != last):
            # what nats-py raises for a delete (not KeyWrongLastSequenceError, as update and create do)
            raise nats.js.errors.BadRequestError(code=400, err_code=10071, description="wrong last sequence")
        self._write(key, None)
        return True


@dataclass
class FakeJS:
    kv: FakeKV

    async def stream_info(self, _name, subjects_filter=None):
        prefix = subjects_filter.removesuffix(">")
        subjects = {
            PREFIX + k: 1 for k in list(self.kv.entries) if self.kv._live(k) and (PREFIX + k).startswith(prefix)
        }
        return type("I", (), {"state": type("S", (), {"subjects": subjects})()})()


def instance(kv: FakeKV, clock: Clock, name: str, *, settle_after: int = 0) -> Ownership:
    """``settle_after``: the batch in hand of a partition given up settles only after that
    many turns of the event loop (a tick or so each), as a real batch takes its time."""
    work: set[int] = set()

    async def acquire(p):
        work.add(p)

    async def release(p):
        for _ in range(settle_after):
            await asyncio.sleep(0)
        work.discard(p)

    o = Ownership(FakeJS(kv), kv, "ledger", name, on_acquire=acquire, on_release=release, clock=clock)
    o.work = work  # type: ignore[attr-defined]
    return o


# one loop for a whole test's ticks: a partition given up stops in a task of its own, which
# the next tick finds done (asyncio.run would cancel it when each tick's loop closed)
_loop = asyncio.new_event_loop()


def run(coro):
    """A tick that waits for something that never comes fails the test (rather than hang it)."""
    return _loop.run_until_complete(asyncio.wait_for(coro, 5))


def step(clock: Clock, *instances: Ownership, seconds: float = topology.LEASE_RENEW_SECONDS) -> None:
    """One renewal period: every live instance ticks, then time passes."""
    for o in instances:
        run(o.tick())
        assert_exclusive(clock, *instances)
    clock.now += seconds


def assert_exclusive(clock, *instances: Ownership) -> None:
    """No partition is worked on by two instances under valid leases: held, or given up
    with its batch still in hand and its lease still renewed. (An instance whose lease
    lapsed, hung or cut off, may still have a batch in hand when another takes over: the
    leases stop it at its next look, and the ledger's preconditions fail its commit.)"""

    def valid(o: Ownership, p: int) -> bool:
        lease = o.leases.get(p)
        return lease is not None and clock() - lease.renewed < o.valid_seconds

    for p in range(topology.PAYMENT_PARTITIONS):
        working = [o.instance for o in instances if p in o.work and valid(o, p)]  # type: ignore[attr-defined]
        assert len(working) <= 1, (p, working)


def held(o: Ownership) -> set[int]:
    return {p for p in o.leases if o.holds(p)}


def recording(o: Ownership, hook: str) -> list[int]:
    """The partitions ``o``'s ``hook`` (on_acquire, on_release) is called with from now on."""
    calls: list[int] = []
    first = getattr(o, hook)

    async def recorded(p: int) -> None:
        calls.append(p)
        await first(p)

    setattr(o, hook, recorded)
    return calls


def test_fair_share():
    assert [fair_share(8, k) for k in (0, 1, 2, 3, 8, 9)] == [8, 8, 4, 3, 1, 1]


def test_one_instance_takes_every_partition_and_a_second_one_gets_half():
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    step(clock, a)
    assert held(a) == set(range(8))
    b = instance(kv, clock, "ledger-2")
    for _ in range(4):
        step(clock, a, b)
    assert len(held(a)) == 4 and len(held(b)) == 4 and held(a).isdisjoint(held(b))
    assert a.work == held(a) and b.work == held(b)  # type: ignore[attr-defined]


def test_a_killed_instance_partitions_move_once_its_leases_expire():
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    for _ in range(4):
        step(clock, a, b)
    lost = held(a)
    moved_after = None
    for n in range(1, 10):  # a is killed: only b ticks
        step(clock, b)
        if held(b) == set(range(8)):
            moved_after = n * topology.LEASE_RENEW_SECONDS
            break
    assert moved_after is not None and moved_after <= topology.LEASE_SECONDS + 2 * topology.LEASE_RENEW_SECONDS
    assert lost <= held(b)


def test_a_hung_instance_stops_before_its_leases_can_be_taken_and_drops_them_when_it_resumes():
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    for _ in range(4):
        step(clock, a, b)
    mine = held(a)
    # a is hung: it still thinks it holds its partitions, but holds() goes False first
    clock.now += topology.LEASE_VALID_SECONDS
    assert held(a) == set()
    for _ in range(4):
        step(clock, b)  # b takes them over (a's leases expired meanwhile)
    assert mine <= held(b)
    step(clock, a, b)  # a resumes: its renewals fail on the revision, it lets go
    assert a.leases.keys().isdisjoint(mine) and a.work.isdisjoint(mine)  # type: ignore[attr-defined]


def test_a_lease_counts_from_when_its_renewal_was_sent_not_from_its_late_answer():
    """The entry expires LEASE_SECONDS after the server stored it. A renewal whose answer
    came back a second late, counted from the answer, let the holder work on for a second
    after its entry could have expired and been taken (here by b, while a hung after it)."""
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    step(clock, a)
    assert held(a) == set(range(8))
    kv.late_answer = 1.0  # the first renewal of a's next tick is stored now, answered a second later
    run(a.tick())
    clock.now += topology.LEASE_SECONDS - 1.0 + 0.05  # a hangs: that first entry has expired
    run(b.tick())
    taken = held(b)
    assert taken, "b takes the lease that expired"
    assert_exclusive(clock, a, b)
    assert not taken & held(a)


def test_a_partition_that_could_not_be_started_is_let_go_and_claimed_again():
    """Held but not worked on, it would stall: its lease is given up, and taken again."""
    clock = Clock()
    kv = FakeKV(clock)
    work: set[int] = set()
    failures = [RuntimeError("could not start")]

    async def acquire(p):
        if failures:
            raise failures.pop()
        work.add(p)

    async def release(p):
        work.discard(p)

    o = Ownership(FakeJS(kv), kv, "ledger", "ledger", on_acquire=acquire, on_release=release, clock=clock)
    run(o.tick())
    assert len(work) == 7 and held(o) == work
    clock.now += topology.LEASE_RENEW_SECONDS
    run(o.tick())
    assert work == set(range(8)) == set(o.leases)


async def test_the_lease_loop_goes_on_after_a_tick_fails():
    """A hook's failure is logged; the thread does not die with the leases unrenewed."""
    clock = Clock()
    o = instance(FakeKV(clock), clock, "ledger")
    balances, renewals = [], []

    async def balance():
        balances.append(1)
        if len(balances) == 1:
            raise RuntimeError("a hook failed")

    async def renew():
        renewals.append(1)
        if len(renewals) == 1:
            raise RuntimeError("NATS said something odd")

    o.balance = balance  # type: ignore[method-assign]
    o._renew = renew  # type: ignore[method-assign]
    o.renew_seconds = 0.01
    stopping = asyncio.Event()
    loop = asyncio.create_task(o.run(stopping))
    await asyncio.sleep(0.2)
    stopping.set()
    await loop
    assert len(balances) > 2 and len(renewals) > 2


async def test_renewals_go_on_while_the_rest_of_the_lease_work_is_slow():
    """Counting members and claiming take round trips of their own; on a loaded machine
    they took longer than a lease, and when they ran in the same tick as the renewals every
    instance's leases lapsed at once. Renewals (and the member key) now keep their own
    schedule."""
    import time

    kv = FakeKV(clock=time.monotonic, ttl=0.6)  # type: ignore[arg-type]

    class SlowJS(FakeJS):
        async def stream_info(self, _name, subjects_filter=None):
            await asyncio.sleep(1.0)  # longer than the lease
            return await super().stream_info(_name, subjects_filter)

    async def hook(_p):
        pass

    o = Ownership(
        SlowJS(kv),
        kv,
        "ledger",
        "ledger",
        on_acquire=hook,
        on_release=hook,
        renew_seconds=0.1,
        valid_seconds=0.45,
        clock=time.monotonic,
    )
    stopping = asyncio.Event()
    loop = asyncio.create_task(o.run(stopping))
    deadline = time.monotonic() + 5
    while held(o) != set(range(8)):
        assert time.monotonic() < deadline, "the partitions were never all taken"
        await asyncio.sleep(0.02)
    first = {p: lease.revision for p, lease in o.leases.items()}
    for _ in range(100):  # 2 s: two slow balances, twenty renewals
        assert held(o) == set(range(8))
        assert kv._live(o.member_key), "the member key is renewed with the leases"
        await asyncio.sleep(0.02)
    assert all(o.leases[p].revision > first[p] for p in first)
    stopping.set()
    await loop


def test_leases_that_lapsed_while_every_instance_stalled_are_taken_back_not_moved():
    """A stalled machine (every instance late at once, longer than a lease): nobody took
    the lapsed leases, so each instance creates its own again and keeps its partitions
    (they all moved when each counted its own as lost and claimed from what was free)."""
    clock = Clock()
    kv = FakeKV(clock)
    a, b, c = (instance(kv, clock, name) for name in ("ledger", "ledger-2", "ledger-3"))
    for _ in range(6):
        step(clock, a, b, c)
    before = {o.instance: held(o) for o in (a, b, c)}
    assert sorted(len(v) for v in before.values()) == [2, 3, 3]
    clock.now += topology.LEASE_SECONDS + 0.5  # all stalled: every entry expired
    for _ in range(3):
        step(clock, a, b, c)
    assert {o.instance: held(o) for o in (a, b, c)} == before
    assert all(o.stopping == {} for o in (a, b, c))


def test_a_renewal_whose_answer_was_lost_keeps_the_lease_not_counted_lost():
    """The renewal's write landed and its answer was lost (a timeout, a reconnect as a NATS
    node fails over): the revision known here is behind the entry's, and the next renewal
    is refused. The entry still names this instance, so the lease is renewed from it and
    its work goes on (found in review, 2026-12-06: counted lost, the work stopped and the
    batch given back)."""
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    for _ in range(3):
        step(clock, a)
    before = held(a)
    p = min(before)
    released = recording(a, "on_release")
    run(kv.update(a.key(p), b"ledger", last=a.leases[p].revision))  # the write that landed, its answer lost
    for _ in range(3):
        step(clock, a)
    # never given up, not even for a tick (it was, and claimed back by name at once)
    assert released == [] and held(a) == before and a.stopping == {}
    assert a.leases[p].revision == kv.entries[a.key(p)].revision


def test_a_refused_renewal_of_a_lease_somebody_else_holds_is_still_lost():
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    for _ in range(3):
        step(clock, a)
    p = min(held(a))
    run(kv.put(a.key(p), b"ledger-2"))  # another instance's entry (a took too long, say)
    step(clock, a)
    assert p not in held(a) and p not in a.leases  # its work stopped (given up at once)


def test_a_claim_goes_on_when_a_key_expires_between_its_write_and_its_read():
    """nats-py's create reads the key after a refused write (a delete marker can be written
    over); an entry that expired in between made it raise KeyNotFoundError, which failed
    the whole tick. That partition is now simply not taken this time."""
    clock = Clock()
    kv = FakeKV(clock)
    o = instance(kv, clock, "ledger")
    real_create = kv.create
    raised = []

    async def create(key, value):
        if not raised:
            raised.append(key)
            raise nats.js.errors.KeyNotFoundError()
        return await real_create(key, value)

    kv.create = create  # type: ignore[method-assign]
    step(clock, o)
    assert len(held(o)) == 7
    step(clock, o)
    assert held(o) == set(range(8))


def test_a_partition_given_up_slowly_keeps_its_lease_and_the_others_until_its_work_stops():
    """Giving up a partition waits for its batch in hand. That wait used to hold up the
    tick: four partitions given up one after another took longer than a lease, and the
    instance's other leases lapsed meanwhile. Now the renewals go on (the partition given up
    included, so nobody else takes it while its batch is still being worked on), and it is
    handed over at the first tick after its work stopped."""
    clock = Clock()
    kv = FakeKV(clock)
    work: set[int] = set()
    stopped: dict[int, asyncio.Event] = {}

    async def acquire(p):
        work.add(p)

    async def release(p):  # the batch in hand settles only when the test says so
        await stopped.setdefault(p, asyncio.Event()).wait()
        work.discard(p)

    a = Ownership(FakeJS(kv), kv, "ledger", "ledger", on_acquire=acquire, on_release=release, clock=clock)
    a.work = work  # type: ignore[attr-defined]
    step(clock, a)
    assert held(a) == set(range(8))
    b = instance(kv, clock, "ledger-2")
    step(clock, b)  # b is a member now: a's share is 4
    for _ in range(8):  # 6 s: twice a lease, and a's batches in hand are still not settled
        step(clock, a, b)
    given_up = set(a.stopping)
    assert len(given_up) == 4
    assert held(a) == set(range(8)) - given_up, "the partitions a keeps never lapsed"
    assert held(b) == set(), "nobody takes a partition whose batch is still being worked on"
    assert all(kv._live(a.key(p)) for p in given_up), "renewed on while its work stops"
    for p in given_up:
        _loop.call_soon(stopped.setdefault(p, asyncio.Event()).set)
    step(clock, b)  # the release hooks return
    step(clock, a, b)  # a hands them over, b takes them
    assert held(b) == given_up and held(a) == set(range(8)) - given_up
    assert a.stopping == {}


def test_a_handover_whose_delete_gets_no_answer_expires_and_the_rest_goes_on():
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    step(clock, a)
    step(clock, b)  # a's share is 4 from its next tick
    run(a.tick())  # gives 4 up (their work stops at once here)
    kept = held(a)
    kv.failing_deletes = 4
    clock.now += topology.LEASE_RENEW_SECONDS
    run(a.tick())  # renews what it keeps, then the deletes go unanswered
    assert a.stopping == {} and set(a.leases) == kept
    for _ in range(6):
        step(clock, a, b)
    assert held(a) == kept and held(b) == set(range(8)) - kept  # the 4 expired and moved


def test_a_restarted_instance_with_the_same_name_takes_its_leases_back_at_once():
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    step(clock, a)
    again = instance(kv, clock, "ledger")  # the same FJB_INSTANCE_ID, a new process
    step(clock, again)
    assert held(again) == set(range(8))


def test_a_clean_stop_hands_everything_over_at_the_next_tick():
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    for _ in range(4):
        step(clock, a, b)
    run(a.release_all())
    assert a.work == set()  # type: ignore[attr-defined]
    step(clock, b, seconds=0.1)
    assert held(b) == set(range(8))


def test_a_draining_instance_claims_nothing_and_hands_each_partition_over_once_its_work_stops():
    """Stopping (its workers finishing their batches), an instance went on claiming, and a
    partition a sibling had just handed over sat unworked for the rest of its drain (found
    in review, 2026-12-06). What it holds is given up at once, and each partition handed
    over when its own work has stopped, renewed until then: the idle ones sat unworked
    until the slowest batch had settled and the stop deleted every lease (found in review,
    2026-12-07)."""
    clock = Clock()
    kv = FakeKV(clock)
    a, b = instance(kv, clock, "ledger"), instance(kv, clock, "ledger-2")
    for _ in range(4):
        step(clock, a, b)
    mine = held(a)
    assert mine and held(b) and mine | held(b) == set(range(8))
    slow = min(mine)  # its batch in hand takes a while
    settled = asyncio.Event()
    quick = a.on_release

    async def release(p: int) -> None:
        if p == slow:
            await settled.wait()
        await quick(p)

    a.on_release = release
    a.draining = True
    run(b.release_all())  # b stops cleanly: its partitions are free
    for _ in range(3):
        step(clock, a, seconds=0.5)
    assert held(a) == set()  # nothing claimed, and nothing worked on any more
    assert set(a.leases) == {slow}  # the idle ones handed over; the slow one's lease renewed
    live = {k for k in kv.entries if kv._live(k) and kv.entries[k].value == b"ledger" and ".p" in k}
    assert live == {a.key(slow)}
    settled.set()
    for _ in range(2):
        step(clock, a, seconds=0.5)
    assert a.leases == {} and not any(kv._live(a.key(p)) and kv.entries[a.key(p)].value == b"ledger" for p in mine)


@pytest.mark.parametrize("settle_after", [0, 3])
@pytest.mark.parametrize("seed", range(5))
def test_random_ticks_kills_and_hangs_never_give_a_partition_to_two(seed, settle_after):
    import random

    rng = random.Random(seed)
    clock = Clock()
    kv = FakeKV(clock)
    pool = [instance(kv, clock, f"ledger-{n}", settle_after=settle_after) for n in range(3)]
    alive = set(range(3))
    for _ in range(200):
        for n in list(alive):
            if rng.random() < 0.8:  # sometimes late (hung for a moment)
                run(pool[n].tick())
            assert_exclusive(clock, *pool)
        if rng.random() < 0.05 and len(alive) > 1:
            alive.discard(rng.choice(sorted(alive)))
        if rng.random() < 0.05:
            n = rng.randrange(3)
            pool[n] = instance(kv, clock, f"ledger-{n}", settle_after=settle_after)
            alive.add(n)
        clock.now += rng.uniform(0.2, 2.5)
        assert_exclusive(clock, *pool)


# ---- the lease loop on its own thread (LeaseThread) ---------------------------------------
class FakeConnection:
    def __init__(self, kv: FakeKV) -> None:
        self.kv = kv
        self.closed = False

    @property
    def is_closed(self) -> bool:
        return self.closed

    def jetstream(self):
        js = FakeJS(self.kv)

        async def key_value(_bucket):
            return self.kv

        js.key_value = key_value  # type: ignore[attr-defined]
        return js

    async def close(self) -> None:
        self.closed = True


def test_leases_are_renewed_while_the_services_loop_is_busy():
    """A batch that holds the service's loop for longer than a lease (a large group commit
    on a loaded machine) no longer lets the leases lapse: they are renewed on their own
    thread, and the hooks still run on the service's loop."""
    import threading
    import time

    from fjordbank.runtime.ownership import LeaseThread

    kv = FakeKV(clock=time.monotonic)  # real time: the thread's loop ticks by itself
    connection = FakeConnection(kv)
    lost: list[int] = []
    hooks_on: set[str] = set()

    async def scenario() -> None:
        async def acquire(_p):
            hooks_on.add(threading.current_thread().name)

        async def release(p):
            hooks_on.add(threading.current_thread().name)
            lost.append(p)

        async def connect():
            return connection

        leases = LeaseThread(
            connect, "ledger", "ledger-1", main_loop=asyncio.get_running_loop(), on_acquire=acquire, on_release=release
        )
        leases.start()
        deadline = time.monotonic() + 10
        while not all(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS)):
            assert time.monotonic() < deadline, "the partitions were never all taken"
            await asyncio.sleep(0.05)
        time.sleep(topology.LEASE_SECONDS + 1.0)  # the service's loop blocked longer than a lease
        await asyncio.sleep(0.1)  # the hooks of anything that happened meanwhile run now
        assert all(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS))
        await leases.stop()
        assert sorted(lost) == list(range(topology.PAYMENT_PARTITIONS))  # handed over on stop

    asyncio.run(scenario())
    assert hooks_on == {"MainThread"}
    assert connection.closed
    assert not any(e.value for k, e in kv.entries.items() if ".p" in k)  # every lease deleted


def test_the_lease_thread_ends_when_its_connection_is_closed_for_good():
    """nats-py closes a client for good on some server errors (an authorization violation
    after a credentials rotation): the thread ends, so the service's lease watch stops the
    service, rather than retry for ever while the service answers ready."""
    import time

    from fjordbank.runtime.ownership import LeaseThread

    kv = FakeKV(clock=time.monotonic)
    connection = FakeConnection(kv)

    async def scenario() -> None:
        async def hook(_p):
            return None

        async def connect():
            return connection

        leases = LeaseThread(
            connect, "ledger", "ledger-1", main_loop=asyncio.get_running_loop(), on_acquire=hook, on_release=hook
        )
        leases.start()
        deadline = time.monotonic() + 10
        while not all(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS)):
            assert time.monotonic() < deadline, "the partitions were never all taken"
            await asyncio.sleep(0.05)
        connection.closed = True  # the server's -ERR: closed, never to reconnect
        deadline = time.monotonic() + 5
        while leases.is_alive():
            assert time.monotonic() < deadline, "the lease thread lived on with its connection closed"
            await asyncio.sleep(0.05)
        await leases.stop()

    asyncio.run(scenario())


def test_a_drain_asked_while_the_lease_thread_still_connects_reaches_its_ownership():
    """drain() before the lease loop had made its Ownership was lost, and the stopping
    instance claimed partitions nobody worked (found in review, 2026-12-06)."""
    import time

    from fjordbank.runtime.ownership import LeaseThread

    kv = FakeKV(clock=time.monotonic)
    connection = FakeConnection(kv)

    async def scenario() -> None:
        async def hook(_p):
            return None

        async def connect():
            return connection

        leases = LeaseThread(
            connect, "ledger", "ledger-1", main_loop=asyncio.get_running_loop(), on_acquire=hook, on_release=hook
        )
        leases.drain()  # the stop came first
        leases.start()
        await asyncio.sleep(2 * topology.LEASE_SECONDS / 3)
        assert leases.ownership is not None and leases.ownership.draining
        assert not any(leases.holds(p) for p in range(topology.PAYMENT_PARTITIONS))
        await leases.stop()

    asyncio.run(scenario())


def test_a_lease_created_again_after_another_held_it_starts_the_partition_again():
    """Hung longer than a lease, the instance's partitions went to another, which worked them
    and handed them over; its renewal then created them again without on_acquire, and the
    service decided on the document versions it remembered from before the other's writes
    (found in review, 2026-12-07)."""
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger-a")
    started = recording(a, "on_acquire")
    for _ in range(4):
        step(clock, a)
    assert sorted(started) == list(range(topology.PAYMENT_PARTITIONS))
    started.clear()
    clock.now += topology.LEASE_SECONDS + 0.5  # a hung: its entries expire
    b = instance(kv, clock, "ledger-b")
    for _ in range(3):
        step(clock, b)
    assert sorted(held(b)) == list(range(topology.PAYMENT_PARTITIONS))
    run(b.release_all())  # b stops cleanly: its leases deleted
    run(a.tick())  # a resumes
    assert sorted(held(a)) == list(range(topology.PAYMENT_PARTITIONS))
    assert sorted(started) == list(range(topology.PAYMENT_PARTITIONS))


def test_the_partitions_held_are_counted_when_the_bucket_stops_answering():
    """The gauge behind FjbPartitionsUnowned was set after a balance that went through
    only: with the bucket away the leases lapsed, the instance worked nothing, and the
    gauge still said 8 (found in review, 2026-12-07)."""
    from prometheus_client import REGISTRY

    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    run(a._balance_and_count())
    owned = lambda: REGISTRY.get_sample_value("fjb_partitions_owned", {"service": "ledger"})  # noqa: E731
    assert owned() == topology.PAYMENT_PARTITIONS

    async def away(*_args, **_kwargs):
        raise TimeoutError("the bucket did not answer")

    a.js.stream_info = away  # type: ignore[method-assign]
    kv.update = away  # type: ignore[method-assign]
    clock.now += a.valid_seconds
    with pytest.raises(TimeoutError):
        run(a._balance_and_count())
    assert held(a) == set() and owned() == 0


def test_a_lease_taken_back_is_started_from_the_balance_not_the_renewal_and_held_only_then():
    """The partitions of leases taken back were started (on_acquire, which waits for the
    service's loop) inside the renewal step: with that loop busy every renewal waited, and
    the leases lapsed again round after round; and they were held for the workers again at
    once, before the start had dropped what the service remembered (found in review,
    2026-12-07)."""
    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger-a")
    for _ in range(2):
        step(clock, a)
    started = recording(a, "on_acquire")
    clock.now += topology.LEASE_SECONDS + 0.5  # a hung: its entries expire, nobody takes them
    run(a._keep_alive())  # the renewal step alone: taken back, not started
    assert started == [] and held(a) == set() and set(a.starting) == set(range(topology.PAYMENT_PARTITIONS))
    first = a.on_acquire
    held_while_started: list[bool] = []

    async def starting(p: int) -> None:
        held_while_started.append(a.holds(p))
        await first(p)

    a.on_acquire = starting
    run(a.balance())  # the other loop starts them
    assert sorted(started) == list(range(topology.PAYMENT_PARTITIONS))
    assert held_while_started == [False] * topology.PAYMENT_PARTITIONS  # held once started, not before
    assert held(a) == set(range(topology.PAYMENT_PARTITIONS)) and a.starting == {}


def test_a_lease_taken_by_another_before_its_handover_is_counted_lost_not_released():
    """nats-py raises a refused delete(last=) as a plain BadRequestError (10071), which was
    counted a release (found in review, 2026-12-07)."""
    from prometheus_client import REGISTRY

    def moves(how: str) -> float:
        return REGISTRY.get_sample_value("fjb_partition_moves_total", {"service": "ledger", "move": how}) or 0.0

    clock = Clock()
    kv = FakeKV(clock)
    a = instance(kv, clock, "ledger")
    step(clock, a)
    p = next(iter(held(a)))
    run(kv.put(a.key(p), b"ledger-2"))  # taken meanwhile (a hung past its lease, say)
    lost, released = moves("lost"), moves("released")

    async def hand_over() -> None:
        a._give_up(p, "rebalance")
        await a._finish_releases(wait=True)

    run(hand_over())
    assert (moves("lost") - lost, moves("released") - released) == (1.0, 0.0)
