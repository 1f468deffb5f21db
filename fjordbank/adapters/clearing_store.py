"""The file exchange with the clearing house: the clearing service's channel.

Files are exchanged through directories (in production a transfer service such as SFTP
moves them): pain.001 files are written to ``outbox/``, pain.002 answers arrive in
``inbox/`` and are moved to ``processed/`` once handled. Payments from other banks arrive
as pacs.008 files in ``incoming/`` (moved to ``processed/`` too), and the returns of those
that cannot be credited go out as pacs.004 files in ``outbox/`` (``RET-<payment id>.xml``).
A file in is read when its name ends in ``.xml`` in any case (one named otherwise is said
once, for an operator), and nothing in ``processed/`` is ever replaced by a later file of
its name, even one filed away at the same instant by another process: a file is linked
there (which refuses a name taken) and then unlinked from where it was, and one left in
both places by a crash between the two is taken as filed away, not read again
(`ClearingDirs._move`; where a link is refused, an exclusive copy, then the unlink).
Writes are atomic (a temporary file renamed into place), so the other side never reads
half a file.

The bank keeps a mark of each file it delivers (``delivered/<name>``, a copy of the file:
`ClearingDirs.deliver`), flagged ``<name>.whole`` once written whole, so a return's mark is
placed again as it is only when it is whole. Marks written before that flag (2026-12-06),
or by a process killed between a mark and its flag, have none: such a mark is looked at
only where it matters, when its return is delivered again (``deliver(resend_lost=True)``
with the mark non-empty and neither flagged ``.placed`` nor ``.whole``;
`ClearingDirs._found_whole`), under the mark's lock the delivery holds: read once (at most
`MAX_XML_BYTES`) and parsed safely (fjordbank.domain.safexml); a complete XML document is
synced to disk, flagged whole and placed as it is, one that is not (cut short by a kill, a
full disk, or a crash that lost its data) is said at WARNING and the return written again.
Its flag spares that read at any later try. Opening the store reads no mark: a pain.001's
mark is never delivered again, so never read (found in review, 2026-12-06: a step at every
start read, parsed and synced every unflagged mark, every historical pain.001's among them,
in the store's constructor: 2,000 marks, 22 s).

The bank's side of the exchange is ``ClearingDirs.deliver`` (a pain.001 out), ``delivered``,
``answers`` and ``read_answer`` (pain.002s in): the channel
(fjordbank.service_layer.clearing.Channel). When the channel is down they raise
``ConnectionError`` (``ClearingChannelDown`` when a chaos run asks for the outage with the
``clearing_channel_down`` fault, fjordbank.adapters.faults; emulator only), as a transfer
service that cannot be reached would; the clearing use case then keeps the files for later
(fjordbank.service_layer.clearing). The clearing records in Firestore are the use case's
too, on the document ports.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import functools
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter

from fjordbank.adapters.faults import FaultSwitch
from fjordbank.domain import safexml
from fjordbank.domain.iso20022 import MAX_XML_BYTES, MAX_XML_ELEMENTS

log = logging.getLogger("clearing.channel")

CHANNEL_DOWN = "clearing_channel_down"  # the fault's name in the faults file
# A file from the clearing house set aside for an operator (``processed/<name>.<why>``): what
# it was (an answer to a pain.001, or a pacs.008 of payments in) and why. Every combination
# the code sets aside is created at 0, so an increase shows from the first one.
SET_ASIDE = Counter(
    "fjb_clearing_files_set_aside_total",
    "Files from the clearing house moved aside for an operator, by kind of file and why",
    ["file", "why"],
)
ANSWER, INCOMING = "answer", "incoming"
SET_ASIDE_WHY = {
    ANSWER: ("rejected", "unknown", "undelivered", "unmatched", "mismatch"),
    INCOMING: ("rejected",),
}
for _file, _whys in SET_ASIDE_WHY.items():
    for _why in _whys:
        SET_ASIDE.labels(_file, _why)
# what link(2) fails with on a file system that has no hard links
NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV})
# what link(2) fails with where a file is copied into processed/ instead (`ClearingDirs._move`):
# no hard links, EPERM from fs.protected_hardlinks too (a file another user wrote), EIO from
# a FUSE file system that has no link
COPY_INSTEAD = NO_LINKS | {errno.EIO}
COPY_CHUNK = 1 << 20
_copy_said = False  # the copy said once a process (`_say_copied`)
# A file is written whole in ``staging/`` before it is put in the outbox (a crash mid-write
# left a partial ``.tmp-*`` in the outbox, which a transfer service taking every object
# would have sent); one left there this long is a crashed writer's, and removed.
STALE_STAGING_SECONDS = 600
KEPT_NAME = 120  # characters of a file's name kept when the whole is too long to set it aside
XML = ".xml"  # the files read from the clearing house, named so in any case


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _flag(path: Path) -> None:
    """An empty file, on disk before this returns."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    """An exclusive lock on an open file, waited for: one delivery of a name at a time.
    A file system without locks (a FUSE mount may refuse flock) is left unlocked: two
    writers on different hosts are kept apart by the clearing records' SENDING_GRACE."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in NO_LINKS | {errno.ENOLCK}:
            raise


