"""The projector reads run events straight into their rows (views.READ) instead of through
their models (decode, then the row): the same rows from the same bodies, and the same bodies
refused. Malformed bodies are valid ones with one field dropped, replaced, renamed to its
snake_case name or joined by an unknown one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chronoflow_api.projector import views
from chronoflow_contracts import decode, encode
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunSkipped,
    RunStarted,
    RunStatus,
    SkipReason,
    Trigger,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)

instants = st.integers(0, 10**6).map(lambda ms: T0 + timedelta(milliseconds=ms))
identity = st.fixed_dictionaries(
    {
        "chrono_id": st.text(min_size=1, max_size=8),
        "run_id": st.text(min_size=1, max_size=8),
        "occurrence_id": st.text(max_size=8),
        "scheduled_for": instants,
        "trigger": st.sampled_from(list(Trigger)),
        "attempt": st.integers(1, 5),
        "occurred_at": instants,
        "correlation_id": st.none() | st.text(max_size=4),
    }
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
started = st.builds(
    lambda i, t, at: RunStarted(**i, target_type=t, started_at=at),
    identity,
    st.sampled_from(list(TargetType)),
    instants,
)
completed = st.builds(
    lambda i, t, status, at, ms, http, snippet, error, result, retry: RunCompleted(
        **i,
        target_type=t,
        status=status,
        started_at=at,
        finished_at=at + timedelta(milliseconds=ms),
        duration_ms=ms,
        http_status=http,
        response_snippet=snippet,
        error_message=error,
        result=result,
        will_retry=retry,
    ),
    identity,
    st.sampled_from(list(TargetType)),
    st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]),
    instants,
    st.integers(0, 10**5),
    st.none() | st.integers(100, 599),
    st.none() | st.text(max_size=12),
    st.none() | st.text(max_size=12),
    json_values,
    st.booleans(),
)
skipped = st.builds(
    lambda i, reason, coalesced: RunSkipped(**i, reason=reason, coalesced=coalesced),
    identity,
    st.sampled_from(list(SkipReason)),
    st.integers(1, 50),
)
run_events = st.one_of(started, completed, skipped)

#: Values a field may be replaced with: of every JSON type, and the strings that are valid
#: somewhere (a status, a trigger, an instant with and without its offset).
replacements: st.SearchStrategy[Any] = st.sampled_from(
    [
        None, True, 0, -1, 1, 1.5, 10**20, "", "x", "1", "RUNNING", "SUCCESS", "SKIPPED",
        "MANUAL", "OVERLAP", "HTTP", "2026-03-01T00:00:00", "2026-03-01T00:00:00Z",
        "2026-03-01T00:00:00+02:00", "y" * 1001, [], {}, {"a": 1},
    ]
)  # fmt: skip


def through_the_model(event_type: str, body: bytes) -> Any:
    """How the projector read a run event before: its model, then the row."""
    event = decode(event_type, 1, body)
    assert isinstance(event, RunStarted | RunCompleted | RunSkipped)
    return views._run_row(event)


def outcome(read: Any, event_type: str, body: bytes) -> Any:
    try:
        return read(event_type, body)
    except ValidationError:
        return "refused"


@given(run_events)
def test_a_valid_body_reads_to_the_row_its_model_gives(e: Any) -> None:
    body = encode(e)
    read = views.READ[e.TYPE](e.TYPE, e.VERSION, body)
    assert isinstance(read, tuple)  # straight into the row, not through the model
    assert read == through_the_model(e.TYPE, body)


# Many examples: a mismatch hides in one field and one replacement (a 1,001-character snippet),
# and each example costs microseconds.
@settings(max_examples=3000)
@given(run_events, st.data())
def test_a_malformed_body_is_refused_or_read_as_its_model_reads_it(
    e: Any, data: st.DataObject
) -> None:
    fields: dict[str, Any] = json.loads(encode(e))
    key = data.draw(st.sampled_from(sorted(fields)))
    change = data.draw(st.sampled_from(["drop", "replace", "snake_case", "add"]))
    if change == "drop" and key != "occurredAt":
        del fields[key]
    elif change == "drop":
        # Without it the model takes the instant it reads the body at: two reads, two rows
        # that cannot be compared. READ leaves such a body to decode().
        fields[key] = None
    elif change == "replace":
        fields[key] = data.draw(replacements)
    elif change == "snake_case":
        fields["".join(f"_{c.lower()}" if c.isupper() else c for c in key)] = fields.pop(key)
    else:
        fields["unknownField"] = data.draw(replacements)
    body = json.dumps(fields).encode()

    def fast(event_type: str, body: bytes) -> Any:
        # What run_events makes of it: a row as it is, a model (a body READ left to decode,
        # e.g. one relying on a default) through its row.
        read = views.READ[event_type](event_type, 1, body)
        return read if isinstance(read, tuple) else views._run_row(read)

    assert outcome(fast, e.TYPE, body) == outcome(through_the_model, e.TYPE, body)


def test_an_unknown_version_is_refused_as_decode_refuses_it() -> None:
    e = RunStarted(
        chrono_id="c",
        run_id="r",
        occurrence_id="o",
        scheduled_for=T0,
        target_type=TargetType.HTTP,
        started_at=T0,
    )
    with pytest.raises(Exception, match="unknown version") as read:
        views.READ[e.TYPE](e.TYPE, 2, encode(e))
    with pytest.raises(type(read.value)):
        decode(e.TYPE, 2, encode(e))
