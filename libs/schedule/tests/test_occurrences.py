"""Fire times across daylight-saving changes, intervals and one-shots, named case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import MAX_OCCURRENCES, next_after, next_n, parse

CREATED = datetime(2000, 1, 1, tzinfo=UTC)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _fires(phrase: str, zone: str, after: str, n: int) -> list[str]:
    schedule = parse(phrase, zone, CREATED)
    return [f"{t:%Y-%m-%dT%H:%M:%S}" for t in next_n(schedule, _utc(after), n)]


@pytest.mark.parametrize(
    ("phrase", "zone", "after", "expected"),
    [
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z): 02:30 does not
        # exist, so it fires at the first instant after the gap, 03:00 EDT.
        (
            "daily at 02:30",
            "America/New_York",
            "2026-03-07T12:00:00",
            ["2026-03-08T07:00:00", "2026-03-09T06:30:00"],
        ),
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 happens twice
        # and fires once, at its first occurrence.
        (
            "daily at 01:30",
            "America/New_York",
            "2026-10-31T12:00:00",
            ["2026-11-01T05:30:00", "2026-11-02T06:30:00"],
        ),
        # An hourly schedule fires in both passes of the repeated hour: each is a real hour.
        (
            "every 30 minutes",
            "America/New_York",
            "2026-11-01T04:50:00",
            [
                "2026-11-01T05:00:00",
                "2026-11-01T05:30:00",
                "2026-11-01T06:00:00",
                "2026-11-01T06:30:00",
                "2026-11-01T07:00:00",
            ],
        ),
        # ... and its readings in the gap collapse into the first instant after it.
        (
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T06:10:00",
            ["2026-03-08T06:30:00", "2026-03-08T07:00:00", "2026-03-08T07:30:00"],
        ),
        # Lord Howe springs forward 30 minutes, 02:00 -> 02:30 (+10:30 -> +11, 15:30Z):
        # the 02:00 of an hourly schedule fires at 02:30 (croniter skips it).
        (
            "0 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T14:00:00",
            ["2026-10-03T14:30:00", "2026-10-03T15:30:00", "2026-10-03T16:00:00"],
        ),
        # Lord Howe falls back 30 minutes, 02:00 -> 01:30 (+11 -> +10:30, 15:00Z).
        (
            "daily at 01:45",
            "Australia/Lord_Howe",
            "2026-04-04T12:00:00",
            ["2026-04-04T14:45:00", "2026-04-05T15:15:00"],
        ),
        (
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:20:00",
            [
                "2026-04-04T14:30:00",
                "2026-04-04T14:45:00",
                "2026-04-04T15:00:00",
                "2026-04-04T15:15:00",
                "2026-04-04T15:30:00",
            ],
        ),
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z).
        (
            "todo dia às 2h30",
            "Europe/Berlin",
            "2026-03-28T12:00:00",
            ["2026-03-29T01:00:00", "2026-03-30T00:30:00"],
        ),
        # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
        (
            "todo dia às 2h30",
            "Europe/Berlin",
            "2026-10-24T12:00:00",
            ["2026-10-25T00:30:00", "2026-10-26T01:30:00"],
        ),
        # From inside the second pass, a fire-once reading already fired in the first.
        (
            "daily at 02:30",
            "Europe/Berlin",
            "2026-10-25T01:10:00",
            ["2026-10-26T01:30:00"],
        ),
        # São Paulo's old DST started at midnight (2018-11-04 00:00 -> 01:00, 03:00Z).
        (
            "@daily",
            "America/Sao_Paulo",
            "2018-11-03T12:00:00",
            ["2018-11-04T03:00:00", "2018-11-05T02:00:00"],
        ),
        # Seconds-first cron inside the gap.
        (
            "15 30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00",
            ["2026-03-08T07:00:00", "2026-03-09T06:30:15"],
        ),
        # Every 6 hours stays on local 00/06/12/18 across the change.
        (
            "6h",
            "Europe/Berlin",
            "2026-03-28T20:00:00",
            ["2026-03-28T23:00:00", "2026-03-29T04:00:00", "2026-03-29T10:00:00"],
        ),
    ],
)
def test_dst_rules(phrase: str, zone: str, after: str, expected: list[str]) -> None:
    assert _fires(phrase, zone, after, len(expected)) == expected


def test_one_shot_in_a_gap_fires_after_it_and_a_repeated_one_at_its_first_occurrence() -> None:
    now = _utc("2026-03-01T00:00:00")
    gap = parse("at 2026-03-08 02:30", "America/New_York", now)
    assert gap.run_at == _utc("2026-03-08T07:00:00")
    repeated = parse("2026-11-01T01:30", "America/New_York", now)
    assert repeated.run_at == _utc("2026-11-01T05:30:00")
    tomorrow = parse("amanhã às 2h30", "Europe/Berlin", _utc("2026-03-28T12:00:00"))
    assert tomorrow.run_at == _utc("2026-03-29T01:00:00")


def test_one_shot_fires_once_then_never() -> None:
    schedule = parse("in 10 min", "UTC", _utc("2026-01-01T00:00:00"))
    assert next_after(schedule, _utc("2026-01-01T00:05:00")) == _utc("2026-01-01T00:10:00")
    assert next_after(schedule, _utc("2026-01-01T00:10:00")) is None
    assert next_n(schedule, _utc("2026-01-01T00:00:00"), 5) == [_utc("2026-01-01T00:10:00")]


def test_anchored_interval_counts_whole_periods_from_creation() -> None:
    created = datetime(2026, 1, 1, 10, 0, 0, 900_000, tzinfo=UTC)
    schedule = parse("every 7 hours", "America/New_York", created)
    assert schedule.anchor == _utc("2026-01-01T10:00:00")
    assert next_after(schedule, _utc("2026-01-01T09:00:00")) == _utc("2026-01-01T17:00:00")
    assert next_after(schedule, _utc("2026-01-01T17:00:00")) == _utc("2026-01-02T00:00:00")
    # Elapsed time, not wall time: a DST change does not move an anchored interval.
    instant = _utc("2026-03-08T06:59:59")  # a second before New York springs forward
    fired = next_after(schedule, instant)
    assert fired is not None
    assert (fired - created.replace(microsecond=0)) % timedelta(hours=7) == timedelta(0)
    assert timedelta(0) < fired - instant <= timedelta(hours=7)


def test_strictly_after_and_returned_in_utc() -> None:
    schedule = parse("daily at 08:00", "Europe/Berlin", CREATED)
    instant = _utc("2026-06-01T06:00:00")  # exactly 08:00 CEST
    fired = next_after(schedule, instant)
    assert fired == _utc("2026-06-02T06:00:00")
    assert fired is not None
    assert fired.tzinfo is UTC
    aware_elsewhere = instant.astimezone(datetime.fromisoformat("2026-01-01T00:00+05:00").tzinfo)
    assert next_after(schedule, aware_elsewhere) == fired


def test_next_after_refuses_a_naive_instant_and_next_n_bounds_n() -> None:
    schedule = parse("hourly", "UTC", CREATED)
    with pytest.raises(ValueError, match="aware"):
        next_after(schedule, datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="between 0"):
        next_n(schedule, CREATED, MAX_OCCURRENCES + 1)
    assert next_n(schedule, CREATED, 0) == []


def test_a_schedule_read_back_from_json_fires_the_same() -> None:
    schedule = parse("toda segunda às 9h", "America/Sao_Paulo", CREATED)
    again = NormalizedSchedule.model_validate_json(schedule.model_dump_json(by_alias=True))
    start = _utc("2026-05-05T00:00:00")
    assert next_n(again, start, 5) == next_n(schedule, start, 5)
    gaps = {b - a for a, b in pairwise(next_n(again, start, 5))}
    assert gaps == {timedelta(days=7)}