def _say_copied(exc: OSError) -> None:
    """Said at WARNING once a process: files are copied into processed/, not linked."""
    global _copy_said
    if not _copy_said:
        _copy_said = True
        log.warning(
            "a file from the clearing house could not be linked into processed/ (no hard links, or "
            "protected hard links and a file of another user): files are copied there instead",
            extra={"error": str(exc)},
        )


def _copy_exclusive(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target``, a name no file has (O_CREAT | O_EXCL): False when one
    has it, and nothing is written. The copy is on disk before this returns; one cut short
    (a full disk, an error of the mount) is removed, and the error raised."""
    with source.open("rb") as src:
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            try:
                while chunk := src.read(COPY_CHUNK):
                    _write_all(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return True


class ClearingChannelDown(ConnectionError):
    """The file exchange with the clearing house cannot be reached (an injected outage)."""


class ClearingDirs:
    def __init__(self, root: str | Path, faults: FaultSwitch | None = None) -> None:
        self.root = Path(root)
        self.faults = faults
        self.outbox, self.inbox, self.processed, self.sent, self.delivered_marks, self.incoming_dir = (
            self.root / name for name in ("outbox", "inbox", "processed", "sent", "delivered", "incoming")
        )
        self.staging = self.root / "staging"  # the bank's own: files written whole before they go out
        for d in (
            self.outbox,
            self.inbox,
            self.processed,
            self.sent,
            self.delivered_marks,
            self.incoming_dir,
            self.staging,
        ):
            d.mkdir(parents=True, exist_ok=True)
        # files that could not be filed away (`file_away`): not read again by this process
        self.unmovable: set[Path] = set()
        # files not named *.xml, said once each (`_waiting`)
        self.not_read: set[Path] = set()
        self._clear_stale_staging()

    def _clear_stale_staging(self) -> None:
        """Remove what crashed writers left: in ``staging/``, and in the outbox itself from
        before files were staged (2026-12-06); not a writer's at work (younger)."""
        now = time.time()
        for stale in [*self.staging.glob(".tmp-*"), *self.outbox.glob(".tmp-*")]:
            try:
                if now - stale.stat().st_mtime > STALE_STAGING_SECONDS:
                    stale.unlink()
                    log.warning("a crashed writer's partial file removed", extra={"file": str(stale)})
            except FileNotFoundError:
                continue

    def _found_whole(self, mark: int, name: str) -> bool:
        """Whether the mark ``name`` (open for reading and writing, and locked: a lock on NFS
        needs a file open for writing, found in review, 2026-12-06), non-empty and flagged
        neither placed nor whole, is whole: a complete XML document, parsed safely. Then it is
        synced to disk and flagged ``.whole`` before this returns; one that is not is said at
        WARNING. One read of at most `MAX_XML_BYTES`, and a parse."""
        os.lseek(mark, 0, os.SEEK_SET)
        with os.fdopen(os.dup(mark), "rb") as fh:
            data = fh.read(MAX_XML_BYTES + 1)
        try:
            safexml.parse(
                data,
                what="delivery mark",
                where="delivery marks",
                max_bytes=MAX_XML_BYTES,
                max_elements=MAX_XML_ELEMENTS,
            )
        except safexml.UnsafeOrMalformedXml as exc:
            log.warning(
                "a delivery mark cut short (not a whole XML document): its return is written again",
                extra={"file": name, "error": str(exc)},
            )
            return False
        os.fsync(mark)  # its bytes on disk before a flag says they are whole
        _flag(self.delivered_marks / f"{name}.whole")
        log.info("a delivery mark without its flag found whole and flagged", extra={"file": name})
        return True

    @staticmethod
    def write_atomic(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    # ---- the channel: the bank's side of the exchange -----------------------------------
    def _channel(self) -> None:
        if self.faults is not None and self.faults.active(CHANNEL_DOWN) is not None:
            raise ClearingChannelDown("the clearing channel is down (injected by a chaos run)")

    def deliver(self, name: str, data: bytes, *, resend_lost: bool = False) -> None:
        """Send a pain.001 file to the clearing house (here: into the outbox), once: a name
        delivered before raises FileExistsError. The bank keeps its own mark of each
        delivery (``delivered/{name}``, a folder the clearing house never touches: a copy of
        the file; the clearing house may file its own away), and delivers a name under a
        lock on that mark: the clearing house moving the first copy from the outbox to
        ``sent/`` while a second writer was between its check and its link let the second
        copy through. The mark is written before the file is put in place (written whole in
        ``staging/``, then linked into the outbox, which fails if the name is there), and
        taken back if placing it fails: a crash between the two leaves a name marked and
        perhaps never placed, which is never delivered again (its payments wait for an
        answer, and an operator asks the clearing house), where the other order left a
        name placed and unmarked, delivered again once the clearing house had filed its
        copy away: a duplicate it rejects as a whole, returning the payments the first copy
        settles (found in review, 2026-12-06). An empty mark is a crash before either.

        ``resend_lost``: a file that is the same message however often it is sent (a pacs.004
        return: its message id is its payment's, ``RET-<payment id>.xml``). Once placed, its
        mark gets a flag (``delivered/{name}.placed``); a name marked, not flagged, and
        neither waiting in the outbox nor taken is a crash between the mark and the file, and
        the mark's own copy is placed again (the same bytes: not one made again at this try,
        whose creation time and settlement date could differ). Taken for delivered, such a
        return was recorded so and never sent: the paying bank never got its money back
        (found in review, 2026-12-06); resent without the flag, a return the clearing house
        had taken and filed away was sent a second time, different (found in review of
        that fix). Only a crash between the file and its flag sends the same bytes twice.
        Every mark is flagged ``.whole`` once written whole (a pain.001's too, though only a
        return's flag is read here). A return's mark without that flag (written before it
        existed, or killed between the two) is read and parsed here, once (`_found_whole`):
        placed as it is when whole, written again when cut short."""
        self._channel()
        mark = os.open(self.delivered_marks / name, os.O_CREAT | os.O_RDWR, 0o644)
        flag, whole = self.delivered_marks / f"{name}.placed", self.delivered_marks / f"{name}.whole"
        try:
            _lock(mark)
            placed = (self.outbox / name).exists() or (self.sent / name).exists()
            marked = os.fstat(mark).st_size > 0
            if placed or (marked and (not resend_lost or flag.exists())):
                raise FileExistsError(f"{name} was delivered before")
            # a return's mark is its copy to place again only once written whole (its own
            # flag): one cut short (a full disk, a kill while it was written) is written again
            # (found in review, 2026-12-06: the part was placed as the return)
            again = marked and (whole.exists() or self._found_whole(mark, name))
            if again:
                log.warning(
                    "a file marked delivered and never placed (a crash between the two); its copy placed now",
                    extra={"file": name},
                )
                data = Path(self.delivered_marks / name).read_bytes()  # the same bytes as marked
            try:
                if not again:
                    whole.unlink(missing_ok=True)  # never a stale flag on a rewrite cut short
                    os.ftruncate(mark, 0)
                    os.lseek(mark, 0, os.SEEK_SET)  # `_found_whole` may have read it
                    _write_all(mark, data)  # the copy the bank keeps: what was delivered, when taken and filed away
                    os.fsync(mark)
                    _flag(whole)  # every mark, so that `_found_whole` reads none of these
                self._place(name, data)
            except BaseException:
                if not again:
                    whole.unlink(missing_ok=True)
                    os.ftruncate(mark, 0)  # not delivered: a later try delivers it
                    os.fsync(mark)
                raise
            if resend_lost:
                _flag(flag)
        finally:
            os.close(mark)  # and with it the lock

    def _place(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.staging, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.outbox / name)  # FileExistsError when it is there
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in NO_LINKS:
                    raise
                # a file system without hard links (Cloud Storage FUSE, which the
                # production channel mounts): checked, then renamed into place; the
                # window between the two is what is left of two writers' race
                if (self.outbox / name).exists():
                    raise FileExistsError(f"{name} is waiting to be taken") from None
                os.replace(tmp, self.outbox / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def delivered(self, name: str) -> bool:
        """Whether the pain.001 ``name`` was delivered: waiting in the outbox, taken by the
        clearing house (moved to ``sent/``), or marked delivered."""
        self._channel()
        mark = self.delivered_marks / name
        return (
            (self.outbox / name).exists() or (self.sent / name).exists() or (mark.exists() and mark.stat().st_size > 0)
        )

    def delivered_copy(self, name: str) -> bytes | None:
        """The pain.001 ``name`` as delivered (waiting in the outbox, or taken), None if
        it was not."""
        self._channel()
        for folder in (self.outbox, self.sent, self.delivered_marks):
            try:
                copy = (folder / name).read_bytes()
            except FileNotFoundError:
                continue  # taken meanwhile: in sent/ (or filed away: the bank's copy)
            if copy:  # an empty mark: a delivery that crashed before it placed the file
                return copy
        return None

    def _waiting(self, folder: Path) -> list[Path]:
        """The files waiting in ``folder``, by name: each named ``*.xml`` in any case
        (``NICS0001.XML`` was never read, set aside or counted, found in review,
        2026-12-06). A file named otherwise is not read (a transfer service's file at work,
        ``*.filepart``, is one) but said at WARNING once per name, so none is left unseen;
        a hidden one (a writer's temporary file, ``.tmp-*`` as `write_atomic` makes) only
        once it is older than `STALE_STAGING_SECONDS`: left by a writer that crashed."""
        waiting = []
        filed = functools.cache(self._filed_inodes)  # processed/ scanned once a listing, if at all
        for path in folder.iterdir():
            if path in self.unmovable or path in self.not_read:
                continue
            hidden = path.name.startswith(".")
            if not hidden and path.suffix.lower() == XML:
                if not self._left_by_a_crash(path, filed):
                    waiting.append(path)
                continue
            if hidden:
                try:
                    if time.time() - path.lstat().st_mtime <= STALE_STAGING_SECONDS:
                        continue  # a writer's at work
                except FileNotFoundError:
                    continue  # renamed into place meanwhile
            self.not_read.add(path)
            log.warning(
                "a file from the clearing house not read: its name does not end in .xml; for an operator",
                extra={"file": str(path)},
            )
        return sorted(waiting)

    def _left_by_a_crash(self, path: Path, filed: Callable[[], tuple[int, frozenset[int]]]) -> bool:
        """Whether ``path`` was filed away and is still where it was (`_filed_already`):
        killed between `_move`'s link and its unlink, or another process between the two
        now. Then taken from there, not read again as a new file. Its answer or payments
        were handled before it was filed away (and handling one again is idempotent:
        clearing's and incoming's module docstrings), so this spares the work and a second
        copy in ``processed/``.

        A check that fails (EIO from a FUSE or NFS mount for a moment) is no file filed
        away: the file is listed and read, and `file_away` looks again. Taken for filed
        away, it was hidden until a restart (found in review, 2026-12-06). Only a file
        found filed away that cannot be unlinked from where it was is skipped (`unmovable`),
        for an operator."""
        try:
            if not self._filed_already(path, filed):
                return False
        except FileNotFoundError:
            return True  # gone meanwhile: filed away by another process
        except OSError as exc:
            if isinstance(exc, ConnectionError):
                raise
            log.warning(
                "whether a file was filed away could not be checked; it is read (handling it again is idempotent)",
                extra={"file": str(path), "error": str(exc)},
            )
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return True  # the other process's unlink came first
        except OSError as exc:
            if isinstance(exc, ConnectionError):
                raise
            self.unmovable.add(path)  # in processed/ already: not read again
            log.error(
                "a file filed away and left where it was cannot be removed from there; for an operator",
                extra={"file": str(path), "error": str(exc)},
            )
            return True
        log.warning(
            "a file filed away by another process, or left by a crash, taken from where it was",
            extra={"file": str(path)},
        )
        return True

    def answers(self) -> list[Path]:
        """The pain.002 answers waiting, by name (a file id starts with its time)."""
        self._channel()
        return self._waiting(self.inbox)

    def read_answer(self, path: Path) -> bytes:
        self._channel()
        return _read_bounded(path)

    def incoming(self) -> list[Path]:
        """The pacs.008 files of payments from other banks waiting, by name."""
        self._channel()
        return self._waiting(self.incoming_dir)

    def read_incoming(self, path: Path) -> bytes:
        self._channel()
        return _read_bounded(path)

    def _free(self, name: str, suffix: str) -> Path:
        """Where in ``processed/`` a file ``name`` goes: ``<name><suffix>``, or, when a file
        is there under it, ``<stem>.<UTC time><ext><suffix>`` (``NICS1.20261206T161923123456Z.xml``).
        A rename replaced the earlier file of the name, the bank's only copy of what it
        credited from it (found in review, 2026-12-06). Only a first look: the name may be
        taken before the file is moved there (`_move` refuses to move over it)."""
        target = self.processed / f"{name}{suffix}"
        stem, ext = os.path.splitext(name)
        while os.path.lexists(target):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = self.processed / f"{stem}.{stamp}{ext}{suffix}"
        return target

    def _move(self, path: Path, name: str, suffix: str) -> None:
        """Move ``path`` to a free name in ``processed/`` (`_free`) without ever replacing a
        file there: linked there (link(2) fails when the name is taken, and the next free
        name is tried), then unlinked from where it was. A rename replaces silently, so
        two processes filing away files of one name at the same instant (two instances, or
        the inbox and incoming/) could leave one file over the other between `_free`'s check
        and the rename (found in a review, 2026-12-06). Killed between the link and the
        unlink, the file is in both places: `_filed_already` tells it filed away. Two
        processes filing away the same file at the same instant may each link it, leaving
        two names of one file in ``processed/``: never one lost.

        Where link(2) is refused (`COPY_INSTEAD`: a file system without hard links, such
        as Cloud Storage FUSE, which the production channel mounts; EPERM from
        fs.protected_hardlinks for a file the transfer service wrote as another user; EIO
        from a FUSE file system that has no link) the file is copied instead
        (`_copy_exclusive`: never over a name taken, and no ownership needed), then
        unlinked. A checked rename there could still replace a file filed away between the
        check and the rename (found in review, 2026-12-06). A copy shares no inode with the
        file, so one killed between the copy and the unlink is read again at the next
        listing, as a new file: handling it again is idempotent (clearing's and incoming's
        module docstrings), and it is filed away again beside the first copy, never over
        it (and, set aside, counted twice).

        A file set aside is counted (`SET_ASIDE`) once it is linked or copied: another
        process listing in the window may take it from where it was before this one does
        (`_left_by_a_crash`), and it was not counted then."""
        while True:
            target = self._free(name, suffix)
            try:
                os.link(path, target)
            except FileExistsError:
                continue  # filed away under that name since the check: the next free name
            except OSError as exc:
                if exc.errno not in COPY_INSTEAD:
                    raise
                _say_copied(exc)
                if not _copy_exclusive(path, target):
                    continue
            break
        if suffix:
            SET_ASIDE.labels(INCOMING if path.parent == self.incoming_dir else ANSWER, suffix.lstrip(".")).inc()
        os.unlink(path)  # FileNotFoundError: another process filed it away too, at the same instant

    def _filed_already(self, path: Path, filed: Callable[[], tuple[int, frozenset[int]]] | None = None) -> bool:
        """Whether the file ``path`` is in ``processed/`` too: another name of it (the same
        inode) is there, left by a process killed between `_move`'s link and its unlink, or
        linked by another process that has not unlinked it yet. Only a file with more than
        one name is looked for there (none on a file system without hard links; a file a
        transfer service keeps a second name of, in an archive, is). ``filed``: the inodes
        of ``processed/`` (`_filed_inodes`), which a listing reads at most once for all its
        files (found in review, 2026-12-06: a scan per file, at every listing)."""
        here = path.stat()
        if here.st_nlink < 2:
            return False
        device, inodes = (filed or self._filed_inodes)()
        return here.st_dev == device and here.st_ino in inodes

    def _filed_inodes(self) -> tuple[int, frozenset[int]]:
        """The device of ``processed/`` and the inodes of the files in it: one scan."""
        device = os.stat(self.processed).st_dev
        with os.scandir(self.processed) as entries:
            return device, frozenset(entry.inode() for entry in entries)

    def file_away(self, path: Path, suffix: str = "") -> None:
        """An answer or a pacs.008 handled, into ``processed/`` (``suffix``: set aside for
        an operator), never over a file filed away before under its name (`_free`), nor
        over one another process files away under it at the same instant (`_move`). One
        another process filed away first (two instances overlapping in a rollout both read
        it; what each did with it is idempotent), or one this process was killed filing
        away (in ``processed/`` already, `_filed_already`), is not an error: raised, it
        restarted the reading loop; it is taken from where it was, not filed twice."""
        try:
            if self._filed_already(path):
                os.unlink(path)
                log.info("file filed away already; taken from where it was", extra={"file": path.name})
                return
            try:
                self._move(path, path.name, suffix)
            except OSError as exc:
                if exc.errno != errno.ENAMETOOLONG:
                    raise
                # the suffix made the name too long: kept short, with a digest of the whole
                digest = hashlib.sha256(path.name.encode()).hexdigest()[:12]
                self._move(path, f"{path.name[:KEPT_NAME]}-{digest}", suffix)
        except FileNotFoundError:
            log.info("file filed away by another process", extra={"file": path.name})
            return
        except OSError as exc:
            if isinstance(exc, ConnectionError):  # the channel is down: the loop waits for it
                raise
            # raised, it restarted the reading loop on the same oldest file every second, and
            # every answer and payment in after it waited (found in review, 2026-12-06)
            self.unmovable.add(path)
            log.error(
                "a file from the clearing house cannot be filed away; skipped until an operator moves it",
                extra={"file": path.name, "error": str(exc)},
            )
            return


def _read_bounded(path: Path) -> bytes:
    """A file from the clearing house, at most one byte more than a payment file may be
    (`fjordbank.domain.iso20022.MAX_XML_BYTES`): one larger is refused by its parse, and set
    aside, without being read whole (a file larger than the service's memory made it fail
    on the same oldest file at every start, found in review, 2026-12-06)."""
    with path.open("rb") as fh:
        return fh.read(MAX_XML_BYTES + 1)
