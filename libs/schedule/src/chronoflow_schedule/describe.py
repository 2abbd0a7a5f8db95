"""Human descriptions of normalized schedules, in English or Portuguese.

The description is derived from the normalized schedule, never from the phrase, so
``todo dia às 8h`` and ``0 8 * * *`` read alike and a description cannot claim more than the
schedule does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule.cronspec import CronSpec, compile_cron
from chronoflow_schedule.lexicon import (
    MONTH_NAMES_EN,
    MONTH_NAMES_PT,
    WEEKDAY_NAMES_EN,
    WEEKDAY_NAMES_PT,
)
from chronoflow_schedule.meaning import Language
from chronoflow_schedule.zones import zone

_ALL_DAYS = frozenset(range(1, 32))
_WORKWEEK = frozenset(range(1, 6))
_WEEKEND = frozenset((0, 6))
#: At most this many clock times are listed; beyond it the schedule reads as a period.
_MAX_TIMES = 6
_PT_PLURAL = ("domingos", "segundas", "terças", "quartas", "quintas", "sextas", "sábados")


def describe(schedule: NormalizedSchedule) -> str:
    """The human description of a schedule, in its language (what ``parse`` stores)."""
    return render(
        cron=compile_cron(schedule.cron) if schedule.cron is not None else None,
        every_seconds=schedule.every_seconds,
        anchor=schedule.anchor,
        run_at=schedule.run_at,
        timezone=schedule.timezone,
        language=schedule.language,
    )


def render(
    *,
    cron: CronSpec | None,
    every_seconds: int | None,
    anchor: datetime | None,
    run_at: datetime | None,
    timezone: str,
    language: Language,
) -> str:
    """The description of a schedule given by its parts."""
    pt = language == "pt"
    if run_at is not None:
        local = run_at.astimezone(zone(timezone))
        text = (
            f"Uma vez em {local:%d/%m/%Y} às {_clock(local.hour, local.minute, local.second)}"
            if pt
            else f"Once at {local:%Y-%m-%d} {_clock(local.hour, local.minute, local.second)}"
        )
    elif every_seconds is not None and anchor is not None:
        local = anchor.astimezone(zone(timezone))
        at = _clock(local.hour, local.minute, local.second)
        text = (
            f"A cada {_duration(every_seconds, pt)}, contando de {local:%d/%m/%Y} às {at}"
            if pt
            else f"Every {_duration(every_seconds, pt)}, counting from {local:%Y-%m-%d} {at}"
        )
    elif cron is not None:
        text = _cron(cron, pt)
    else:
        text = "Nunca" if pt else "Never"
    return f"{text} ({timezone})"


@lru_cache(maxsize=4096)
def _cron(spec: CronSpec, pt: bool) -> str:
    days = _days(spec, pt)
    seconds = spec.seconds if spec.seconds is not None else frozenset({0})
    count = len(spec.hours) * len(spec.minutes) * len(seconds)
    # Three or more hours at a fixed step read as a period ("every 6 hours at ..."), fewer as
    # a list of clock times ("at 08:00 and 18:00").
    stepped = len(spec.hours) > 2 and _step(spec.hours, 24) is not None
    if count <= _MAX_TIMES and not stepped and len(spec.minutes) < 60 and len(seconds) < 60:
        times = sorted((h, m, s) for h in spec.hours for m in spec.minutes for s in seconds)
        clock = _join([_clock(*t) for t in times], pt)
        return _capital(f"{days} às {clock}" if pt else f"{days} at {clock}")
    period = _period(spec, seconds, pt)
    every_day = days in ("todo dia", "every day")
    return _capital(period if every_day else f"{period}, {days}")


def _period(spec: CronSpec, seconds: frozenset[int], pt: bool) -> str:
    if seconds != {0}:
        step = _step(seconds, 60)
        if step and len(spec.minutes) == 60 and len(spec.hours) == 24:
            return _every(step, "segundo", "second", pt)
        return _generic(spec, seconds, pt)
    if len(spec.hours) == 24:
        return _within_hour(spec, pt) or _generic(spec, seconds, pt)
    return _across_hours(spec, pt) or _generic(spec, seconds, pt)


def _within_hour(spec: CronSpec, pt: bool) -> str | None:
    step = _step(spec.minutes, 60)
    if step:
        return _every(step, "minuto", "minute", pt)
    if len(spec.minutes) != 1:
        return None
    (minute,) = spec.minutes
    if minute == 0:
        return "de hora em hora" if pt else "every hour"
    return f"de hora em hora, no minuto {minute}" if pt else f"every hour at minute {minute}"


def _across_hours(spec: CronSpec, pt: bool) -> str | None:
    hours, minutes = spec.hours, spec.minutes
    step = _step(hours, 24)
    if step and len(minutes) == 1:
        (minute,) = minutes
        times = [_clock(h, minute, 0) for h in sorted(hours)]
        every = _every(step, "hora", "hour", pt)
        if len(times) <= _MAX_TIMES:
            return f"{every}, às {_join(times, pt)}" if pt else f"{every} at {_join(times, pt)}"
        return f"{every} a partir de {times[0]}" if pt else f"{every} from {times[0]}"
    minute_step = _step(minutes, 60)
    first, last = min(hours), max(hours)
    if minute_step and hours == frozenset(range(first, last + 1)):
        every = _every(minute_step, "minuto", "minute", pt)
        start, end = _clock(first, 0, 0), _clock(last, 59, 0)
        return f"{every}, das {start} às {end}" if pt else f"{every} from {start} to {end}"
    return None


def _generic(spec: CronSpec, seconds: frozenset[int], pt: bool) -> str:
    parts = []
    if seconds != {0}:
        parts.append(_values("segundo", "second", seconds, 60, pt))
    parts.append(_values("minuto", "minute", spec.minutes, 60, pt))
    parts.append(_values("hora", "hour", spec.hours, 24, pt))
    return ", ".join(parts)


def _values(pt_word: str, en_word: str, values: frozenset[int], size: int, pt: bool) -> str:
    if len(values) == size:
        return f"todo {pt_word}" if pt else f"every {en_word}"
    word = pt_word if pt else en_word
    if len(values) > 1:
        word += "s"
    return (
        f"{'nos' if pt and len(values) > 1 else 'no' if pt else 'at'} {word} {_numbers(values, pt)}"
    )


def _days(spec: CronSpec, pt: bool) -> str:
    months = spec.months if len(spec.months) != 12 else None
    by_date = spec.days_restricted
    by_weekday = spec.weekdays_restricted
    if by_date and by_weekday:
        days = _numbers(spec.days, pt)
        plural = len(spec.days) > 1
        text = (
            f"{'nos dias' if plural else 'no dia'} {days} do mês ou {_weekdays(spec.weekdays, pt)}"
            if pt
            else f"on {'days' if plural else 'day'} {days} of the month or "
            f"{_weekdays(spec.weekdays, pt)}"
        )
    elif by_date:
        if months is not None and len(months) == 1 and len(spec.days) == 1:
            (month,) = months
            (day,) = spec.days
            return (
                f"todo ano em {day} de {MONTH_NAMES_PT[month - 1]}"
                if pt
                else f"every year on {MONTH_NAMES_EN[month - 1]} {day}"
            )
        plural = len(spec.days) > 1
        days = _numbers(spec.days, pt)
        if months is None:
            if pt:
                return f"todo mês {'nos dias' if plural else 'no dia'} {days}"
            return f"every month on {'days' if plural else 'day'} {days}"
        text = (
            f"{'nos dias' if plural else 'no dia'} {days}"
            if pt
            else f"on {'days' if plural else 'day'} {days}"
        )
    elif by_weekday:
        text = _weekdays(spec.weekdays, pt)
    else:
        text = "todo dia" if pt else "every day"
    if months is not None:
        names = _join(
            [(MONTH_NAMES_PT if pt else MONTH_NAMES_EN)[m - 1] for m in sorted(months)], pt
        )
        text += f" em {names}" if pt else f" in {names}"
    return text


def _weekdays(days: frozenset[int], pt: bool) -> str:
    if days == _WORKWEEK:
        return "de segunda a sexta-feira" if pt else "every weekday (Monday to Friday)"
    if days == _WEEKEND:
        return "aos sábados e domingos" if pt else "every Saturday and Sunday"
    ordered = sorted(days, key=lambda d: (d + 6) % 7)  # Monday first, as both languages list
    if not pt:
        return "every " + _join([WEEKDAY_NAMES_EN[d] for d in ordered], pt)
    if len(ordered) == 1:
        (day,) = ordered
        return ("todo " if day in _WEEKEND else "toda ") + WEEKDAY_NAMES_PT[day]
    words, previous = [], None
    for day in ordered:
        masculine = day in _WEEKEND  # sábado and domingo; the -feira days are feminine
        article = ("aos " if masculine else "às ") if masculine != previous else ""
        words.append(article + _PT_PLURAL[day])
        previous = masculine
    return _join(words, pt)


def _numbers(values: Iterable[int], pt: bool) -> str:
    ordered = sorted(values)
    pieces: list[str] = []
    run = [ordered[0]]
    for value in ordered[1:]:
        if value == run[-1] + 1:
            run.append(value)
            continue
        pieces.extend(_run(run, pt))
        run = [value]
    pieces.extend(_run(run, pt))
    return _join(pieces, pt)


def _run(run: list[int], pt: bool) -> list[str]:
    if len(run) >= 3:
        return [f"{run[0]} {'a' if pt else 'to'} {run[-1]}"]
    return [str(v) for v in run]


def _step(values: frozenset[int], size: int) -> int | None:
    """n when the values are 0, n, 2n, ... over the whole field and n divides it."""
    if len(values) < 2 or 0 not in values:
        return None
    step = min(v for v in values if v)
    if size % step or values != frozenset(range(0, size, step)):
        return None
    return step


def _every(n: int, pt_unit: str, en_unit: str, pt: bool) -> str:
    if n == 1:
        return f"a cada {pt_unit}" if pt else f"every {en_unit}"
    return f"a cada {n} {pt_unit}s" if pt else f"every {n} {en_unit}s"


def _duration(seconds: int, pt: bool) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    units = (("hora", "hour", hours), ("minuto", "minute", minutes), ("segundo", "second", secs))
    parts = [
        f"{n} {pt_word if pt else en_word}{'s' if n > 1 else ''}"
        for pt_word, en_word, n in units
        if n
    ]
    return _join(parts, pt)


def _clock(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}:{second:02d}" if second else f"{hour:02d}:{minute:02d}"


def _join(items: Sequence[str], pt: bool) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (" e " if pt else " and ") + items[-1]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
