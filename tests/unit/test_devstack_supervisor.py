"""The supervisor's logs (devstack.supervisor): read back since the last start in linear
time, read at their end only for a tail, and kept bounded while their component runs
without losing what its ready check reads. No process is started: the "running component"
is this test process's own pid."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
import tracemalloc
from types import SimpleNamespace

import pytest

from devstack import __main__ as cli
from devstack import supervisor
from devstack.stack import Row
from devstack.supervisor import Component, Supervisor, since_last_start, tail

START = "\n=== 2026-12-06 07:20:40 starting emulators: firebase emulators:start\n"
READY = "│ ✔  All emulators ready! It is now safe to connect your app. │\n"
CALL = 'i  functions: Beginning execution of "europe-west1-on_payment_request"\n'


@pytest.fixture(autouse=True)
def own_pid_is_the_components(monkeypatch, request):
    """The log tests' "running component" is this process, which the stack did not start
    (no marker in its environment): taken as the component's here. The tests of the
    marker itself (`test_a_pid_file_*`) start real processes instead."""
    if "pid_file" not in request.node.name and "held" not in request.node.name:
        monkeypatch.setattr(supervisor, "carries_marker", lambda pid, _marker: pid == os.getpid())


def write_log(path, *parts: str, calls: int = 0) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for part in parts:
            f.write(part)
        f.write(CALL * calls)


# ---- since_last_start ------------------------------------------------------------------------
def test_since_last_start_is_the_text_from_the_last_marker_on(tmp_path):
    log = tmp_path / "emulators.log"
    write_log(log, "an earlier run\n", START.replace("07:20", "06:00"), "old ready\n", START, READY)
    assert since_last_start(log) == START.lstrip("\n") + READY
    assert since_last_start(tmp_path / "none.log") == ""
    write_log(log, "no marker at all\n")
    assert since_last_start(log) == "no marker at all\n"


def test_a_found_dead_marker_counts_as_the_last_start(tmp_path):
    log = tmp_path / "cards.log"
    write_log(log, START, READY, "\n=== 2026-12-06 08:00:00 cards found dead: not stopped by the stack\n")
    assert since_last_start(log).startswith("=== 2026-12-06 08:00:00 cards found dead")


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 64])
def test_a_marker_straddling_chunks_is_found(tmp_path, chunk):
    log = tmp_path / "emulators.log"
    write_log(log, "x" * 13, START, READY, calls=3)
    assert since_last_start(log, chunk=chunk) == START.lstrip("\n") + READY + CALL * 3


def test_since_last_start_takes_linear_time(tmp_path):
    # The marker at the top of a long run, read back in small chunks: each chunk used to
    # be prepended to everything read so far (4 MB in 1 KB chunks: 8 GB copied, seconds).
    log = tmp_path / "emulators.log"
    write_log(log, START, READY, calls=4 * 1024 * 1024 // len(CALL))
    began = time.perf_counter()
    text = since_last_start(log, chunk=1024)
    assert time.perf_counter() - began < 1.0
    assert text.startswith(START.lstrip("\n") + READY)
    assert len(text.encode()) == log.stat().st_size - 1


# ---- reading the end of a log only ------------------------------------------------------------
def test_tail_reads_the_end_of_a_big_log_only(tmp_path):
    log = tmp_path / "emulators.log"
    write_log(log, START, calls=200_000)  # 14 MB
    with open(log, "a") as f:
        f.write("".join(f"line {i}\n" for i in range(20)))
    tracemalloc.start()
    try:
        got = tail(log)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == "\n".join(f"line {i}" for i in range(5, 20))
    assert peak < 1024 * 1024
    assert tail(tmp_path / "none.log") == "(no log)"
    write_log(log, "one\n", "two\n")
    assert tail(log) == "one\ntwo"


def test_a_death_is_noted_once_reading_the_end_of_the_log_only(tmp_path):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    log = sup.log_file("cards")
    write_log(log, START, calls=200_000)
    tracemalloc.start()
    try:
        sup.note_death("cards")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    sup.note_death("cards")
    assert tail(log, 3).count("found dead") == 1
    sup.note_death("nothing-logged-yet")
    assert "found dead" in sup.log_file("nothing-logged-yet").read_text()


# ---- a running component's log is bounded --------------------------------------------------
def emulators_ready(log) -> bool:
    """What the emulators' ready check (devstack.stack) reads of their log."""
    return "All emulators ready" in since_last_start(log)


