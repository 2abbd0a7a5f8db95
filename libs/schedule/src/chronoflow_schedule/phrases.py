"""The sentence patterns of the schedule language, and the search for the one a phrase fits.

Every pattern must match the whole (normalized) phrase; the first that does decides. Nothing
is inferred from a partial match: a phrase either fits a form exactly or is refused.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Final

from chronoflow_schedule import oneshot
from chronoflow_schedule.errors import TIME_HINT, ScheduleError, quote
from chronoflow_schedule.lexicon import (
    AT_EN,
    AT_PT,
    BARE_DURATION,
    DAYS_EN,
    DAYS_PT,
    DURATION,
    MONTH_EN,
    MONTH_PT,
    ORDINAL,
    ORDINALS_EN,
    ORDINALS_PT,
    TIME,
    WEEK_ALIASES_EN,
    WEEK_ALIASES_PT,
)
from chronoflow_schedule.meaning import Context, Handler, Language, Meaning
from chronoflow_schedule.recurring import (
    bare_language,
    daily,
    every,
    every_n,
    every_unit,
    hourly,
    monthly,
    weekly,
    yearly,
)

_FLAGS: Final = re.ASCII | re.VERBOSE


@dataclass(frozen=True, slots=True)
class Pattern:
    """One sentence form: its regex, its language and what it means."""

    regex: re.Pattern[str]
    language: Language | None  # None: read the language off the words (bare durations)
    handler: Handler
    #: The words the phrase can start with, when the form fixes them (an index, for speed).
    leads: str = ""


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
    Pattern(_compile(rf"(?P<dur>{BARE_DURATION})"), None, every),
    Pattern(_compile(r"hourly|every[ ]hour|each[ ]hour"), "en", hourly, "hourly every each"),
    Pattern(_compile(rf"(?:every|each)[ ](?P<dur>{DURATION})"), "en", every, "every each"),
    Pattern(
        _compile(r"(?:every|each)[ ](?:single[ ])?(?P<unit>second|minute)"),
        "en",
        every_unit,
        "every each",
    ),
    Pattern(_compile(r"de[ ]hora[ ]em[ ]hora|(?:a[ ])?cada[ ]hora"), "pt", hourly, "de a cada"),
    Pattern(_compile(rf"(?:a[ ])?cada[ ](?P<dur>{DURATION})"), "pt", every, "a cada"),
    Pattern(_compile(r"(?:a[ ])?cada[ ](?P<unit>segundo|minuto)"), "pt", every_unit, "a cada"),
    Pattern(
        _compile(r"de[ ](?P<n>\d+)[ ]em[ ](?P=n)[ ](?P<unit>segundos|minutos|horas|min|h|s)"),
        "pt",
        every_n,
        "de",
    ),
    Pattern(_compile(r"de[ ](?P<unit>segundo|minuto)[ ]em[ ](?P=unit)"), "pt", every_unit, "de"),
    # One-shot, relative
    Pattern(_compile(rf"in[ ](?P<dur>{DURATION})"), "en", oneshot.relative, "in"),
    Pattern(_compile(rf"(?P<dur>{DURATION})[ ]from[ ]now"), "en", oneshot.relative),
    Pattern(
        _compile(rf"(?:em|daqui[ ]a|daqui|dentro[ ]de)[ ](?P<dur>{DURATION})"),
        "pt",
        oneshot.relative,
        "em daqui dentro",
    ),
    # One-shot, today / tomorrow
    Pattern(
        _compile(rf"(?P<rel>today|tomorrow|(?:the[ ])?day[ ]after[ ]tomorrow){AT_EN}{_T}"),
        "en",
        oneshot.relative_day,
        "today tomorrow the day",
    ),
    Pattern(_compile(rf"(?:at[ ])?{_T}[ ](?P<rel>today|tomorrow)"), "en", oneshot.relative_day),
    Pattern(
        _compile(rf"(?P<rel>hoje|amanha|depois[ ]de[ ]amanha){AT_PT}{_T}"),
        "pt",
        oneshot.relative_day,
        "hoje amanha depois",
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
        daily,
        "every everyday each daily",
    ),
    Pattern(
        _compile(
            rf"(?:todos[ ]os[ ]dias|todo[ ]santo[ ]dia|todo[ ]dia|diariamente|(?:a[ ])?cada[ ]dia)"
            rf"{AT_PT}{_T}"
        ),
        "pt",
        daily,
        "todos todo diariamente a cada",
    ),
    # Weekly
    Pattern(
        _compile(
            r"(?:(?P<pre>every|each|on|weekly[ ]on|every[ ]week[ ]on|from)[ ])?"
            rf"(?P<days>{WEEK_ALIASES_EN}|{DAYS_EN}){AT_EN}{_T}"
        ),
        "en",
        weekly("en"),
    ),
    Pattern(
        _compile(
            r"(?:(?P<week>toda[ ]semana|semanalmente),?[ ])?"
            r"(?:(?P<pre>todas[ ]as|todos[ ]os|toda|todo|aos|as|nas|nos|na|no|em)[ ])?"
            rf"(?P<days>{WEEK_ALIASES_PT}|{DAYS_PT}){AT_PT}{_T}"
        ),
        "pt",
        weekly("pt"),
    ),
    # Monthly
    Pattern(
        _compile(
            r"(?:monthly|every[ ]month|each[ ]month),?(?:[ ]on)?(?:[ ]the)?(?:[ ]days?)?"
            rf"[ ](?P<doms>{ORDINALS_EN})(?:[ ]of[ ]the[ ]month)?{AT_EN}{_T}"
        ),
        "en",
        monthly,
        "monthly every each",
    ),
    Pattern(
        _compile(
            rf"(?:on[ ])?(?:the[ ])?(?:days?[ ])?(?P<doms>{ORDINALS_EN})[ ]of[ ](?:every|each)"
            rf"[ ]month{AT_EN}{_T}"
        ),
        "en",
        monthly,
    ),
    Pattern(
        _compile(
            rf"(?:(?:todo|no|nos|em)[ ])?dias?[ ](?P<doms>{ORDINALS_PT})"
            rf"(?:[ ]de[ ](?:cada|todo)[ ]mes)?{AT_PT}{_T}"
        ),
        "pt",
        monthly,
    ),
    Pattern(
        _compile(
            r"(?:todo[ ]mes|todos[ ]os[ ]meses|mensalmente|(?:a[ ])?cada[ ]mes),?"
            rf"(?:[ ](?:no|em|nos|aos|ao))?(?:[ ]dias?)?[ ](?P<doms>{ORDINALS_PT}){AT_PT}{_T}"
        ),
        "pt",
        monthly,
        "todo todos mensalmente a cada",
    ),
    # Yearly
    Pattern(
        _compile(
            r"(?:every[ ]year|each[ ]year|yearly|annually|every),?(?:[ ]on)?[ ](?:the[ ])?"
            rf"(?:(?P<yd1>{ORDINAL})[ ](?:of[ ])?(?P<ym1>{MONTH_EN})"
            rf"|(?P<ym2>{MONTH_EN})[ ](?:the[ ])?(?P<yd2>{ORDINAL})){AT_EN}{_T}"
        ),
        "en",
        yearly("en"),
        "every each yearly annually",
    ),
    Pattern(
        _compile(
            r"(?:(?:todo[ ]ano|todos[ ]os[ ]anos|anualmente|(?:a[ ])?cada[ ]ano),?"
            r"(?:[ ](?:em|no[ ]dia|no|dia|todo[ ]dia))?|todo(?:[ ]dia)?)"
            rf"[ ](?P<yd1>{ORDINAL})[ ]de[ ](?P<ym1>{MONTH_PT}){AT_PT}{_T}"
        ),
        "pt",
        yearly("pt"),
        "todo todos anualmente a cada",
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


def _index() -> tuple[dict[str, tuple[Pattern, ...]], tuple[Pattern, ...]]:
    open_forms = tuple(p for p in PATTERNS if not p.leads)
    words = {word for p in PATTERNS for word in p.leads.split()}
    by_word = {w: tuple(p for p in PATTERNS if not p.leads or w in p.leads.split()) for w in words}
    return by_word, open_forms


_BY_FIRST_WORD, _OPEN_FORMS = _index()


def meaning(phrase: str, ctx: Context) -> tuple[Meaning, Language]:
    """The meaning of a normalized phrase and its language; ScheduleError if no form fits."""
    likely = _BY_FIRST_WORD.get(phrase.partition(" ")[0], _OPEN_FORMS)
    # The index only orders the search: every form is still tried before a phrase is refused.
    for pattern in itertools.chain(likely, (p for p in PATTERNS if p not in likely)):
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
