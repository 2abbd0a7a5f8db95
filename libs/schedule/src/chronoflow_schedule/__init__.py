"""The schedule language: natural-language (EN/PT) and cron schedules, time zones, DST."""

from chronoflow_schedule.describe import describe
from chronoflow_schedule.errors import ACCEPTED_FORMS, AcceptedForm, ScheduleError, TimezoneError
from chronoflow_schedule.occurrences import MAX_OCCURRENCES, next_after, next_n
from chronoflow_schedule.parser import MAX_LENGTH, normalize, parse

__all__ = [
    "ACCEPTED_FORMS",
    "MAX_LENGTH",
    "MAX_OCCURRENCES",
    "AcceptedForm",
    "ScheduleError",
    "TimezoneError",
    "describe",
    "next_after",
    "next_n",
    "normalize",
    "parse",
]
