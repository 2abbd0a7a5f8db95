"""The rules every executor shares: backoff, the retry's schedule header, message ids, clipping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_platform.executor import rules

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def policy(**fields: object) -> RetryPolicy:
    return RetryPolicy.model_validate(fields)


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    p = policy(attempts=10, backoff="exponential", delayMs=1000, maxDelayMs=5000, jitter=False)
    assert [rules.backoff_s(p, n, 0.0) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_fixed_backoff_stays_put() -> None:
    p = policy(attempts=10, backoff="fixed", delayMs=250, maxDelayMs=60_000, jitter=False)
    assert {rules.backoff_s(p, n, 0.9) for n in range(1, 6)} == {0.25}


def test_a_huge_attempt_number_stays_capped() -> None:
    p = policy(attempts=20, backoff="exponential", delayMs=86_400_000, jitter=False)
    assert rules.backoff_s(p, 10_000, 0.0) == 60.0


@given(st.integers(1, 20), st.floats(0, 1, exclude_max=True))
def test_jitter_keeps_between_half_and_all_of_the_delay(attempt: int, unit: float) -> None:
    p = policy(attempts=20, backoff="exponential", delayMs=1000, maxDelayMs=60_000, jitter=True)
    plain = policy(
        attempts=20, backoff="exponential", delayMs=1000, maxDelayMs=60_000, jitter=False
    )
    full = rules.backoff_s(plain, attempt, unit)
    assert full / 2 <= rules.backoff_s(p, attempt, unit) <= full


@dataclass(frozen=True)
class Verdict:
    retryable: bool
    retry_after_s: float | None = None


def test_the_next_attempt_follows_the_policy_with_retry_after_as_a_floor() -> None:
    p = policy(attempts=3, backoff="fixed", delayMs=100, jitter=False)
    failed = Verdict(retryable=True)
    assert rules.next_attempt(failed, p, 1, NOW, 0.5) == NOW + timedelta(milliseconds=100)
    assert rules.next_attempt(failed, p, 3, NOW, 0.5) is None  # attempts exhausted
    assert rules.next_attempt(Verdict(retryable=False), p, 1, NOW, 0.5) is None
    busy = Verdict(retryable=True, retry_after_s=2.0)
    assert rules.next_attempt(busy, p, 1, NOW, 0.5) == NOW + timedelta(seconds=2)
    soon = Verdict(retryable=True, retry_after_s=0.01)
    assert rules.next_attempt(soon, p, 1, NOW, 0.5) == NOW + timedelta(milliseconds=100)
    assert rules.retry_at(p, 2, NOW, 0.5) == NOW + timedelta(milliseconds=100)
    assert rules.retry_at(p, 3, NOW, 0.5) is None


def test_the_schedule_header_is_utc_rfc3339_rounded_up_to_the_millisecond() -> None:
    due = datetime(2026, 11, 25, 9, 0, 0, 123_001, tzinfo=UTC)
    assert rules.schedule_header(due) == "@at 2026-11-25T09:00:00.124Z"
    exact = datetime(2026, 11, 25, 9, 0, 0, 123_000, tzinfo=UTC)
    assert rules.schedule_header(exact) == "@at 2026-11-25T09:00:00.123Z"
    local = datetime(2026, 11, 25, 6, 0, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
    assert rules.schedule_header(local) == "@at 2026-11-25T09:00:00.000Z"


def test_message_ids_are_derived_from_the_run_id() -> None:
    assert rules.started_msg_id("r1") == "run-started-r1"
    assert rules.completed_msg_id("r1") == "run-completed-r1"
    assert rules.duration_ms(0.0129) == 12
    assert rules.duration_ms(-1) == 0


def test_errors_are_clipped_to_the_limit() -> None:
    assert rules.clip("short") == "short"
    assert len(rules.clip("x" * 5000)) == rules.MAX_ERROR_CHARS
    assert rules.clip("x" * 3000, 2000).endswith("…")
    assert len(rules.clip("x" * 3000, 2000)) == 2000