def test_trim_keeps_the_runs_first_lines_and_cuts_the_rest(tmp_path):
    log = tmp_path / "emulators.log"
    write_log(log, "an earlier run\n" * 1000, START, READY, calls=2000)
    whole = log.read_text()
    assert supervisor.trim(log, limit=log.stat().st_size) is False  # under the bound: untouched
    assert supervisor.trim(log, limit=64 * 1024, head=4096) is True
    assert (tmp_path / "emulators.log.1").read_text() == whole  # everything, for a reader
    kept = log.read_text()
    assert len(kept) < 5000 and "an earlier run" not in kept
    assert kept.startswith(START.lstrip("\n") + READY)
    assert kept.endswith("are in emulators.log.1 ---\n")
    assert emulators_ready(log)
    assert tail(log, 1).startswith("--- ")


def test_the_component_goes_on_writing_at_the_new_end(tmp_path):
    # The child writes its log through the file the supervisor opened in append mode.
    log = tmp_path / "emulators.log"
    write_log(log, START, READY)
    with open(log, "ab") as child:
        for _ in range(3):
            child.write(CALL.encode() * 2000)
            child.flush()
            assert supervisor.trim(log, limit=64 * 1024, head=4096) is True
            child.write(b"after the trim\n")
            child.flush()
            text = log.read_bytes()
            assert b"\0" not in text and text.endswith(b" ---\nafter the trim\n")
            assert emulators_ready(log)  # still, after trim upon trim
    assert log.stat().st_size < 8192  # the first 4 KB, the note, the last line


def test_trim_cuts_the_head_at_a_line_end(tmp_path):
    log = tmp_path / "emulators.log"
    write_log(log, START, READY, calls=2000)
    supervisor.trim(log, limit=1024, head=len(START) + len(READY.encode()) + 10)
    assert log.read_text().startswith(START.lstrip("\n") + READY + "--- ")


@pytest.fixture
def small_bound(monkeypatch):
    monkeypatch.setattr(supervisor, "MAX_RUNNING_LOG_BYTES", 64 * 1024, raising=False)
    monkeypatch.setattr(supervisor, "HEAD_BYTES", 4096, raising=False)


def running(sup: Supervisor, name: str) -> Component:
    """A component that runs (its pid is this process's) and is ready when its log says so."""
    sup.pid_file(name).write_text(str(os.getpid()))
    return Component(name=name, address="-", argv=["true"], ready=lambda: emulators_ready(sup.log_file(name)))


def test_an_up_that_finds_the_component_running_bounds_its_log(tmp_path, small_bound):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comp = running(sup, "notifier")
    write_log(sup.log_file("notifier"), START, READY, calls=5000)
    assert sup.start(comp, {}) == (os.getpid(), True)
    assert sup.log_file("notifier").stat().st_size < 8192


class FakeStack:
    """What `python -m devstack up` and `status` use of devstack.stack.Stack."""

    def __init__(self, sup: Supervisor, comps: list[Component]) -> None:
        self.sup = sup
        self.comps = comps
        self.s = SimpleNamespace(log_dir=sup.log_dir)

    def components(self) -> list[Component]:
        return self.comps

    def up(self) -> list[Row]:
        return [Row(c.name, c.address, self.sup.pid(c.name), self.sup.log_file(c.name), "started") for c in self.comps]

    def status(self) -> list[Row]:
        rows = []
        for c in self.comps:
            state = "ready" if c.ready() else "not ready"
            rows.append(Row(c.name, c.address, self.sup.pid(c.name), self.sup.log_file(c.name), state))
        return rows

    def deaths(self) -> list[str]:
        return []

    def down(self, keep: frozenset[str] = frozenset()) -> list[str]:
        self.kept = keep
        return []


