"""The local stack's Cloud Scheduler (devstack/scheduler.py, devstack/cron.py): cron lines
read as unix-cron reads them, each job published at its minutes in Europe/Oslo time, once
per tick however late the tick comes, a failed publish said and tried at the job's next
minute; the component's place in the stack and its off switch. The process against the
real Pub/Sub emulator and Functions emulator: tests/integration/test_local_scheduler.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import urllib.error
import urllib.request
from zoneinfo import ZoneInfo

import pytest

from devstack import cron, scheduler
from devstack import settings as stack_settings
from devstack.healthz import run_until_stopped, serve_health
from devstack.stack import Stack
from fjordbank import topology
from fjordbank.service_layer.scheduled import JOBS, SCHEDULE_TIME_ZONE, SCHEDULES

OSLO = ZoneInfo("Europe/Oslo")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=OSLO)


# ---- cron lines ---------------------------------------------------------------------------
def test_every_job_has_a_schedule_that_reads_in_norways_time():
    assert set(SCHEDULES) == set(JOBS) and SCHEDULE_TIME_ZONE == "Europe/Oslo"
    for line in SCHEDULES.values():
        cron.parse(line)


@pytest.mark.parametrize(
    ("line", "when", "runs"),
    [
        ("*/15 * * * *", "2026-12-07 10:15", True),
        ("*/15 * * * *", "2026-12-07 10:00", True),
        ("*/15 * * * *", "2026-12-07 10:16", False),
        ("7 * * * *", "2026-12-07 03:07", True),
        ("7 * * * *", "2026-12-07 03:08", False),
        ("0-30/10 9 * * *", "2026-12-07 09:30", True),
        ("0-30/10 9 * * *", "2026-12-07 09:40", False),
        ("5/20 * * * *", "2026-12-07 09:45", True),
        ("1,2,58 * * * *", "2026-12-07 09:58", True),
        ("0 8 * * 1-5", "2026-12-07 08:00", True),  # a Monday
        ("0 8 * * 1-5", "2026-12-06 08:00", False),  # a Sunday
        ("0 8 * * 7", "2026-12-06 08:00", True),  # 7 is Sunday too
        ("0 8 25 * *", "2026-12-25 08:00", True),
        ("0 8 1 1 *", "2026-12-01 08:00", False),
        # day of month and day of week both restricted: either day runs (unix cron)
        ("0 8 25 * 1", "2026-12-07 08:00", True),
        ("0 8 25 * 1", "2026-12-25 08:00", True),
        ("0 8 25 * 1", "2026-12-08 08:00", False),
    ],
)
def test_a_cron_line_matches_the_minutes_it_names(line, when, runs):
    assert cron.parse(line).matches(at(when)) is runs


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("* * * *", "5 fields, not 4"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("0 8 * JAN *", "names are not read"),
        ("30-10 * * * *", "runs backwards"),
        ("*/0 * * * *", "minute step: 0"),
        ("*/x * * * *", "not a number"),
    ],
)
def test_a_line_that_cannot_be_read_is_refused_naming_the_field(line, said):
    with pytest.raises(ValueError, match=said):
        cron.parse(line)


# ---- the scheduler ------------------------------------------------------------------------
class Clock:
    def __init__(self, start: str) -> None:
        self.t = at(start)

    def __call__(self) -> dt.datetime:
        return self.t

    def to(self, text: str) -> None:
        self.t = at(text)


class Topic:
    def __init__(self) -> None:
        self.published: list[dict] = []
        self.failing = False

    def __call__(self, body: dict) -> str:
        if self.failing:
            raise TimeoutError("the emulator did not answer")
        self.published.append(body)
        return str(len(self.published))


def make(start: str, lines: dict[str, str] | None = None):
    clock, topic = Clock(start), Topic()
    schedules = {job: cron.parse(line) for job, line in (lines or SCHEDULES).items()}
    return scheduler.Scheduler(schedules, topic, OSLO, now=clock), clock, topic


def test_nothing_runs_for_the_minute_it_starts_in_and_each_job_at_its_minutes():
    s, clock, topic = make("2026-12-07 10:15:20")
    assert s.tick() == []  # Cloud Scheduler makes up no run from before it was there
    clock.to("2026-12-07 10:16:00.5")
    assert s.tick() == []
    clock.to("2026-12-07 10:20:00.5")
    assert s.tick() == ["relay-outbox"]
    clock.to("2026-12-07 10:23:00.4")
    assert s.tick() == ["audit-ledger"]
    clock.to("2026-12-07 10:30:00.4")
    assert s.tick() == ["submit-due-payments", "relay-outbox"]
    assert [m["job"] for m in topic.published] == [
        "relay-outbox",
        "audit-ledger",
        "submit-due-payments",
        "relay-outbox",
    ]
    clock.to("2026-12-07 10:30:40")
    assert s.tick() == []  # the same minute again: nothing twice


def test_a_late_tick_runs_each_job_whose_minute_passed_once():
    s, clock, topic = make("2026-12-07 10:01:00")
    clock.to("2026-12-07 10:24:10")  # a stalled machine: 10:05, 10:10, 10:15, 10:20 passed
    assert s.tick() == ["submit-due-payments", "release-expired-holds", "relay-outbox", "audit-ledger"]
    assert len(topic.published) == 4


def test_after_a_long_sleep_it_looks_back_an_hour_only():
    s, clock, _topic = make("2026-12-07 01:00:00", {"audit-ledger": "23 * * * *", "release-expired-holds": "7 9 * * *"})
    clock.to("2026-12-07 11:10:00")  # the 09:07 run is further back than LOOK_BACK
    assert s.tick() == ["audit-ledger"]


def test_the_schedule_is_norways_wall_clock_in_winter_and_summer():
    lines = {"audit-ledger": "0 9 * * *"}
    s, clock, _topic = make("2026-12-07 08:58:00", lines)
    clock.t = dt.datetime(2026, 12, 7, 8, 0, 30, tzinfo=dt.UTC)  # 09:00 in Oslo (CET)
    assert s.tick() == ["audit-ledger"]
    s, clock, _topic = make("2026-07-07 08:58:00", lines)
    clock.t = dt.datetime(2026, 7, 7, 7, 0, 30, tzinfo=dt.UTC)  # 09:00 in Oslo (CEST)
    assert s.tick() == ["audit-ledger"]


def test_a_failed_publish_is_said_and_counted_and_the_jobs_next_minute_publishes_again(caplog):
    s, clock, topic = make("2026-12-07 10:04:30", {"relay-outbox": "*/5 * * * *"})
    topic.failing = True
    clock.to("2026-12-07 10:05:01")
    assert s.tick() == []
    assert "could not queue job relay-outbox" in caplog.text and "TimeoutError" in caplog.text
    run = s.health()["jobs"]["relay-outbox"]
    assert run["failed"] == 1 and run["queued"] == 0 and "did not answer" in run["lastError"]
    topic.failing = False
    clock.to("2026-12-07 10:06:01")
    assert s.tick() == []  # not before its next minute
    clock.to("2026-12-07 10:10:01")
    assert s.tick() == ["relay-outbox"]
    run = s.health()["jobs"]["relay-outbox"]
    assert run["queued"] == 1 and run["lastMessage"] == "1" and "lastError" not in run


def test_healthz_answers_each_jobs_schedule_and_last_publish():
    s, clock, _topic = make("2026-12-07 10:14:30", {"submit-due-payments": "*/15 * * * *"})
    server = serve_health(s, 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)  # before its first tick
        assert refused.value.code == 503
        clock.to("2026-12-07 10:15:00.5")
        s.tick()
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
        assert body["ok"] is True and body["timeZone"] == "Europe/Oslo"
        assert body["jobs"]["submit-due-payments"] == {
            "schedule": "*/15 * * * *",
            "queued": 1,
            "failed": 0,
            "lastQueuedAt": "2026-12-07T10:15:00+01:00",
            "lastMessage": "1",
        }
    finally:
        server.shutdown()
        server.server_close()


def test_a_helper_process_runs_until_sigterm_with_its_healthz_and_closes_it():
    class Watched:
        def healthy(self) -> bool:
            return True

        def health(self) -> dict:
            return {"ok": True}

    with socket.socket() as probe:  # a free port, closed again for the server to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/healthz"
    seen: dict = {}

    def run(stop) -> None:
        with urllib.request.urlopen(url, timeout=5) as answer:
            seen["health"] = json.loads(answer.read())
        os.kill(os.getpid(), signal.SIGTERM)  # what the stack sends its components
        seen["stopped"] = stop.wait(5)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        run_until_stopped(run, Watched(), port)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert seen == {"health": {"ok": True}, "stopped": True}
    with pytest.raises(urllib.error.URLError):  # the server closed with the run
        urllib.request.urlopen(url, timeout=2)


def test_overrides_and_unknown_jobs_on_the_command_line():
    lines = scheduler.schedules_of(["relay-outbox=* * * * *"])
    assert lines["relay-outbox"].line == "* * * * *" and lines["audit-ledger"].line == SCHEDULES["audit-ledger"]
    with pytest.raises(SystemExit, match="NAME=CRON"):
        scheduler.schedules_of(["payday=* * * * *"])
    with pytest.raises(SystemExit, match="cannot be read"):
        scheduler.schedules_of(["relay-outbox=* * *"])


# ---- in the stack -------------------------------------------------------------------------
def stack_of(tmp_path, **env: str) -> Stack:
    return Stack(stack_settings.load({"FJB_STATE_DIR": str(tmp_path / "state"), **env}), progress=lambda _m: None)


def test_the_component_runs_after_every_service_with_the_emulators_pubsub(tmp_path):
    stack = stack_of(tmp_path, FJB_SCHEDULER_PORT="9392")
    names = [c.name for c in stack.components()]
    assert all(names.index(s) < names.index(scheduler.NAME) for s in topology.SERVICES)
    assert names.index("emulators") < names.index(scheduler.NAME)
    comp = stack.component(scheduler.NAME)
    pauses = str(stack.s.run_dir / scheduler.PAUSE_FILE)
    assert comp.argv[1:] == [
        "-m",
        "devstack.scheduler",
        "--project",
        stack.s.project_id,
        "--port",
        "9392",
        "--pauses",
        pauses,
    ]
    assert comp.env["PUBSUB_EMULATOR_HOST"] == stack.emulator_hosts()["PUBSUB_EMULATOR_HOST"]


@pytest.mark.parametrize("off", ["off", "0", "false", "No"])
def test_fjb_scheduler_off_keeps_it_out_of_the_stack(tmp_path, off):
    assert not stack_of(tmp_path, FJB_SCHEDULER=off).s.scheduler
    assert scheduler.NAME not in [c.name for c in stack_of(tmp_path, FJB_SCHEDULER=off).components()]
    assert stack_of(tmp_path).s.scheduler  # on by default: a local bank runs its jobs
    with pytest.raises(SystemExit, match="neither on nor off"):
        stack_settings.load({"FJB_SCHEDULER": "sometimes"})


def test_a_scheduler_running_on_a_stack_set_off_is_a_stray_that_up_and_down_stop(tmp_path, monkeypatch):
    stack = stack_of(tmp_path, FJB_SCHEDULER="off")
    stack.s.run_dir.mkdir(parents=True, exist_ok=True)
    (stack.s.run_dir / f"{scheduler.NAME}.pid").write_text("1")
    monkeypatch.setattr(stack.sup, "pid", lambda name: 4242 if name == scheduler.NAME else None)
    assert stack.stray_instances() == [scheduler.NAME]


# ---- pauses -------------------------------------------------------------------------------
def test_a_pause_holds_while_its_process_lives_and_ends_with_its_release(tmp_path):
    import subprocess
    import sys

    pauses = tmp_path / "run" / scheduler.PAUSE_FILE
    assert scheduler.pause_holders(pauses) == []
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        scheduler.hold_pause(pauses)  # this process, as a test session
        scheduler.hold_pause(pauses, child.pid)  # and a bench beside it
        scheduler.hold_pause(pauses)  # holding twice is one hold
        assert sorted(scheduler.pause_holders(pauses)) == sorted([os.getpid(), child.pid])
        scheduler.release_pause(pauses)  # the session ends; the bench still holds it
        assert scheduler.pause_holders(pauses) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert scheduler.pause_holders(pauses) == []  # a holder killed holds nothing


def test_a_holders_pid_taken_by_a_later_process_holds_nothing(tmp_path):
    pauses = tmp_path / scheduler.PAUSE_FILE
    pauses.write_text(f"{os.getpid()} 1\n")  # this pid, started at another time
    assert scheduler.pause_holders(pauses) == []


def test_while_paused_a_jobs_minute_passes_unqueued_and_is_not_made_up():
    holders: list[int] = [4242]
    clock, topic = Clock("2026-12-07 10:04:30"), Topic()
    s = scheduler.Scheduler(
        {"relay-outbox": cron.parse("*/5 * * * *")}, topic, OSLO, now=clock, paused=lambda: list(holders)
    )
    clock.to("2026-12-07 10:05:01")
    assert s.tick() == [] and topic.published == []
    assert s.health()["pausedBy"] == [4242] and s.health()["jobs"]["relay-outbox"]["skipped"] == 1
    holders.clear()
    clock.to("2026-12-07 10:06:01")
    assert s.tick() == []  # the 10:05 run is not made up
    clock.to("2026-12-07 10:10:01")
    assert s.tick() == ["relay-outbox"] and s.health()["pausedBy"] == []


def test_jobs_by_hand_holds_the_pause_for_the_process_and_the_stack_stays_as_it_is(tmp_path):
    stack = stack_of(tmp_path)
    stack.jobs_by_hand()
    pauses = stack.s.run_dir / scheduler.PAUSE_FILE
    try:
        assert scheduler.pause_holders(pauses) == [os.getpid()]
        assert scheduler.NAME in [c.name for c in stack.components()]  # still a component, still ready
        assert stack.component(scheduler.NAME).argv[-2:] == ["--pauses", str(pauses)]
    finally:
        scheduler.release_pause(pauses)


def test_a_stack_started_with_the_scheduler_off_is_known_so_without_the_variable(tmp_path):
    off = stack_of(tmp_path, FJB_SCHEDULER="off")
    stack_settings.record_scheduler(off.s)
    assert not stack_of(tmp_path).s.scheduler  # `make status`, a bench's check: as it was started
    stack_settings.record_scheduler(stack_of(tmp_path, FJB_SCHEDULER="on").s)
    assert stack_of(tmp_path).s.scheduler


def test_the_pause_file_is_never_seen_empty_while_a_holder_edits_it(tmp_path):
    """Truncated and written in place, it read empty in between: a held pause not honoured
    for that tick (found in review, 2026-12-06). It is replaced whole now."""
    import threading

    pauses = tmp_path / scheduler.PAUSE_FILE
    scheduler.hold_pause(pauses)  # the session's hold
    stop, missed = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            if os.getpid() not in scheduler.pause_holders(pauses):
                missed.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):  # a bench beside it holding and releasing
            scheduler.hold_pause(pauses, 1)
            scheduler.release_pause(pauses, 1)
    finally:
        stop.set()
        reader.join()
    assert missed == []


def test_a_failed_edit_of_the_pause_file_leaves_no_temporary_file(tmp_path):
    pauses = tmp_path / scheduler.PAUSE_FILE
    scheduler.hold_pause(pauses, 1)

    def broken(held):
        raise OSError("no space left on device")

    with pytest.raises(OSError):
        scheduler._edit(pauses, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == [scheduler.PAUSE_FILE, scheduler.PAUSE_FILE + ".lock"]
    assert scheduler.pause_holders(pauses) == [1]
