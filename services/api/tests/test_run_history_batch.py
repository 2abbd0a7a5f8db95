"""Run history applied a batch at a time ends where applying its events one by one does.

The projector folds a batch of RunStarted / RunCompleted / RunSkipped into one statement per
table (views.run_events). The reference here is the rule as it stood per event: one upsert
per event, in stream order, against whatever the tables held before the batch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chronoflow_api.projector import views
from chronoflow_contracts import encode, new_id
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunSkipped,
    RunStarted,
    RunStatus,
    ScheduleArmed,
    SkipReason,
    Trigger,
    occurrence_id,
    run_id,
)
from chronoflow_platform.schema import chrono_run_state, chrono_runs

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RunEvent = RunStarted | RunCompleted | RunSkipped

# --- the reference: one upsert per event ------------------------------------------------------

_state = insert(chrono_run_state)
_STATE_ONE = _state.on_conflict_do_update(
    index_elements=["chrono_id"],
    set_={
        "last_run_at": _state.excluded.last_run_at,
        "last_run_status": _state.excluded.last_run_status,
        "last_run_id": _state.excluded.last_run_id,
    },
    where=or_(
        chrono_run_state.c.last_run_at.is_(None),
        chrono_run_state.c.last_run_id == _state.excluded.last_run_id,
        chrono_run_state.c.last_run_at <= _state.excluded.last_run_at,
    ),
)
_runs = insert(chrono_runs)
_RUN_ONE = _runs.on_conflict_do_update(
    index_elements=["id"],
    set_={c.name: _runs.excluded[c.name] for c in chrono_runs.columns if c.name != "id"},
    where=_runs.excluded.status != RunStatus.RUNNING.value,
)


async def apply_one(conn: AsyncConnection, e: RunEvent) -> None:
    """The event's row (a RUNNING row never replaces one) and its say on the last run."""
    row: dict[str, Any] = dict.fromkeys(c.name for c in chrono_runs.columns) | {
        "id": e.run_id,
        "chrono_id": e.chrono_id,
        "occurrence_id": e.occurrence_id,
        "scheduled_for": e.scheduled_for,
        "trigger": e.trigger.value,
        "attempt": e.attempt,
        "will_retry": False,
    }
    if isinstance(e, RunStarted):
        at, status = e.started_at, RunStatus.RUNNING.value
        row |= {"target_type": e.target_type.value, "status": status, "started_at": at}
    elif isinstance(e, RunCompleted):
        at, status = e.started_at, e.status.value
        row |= {
            "target_type": e.target_type.value,
            "status": status,
            "started_at": at,
            "finished_at": e.finished_at,
            "duration_ms": e.duration_ms,
            "http_status": e.http_status,
            "response_snippet": e.response_snippet,
            "error_message": e.error_message,
            "result": e.result,
            "will_retry": e.will_retry,
        }
    else:
        at, status = e.occurred_at, RunStatus.SKIPPED.value
        many = f" ({e.coalesced} occurrences)" if e.coalesced > 1 else ""
        row |= {
            "status": status,
            "started_at": at,
            "finished_at": at,
            "duration_ms": 0,
            "error_message": f"skipped: {e.reason.value}{many}",
            "result": {"reason": e.reason.value, "coalesced": e.coalesced},
        }
    await conn.execute(_RUN_ONE, row)
    await conn.execute(
        _STATE_ONE,
        {
            "chrono_id": e.chrono_id,
            "last_run_at": at,
            "last_run_status": status,
            "last_run_id": e.run_id,
        },
    )


# --- generated histories ----------------------------------------------------------------------

# (chrono, occurrence, attempt) pick one of a few runs, so events about one run repeat and
# runs of one chrono compete for its last run; instants from a few seconds, so they tie and
# go backwards.
run_keys = st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(1, 2))
seconds = st.integers(0, 3)
started = st.tuples(st.just("started"), run_keys, seconds, st.none())
completed = st.tuples(
    st.just("completed"),
    run_keys,
    seconds,
    st.tuples(
        st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]),
        st.booleans(),
        st.sampled_from([None, {"nextAttemptAt": "2026-03-01T00:00:05+00:00"}, [1, "two"]]),
    ),
)
skipped = st.tuples(
    st.just("skipped"),
    run_keys,
    seconds,
    st.tuples(st.sampled_from(list(SkipReason)), st.integers(1, 3)),
)
armed = st.tuples(st.just("armed"), run_keys, seconds, st.none())
run_event = st.one_of(started, completed, skipped)
Spec = tuple[str, tuple[int, int, int], int, Any]


def build(spec: Spec, chronos: list[str]) -> RunEvent | ScheduleArmed:
    kind, (chrono, _, _), second, _ = spec
    if kind == "armed":
        at = T0 + timedelta(seconds=second)
        return ScheduleArmed(chrono_id=chronos[chrono], chrono_version=1, next_run_at=at)
    return build_run(spec, chronos)


