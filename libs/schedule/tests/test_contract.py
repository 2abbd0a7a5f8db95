"""The NormalizedSchedule contract: camelCase JSON, UTC instants, one shape per type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import describe, parse

NOW = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "phrase", ["todo dia às 8h", "in 10 min", "every 7 hours", "30 0 9 * * 1-5", "6h"]
)
def test_json_is_camel_case_and_round_trips(phrase: str) -> None:
    schedule = parse(phrase, "America/Sao_Paulo", NOW)
    wire = json.loads(schedule.model_dump_json(by_alias=True))
    assert set(wire) == {
        "type",
        "cron",
        "everySeconds",
        "runAt",
        "anchor",
        "timezone",
        "description",
        "language",
    }
    assert NormalizedSchedule.model_validate(wire) == schedule


def test_golden_shape_of_a_portuguese_daily_schedule() -> None:
    wire = json.loads(
        parse("todo dia as 08:00", "America/Sao_Paulo", NOW).model_dump_json(by_alias=True)
    )
    assert wire == {
        "type": "recurring",
        "cron": "0 8 * * *",
        "everySeconds": None,
        "runAt": None,
        "anchor": None,
        "timezone": "America/Sao_Paulo",
        "description": "Todo dia às 08:00 (America/Sao_Paulo)",
        "language": "pt",
    }


def test_instants_are_stored_in_utc() -> None:
    plus3 = timezone(timedelta(hours=3))
    schedule = NormalizedSchedule(
        type="once",
        run_at=datetime(2026, 1, 1, 12, 0, tzinfo=plus3),
        timezone="UTC",
        description="x",
    )
    assert schedule.run_at == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert schedule.run_at is not None
    assert schedule.run_at.tzinfo is UTC
    assert '"runAt":"2026-01-01T09:00:00Z"' in schedule.model_dump_json(by_alias=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "once", "timezone": "UTC", "description": "x"},
        {"type": "once", "cron": "* * * * *", "runAt": "2026-01-01T00:00:00Z"},
        {"type": "recurring"},
        {"type": "recurring", "cron": "* * * * *", "everySeconds": 60},
        {"type": "recurring", "everySeconds": 60},
        {"type": "recurring", "everySeconds": 0, "anchor": "2026-01-01T00:00:00Z"},
        {"type": "once", "runAt": "2026-01-01T00:00:00"},
    ],
)
def test_inconsistent_shapes_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NormalizedSchedule.model_validate({"timezone": "UTC", "description": "x", **fields})


def test_fields_added_by_a_newer_producer_are_ignored() -> None:
    wire = {"type": "recurring", "cron": "0 8 * * *", "timezone": "UTC", "description": "x"}
    schedule = NormalizedSchedule.model_validate({**wire, "jitterSeconds": 5})
    assert schedule.cron == "0 8 * * *"
    assert schedule.language == "en"


def test_frozen() -> None:
    schedule = parse("hourly", "UTC", NOW)
    with pytest.raises(ValidationError):
        schedule.cron = "* * * * *"  # type: ignore[misc]


@pytest.mark.parametrize("phrase", ["todo dia às 8h", "in 10 min", "every 7 hours", "@weekly"])
def test_describe_regenerates_the_stored_description(phrase: str) -> None:
    schedule = parse(phrase, "Europe/Berlin", NOW)
    assert describe(schedule) == schedule.description
