"""Customers, cards and pushes through the app's surface (the client kit), for integration
and e2e tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import requests

from clientkit import push_devices
from clientkit.app_check import AppCheck
from clientkit.callables import Callables
from clientkit.cards import CardNetwork
from fjordbank.domain.norway import (
    NATIONAL_ID_K1_WEIGHTS,
    NATIONAL_ID_K2_WEIGHTS,
    is_banking_day,
    national_id_control_digits,
    parse_national_id,
    today_in_norway,
)
from fjordbank.domain.standing_orders import last_try_day
from tests.support.clients import APP_ID, RawCallables, endpoints_of, unique, wait_for

_rnd = random.SystemRandom()
# every number handed out in this test process: a date has only about 400 valid ones, so
# random draws alone collided now and then (an identity number onboards once, and a second
# customer drawing it is refused "identity_in_use")
_issued: set[str] = set()


def make_national_id(born: date, *, kind: str = "fnr", rule_2032: bool = False) -> str:
    """A fresh valid number for ``born`` (1900-2039): fødselsnummer or D-number, with
    classic control digits or a 2032-rule k1 (remainder 1-3). Random individual numbers,
    never one handed out before in this process (an identity number onboards once)."""
    day = born.day + (40 if kind == "dnr" else 0)
    low, high = (0, 499) if born.year < 2000 else (500, 999)
    for _ in range(10_000):
        body = f"{day:02d}{born.month:02d}{born.year % 100:02d}{_rnd.randint(low, high):03d}"
        if not rule_2032:
            digits = national_id_control_digits(body)
            if digits is None:
                continue
            number = f"{body}{digits[0]}{digits[1]}"
        else:
            s1 = sum(int(d) * w for d, w in zip(body, NATIONAL_ID_K1_WEIGHTS, strict=True))
            k1 = (_rnd.choice((1, 2, 3)) - s1) % 11
            if k1 > 9:
                continue
            s2 = sum(int(d) * w for d, w in zip(body + str(k1), NATIONAL_ID_K2_WEIGHTS, strict=True))
            k2 = (11 - s2 % 11) % 11
            if k2 == 10:
                continue
            number = f"{body}{k1}{k2}"
        if number in _issued:
            continue
        parsed = parse_national_id(number)
        if parsed.birth_date == born and parsed.uses_2032_rule == rule_2032 and parsed.kind == kind:
            _issued.add(number)
            return number
    raise AssertionError("no number found")


def random_birth_date() -> date:
    return date(1950, 1, 1) + timedelta(days=_rnd.randrange(365 * 50))


def application(name: str | None = None, born: date | None = None, **overrides) -> dict:
    """A valid application; a random birth date unless given (each date has only about
    400 valid numbers, and tests must never share one)."""
    born = born or random_birth_date()
    data = {
        "name": name or "Kari Nordmann",
        "nationalId": make_national_id(born),
        "dateOfBirth": born.isoformat(),
        "address": {"street": "Storgata 1", "postalCode": "0155", "city": "Oslo"},
        "phone": "+47 912 34 567",
        "email": f"{unique('kari')}@example.no",
    }
    data.update(overrides)
    return data


def app_check(stack) -> AppCheck:
    """What the App Check debug provider gives a test build (the kit's clientkit.app_check)."""
    return AppCheck(stack.app_check_debug_secret(), stack.s.project_id, APP_ID)


def app_check_token(stack, ttl: int | None = None) -> str:
    """A new token; ``ttl`` < 0: one that has expired."""
    return app_check(stack).mint(ttl)[0]


def callables_for(stack) -> RawCallables:
    return RawCallables(Callables(endpoints_of(stack), app_check(stack)))


def refused(result: tuple[int, dict]) -> tuple[str, str | None]:
    """(status, reason) of a callable's refusal."""
    status, body = result
    assert status >= 400 and "error" in body, body
    return body["error"]["status"], (body["error"].get("details") or {}).get("reason")


def register_device(app, uid: str, token: str | None = None, platform: str = "android") -> str:
    """A new device of ``uid`` registered as the app does (clientkit.push_devices); its token."""
    token = token or unique("device-token-")
    resp = push_devices.register(app, uid, unique("dev"), token, platform)
    assert resp.status_code == 200, resp.text
    return token


def pushes(stack, token: str) -> list[dict]:
    return requests.get(f"{stack.fcm_sink_url}/sink/messages", params={"token": token}, timeout=5).json()


def wait_push(stack, token: str, title: str, timeout: float = 60) -> dict:
    return wait_for(
        lambda: next(
            (m["message"] for m in pushes(stack, token) if m["message"]["notification"]["title"] == title), None
        ),
        timeout=timeout,
        what=f"push {title!r}",
    )


# ---- cards -----------------------------------------------------------------------------------
def card_network(stack, timeout: float = 5.0) -> CardNetwork:
    """The card network's side (the kit's): ``timeout`` is the processor's for a decision."""
    return CardNetwork(stack.card_api_url, stack.s.card_secrets_file, stack.s.project_id, timeout)


def card_keys(stack) -> dict:
    return card_network(stack).keys


def card_details(stack, card_id: str) -> dict:
    """What is printed on the card: the test plays its holder, reading the vault with the
    card service's keys (nothing else has the PAN)."""
    return card_network(stack).details(card_id)


def processor(stack, timeout: float = 5.0):
    return card_network(stack, timeout).processor


def wait_card_active(app, card_id: str) -> dict:
    return wait_for(
        lambda: (d := app.get(f"cards/{card_id}")[1]) and d.get("status") == "active" and d,
        timeout=60,
        what=f"card {card_id} to be issued",
    )


# Per emulator log: the finished job runs it showed at the last queue_job call, and the
# count that call expects once its runs and every earlier one are done (a run queued
# without waiting may still be queued when a later call waits).
_JOB_RUNS: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True)
class JobDay:
    """When a test runs the due-payments job: now, or, on a day banks do not settle (a
    weekend, a holiday: the job pays nothing then), noon of the banking day before. Taken
    as the test starts, so a run that crosses midnight in Oslo keeps its day."""

    today: date  # in Norway, as the test started: what the callables check dates against
    day: date  # the job's day, a banking day: what a test makes fall due
    now: datetime  # the job's clock

    @property
    def tomorrow(self) -> date:
        return self.today + timedelta(days=1)

    @property
    def tried_out(self) -> date:
        """A due date whose banking days of tries (fjordbank.domain.standing_orders.
        last_try_day) have all passed when the job runs on ``day``: uncovered, it fails."""
        due = previous_banking_day(self.day - timedelta(days=1))
        while last_try_day(due) >= self.day:
            due = previous_banking_day(due - timedelta(days=1))
        return due