def test_the_watch_loop_of_up_bounds_the_logs(tmp_path, small_bound, monkeypatch):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comps = [running(sup, "notifier"), running(sup, "cards")]
    for comp in comps:
        write_log(sup.log_file(comp.name), START, READY)
    passes = []

    gone = subprocess.Popen(["true"])
    gone.wait()

    def one_second(_s):
        # the logs grow while the loop waits; at the second pass the notifier is being
        # restarted (`devstack restart`: its pid file away a moment), which is no death (it
        # was taken for one, and the whole stack stopped: found in review, 2026-12-07); at
        # the fourth its process is gone, its pid file still there
        passes.append(1)
        for comp in comps:
            with open(sup.log_file(comp.name), "a") as f:
                f.write(CALL * 2000)
        if len(passes) == 2:
            sup.pid_file("notifier").unlink()
        if len(passes) == 3:
            sup.pid_file("notifier").write_text(str(os.getpid()))
        if len(passes) == 4:
            sup.pid_file("notifier").write_text(str(gone.pid))

    monkeypatch.setattr(cli.time, "sleep", one_second)
    monkeypatch.setattr(cli.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(cli.web, "walkthrough", lambda _s: "")
    assert cli.cmd_up(FakeStack(sup, comps), detach=False) == 0
    assert len(passes) == 4
    for comp in comps:
        assert sup.log_file(comp.name).stat().st_size < 64 * 1024 + 2000 * len(CALL)
    assert emulators_ready(sup.log_file("notifier"))


def test_the_status_command_bounds_the_logs_before_reading_them(tmp_path, small_bound, monkeypatch, capsys):
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comps = [running(sup, "notifier")]
    write_log(sup.log_file("notifier"), START, READY, calls=5000)
    monkeypatch.setattr(cli.stack_settings, "load", lambda: None)
    monkeypatch.setattr(cli, "Stack", lambda _settings, progress: FakeStack(sup, comps))
    assert cli.main(["status"]) == 0
    assert "ready" in capsys.readouterr().out
    assert sup.log_file("notifier").stat().st_size < 8192


def test_the_emulators_log_is_read_by_offset_and_never_trimmed_while_running(tmp_path, small_bound):
    """The function runs a test waits for, the bench's function times and the chaos clock's
    job runs are read from a byte offset of the emulators' log: a cut under them lost the
    lines they waited for (found in review, 2026-12-06)."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comp = running(sup, "emulators")
    write_log(sup.log_file("emulators"), START, READY, calls=5000)
    size = sup.log_file("emulators").stat().st_size
    assert sup.start(comp, {}) == (os.getpid(), True)
    assert not sup.bound_log("emulators")
    assert sup.log_file("emulators").stat().st_size == size


def test_the_emulators_are_not_restarted_alone(tmp_path):
    """A restart of the emulators alone stopped them without their export and started them
    without an import: an empty Firestore against full NATS streams (found in review,
    2026-12-07). Down, then up, keeps the bank's state."""
    from devstack import settings as stack_settings
    from devstack.stack import Stack
    from devstack.supervisor import StartError

    stack = Stack(stack_settings.load({"FJB_STATE_DIR": str(tmp_path / "state")}), progress=lambda _m: None)
    stopped = []
    stack.sup.stop = lambda *args, **_kw: stopped.append(args)  # type: ignore[method-assign]
    with pytest.raises(StartError, match="down, then up"):
        stack.restart("emulators")
    assert stopped == []


def test_the_functions_local_environment_is_private_whatever_mode_it_had(tmp_path, monkeypatch):
    """It holds the App Check debug secret: written 0644 by the umask, any local user could
    mint App Check tokens (found in review, 2026-12-07)."""
    import dataclasses
    import stat

    from devstack import settings as stack_settings
    from devstack import stack as stack_module
    from devstack.stack import Stack

    settings = stack_settings.load({"FJB_STATE_DIR": str(tmp_path / "state")})
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / ".env.local").write_text("old\n")
    (tmp_path / "functions" / ".env.local").chmod(0o644)
    stack = Stack(dataclasses.replace(settings, repo=tmp_path), progress=lambda _m: None)
    monkeypatch.setattr(stack_module, "vendor_shared", lambda _repo: None)
    monkeypatch.setattr(Stack, "app_check_debug_secret", lambda _self: "debug-secret")
    stack.prepare_functions()
    for name in (".env.local", ".secret.local"):
        assert stat.S_IMODE((tmp_path / "functions" / name).stat().st_mode) == 0o600, name


# ---- whose process a pid file names ------------------------------------------------------------
def _sleeper(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], env={**os.environ, **env}, start_new_session=True)


