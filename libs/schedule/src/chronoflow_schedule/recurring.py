"""Recurring phrases: daily, weekly, monthly and yearly times of day, and intervals."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from chronoflow_schedule.clock import day_of_month, duration_seconds, time_of_day
from chronoflow_schedule.cronspec import CronSpec, build
from chronoflow_schedule.errors import ScheduleError, quote
from chronoflow_schedule.lexicon import (
    DAY_ALIASES,
    DAY_WORD_EN,
    DAY_WORD_PT,
    MONTHS_EN,
    MONTHS_PT,
    UNITS,
    WEEKDAYS_EN,
    WEEKDAYS_PT,
)
from chronoflow_schedule.meaning import Calendar, Context, Every, Groups, Handler, Language, Meaning

_FLAGS: Final = re.ASCII | re.VERBOSE
_NUMBER = re.compile(r"\d+", re.ASCII)
_DAY_EN = re.compile(rf"(?<![a-z]){DAY_WORD_EN}(?![a-z])", _FLAGS)
_DAY_PT = re.compile(rf"(?<![a-z]){DAY_WORD_PT}(?![a-z])", _FLAGS)
_RANGE_EN = re.compile(
    rf"(?P<a>{DAY_WORD_EN})(?:[ ]?-[ ]?|[ ](?:to|through|thru|until)[ ])(?P<b>{DAY_WORD_EN})",
    _FLAGS,
)
_RANGE_PT = re.compile(
    rf"(?:de[ ])?(?P<a>{DAY_WORD_PT})(?:[ ]?-[ ]?|[ ](?:a|ate)[ ])(?P<b>{DAY_WORD_PT})", _FLAGS
)
_WORD = re.compile(r"[a-z]+", re.ASCII)
_PT_WORDS: Final = frozenset(
    ("seg", "segs", "segundo", "segundos", "minuto", "minutos", "hora", "horas", "e")
)
#: Prefixes that make a single weekday recurring ("every monday", "toda segunda", "às segundas").
_RECURRING_PREFIXES: Final = frozenset(
    ("every", "each", "weekly on", "every week on", "todas as", "todos os", "toda", "todo")
).union(("aos", "as", "nas", "nos"))
_WORKWEEK: Final = frozenset(range(1, 6))
_WEEKEND: Final = frozenset((0, 6))


def daily(groups: Groups, ctx: Context) -> Meaning:
    """``todo dia às 8h``: every day at a time of day."""
    return Calendar(_at(groups, ctx))


def weekly(language: Language) -> Handler:
    """``every mon, wed and fri at 9am``: the handler for weekday phrases in a language."""

    def handler(groups: Groups, ctx: Context) -> Meaning:
        text = _text(groups, "days")
        recurring = groups.get("week") or groups.get("pre") in _RECURRING_PREFIXES
        if not recurring and _one_singular_day(text, language):
            # "monday at 9am", "no sábado às 10h" may well mean this coming one only.
            raise ScheduleError(
                f"{quote(ctx.phrase)} is ambiguous (only the next one, or every week?): write "
                "'every monday at 9am' / 'toda segunda às 9h' for a weekly schedule, or a date "
                "for a one-shot."
            )
        days = _weekdays(text, language, ctx.phrase)
        return Calendar(_at(groups, ctx, weekdays=days))

    return handler


def _one_singular_day(text: str, language: Language) -> bool:
    words = (_DAY_PT if language == "pt" else _DAY_EN).findall(text)
    if len(words) != 1 or words[0] != text:
        return False
    return not _stem(text).endswith("days" if language == "en" else "s")


def _stem(word: str) -> str:
    # "segundas-feiras", "sexta feira": the first word names the day.
    return word.partition("-")[0].partition(" ")[0]


def monthly(groups: Groups, ctx: Context) -> Meaning:
    """``todo dia 5 às 10h``: days of every month (a month without the day is skipped)."""
    days = frozenset(
        day_of_month(int(n), ctx.phrase) for n in _NUMBER.findall(_text(groups, "doms"))
    )
    return Calendar(_at(groups, ctx, days=days))


def yearly(language: Language) -> Handler:
    """``todo ano em 25 de dezembro às 9h``: the handler for a date of every year."""
    names = MONTHS_PT if language == "pt" else MONTHS_EN

    def handler(groups: Groups, ctx: Context) -> Meaning:
        month = names[groups.get("ym1") or _text(groups, "ym2")]
        day_text = groups.get("yd1") or _text(groups, "yd2")
        day = day_of_month(int(_NUMBER.findall(day_text)[0]), ctx.phrase, month)
        return Calendar(_at(groups, ctx, days=frozenset({day}), months=frozenset({month})))

    return handler


def every(groups: Groups, ctx: Context) -> Meaning:
    """``every 15 minutes``, ``6h``: a period."""
    return Every(duration_seconds(_text(groups, "dur"), ctx.phrase))


def every_unit(groups: Groups, _ctx: Context) -> Meaning:
    """``every minute``, ``de minuto em minuto``: one unit."""
    return Every(UNITS[_text(groups, "unit")])


def every_n(groups: Groups, ctx: Context) -> Meaning:
    """``de 6 em 6 horas``: a period spelled the Portuguese way."""
    return Every(duration_seconds(f"{_text(groups, 'n')} {_text(groups, 'unit')}", ctx.phrase))


def hourly(_groups: Groups, _ctx: Context) -> Meaning:
    """``hourly``, ``de hora em hora``."""
    return Every(3600)


def _at(
    groups: Groups,
    ctx: Context,
    *,
    days: frozenset[int] = frozenset(range(1, 32)),
    months: frozenset[int] = frozenset(range(1, 13)),
    weekdays: frozenset[int] = frozenset(range(7)),
) -> CronSpec:
    hour, minute, second = time_of_day(groups, ctx.phrase)
    return build(
        seconds=frozenset({second}),
        minutes=frozenset({minute}),
        hours=frozenset({hour}),
        days=days,
        months=months,
        weekdays=weekdays,
    )


def _weekdays(text: str, language: Language, phrase: str) -> frozenset[int]:
    alias = DAY_ALIASES.get(text.removeprefix("de ") if language == "pt" else text)
    if alias is not None:
        return _WORKWEEK if alias == "wd" else _WEEKEND
    table = WEEKDAYS_PT if language == "pt" else WEEKDAYS_EN
    span = (_RANGE_PT if language == "pt" else _RANGE_EN).fullmatch(text)
    if span is not None:
        first, last = _weekday(span["a"], table), _weekday(span["b"], table)
        if first == last:
            raise ScheduleError(f"The day range in {quote(phrase)} starts and ends on one day.")
        return frozenset((first + k) % 7 for k in range((last - first) % 7 + 1))
    words = (_DAY_PT if language == "pt" else _DAY_EN).findall(text)
    return frozenset(_weekday(word, table) for word in words)


def _weekday(word: str, table: Mapping[str, int]) -> int:
    return table[_stem(word)]


def _text(groups: Groups, key: str) -> str:
    value = groups.get(key)
    if value is None:
        raise AssertionError(f"the pattern always sets {key}")  # pragma: no cover
    return value


def bare_language(text: str) -> Language:
    """A bare duration is Portuguese when its unit word is (``2 horas``), else English."""
    return "pt" if _PT_WORDS.intersection(_WORD.findall(text)) else "en"
