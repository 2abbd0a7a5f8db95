"""The rules of one function run, without I/O: status, retry, state merge, env, message ids."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_function.sandbox import JsonValue, Termination

TARGET: Final = "function"
FinalStatus: TypeAlias = Literal[RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]
#: Terminations another attempt could end differently: the sandbox's worker died under the run
#: (the machine, not the function). A timeout, a thrown error, a quota or the memory cap is the
#: function's own doing, and a new attempt would repeat its side effects (messages sent) too.
RETRYABLE: Final = frozenset({Termination.CRASHED})
_MAX_ERROR_CHARS = 2000


def run_status(termination: Termination) -> FinalStatus:
    """completed → SUCCESS, timeout → TIMEOUT, anything else → FAILED."""
    if termination is Termination.COMPLETED:
        return RunStatus.SUCCESS
    if termination is Termination.TIMEOUT:
        return RunStatus.TIMEOUT
    return RunStatus.FAILED


def backoff_s(policy: RetryPolicy, failed_attempt: int, unit: float) -> float:
    """The policy's wait after ``failed_attempt`` (1-based), as the HTTP executor computes it.

    Exponential doubles ``delayMs`` per attempt; both kinds are capped at ``maxDelayMs``;
    jitter keeps at least half the delay and spreads the rest with ``unit`` in [0, 1).
    """
    base_ms = float(policy.delay_ms)
    if policy.backoff == "exponential":
        base_ms *= 2.0 ** min(failed_attempt - 1, 62)
    delay_ms = min(base_ms, float(policy.max_delay_ms))
    if policy.jitter:
        delay_ms = delay_ms / 2 + unit * delay_ms / 2
    return delay_ms / 1000


def next_attempt(
    termination: Termination,
    policy: RetryPolicy,
    attempt: int,
    finished_at: datetime,
    unit: float,
) -> datetime | None:
    """When the next attempt is due, or None when this attempt is the last."""
    if termination not in RETRYABLE or attempt >= policy.attempts:
        return None
    return finished_at + timedelta(seconds=backoff_s(policy, attempt, unit))


def merge_state(
    current: Mapping[str, Any], upserts: Mapping[str, JsonValue], deletes: Iterable[str]
) -> dict[str, Any]:
    """``current`` with a run's changed keys applied: the keys it did not touch stay as stored,
    so a concurrent run's writes to other keys survive."""
    merged = dict(current)
    merged.update(upserts)
    for key in deletes:
        merged.pop(key, None)
    return merged


def overwritten_keys(
    base: Mapping[str, Any], latest: Mapping[str, Any], written: Iterable[str]
) -> tuple[str, ...]:
    """The written keys whose stored value changed since the run read ``base``: a concurrent
    run wrote them, and this run's write replaces that value (sorted)."""
    return tuple(
        sorted(k for k in set(written) if _canonical(base.get(k)) != _canonical(latest.get(k)))
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def allowlisted_env(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ``ctx.env`` may read: allowlisted names that are set."""
    return {name: environ[name] for name in names if name in environ}


def clip(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    """An error message short enough for a run row."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_ms(seconds: float) -> int:
    """Whole milliseconds, never negative."""
    return max(0, math.floor(seconds * 1000))


def started_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of an attempt's RunStarted (the HTTP executor's scheme)."""
    return f"run-started-{run_id}"


def completed_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of an attempt's RunCompleted: a redelivery's copy is dropped."""
    return f"run-completed-{run_id}"


def schedule_header(due: datetime) -> str:
    """The ``Nats-Schedule`` value for a one-off message at ``due`` (UTC, millisecond RFC 3339),
    rounded up so a retry may come a little late, never early."""
    utc = (due + timedelta(microseconds=999)).astimezone(UTC)
    return "@at " + utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
