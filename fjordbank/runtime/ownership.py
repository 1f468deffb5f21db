"""Which payment partitions this instance of a service works on.

Every instance of a service (K of them: Cloud Run instances, pods, devstack replicas) takes
leases on partitions in a replicated NATS KV bucket (``topology.OWNERS_BUCKET``) and works
only on the partitions it holds; so two instances never work on one partition at once, and
one payer's payments go through one instance, in order (the ledger's group commit holds
per partition, and instances do not fight over a payer's account).

Keys, per service (a service's NATS user may write only its own):

    <service>.p<n>                  -> the instance holding partition n
    <service>.members.<instance>    -> the instance is alive

The bucket expires every entry ``LEASE_SECONDS`` after its last write. Each instance, every
``LEASE_RENEW_SECONDS``, writes its member key and renews its leases (compare-and-set on the
revision it wrote: a lease somebody else took is lost, never overwritten; one that lapsed
and nobody took is created again); and on a schedule of its own (so that slow round trips
there never delay a renewal) counts the live members and moves towards its fair share,
ceil(partitions / members): it releases the excess or claims free partitions
(create-if-absent: one claimant wins). A partition given
up stops being worked on at once, and its lease is renewed on until the batch in hand is
settled and deleted at the next tick after that: the handover never waits for the old
holder's expiry, and never blocks the renewal of the instance's other leases (it did: four
partitions given up one after another, each waiting for its batch, took longer than a
lease, and the instance's other leases lapsed too). Each instance prefers its own partitions
by rendezvous hashing, so a fresh instance and the old ones rarely want the same one.

Failure: a killed instance's leases expire within ``LEASE_SECONDS`` and the others claim
them at their next tick; its unacknowledged messages come back after the consumers' ack
wait. A hung instance (SIGSTOP) stops counting as holder after ``LEASE_VALID_SECONDS``
without a renewal (``holds`` is False before the lease can expire, so it stops first), and
when it resumes its renewal fails on the revision and it drops the partition. While NATS
cannot be reached nobody can renew, so everybody stops after ``LEASE_VALID_SECONDS`` and
resumes when it can renew again; nothing moves meanwhile.

A stable instance name (``FJB_INSTANCE_ID``: a pod name, a devstack replica's name) lets a
restarted instance take back the leases its previous process held at once instead of
waiting for them to expire: the name must then be unique among the live instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge

from fjordbank import topology
from fjordbank.adapters import nats_conn
from fjordbank.runtime.in_hand import WRONG_LAST_SEQUENCE

log = logging.getLogger(__name__)

OWNED = Gauge("fjb_partitions_owned", "Payment partitions this instance holds a lease on", ["service"])
MOVES = Counter("fjb_partition_moves_total", "Partition leases taken or given up by this instance", ["service", "move"])

# a coroutine function: LeaseThread hands its calls to the service's loop (run_coroutine_threadsafe)
Hook = Callable[[int], Coroutine[Any, Any, None]]


def instance_id(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    given = env.get("FJB_INSTANCE_ID", "").strip()
    if given:
        return given
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def preference(instance: str, partition: int) -> int:
    """Rendezvous hashing: the higher, the more this instance wants the partition."""
    return int.from_bytes(hashlib.blake2b(f"{instance}/{partition}".encode(), digest_size=8).digest(), "big")


def _wrong_last(result: object) -> bool:
    """Whether a KV write's result is JetStream's refusal of its last sequence. nats-py's
    ``KeyValue.delete(last=)`` raises it as a plain BadRequestError (only ``update`` and
    ``create`` turn it into KeyWrongLastSequenceError): a lease taken before its handover's
    delete was counted released, never lost (found in review, 2026-12-07)."""
    if isinstance(result, nats.js.errors.KeyWrongLastSequenceError):
        return True
    return isinstance(result, nats.js.errors.BadRequestError) and result.err_code in WRONG_LAST_SEQUENCE


def fair_share(partitions: int, members: int) -> int:
    return math.ceil(partitions / max(members, 1))


@dataclass
class Lease:
    revision: int
    # monotonic time at which the last successful write was sent: the entry's expiry counts
    # from when the server stored it, which is after this, so the lease is valid at least
    # until renewed + LEASE_SECONDS. (The time the answer came back is later by however
    # long the answer took: counted from then, an answer slower than LEASE_SECONDS -
    # LEASE_VALID_SECONDS let a holder go on working after its entry had expired and been
    # taken.)
    renewed: float


class Ownership:
    """The leases of one service instance. ``on_acquire(p)`` starts the partition's work;
    ``on_release(p)`` stops it and returns once its batch in hand is settled."""

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        service: str,
        instance: str,
        *,
        partitions: int = topology.PAYMENT_PARTITIONS,
        on_acquire: Hook,
        on_release: Hook,
        renew_seconds: float = topology.LEASE_RENEW_SECONDS,
        valid_seconds: float = topology.LEASE_VALID_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.js = js
        self.kv = kv
        self.service = service
        self.instance = instance
        self.partitions = partitions
        self.on_acquire = on_acquire
        self.on_release = on_release
        self.renew_seconds = renew_seconds
        self.valid_seconds = valid_seconds
        self.clock = clock
        self.leases: dict[int, Lease] = {}
        # partitions being given up: their work stopping (on_release running), their lease
        # still renewed until it has, then deleted (_finish_releases)
        self.stopping: dict[int, tuple[asyncio.Future[None], str]] = {}
        # leases created again after they lapsed, whose partition is not yet started again
        # (`_started_again`, from the balance loop): not held for the workers until it is.
        # Partition -> the take-back's number: one taken back again while its start runs
        # (lapsed once more) is started again after it
        self.starting: dict[int, int] = {}
        self._taken_back = itertools.count()
        self.member_revision: int | None = None
        self.members = 1
        # the service is stopping (its workers finishing their batches in hand): nothing is
        # claimed any more (claims went on meanwhile, and a partition a sibling had just
        # handed over sat unworked for the rest of the drain: found in review, 2026-12-06),
        # and every partition held is given up, each handed over as soon as its own work
        # has stopped (`balance`), not all at once after the slowest batch (the idle ones
        # sat unworked until the stop's end and their leases' expiry at every rollout:
        # found in review, 2026-12-07).
        self.draining = False
        # the renewals and the handovers' deletes of the same leases, one at a time (a
        # delete answered before a renewal's write would be counted a lost lease)
        self._writing = asyncio.Lock()

    # ---- what the workers ask --------------------------------------------------------
    def holds(self, partition: int) -> bool:
        lease = self.leases.get(partition)
        return (
            lease is not None
            and partition not in self.stopping
            and partition not in self.starting
            and self.clock() - lease.renewed < self.valid_seconds
        )

    def key(self, partition: int) -> str:
        return f"{self.service}.p{partition}"

    @property
    def member_key(self) -> str:
        return f"{self.service}.members.{self.instance}"

    # ---- the loop ---------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """Two loops: the renewals, every ``renew_seconds`` whatever else is going on, and the
        rest (membership, the fair share, claims and handovers). One tick did both, one
        after the other: on a loaded two-core machine (load average 18, an R3 KV write taking
        half a second) the rest took several round trips (an instance below its share tried
        every partition it did not hold, three round trips each), the next renewal came more
        than a lease later, and every instance's leases lapsed at once (the bench's K=3
        phase, docs/capacity.md section 7, seventeenth run)."""
        OWNED.labels(self.service).set(0)  # the series from the start (none held yet): one that never claims shows
        renewing = asyncio.create_task(self._every(stopping, self._keep_alive))
        try:
            await self._every(stopping, self._balance_and_count)
        finally:
            if not stopping.is_set():  # cancelled: the renewals with it
                renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _every(self, stopping: asyncio.Event, step: Callable[[], Awaitable[None]]) -> None:
        """``step`` every ``renew_seconds`` (counted from when it started) until ``stopping``;
        a failure logged, and the loop goes on (not a dead thread with the leases unrenewed)."""
        while not stopping.is_set():
            started = self.clock()
            try:
                await step()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("partition leases: NATS unavailable", extra={"error": repr(exc)})
            except Exception:  # a hook's failure: logged, and the leases renewed on
                log.exception("partition leases: tick failed")
            try:
                await asyncio.wait_for(stopping.wait(), max(0.0, started + self.renew_seconds - self.clock()))
            except TimeoutError:
                pass

    async def _balance_and_count(self) -> None:
        """One balance, and the count of partitions held after it, whether it went through
        or not: counted after a balance that went through only, the gauge kept its last
        value while the bucket did not answer and every lease lapsed, and
        FjbPartitionsUnowned stayed silent in the very case its runbook names (found in
        review, 2026-12-07)."""
        try:
            await self.balance()
        finally:
            OWNED.labels(self.service).set(sum(1 for p in self.leases if self.holds(p)))

    async def tick(self) -> None:
        """One renewal, then one balance (the tests' deterministic step; ``run`` does each
        on its own schedule)."""
        await self._keep_alive()
        await self.balance()

    async def _keep_alive(self) -> None:
        """The leases and the member key, renewed together: the member key expires as the
        leases do, so it is written on their schedule (written with the claims, it expired
        while a claim waited for the service's loop, and the others counted one member less)."""
        results = await asyncio.gather(self._renew(), self._heartbeat(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def balance(self) -> None:
        """Hand over what has stopped and move towards the fair share: ceil(partitions /
        live members)."""
        if self.draining:
            for p in list(self.leases):
                self._give_up(p, "stopping")
        await self._started_again()
        await self._finish_releases()
        if self.draining:
            return
        if self.member_revision is None:  # counted among the members from the first look
            await self._heartbeat()
        present = await self._present()
        self.members = await self._count_members(present)
        share = fair_share(self.partitions, self.members)
        kept = [p for p in self.leases if p not in self.stopping]
        if len(kept) > share:
            for p in sorted(kept, key=lambda p: preference(self.instance, p))[: len(kept) - share]:
                self._give_up(p, "rebalance")  # the ones this instance wants least
        elif len(kept) < share:
            await self._claim(share - len(kept), present)

    async def _heartbeat(self) -> None:
        value = self.instance.encode()
        try:
            if self.member_revision is None:
                self.member_revision = await self.kv.put(self.member_key, value)
            else:
                self.member_revision = await self.kv.update(self.member_key, value, last=self.member_revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            self.member_revision = await self.kv.put(self.member_key, value)

    async def _renew(self) -> None:
        """Every lease at once (one after another, a busy cluster's round trips added up to
        more than the lease under load). A lease that lapsed unrenewed and that nobody took
        meanwhile is taken back (every instance of a stalled machine lapses at once, and all
        the partitions moved when each counted its own as lost); one somebody else holds is
        lost: its work stops at once."""
        async with self._writing:
            leases = list(self.leases.items())
            sent = self.clock()  # before the writes: see Lease.renewed
            results = await asyncio.gather(
                *(self.kv.update(self.key(p), self.instance.encode(), last=lease.revision) for p, lease in leases),
                return_exceptions=True,
            )
            failure: BaseException | None = None
            lapsed = []
            for (p, lease), result in zip(leases, results, strict=True):
                if isinstance(result, nats.js.errors.KeyWrongLastSequenceError):
                    lapsed.append(p)  # expired (taken, or not yet)
                elif isinstance(result, BaseException):
                    failure = failure or result
                else:
                    lease.revision, lease.renewed = result, sent
            if lapsed:
                for p in await self._take_back(lapsed):
                    self.starting[p] = next(self._taken_back)
        if failure is not None:
            raise failure

    async def _started_again(self) -> None:
        """A lease created again after it lapsed may have been another instance's meanwhile
        (this one hung longer than a lease, the other claimed the partition, worked it and
        handed it over): the partition is started as one acquired (``on_acquire``: the
        service forgets what it remembered of the partition's documents, which the other
        wrote since; taken back without it, the ledger decided on versions from before;
        found in review, 2026-12-07). From the balance loop, as a claim's start is, and not
        held for the workers until then (``starting``): started from the renewal step, a
        hook waiting for the service's busy loop held every renewal up, and the leases
        taken back lapsed again, round after round; and the workers went on with the
        versions from before meanwhile (found in review, 2026-12-07)."""
        for p, taken in sorted(self.starting.items()):
            try:
                if p in self.leases and p not in self.stopping:
                    await self.on_acquire(p)
            except Exception:  # held but not worked on would stall it: let it go, to be claimed again
                log.exception("partition could not be started", extra={"partition": p, "service": self.service})
                self._give_up(p, "start failed")
            finally:
                if self.starting.get(p) == taken:  # (not taken back again meanwhile)
                    del self.starting[p]

    async def _take_back(self, lapsed: list[int]) -> list[int]:
        """Create again the leases that lapsed; the ones somebody else holds (or that are
        being given up anyway) are lost. One whose live entry names this instance is still
        its own: a renewal whose write landed but whose answer was lost (a timeout, a
        reconnect as a NATS node fails over) left the revision known here behind, and the
        next renewal was refused. It is renewed from the entry's revision, not counted lost
        (found in review, 2026-12-06: its work stopped and its batch was given back, and the
        lease went unrenewed while the batch still ran). Returns the partitions whose lease
        was created again (not found still its own): `_started_again`."""
        back = [p for p in lapsed if p not in self.stopping]
        sent = self.clock()
        results = await asyncio.gather(*(self._create(p) for p in back), return_exceptions=True)
        taken = {p: r for p, r in zip(back, results, strict=True) if isinstance(r, int)}
        created = sorted(taken)
        taken.update(await self._still_mine([p for p in back if p not in taken]))
        for p in lapsed:
            if p in taken:
                self.leases[p] = Lease(taken[p], sent)
                MOVES.labels(self.service, "taken back").inc()
                log.warning(
                    "partition lease lapsed unrenewed; taken back", extra={"partition": p, "service": self.service}
                )
                continue
            # held by somebody else (we were hung, or cut off longer than the lease): stop at once
            log.warning("partition lease lost", extra={"partition": p, "service": self.service})
            del self.leases[p]
            MOVES.labels(self.service, "lost").inc()
            self._give_up(p, "lost")
        return created

    async def _still_mine(self, partitions: list[int]) -> dict[int, int]:
        """Of ``partitions`` (their leases' creates refused), those whose live entry names
        this instance, renewed from the entry's revision: partition -> new revision."""
        if not partitions:
            return {}
        me = self.instance.encode()
        try:
            entries = await self._entries([self.key(p) for p in partitions])
        except Exception:  # unread: lost, as before (the entry may be somebody else's)
            log.warning("could not read refused leases", extra={"service": self.service}, exc_info=True)
            return {}
        mine = [p for p in partitions if (e := entries.get(self.key(p))) is not None and e.value == me]
        results = await asyncio.gather(
            *(self.kv.update(self.key(p), me, last=entries[self.key(p)].revision) for p in mine),
            return_exceptions=True,
        )
        return {p: r for p, r in zip(mine, results, strict=True) if isinstance(r, int)}

    async def _create(self, partition: int) -> int | None:
        """The lease created if nobody holds it, else None. (nats-py's create reads the key
        after a refused write, to tell a delete marker from a live entry; an entry that
        expired in between made it raise KeyNotFoundError, and that failed the whole tick.)"""
        try:
            return await self.kv.create(self.key(partition), self.instance.encode())
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            return None

    async def _present(self) -> set[str]:
        """The keys of this service that have an entry (live, or a delete marker): one round trip."""
        prefix = f"$KV.{topology.OWNERS_BUCKET}."
        info = await self.js.stream_info(f"KV_{topology.OWNERS_BUCKET}", subjects_filter=f"{prefix}{self.service}.>")
        return {subject.removeprefix(prefix) for subject in info.state.subjects or {}}

    async def _entries(self, keys: list[str]) -> dict[str, Any]:
        """The live entries of ``keys`` (not the deleted ones), read all at once."""
        results = await asyncio.gather(*(self.kv.get(k) for k in keys), return_exceptions=True)
        out = {}
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, nats.js.errors.KeyNotFoundError):  # deleted: an instance that stopped cleanly
                continue
            if isinstance(result, BaseException):
                raise result
            out[key] = result
        return out

    async def _count_members(self, present: set[str]) -> int:
        members = sorted(k for k in present if k.startswith(f"{self.service}.members."))
        return max(len(await self._entries(members)), 1)

    def _give_up(self, partition: int, reason: str) -> None:
        """Start stopping the partition's work (``holds`` is False from now on). Its lease,
        if still held, is renewed until the work has stopped and deleted then."""
        if partition not in self.stopping:
            work = asyncio.get_running_loop().create_task(self.on_release(partition))
            self.stopping[partition] = (work, reason)

    async def _finish_releases(self, *, wait: bool = False) -> None:
        """Hand over every partition whose work has stopped (with ``wait``: every one, once
        its work has stopped): its lease deleted, all at once. A delete that fails leaves
        the entry to expire (LEASE_SECONDS), as a killed holder's would."""
        if wait and self.stopping:
            await asyncio.wait([work for work, _ in self.stopping.values()])
        async with self._writing:  # not while a renewal of the same leases is on its way
            handed = await self._hand_over()
        for (p, _, reason), result in handed:
            if _wrong_last(result):
                MOVES.labels(self.service, "lost").inc()  # expired and taken before it was handed over
                continue
            if isinstance(result, BaseException):
                log.warning("partition lease not deleted; it expires", extra={"partition": p, "error": repr(result)})
            MOVES.labels(self.service, "released").inc()
            log.info("partition released", extra={"partition": p, "service": self.service, "reason": reason})

    async def _hand_over(self) -> list[tuple[tuple[int, Lease, str], object]]:
        """Delete the leases of the partitions whose work has stopped: (what, the delete's result)."""
        handed = []
        for p, (work, reason) in list(self.stopping.items()):
            if not work.done():
                continue
            if work.cancelled() or work.exception() is not None:  # handed over anyway: holds() is False
                log.error(
                    "partition's work did not stop cleanly",
                    extra={"partition": p, "service": self.service},
                    exc_info=None if work.cancelled() else work.exception(),
                )
            lease = self.leases.pop(p, None)  # first: holds() stays False in between (read from another thread)
            del self.stopping[p]
            if lease is not None:  # else lost meanwhile: somebody else's already
                handed.append((p, lease, reason))
        results = await asyncio.gather(
            *(self.kv.delete(self.key(p), last=lease.revision) for p, lease, _ in handed), return_exceptions=True
        )
        return list(zip(handed, results, strict=True))

    async def _claim(self, count: int, present: set[str]) -> None:
        """Up to ``count`` partitions nobody holds, the most wanted first: the free ones
        created, and ours by name (our previous process's) taken back. The ones with an
        entry are read all at once first, so a claim costs one round trip per partition
        taken, not three per partition tried."""
        wanted = sorted(
            (p for p in range(self.partitions) if p not in self.leases and p not in self.stopping),
            key=lambda p: preference(self.instance, p),
            reverse=True,
        )
        entries = await self._entries([self.key(p) for p in wanted if self.key(p) in present])
        for p in wanted:
            if count <= 0:
                return
            entry = entries.get(self.key(p))
            if entry is not None and entry.value != self.instance.encode():
                continue  # somebody else's
            sent = self.clock()  # before the writes: see Lease.renewed
            revision = await (self._create(p) if entry is None else self._update(p, entry.revision))
            if revision is None:
                continue
            self.leases[p] = Lease(revision, sent)
            count -= 1
            MOVES.labels(self.service, "acquired").inc()
            log.info("partition acquired", extra={"partition": p, "service": self.service, "instance": self.instance})
            try:
                await self.on_acquire(p)
            except Exception:  # held but not worked on would stall it: let it go, to be claimed again
                log.exception("partition could not be started", extra={"partition": p, "service": self.service})
                self._give_up(p, "start failed")

    async def _update(self, partition: int, revision: int) -> int | None:
        try:
            return await self.kv.update(self.key(partition), self.instance.encode(), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def release_all(self) -> None:
        """On a clean stop: stop the work on every partition and hand them all over at once."""
        for p in list(self.leases):
            self._give_up(p, "stopping")
        await self._finish_releases(wait=True)
        if self.member_revision is not None:
            try:
                await self.kv.delete(self.member_key)
            except (TimeoutError, nats.errors.Error):
                pass


class LeaseThread:
    """An instance's ``Ownership`` loop on a thread of its own, with its own event loop and
    NATS connection. Why: on the service's loop the renewals waited behind the work. A
    200-payment group commit keeps a loaded two-core machine's loop busy for a second or
    two, and the leases then expired under an instance that was working fine (71 and 67
    "partition lease lost" in one 20,000-payment bench run, the hot merchant's partition
    moving back and forth and its backlog handled a payment at a time). On a thread, the
    renewals get the interpreter every few milliseconds whatever the loop is doing; only a
    stopped process (or NATS out of reach) lets a lease lapse, as it should.

    ``on_acquire`` and ``on_release`` run on the service's loop (``main_loop``); the lease
    loop waits for ``on_acquire``, and renews on while an ``on_release`` runs (see
    ``Ownership._give_up``). ``holds`` is read from the service's loop."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Client]],
        service: str,
        instance: str,
        *,
        main_loop: asyncio.AbstractEventLoop,
        on_acquire: Hook,
        on_release: Hook,
    ) -> None:
        self.connect = connect
        self.service = service
        self.instance = instance
        self.main_loop = main_loop
        self.on_acquire = on_acquire
        self.on_release = on_release
        self.ownership: Ownership | None = None
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"leases-{service}", daemon=True)

    def holds(self, partition: int) -> bool:
        ownership = self.ownership
        return ownership is not None and ownership.holds(partition)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def drain(self) -> None:
        """The service is stopping: claim nothing more (Ownership.draining); what is held
        is renewed until `stop` hands it over. Kept here too: a stop while the lease loop
        still connects reaches the Ownership it makes then (found in review, 2026-12-06)."""
        self.draining = True
        ownership = self.ownership
        if ownership is not None:
            ownership.draining = True  # read by the lease thread at its next balance

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop renewing and hand every partition over (after its work stopped)."""
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # its loop is closed: the thread ended already (logged there)
                pass
        await asyncio.to_thread(self._thread.join, timeout)

    def _bridge(self, hook: Hook) -> Hook:
        async def call(partition: int) -> None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(hook(partition), self.main_loop))

        return call

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:
            log.exception("partition leases stopped on an error")
        finally:
            loop.close()

    async def _watch_connection(self, nc: Client, every: float = 1.0) -> None:
        """Stop the loop when the connection is closed for good (`nats_conn.closed_for_good`):
        renewals that failed for ever were logged and retried while the thread lived on, so
        the service never learnt (found in review, 2026-12-06)."""
        assert self._stop is not None
        if await nats_conn.closed_for_good(nc, self._stop, every):
            log.error("partition leases: the NATS connection closed for good")
            self._stop.set()

    def is_alive(self) -> bool:
        """Whether the lease loop runs (it ends only when stopped, or on a bug: logged)."""
        return self._thread.is_alive()

    async def _pause(self) -> None:
        """A second before the next try, or less when stopped meanwhile."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), 1.0)
        except TimeoutError:
            pass

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._started.set()
        nc = None
        while nc is None and not self._stop.is_set():
            try:
                nc = await self.connect()
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                log.warning("partition leases: cannot connect to NATS", extra={"error": repr(exc)})
                await self._pause()
        if nc is None:
            return
        try:
            js = nc.jetstream()
            kv = None
            while kv is None and not self._stop.is_set():
                try:  # a timeout, or a 503 while the cluster elects the bucket's leader
                    kv = await js.key_value(topology.OWNERS_BUCKET)
                except (TimeoutError, nats.errors.Error) as exc:
                    log.warning("partition leases: cannot open the bucket", extra={"error": repr(exc)})
                    await self._pause()
            if kv is None:
                return
            self.ownership = Ownership(
                js,
                kv,
                self.service,
                self.instance,
                on_acquire=self._bridge(self.on_acquire),
                on_release=self._bridge(self.on_release),
            )
            self.ownership.draining = self.draining
            closed = asyncio.create_task(self._watch_connection(nc))
            try:
                await self.ownership.run(self._stop)
            finally:
                closed.cancel()
            if nc.is_closed:
                # the thread ends, and the service with it (its lease watch): its leases lapse
                # and another instance takes its partitions within a lease's validity
                raise RuntimeError("partition leases: the NATS connection closed for good")
            await self.ownership.release_all()  # hand the partitions over now, not at expiry
        finally:
            if not nc.is_closed:
                await nc.close()
