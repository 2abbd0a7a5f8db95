"""The run ledger's unvalidated RunStarted and RunCompleted are the validated constructor's
events: the same fields, the same JSON bytes, the same headers, whatever the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoflow_contracts import decode, encode
from chronoflow_contracts.chrono import ExecConfig, TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunStarted,
    RunStatus,
    Trigger,
)
from chronoflow_platform.executor.rules import FinalStatus, identity
from chronoflow_platform.executor.runs import completed_event, started_event
from chronoflow_platform.executor.testing import one_off_definition, retry_policy, run_request
from chronoflow_platform.publishing import event_headers

instants = st.datetimes(
    # hypothesis takes naive bounds and attaches the time zones itself.
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5))]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
statuses: st.SearchStrategy[FinalStatus] = st.sampled_from(
    [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]
)


@st.composite
def requests(draw: st.DrawFn) -> RunRequested:
    target = draw(st.sampled_from([TargetType.HTTP, TargetType.MESSAGE, TargetType.FUNCTION]))
    by_target: dict[TargetType, dict[str, Any]] = {
        TargetType.HTTP: {"url": "https://example.com/hook", "payload": {"a": 1}},
        TargetType.MESSAGE: {
            "channel_id": "ch",
            "message_template": "oi",
            "recipients": ["+5511999990001"],
        },
        TargetType.FUNCTION: {"function_id": "fn"},
    }
    fields = by_target[target]
    definition = one_off_definition(
        target,
        "events test",
        config=ExecConfig(retry=retry_policy(attempts=5, delay_ms=100)),
        **fields,
    )
    request = run_request(
        definition,
        scheduled_for=draw(instants),
        attempt=draw(st.integers(min_value=1, max_value=5)),
        trigger=draw(st.sampled_from(list(Trigger))),
    )
    if draw(st.booleans()):
        request = request.model_copy(update={"correlation_id": None})
    return request


def same_event(trusted: RunStarted | RunCompleted, validated: RunStarted | RunCompleted) -> None:
    assert type(trusted) is type(validated)
    assert encode(trusted) == encode(validated)
    assert trusted == validated
    assert trusted.__dict__ == validated.__dict__
    assert list(trusted.__dict__) == list(validated.__dict__)
    # The envelope's defaults were passed explicitly to the validated one to pin them.
    assert trusted.model_fields_set == validated.model_fields_set - {"event_id", "occurred_at"}
    assert event_headers(trusted, msg_id="m") == event_headers(validated, msg_id="m")
    assert decode(trusted.TYPE, trusted.VERSION, encode(trusted)) == validated


@given(request=requests(), target_type=st.sampled_from(list(TargetType)), started_at=instants)
def test_run_started_is_the_validated_event(
    request: RunRequested, target_type: TargetType, started_at: datetime
) -> None:
    trusted = started_event(request, target_type, started_at)
    validated = RunStarted(
        **identity(request),
        target_type=target_type,
        started_at=started_at,
        event_id=trusted.event_id,
        occurred_at=trusted.occurred_at,
    )
    same_event(trusted, validated)


outcomes = st.fixed_dictionaries(
    {
        "status": statuses,
        "started_at": instants,
        "finished_at": instants,
        "duration_ms": st.integers(min_value=0, max_value=10**12),
        "http_status": st.none() | st.integers(min_value=100, max_value=599),
        "response_snippet": st.none() | st.text(max_size=1000),
        "error_message": st.none() | st.text(max_size=600),
        "result": st.none()
        | st.dictionaries(st.text(), json_values, max_size=5)
        | st.fixed_dictionaries(
            {"responseBytes": st.integers(min_value=0), "truncated": st.booleans()},
            optional={"redirects": st.integers(0, 5), "nextAttemptAt": instants.map(str)},
        ),
        "will_retry": st.booleans(),
    }
)


@given(request=requests(), outcome=outcomes)
def test_run_completed_is_the_validated_event(
    request: RunRequested, outcome: dict[str, Any]
) -> None:
    trusted = completed_event(request, TargetType.HTTP, **outcome)
    validated = RunCompleted(
        **identity(request),
        target_type=TargetType.HTTP,
        **outcome,
        event_id=trusted.event_id,
        occurred_at=trusted.occurred_at,
    )
    same_event(trusted, validated)


def test_a_snippet_over_the_contract_limit_is_refused_as_validation_refuses_it() -> None:
    request = run_request(one_off_definition(TargetType.HTTP, "t", url="https://example.com"))
    outcome: dict[str, Any] = {
        "status": RunStatus.SUCCESS,
        "started_at": request.scheduled_for,
        "finished_at": request.scheduled_for,
        "duration_ms": 0,
        "http_status": 200,
        "response_snippet": "x" * 1001,
        "error_message": None,
        "result": None,
        "will_retry": False,
    }
    with pytest.raises(ValueError, match="1000"):
        RunCompleted(**identity(request), target_type=TargetType.HTTP, **outcome)
    with pytest.raises(ValueError, match="1000"):
        completed_event(request, TargetType.HTTP, **outcome)
    completed_event(request, TargetType.HTTP, **{**outcome, "response_snippet": "x" * 1000})
