"""The scheduler's pure decisions: fire instants, message ids, the misfire rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from chronoflow_contracts.chrono import TargetType
from chronoflow_scheduler.domain import (
    MAX_MISSED_WALK,
    ON_TIME_SECONDS,
    FirePlan,
    at_expression,
    definition_from_row,
    fire_at,
    first_due,
    schedule_msg_id,
    target_kind,
)
from chronoflow_scheduler.domain import plan_fire as plan
from chronoflow_scheduler.testing import every, http_definition, once

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_fire_at_is_early_and_whole_seconds() -> None:
    assert fire_at(T0, 10) == datetime(2026, 3, 1, 11, 59, 50, tzinfo=UTC)
    assert fire_at(T0.replace(microsecond=0), 1) == datetime(2026, 3, 1, 11, 59, 59, tzinfo=UTC)
    assert at_expression(fire_at(T0, 10)) == "@at 2026-03-01T11:59:50Z"


def test_fire_at_converts_to_utc() -> None:
    from zoneinfo import ZoneInfo

    local = T0.astimezone(ZoneInfo("America/Sao_Paulo"))
    assert at_expression(fire_at(local, 10)) == "@at 2026-03-01T11:59:50Z"


def test_schedule_message_ids_start_with_the_chrono_and_differ_per_version_and_instant() -> None:
    ids = {
        schedule_msg_id("c1", 5, T0),
        schedule_msg_id("c1", 6, T0),
        schedule_msg_id("c1", 5, T0 + timedelta(microseconds=1)),
        schedule_msg_id("c1", 5, T0, "r1"),
    }
    assert len(ids) == 4
    assert all(i.startswith("chrono-c1-") for i in ids)
    assert schedule_msg_id("c1", 5, T0) == schedule_msg_id("c1", 5, T0)


def test_on_time_fire_runs_and_arms_the_next() -> None:
    schedule = every(60, T0)
    due = T0 + timedelta(seconds=60)
    assert plan(schedule, due, due, 300) == FirePlan(
        run=due, skipped=None, skipped_count=0, next_due=due + timedelta(seconds=60)
    )


def test_one_shot_has_no_next() -> None:
    p = plan(once(T0), T0, T0 + timedelta(seconds=0.2), 300)
    assert (p.run, p.skipped, p.next_due) == (T0, None, None)


def test_late_one_shot_beyond_grace_is_skipped() -> None:
    p = plan(once(T0), T0, T0 + timedelta(seconds=301), 300)
    assert p == FirePlan(run=None, skipped=T0, skipped_count=1, next_due=None)


def test_a_grace_of_zero_still_runs_what_is_on_time() -> None:
    p = plan(once(T0), T0, T0 + timedelta(seconds=ON_TIME_SECONDS / 2), 0)
    assert p.run == T0
    p = plan(once(T0), T0, T0 + timedelta(seconds=ON_TIME_SECONDS + 0.5), 0)
    assert p.run is None


def test_missed_occurrences_coalesce_and_the_latest_runs_within_grace() -> None:
    schedule = every(60, T0)
    first = T0 + timedelta(seconds=60)
    now = first + timedelta(minutes=10, seconds=5)  # 11 came due, the latest 5 s ago
    p = plan(schedule, first, now, 300)
    assert p.run == first + timedelta(minutes=10)
    assert (p.skipped, p.skipped_count) == (first, 10)
    assert p.next_due == first + timedelta(minutes=11)


def test_missed_occurrences_all_skipped_beyond_grace() -> None:
    schedule = every(60, T0)
    first = T0 + timedelta(seconds=60)
    now = first + timedelta(minutes=10, seconds=30)
    p = plan(schedule, first, now, 10)
    assert p == FirePlan(
        run=None, skipped=first, skipped_count=11, next_due=first + timedelta(minutes=11)
    )


def test_a_very_long_outage_is_counted_up_to_a_bound() -> None:
    schedule = every(1, T0)
    first = T0 + timedelta(seconds=1)
    now = first + timedelta(days=2)
    p = plan(schedule, first, now, 300)
    assert p.skipped_count == MAX_MISSED_WALK
    assert p.next_due is not None
    assert p.next_due > now


@example(period=1, late=1.999999999992724, grace=0)  # rounds up to 2 s in a timedelta
@example(period=5, late=49999.99999999999, grace=5)  # ... and to one past the walk's bound
@given(
    period=st.integers(min_value=1, max_value=3600),
    late=st.floats(min_value=0, max_value=50_000),
    grace=st.integers(min_value=0, max_value=3600),
)
def test_run_and_skips_cover_every_occurrence_once(period: int, late: float, grace: int) -> None:
    schedule = every(period, T0)
    due = T0 + timedelta(seconds=period)
    now = due + timedelta(seconds=late)
    p = plan(schedule, due, now, grace)
    # From the timedelta, not the float: timedelta rounds to microseconds.
    came_due = (now - due) // timedelta(seconds=period) + 1
    covered = p.skipped_count + (1 if p.run is not None else 0)
    if came_due <= MAX_MISSED_WALK:
        assert covered == came_due
    assert p.next_due is not None
    assert p.next_due > now
    if p.run is not None:
        assert now - p.run <= timedelta(seconds=max(grace, ON_TIME_SECONDS))
        assert p.next_due == p.run + timedelta(seconds=period) or came_due > MAX_MISSED_WALK


def test_first_due_prefers_what_the_api_announced() -> None:
    schedule = every(60, T0)
    announced = T0 + timedelta(hours=5)
    assert first_due(schedule, announced, T0) == announced
    assert first_due(schedule, None, T0) == T0 + timedelta(seconds=60)
    assert first_due(once(T0), None, T0 + timedelta(seconds=1)) is None


def test_definition_round_trips_through_a_read_model_row() -> None:
    definition = http_definition(every(60, T0), url="https://example.com/x", concurrency=1)
    row = {
        **definition.model_dump(mode="json", by_alias=False),
        "schedule": definition.schedule.model_dump(mode="json", by_alias=True),
        "config": definition.config.model_dump(mode="json", by_alias=True),
    }
    assert definition_from_row(row) == definition
    assert target_kind(TargetType.MESSAGE) == "message"
