"""The sentence patterns of the schedule language and what each one means.

Every pattern must match the whole (normalized) phrase; the first that does decides. Nothing
is inferred from a partial match: a phrase either fits a form exactly or is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from chronoflow_schedule import oneshot
from chronoflow_schedule.clock import day_of_month, duration_seconds, time_of_day
from chronoflow_schedule.cronspec import CronSpec, build
from chronoflow_schedule.errors import TIME_HINT, ScheduleError, quote
from chronoflow_schedule.lexicon import (
    AT_EN,
    AT_PT,
    BARE_DURATION,
    DAY_ALIASES,
    DAY_WORD_EN,
    DAY_WORD_PT,
    DAYS_EN,
    DAYS_PT,
    DURATION,
    MONTH_EN,
    MONTH_PT,
    MONTHS_EN,
    MONTHS_PT,
    ORDINAL,
    ORDINALS_EN,
    ORDINALS_PT,
    TIME,
    UNITS,
    WEEK_ALIASES_EN,
    WEEK_ALIASES_PT,
    WEEKDAYS_EN,
    WEEKDAYS_PT,
)
from chronoflow_schedule.meaning import Calendar, Context, Every, Language, Meaning

Groups = Mapping[str, str | None]
Handler = Callable[[Groups, Context], Meaning]

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
_WORKWEEK: Final = frozenset(range(1, 6))
_WEEKEND: Final = frozenset((0, 6))


@dataclass(frozen=True, slots=True)
class Pattern:
    """One sentence form: its regex, its language and what it means."""

    regex: re.Pattern[str]
    language: Language | None  # None: read the language off the words (bare durations)
    handler: Handler


def _daily(groups: Groups, ctx: Context) -> Meaning:
    return Calendar(_at(groups, ctx))


def _weekly(language: Language) -> Handler:
    def handler(groups: Groups, ctx: Context) -> Meaning:
        days = _weekdays(_text(groups, "days"), language, ctx.phrase)
        return Calendar(_at(groups, ctx, weekdays=days))

    return handler


def _monthly(groups: Groups, ctx: Context) -> Meaning:
    days = frozenset(
        day_of_month(int(n), ctx.phrase) for n in _NUMBER.findall(_text(groups, "doms"))
    )
    return Calendar(_at(groups, ctx, days=days))


def _yearly(language: Language) -> Handler:
    names = MONTHS_PT if language == "pt" else MONTHS_EN

    def handler(groups: Groups, ctx: Context) -> Meaning:
        month = names[groups.get("ym1") or _text(groups, "ym2")]
        day_text = groups.get("yd1") or _text(groups, "yd2")
        day = day_of_month(int(_NUMBER.findall(day_text)[0]), ctx.phrase, month)
        return Calendar(_at(groups, ctx, days=frozenset({day}), months=frozenset({month})))

    return handler


def _every(groups: Groups, ctx: Context) -> Meaning:
    return Every(duration_seconds(_text(groups, "dur"), ctx.phrase))


def _every_unit(groups: Groups, _ctx: Context) -> Meaning:
    return Every(UNITS[_text(groups, "unit")])


def _every_n(groups: Groups, ctx: Context) -> Meaning:
    return Every(duration_seconds(f"{_text(groups, 'n')} {_text(groups, 'unit')}", ctx.phrase))


def _hourly(_groups: Groups, _ctx: Context) -> Meaning:
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
    # "segundas-feiras", "sexta feira": the stem names the day.
    return table[word.split("-", maxsplit=1)[0].split(" ", maxsplit=1)[0]]


def _text(groups: Groups, key: str) -> str:
    value = groups.get(key)
    if value is None:
        raise AssertionError(f"the pattern always sets {key}")  # pragma: no cover
    return value


def bare_language(text: str) -> Language:
    """A bare duration is Portuguese when its unit word is (``2 horas``), else English."""
    return "pt" if _PT_WORDS.intersection(_WORD.findall(text)) else "en"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, _FLAGS)


_T = TIME
_ISO_DATE = r"(?P<iso_y>\d{4})-(?P<iso_m>\d{1,2})-(?P<iso_d>\d{1,2})"
_DATE_EN = (
    rf"(?:{_ISO_DATE}"
    rf"|(?P<dm>{MONTH_EN})[ ](?:the[ ])?(?P<dd>{ORDINAL})(?:,?[ ](?P<dy>\d{{4}}))?"
    rf"|(?:the[ ])?(?P<dd2>{ORDINAL})[ ](?:of[ ])?(?P<dm2>{MONTH_EN})(?:,?[ ](?P<dy2>\d{{4}}))?)"
)
_DATE_PT = (
    rf"(?:{_ISO_DATE}"
    r"|(?P<sd>\d{1,2})/(?P<sm>\d{1,2})(?:/(?P<sy>\d{4}))?"
    rf"|(?P<pd>{ORDINAL})[ ]de[ ](?P<pm>{MONTH_PT})(?:[ ](?:de[ ])?(?P<py>\d{{4}}))?)"
)

PATTERNS: Final[tuple[Pattern, ...]] = (
    # ISO 8601 first: its digits would otherwise look like a date and a time.
    Pattern(
        _compile(
            r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:t|[ ])(?P<h>\d{2}):(?P<mi>\d{2})"
            r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,6}))?)?"
            r"[ ]?(?P<off>z|utc|[+-]\d{2}(?::?\d{2})?)?"
        ),
        "en",
        oneshot.iso,
    ),
    # Intervals
    Pattern(_compile(rf"(?P<dur>{BARE_DURATION})"), None, _every),
    Pattern(_compile(r"hourly|every[ ]hour|each[ ]hour"), "en", _hourly),
    Pattern(_compile(rf"(?:every|each)[ ](?P<dur>{DURATION})"), "en", _every),
    Pattern(_compile(r"(?:every|each)[ ](?:single[ ])?(?P<unit>second|minute)"), "en", _every_unit),
    Pattern(_compile(r"de[ ]hora[ ]em[ ]hora|(?:a[ ])?cada[ ]hora"), "pt", _hourly),
    Pattern(_compile(rf"(?:a[ ])?cada[ ](?P<dur>{DURATION})"), "pt", _every),
    Pattern(_compile(r"(?:a[ ])?cada[ ](?P<unit>segundo|minuto)"), "pt", _every_unit),
    Pattern(
        _compile(r"de[ ](?P<n>\d+)[ ]em[ ](?P=n)[ ](?P<unit>segundos|minutos|horas|min|h|s)"),
        "pt",
        _every_n,
    ),
    Pattern(_compile(r"de[ ](?P<unit>segundo|minuto)[ ]em[ ](?P=unit)"), "pt", _every_unit),
    # One-shot, relative
    Pattern(_compile(rf"in[ ](?P<dur>{DURATION})"), "en", oneshot.relative),
    Pattern(_compile(rf"(?P<dur>{DURATION})[ ]from[ ]now"), "en", oneshot.relative),
    Pattern(
        _compile(rf"(?:em|daqui[ ]a|daqui|dentro[ ]de)[ ](?P<dur>{DURATION})"),
        "pt",
        oneshot.relative,
    ),
    # One-shot, today / tomorrow
    Pattern(
        _compile(rf"(?P<rel>today|tomorrow|(?:the[ ])?day[ ]after[ ]tomorrow){AT_EN}{_T}"),
        "en",
        oneshot.relative_day,
    ),
    Pattern(_compile(rf"(?:at[ ])?{_T}[ ](?P<rel>today|tomorrow)"), "en", oneshot.relative_day),
    Pattern(
        _compile(rf"(?P<rel>hoje|amanha|depois[ ]de[ ]amanha){AT_PT}{_T}"),
        "pt",
        oneshot.relative_day,
    ),
    Pattern(
        _compile(rf"(?:(?:as|a)[ ])?{_T}[ ](?:de[ ])?(?P<rel>hoje|amanha)"),
        "pt",
        oneshot.relative_day,
    ),
    # Daily
    Pattern(
        _compile(rf"(?:every[ ]?day|each[ ]day|daily|every[ ]single[ ]day){AT_EN}{_T}"),
        "en",
        _daily,
    ),
    Pattern(
        _compile(
            rf"(?:todos[ ]os[ ]dias|todo[ ]santo[ ]dia|todo[ ]dia|diariamente|(?:a[ ])?cada[ ]dia)"
            rf"{AT_PT}{_T}"
        ),
        "pt",
        _daily,
    ),
    # Weekly
    Pattern(
        _compile(
            r"(?:(?:every|each|on|weekly[ ]on|every[ ]week[ ]on|from)[ ])?"
            rf"(?P<days>{WEEK_ALIASES_EN}|{DAYS_EN}){AT_EN}{_T}"
        ),
        "en",
        _weekly("en"),
    ),
    Pattern(
        _compile(
            r"(?:(?:toda[ ]semana|semanalmente),?[ ])?"
            r"(?:(?:todas[ ]as|todos[ ]os|toda|todo|aos|as|nas|nos|na|no|em)[ ])?"
            rf"(?P<days>{WEEK_ALIASES_PT}|{DAYS_PT}){AT_PT}{_T}"
        ),
        "pt",
        _weekly("pt"),
    ),
    # Monthly
    Pattern(
        _compile(
            r"(?:monthly|every[ ]month|each[ ]month),?(?:[ ]on)?(?:[ ]the)?(?:[ ]days?)?"
            rf"[ ](?P<doms>{ORDINALS_EN})(?:[ ]of[ ]the[ ]month)?{AT_EN}{_T}"
        ),
        "en",
        _monthly,
    ),
    Pattern(
        _compile(
            rf"(?:on[ ])?(?:the[ ])?(?:days?[ ])?(?P<doms>{ORDINALS_EN})[ ]of[ ](?:every|each)"
            rf"[ ]month{AT_EN}{_T}"
        ),
        "en",
        _monthly,
    ),
    Pattern(
        _compile(
            rf"(?:(?:todo|no|nos|em)[ ])?dias?[ ](?P<doms>{ORDINALS_PT})"
            rf"(?:[ ]de[ ](?:cada|todo)[ ]mes)?{AT_PT}{_T}"
        ),
        "pt",
        _monthly,
    ),
    Pattern(
        _compile(
            r"(?:todo[ ]mes|todos[ ]os[ ]meses|mensalmente|(?:a[ ])?cada[ ]mes),?"
            rf"(?:[ ](?:no|em|nos|aos|ao))?(?:[ ]dias?)?[ ](?P<doms>{ORDINALS_PT}){AT_PT}{_T}"
        ),
        "pt",
        _monthly,
    ),
    # Yearly
    Pattern(
        _compile(
            r"(?:every[ ]year|each[ ]year|yearly|annually|every),?(?:[ ]on)?[ ](?:the[ ])?"
            rf"(?:(?P<yd1>{ORDINAL})[ ](?:of[ ])?(?P<ym1>{MONTH_EN})"
            rf"|(?P<ym2>{MONTH_EN})[ ](?:the[ ])?(?P<yd2>{ORDINAL})){AT_EN}{_T}"
        ),
        "en",
        _yearly("en"),
    ),
    Pattern(
        _compile(
            r"(?:(?:todo[ ]ano|todos[ ]os[ ]anos|anualmente|(?:a[ ])?cada[ ]ano),?"
            r"(?:[ ](?:em|no[ ]dia|no|dia|todo[ ]dia))?|todo(?:[ ]dia)?)"
            rf"[ ](?P<yd1>{ORDINAL})[ ]de[ ](?P<ym1>{MONTH_PT}){AT_PT}{_T}"
        ),
        "pt",
        _yearly("pt"),
    ),
    # One-shot, absolute
    Pattern(_compile(rf"(?:(?:at|on)[ ])?{_DATE_EN}{AT_EN}{_T}"), "en", oneshot.dated),
    Pattern(
        _compile(rf"(?:(?:em|no[ ]dia|dia|para|no|na)[ ])?{_DATE_PT}{AT_PT}{_T}"),
        "pt",
        oneshot.dated,
    ),
)

#: Near misses that deserve a precise message rather than the list of forms.
_NEGATIVE = re.compile(r"(?:in|em|daqui[ ]a|daqui|every|each|(?:a[ ])?cada)[ ]?-[ ]?\d.*", _FLAGS)
_BARE_HOUR = re.compile(r".*(?:[ ]at|[ ]as|[ ]a|@)[ ]?\d{1,2}", _FLAGS)


def meaning(phrase: str, ctx: Context) -> tuple[Meaning, Language]:
    """The meaning of a normalized phrase and its language; ScheduleError if no form fits."""
    for pattern in PATTERNS:
        found = pattern.regex.fullmatch(phrase)
        if found is not None:
            language = pattern.language or bare_language(phrase)
            return pattern.handler(found.groupdict(), ctx), language
    if _NEGATIVE.fullmatch(phrase):
        raise ScheduleError(f"Durations must be positive in {quote(ctx.phrase)}.", list_forms=True)
    if _BARE_HOUR.fullmatch(phrase):
        raise ScheduleError(
            f"The time in {quote(ctx.phrase)} is ambiguous (morning or evening?): {TIME_HINT}.",
            list_forms=True,
        )
    raise ScheduleError(f"Could not understand the schedule {quote(ctx.phrase)}.", list_forms=True)
