"""``parse``: a phrase or cron expression, a time zone and an instant to a NormalizedSchedule."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Final

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule.cronspec import CronSpec, build, compile_cron
from chronoflow_schedule.describe import render
from chronoflow_schedule.errors import ScheduleError
from chronoflow_schedule.meaning import Calendar, Context, Every, Language, Once
from chronoflow_schedule.phrases import meaning
from chronoflow_schedule.zones import canonical_zone, zone

#: Longer input is refused before any pattern looks at it.
MAX_LENGTH: Final = 200

_CRON_HEAD = re.compile(r"[\d*/,\-]+", re.ASCII)
_ALL_MINUTES = frozenset(range(60))
_ALL_HOURS = frozenset(range(24))


#: Calendar schedules already read, by (text, time zone) as given. Only these are kept: they
#: depend on nothing else (one-shots and anchored intervals depend on ``now``), and the same
#: few phrases ("every 15 minutes", "todo dia as 08:00") come back with most creates.
_CALENDARS: dict[tuple[str, str], NormalizedSchedule] = {}
_CALENDARS_MAX: Final = 4096


def parse(text: str, timezone: str, now: datetime) -> NormalizedSchedule:
    """Read a schedule (natural language in English or Portuguese, or cron) in a time zone.

    ``now`` (aware) is the creation instant: relative one-shots count from it, intervals that
    do not divide a day are anchored at it, and a one-shot at or before it is refused.
    Raises :class:`ScheduleError` (the ``cron`` field) or :class:`TimezoneError`.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    key = (text, timezone)
    known = _CALENDARS.get(key)
    if known is not None:
        return known  # immutable, so every chrono that reads the same text may share it
    schedule = _parse(text, timezone, now)
    if schedule.cron is not None:
        if len(_CALENDARS) >= _CALENDARS_MAX:
            _CALENDARS.clear()  # bounded: distinct phrases cannot grow it without limit
        _CALENDARS[key] = schedule
    return schedule


def _parse(text: str, timezone: str, now: datetime) -> NormalizedSchedule:
    if len(text) > MAX_LENGTH:
        raise ScheduleError(
            f"The schedule is too long ({len(text)} characters; at most {MAX_LENGTH})."
        )
    name = canonical_zone(timezone)
    phrase = normalize(text)
    if not phrase:
        raise ScheduleError("The schedule is empty.", list_forms=True)
    if _is_cron(phrase):
        return _calendar(compile_cron(phrase), name, "en")
    now = now.astimezone(UTC)
    found, language = meaning(phrase, Context(text.strip(), zone(name), now))
    if isinstance(found, Calendar):
        return _calendar(found.spec, name, language)
    if isinstance(found, Once):
        return _schedule(type="once", run_at=found.at, timezone=name, language=language)
    aligned = _aligned(found)
    if aligned is not None:
        return _calendar(aligned, name, language)
    return _schedule(
        type="recurring",
        every_seconds=found.seconds,
        anchor=now.replace(microsecond=0),
        timezone=name,
        language=language,
    )


def normalize(text: str) -> str:
    """Lower case, accents folded (``às`` → ``as``), runs of whitespace to one space."""
    folded = text.lower()
    if not folded.isascii():
        folded = "".join(
            c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c)
        )
    return " ".join(folded.split())


def _is_cron(phrase: str) -> bool:
    if phrase.startswith("@"):
        return " " not in phrase
    head = phrase.split(" ", 2)
    return len(head) == 3 and all(_CRON_HEAD.fullmatch(token) for token in head[:2])


def _aligned(every: Every) -> CronSpec | None:
    """The cron for a period that divides a day evenly and fits one cron field, else None."""
    seconds = every.seconds
    if seconds < 60:
        if 60 % seconds:
            return None
        return build(
            seconds=frozenset(range(0, 60, seconds)), minutes=_ALL_MINUTES, hours=_ALL_HOURS
        )
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        if rest or 60 % minutes:
            return None
        return build(minutes=frozenset(range(0, 60, minutes)), hours=_ALL_HOURS)
    hours, rest = divmod(seconds, 3600)
    if rest or 24 % hours:
        return None
    return build(minutes=frozenset({0}), hours=frozenset(range(0, 24, hours)))


def _calendar(spec: CronSpec, timezone: str, language: Language) -> NormalizedSchedule:
    return NormalizedSchedule(
        type="recurring",
        cron=spec.expr,
        timezone=timezone,
        language=language,
        description=render(
            cron=spec,
            every_seconds=None,
            anchor=None,
            run_at=None,
            timezone=timezone,
            language=language,
        ),
    )


def _schedule(
    *,
    type: str,
    timezone: str,
    language: Language,
    run_at: datetime | None = None,
    every_seconds: int | None = None,
    anchor: datetime | None = None,
) -> NormalizedSchedule:
    description = render(
        cron=None,
        every_seconds=every_seconds,
        anchor=anchor,
        run_at=run_at,
        timezone=timezone,
        language=language,
    )
    return NormalizedSchedule.model_validate(
        {
            "type": type,
            "run_at": run_at,
            "every_seconds": every_seconds,
            "anchor": anchor,
            "timezone": timezone,
            "language": language,
            "description": description,
        }
    )
