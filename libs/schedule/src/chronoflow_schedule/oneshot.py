"""One-shot phrases: ISO 8601, dates with a time, today/tomorrow, and "in <duration>"."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final

from chronoflow_schedule.clock import calendar_date, duration_seconds, time_of_day
from chronoflow_schedule.errors import ScheduleError, quote
from chronoflow_schedule.lexicon import MONTHS_EN, MONTHS_PT
from chronoflow_schedule.meaning import Context, Once
from chronoflow_schedule.zones import wall_to_instants

#: A date without a year means its next occurrence; a 29 February can be eight years away.
_YEARS_AHEAD: Final = 8
_DIGITS = re.compile(r"\d+", re.ASCII)
_DAYS_FROM_TODAY: Final = {
    "today": 0,
    "hoje": 0,
    "tomorrow": 1,
    "amanha": 1,
    "day after tomorrow": 2,
    "the day after tomorrow": 2,
    "depois de amanha": 2,
}


def iso(groups: Mapping[str, str | None], ctx: Context) -> Once:
    """``2026-12-01T09:00:00-03:00``; without an offset the time is local to the chrono."""
    year, month, day = int(_g(groups, "y")), int(_g(groups, "mo")), int(_g(groups, "d"))
    on = calendar_date(year, month, day, ctx.phrase)
    clock = time_of_day(
        {"t_h": groups.get("h"), "t_m": groups.get("mi"), "t_s": groups.get("s")}, ctx.phrase
    )
    fraction = (groups.get("f") or "").ljust(6, "0")
    micro = int(fraction) if fraction else 0
    offset = groups.get("off")
    if offset is None:
        return _future(_local(on, clock, ctx, micro), ctx)
    wall = datetime(on.year, on.month, on.day, *clock, micro, tzinfo=_fixed(offset, ctx.phrase))
    return _future(wall.astimezone(UTC), ctx)


def dated(groups: Mapping[str, str | None], ctx: Context) -> Once:
    """A calendar date (ISO, dd/mm[/yyyy], or with a month name) and a time of day."""
    clock = time_of_day(groups, ctx.phrase)
    if groups.get("iso_y"):
        year, month = int(_g(groups, "iso_y")), int(_g(groups, "iso_m"))
        on = calendar_date(year, month, int(_g(groups, "iso_d")), ctx.phrase)
        return _future(_local(on, clock, ctx), ctx)
    if groups.get("sd"):
        day, month, year_text = int(_g(groups, "sd")), int(_g(groups, "sm")), groups.get("sy")
    else:
        day_text, month_word, year_text = _named(groups)
        names = MONTHS_PT if groups.get("pm") else MONTHS_EN
        day, month = _first_number(day_text), names[month_word]
    if year_text is not None:
        on = calendar_date(int(year_text), month, day, ctx.phrase)
        return _future(_local(on, clock, ctx), ctx)
    calendar_date(2000, month, day, ctx.phrase)  # 2000 is leap: only impossible days fail here
    today = ctx.now.astimezone(ctx.tz).date()
    for year in range(today.year, today.year + _YEARS_AHEAD + 1):
        if month == 2 and day == 29 and not calendar.isleap(year):
            continue
        instant = _local(date(year, month, day), clock, ctx)
        if instant > ctx.now:
            return Once(instant)
    raise ScheduleError(f"No future date matches {quote(ctx.phrase)}.")  # pragma: no cover


def relative_day(groups: Mapping[str, str | None], ctx: Context) -> Once:
    """``today at 18:00``, ``amanhã às 9h``: a time on a day counted from today (local)."""
    clock = time_of_day(groups, ctx.phrase)
    today = ctx.now.astimezone(ctx.tz).date()
    on = today + timedelta(days=_DAYS_FROM_TODAY[_g(groups, "rel")])
    return _future(_local(on, clock, ctx), ctx)


def relative(groups: Mapping[str, str | None], ctx: Context) -> Once:
    """``in 10 min``: creation instant (whole seconds) plus the duration."""
    seconds = duration_seconds(_g(groups, "dur"), ctx.phrase)
    return Once(ctx.now.replace(microsecond=0) + timedelta(seconds=seconds))


def _named(groups: Mapping[str, str | None]) -> tuple[str, str, str | None]:
    for day_key, month_key, year_key in (
        ("dd", "dm", "dy"),
        ("dd2", "dm2", "dy2"),
        ("pd", "pm", "py"),
    ):
        day_text = groups.get(day_key)
        if day_text:
            return day_text, _g(groups, month_key), groups.get(year_key)
    raise AssertionError("the date pattern always sets one day group")  # pragma: no cover


def _local(on: date, clock: tuple[int, int, int], ctx: Context, micro: int = 0) -> datetime:
    wall = datetime.combine(on, time(*clock, micro))
    return wall_to_instants(wall, ctx.tz)[0]


def _future(instant: datetime, ctx: Context) -> Once:
    if instant <= ctx.now:
        local = instant.astimezone(ctx.tz)
        raise ScheduleError(
            f"The time {local:%Y-%m-%d %H:%M:%S} ({ctx.tz.key}) in {quote(ctx.phrase)} is in "
            "the past: a one-shot schedule must be in the future."
        )
    return Once(instant)


def _fixed(offset: str, phrase: str) -> timezone:
    if offset in ("z", "utc"):
        return UTC
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if hours > 23 or minutes > 59:
        raise ScheduleError(f"The UTC offset {offset!r} in {quote(phrase)} does not exist.")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if offset[0] == "-" else delta)


def _first_number(text: str) -> int:
    found = _DIGITS.search(text)
    return int(found.group()) if found else 0


def _g(groups: Mapping[str, str | None], key: str) -> str:
    value = groups.get(key)
    if value is None:
        raise AssertionError(f"the pattern always sets {key}")  # pragma: no cover
    return value
