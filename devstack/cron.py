"""Cron lines as Cloud Scheduler reads them (unix-cron), for the local stack's scheduler.

Five fields: minute (0-59), hour (0-23), day of the month (1-31), month (1-12), day of the
week (0-7, Sunday 0 or 7). Each field is ``*``, a number, a range ``a-b``, either with a
step (``*/15``, ``0-30/10``), or a comma-separated list of those. As in cron, when both the
day of the month and the day of the week are restricted, a day matching either runs.
Month and weekday names are not read (scheduled.SCHEDULES uses none): they are refused
with a reason rather than read wrongly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


@dataclass(frozen=True)
class Cron:
    line: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 read as 0)
    any_day: bool
    any_weekday: bool

    def matches(self, at: dt.datetime) -> bool:
        """Whether the job runs in the minute of ``at`` (a wall-clock time in the schedule's zone)."""
        if at.minute not in self.minutes or at.hour not in self.hours or at.month not in self.months:
            return False
        on_day, on_weekday = at.day in self.days, at.isoweekday() % 7 in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return on_weekday
        if self.any_weekday:
            return on_day
        return on_day or on_weekday


def _number(raw: str, name: str, low: int, high: int) -> int:
    if not raw.isdigit():
        raise ValueError(f"{name}: {raw!r} is not a number (names are not read)")
    value = int(raw)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}-{high}")
    return value


def _field(raw: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in raw.split(","):
        span, _, step_raw = part.partition("/")
        step = _number(step_raw, f"{name} step", 1, high - low + 1) if step_raw else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, name, low, high), _number(b, name, low, high)
            if first > last:
                raise ValueError(f"{name}: the range {span!r} runs backwards")
        else:
            first = _number(span, name, low, high)
            last = high if step_raw else first  # "5/15": from 5 on, every 15
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse(line: str) -> Cron:
    """The cron line, or ValueError naming the field that cannot be read."""
    parts = line.split()
    if len(parts) != len(FIELDS):
        raise ValueError(f"{line!r}: a cron line has {len(FIELDS)} fields, not {len(parts)}")
    minutes, hours, days, months, weekdays = (
        _field(raw, name, low, high) for raw, (name, low, high) in zip(parts, FIELDS, strict=True)
    )
    return Cron(
        line=line,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