def test_a_pid_file_naming_a_process_the_stack_did_not_start_is_no_component(tmp_path):
    """After a reboot or a long while, a pid file's pid is another program's: the stack took
    it for its component, and a stop signalled that program's process group (found in
    review, 2026-12-07)."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    stranger = _sleeper({})
    other_stack = _sleeper({supervisor.MARKER: "/elsewhere/.stack/run:notifier"})
    ours = None
    try:
        for proc in (stranger, other_stack):
            sup.pid_file("notifier").write_text(str(proc.pid))
            assert sup.pid("notifier") is None
            assert sup.died("notifier")  # its process is gone, as far as the stack knows
            assert sup.stop("notifier") is False  # and nothing of it is signalled
            assert proc.poll() is None
        ours = _sleeper({supervisor.MARKER: sup.marker("notifier")})
        sup.pid_file("notifier").write_text(str(ours.pid))
        assert sup.pid("notifier") == ours.pid and not sup.died("notifier")
        assert sup.stop("notifier", timeout=5) is True
        assert ours.wait(timeout=5) is not None
    finally:
        for proc in (stranger, other_stack, ours):
            if proc is not None:
                proc.kill()
                proc.wait()


def test_an_address_held_by_another_program_is_refused_not_taken_for_the_start(tmp_path, monkeypatch):
    """A component whose address already answered (another program, or another checkout's
    stack) was shown ready at once, on that program's answer, while the process started
    failed to bind and exited (found in review, 2026-12-07)."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comp = Component(name="notifier", address="127.0.0.1:1", argv=["sleep", "60"], ready=lambda: True)
    with pytest.raises(supervisor.StartError, match="already answers, but from no process of this stack"):
        sup.start(comp, dict(os.environ))
    assert not sup.pid_file("notifier").exists()
    assert supervisor.marked_pids(sup.marker("notifier")) == []  # nothing was started


def test_an_up_that_fails_on_a_running_stack_leaves_what_ran_before_running(tmp_path, monkeypatch, capsys):
    """A second up whose one new or changed component failed to start stopped the whole
    stack, the emulators and their data with it (found in review, 2026-12-07)."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    comps = [running(sup, "emulators"), Component(name="notifier", address="-", argv=["true"], ready=lambda: False)]
    stack = FakeStack(sup, comps)

    def fails() -> list[Row]:
        raise supervisor.StartError("notifier exited with code 1 while starting")

    monkeypatch.setattr(stack, "up", fails)
    assert cli.cmd_up(stack, detach=True) == 1
    assert stack.kept == {"emulators"}
    assert "Left running as before: emulators." in capsys.readouterr().err


def test_the_watch_loop_stops_the_stack_when_a_child_under_a_running_leader_stops_answering(
    tmp_path, monkeypatch, capsys
):
    """A Java emulator killed under firebase-tools left its leader running: the stack was
    shown running while every service failed on a database no longer there (left as known
    in earlier reviews, mended 2026-12-07). One ask that finds it closed is not enough (a
    port busy a moment); GONE_ASKS in a row stop the stack and say what was lost."""
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    answers = iter([None, "the firestore emulator(s) stopped answering on their port(s)", None] + ["x"] * 100)
    asked: list[str | None] = []

    def gone() -> str | None:
        asked.append(next(answers))
        return "the firestore emulator(s) stopped answering on their port(s)" if asked[-1] else None

    emulators = dataclasses.replace(running(sup, "emulators"), gone=gone)
    comps = [emulators, running(sup, "notifier")]
    passes = []
    monkeypatch.setattr(cli.time, "sleep", lambda _s: passes.append(1))
    monkeypatch.setattr(cli.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(cli.web, "walkthrough", lambda _s: "")
    assert cli.cmd_up(FakeStack(sup, comps), detach=False) == 0
    # asked every GONE_EVERY passes: closed once, open again, then closed GONE_ASKS times
    assert len(asked) == 3 + cli.GONE_ASKS and len(passes) == cli.GONE_EVERY * len(asked)
    err = capsys.readouterr().err
    assert "emulators: the firestore emulator(s) stopped answering on their port(s) though its process runs" in err
    assert "data since the last `make down` is lost" in err


def test_a_port_is_gone_only_when_refused_not_when_its_listener_is_too_busy_to_accept():
    """A listener with its accept queue full (a long collector pause) timed a 0.5 s connect
    out and was taken for gone (found in review, 2026-12-07): only a refusal counts."""
    import socket

    from devstack.stack import port_refused

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = []
    for _ in range(3):  # never accepted: the queue fills, and a connect then waits
        sock = socket.socket()
        sock.settimeout(0.2)
        sock.connect_ex(("127.0.0.1", port))
        held.append(sock)
    try:
        assert not port_refused(port, timeout=0.5)
    finally:
        for sock in held:
            sock.close()
        listener.close()
    assert port_refused(port, timeout=0.5)  # nothing listens any more
