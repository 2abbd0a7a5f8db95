"""The rules every executor applies to a run, without I/O: its events' identity and message
ids, retry backoff, the ``@at`` schedule of a retry, clipping and durations."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, Protocol, TypeAlias, TypedDict

from chronoflow_contracts.chrono import RetryPolicy, TargetType
from chronoflow_contracts.names import TargetKind
from chronoflow_contracts.runs import RunCompleted, RunRequested, RunStatus, Trigger

#: The work queue (and durable) of each target type.
KINDS: Final[dict[TargetType, TargetKind]] = {
    TargetType.HTTP: "http",
    TargetType.MESSAGE: "message",
    TargetType.FUNCTION: "function",
}
#: The target type whose runs each work queue holds.
TARGET_TYPES: Final[dict[TargetKind, TargetType]] = {kind: t for t, kind in KINDS.items()}
MAX_ERROR_CHARS = 500
#: The statuses an attempt can end with.
FinalStatus: TypeAlias = Literal[RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]


class Identity(TypedDict):
    """The fields every run event repeats from its RunRequested, in the events' field order
    (the run ledger builds events from this dict as it is, and their JSON follows it)."""

    correlation_id: str | None
    causation_id: str | None
    chrono_id: str
    run_id: str
    occurrence_id: str
    scheduled_for: datetime
    trigger: Trigger
    attempt: int


def identity(request: RunRequested) -> Identity:
    """The run's identity, caused by ``request``."""
    return {
        "correlation_id": request.correlation_id,
        "causation_id": request.event_id,
        "chrono_id": request.chrono_id,
        "run_id": request.run_id,
        "occurrence_id": request.occurrence_id,
        "scheduled_for": request.scheduled_for,
        "trigger": request.trigger,
        "attempt": request.attempt,
    }


def started_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of an attempt's RunStarted."""
    return f"run-started-{run_id}"


def completed_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of an attempt's RunCompleted: a redelivery's copy is dropped."""
    return f"run-completed-{run_id}"


def schedule_header(due: datetime) -> str:
    """The ``Nats-Schedule`` value for a one-off message at ``due`` (UTC, millisecond RFC 3339).

    Rounded up to the millisecond: a retry may come a little late, never early.
    """
    utc = (due + timedelta(microseconds=999)).astimezone(UTC)
    return "@at " + utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def duration_ms(seconds: float) -> int:
    """Whole milliseconds, never negative."""
    return max(0, math.floor(seconds * 1000))


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error message short enough for a run row."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backoff_s(policy: RetryPolicy, failed_attempt: int, unit: float) -> float:
    """The policy's wait after ``failed_attempt`` (1-based), before any Retry-After.

    Exponential doubles ``delayMs`` per attempt; both kinds are capped at ``maxDelayMs``.
    Jitter ("equal jitter") keeps at least half the delay and spreads the rest with ``unit``
    (a number in [0, 1)), so many runs failing together do not come back together.
    """
    base_ms = float(policy.delay_ms)
    if policy.backoff == "exponential":
        base_ms *= 2.0 ** min(failed_attempt - 1, 62)
    delay_ms = min(base_ms, float(policy.max_delay_ms))
    if policy.jitter:
        delay_ms = delay_ms / 2 + unit * delay_ms / 2
    return delay_ms / 1000


class RetryVerdict(Protocol):
    """How an attempt ended, as far as its retry is concerned."""

    @property
    def retryable(self) -> bool:
        """Whether another attempt could end differently."""

    @property
    def retry_after_s(self) -> float | None:
        """The least wait the other side asked for (a Retry-After), if any."""


def retry_at(
    policy: RetryPolicy, attempt: int, finished_at: datetime, unit: float
) -> datetime | None:
    """When a retryable attempt's successor is due by the policy, or None after the last."""
    if attempt >= policy.attempts:
        return None
    return finished_at + timedelta(seconds=backoff_s(policy, attempt, unit))


def next_attempt(
    verdict: RetryVerdict, policy: RetryPolicy, attempt: int, finished_at: datetime, unit: float
) -> datetime | None:
    """When the next attempt is due, or None when this attempt is the last.

    A ``Retry-After`` is a floor: the policy may wait longer, never shorter.
    """
    if not verdict.retryable:
        return None
    due = retry_at(policy, attempt, finished_at, unit)
    if due is None or verdict.retry_after_s is None:
        return due
    return max(due, finished_at + timedelta(seconds=verdict.retry_after_s))


def next_attempt_at(completed: RunCompleted) -> datetime | None:
    """When a recorded outcome said the next attempt is due (None: no retry, or unreadable)."""
    if not completed.will_retry or not isinstance(completed.result, dict):
        return None
    text = completed.result.get("nextAttemptAt")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
