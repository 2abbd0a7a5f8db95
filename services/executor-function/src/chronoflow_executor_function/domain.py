"""The rules of one function run, without I/O: status, retry, state merge, env."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_function.sandbox import JsonValue, Termination
from chronoflow_platform.executor import rules
from chronoflow_platform.executor.rules import FinalStatus

TARGET: Final = "function"
#: Terminations another attempt could end differently: the sandbox's worker died under the run
#: (the machine, not the function). A timeout, a thrown error, a quota or the memory cap is the
#: function's own doing, and a new attempt would repeat its side effects (messages sent) too.
RETRYABLE: Final = frozenset({Termination.CRASHED})
MAX_ERROR_CHARS = 2000


def run_status(termination: Termination) -> FinalStatus:
    """completed → SUCCESS, timeout → TIMEOUT, anything else → FAILED."""
    if termination is Termination.COMPLETED:
        return RunStatus.SUCCESS
    if termination is Termination.TIMEOUT:
        return RunStatus.TIMEOUT
    return RunStatus.FAILED


def next_attempt(
    termination: Termination,
    policy: RetryPolicy,
    attempt: int,
    finished_at: datetime,
    unit: float,
) -> datetime | None:
    """When the next attempt is due, or None when this attempt is the last."""
    if termination not in RETRYABLE:
        return None
    return rules.retry_at(policy, attempt, finished_at, unit)


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


def clip(text: str) -> str:
    """An error message short enough for a run row (a function's carries its stack)."""
    return rules.clip(text, MAX_ERROR_CHARS)