def build_run(spec: Spec, chronos: list[str]) -> RunEvent:
    kind, (chrono, occurrence, attempt), second, extra = spec
    chrono_id = chronos[chrono]
    at = T0 + timedelta(seconds=second)
    scheduled_for = T0 + timedelta(minutes=occurrence)
    occ = occurrence_id(chrono_id, scheduled_for)
    identity: dict[str, Any] = {
        "chrono_id": chrono_id,
        "run_id": run_id(occ, attempt),
        "occurrence_id": occ,
        "scheduled_for": scheduled_for,
        "attempt": attempt,
        "trigger": Trigger.MANUAL if occurrence else Trigger.SCHEDULE,
    }
    if kind == "started":
        return RunStarted(**identity, target_type=TargetType.HTTP, started_at=at)
    if kind == "completed":
        status, will_retry, result = extra
        return RunCompleted(
            **identity,
            target_type=TargetType.HTTP,
            status=status,
            started_at=at,
            finished_at=at + timedelta(milliseconds=250),
            duration_ms=250,
            http_status=200 if status is RunStatus.SUCCESS else None,
            response_snippet="ok" if status is RunStatus.SUCCESS else None,
            error_message=None if status is RunStatus.SUCCESS else "boom",
            result=result,
            will_retry=will_retry,
        )
    reason, coalesced = extra
    return RunSkipped(**identity, occurred_at=at, reason=reason, coalesced=coalesced)


async def tables(conn: AsyncConnection, chronos: list[str]) -> dict[str, list[dict[str, Any]]]:
    runs = await conn.execute(
        select(chrono_runs).where(chrono_runs.c.chrono_id.in_(chronos)).order_by(chrono_runs.c.id)
    )
    state = await conn.execute(
        select(chrono_run_state)
        .where(chrono_run_state.c.chrono_id.in_(chronos))
        .order_by(chrono_run_state.c.chrono_id)
    )
    return {
        "chrono_runs": [dict(r._mapping) for r in runs],
        "chrono_run_state": [dict(r._mapping) for r in state],
    }


async def before_batch(conn: AsyncConnection, history: list[RunEvent | ScheduleArmed]) -> None:
    for e in history:
        if isinstance(e, ScheduleArmed):
            await views.schedule_armed(conn, [(e, 0)])
        else:
            await apply_one(conn, e)


async def batched_and_one_by_one(
    engine: AsyncEngine,
    history: list[RunEvent | ScheduleArmed],
    batch: list[RunEvent],
    *,
    read: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tables after ``history`` and then ``batch``, applied by run_events in one go and
    one event at a time; nothing stays behind (both roll back). With ``read`` the batch goes
    to run_events as the projector reads it off the stream (views.READ, from the bodies)."""
    chronos = sorted({e.chrono_id for e in [*history, *batch]})
    items: list[Any] = (
        [views.READ[e.TYPE](e.TYPE, e.VERSION, encode(e)) for e in batch] if read else batch
    )
    async with engine.connect() as conn:
        async with conn.begin() as tx:
            await before_batch(conn, history)
            await views.run_events(conn, [(e, seq) for seq, e in enumerate(items, start=1)])
            batched = await tables(conn, chronos)
            await tx.rollback()
        async with conn.begin() as tx:
            await before_batch(conn, history)
            for e in batch:
                await apply_one(conn, e)
            one_by_one = await tables(conn, chronos)
            await tx.rollback()
    return batched, one_by_one


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(st.one_of(run_event, armed), max_size=4),
    batch=st.lists(run_event, min_size=1, max_size=8),
    read=st.booleans(),
)
async def test_a_batch_of_run_events_ends_where_one_by_one_does(
    engine: AsyncEngine, history: list[Spec], batch: list[Spec], read: bool
) -> None:
    chronos = [new_id(), new_id()]
    batched, one_by_one = await batched_and_one_by_one(
        engine,
        [build(spec, chronos) for spec in history],
        [build_run(spec, chronos) for spec in batch],
        read=read,
    )
    assert batched == one_by_one


async def test_a_run_restating_itself_at_an_older_instant_then_a_newer_run(
    engine: AsyncEngine,
) -> None:
    """Stored last run A at 0:03. The batch restates A at 0:01 (a run may restate itself, so
    A at 0:01 becomes the last run), then B at 0:02 (newer than 0:01, so B wins). Collapsing
    the batch to its own newest event first (B) and offering only that to the stored row
    would keep A; run_events must arrive at B."""
    chronos = [new_id(), new_id()]
    a = build_run(("started", (0, 0, 1), 3, None), chronos)
    a_again = build_run(("completed", (0, 0, 1), 1, (RunStatus.FAILED, True, None)), chronos)
    b = build_run(("started", (0, 1, 1), 2, None), chronos)
    batched, one_by_one = await batched_and_one_by_one(engine, [a], [a_again, b])
    assert batched == one_by_one
    [state] = batched["chrono_run_state"]
    assert (state["last_run_id"], state["last_run_status"]) == (b.run_id, "RUNNING")
