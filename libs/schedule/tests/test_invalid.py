"""Bad input gets a clear ScheduleError or TimezoneError, never a guess and never a trace."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoflow_schedule import (
    ACCEPTED_FORMS,
    MAX_LENGTH,
    ScheduleError,
    TimezoneError,
    parse,
)

NOW = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
SP = "America/Sao_Paulo"

#: (phrase, a fragment the message must contain)
INVALID: list[tuple[str, str]] = [
    ("", "empty"),
    ("   ", "empty"),
    ("\t\n", "empty"),
    ("x" * 10_240, "too long"),
    ("every day at 8 " * 20, "too long"),
    ("hello", "Could not understand"),
    ("evry day at 8am", "Could not understand"),
    ("every dya at 8am", "Could not understand"),
    ("todo dai às 8h", "Could not understand"),
    ("toda segundaa às 9h", "Could not understand"),
    ("every monday at", "Could not understand"),
    ("every day", "Could not understand"),
    ("daily", "Could not understand"),
    ("weekly", "Could not understand"),
    ("every day at 8", "ambiguous"),
    ("todo dia às 8", "ambiguous"),
    ("31 de fevereiro às 9h", "February has at most 29 days"),
    ("todo dia 31 de fevereiro às 9h", "February"),
    ("every year on april 31 at 9am", "April has at most 30 days"),
    ("2026-02-30T09:00", "February"),
    ("29/02/2027 às 9h", "not a leap year"),
    ("todo dia às 25h", "Hour 25"),
    ("every day at 24:00", "Hour 24"),
    ("every day at 13pm", "with am/pm"),
    ("every day at 0am", "with am/pm"),
    ("daily at 08:61", "Minute 61"),
    ("todo dia às 8h61", "Minute 61"),
    ("every day at 10:00:60", "Second 60"),
    ("todo dia 32 às 10h", "Day 32"),
    ("todo dia 0 às 10h", "Day 0"),
    ("in -5 min", "positive"),
    ("a cada -2 horas", "positive"),
    ("every 0 minutes", "greater than zero"),
    ("in 0 seconds", "greater than zero"),
    ("in 999999999999 hours", "too long"),
    ("in 30 minutes 1 hour", "larger unit first"),
    ("today at 09:00", "in the past"),
    ("hoje às 8h", "in the past"),
    ("2020-01-01T00:00:00Z", "in the past"),
    ("at 9999-12-31 23:59", "Year 9999"),
    ("2026-12-01T09:00+25:00", "offset"),
    ("61 * * * *", "minute value 61"),
    ("0 24 * * *", "hour value 24"),
    ("0 0 * 13 *", "month value 13"),
    ("0 0 * * 8", "day-of-week value 8"),
    ("*/0 * * * *", "step cannot be 0"),
    ("5-1 * * * *", "reversed"),
    ("0 0 30 2 *", "never fires"),
    ("0 9 * *", "4 fields"),
    ("0 0 0 0 0 0 0", "7 fields"),
    ("0 0 L * *", "not a number"),
    ("0 0 * * 1#2", "not a number"),
    ("H 0 * * *", "Could not understand"),
    ("@reboot", "Unknown cron macro"),
    ("@every 5m", "Could not understand"),
    ("'; DROP TABLE chronos; --", "Could not understand"),
    ("1; DELETE FROM chronos WHERE 1=1", "Could not understand"),
    ("<script>alert('x')</script>", "Could not understand"),
    ("{{7*7}}", "Could not understand"),
    ("${jndi:ldap://evil/a}", "Could not understand"),
    ("javascript:alert(1)", "Could not understand"),
    ("every day at 8am\x00", "Could not understand"),
    ("every ٨ hours", "Could not understand"),
    ("in 1.5 hours", "Could not understand"),
    ("every day at 8am and 6pm", "Could not understand"),
    ("from monday to monday at 9am", "one day"),
    ("monday at 9am", "ambiguous (only the next one, or every week?)"),
    ("on friday at 18:00", "ambiguous (only the next one"),
    ("segunda às 9h", "ambiguous (only the next one"),
    ("no sábado às 10h", "ambiguous (only the next one"),
]


def test_the_table_holds_at_least_fifty_inputs() -> None:
    assert len(INVALID) >= 50


@pytest.mark.parametrize(("phrase", "fragment"), INVALID, ids=lambda v: repr(v)[:40])
def test_invalid_phrase_raises_a_clear_schedule_error(phrase: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse(phrase, SP, NOW)
    message = str(caught.value)
    assert fragment in message
    assert len(message) < 3000
    assert caught.value.field == "cron"
    assert caught.value.accepted == ACCEPTED_FORMS


def test_unrecognized_input_lists_the_accepted_forms_in_message_and_attribute() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse("whenever you like", SP, NOW)
    message = str(caught.value)
    for form in ACCEPTED_FORMS:
        assert form.name in message
    body = caught.value.as_dict()
    assert body["field"] == "cron"
    assert body["accepted"] == [f.as_dict() for f in ACCEPTED_FORMS]
    assert "todo dia às 8h" in str(ACCEPTED_FORMS[3])


def test_too_long_input_is_refused_before_any_pattern_runs() -> None:
    started = time.perf_counter()
    with pytest.raises(ScheduleError, match=f"at most {MAX_LENGTH}"):
        parse("a" * 1_000_000, SP, NOW)
    assert time.perf_counter() - started < 0.01


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "UTC+3", "../etc/passwd", "x" * 500, "GMT+"])
def test_unknown_time_zone_is_a_timezone_error_naming_the_field(zone: str) -> None:
    with pytest.raises(TimezoneError) as caught:
        parse("hourly", zone, NOW)
    assert caught.value.field == "timezone"
    assert "timezone must be an IANA time zone name" in str(caught.value)
    assert caught.value.as_dict()["field"] == "timezone"


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse("hourly", SP, datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


_ALPHABET = st.sampled_from(
    [*"0123456789 :,-/@*.amhpsdtuoe", "às", "at", "every", "todo", "dia", "de", "em"]
)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=MAX_LENGTH) | st.lists(_ALPHABET, max_size=60).map("".join))
def test_arbitrary_text_parses_or_raises_only_the_documented_errors_quickly(text: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(ScheduleError, TimezoneError):
        parse(text, SP, NOW)
    assert time.perf_counter() - started < 0.05
