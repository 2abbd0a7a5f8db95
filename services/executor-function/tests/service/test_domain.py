"""The pure rules of a function run: status, retries, state merge, env, message ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_function import domain
from chronoflow_executor_function.sandbox import Termination

NOW = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("termination", "status"),
    [
        (Termination.COMPLETED, RunStatus.SUCCESS),
        (Termination.TIMEOUT, RunStatus.TIMEOUT),
        (Termination.MEMORY, RunStatus.FAILED),
        (Termination.QUOTA, RunStatus.FAILED),
        (Termination.ERROR, RunStatus.FAILED),
        (Termination.CRASHED, RunStatus.FAILED),
    ],
)
def test_status_mapping(termination: Termination, status: RunStatus) -> None:
    assert domain.run_status(termination) is status


def test_only_a_crashed_sandbox_is_retried_and_only_within_the_policy() -> None:
    policy = RetryPolicy(attempts=3, backoff="exponential", delay_ms=1000, jitter=False)
    assert domain.next_attempt(Termination.CRASHED, policy, 1, NOW, 0.5) == NOW + timedelta(
        seconds=1
    )
    assert domain.next_attempt(Termination.CRASHED, policy, 2, NOW, 0.5) == NOW + timedelta(
        seconds=2
    )
    assert domain.next_attempt(Termination.CRASHED, policy, 3, NOW, 0.5) is None
    for own_fault in (
        Termination.ERROR,
        Termination.QUOTA,
        Termination.MEMORY,
        Termination.TIMEOUT,
    ):
        assert domain.next_attempt(own_fault, policy, 1, NOW, 0.5) is None
    assert domain.next_attempt(Termination.COMPLETED, policy, 1, NOW, 0.5) is None


def test_merge_applies_only_the_changed_keys() -> None:
    stored = {"a": 1, "b": {"x": 1}, "c": 3}
    assert domain.merge_state(stored, {"a": 2, "d": [1]}, ["c", "missing"]) == {
        "a": 2,
        "b": {"x": 1},
        "d": [1],
    }
    assert stored == {"a": 1, "b": {"x": 1}, "c": 3}


def test_overwritten_keys_are_the_written_ones_another_run_changed() -> None:
    base = {"total": 1, "mine": 0, "obj": {"a": 1, "b": 2}}
    latest = {"total": 2, "mine": 0, "obj": {"b": 2, "a": 1}, "theirs": 5}
    assert domain.overwritten_keys(base, latest, ["total", "mine", "obj"]) == ("total",)
    # A key another run created while this one was running, then written by this one too.
    assert domain.overwritten_keys(base, latest, ["theirs"]) == ("theirs",)
    assert domain.overwritten_keys(base, base, ["total"]) == ()


def test_env_exposes_only_allowlisted_variables_that_are_set() -> None:
    environ = {"GREETING": "oi", "SECRET": "x"}
    assert domain.allowlisted_env(["GREETING", "UNSET"], environ) == {"GREETING": "oi"}


def test_a_function_error_keeps_its_stack_up_to_2000_characters() -> None:
    assert domain.clip("x" * 3000).endswith("…")
    assert len(domain.clip("x" * 3000)) == 2000
