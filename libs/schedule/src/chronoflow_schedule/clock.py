"""Reading the pieces of a phrase: a time of day, a duration, a calendar date."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import date
from typing import Final

from chronoflow_schedule.errors import TIME_HINT, ScheduleError, quote
from chronoflow_schedule.lexicon import DURATION_PART, MONTH_NAMES_EN, UNITS

#: No duration may exceed ten years: the grid and the arithmetic stay far from datetime's edge.
MAX_DURATION_SECONDS: Final = 3660 * 86400

#: Years a date may name; far from datetime's limits, so no conversion can overflow.
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2999

_PART = re.compile(DURATION_PART, re.ASCII)


def time_of_day(groups: Mapping[str, str | None], phrase: str) -> tuple[int, int, int]:
    """(hour, minute, second) from the ``t_*`` groups of :data:`lexicon.TIME`; range-checked."""
    if groups.get("t_noon"):
        return 12, 0, 0
    if groups.get("t_midnight"):
        return 0, 0, 0
    hour_text = groups.get("t_h") or groups.get("t_hh") or groups.get("t_h12") or ""
    minute_text = groups.get("t_m") or groups.get("t_hm") or "0"
    second_text = groups.get("t_s") or "0"
    meridiem = groups.get("t_ap") or groups.get("t_ap2")
    hour, minute, second = int(hour_text), int(minute_text), int(second_text)
    if meridiem is not None:
        if not 1 <= hour <= 12:
            raise ScheduleError(
                f"Hour {hour} does not exist with am/pm in {quote(phrase)}: with am/pm the hour "
                f"goes from 1 to 12; {TIME_HINT}."
            )
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    elif hour > 23:
        raise ScheduleError(
            f"Hour {hour} is out of range in {quote(phrase)}: hours go from 0 to 23; {TIME_HINT}."
        )
    if minute > 59:
        raise ScheduleError(
            f"Minute {minute} is out of range in {quote(phrase)}: minutes go from 0 to 59."
        )
    if second > 59:
        raise ScheduleError(
            f"Second {second} is out of range in {quote(phrase)}: seconds go from 0 to 59."
        )
    return hour, minute, second


def duration_seconds(text: str, phrase: str) -> int:
    """Seconds in a duration matched by :data:`lexicon.DURATION`; positive, units descending."""
    total = 0
    previous_unit = 0
    for part in _PART.finditer(text):
        if part.group("half"):
            amount, unit = 30, 60
        elif part.group("hh"):
            amount, unit = int(part.group("hh")), 3600
            minutes = int(part.group("hm"))
            if minutes > 59:
                raise ScheduleError(f"Minute {minutes} is out of range in {quote(phrase)}.")
            total += minutes * 60
        else:
            amount_text = part.group("n")
            amount = int(amount_text) if amount_text.isdigit() else 1
            unit = UNITS[part.group("u")]
        if previous_unit and unit >= previous_unit:
            raise ScheduleError(
                f"The duration in {quote(phrase)} repeats or mixes up its units: write the "
                "larger unit first, once each, e.g. '1 hour 30 minutes'."
            )
        previous_unit = 60 if part.group("hh") else unit
        total += amount * unit
    if total <= 0:
        raise ScheduleError(f"The duration in {quote(phrase)} must be greater than zero.")
    if total > MAX_DURATION_SECONDS:
        raise ScheduleError(f"The duration in {quote(phrase)} is too long: at most 10 years.")
    return total


def calendar_date(year: int, month: int, day: int, phrase: str) -> date:
    """The date, or a ScheduleError naming what does not exist (e.g. 31 February)."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ScheduleError(
            f"Year {year} is out of range in {quote(phrase)}: use {MIN_YEAR} to {MAX_YEAR}."
        )
    if not 1 <= month <= 12:
        raise ScheduleError(f"Month {month} does not exist in {quote(phrase)}: months go 1-12.")
    longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
    if not 1 <= day <= longest:
        raise ScheduleError(
            f"Day {day} does not exist in {MONTH_NAMES_EN[month - 1]} ({quote(phrase)}): "
            f"{MONTH_NAMES_EN[month - 1]} has at most {longest} days."
        )
    if month == 2 and day == 29 and not calendar.isleap(year):
        raise ScheduleError(f"{year} is not a leap year: 29 February {year} does not exist.")
    return date(year, month, day)


def day_of_month(day: int, phrase: str, month: int | None = None) -> int:
    """A day of the month, checked against the month when one is given."""
    if month is not None:
        return calendar_date(2000, month, day, phrase).day  # 2000 is leap: 29 February exists
    if not 1 <= day <= 31:
        raise ScheduleError(
            f"Day {day} does not exist in a month ({quote(phrase)}): days go from 1 to 31."
        )
    return day
