"""The local stack's Cloud Scheduler (the `scheduler` component).

In production Cloud Scheduler publishes ``{"job": NAME}`` on the scheduled-jobs topic at
each job's time (terraform/modules/pubsub_scheduler) and ``on_scheduled_job`` runs it. The
emulator suite has no scheduler, so a local stack never ran a job by itself: a scheduled
payment or a standing order waited past its due date until someone ran
``bankctl jobs run``, card holds were never released at their expiry, and the
due-payments alert (FjbDuePaymentsNotRun) fired on every local stack after an hour. This
process publishes the same message on the Pub/Sub emulator's topic by the same schedules
(fjordbank.service_layer.scheduled.SCHEDULES, in Europe/Oslo time), so the Functions
emulator runs each job as it would run in production.

- It fires at the minutes that come after it starts (as Cloud Scheduler, it makes up no
  run from before); when a tick comes late (a stalled machine), a job whose minute passed
  meanwhile runs once, looking back at most LOOK_BACK.
- A publish that fails (the emulator restarting) is logged and counted; the job's next
  minute publishes again (the jobs take whatever an earlier run left).
- ``GET /healthz`` on ``--port`` answers 200 while it ticks, with each job's schedule and
  its last publish (message id, time, error).

It keeps running while a test session, a bench or a chaos run holds a pause (their
process ids in the stack's run folder, PAUSE_FILE: hold_pause / release_pause): the tests
run each job at their own instants, and a run by the real clock in between would take
their due payments and their outbox; a bench measures the stack without the jobs. A job
whose minute comes during a pause is not queued (as a paused Cloud Scheduler job, it is
not made up later); a holder that died without releasing its pause holds nothing.
``FJB_SCHEDULER=off`` keeps it off on a stack of one's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from devstack import cron
from devstack.healthz import run_until_stopped
from devstack.supervisor import Component, http_ok

NAME = "scheduler"
log = logging.getLogger(NAME)
MINUTE = dt.timedelta(minutes=1)
LOOK_BACK = dt.timedelta(minutes=60)  # the most a late tick looks back for passed minutes
HEALTHY_WITHIN = 120.0  # seconds since the last tick that /healthz still calls healthy


# ---- pauses ---------------------------------------------------------------------------------
PAUSE_FILE = "scheduler.pauses"  # in the stack's run folder: one "PID START" line per holder


def _started(pid: int) -> str | None:
    """The process's start time (Linux: /proc), so that a holder's pid taken by a later
    process holds nothing; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime), after the command's ")"


def _holders_in(text: str) -> list[tuple[int, str]]:
    found = []
    for line in text.splitlines():
        pid, _, started = line.partition(" ")
        if pid.isdigit():
            found.append((int(pid), started))
    return found