def previous_banking_day(day: date) -> date:
    while not is_banking_day(day):
        day -= timedelta(days=1)
    return day


def job_day() -> JobDay:
    now = datetime.now(UTC)
    today = today_in_norway(now)
    if is_banking_day(today):
        return JobDay(today, today, now)
    day = previous_banking_day(today)
    return JobDay(today, day, datetime.combine(day, time(12), tzinfo=UTC))


def queue_job(
    stack,
    job: str,
    times: int = 1,
    *,
    wait: bool = False,
    now: datetime | None = None,
    customers: tuple[str, ...] = (),
) -> None:
    """Queue a scheduled job as Cloud Scheduler does (through Pub/Sub and the
    on_scheduled_job function); ``times`` at once, as if scheduler ticks overlapped;
    ``customers``: a run scoped to them (the emulator's ``uids``: it takes no run lease, so
    it never finds one taken by a run queued earlier and still at work, and it works none
    of the due payments earlier tests left). With
    ``wait``, return once the Functions emulator has finished these runs and every run
    queued before them without waiting (its log says so), so a test can check what the
    runs did not do without guessing a sleep. (Counting only this call's runs, a wait
    could end on an earlier call's, and this call's would then run during the test's
    next step, where a due payment's attempts are counted.)"""
    import subprocess
    import sys

    log = stack.s.log_dir / "emulators.log"
    finished = 'Finished "europe-west1-on_scheduled_job"'
    done_now = log.read_text(errors="replace").count(finished)
    seen, expected = _JOB_RUNS.get(str(log), (0, 0))
    if done_now < seen:  # a new log: a stack started afresh
        expected = 0
    expected = max(expected, done_now) + times
    _JOB_RUNS[str(log)] = (done_now, expected)
    clock = ["--now", now.isoformat()] if now is not None else []
    scope = [arg for uid in customers for arg in ("--customer", uid)]
    for _ in range(times):
        out = subprocess.run(
            [sys.executable, "-m", "bankctl", "jobs", "run", job, *clock, *scope],
            capture_output=True,
            text=True,
            cwd=stack.s.repo,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
    if wait:
        wait_for(
            lambda: log.read_text(errors="replace").count(finished) >= expected,
            timeout=120,
            what=f"{times} run(s) of {job} and every run queued before them ({expected} finished in the log)",
        )
