"""Start, watch and stop the stack's processes: one pid file and one log file each.

Every process runs in its own session (process group), so stopping it also stops the
children it started (the emulator suite starts Java and Python children): SIGTERM to the
group, then SIGKILL to whatever is left after a grace period. No orphans.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


class StartError(RuntimeError):
    """A component could not start; the message says which and why."""


@dataclass
class Component:
    name: str
    address: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    start_timeout: float = 60.0
    stop_timeout: float = 15.0
    before_start: Callable[[], None] | None = None
    # a signal for the leader alone, first, for a component that shuts its own children
    # down in order (the emulator suite exports its data on SIGINT); None: SIGTERM to all
    leader_signal: int | None = None
    # further log files the component writes itself (in the log folder), rotated with its own
    own_logs: tuple[str, ...] = ()
    # what of it has stopped answering though its leader runs (None: all answers); the
    # emulator suite's leader is firebase-tools, whose Java and Python children may die
    # under it, unseen by its pid (`up`'s watch loop asks this)
    gone: Callable[[], str | None] | None = None


# A component's log over this size is moved aside (``NAME.log.1``, the one before dropped)
# when the component starts: the logs were only ever appended to, across every start, and
# a stack used for days filled the disk (the Functions emulator alone logs a few lines per
# function call) and made each start read a log of gigabytes for its ready line.
MAX_LOG_BYTES = 64 * 1024 * 1024


_MARKER = b"=== "  # how a marker line (Supervisor.start, note_death) begins


def _last_marker(f: BinaryIO, end: int, chunk: int = 1 << 20) -> int | None:
    """The offset of the last marker before ``end``, read backwards a chunk at a time:
    one chunk in memory at a time, each byte read once."""
    pos = end
    after = b""  # the first bytes of those read before: a marker may straddle chunks
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        f.seek(pos)
        data = f.read(step)
        window = data + after
        found = window.rfind(_MARKER)
        if found >= 0:
            return pos + found
        after = window[: len(_MARKER) - 1]
    return None


def since_last_start(path: Path, chunk: int = 1 << 20) -> str:
    """The log from its last marker line ("=== ... starting", "=== ... found dead") on
    (the whole log if it has none); a check made four times a second while a component
    starts, and by every status check while it runs.

    The marker is looked for backwards from the end, then what follows it is read once:
    the time and memory are those of the text returned. (Each chunk read used to be
    prepended to all read so far, copying it again: 256 MB since the start took 27 s and
    800 MB of memory.) That text stays bounded while the component runs: trim() cuts a
    running component's log back to its run's first lines."""
    try:
        f = open(path, "rb")  # (closed by the with below)
    except FileNotFoundError:
        return ""
    with f:
        end = f.seek(0, os.SEEK_END)
        start = _last_marker(f, end, chunk) or 0
        f.seek(start)
        return f.read(end - start).decode(errors="replace")


def rotate(path: Path, limit: int = MAX_LOG_BYTES) -> bool:
    """Move ``path`` to ``path.1`` if it is larger than ``limit``. Returns whether it did."""
    try:
        if path.stat().st_size <= limit:
            return False
    except FileNotFoundError:
        return False
    path.replace(path.with_name(path.name + ".1"))
    return True


# A running component's log is kept under this size (Supervisor.bound_log, from `up`'s watch
# loop, the status command and an `up` that finds the component running): rotate() runs
# only when a component starts, and a stack left running for days grew the emulators' log
# by a few lines per function call, without end. Below MAX_LOG_BYTES: the emulators' ready
# check reads their log since the start on every status check.
MAX_RUNNING_LOG_BYTES = 32 * 1024 * 1024
# The logs read from a byte offset on (the emulators': the function runs a test waits for,
# tests/support/bank.py queue_job; the bench's function times, bench/calibrate.py; the chaos
# clock's job runs, bench/chaos/clock.py): never trimmed while running.
READ_BY_OFFSET = frozenset({"emulators"})
# How much of the run's first lines a trimmed log keeps (the emulators' start, their ready
# line included, takes about 10 KB).
HEAD_BYTES = 1024 * 1024


def trim(path: Path, limit: int = MAX_RUNNING_LOG_BYTES, head: int = HEAD_BYTES) -> bool:
    """Bound the log of a running component if it is larger than ``limit``: copy it to
    ``path.1`` (the one before dropped), then cut it back in place to its run's first
    lines (from its last marker line on, at most ``head`` bytes) and a line saying where
    the rest went. Returns whether it did.

    In place (copytruncate), because the process writing the log keeps it open: a log
    moved aside would go on growing under its new name. The process writes it in append
    mode (Supervisor.start opens it so), so after the cut each write lands at the new end,
    not at its old offset. A line written between the copy and the cut is lost
    (copytruncate's known window, well under a millisecond).

    The run's first lines stay because ready checks read the log since the last start
    (since_last_start): the emulators' "All emulators ready" is written once, when they
    start, so a log cut back to nothing would have lost its marker and ready line, and
    the running suite would count as not ready from then on. What such a check looks for
    in the lines cut from the middle (a fatal line long ago, with nothing after it that
    undoes it) is no longer seen; those lines are in ``path.1`` until the next trim."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= limit:
        return False
    with open(path, "r+b") as f:
        start = _last_marker(f, size)
        first = b""
        if start is not None:
            f.seek(start)
            first = f.read(min(head, size - start))
            first = first[: first.rfind(b"\n") + 1]  # whole lines only
        note = (
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {path.name} was over {limit} bytes: the lines "
            f"between the ones above and this one are in {path.name}.1 ---\n"
        ).encode()
        shutil.copyfile(path, path.with_name(path.name + ".1"))
        f.seek(0)
        f.write(first + note)
        f.flush()
        os.ftruncate(f.fileno(), len(first) + len(note))
    return True


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs we build
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as dead
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


MARKER = "FJB_SUPERVISED"  # set on every process we start; children inherit it


def carries_marker(pid: int, marker: str) -> bool:
    """Whether process ``pid`` is one the stack started as ``marker`` (its environment says
    so). A pid file outlives its process, and after a reboot or a long while its pid is
    another program's: the stack took that one for its component, showed it running, and
    a stop signalled its whole process group (found in review, 2026-12-07). Without /proc
    (not Linux) the pid file is trusted, as before."""
    environ = Path(f"/proc/{pid}/environ")
    if not Path("/proc/self/environ").exists():
        return True
    for _ in range(20):
        try:
            text = environ.read_bytes()
        except OSError:  # gone meanwhile, or another user's: not ours
            return False
        if text:
            return f"{MARKER}={marker}".encode() in text.split(b"\0")
        # empty: a process whose exec has not yet set its environment up (read right after
        # its start, as a test does), or a zombie or kernel thread (never ours)
        time.sleep(0.01)
    return False


def marked_pids(marker: str) -> list[int]:
    """Every process whose environment carries ``FJB_SUPERVISED=<marker>``: the component's
    whole tree, including children that left its process group (the Functions emulator
    starts its Python workers detached) and orphans whose parent already died."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class Supervisor:
    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.stack_id = str(run_dir.resolve())
        run_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        path = self.pid_file(name)
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) and carries_marker(pid, self.marker(name)) else None

    def start(self, comp: Component, base_env: dict[str, str]) -> tuple[int, bool]:
        """Start ``comp`` unless it already runs and is ready. Returns (pid, reused)."""
        running = self.pid(comp.name)
        if running is not None:
            self.bound_log(comp.name)  # before its ready check reads it
            if comp.ready():
                return running, True
        self.stop(comp.name, comp.stop_timeout)  # a half-dead earlier run, or its orphans
        for name in (f"{comp.name}.log", *comp.own_logs):
            rotate(self.log_dir / name)
        if comp.before_start:  # first: what it says of a missing tool comes before the rest
            comp.before_start()
        if _answers(comp):
            raise StartError(
                f"{comp.name}: {comp.address} already answers, but from no process of this stack "
                "(another program, or the stack of another checkout, holds it): stop that one and "
                "run the up command again"
            )
        log_path = self.log_file(comp.name)
        env = {**base_env, **comp.env, MARKER: self.marker(comp.name)}
        with open(log_path, "ab") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {comp.name}: {' '.join(comp.argv)}\n".encode()
            )
            log.flush()
            try:
                proc = subprocess.Popen(
                    comp.argv,
                    cwd=comp.cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StartError(f"{comp.name}: cannot run {comp.argv[0]}: {exc}") from exc
        self.pid_file(comp.name).write_text(str(proc.pid))
        deadline = time.monotonic() + comp.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(
                    f"{comp.name} exited with code {proc.returncode} while starting; "
                    f"last lines of {log_path}:\n{tail(log_path)}"
                )
            if comp.ready():
                return proc.pid, False
            time.sleep(0.25)
        raise StartError(
            f"{comp.name} did not become ready within {comp.start_timeout:.0f}s ({comp.address}); "
            f"last lines of {log_path}:\n{tail(log_path)}"
        )

    def bound_log(self, name: str) -> bool:
        """Keep a running component's log under MAX_RUNNING_LOG_BYTES (trim). Its own
        further logs (Component.own_logs) are left to the rotation at its start: the
        process writing them opened them itself, maybe not in append mode, and a file cut
        under a writer that is not would grow back to its old size, full of zeros. Nor the
        logs read by byte offset (READ_BY_OFFSET): a cut under such a reader lost the lines
        it waited for (found in review, 2026-12-06); they are rotated at their start only."""
        if name in READ_BY_OFFSET:
            return False
        return trim(self.log_file(name), MAX_RUNNING_LOG_BYTES, HEAD_BYTES)

    def marker(self, name: str) -> str:
        return f"{self.stack_id}:{name}"

    def died(self, name: str) -> bool:
        """Whether the component's process is gone without the stack having stopped it
        (its pid file is still there): killed, e.g. by the kernel for memory."""
        return self.pid_file(name).exists() and self.pid(name) is None

    def note_death(self, name: str) -> None:
        """Say in the component's log that it was found dead, once."""
        log_path = self.log_file(name)
        # the end of the log is enough: nothing writes much after a death is noted
        text = _read_end(log_path, TAIL_BYTES).decode(errors="replace")
        if "found dead" in text[text.rfind("\n=== ") :]:
            return
        with open(log_path, "a") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {name} found dead: not stopped by the stack "
                "(killed? the kernel log, e.g. `dmesg | grep -i oom`, says if it was for memory)\n"
            )

    def stop(self, name: str, timeout: float = 15.0, leader_signal: int | None = None) -> bool:
        """Stop a component: ``leader_signal`` to its leader alone if given (waiting up to
        ``timeout`` for its group to end), then SIGTERM to its process group, then SIGKILL
        to every process of its tree still alive. Returns True if something was running."""
        pid = self.pid(name)
        self.pid_file(name).unlink(missing_ok=True)
        if pid is not None:
            if leader_signal is not None:
                _signal(pid, leader_signal)
                _wait_group(pid, timeout)
            _signal_group(pid, signal.SIGTERM)
            _wait_group(pid, timeout)
        leftovers = marked_pids(self.marker(name))
        for child in leftovers:
            _signal(child, signal.SIGKILL)
        return pid is not None or bool(leftovers)

    def kill(self, name: str) -> None:
        """kill -9 the component and everything it started (failure tests)."""
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
        for child in marked_pids(self.marker(name)):
            _signal(child, signal.SIGKILL)
        if pid is not None:
            deadline = time.monotonic() + 10
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.pid_file(name).unlink(missing_ok=True)


def _answers(comp: Component, settle: float = 3.0) -> bool:
    """Whether ``comp``'s address answers as it does when ready, before the stack started it:
    then another program holds it, and a start took that program's answer for the new
    process's (shown ready, while the new one failed to bind and exited). A ready check
    that raises found something there too. Asked for up to ``settle`` seconds: a process of
    the component's just stopped may still be on its way out."""
    deadline = time.monotonic() + settle
    while True:
        try:
            if not comp.ready():
                return False
        except StartError:
            pass
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.25)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _wait_group(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    pid_alive(pgid)  # reaps the leader if it is our own zombie child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# What tail() and note_death() read of a log at most: its end, whatever its size.
TAIL_BYTES = 64 * 1024


def _read_end(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of ``path`` (b"" if there is no such file)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return f.read(limit)
    except FileNotFoundError:
        return b""


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, read from its last TAIL_BYTES only."""
    try:
        with open(path, "rb") as f:
            start = max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES)
            f.seek(start)
            data = f.read(TAIL_BYTES)
    except FileNotFoundError:
        return "(no log)"
    if start > 0:
        data = data[data.find(b"\n") + 1 :]  # the first line read may be the end of one
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
