"""The words of the schedule language (English and Portuguese, accents folded) as regex pieces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

WEEKDAYS_EN: Final = {
    **dict.fromkeys(("sunday", "sundays", "sun"), 0),
    **dict.fromkeys(("monday", "mondays", "mon"), 1),
    **dict.fromkeys(("tuesday", "tuesdays", "tues", "tue"), 2),
    **dict.fromkeys(("wednesday", "wednesdays", "wed"), 3),
    **dict.fromkeys(("thursday", "thursdays", "thurs", "thur", "thu"), 4),
    **dict.fromkeys(("friday", "fridays", "fri"), 5),
    **dict.fromkeys(("saturday", "saturdays", "sat"), 6),
}
#: Portuguese weekday stems; ``-feira`` (or `` feira``) may follow segunda to sexta.
WEEKDAYS_PT: Final = {
    **dict.fromkeys(("domingo", "domingos", "dom"), 0),
    **dict.fromkeys(("segunda", "segundas", "seg"), 1),
    **dict.fromkeys(("terca", "tercas", "ter"), 2),
    **dict.fromkeys(("quarta", "quartas", "qua"), 3),
    **dict.fromkeys(("quinta", "quintas", "qui"), 4),
    **dict.fromkeys(("sexta", "sextas", "sex"), 5),
    **dict.fromkeys(("sabado", "sabados", "sab"), 6),
}
MONTHS_EN: Final = {
    **dict.fromkeys(("january", "jan"), 1),
    **dict.fromkeys(("february", "feb"), 2),
    **dict.fromkeys(("march", "mar"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    **dict.fromkeys(("may",), 5),
    **dict.fromkeys(("june", "jun"), 6),
    **dict.fromkeys(("july", "jul"), 7),
    **dict.fromkeys(("august", "aug"), 8),
    **dict.fromkeys(("september", "sept", "sep"), 9),
    **dict.fromkeys(("october", "oct"), 10),
    **dict.fromkeys(("november", "nov"), 11),
    **dict.fromkeys(("december", "dec"), 12),
}
MONTHS_PT: Final = {
    **dict.fromkeys(("janeiro", "jan"), 1),
    **dict.fromkeys(("fevereiro", "fev"), 2),
    **dict.fromkeys(("marco", "mar"), 3),
    **dict.fromkeys(("abril", "abr"), 4),
    **dict.fromkeys(("maio", "mai"), 5),
    **dict.fromkeys(("junho", "jun"), 6),
    **dict.fromkeys(("julho", "jul"), 7),
    **dict.fromkeys(("agosto", "ago"), 8),
    **dict.fromkeys(("setembro", "set"), 9),
    **dict.fromkeys(("outubro", "out"), 10),
    **dict.fromkeys(("novembro", "nov"), 11),
    **dict.fromkeys(("dezembro", "dez"), 12),
}
UNITS: Final = {
    **dict.fromkeys(
        ("s", "sec", "secs", "second", "seconds", "seg", "segs", "segundo", "segundos"), 1
    ),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "minuto", "minutos"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "hora", "horas"), 3600),
}
#: "an hour", "uma hora": a word for one, only before a spelled-out unit.
ONE_WORDS: Final = ("an", "a", "one", "um", "uma")
HALF_HOUR: Final = ("half an hour", "half hour", "meia hora")
DAY_ALIASES: Final = {
    **dict.fromkeys(("weekdays", "weekday", "week days", "working days", "business days"), "wd"),
    **dict.fromkeys(("weekends", "weekend", "week ends"), "we"),
    **dict.fromkeys(("dias uteis", "dia util"), "wd"),
    **dict.fromkeys(("fins de semana", "fim de semana", "finais de semana"), "we"),
}


def alternation(words: Iterable[str]) -> str:
    """A non-capturing regex alternation, longest words first so none shadows another."""
    ordered = sorted(words, key=len, reverse=True)
    return "(?:" + "|".join(w.replace(" ", "[ ]") for w in ordered) + ")"


#: One weekday name ("mon", "mondays", "sexta-feira", "sábados").
DAY_WORD_EN: Final = alternation(WEEKDAYS_EN)
DAY_WORD_PT: Final = (
    rf"(?:(?:segunda|terca|quarta|quinta|sexta)s?(?:[- ]feiras?)?|{alternation(WEEKDAYS_PT)})"
)
_LIST_SEP_EN = r"(?:[ ]?,[ ]?(?:and[ ])?|[ ](?:and|&)[ ])"
_LIST_SEP_PT = r"(?:[ ]?,[ ]?(?:e[ ])?|[ ](?:e|&)[ ])"

#: A list or a range of weekday names; ``recurring`` reads the words back.
DAYS_EN: Final = (
    rf"(?:{DAY_WORD_EN}(?:[ ]?-[ ]?|[ ](?:to|through|thru|until)[ ]){DAY_WORD_EN}"
    rf"|{DAY_WORD_EN}(?:{_LIST_SEP_EN}{DAY_WORD_EN})*)"
)
DAYS_PT: Final = (
    rf"(?:(?:de[ ])?{DAY_WORD_PT}(?:[ ]?-[ ]?|[ ](?:a|ate)[ ]){DAY_WORD_PT}"
    rf"|{DAY_WORD_PT}(?:{_LIST_SEP_PT}{DAY_WORD_PT})*)"
)
MONTH_EN: Final = alternation(MONTHS_EN)
MONTH_PT: Final = alternation(MONTHS_PT)
ORDINAL: Final = r"\d{1,2}(?:st|nd|rd|th|o)?"
ORDINALS_EN: Final = rf"{ORDINAL}(?:{_LIST_SEP_EN}{ORDINAL})*"
ORDINALS_PT: Final = rf"{ORDINAL}(?:{_LIST_SEP_PT}{ORDINAL})*"
WEEK_ALIASES_EN: Final = (
    r"(?:weekdays?|week[ ]days|working[ ]days|business[ ]days|weekends?|week[ ]ends)"
)
WEEK_ALIASES_PT: Final = r"(?:dias[ ]uteis|dia[ ]util|(?:fins|fim|finais)[ ]de[ ]semana)"

_UNIT = alternation(UNITS)
_LONG_UNIT = r"(?:second|minute|hour|segundo|minuto|hora)"
#: One amount and unit: "10 min", "2h", "an hour", "meia hora".
_PART = rf"(?:\d+[ ]?{_UNIT}|{alternation(ONE_WORDS)}[ ]{_LONG_UNIT}|{alternation(HALF_HOUR)})"
#: A duration: "10 min", "1 hour 30 minutes", "1h30m", "2 horas e 15 minutos", "1h30".
DURATION: Final = (
    rf"(?:{_PART}(?:(?:[ ]?,[ ]?|[ ]and[ ]|[ ]e[ ]|[ ])?{_PART})*|\d+[ ]?h[ ]?\d{{2}})"
)
#: A duration that may stand alone as "every ...": digits, and a unit after every amount
#: with a space between parts ("1h 30m"; not "8h30" or "8h30min", which read as a time of day).
BARE_DURATION: Final = rf"(?:\d+[ ]?{_UNIT}(?:(?:[ ]?,[ ]?|[ ]and[ ]|[ ]e[ ]|[ ])\d+[ ]?{_UNIT})*)"
#: One part of a matched duration, read by ``clock.duration_seconds``; "1h30" comes first so
#: that its minutes are not left behind as a bare number.
DURATION_PART: Final = (
    r"(?P<hh>\d+)[ ]?h[ ]?(?P<hm>\d{2})(?![ ]?[a-z0-9])"
    rf"|(?P<half>{alternation(HALF_HOUR)})"
    rf"|(?P<n>\d+|{alternation(ONE_WORDS)})[ ]?(?P<u>{_UNIT})(?![a-z])"
)

#: Display names, fixed here rather than taken from the process locale.
MONTH_NAMES_EN: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
MONTH_NAMES_PT: Final = (
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
)
WEEKDAY_NAMES_EN: Final = (
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
)
WEEKDAY_NAMES_PT: Final = (
    "domingo",
    "segunda-feira",
    "terça-feira",
    "quarta-feira",
    "quinta-feira",
    "sexta-feira",
    "sábado",
)

#: A time of day. The groups are read by ``clock.time_of_day``.
TIME: Final = r"""(?:
    (?P<t_h>\d{1,2}):(?P<t_m>\d{2})(?::(?P<t_s>\d{2}))?(?:[ ]?(?P<t_ap>[ap])\.?m\.?|[ ]?h)?
  | (?P<t_hh>\d{1,2})[ ]?h(?:[ ]?(?P<t_hm>\d{2})(?:[ ]?(?:min|m))?)?
  | (?P<t_h12>\d{1,2})[ ]?(?P<t_ap2>[ap])\.?m\.?
  | (?P<t_noon>noon|midday|meio[- ]dia)
  | (?P<t_midnight>midnight|meia[- ]noite)
)"""
#: What may sit between a day and its time: "at", "às"/"as", "à"/"a"/"ao", "@" or nothing.
AT_EN: Final = r"(?:,?[ ]at[ ]|[ ]?@[ ]?|,?[ ])"
AT_PT: Final = r"(?:,?[ ](?:as|a|ao)[ ]|[ ]?@[ ]?|,?[ ])"