def _edit(path: Path, change: Callable[[list[tuple[int, str]]], list[tuple[int, str]]]) -> None:
    """Change the holders under a lock of their own (two holders editing at once lose no
    line), the file replaced whole: the scheduler reads it without the lock, and a file
    truncated and then written in place read empty in between (a held pause not honoured
    for that tick), and a holder killed in between wiped the others (found in review,
    2026-12-06)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            held = _holders_in(path.read_text())
        except FileNotFoundError:
            held = []
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write("".join(f"{pid} {started}\n" for pid, started in change(held)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def hold_pause(path: Path, pid: int | None = None) -> None:
    """Pause the scheduler while process ``pid`` (this one by default) lives."""
    pid = os.getpid() if pid is None else pid
    started = _started(pid) or "?"
    _edit(path, lambda held: [h for h in held if h[0] != pid] + [(pid, started)])


def release_pause(path: Path, pid: int | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    if path.exists():
        _edit(path, lambda held: [h for h in held if h[0] != pid])


def pause_holders(path: Path) -> list[int]:
    """The live processes holding a pause."""
    try:
        held = _holders_in(path.read_text())
    except FileNotFoundError:
        return []
    return [pid for pid, started in held if (now := _started(pid)) is not None and started in ("?", now)]


def _minute(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(second=0, microsecond=0)


class Scheduler:
    """Publishes each job at the minutes its cron line names (``tick``, once a minute)."""

    def __init__(
        self,
        schedules: Mapping[str, cron.Cron],
        publish: Callable[[dict[str, Any]], str],
        zone: ZoneInfo,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        paused: Callable[[], list[int]] = list,
    ) -> None:
        self.schedules, self.publish, self.zone, self.now = dict(schedules), publish, zone, now
        self.paused = paused
        self.paused_by: list[int] = []
        self.done_through = _minute(now())  # the minute it starts in is not made up
        self.last_tick: float | None = None
        self.runs: dict[str, dict[str, Any]] = {job: {"queued": 0, "failed": 0} for job in self.schedules}

    def due(self) -> list[str]:
        """The jobs whose minute has come since the last tick (each once), in their order."""
        current = _minute(self.now())
        first = max(self.done_through + MINUTE, current - LOOK_BACK + MINUTE)
        minutes = []
        at = first
        while at <= current:
            minutes.append(at.astimezone(self.zone))
            at += MINUTE
        if current > self.done_through:
            self.done_through = current
        return [job for job, line in self.schedules.items() if any(line.matches(m) for m in minutes)]

    def tick(self) -> list[str]:
        """Publish what is due; the jobs queued."""
        queued: list[str] = []
        due = self.due()
        self.paused_by = self.paused()
        if self.paused_by:
            for job in due:
                self.runs[job]["skipped"] = self.runs[job].get("skipped", 0) + 1
                log.info("job %s not queued: paused by process %s", job, ", ".join(map(str, self.paused_by)))
            due = []
        for job in due:
            run = self.runs[job]
            try:
                message_id = self.publish({"job": job})
            except Exception as exc:  # noqa: BLE001 - said and counted; the job's next minute publishes again
                run["failed"] += 1
                run["lastError"] = f"{type(exc).__name__}: {exc}"
                log.warning("could not queue job %s: %s (its next run publishes again)", job, run["lastError"])
                continue
            run["queued"] += 1
            run.update(lastQueuedAt=self.now().isoformat(timespec="seconds"), lastMessage=message_id)
            run.pop("lastError", None)
            queued.append(job)
            log.info("queued job %s (message %s)", job, message_id)
        self.last_tick = time.monotonic()
        return queued

    def run(self, stop: threading.Event) -> None:
        """Tick just after each minute begins, until ``stop``."""
        while not stop.is_set():
            self.tick()
            now = self.now()
            stop.wait(60 - now.second - now.microsecond / 1e6 + 0.5)

    def healthy(self) -> bool:
        return self.last_tick is not None and time.monotonic() - self.last_tick < HEALTHY_WITHIN

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.healthy(),
            "timeZone": str(self.zone),
            "pausedBy": self.paused_by,
            "jobs": {job: {"schedule": line.line, **self.runs[job]} for job, line in self.schedules.items()},
        }


def schedules_of(overrides: list[str]) -> dict[str, cron.Cron]:
    """scheduled.SCHEDULES, with ``NAME=CRON`` overrides (``--job``); SystemExit naming what
    cannot be read. ``--only`` in main() then keeps the named ones."""
    from fjordbank.service_layer.scheduled import JOBS, SCHEDULES

    lines = dict(SCHEDULES)
    for item in overrides:
        job, sep, line = item.partition("=")
        if not sep or job not in JOBS:
            raise SystemExit(f"--job {item!r}: expected NAME=CRON with NAME one of {', '.join(JOBS)}")
        lines[job] = line
    try:
        return {job: cron.parse(line) for job, line in lines.items()}
    except ValueError as exc:
        raise SystemExit(f"a schedule cannot be read: {exc}") from None


def component(stack) -> Component:
    """The `scheduler` component of devstack.stack.Stack (started when the stack's
    ``scheduler`` setting is on: FJB_SCHEDULER, default on)."""
    port = stack.s.scheduler_port
    return Component(
        name=NAME,
        address=f"http://127.0.0.1:{port}/healthz (FJB_SCHEDULER_PORT): runs the scheduled jobs on their schedules",
        argv=[
            str(stack.s.venv_python),
            "-m",
            "devstack.scheduler",
            "--project",
            stack.s.project_id,
            "--port",
            str(port),
            "--pauses",
            str(stack.s.run_dir / PAUSE_FILE),
        ],
        env={"PYTHONUNBUFFERED": "1", **stack.emulator_hosts()},
        cwd=stack.s.repo,
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
        start_timeout=30,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.scheduler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True, help="the emulators' project id")
    parser.add_argument("--port", type=int, default=0, help="GET /healthz on 127.0.0.1 (0: none)")
    parser.add_argument(
        "--job", action="append", default=[], metavar="NAME=CRON", help="run NAME by CRON instead (repeatable)"
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these jobs")
    parser.add_argument("--pauses", type=Path, help="the pause holders' file (PAUSE_FILE; none: never paused)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from fjordbank.adapters.pubsub import JOBS_TOPIC, TopicPublisher
    from fjordbank.service_layer.scheduled import SCHEDULE_TIME_ZONE

    schedules = schedules_of(args.job)
    if args.only:
        unknown = sorted(set(args.only) - set(schedules))
        if unknown:
            raise SystemExit(f"--only {', '.join(unknown)}: no such job")
        schedules = {job: line for job, line in schedules.items() if job in args.only}
    topic = TopicPublisher(args.project, JOBS_TOPIC)
    made = threading.Event()

    def publish(body: dict[str, Any]) -> str:
        if not made.is_set():  # the emulator may not have the topic yet (nothing published to it)
            topic.ensure_topic()
            made.set()
        return topic.publish_json_now(body)

    pauses = args.pauses
    scheduler = Scheduler(
        schedules, publish, ZoneInfo(SCHEDULE_TIME_ZONE), paused=(lambda: pause_holders(pauses)) if pauses else list
    )
    for job, line in schedules.items():
        log.info("job %s runs at %r (%s)", job, line.line, SCHEDULE_TIME_ZONE)
    run_until_stopped(scheduler.run, scheduler, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
