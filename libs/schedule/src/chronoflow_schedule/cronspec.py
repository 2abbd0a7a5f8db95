"""Cron expressions: strict validation, the value sets they mean, and one canonical spelling.

croniter does the calendar arithmetic, but it reads some spellings differently from POSIX
cron (``5-5`` is the whole cycle to it, ``22-2`` wraps, ``H``/``R``/``L``/``#``/``W`` are
extensions). Every expression is therefore re-spelled from its value sets using only ``*``,
``*/n``, ``a-b`` (a < b), single numbers and lists, which croniter reads exactly as we do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from chronoflow_schedule.errors import ScheduleError, quote

#: (name, lowest, highest) of each field, seconds first.
_SECOND: Final = ("second", 0, 59)
_MINUTE: Final = ("minute", 0, 59)
_HOUR: Final = ("hour", 0, 23)
_DOM: Final = ("day-of-month", 1, 31)
_MONTH: Final = ("month", 1, 12)
_DOW: Final = ("day-of-week", 0, 6)

_MONTH_NAMES: Final = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DOW_NAMES: Final = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
#: The longest day of each month, 29 for February: a day that fits nowhere never fires.
_LONGEST: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_ITEM = re.compile(r"(\*|\d{1,4}|[a-z]{3})(?:-(\d{1,4}|[a-z]{3}))?(?:/(\d{1,4}))?", re.ASCII)
_SHAPE: Final = (
    "A cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with "
    "seconds first, e.g. '0 9 * * 1-5' or '30 0 9 * * mon-fri'; macros: " + ", ".join(MACROS) + "."
)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression: its value sets and its canonical spelling."""

    expr: str
    seconds: frozenset[int] | None  # None for 5 fields
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @property
    def has_seconds(self) -> bool:
        """Six fields, seconds first."""
        return self.seconds is not None

    @property
    def days_restricted(self) -> bool:
        """The day-of-month field is not every day."""
        return len(self.days) != 31

    @property
    def weekdays_restricted(self) -> bool:
        """The day-of-week field is not every day of the week."""
        return len(self.weekdays) != 7

    @property
    def every_hour(self) -> bool:
        """Fires in every hour of the day: both passes of a repeated hour are real hours."""
        return len(self.hours) == 24


@lru_cache(maxsize=4096)
def build(
    *,
    minutes: frozenset[int],
    hours: frozenset[int],
    days: frozenset[int] = frozenset(range(1, 32)),
    months: frozenset[int] = frozenset(range(1, 13)),
    weekdays: frozenset[int] = frozenset(range(7)),
    seconds: frozenset[int] | None = None,
) -> CronSpec:
    """A spec from value sets (the phrases' route to cron); seconds {0} collapse to 5 fields."""
    if seconds == frozenset({0}):
        seconds = None
    fields = [
        _spell(minutes, _MINUTE),
        _spell(hours, _HOUR),
        _spell(days, _DOM),
        _spell(months, _MONTH),
        _spell(weekdays, _DOW),
    ]
    if seconds is not None:
        fields.insert(0, _spell(seconds, _SECOND))
    return CronSpec(" ".join(fields), seconds, minutes, hours, days, months, weekdays)


@lru_cache(maxsize=4096)
def compile_cron(text: str) -> CronSpec:
    """Validate a (lower-case, single-spaced) cron expression or macro; ScheduleError if bad."""
    if text.startswith("@"):
        expanded = MACROS.get(text)
        if expanded is None:
            raise ScheduleError(f"Unknown cron macro {quote(text)}. {_SHAPE}")
        text = expanded
    parts = text.split(" ")
    if len(parts) not in (5, 6):
        raise ScheduleError(
            f"{quote(text)} looks like a cron expression but has {len(parts)} fields. {_SHAPE}"
        )
    seconds = _field(parts.pop(0), _SECOND, {}) if len(parts) == 6 else None
    minutes = _field(parts[0], _MINUTE, {})
    hours = _field(parts[1], _HOUR, {})
    days = _field(parts[2], _DOM, {})
    months = _field(parts[3], _MONTH, _MONTH_NAMES)
    weekdays = _field(parts[4], _DOW, _DOW_NAMES)
    spec = build(
        seconds=seconds, minutes=minutes, hours=hours, days=days, months=months, weekdays=weekdays
    )
    if spec.days_restricted and not spec.weekdays_restricted and not _fits(spec):
        raise ScheduleError(
            f"The cron expression {quote(text)} never fires: no month in it has those days."
        )
    return spec


def _fits(spec: CronSpec) -> bool:
    return any(day <= _LONGEST[month - 1] for month in spec.months for day in spec.days)


def _field(text: str, field: tuple[str, int, int], names: dict[str, int]) -> frozenset[int]:
    name, low, high = field
    is_dow = field is _DOW
    top = 7 if is_dow else high  # 7 is Sunday too, as in every cron
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ScheduleError(
                f"Cron {name} field {quote(text)}: {quote(item)} is not a number, name, range "
                f"(a-b), step (*/n, a-b/n) or '*'. {_SHAPE}"
            )
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                raise ScheduleError(f"Cron {name} field {quote(text)}: '*' cannot start a range.")
            start, end = low, high
        else:
            start = _value(first, field, names, top)
            if last is not None:
                end = _value(last, field, names, top)
                if is_dow and end == 0 and start > 0:
                    end = 7  # fri-sun: Sunday closes the week
            else:
                # "a/n" runs to the field's top, as croniter reads it (Saturday for weekdays).
                end = high if step is not None else start
        if start > end:
            raise ScheduleError(
                f"Cron {name} field {quote(text)}: the range {quote(item)} is reversed; "
                f"write it as two ranges, e.g. '22-23,0-2'."
            )
        every = int(step) if step is not None else 1
        if every == 0:
            raise ScheduleError(f"Cron {name} field {quote(text)}: a step cannot be 0.")
        values.update(range(start, end + 1, every))
    if is_dow and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _value(token: str, field: tuple[str, int, int], names: dict[str, int], top: int) -> int:
    name, low, _ = field
    if token.isdigit():
        number = int(token)
        if not low <= number <= top:
            raise ScheduleError(
                f"Cron {name} value {number} is out of range: {name} goes from {low} to {top}."
            )
        return number
    number_or_none = names.get(token)
    if number_or_none is None:
        raise ScheduleError(f"Cron {name} field: {quote(token)} is not a valid {name} name.")
    return number_or_none


def _spell(values: frozenset[int], field: tuple[str, int, int]) -> str:
    _, low, high = field
    if len(values) == high - low + 1:
        return "*"
    ordered = sorted(values)
    if len(ordered) > 1 and ordered[0] == low:
        step = ordered[1] - ordered[0]
        # "*/30" reads better than "0,30"; "*/6" would not for weekends or January and July.
        even = len(ordered) > 2 or (low == 0 and (high + 1) % step == 0)
        if even and ordered == list(range(low, high + 1, step)):
            return f"*/{step}"
    pieces: list[str] = []
    run = [ordered[0]]
    for value in ordered[1:]:
        if value == run[-1] + 1:
            run.append(value)
            continue
        pieces.append(_run(run))
        run = [value]
    pieces.append(_run(run))
    return ",".join(pieces)


def _run(run: list[int]) -> str:
    if len(run) >= 3:
        return f"{run[0]}-{run[-1]}"
    return ",".join(str(v) for v in run)
